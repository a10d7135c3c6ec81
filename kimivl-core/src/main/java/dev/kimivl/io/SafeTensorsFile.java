package dev.kimivl.io;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.kimivl.tensor.DType;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * One safetensors file, memory-mapped (never copied onto the heap): an 8-byte little-endian header length N,
 * N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end)}}, then the data. Every entry is validated
 * when the file opens: known dtype, non-negative shape, offsets inside the file, byte size = elements × dtype
 * size, and no two tensors overlapping.
 */
public final class SafeTensorsFile {
    /** Headers beyond this are certainly corrupt (the real model's largest is ~100 KB). */
    static final long MAX_HEADER_BYTES = 100L << 20;
    private static final ObjectMapper JSON = new ObjectMapper();

    private final Path path;
    private final MemorySegment data;
    private final Map<String, TensorData> tensors;
    private final Map<String, String> metadata;
    private final FileStamp stamp;

    private SafeTensorsFile(Path path, MemorySegment data, Map<String, TensorData> tensors, Map<String, String> metadata, FileStamp stamp) {
        this.path = path;
        this.data = data;
        this.tensors = tensors;
        this.metadata = metadata;
        this.stamp = stamp;
    }

    /** Maps and validates the file; the mapping lives as long as {@code arena}. */
    public static SafeTensorsFile open(Path path, Arena arena) {
        String file = path.toString();
        long size;
        MemorySegment all;
        FileStamp stamp;
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
            stamp = FileStamp.of(path, ch);
            size = ch.size();
            if (size < 8) throw new CheckpointException(file + ": " + size + " bytes is too short for a safetensors file (needs at least the 8-byte header length)");
            all = ch.map(FileChannel.MapMode.READ_ONLY, 0, size, arena);
        } catch (IOException e) {
            throw new CheckpointException(file + ": cannot read: " + e.getMessage(), e);
        }
        long headerLen = all.get(ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 0);
        if (headerLen <= 0 || headerLen > MAX_HEADER_BYTES || headerLen > size - 8) {
            throw new CheckpointException(file + ": header length " + Long.toUnsignedString(headerLen) + " at offset 0 is invalid (file size " + size
                    + " bytes); the file is truncated or not safetensors");
        }
        byte[] headerBytes = all.asSlice(8, headerLen).toArray(ValueLayout.JAVA_BYTE);
        JsonNode header;
        try {
            header = JSON.readTree(new String(headerBytes, StandardCharsets.UTF_8));
        } catch (IOException e) {
            throw new CheckpointException(file + ": header JSON (bytes 8.." + (8 + headerLen) + ") does not parse: " + JsonErrors.describe(e), e);
        }
        if (header == null || !header.isObject()) throw new CheckpointException(file + ": header is not a JSON object");
        long dataStart = 8 + headerLen;
        long dataSize = size - dataStart;
        MemorySegment dataSeg = all.asSlice(dataStart, dataSize);

