package dev.kimivl.bench;

import dev.kimivl.config.ModelConfig;
import dev.kimivl.io.CheckpointException;
import dev.kimivl.io.TensorData;
import dev.kimivl.io.WeightSource;
import dev.kimivl.io.gguf.Converter;
import dev.kimivl.io.gguf.GgufWriter;
import dev.kimivl.tensor.DType;

import java.io.IOException;
import java.io.PrintStream;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;

/**
 * The random benchmark model as the GGUF files users run: a deepseek2 text GGUF in the chosen type and a kimivl
 * mmproj GGUF in Q8_0 (as llama.cpp's published mmproj), written by {@link Converter} (llama.cpp's layout: stacked
 * experts, split kv_b, F32 router) and read back through {@link dev.kimivl.io.gguf.GgufModel}, the real loading path.
 *
 * <p>The source handed to the converter has the exact Kimi-VL-A3B tensor set and shapes; its matrices are windows
 * at varying offsets into one pool of random blocks (so no 16 GB source is ever held), vectors are ones (norms) or
 * small values (biases). Weight values do not change speed. The converter writes to a temporary file and renames it
 * when complete, so an interrupted generation leaves no partial model behind (it restarts from scratch).
 */
public final class RandomGguf {
    private RandomGguf() {}

    /** The text and mmproj files for a type in dir (they may not exist yet). */
    public static Path[] files(Path dir, DType type, String configJson) {
        String h = Integer.toHexString(configJson.replaceAll("\\s", "").hashCode());
        return new Path[]{
                dir.resolve("kimi-vl-a3b-random-" + type.name().toLowerCase(Locale.ROOT) + "-" + h + ".gguf"),
                dir.resolve("kimi-vl-a3b-random-mmproj-q8_0-" + h + ".gguf")};
    }

    /** Writes whichever of the two files is missing; returns {text, mmproj}. */
    public static Path[] ensure(Path dir, DType type, String configJson, long seed, PrintStream log) throws IOException {
        Files.createDirectories(dir);
        Path[] f = files(dir, type, configJson);
        ModelConfig cfg = ModelConfig.parse(configJson, "benchmark config");
        if (Files.isRegularFile(f[0]) && Files.isRegularFile(f[1])) return f;
        long need = RandomCheckpoint.fileSize(configJson, type);
        long free = Files.getFileStore(dir).getUsableSpace();
        if (free < need) throw new IOException(dir + ": writing the random " + type + " model needs about " + gb(need) + " GB of disk, " + gb(free) + " GB free");
        write(f, cfg, type, seed, need, log);
        return f;
    }

    private static void write(Path[] f, ModelConfig cfg, DType type, long seed, long need, PrintStream log) {
        try (Source src = new Source(cfg, type, seed)) {
            if (!Files.isRegularFile(f[0])) {
                if (log != null) log.printf(Locale.ROOT, "kimivl bench: writing a random %s Kimi-VL-A3B text model (GGUF, about %s GB) -> %s%n", type, gb(need), f[0]);
                long t0 = System.nanoTime();
                Converter.writeText(src, cfg, null, convType(type), "kimivl bench random weights", f[0], bar(log));
                if (log != null) log.printf(Locale.ROOT, "%n  written in %.0f s%n", (System.nanoTime() - t0) / 1e9);
            }
            if (!Files.isRegularFile(f[1]) && cfg.hasVision()) {
                if (log != null) log.printf(Locale.ROOT, "kimivl bench: writing the random MoonViT + projector (mmproj GGUF, Q8_0) -> %s%n", f[1]);
                Converter.writeMmproj(src, cfg, null, Converter.Type.Q8_0, "kimivl bench random weights", f[1], bar(log));
                if (log != null) log.println();
            }
        }
    }

    private static Converter.Type convType(DType t) {
        return switch (t) {
            case Q4_0 -> Converter.Type.Q4_0;
            case Q8_0 -> Converter.Type.Q8_0;
            default -> throw new IllegalArgumentException("no random GGUF for " + t);
        };
    }

