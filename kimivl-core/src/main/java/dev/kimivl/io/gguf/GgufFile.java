package dev.kimivl.io.gguf;

import dev.kimivl.io.CheckpointException;
import dev.kimivl.io.TensorData;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A GGUF file (versions 2 and 3), memory-mapped: header, metadata (all value types, arrays included), tensor
 * infos and the aligned data section. Everything is validated when the file opens (known types, sizes, tensor
 * data inside the file and aligned); errors name the file, the tensor or key, and the byte offset.
 *
 * <p>Metadata values are {@link Long} for all integer types (unsigned 64-bit values above Long.MAX_VALUE wrap),
 * {@link Double} for FLOAT32/FLOAT64, {@link Boolean}, {@link String}, and for arrays {@code long[]},
 * {@code double[]}, {@code boolean[]}, {@code String[]} (nested arrays: {@code Object[]}).
 */
public final class GgufFile {
    public static final int MAGIC = 0x46554747; // "GGUF" little-endian
    public static final int DEFAULT_ALIGNMENT = 32;
    private static final int MAX_DIMS = 4;

    /** GGUF metadata value types. */
    public enum ValueType {
        UINT8(1), INT8(1), UINT16(2), INT16(2), UINT32(4), INT32(4), FLOAT32(4), BOOL(1), STRING(-1), ARRAY(-1),
        UINT64(8), INT64(8), FLOAT64(8);
        final int size;
        ValueType(int size) { this.size = size; }
        static ValueType byId(long id) { return id >= 0 && id < values().length ? values()[(int) id] : null; }
    }

    /** One tensor as stored: ggml {@code ne} (fastest dimension first) and the offset relative to the data section. */
    public record TensorInfo(String name, GgmlType type, long[] ne, long offset, long bytes) {
        public long numel() { long n = 1; for (long d : ne) n *= d; return n; }
        /** The PyTorch/numpy shape: ne reversed. */
        public long[] shape() {
            long[] s = new long[ne.length];
            for (int i = 0; i < ne.length; i++) s[i] = ne[ne.length - 1 - i];
            return s;
        }
    }

    private final Path path;
    private final int version;
    private final MemorySegment all;
    private final Map<String, Object> metadata;
    private final Map<String, ValueType> metadataTypes;
    private final Map<String, TensorInfo> tensors;
    private final long dataOffset;
    private final int alignment;
    private dev.kimivl.io.FileStamp stamp;      // null for a segment not mapped from a file (tests)

    private GgufFile(Path path, int version, MemorySegment all, Map<String, Object> metadata, Map<String, ValueType> types,
                     Map<String, TensorInfo> tensors, long dataOffset, int alignment) {
        this.path = path;
        this.version = version;
        this.all = all;
        this.metadata = metadata;
        this.metadataTypes = types;
        this.tensors = tensors;
        this.dataOffset = dataOffset;
        this.alignment = alignment;
    }