        Map<String, TensorData> tensors = new LinkedHashMap<>();
        Map<String, String> metadata = new LinkedHashMap<>();
        List<long[]> ranges = new ArrayList<>();
        List<String> rangeNames = new ArrayList<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = header.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            String name = e.getKey();
            JsonNode v = e.getValue();
            if (name.equals("__metadata__")) {
                v.fields().forEachRemaining(m -> metadata.put(m.getKey(), m.getValue().asText()));
                continue;
            }
            String where = file + ": tensor '" + name + "'";
            if (!v.isObject()) throw new CheckpointException(where + ": header entry is not an object");
            JsonNode dt = v.get("dtype"), sh = v.get("shape"), off = v.get("data_offsets");
            if (dt == null || !dt.isTextual()) throw new CheckpointException(where + ": missing field 'dtype'");
            DType dtype = DType.fromSafetensors(dt.asText());
            if (dtype == null) throw new CheckpointException(where + ": unsupported dtype '" + dt.asText() + "'");
            if (sh == null || !sh.isArray()) throw new CheckpointException(where + ": missing field 'shape'");
            long[] shape = new long[sh.size()];
            // extent: the product of the non-zero dimensions, which must fit a long as well as numel: a zero makes
            // numel 0, yet code that multiplies the dimensions in another order would overflow before it reaches the
            // zero (GgufFuzzTest#file's regress-zero-times-huge-dims, the same check in GgufFile)
            long numel = 1, extent = 1;
            for (int i = 0; i < shape.length; i++) {
                JsonNode d = sh.get(i);
                if (!d.canConvertToLong() || !d.isIntegralNumber() || d.asLong() < 0) throw new CheckpointException(where + ": invalid shape " + sh);
                shape[i] = d.asLong();
                if (shape[i] > 0 && extent > Long.MAX_VALUE / shape[i]) {
                    throw new CheckpointException(where + ": shape " + sh + " has more elements than any file holds");
                }
                numel *= shape[i];
                if (shape[i] > 0) extent *= shape[i];
            }
            if (off == null || !off.isArray() || off.size() != 2 || !off.get(0).isIntegralNumber() || !off.get(1).isIntegralNumber()) {
                throw new CheckpointException(where + ": 'data_offsets' must be [begin, end]");
            }
            long begin = off.get(0).asLong(), end = off.get(1).asLong();
            if (begin < 0 || end < begin) throw new CheckpointException(where + ": invalid data_offsets [" + begin + ", " + end + "]");
            if (end > dataSize) {
                throw new CheckpointException(where + ": data_offsets [" + begin + ", " + end + ") end past the data section, which has "
                        + dataSize + " bytes (file truncated?)");
            }
            long expected = numel > Long.MAX_VALUE / dtype.blockBytes ? Long.MAX_VALUE : numel * dtype.blockBytes;
            if (end - begin != expected) {
                throw new CheckpointException(where + ": " + (end - begin) + " bytes stored at [" + begin + ", " + end + ") but shape "
                        + sh + " of " + dtype + " needs " + expected);
            }
            ranges.add(new long[]{begin, end});
            rangeNames.add(name);
            // the origin is the file's whole path: a later error about this tensor (Matrices.of, ExpectedTensors) names
            // the file as the errors of open() do, not just its name (SafetensorsFuzzTest#file's regress-matrix-of-i32)
            tensors.put(name, new TensorData(name, dtype, shape, dataSeg.asSlice(begin, end - begin), path.toString()));
        }
        checkOverlaps(file, ranges, rangeNames);
        return new SafeTensorsFile(path, dataSeg, Collections.unmodifiableMap(tensors), Collections.unmodifiableMap(metadata), stamp);
    }

    private static void checkOverlaps(String file, List<long[]> ranges, List<String> names) {
        Integer[] order = new Integer[ranges.size()];
        for (int i = 0; i < order.length; i++) order[i] = i;
        java.util.Arrays.sort(order, Comparator.comparingLong(i -> ranges.get(i)[0]));
        for (int k = 1; k < order.length; k++) {
            long[] prev = ranges.get(order[k - 1]), cur = ranges.get(order[k]);
            if (cur[0] < prev[1] && cur[1] > cur[0] && prev[1] > prev[0]) {
                throw new CheckpointException(file + ": tensors '" + names.get(order[k - 1]) + "' [" + prev[0] + ", " + prev[1] + ") and '"
                        + names.get(order[k]) + "' [" + cur[0] + ", " + cur[1] + ") overlap");
            }
        }
    }

    public Path path() { return path; }

    public Map<String, TensorData> tensors() { return tensors; }

    public Map<String, String> metadata() { return metadata; }

    /** A {@link CheckpointException} if the file was truncated, rewritten or replaced since it was mapped (see {@link FileStamp}). */
    public void checkUnchanged() { stamp.check(); }

    /** Convenience for small files (tests, goldens): opens with an automatic arena. */
    public static SafeTensorsFile open(Path path) { return open(path, Arena.ofAuto()); }

    static boolean exists(Path p) { return Files.isRegularFile(p); }
}
