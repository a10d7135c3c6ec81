package dev.kimivl.io;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.kimivl.tensor.VectorMath;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;

/** Writes F32 / I32 / BF16 tensors to a safetensors file (atomically: temporary file, then rename). */
public final class SafeTensorsWriter {
    private record Entry(String name, String dtype, long[] shape, byte[] bytes) {}

    private final List<Entry> entries = new ArrayList<>();

    public SafeTensorsWriter f32(String name, float[] values, long... shape) {
        return add(name, "F32", shape, values.length, 4, b -> b.asFloatBuffer().put(values));
    }

    public SafeTensorsWriter i32(String name, int[] values, long... shape) {
        return add(name, "I32", shape, values.length, 4, b -> b.asIntBuffer().put(values));
    }

    /** Stores values rounded to bf16 (round to nearest even). */
    public SafeTensorsWriter bf16(String name, float[] values, long... shape) {
        return add(name, "BF16", shape, values.length, 2, b -> { for (float v : values) b.putShort(VectorMath.floatToBf16(v)); });
    }

    /** Stores values rounded to IEEE half precision. */
    public SafeTensorsWriter f16(String name, float[] values, long... shape) {
        return add(name, "F16", shape, values.length, 2, b -> { for (float v : values) b.putShort(Float.floatToFloat16(v)); });
    }

    private SafeTensorsWriter add(String name, String dtype, long[] shape, int n, int elementBytes, Consumer<ByteBuffer> fill) {
        long numel = 1;
        for (long d : shape) numel *= d;
        if (numel != n) throw new IllegalArgumentException("tensor '" + name + "': " + n + " values for shape " + java.util.Arrays.toString(shape));
        ByteBuffer b = ByteBuffer.allocate(n * elementBytes).order(ByteOrder.LITTLE_ENDIAN);
        fill.accept(b);
        entries.add(new Entry(name, dtype, shape, b.array()));
        return this;
    }

    public void write(Path path) throws IOException {
        ObjectMapper json = new ObjectMapper();
        ObjectNode header = json.createObjectNode();
        header.putObject("__metadata__").put("format", "pt");
        long off = 0;
        for (Entry e : entries) {
            ObjectNode o = header.putObject(e.name);
            o.put("dtype", e.dtype);
            var sh = o.putArray("shape");
            for (long d : e.shape) sh.add(d);
            var offs = o.putArray("data_offsets");
            offs.add(off);
            offs.add(off + e.bytes.length);
            off += e.bytes.length;
        }
        byte[] h = json.writeValueAsString(header).getBytes(StandardCharsets.UTF_8);
        int pad = (8 - h.length % 8) % 8; // keep the data 8-byte aligned, as the reference writer does
        byte[] hp = new byte[h.length + pad];
        System.arraycopy(h, 0, hp, 0, h.length);
        for (int i = h.length; i < hp.length; i++) hp[i] = ' ';
        Path tmp = path.resolveSibling(path.getFileName() + ".tmp");
        try (OutputStream out = Files.newOutputStream(tmp)) {
            out.write(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(hp.length).array());
            out.write(hp);
            for (Entry e : entries) out.write(e.bytes);
        }
        Files.move(tmp, path, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    }
}