    /** Maps and validates the file; the mapping lives as long as {@code arena}. */
    public static GgufFile open(Path path, Arena arena) {
        MemorySegment all;
        dev.kimivl.io.FileStamp stamp;
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
            stamp = dev.kimivl.io.FileStamp.of(path, ch);
            all = ch.map(FileChannel.MapMode.READ_ONLY, 0, ch.size(), arena);
        } catch (IOException e) {
            throw new CheckpointException(path + ": cannot read: " + e.getMessage(), e);
        }
        GgufFile f = parse(path, all);
        f.stamp = stamp;
        return f;
    }

    /** A {@link CheckpointException} if the file was truncated, rewritten or replaced since it was mapped (see {@link dev.kimivl.io.FileStamp}). */
    public void checkUnchanged() {
        if (stamp != null) stamp.check();
    }

    static GgufFile parse(Path path, MemorySegment all) {
        Reader r = new Reader(path.toString(), all);
        if (all.byteSize() < 24) throw new CheckpointException(path + ": " + all.byteSize() + " bytes is too short for a GGUF file (header is 24 bytes)");
        int magic = r.i32("magic");
        if (magic != MAGIC) {
            throw new CheckpointException(String.format("%s: not a GGUF file (magic at offset 0 is 0x%08x, expected 0x%08x \"GGUF\")", path, magic, MAGIC));
        }
        int version = r.i32("version");
        if (version != 2 && version != 3) throw new CheckpointException(path + ": GGUF version " + version + " is not supported (2 or 3)");
        long nTensors = r.i64("tensor count");
        long nKv = r.i64("metadata count");
        if (nTensors < 0 || nTensors > all.byteSize() / 24) throw new CheckpointException(path + ": tensor count " + Long.toUnsignedString(nTensors) + " at offset 8 is impossible for a file of " + all.byteSize() + " bytes (truncated or corrupt)");
        if (nKv < 0 || nKv > all.byteSize() / 12) throw new CheckpointException(path + ": metadata count " + Long.toUnsignedString(nKv) + " at offset 16 is impossible for a file of " + all.byteSize() + " bytes (truncated or corrupt)");

        Map<String, Object> meta = new LinkedHashMap<>();
        Map<String, ValueType> types = new LinkedHashMap<>();
        for (long i = 0; i < nKv; i++) {
            long at = r.pos;
            String key = r.string("metadata key #" + i);
            long typeId = r.u32("type of metadata '" + key + "'");
            ValueType vt = ValueType.byId(typeId);
            if (vt == null) throw new CheckpointException(path + ": metadata '" + key + "' (offset " + at + ") has unknown value type " + typeId);
            if (meta.containsKey(key)) throw new CheckpointException(path + ": metadata key '" + key + "' appears twice (offset " + at + ")");
            meta.put(key, r.value(vt, key));
            types.put(key, vt);
        }
        int alignment = DEFAULT_ALIGNMENT;
        if (meta.get("general.alignment") instanceof Long a) {
            if (a <= 0 || a > (1 << 20) || Long.bitCount(a) != 1) throw new CheckpointException(path + ": general.alignment " + a + " is not a power of two");
            alignment = a.intValue();
        }
        List<TensorInfo> infos = new ArrayList<>();
        Map<String, TensorInfo> byName = new LinkedHashMap<>();
        for (long i = 0; i < nTensors; i++) {
            long at = r.pos;
            String name = r.string("name of tensor #" + i);
            long nd = r.u32("dimension count of tensor '" + name + "'");
            if (nd < 1 || nd > MAX_DIMS) throw new CheckpointException(path + ": tensor '" + name + "' (offset " + at + ") has " + nd + " dimensions (1.." + MAX_DIMS + ")");
            long[] ne = new long[(int) nd];
            // extent: the product of the non-zero dimensions, which must fit a long as well as numel: ne [0, 2^62, 4]
            // has numel 0, but TensorData.numel multiplies the reversed shape [4, 2^62, 0] and overflowed before the
            // zero (GgufFuzzTest#file's regress-zero-times-huge-dims)
            long numel = 1, extent = 1;
            for (int d = 0; d < nd; d++) {
                ne[d] = r.i64("dimension " + d + " of tensor '" + name + "'");
                if (ne[d] < 0 || (ne[d] > 0 && extent > Long.MAX_VALUE / ne[d])) throw new CheckpointException(path + ": tensor '" + name + "' has invalid dimension ne[" + d + "] = " + Long.toUnsignedString(ne[d]));
                numel *= ne[d];
                if (ne[d] > 0) extent *= ne[d];
            }
            long typeId = r.u32("type of tensor '" + name + "'");
            GgmlType type = GgmlType.byId(typeId);
            if (type == null) throw new CheckpointException(path + ": tensor '" + name + "' (offset " + at + ") has unknown ggml type " + typeId);
            if (ne[0] % type.blockSize != 0) throw new CheckpointException(path + ": tensor '" + name + "' " + type + ": ne[0] = " + ne[0] + " is not a multiple of the block size " + type.blockSize);
            long off = r.i64("data offset of tensor '" + name + "'");
            if (off < 0 || off % alignment != 0) throw new CheckpointException(path + ": tensor '" + name + "' data offset " + Long.toUnsignedString(off) + " is not aligned to " + alignment);
            long bytes = numel / type.blockSize > Long.MAX_VALUE / type.blockBytes ? Long.MAX_VALUE : type.bytesFor(numel);
            TensorInfo t = new TensorInfo(name, type, ne, off, bytes);
            if (byName.put(name, t) != null) throw new CheckpointException(path + ": tensor '" + name + "' appears twice");
            infos.add(t);
        }
        long dataOffset = (r.pos + alignment - 1) / alignment * alignment;
        long dataSize = all.byteSize() - dataOffset;
        if (dataSize < 0) throw new CheckpointException(path + ": truncated: the data section would start at " + dataOffset + " but the file has " + all.byteSize() + " bytes");
        List<TensorInfo> sorted = new ArrayList<>(infos);
        sorted.sort((a, b) -> Long.compare(a.offset, b.offset));
        long end = 0;
        String prev = null;
        for (TensorInfo t : sorted) {
            if (t.offset < end) throw new CheckpointException(path + ": tensor '" + t.name + "' (data offset " + t.offset + ") overlaps tensor '" + prev + "' (ends at " + end + ")");
            if (t.bytes > dataSize - t.offset) {                  // not offset + bytes: both can be near 2^63
                throw new CheckpointException(path + ": tensor '" + t.name + "' " + t.type + " ne " + java.util.Arrays.toString(t.ne) + " needs bytes "
                        + (dataOffset + t.offset) + ".." + (dataOffset + t.offset + t.bytes) + " but the file ends at " + all.byteSize() + " (truncated?)");
            }
            end = t.offset + t.bytes;
            prev = t.name;
        }
        return new GgufFile(path, version, all, Collections.unmodifiableMap(meta), Collections.unmodifiableMap(types),
                Collections.unmodifiableMap(byName), dataOffset, alignment);
    }

    public Path path() { return path; }
    public int version() { return version; }
    public int alignment() { return alignment; }
    public long dataOffset() { return dataOffset; }
    public Map<String, Object> metadata() { return metadata; }
    public ValueType metadataType(String key) { return metadataTypes.get(key); }
    public Map<String, TensorInfo> tensorInfos() { return tensors; }

    /** The whole mapping. */
    public MemorySegment rawData() { return all; }

    public boolean has(String key) { return metadata.containsKey(key); }

    public String string(String key, String def) {
        Object v = metadata.get(key);
        if (v == null) return def;
        if (v instanceof String s) return s;
        throw new CheckpointException(path + ": metadata '" + key + "' is " + v.getClass().getSimpleName() + ", expected a string");
    }

    /** An integer value (any integer type); def when absent. */
    public long integer(String key, long def) {
        Object v = metadata.get(key);
        if (v == null) return def;
        if (v instanceof Long l) return l;
        throw new CheckpointException(path + ": metadata '" + key + "' is " + v.getClass().getSimpleName() + ", expected an integer");
    }

    public long requireInteger(String key) {
        if (!metadata.containsKey(key)) throw new CheckpointException(path + ": missing metadata '" + key + "'");
        return integer(key, 0);
    }

    public double number(String key, double def) {
        Object v = metadata.get(key);
        if (v == null) return def;
        if (v instanceof Double d) return d;
        if (v instanceof Long l) return l;
        throw new CheckpointException(path + ": metadata '" + key + "' is " + v.getClass().getSimpleName() + ", expected a number");
    }

    public boolean bool(String key, boolean def) {
        Object v = metadata.get(key);
        if (v == null) return def;
        if (v instanceof Boolean b) return b;
        throw new CheckpointException(path + ": metadata '" + key + "' is " + v.getClass().getSimpleName() + ", expected a bool");
    }

    /** The tensor's bytes (a slice of the mapping) with its PyTorch-order shape. */
    /** Bytes of tensor data by ggml type name (F32, Q4_K, ...), in the file's order of first appearance. */
    public java.util.Map<String, Long> bytesByType() {
        java.util.Map<String, Long> m = new java.util.LinkedHashMap<>();
        for (TensorInfo t : tensors.values()) m.merge(t.type.name(), t.bytes, Long::sum);
        return m;
    }

    public TensorData tensor(String name) {
        TensorInfo t = tensors.get(name);
        if (t == null) throw new CheckpointException(path + ": missing tensor '" + name + "'");
        if (t.type.dtype == null) {
            throw new CheckpointException(path + ": tensor '" + name + "' has ggml type " + t.type + ", which kimivl cannot read (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K)");
        }
        return new TensorData(name, t.type.dtype, t.shape(), all.asSlice(dataOffset + t.offset, t.bytes), path.getFileName().toString());
    }

    /** A float32 value as the double of its shortest decimal form (1e-5f → 1e-5, as written in config.json). */
    static double shortest(float f) {
        return Float.isFinite(f) ? Double.parseDouble(Float.toString(f)) : f;
    }

    /** Bounds-checked little-endian reader over the mapping. */
    private static final class Reader {
        final String file;
        final MemorySegment s;
        long pos;

        Reader(String file, MemorySegment s) { this.file = file; this.s = s; }

        void need(long n, String what) {
            if (n < 0 || n > s.byteSize() - pos) {                   // not pos + n: a length near 2^63 wrapped (fuzzing)
                throw new CheckpointException(file + ": truncated: reading " + what + " needs " + Long.toUnsignedString(n) + " bytes at offset " + pos
                        + ", the file has " + s.byteSize());
            }
        }

        int i32(String what) { need(4, what); int v = s.get(ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), pos); pos += 4; return v; }
        long u32(String what) { return i32(what) & 0xFFFFFFFFL; }
        long i64(String what) { need(8, what); long v = s.get(ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), pos); pos += 8; return v; }

        String string(String what) {
            long at = pos;
            long n = i64("length of " + what);
            need(n, what + " (string of " + Long.toUnsignedString(n) + " bytes at offset " + at + ")");
            byte[] b = s.asSlice(pos, n).toArray(ValueLayout.JAVA_BYTE);
            pos += n;
            try {
                return StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                        .decode(java.nio.ByteBuffer.wrap(b)).toString();
            } catch (CharacterCodingException e) {
                // llama.cpp vocabularies may hold byte strings that are not UTF-8: keep them byte for byte (Latin-1)
                return new String(b, StandardCharsets.ISO_8859_1);
            }
        }

        Object value(ValueType t, String key) {
            String what = "value of '" + key + "'";
            return switch (t) {
                case UINT8 -> { need(1, what); yield (long) (s.get(ValueLayout.JAVA_BYTE, pos++) & 0xFF); }
                case INT8 -> { need(1, what); yield (long) s.get(ValueLayout.JAVA_BYTE, pos++); }
                case UINT16 -> { need(2, what); long v = s.get(ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), pos) & 0xFFFF; pos += 2; yield v; }
                case INT16 -> { need(2, what); long v = s.get(ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), pos); pos += 2; yield v; }
                case UINT32 -> u32(what);
                case INT32 -> (long) i32(what);
                case UINT64, INT64 -> i64(what);
                case FLOAT32 -> shortest(Float.intBitsToFloat(i32(what)));
                case FLOAT64 -> Double.longBitsToDouble(i64(what));
                case BOOL -> {
                    need(1, what);
                    int b = s.get(ValueLayout.JAVA_BYTE, pos++);
                    if (b != 0 && b != 1) throw new CheckpointException(file + ": metadata '" + key + "': bool byte " + b + " at offset " + (pos - 1));
                    yield b == 1;
                }
                case STRING -> string(what);
                case ARRAY -> array(key);
            };
        }

        Object array(String key) {
            long at = pos;
            long typeId = u32("element type of array '" + key + "'");
            ValueType et = ValueType.byId(typeId);
            if (et == null) throw new CheckpointException(file + ": metadata array '" + key + "' (offset " + at + ") has unknown element type " + typeId);
            long n = i64("length of array '" + key + "'");
            long minSize = et.size > 0 ? et.size : 8;
            if (n < 0 || n > (s.byteSize() - pos) / minSize) {
                throw new CheckpointException(file + ": truncated: metadata array '" + key + "' claims " + Long.toUnsignedString(n) + " " + et + " elements at offset " + at
                        + ", more than the file holds");
            }
            int len = (int) n;
            switch (et) {
                case STRING -> { String[] a = new String[len]; for (int i = 0; i < len; i++) a[i] = string("element " + i + " of '" + key + "'"); return a; }
                case BOOL -> { boolean[] a = new boolean[len]; for (int i = 0; i < len; i++) a[i] = (Boolean) value(et, key); return a; }
                case FLOAT32, FLOAT64 -> { double[] a = new double[len]; for (int i = 0; i < len; i++) a[i] = (Double) value(et, key); return a; }
                case ARRAY -> { Object[] a = new Object[len]; for (int i = 0; i < len; i++) a[i] = array(key); return a; }
                default -> { long[] a = new long[len]; for (int i = 0; i < len; i++) a[i] = (Long) value(et, key); return a; }
            }
        }
    }
}
