package dev.kimivl.io;

import dev.kimivl.tensor.DType;
import dev.kimivl.tensor.Quant;

import java.lang.foreign.MemorySegment;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * A view of a checkpoint with its weight matrices quantized on first use (Q8_0 or Q4_0, llama.cpp's rounding),
 * following llama.cpp's choices so that results match a converted GGUF: 1-D tensors, the MoE router
 * ({@code mlp.gate.weight}) and the patch embedding stay as stored; a matrix whose rows are not a whole number of
 * 32-element blocks stays as stored too. The quantized copies live on the heap.
 */
public final class QuantizedWeights implements WeightSource {
    private final WeightSource base;
    private final DType type;
    private final ConcurrentHashMap<String, TensorData> cache = new ConcurrentHashMap<>();

    public QuantizedWeights(WeightSource base, DType type) {
        if (type != DType.Q8_0 && type != DType.Q4_0) throw new IllegalArgumentException("quantize to Q8_0 or Q4_0, not " + type);
        this.base = base;
        this.type = type;
    }

    /** Whether this tensor is stored quantized under llama.cpp's rules. */
    public static boolean quantizes(TensorData t) {
        String n = t.name();
        return t.shape().length == 2 && t.shape()[1] % 32 == 0 && t.dtype().isFloat()
                && !n.endsWith("mlp.gate.weight") && !n.startsWith("vision_tower.patch_embed.");
    }

    @Override public Set<String> names() { return base.names(); }

    @Override public boolean has(String name) { return base.has(name); }

    @Override
    public TensorData tensor(String name) {
        TensorData t = base.tensor(name);
        if (!quantizes(t)) return t;
        return cache.computeIfAbsent(name, n -> {
            int rows = Math.toIntExact(t.shape()[0]), cols = Math.toIntExact(t.shape()[1]);
            MemorySegment q = Quant.quantize(t.toFloats(), rows, cols, type);
            return new TensorData(n, type, t.shape(), q, t.origin() + " (quantized to " + type + ")");
        });
    }

    @Override public String description() { return base.description() + " quantized to " + type; }

    @Override public void close() { base.close(); }
}