    private static String gb(long b) { return String.format(Locale.ROOT, "%.2f", b / 1e9); }

    private static GgufWriter.Progress bar(PrintStream out) {
        if (out == null) return null;
        long t0 = System.nanoTime();
        long[] last = {0};
        return (tensor, index, count, done, total) -> {
            long now = System.nanoTime();
            if (now - last[0] < 250_000_000L && done < total) return;
            last[0] = now;
            double sec = (now - t0) / 1e9, rate = done / Math.max(1e-9, sec);
            int w = 40, fill = (int) (w * done / Math.max(1, total));
            out.printf(Locale.ROOT, "\r  [%s%s] %5.1f%%  %6.2f / %.2f GB  %4d/%d tensors  %5.0f MB/s  eta %4.0f s ",
                    "#".repeat(fill), " ".repeat(w - fill), 100.0 * done / Math.max(1, total), done / 1e9, total / 1e9, index, count,
                    rate / 1e6, (total - done) / Math.max(1, rate));
            out.flush();
        };
    }

    /** The random source checkpoint (HF names, exact shapes); matrices are windows into shared random pools. */
    static final class Source implements WeightSource {
        private static final long OFFSET_QUANTUM = 18L * 34 * 8;   // a multiple of every block size in bytes
        private final Map<String, RandomCheckpoint.Entry> entries = new LinkedHashMap<>();
        private final MemorySegment qPool, bfPool;
        private final long qWindow, bfWindow;

        Source(ModelConfig cfg, DType type, long seed) {
            List<RandomCheckpoint.Entry> es = RandomCheckpoint.layout(cfg, type);
            long maxQ = 0, maxBf = 0;
            for (RandomCheckpoint.Entry e : es) {
                entries.put(e.name(), e);
                if (e.dtype() == type) maxQ = Math.max(maxQ, e.bytes());
                if (e.dtype() == DType.BF16) maxBf = Math.max(maxBf, e.bytes());
            }
            qWindow = 64 * OFFSET_QUANTUM;
            bfWindow = 64 * OFFSET_QUANTUM;
            qPool = pool(type, maxQ + qWindow, seed);
            bfPool = pool(DType.BF16, maxBf + bfWindow, seed + 1);
        }

        private static MemorySegment pool(DType t, long bytes, long seed) {
            if (bytes == 0) return MemorySegment.NULL;
            long rowBytes = t.bytesFor(2048);
            long rows = (bytes + rowBytes - 1) / rowBytes;
            ByteBuffer b = ByteBuffer.allocateDirect(Math.toIntExact(rows * rowBytes)).order(ByteOrder.LITTLE_ENDIAN);
            RandomCheckpoint.Entry e = new RandomCheckpoint.Entry("pool", t, new long[]{rows, 2048}, 0, rows * rowBytes);
            RandomCheckpoint.fill(b, e, (int) rows, new SplittableRandom(seed));
            b.flip();
            return MemorySegment.ofBuffer(b);
        }

        @Override public Set<String> names() { return entries.keySet(); }

        @Override public boolean has(String name) { return entries.containsKey(name); }

        @Override
        public TensorData tensor(String name) {
            RandomCheckpoint.Entry e = entries.get(name);
            if (e == null) throw new CheckpointException("random benchmark model: no tensor '" + name + "'");
            long off = Math.floorMod(name.hashCode(), 64) * OFFSET_QUANTUM;
            MemorySegment data = switch (e.dtype()) {
                case BF16 -> bfPool.asSlice(off, e.bytes());
                case F32 -> {
                    ByteBuffer b = ByteBuffer.allocate(Math.toIntExact(e.bytes())).order(ByteOrder.LITTLE_ENDIAN);
                    RandomCheckpoint.fill(b, e, (int) e.rows(), new SplittableRandom(name.hashCode()));
                    yield MemorySegment.ofArray(b.array());
                }
                default -> qPool.asSlice(off, e.bytes());
            };
            return new TensorData(name, e.dtype(), e.shape(), data, "random");
        }

        @Override public String description() { return "random Kimi-VL-A3B weights"; }

        @Override public void close() {}
    }
}
