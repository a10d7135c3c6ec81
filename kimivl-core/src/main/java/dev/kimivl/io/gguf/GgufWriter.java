package dev.kimivl.io.gguf;

import dev.kimivl.io.CheckpointException;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;

/**
 * Writes a GGUF v3 file: metadata in insertion order, tensor infos, then each tensor's data at an aligned offset.
 * Tensor data is produced at write time by a callback that fills a slice of the memory-mapped output (so a
 * converter never holds more than one tensor). The file is written as {@code NAME.tmp} next to the target and
 * renamed over it only when complete.
 */
public final class GgufWriter {
    /** Filled with one tensor's bytes (exactly {@link #bytes} of them). */
    @FunctionalInterface
    public interface DataSource { void write(MemorySegment dst); }

    /** Called after each tensor: its name, bytes written so far and in all. */
    @FunctionalInterface
    public interface Progress { void update(String tensor, int index, int count, long doneBytes, long totalBytes); }

    private record Kv(GgufFile.ValueType type, GgufFile.ValueType elemType, Object value) {}

    private record Tensor(String name, GgmlType type, long[] ne, long bytes, DataSource data) {}

    private final Map<String, Kv> kvs = new LinkedHashMap<>();
    private final List<Tensor> tensors = new ArrayList<>();
    private final int alignment;

    public GgufWriter() { this(GgufFile.DEFAULT_ALIGNMENT); }

    public GgufWriter(int alignment) {
        this.alignment = alignment;
        if (alignment != GgufFile.DEFAULT_ALIGNMENT) putU32("general.alignment", alignment);
    }

    private GgufWriter put(String key, GgufFile.ValueType t, GgufFile.ValueType et, Object v) {
        if (kvs.containsKey(key)) throw new IllegalArgumentException("metadata key '" + key + "' written twice");
        kvs.put(key, new Kv(t, et, v));
        return this;
    }

    public GgufWriter putString(String key, String v) { return put(key, GgufFile.ValueType.STRING, null, v); }
    public GgufWriter putU32(String key, long v) { return put(key, GgufFile.ValueType.UINT32, null, v); }
    public GgufWriter putI32(String key, long v) { return put(key, GgufFile.ValueType.INT32, null, v); }
    public GgufWriter putU64(String key, long v) { return put(key, GgufFile.ValueType.UINT64, null, v); }
    public GgufWriter putF32(String key, double v) { return put(key, GgufFile.ValueType.FLOAT32, null, v); }
    public GgufWriter putBool(String key, boolean v) { return put(key, GgufFile.ValueType.BOOL, null, v); }
    public GgufWriter putStrings(String key, String[] v) { return put(key, GgufFile.ValueType.ARRAY, GgufFile.ValueType.STRING, v.clone()); }
    public GgufWriter putI32s(String key, long[] v) { return put(key, GgufFile.ValueType.ARRAY, GgufFile.ValueType.INT32, v.clone()); }
    public GgufWriter putF32s(String key, double[] v) { return put(key, GgufFile.ValueType.ARRAY, GgufFile.ValueType.FLOAT32, v.clone()); }

    /** Adds a tensor with ggml dims {@code ne} (fastest first); {@code data} fills its bytes when the file is written. */
    public GgufWriter addTensor(String name, GgmlType type, long[] ne, DataSource data) {
        long n = 1;
        for (long d : ne) n = Math.multiplyExact(n, d);
        long bytes = type.bytesFor(n);
        if (bytes < 0) throw new IllegalArgumentException("tensor '" + name + "': ne[0] = " + ne[0] + " is not a multiple of " + type + "'s block of " + type.blockSize);
        for (Tensor t : tensors) if (t.name.equals(name)) throw new IllegalArgumentException("tensor '" + name + "' added twice");
        tensors.add(new Tensor(name, type, ne.clone(), bytes, data));
        return this;
    }

    /** A tensor as added: name, type and ggml dims. */
    public record TensorEntry(String name, GgmlType type, long[] ne) {}

    /** The tensors added so far, in file order (what {@link #write} will write; for checks before writing). */
    public List<TensorEntry> tensors() {
        List<TensorEntry> out = new ArrayList<>();
        for (Tensor t : tensors) out.add(new TensorEntry(t.name, t.type, t.ne.clone()));
        return out;
    }

    private static byte[] utf8(String s) { return s.getBytes(StandardCharsets.UTF_8); }

    private static void writeString(ByteBuffer b, String s) {
        byte[] u = utf8(s);
        b.putLong(u.length).put(u);
    }

    private static long stringSize(String s) { return 8 + utf8(s).length; }

