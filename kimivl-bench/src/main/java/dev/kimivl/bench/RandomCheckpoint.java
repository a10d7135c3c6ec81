package dev.kimivl.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.kimivl.config.ModelConfig;
import dev.kimivl.config.TextConfig;
import dev.kimivl.config.VisionConfig;
import dev.kimivl.io.CheckpointException;
import dev.kimivl.io.TensorData;
import dev.kimivl.io.WeightSource;
import dev.kimivl.tensor.DType;

import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
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
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;

/**
 * A random-weight model with exactly the shapes of Kimi-VL-A3B (the published config, {@code tensor_manifest}),
 * for benchmarks: weight values do not change speed. Every language-model matrix is stored in the chosen block
 * format (Q8_0 or Q4_0, llama.cpp's layouts, generated directly as random blocks with a per-block scale that gives
 * each row an RMS of about 1/√cols); norms, routing biases and the vision tower (which has a 4304-wide matrix that
 * no 32-block format holds) are stored as F32/BF16.
 *
 * <p>File layout ({@code .kvlb}, "kimivl bench"): the 8-byte magic {@code KIMIVLB1}, a little-endian u64 header
 * length, the UTF-8 JSON header ({@code config}: the model's config.json; {@code type}; {@code seed};
 * {@code tensors}: name, dtype, shape, offset, bytes), zero padding to a 4096-byte boundary, then the tensors, each
 * at a 64-byte aligned offset relative to the data start. The file is memory-mapped and read in place.
 *
 * <p>Generation writes {@code NAME.partial} and renames it when complete. Content is a pure function of the
 * seed and the chunk index, so an interrupted generation resumes where it stopped (the header must match).
 */
public final class RandomCheckpoint implements WeightSource {
    static final byte[] MAGIC = "KIMIVLB1".getBytes(StandardCharsets.US_ASCII);
    static final long DATA_ALIGN = 4096, TENSOR_ALIGN = 64;
    static final long CHUNK = 8L << 20;               // generation granularity (bytes, whole rows)
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String CONFIG_RESOURCE = "kimi-vl-a3b-instruct.config.json";

    /** A tensor of the layout: where its bytes are relative to the data start. */
    record Entry(String name, DType dtype, long[] shape, long offset, long bytes) {
        long rows() { return shape.length == 1 ? 1 : numel() / shape[shape.length - 1]; }
        long cols() { return shape[shape.length - 1]; }
        long numel() { long n = 1; for (long d : shape) n *= d; return n; }
    }

    private final Path file;
    private final Arena arena;
    private final MemorySegment data;
    private final Map<String, TensorData> tensors;
    private final ModelConfig config;
    private final String configJson;
    private final DType type;

    private RandomCheckpoint(Path file, Arena arena, MemorySegment data, Map<String, TensorData> tensors,
                             ModelConfig config, String configJson, DType type) {
        this.file = file;
        this.arena = arena;
        this.data = data;
        this.tensors = tensors;
        this.config = config;
        this.configJson = configJson;
        this.type = type;
    }

    /** The bundled config.json of Kimi-VL-A3B-Instruct (shapes only matter here). */
    public static String defaultConfigJson() {
        try (InputStream in = RandomCheckpoint.class.getResourceAsStream(CONFIG_RESOURCE)) {
            if (in == null) throw new IllegalStateException("missing resource " + CONFIG_RESOURCE);
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new IllegalStateException("cannot read " + CONFIG_RESOURCE, e);
        }
    }

    /** Block formats a random model can be written in. */
    public static DType parseType(String s) {
        return switch (s.toLowerCase(Locale.ROOT)) {
            case "q4_0" -> DType.Q4_0;
            case "q8_0" -> DType.Q8_0;
            case "bf16" -> throw new UnsupportedOperationException("bf16: the full-size model is 32.8 GB and does not fit in this machine's RAM "
                    + "(24 GiB), so decode would run from disk; use --type q8_0 or q4_0");
            default -> throw new IllegalArgumentException("--type must be q4_0 or q8_0, not '" + s + "'");
        };
    }

    /** The cache file name for a type and config (the config's hash keeps different shapes apart). */
    public static Path cacheFile(Path dir, DType type, String configJson) {
        String h = Integer.toHexString(configJson.replaceAll("\\s", "").hashCode());
        return dir.resolve("kimi-vl-a3b-random-" + type.name().toLowerCase(Locale.ROOT) + "-" + h + ".kvlb");
    }

