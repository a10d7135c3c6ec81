package dev.kimivl.bench;

import dev.kimivl.config.ModelConfig;
import dev.kimivl.config.TextConfig;
import dev.kimivl.io.CheckpointException;
import dev.kimivl.io.TensorData;
import dev.kimivl.io.WeightSource;
import dev.kimivl.io.gguf.Converter;
import dev.kimivl.io.gguf.GgmlType;
import dev.kimivl.io.gguf.GgufFile;
import dev.kimivl.io.gguf.GgufWriter;
import dev.kimivl.io.gguf.KimiVlNames;
import dev.kimivl.tensor.DType;
import dev.kimivl.tensor.Parallel;

import java.io.IOException;
import java.io.PrintStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The random benchmark model as the GGUF files users run: a deepseek2 text GGUF in the chosen {@link QuantMix} and a
 * kimivl mmproj GGUF in Q8_0 (as llama.cpp's published mmproj), in llama.cpp's layout (stacked experts, split kv_b,
 * F32 router), read back through {@link dev.kimivl.io.gguf.GgufModel}, the real loading path.
 *
 * <p>Q4_0/Q8_0 text files and the mmproj are written by {@link Converter} from a source with the exact Kimi-VL-A3B
 * tensor set and shapes; its matrices are windows at varying offsets into one pool of random blocks (so no 16 GB
 * source is ever held), vectors are ones (norms) or small values (biases). The Q4_K_M text file ({@link #writeMixed})
 * gets Converter's metadata and tensor names and order, with each tensor in the type llama-quantize gives it
 * ({@link QuantMix#textType}) and random blocks of that type written straight into the file (no quantizer; weight
 * values do not change speed). Files are written to a temporary name and renamed when complete, so an interrupted
 * generation leaves no partial model behind (it restarts from scratch). The text files carry a dummy Kimi tokenizer
 * ({@link BenchTokenizer}) so that llama.cpp and ik_llama.cpp load the same files ({@code kimivl bench --llama-bench}).
 */
public final class RandomGguf {
    private RandomGguf() {}

    private static final String NAME = "kimivl bench random weights";

    /**
     * The text and mmproj files for a mix in dir (they may not exist yet): kimi-vl-a3b-random-{q4_0,q8_0,q4_k_m}-HASH.gguf
     * and kimi-vl-a3b-random-mmproj-q8_0-HASH.gguf (shared by all mixes), HASH from the config.
     */
    public static Path[] files(Path dir, QuantMix mix, String configJson) {
        String h = Integer.toHexString(configJson.replaceAll("\\s", "").hashCode());
        return new Path[]{
                dir.resolve("kimi-vl-a3b-random-" + mix.label() + "-" + h + ".gguf"),
                dir.resolve("kimi-vl-a3b-random-mmproj-q8_0-" + h + ".gguf")};
    }

    /** Writes whichever of the files is missing; returns {text, mmproj} ({text} for a config without vision). */
    public static Path[] ensure(Path dir, QuantMix mix, String configJson, long seed, PrintStream log) throws IOException {
        return ensure(dir, mix, configJson, seed, false, log);
    }

    /**
     * As {@link #ensure(Path, QuantMix, String, long, PrintStream)}; with {@code needTokenizer}, a cached text file
     * written before the bench files carried a tokenizer ({@link BenchTokenizer}) is written again, since llama.cpp
     * cannot load it ({@code kimivl bench --llama-bench}).
     */
    public static Path[] ensure(Path dir, QuantMix mix, String configJson, long seed, boolean needTokenizer, PrintStream log) throws IOException {
        Files.createDirectories(dir);
        Path[] f = files(dir, mix, configJson);
        if (needTokenizer && Files.isRegularFile(f[0]) && !BenchTokenizer.present(f[0])) {
            if (log != null) log.printf(Locale.ROOT, "kimivl bench: %s has no tokenizer section (written before the bench files carried one; llama.cpp refuses it): writing it again%n", f[0]);
            Files.delete(f[0]);
        }
        ModelConfig cfg = ModelConfig.parse(configJson, "benchmark config");
        Path[] out = cfg.hasVision() ? f : new Path[]{f[0]};
        boolean text = !Files.isRegularFile(f[0]), mmproj = cfg.hasVision() && !Files.isRegularFile(f[1]);
        if (!text && !mmproj) return out;
        long textNeed = text ? textBytes(cfg, mix, configJson) : 0, need = textNeed + (mmproj ? mmprojBytes(cfg) : 0);
        long free = Files.getFileStore(dir).getUsableSpace();
        if (free < need) throw new IOException(dir + ": writing the random " + mix.label() + " model needs about " + gb(need) + " GB of disk, " + gb(free) + " GB free");
        write(f, cfg, mix, seed, text, mmproj, textNeed, log);
        return out;
    }

    /** Bytes of the text file's tensors (about its size; for the disk check). */
    private static long textBytes(ModelConfig cfg, QuantMix mix, String configJson) {
        if (mix.uniform() != null) return RandomCheckpoint.fileSize(configJson, mix.uniform());   // as before: the kvlb size, an upper bound
        long b = 0;
        for (Planned p : textPlan(cfg, mix)) b += p.bytes();
        return b;
    }

    /** About the mmproj's size: the vision tensors as Q8_0. */
    private static long mmprojBytes(ModelConfig cfg) {
        long n = 0;
        for (RandomCheckpoint.Entry e : RandomCheckpoint.layout(cfg, DType.F32)) {
            if (e.name().startsWith("vision_tower.") || e.name().startsWith("multi_modal_projector.")) n += e.numel();
        }
        return n / 32 * 34;
    }

    private static void write(Path[] f, ModelConfig cfg, QuantMix mix, long seed, boolean text, boolean mmproj, long need, PrintStream log) {
        // the source: Q4_0/Q8_0 text matrices (a uniform mix's text file) and BF16 vision matrices (the mmproj); its
        // pools depend only on the seed and the config, so the mmproj is the same whichever mix writes it
        boolean converted = text && mix.uniform() != null;
        try (Source src = new Source(cfg, mix.uniform() != null ? mix.uniform() : DType.Q8_0, seed, converted)) {
            if (text) {
                if (log != null) log.printf(Locale.ROOT, "kimivl bench: writing a random %s Kimi-VL-A3B text model (GGUF, about %s GB) -> %s%n", mix.label(), gb(need), f[0]);
                long t0 = System.nanoTime();
                ProgressLine line = log == null ? null : new ProgressLine(log, 250_000_000L);
                if (converted) {
                    GgufWriter w = Converter.textWriter(src, cfg, null, convType(mix.uniform()), NAME);
                    BenchTokenizer.put(w, cfg);
                    w.write(f[0], bar(line));
                }
                else writeMixed(f[0], cfg, mix, seed, bar(line));
                if (log != null) {
                    line.end();
                    log.printf(Locale.ROOT, "  written in %.0f s%n", (System.nanoTime() - t0) / 1e9);
                }
            }
            if (mmproj) {
                if (log != null) log.printf(Locale.ROOT, "kimivl bench: writing the random MoonViT + projector (mmproj GGUF, Q8_0) -> %s%n", f[1]);
                ProgressLine line = log == null ? null : new ProgressLine(log, 250_000_000L);
                Converter.writeMmproj(src, cfg, null, Converter.Type.Q8_0, NAME, f[1], bar(line));
                if (line != null) line.end();
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

    // ---------------------------------------------------------------- mixed-type text file (Q4_K_M)

    /** A tensor of the text file: GGUF name, type, ggml ne, and the RMS its random values get (matrices). */
    record Planned(String name, GgmlType type, long[] ne, float rms) {
        long numel() { long n = 1; for (long d : ne) n *= d; return n; }
        long bytes() { return type.bytesFor(numel()); }
    }

    private static final Pattern EXPERT = Pattern.compile("model\\.layers\\.(\\d+)\\.mlp\\.experts\\.(\\d+)\\.(gate|up|down)_proj\\.weight");
    private static final Pattern KVB = Pattern.compile("model\\.layers\\.(\\d+)\\.self_attn\\.kv_b_proj\\.weight");

    /**
     * The text file's tensors in the order {@link Converter#writeText} writes them (checkpoint names sorted; a layer's
     * stacked experts down, gate, up at its last expert tensor; kv_b_proj as attn_k_b [H, kvLora, nope] then attn_v_b
     * [H, v, kvLora]), each with its type in the mix. Matrices get values of RMS 1/√(row length) as in the source
     * checkpoint; attn_k_b, which holds kv_b_proj's rows transposed, gets kv_b_proj's 1/√kvLora.
     */
    static List<Planned> textPlan(ModelConfig cfg, QuantMix mix) {
        TextConfig c = cfg.text();
        String pre = cfg.textPrefix();
        int nl = c.numLayers();
        Map<String, long[]> shapes = new HashMap<>();
        TreeSet<String> names = new TreeSet<>();
        for (RandomCheckpoint.Entry e : RandomCheckpoint.layout(cfg, DType.F32)) {
            if (!e.name().startsWith(pre)) continue;
            String n = e.name().substring(pre.length());
            names.add(n);
            shapes.put(n, e.shape());
        }
        Map<String, String> lastExpert = new HashMap<>();
        Map<String, Integer> experts = new HashMap<>();
        for (String n : names) {
            Matcher m = EXPERT.matcher(n);
            if (m.matches()) {
                lastExpert.put(m.group(1), n);
                experts.merge(m.group(1), Integer.parseInt(m.group(2)) + 1, Math::max);
            }
        }
        List<Planned> out = new ArrayList<>();
        java.util.function.BiConsumer<String, long[]> add = (g, ne) -> {
            double rowLen = g.endsWith(".attn_k_b.weight") ? ne[1] : ne[0];
            out.add(new Planned(g, mix.textType(g, ne, nl), ne, (float) (1.0 / Math.sqrt(rowLen))));
        };
        for (String n : names) {
            Matcher m = EXPERT.matcher(n);
            if (m.matches()) {
                String layer = m.group(1);
                if (n.equals(lastExpert.get(layer))) {
                    for (String proj : new String[]{"down", "gate", "up"}) {
                        long[] s = shapes.get("model.layers." + layer + ".mlp.experts.0." + proj + "_proj.weight");
                        add.accept("blk." + layer + ".ffn_" + proj + "_exps.weight", new long[]{s[1], s[0], experts.get(layer)});
                    }
                }
                continue;
            }
            m = KVB.matcher(n);
            if (m.matches()) {
                long h = c.numHeads(), nope = c.qkNopeHeadDim(), v = c.vHeadDim(), kvl = c.kvLoraRank();
                add.accept("blk." + m.group(1) + ".attn_k_b.weight", new long[]{nope, kvl, h});
                add.accept("blk." + m.group(1) + ".attn_v_b.weight", new long[]{kvl, v, h});
                continue;
            }
            String g = KimiVlNames.textToGguf(n);
            if (g == null) throw new IllegalStateException("random benchmark model: tensor '" + n + "' has no GGUF name");
            long[] s = shapes.get(n);
            long[] ne = new long[s.length];
            for (int i = 0; i < s.length; i++) ne[i] = s[s.length - 1 - i];
            add.accept(g, ne);
        }
        return out;
    }

    /**
     * Writes the text GGUF of a mix: Converter's metadata for this config (from a tensor-less file it writes, so
     * the keys GgufConfig reads stay those of {@code kimivl convert}) with llama.cpp's file type of the mix, then
     * {@link #textPlan}'s tensors filled with random blocks, in parallel chunks seeded by (seed, tensor, chunk).
     */
    static void writeMixed(Path out, ModelConfig cfg, QuantMix mix, long seed, GgufWriter.Progress progress) {
        GgufWriter w = metadata(out, cfg, mix);
        List<Planned> plan = textPlan(cfg, mix);
        for (int i = 0; i < plan.size(); i++) {
            Planned p = plan.get(i);
            int index = i;
            w.addTensor(p.name(), p.type(), p.ne(), dst -> fillTensor(dst, p, seed, index));
        }
        w.write(out, progress);
    }

    private static void fillTensor(MemorySegment dst, Planned p, long seed, int index) {
        DType dt = p.type().dtype;
        if (dt == null) throw new IllegalStateException(p.name() + ": no random generator for " + p.type());
        long cols = p.ne()[0], rows = p.numel() / cols;
        long rowBytes = p.type().bytesFor(cols);
        long rowsPerChunk = Math.max(1, RandomCheckpoint.CHUNK / rowBytes);
        int chunks = Math.toIntExact((rows + rowsPerChunk - 1) / rowsPerChunk);
        Parallel.forRange(chunks, 1, (c0, c1) -> {
            for (int c = c0; c < c1; c++) {
                long r0 = c * rowsPerChunk, nr = Math.min(rowsPerChunk, rows - r0);
                ByteBuffer b = dst.asSlice(r0 * rowBytes, nr * rowBytes).asByteBuffer().order(ByteOrder.LITTLE_ENDIAN);
                RandomCheckpoint.Entry e = new RandomCheckpoint.Entry(p.name(), dt, new long[]{nr, cols}, 0, nr * rowBytes);
                RandomCheckpoint.fill(b, e, (int) nr, new SplittableRandom(seed * 0x9E3779B97F4A7C15L + ((long) index << 20) + c), p.rms());
                if (b.hasRemaining()) throw new IllegalStateException(p.name() + ": chunk " + c + " filled " + b.position() + " of " + b.limit() + " bytes");
            }
        });
    }

    /** A GgufWriter holding the metadata Converter writes for cfg's text model, with the mix's general.file_type. */
    private static GgufWriter metadata(Path out, ModelConfig cfg, QuantMix mix) {
        Path tmp = out.resolveSibling(out.getFileName() + ".meta");
        try {
            GgufWriter meta = Converter.textWriter(EMPTY, cfg, null, Converter.Type.Q8_0, NAME);
            BenchTokenizer.put(meta, cfg);
            meta.write(tmp, null);
            GgufWriter w = new GgufWriter();
            try (Arena arena = Arena.ofConfined()) {
                GgufFile g = GgufFile.open(tmp, arena);
                if (g.alignment() != GgufFile.DEFAULT_ALIGNMENT) throw new IllegalStateException(tmp + ": alignment " + g.alignment());
                for (Map.Entry<String, Object> kv : g.metadata().entrySet()) {
                    String k = kv.getKey();
                    Object v = k.equals("general.file_type") ? (Object) (long) mix.fileType() : kv.getValue();
                    switch (g.metadataType(k)) {
                        case UINT32 -> w.putU32(k, (Long) v);
                        case INT32 -> w.putI32(k, (Long) v);
                        case UINT64 -> w.putU64(k, (Long) v);
                        case FLOAT32 -> w.putF32(k, (Double) v);
                        case BOOL -> w.putBool(k, (Boolean) v);
                        case STRING -> w.putString(k, (String) v);
                        case ARRAY -> {
                            switch (v) {
                                case String[] a -> w.putStrings(k, a);
                                case double[] a -> w.putF32s(k, a);
                                case long[] a -> w.putI32s(k, a);
                                default -> throw new IllegalStateException(k + ": array of " + v.getClass().getSimpleName());
                            }
                        }
                        default -> throw new IllegalStateException(k + ": metadata of type " + g.metadataType(k));
                    }
                }
            }
            return w;
        } finally {
            try { Files.deleteIfExists(tmp); } catch (IOException ignored) { }
        }
    }

    /** A source with no tensors: Converter then writes only the metadata. */
    private static final WeightSource EMPTY = new WeightSource() {
        @Override public Set<String> names() { return Set.of(); }
        @Override public boolean has(String name) { return false; }
        @Override public TensorData tensor(String name) { throw new CheckpointException("no tensor '" + name + "'"); }
        @Override public String description() { return "no tensors"; }
        @Override public void close() {}
    };

    private static String gb(long b) { return String.format(Locale.ROOT, "%.2f", b / 1e9); }

    /** A progress bar for the GGUF writer (see {@link ProgressLine}: redrawn on a terminal, plain lines elsewhere). */
    private static GgufWriter.Progress bar(ProgressLine line) {
        if (line == null) return null;
        long t0 = System.nanoTime();
        return (tensor, index, count, done, total) -> {
            double sec = (System.nanoTime() - t0) / 1e9, rate = done / Math.max(1e-9, sec);
            int w = 40, fill = (int) (w * done / Math.max(1, total));
            line.show(String.format(Locale.ROOT, "  [%s%s] %5.1f%%  %6.2f / %.2f GB  %4d/%d tensors  %5.0f MB/s  eta %4.0f s ",
                    "#".repeat(fill), " ".repeat(w - fill), 100.0 * done / Math.max(1, total), done / 1e9, total / 1e9, index, count,
                    rate / 1e6, (total - done) / Math.max(1, rate)), done, total, index == count);
        };
    }

    /** The random source checkpoint (HF names, exact shapes); matrices are windows into shared random pools. */
    static final class Source implements WeightSource {
        private static final long OFFSET_QUANTUM = 18L * 34 * 8;   // a multiple of every block size in bytes
        private final Map<String, RandomCheckpoint.Entry> entries = new LinkedHashMap<>();
        private final MemorySegment qPool, bfPool;
        private final long qWindow, bfWindow;

        /** textPool false: only the vision tensors can be read (no pool of text blocks is made). */
        Source(ModelConfig cfg, DType type, long seed, boolean textPool) {
            List<RandomCheckpoint.Entry> es = RandomCheckpoint.layout(cfg, type);
            long maxQ = 0, maxBf = 0;
            for (RandomCheckpoint.Entry e : es) {
                entries.put(e.name(), e);
                if (e.dtype() == type && textPool) maxQ = Math.max(maxQ, e.bytes());
                if (e.dtype() == DType.BF16) maxBf = Math.max(maxBf, e.bytes());
            }
            qWindow = 64 * OFFSET_QUANTUM;
            bfWindow = 64 * OFFSET_QUANTUM;
            qPool = textPool ? pool(type, maxQ + qWindow, seed) : MemorySegment.NULL;
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
                default -> {
                    if (qPool.byteSize() == 0) throw new IllegalStateException("random benchmark model: this source has no text tensors ('" + name + "')");
                    yield qPool.asSlice(off, e.bytes());
                }
            };
            return new TensorData(name, e.dtype(), e.shape(), data, "random");
        }

        @Override public String description() { return "random Kimi-VL-A3B weights"; }

        @Override public void close() {}
    }
}