    private static long valueSize(GgufFile.ValueType t, GgufFile.ValueType et, Object v) {
        return switch (t) {
            case STRING -> stringSize((String) v);
            case ARRAY -> {
                long s = 12;
                if (et == GgufFile.ValueType.STRING) { for (String x : (String[]) v) s += stringSize(x); }
                else s += (long) et.size * (et == GgufFile.ValueType.FLOAT32 ? ((double[]) v).length : ((long[]) v).length);
                yield s;
            }
            default -> t.size;
        };
    }

    private static void writeValue(ByteBuffer b, GgufFile.ValueType t, Object v) {
        switch (t) {
            case UINT8, INT8 -> b.put((byte) (long) (Long) v);
            case UINT16, INT16 -> b.putShort((short) (long) (Long) v);
            case UINT32, INT32 -> b.putInt((int) (long) (Long) v);
            case UINT64, INT64 -> b.putLong((Long) v);
            case FLOAT32 -> b.putFloat((float) (double) (Double) v);
            case FLOAT64 -> b.putDouble((Double) v);
            case BOOL -> b.put((byte) ((Boolean) v ? 1 : 0));
            case STRING -> writeString(b, (String) v);
            case ARRAY -> throw new IllegalStateException();
        }
    }

    /** Writes the file (via a temporary file renamed at the end); progress may be null. */
    public void write(Path out, Progress progress) {
        long header = 24;
        for (Map.Entry<String, Kv> e : kvs.entrySet()) header += stringSize(e.getKey()) + 4 + valueSize(e.getValue().type, e.getValue().elemType, e.getValue().value);
        for (Tensor t : tensors) header += stringSize(t.name) + 4 + 8L * t.ne.length + 4 + 8;
        long dataStart = align(header);
        long[] offsets = new long[tensors.size()];
        long off = 0;
        for (int i = 0; i < tensors.size(); i++) {
            offsets[i] = off;
            off = align(off + tensors.get(i).bytes);
        }
        long total = dataStart + off;
        long totalData = 0;
        for (Tensor t : tensors) totalData += t.bytes;

        ByteBuffer h = ByteBuffer.allocate(Math.toIntExact(header)).order(ByteOrder.LITTLE_ENDIAN);
        h.putInt(GgufFile.MAGIC).putInt(3).putLong(tensors.size()).putLong(kvs.size());
        for (Map.Entry<String, Kv> e : kvs.entrySet()) {
            Kv kv = e.getValue();
            writeString(h, e.getKey());
            h.putInt(kv.type.ordinal());
            if (kv.type == GgufFile.ValueType.ARRAY) {
                h.putInt(kv.elemType.ordinal());
                switch (kv.elemType) {
                    case STRING -> { String[] a = (String[]) kv.value; h.putLong(a.length); for (String s : a) writeString(h, s); }
                    case FLOAT32 -> { double[] a = (double[]) kv.value; h.putLong(a.length); for (double d : a) h.putFloat((float) d); }
                    default -> { long[] a = (long[]) kv.value; h.putLong(a.length); for (long l : a) writeValue(h, kv.elemType, l); }
                }
            } else {
                writeValue(h, kv.type, kv.value);
            }
        }
        for (int i = 0; i < tensors.size(); i++) {
            Tensor t = tensors.get(i);
            writeString(h, t.name);
            h.putInt(t.ne.length);
            for (long d : t.ne) h.putLong(d);
            h.putInt(t.type.id);
            h.putLong(offsets[i]);
        }
        if (h.position() != header) throw new IllegalStateException("header size " + h.position() + " != " + header);

        Path tmp = out.resolveSibling(out.getFileName() + ".tmp");
        try {
            try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.CREATE, StandardOpenOption.TRUNCATE_EXISTING,
                    StandardOpenOption.READ, StandardOpenOption.WRITE);
                 Arena arena = Arena.ofShared()) {   // shared: converters fill tensors from the pool's threads
                MemorySegment file = ch.map(FileChannel.MapMode.READ_WRITE, 0, total, arena);
                file.asSlice(0, header).copyFrom(MemorySegment.ofArray(h.array()));
                long done = 0;
                for (int i = 0; i < tensors.size(); i++) {
                    Tensor t = tensors.get(i);
                    t.data.write(file.asSlice(dataStart + offsets[i], t.bytes));
                    done += t.bytes;
                    if (progress != null) progress.update(t.name, i + 1, tensors.size(), done, totalData);
                }
                file.force();
            }
            Files.move(tmp, out, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
            dev.kimivl.io.PageCache.drop(out);      // the first run reads it back instead of the writer's pages (PageCache)
        } catch (IOException | RuntimeException e) {
            try { Files.deleteIfExists(tmp); } catch (IOException ignored) { }
            if (e instanceof CheckpointException ce) throw ce;
            throw new CheckpointException(out + ": cannot write GGUF: " + e.getMessage(), e);
        }
    }

    private long align(long x) { return (x + alignment - 1) / alignment * alignment; }
}