    // ---------------------------------------------------------------- layout

    /** Every tensor of the model, in file order, with offsets relative to the data start. */
    static List<Entry> layout(ModelConfig cfg, DType type) {
        List<Entry> out = new ArrayList<>();
        long[] off = {0};
        TextConfig t = cfg.text();
        String m = cfg.textPrefix() + "model.";
        int D = t.hiddenSize();
        java.util.function.BiConsumer<String, long[]> mat = (n, s) -> add(out, off, n, type, s);
        java.util.function.BiConsumer<String, long[]> f32 = (n, s) -> add(out, off, n, DType.F32, s);
        mat.accept(m + "embed_tokens.weight", new long[]{t.vocabSize(), D});
        for (int l = 0; l < t.numLayers(); l++) {
            String p = m + "layers." + l + ".";
            f32.accept(p + "input_layernorm.weight", new long[]{D});
            f32.accept(p + "post_attention_layernorm.weight", new long[]{D});
            int qh = t.qkNopeHeadDim() + t.qkRopeHeadDim();
            if (t.qLoraRank() > 0) {
                mat.accept(p + "self_attn.q_a_proj.weight", new long[]{t.qLoraRank(), D});
                f32.accept(p + "self_attn.q_a_layernorm.weight", new long[]{t.qLoraRank()});
                mat.accept(p + "self_attn.q_b_proj.weight", new long[]{(long) t.numHeads() * qh, t.qLoraRank()});
            } else {
                mat.accept(p + "self_attn.q_proj.weight", new long[]{(long) t.numHeads() * qh, D});
            }
            mat.accept(p + "self_attn.kv_a_proj_with_mqa.weight", new long[]{t.kvLoraRank() + t.qkRopeHeadDim(), D});
            f32.accept(p + "self_attn.kv_a_layernorm.weight", new long[]{t.kvLoraRank()});
            mat.accept(p + "self_attn.kv_b_proj.weight", new long[]{(long) t.numHeads() * (t.qkNopeHeadDim() + t.vHeadDim()), t.kvLoraRank()});
            mat.accept(p + "self_attn.o_proj.weight", new long[]{D, (long) t.numHeads() * t.vHeadDim()});
            if (t.isMoeLayer(l)) {
                mat.accept(p + "mlp.gate.weight", new long[]{t.nRoutedExperts(), D});
                f32.accept(p + "mlp.gate.e_score_correction_bias", new long[]{t.nRoutedExperts()});
                for (int e = 0; e < t.nRoutedExperts(); e++) mlp(mat, p + "mlp.experts." + e + ".", D, t.moeIntermediateSize());
                if (t.nSharedExperts() > 0) mlp(mat, p + "mlp.shared_experts.", D, (long) t.moeIntermediateSize() * t.nSharedExperts());
            } else {
                mlp(mat, p + "mlp.", D, t.intermediateSize());
            }
        }
        f32.accept(m + "norm.weight", new long[]{D});
        mat.accept(cfg.textPrefix() + "lm_head.weight", new long[]{t.vocabSize(), D});
        VisionConfig v = cfg.vision();
        if (v != null) {
            java.util.function.BiConsumer<String, long[]> bf = (n, s) -> add(out, off, n, DType.BF16, s);
            int d = v.hiddenSize(), p = v.patchSize(), inter = v.intermediateSize();
            String P = "vision_tower.";
            bf.accept(P + "patch_embed.proj.weight", new long[]{d, 3, p, p});
            f32.accept(P + "patch_embed.proj.bias", new long[]{d});
            bf.accept(P + "patch_embed.pos_emb.weight", new long[]{v.posEmbHeight(), v.posEmbWidth(), d});
            for (int b = 0; b < v.numLayers(); b++) {
                String q = P + "encoder.blocks." + b + ".";
                for (String n : List.of("norm0", "norm1")) { f32.accept(q + n + ".weight", new long[]{d}); f32.accept(q + n + ".bias", new long[]{d}); }
                bf.accept(q + "wqkv.weight", new long[]{3L * d, d}); f32.accept(q + "wqkv.bias", new long[]{3L * d});
                bf.accept(q + "wo.weight", new long[]{d, d}); f32.accept(q + "wo.bias", new long[]{d});
                bf.accept(q + "mlp.fc0.weight", new long[]{inter, d}); f32.accept(q + "mlp.fc0.bias", new long[]{inter});
                bf.accept(q + "mlp.fc1.weight", new long[]{d, inter}); f32.accept(q + "mlp.fc1.bias", new long[]{d});
            }
            f32.accept(P + "encoder.final_layernorm.weight", new long[]{d});
            f32.accept(P + "encoder.final_layernorm.bias", new long[]{d});
            int slots = v.mergeH() * v.mergeW();
            String J = "multi_modal_projector.";
            f32.accept(J + "pre_norm.weight", new long[]{d});
            f32.accept(J + "pre_norm.bias", new long[]{d});
            bf.accept(J + "linear_1.weight", new long[]{(long) slots * d, (long) slots * d});
            f32.accept(J + "linear_1.bias", new long[]{(long) slots * d});
            bf.accept(J + "linear_2.weight", new long[]{D, (long) slots * d});
            f32.accept(J + "linear_2.bias", new long[]{D});
        }
        return out;
    }

