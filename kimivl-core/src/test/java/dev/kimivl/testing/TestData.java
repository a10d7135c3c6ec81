package dev.kimivl.testing;

import dev.kimivl.io.TensorData;
import dev.kimivl.io.WeightSource;
import dev.kimivl.tensor.DType;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Set;

/** Small helpers several test classes share: reference files under test resources, decoded weight sources. */
public final class TestData {
    private TestData() {}

    /** The bytes of a test resource under /quant (reference blocks made by make_quant_ref.py); fails when missing. */
    public static byte[] quantResource(String name) {
        try (InputStream in = TestData.class.getResourceAsStream("/quant/" + name)) {
            if (in == null) throw new AssertionError("missing test resource quant/" + name);
            return in.readAllBytes();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Little-endian float32 values. */
    public static float[] floats(byte[] b) {
        float[] f = new float[b.length / 4];
        ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(f);
        return f;
    }

    /**
     * The same weights with every quantized tensor decoded to F32, so that the float kernels run them: isolates the
     * quantized kernels from the rounding of the weights. Per-head kv_b matrices are not offered (the model then builds
     * them from the decoded kv_b_proj).
     */
    public static WeightSource decoded(WeightSource w) {
        return new WeightSource() {
            @Override public Set<String> names() { return w.names(); }
            @Override public boolean has(String n) { return w.has(n); }
            @Override public TensorData tensor(String n) {
                TensorData t = w.tensor(n);
                if (!t.dtype().isQuantized()) return t;
                return new TensorData(n, DType.F32, t.shape(), MemorySegment.ofArray(t.toFloats()), t.origin() + " (decoded)");
            }
            @Override public String description() { return w.description() + ", decoded to F32"; }
            @Override public void close() {}
        };
    }
}