    private static void mlp(java.util.function.BiConsumer<String, long[]> mat, String p, long D, long inter) {
        mat.accept(p + "gate_proj.weight", new long[]{inter, D});
        mat.accept(p + "up_proj.weight", new long[]{inter, D});
        mat.accept(p + "down_proj.weight", new long[]{D, inter});
    }

    private static void add(List<Entry> out, long[] off, String name, DType dtype, long[] shape) {
        long n = 1;
        for (long d : shape) n *= d;
        long bytes = dtype.bytesFor(n);
        out.add(new Entry(name, dtype, shape, off[0], bytes));
        off[0] = align(off[0] + bytes, TENSOR_ALIGN);
    }

    static long align(long v, long a) { return (v + a - 1) / a * a; }

    static byte[] header(String configJson, DType type, long seed, List<Entry> entries) {
        try {
            ObjectNode h = JSON.createObjectNode();
            h.put("format", "kimivl random benchmark model");
            h.put("type", type.name());
            h.put("seed", seed);
            h.set("config", JSON.readTree(configJson));
            ArrayNode ts = h.putArray("tensors");
            for (Entry e : entries) {
                ObjectNode o = ts.addObject();
                o.put("name", e.name());
                o.put("dtype", e.dtype().name());
                ArrayNode s = o.putArray("shape");
                for (long d : e.shape()) s.add(d);
                o.put("offset", e.offset());
                o.put("bytes", e.bytes());
            }
            return JSON.writeValueAsBytes(h);
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    static long dataStart(long headerLen) { return align(16 + headerLen, DATA_ALIGN); }

    // ---------------------------------------------------------------- generation

    /** Total size of the file that {@link #ensure} writes for this type and config. */
    public static long fileSize(String configJson, DType type) {
        ModelConfig cfg = ModelConfig.parse(configJson, "benchmark config");
        List<Entry> es = layout(cfg, type);
        Entry last = es.getLast();
        return dataStart(header(configJson, type, 42, es).length) + last.offset() + last.bytes();
    }

    /**
     * Returns the cached model file, generating it first when it is missing (resuming an interrupted generation).
     * Progress goes to {@code log} (may be null).
     */
    public static Path ensure(Path dir, DType type, String configJson, long seed, PrintStream log) throws IOException {
        Files.createDirectories(dir);
        Path file = cacheFile(dir, type, configJson);
        ModelConfig cfg = ModelConfig.parse(configJson, "benchmark config");
        List<Entry> entries = layout(cfg, type);
        byte[] header = header(configJson, type, seed, entries);
        long start = dataStart(header.length);
        Entry lastE = entries.getLast();
        long total = start + lastE.offset() + lastE.bytes();
        if (Files.isRegularFile(file) && Files.size(file) == total && headerMatches(file, header)) return file;
        if (Files.exists(file)) Files.delete(file);     // stale or foreign: regenerate

        long free = Files.getFileStore(dir).getUsableSpace();
        Path partial = dir.resolve(file.getFileName() + ".partial");
        long have = Files.isRegularFile(partial) && headerMatches(partial, header) ? Files.size(partial) : 0;
        if (free + have < total) {
            throw new IOException(dir + ": generating the random " + type + " model needs " + gb(total) + " GB of disk, "
                    + gb(free) + " GB free");
        }
        long t0 = System.nanoTime();
        try (FileChannel ch = FileChannel.open(partial, StandardOpenOption.CREATE, StandardOpenOption.WRITE, StandardOpenOption.READ)) {
            long resumeAt = 0;
            if (have > start) resumeAt = have - start;
            else {
                ch.truncate(0);
                ByteBuffer hb = ByteBuffer.allocate((int) start).order(ByteOrder.LITTLE_ENDIAN);
                hb.put(MAGIC).putLong(header.length).put(header);
                hb.clear();
                writeFully(ch, hb, 0);
            }
            if (log != null) {
                log.printf(Locale.ROOT, "kimivl bench: %s random %s model (%s GB, %d tensors) -> %s%n",
                        resumeAt > 0 ? "resuming the" : "generating a", type, gb(total), entries.size(), file);
            }
            Progress progress = new Progress(log, total - start, resumeAt);
            ByteBuffer buf = ByteBuffer.allocateDirect((int) CHUNK + 4096).order(ByteOrder.LITTLE_ENDIAN);
            for (int i = 0; i < entries.size(); i++) {
                Entry e = entries.get(i);
                if (e.offset() + e.bytes() <= resumeAt) continue;
                long rowBytes = e.dtype().bytesFor(e.cols());
                long rowsPerChunk = Math.max(1, CHUNK / rowBytes);
                long rows = e.rows();
                for (long r0 = 0, chunk = 0; r0 < rows; r0 += rowsPerChunk, chunk++) {
                    long nr = Math.min(rowsPerChunk, rows - r0);
                    long at = e.offset() + r0 * rowBytes;
                    if (at + nr * rowBytes <= resumeAt) continue;   // written before the interruption
                    buf.clear();
                    fill(buf, e, (int) nr, new SplittableRandom(seed * 0x9E3779B97F4A7C15L + ((long) i << 20) + chunk));
                    buf.flip();
                    writeFully(ch, buf, start + at);
                    progress.advance(at + nr * rowBytes);
                }
            }
            ch.force(false);
            progress.done();
        }
        Files.move(partial, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        if (log != null) log.printf(Locale.ROOT, "kimivl bench: model written in %.1f s%n", (System.nanoTime() - t0) / 1e9);
        return file;
    }

    private static String gb(long b) { return String.format(Locale.ROOT, "%.2f", b / 1e9); }

    private static void writeFully(FileChannel ch, ByteBuffer b, long pos) throws IOException {
        while (b.hasRemaining()) pos += ch.write(b, pos);
    }

    private static boolean headerMatches(Path f, byte[] header) throws IOException {
        if (Files.size(f) < 16 + header.length) return false;
        try (FileChannel ch = FileChannel.open(f, StandardOpenOption.READ)) {
            ByteBuffer b = ByteBuffer.allocate(16 + header.length).order(ByteOrder.LITTLE_ENDIAN);
            while (b.hasRemaining() && ch.read(b, b.position()) >= 0) { }
            b.flip();
            byte[] magic = new byte[8];
            b.get(magic);
            if (!java.util.Arrays.equals(magic, MAGIC) || b.getLong() != header.length) return false;
            byte[] h = new byte[header.length];
            b.get(h);
            return java.util.Arrays.equals(h, header);
        }
    }

    /** Writes nr random rows of tensor e into buf, matrices with a row RMS of about 1/√cols. */
    static void fill(ByteBuffer buf, Entry e, int nr, SplittableRandom rnd) {
        fill(buf, e, nr, rnd, (float) (1.0 / Math.sqrt(e.cols())));
    }

    /**
     * Writes nr random rows of tensor e into buf: matrices (block formats, F32, BF16) with values of RMS about
     * {@code rms} and mean about 0, norms near 1, biases small. The k-quant and Q5_0 blocks are valid llama.cpp blocks
     * with random quants; their f16 scales are chosen from the RMS of the quant distribution (QuantMixTest checks the
     * RMS and mean through the reference dequantizers).
     */
    static void fill(ByteBuffer buf, Entry e, int nr, SplittableRandom rnd, float rms) {
        long cols = e.cols();
        String name = e.name();
        boolean norm = name.contains("norm") && name.endsWith(".weight");
        boolean bias = name.endsWith(".bias") || name.endsWith("e_score_correction_bias");
        switch (e.dtype()) {
            case Q8_0 -> {
                // int8 uniform in [-127, 127]: std ≈ 73.6; the block scale gives the row RMS ≈ 1/√cols
                short d = Float.floatToFloat16(rms / 73.6f);
                long blocks = nr * cols / 32;
                for (long b = 0; b < blocks; b++) {
                    buf.putShort(d);
                    for (int k = 0; k < 4; k++) {
                        long v = rnd.nextLong();
                        for (int j = 0; j < 8; j++) {
                            int q = (int) ((v >>> (8 * j)) & 0xFF);
                            buf.put((byte) (q == 0x80 ? 0 : q));   // avoid -128 (ggml never writes it)
                        }
                    }
                }
            }
            case Q4_0 -> {
                short d = Float.floatToFloat16(rms / 4.61f);
                long blocks = nr * cols / 32;
                for (long b = 0; b < blocks; b++) {
                    buf.putShort(d);
                    buf.putLong(rnd.nextLong());
                    buf.putLong(rnd.nextLong());
                }
            }
            case Q4_K -> {
                // block_q4_K: f16 d, f16 dmin, scales[12] (8 packed 6-bit scale/min pairs), qs[128]; x = d·sc·q − dmin·m
                // per sub-block of 32, q uniform in 0..15. dmin = d and m = 7.5·sc with sc in {2, 4, 6, 8} make every
                // sub-block zero-mean, x = d·sc·(q − 7.5): E[sc²] = 30, E[(q − 7.5)²] = 21.25, RMS = d·√637.5.
                short d = Float.floatToFloat16(rms / 25.249f);
                int[] sc = new int[8], m = new int[8];
                long blocks = nr * cols / 256;
                for (long b = 0; b < blocks; b++) {
                    buf.putShort(d).putShort(d);
                    long r = rnd.nextLong();
                    for (int j = 0; j < 8; j++) {
                        sc[j] = 2 + 2 * (int) ((r >>> (2 * j)) & 3);
                        m[j] = sc[j] * 15 / 2;
                    }
                    // the inverse of ggml's get_scale_min_k4: low 6 bits of sub-blocks 0..3 in bytes 0..7, the
                    // low 4 bits of 4..7 in bytes 8..11, their high 2 bits in the top bits of bytes 0..7
                    for (int j = 0; j < 4; j++) buf.put((byte) ((sc[j] & 63) | ((sc[j + 4] >> 4) << 6)));
                    for (int j = 0; j < 4; j++) buf.put((byte) ((m[j] & 63) | ((m[j + 4] >> 4) << 6)));
                    for (int j = 4; j < 8; j++) buf.put((byte) ((sc[j] & 0xF) | ((m[j] & 0xF) << 4)));
                    for (int k = 0; k < 16; k++) buf.putLong(rnd.nextLong());
                }
            }
            case Q6_K -> {
                // block_q6_K: ql[128], qh[64], int8 scales[16], f16 d; x = d·sc·(q − 32) per 16, q uniform in 0..63.
                // sc = ±1..4 with a random sign (so the −0.5 mean of q − 32 cancels across sub-blocks): E[sc²] = 7.5,
                // E[(q − 32)²] = 341.5, RMS = d·√2561.25.
                short d = Float.floatToFloat16(rms / 50.609f);
                long blocks = nr * cols / 256;
                for (long b = 0; b < blocks; b++) {
                    for (int k = 0; k < 24; k++) buf.putLong(rnd.nextLong());      // ql and qh
                    long r = rnd.nextLong();
                    for (int j = 0; j < 16; j++) {
                        int bits = (int) ((r >>> (3 * j)) & 7);
                        int s = 1 + (bits & 3);
                        buf.put((byte) ((bits & 4) != 0 ? -s : s));
                    }
                    buf.putShort(d);
                }
            }
            case Q5_0 -> {
                // block_q5_0: f16 d, qh[4], qs[16]; x = d·(q − 16), q uniform in 0..31: E[(q − 16)²] = 85.5, RMS = d·9.247.
                // The sign of d is random per block, so the −0.5 mean cancels.
                short dp = Float.floatToFloat16(rms / 9.2466f), dn = Float.floatToFloat16(-rms / 9.2466f);
                long blocks = nr * cols / 32;
                for (long b = 0; b < blocks; b++) {
                    long r = rnd.nextLong();
                    buf.putShort((r & 1) != 0 ? dn : dp);
                    buf.putInt((int) (r >>> 32));
                    buf.putLong(rnd.nextLong());
                    buf.putLong(rnd.nextLong());
                }
            }
            case F32 -> {
                for (long i = 0; i < nr * cols; i++) {
                    float x = norm ? 1f + 0.1f * (float) (rnd.nextDouble() - 0.5) : bias ? 0.02f * (float) (rnd.nextDouble() - 0.5)
                            : 2f * rms * (float) (rnd.nextDouble() - 0.5) * 1.732f;
                    buf.putFloat(x);
                }
            }
            case BF16 -> {
                float scale = name.endsWith("pos_emb.weight") ? 0.02f : 2f * 1.732f * rms;
                for (long i = 0; i < nr * cols; i++) {
                    float x = scale * (float) (rnd.nextDouble() - 0.5);
                    buf.putShort((short) (Float.floatToRawIntBits(x) >>> 16));
                }
            }
            default -> throw new IllegalStateException("no random generator for " + e.dtype());
        }
    }

    /** A progress bar on the log stream (see {@link ProgressLine}: redrawn on a terminal, plain lines elsewhere). */
    private static final class Progress {
        private final ProgressLine line;
        private final long total, t0 = System.nanoTime();
        private final long startDone;

        Progress(PrintStream out, long total, long done) {
            this.line = out == null ? null : new ProgressLine(out, 200_000_000L);
            this.total = total;
            this.startDone = done;
        }

        void advance(long done) {
            if (line == null) return;
            double sec = (System.nanoTime() - t0) / 1e9, rate = (done - startDone) / Math.max(1e-9, sec);
            int w = 40, fill = (int) (w * done / total);
            line.show(String.format(Locale.ROOT, "  [%s%s] %5.1f%%  %6.2f / %.2f GB  %5.0f MB/s  eta %4.0f s ",
                    "#".repeat(fill), " ".repeat(w - fill), 100.0 * done / total, done / 1e9, total / 1e9, rate / 1e6,
                    (total - done) / Math.max(1, rate)), done, total, done >= total);
        }

        void done() {
            if (line == null) return;
            advance(total);
            line.end();
        }
    }

    // ---------------------------------------------------------------- reading

    /** Maps a file written by {@link #ensure} (read-only; nothing is copied). */
    public static RandomCheckpoint open(Path file) throws IOException {
        Arena arena = Arena.ofShared();
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            long size = ch.size();
            MemorySegment all = ch.map(FileChannel.MapMode.READ_ONLY, 0, size, arena);
            if (size < 16) throw new CheckpointException(file + ": too short for a kimivl bench model");
            byte[] magic = all.asSlice(0, 8).toArray(java.lang.foreign.ValueLayout.JAVA_BYTE);
            if (!java.util.Arrays.equals(magic, MAGIC)) throw new CheckpointException(file + ": not a kimivl bench model (bad magic)");
            long hl = all.get(java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 8);
            if (hl <= 0 || 16 + hl > size) throw new CheckpointException(file + ": header length " + hl + " out of range");
            byte[] hb = all.asSlice(16, hl).toArray(java.lang.foreign.ValueLayout.JAVA_BYTE);
            JsonNode h = JSON.readTree(hb);
            String configJson = JSON.writeValueAsString(h.get("config"));
            ModelConfig cfg = ModelConfig.parse(configJson, file + " (config)");
            long start = dataStart(hl);
            Map<String, TensorData> map = new LinkedHashMap<>();
            String origin = file.getFileName().toString();
            for (JsonNode t : h.get("tensors")) {
                String name = t.get("name").asText();
                DType dt = DType.valueOf(t.get("dtype").asText());
                long[] shape = new long[t.get("shape").size()];
                for (int i = 0; i < shape.length; i++) shape[i] = t.get("shape").get(i).asLong();
                long off = t.get("offset").asLong(), bytes = t.get("bytes").asLong();
                if (start + off + bytes > size) {
                    throw new CheckpointException(file + ": tensor '" + name + "' ends at byte " + (start + off + bytes) + ", past the end (" + size + ")");
                }
                map.put(name, new TensorData(name, dt, shape, all.asSlice(start + off, bytes), origin));
            }
            return new RandomCheckpoint(file, arena, all, Collections.unmodifiableMap(map), cfg, configJson,
                    DType.valueOf(h.get("type").asText()));
        } catch (IOException | RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    public ModelConfig config() { return config; }

    public String configJson() { return configJson; }

    public DType type() { return type; }

    public Path file() { return file; }

    /** The whole mapping (for pre-faulting). */
    public MemorySegment segment() { return data; }

    @Override public Set<String> names() { return tensors.keySet(); }

    @Override public boolean has(String name) { return tensors.containsKey(name); }

    @Override
    public TensorData tensor(String name) {
        TensorData t = tensors.get(name);
        if (t == null) throw new CheckpointException(file + ": no tensor '" + name + "'");
        return t;
    }

    @Override public String description() { return file.toString(); }

    @Override public void close() { arena.close(); }
}
