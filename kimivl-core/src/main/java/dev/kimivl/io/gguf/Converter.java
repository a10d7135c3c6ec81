package dev.kimivl.io.gguf;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.kimivl.config.ModelConfig;
import dev.kimivl.config.PreprocessorConfig;
import dev.kimivl.config.TextConfig;
import dev.kimivl.config.VisionConfig;
import dev.kimivl.io.CheckpointException;
import dev.kimivl.io.TensorData;
import dev.kimivl.io.WeightSource;
import dev.kimivl.tensor.DType;
import dev.kimivl.tensor.Parallel;
import dev.kimivl.tensor.Quant;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Writes a Hugging Face Kimi-VL checkpoint as GGUF in llama.cpp's layout: the language model as a {@code deepseek2}
 * text file, the vision tower + projector as a {@code clip} mmproj file (projector {@code kimivl}). Tensor names,
 * transforms and metadata keys follow llama.cpp's converter (golden/gguf/README.md); the type of every tensor follows
 * {@link TensorTypes}: convert_hf_to_gguf.py's rules for f32/bf16/q8_0 (1-D tensors, norms, routers, position
 * embeddings and biases F32, the patch embedding F32, rows that are not a whole number of blocks F16), and
 * llama-quantize's for q4_0/q4_k_m text files (made from the bf16 conversion; their mmproj is written as q8_0, as
 * llama-quantize does not quantize mmproj files). Files are written to a temporary name and renamed when complete.
 */
public final class Converter {
    /** Output types of {@code kimivl convert}. */
    public enum Type {
        F32(GgmlType.F32, null, 0), BF16(GgmlType.BF16, null, 32), Q8_0(GgmlType.Q8_0, null, 7),
        /** llama-quantize Q4_0 of the bf16 file: Q4_0, output.weight Q6_K. */
        Q4_0(null, TensorTypes.Ftype.Q4_0, 2),
        /** llama-quantize Q4_K_M of the bf16 file: Q4_K with Q6_K / Q5_0 / Q8_0 where its rules say. */
        Q4_K_M(null, TensorTypes.Ftype.Q4_K_M, 15);
        /** convert_hf_to_gguf's --outtype, or null for a llama-quantize file type. */
        final GgmlType converted;
        final TensorTypes.Ftype quantized;
        final int fileType;
        Type(GgmlType converted, TensorTypes.Ftype quantized, int fileType) {
            this.converted = converted;
            this.quantized = quantized;
            this.fileType = fileType;
        }

        /** The type the mmproj is written in: the same, or q8_0 for the llama-quantize types. */
        public Type mmproj() { return quantized != null ? Q8_0 : this; }

        /** The --type spelling: f32, bf16, q8_0, q4_0, q4_k_m. */
        public String label() { return name().toLowerCase(java.util.Locale.ROOT); }

        /** --type value to type (case-insensitive), or IllegalArgumentException listing the choices. */
        public static Type parse(String s) {
            for (Type t : values()) if (t.label().equalsIgnoreCase(s)) return t;
            throw new IllegalArgumentException("--type must be q4_k_m, q4_0, q8_0, bf16 or f32, not '" + s + "'");
        }
    }

    private static final Pattern EXPERT = Pattern.compile("model\\.layers\\.(\\d+)\\.mlp\\.experts\\.(\\d+)\\.(gate|up|down)_proj\\.weight");
    private static final Pattern KVB = Pattern.compile("model\\.layers\\.(\\d+)\\.self_attn\\.kv_b_proj\\.weight");
    private static final Pattern WQKV = Pattern.compile("vision_tower\\.encoder\\.blocks\\.(\\d+)\\.wqkv\\.(weight|bias)");

    private Converter() {}

    /**
     * The type of a text-model tensor of this GGUF name and ne in a {@code type} file of a model with {@code nLayers}
     * layers (see {@link TensorTypes}).
     */
    public static GgmlType textTensorType(String ggufName, long[] ne, Type type, int nLayers) {
        if (type.quantized == null) return TensorTypes.converted(ggufName, ne, type.converted);
        return TensorTypes.quantized(ggufName, ne, type.quantized, nLayers, TensorTypes.converted(ggufName, ne, GgmlType.BF16));
    }

    /** The type of an mmproj tensor in the mmproj written next to a {@code type} text file. */
    public static GgmlType mmprojTensorType(String ggufName, long[] ne, Type type) {
        return TensorTypes.converted(ggufName, ne, type.mmproj().converted);
    }

    /** A tensor's type by GGUF name and ne, for one file. */
    private interface TypeRule { GgmlType of(String ggufName, long[] ne); }

    private static long[] ne(long... shape) {
        long[] n = new long[shape.length];
        for (int i = 0; i < shape.length; i++) n[i] = shape[shape.length - 1 - i];
        return n;
    }

    /** Writes rows·cols floats produced row by row by {@code rows} into dst as {@code type}, in parallel. */
    private interface RowSource { void rows(int from, int to, float[] dst); }

    private static void writeRows(MemorySegment dst, GgmlType type, int nRows, int cols, RowSource src) {
        long rowBytes = type.bytesFor(cols);
        int chunk = Math.max(1, (1 << 20) / Math.max(1, cols));
        int nChunks = (nRows + chunk - 1) / chunk;
        Parallel.forRange(nChunks, 1, (c0, c1) -> {
            float[] buf = new float[Math.min(chunk, nRows) * cols];
            for (int c = c0; c < c1; c++) {
                int r0 = c * chunk, r1 = Math.min(nRows, r0 + chunk);
                src.rows(r0, r1, buf);
                Quant.quantizeRows(buf, 0, r1 - r0, cols, type.dtype, dst, r0 * rowBytes);
            }
        });
    }

    /** Source rows of a tensor viewed as [rows, cols]. */
    private static RowSource rowsOf(TensorData t, int cols) {
        DType dt = t.dtype();
        long rowBytes = dt.bytesFor(cols);
        return (from, to, dst) -> {
            for (int r = from; r < to; r++) Quant.dequantize(dt, t.data(), r * rowBytes, dst, (r - from) * cols, cols);
        };
    }

    private static void addPlain(GgufWriter w, String gguf, TensorData t, TypeRule type) {
        long[] ne = ne(t.shape());
        GgmlType gt = type.of(gguf, ne);
        int cols = (int) ne[0];
        int rows = (int) (t.numel() / cols);
        w.addTensor(gguf, gt, ne, dst -> writeRows(dst, gt, rows, cols, rowsOf(t, cols)));
    }

    /** A tensor computed from the checkpoint when it is written (kv_b's halves): v() is called then, not now. */
    private static void addFloats(GgufWriter w, String gguf, java.util.function.Supplier<float[]> v, long[] shape, TypeRule type) {
        long[] ne = ne(shape);
        GgmlType gt = type.of(gguf, ne);
        int cols = (int) ne[0];
        long n = 1;
        for (long d : shape) n *= d;
        int rows = (int) (n / cols);
        w.addTensor(gguf, gt, ne, dst -> {
            float[] f = v.get();
            writeRows(dst, gt, rows, cols, (from, to, d) -> System.arraycopy(f, from * cols, d, 0, (to - from) * cols));
        });
    }

    /**
     * Writes the language model of {@code src} (names with {@code cfg.textPrefix()}) as a deepseek2 GGUF.
     * {@code tokenizerDir}: the checkpoint directory with tiktoken.model and tokenizer_config.json, or null to
     * write no tokenizer.
     */
    public static void writeText(WeightSource src, ModelConfig cfg, Path tokenizerDir, Type type, String name, Path out, GgufWriter.Progress progress) {
        textWriter(src, cfg, tokenizerDir, type, name).write(out, progress);
    }

    /**
     * The text GGUF of {@link #writeText}, ready to write: metadata and tensor list (names, types, dims) are set, the
     * tensors' data is read from {@code src} and converted only when it is written.
     */
    public static GgufWriter textWriter(WeightSource src, ModelConfig cfg, Path tokenizerDir, Type type, String name) {
        TextConfig c = cfg.text();
        TypeRule rule = (g, ne) -> textTensorType(g, ne, type, c.numLayers());
        String pre = cfg.textPrefix();
        GgufWriter w = new GgufWriter();
        w.putString("general.architecture", "deepseek2").putString("general.type", "model");
        if (name != null) w.putString("general.name", name);
        String a = "deepseek2.";
        w.putU32(a + "block_count", c.numLayers()).putU32(a + "context_length", c.maxPositionEmbeddings())
                .putU32(a + "embedding_length", c.hiddenSize()).putU32(a + "feed_forward_length", c.intermediateSize())
                .putU32(a + "attention.head_count", c.numHeads()).putU32(a + "attention.head_count_kv", 1)
                .putF32(a + "rope.freq_base", c.ropeTheta()).putF32(a + "attention.layer_norm_rms_epsilon", c.rmsNormEps())
                .putU32(a + "expert_count", c.nRoutedExperts()).putU32(a + "expert_used_count", c.numExpertsPerTok())
                .putU32(a + "expert_group_count", c.nGroup()).putU32(a + "expert_group_used_count", c.topkGroup())
                .putU32(a + "expert_gating_func", c.scoringFunc().equals("sigmoid") ? 2 : 1)
                .putU32("general.file_type", type.fileType)
                .putU32(a + "leading_dense_block_count", c.firstKDenseReplace()).putU32(a + "vocab_size", c.vocabSize());
        // llama.cpp's deepseek2 loader only treats q_lora_rank as optional for 26/27-layer models
        if (c.qLoraRank() > 0 || (c.numLayers() != 26 && c.numLayers() != 27)) w.putU32(a + "attention.q_lora_rank", c.qLoraRank());
        w.putU32(a + "attention.kv_lora_rank", c.kvLoraRank())
                .putU32(a + "attention.key_length", c.kvLoraRank() + c.qkRopeHeadDim()).putU32(a + "attention.value_length", c.kvLoraRank())
                .putU32(a + "attention.key_length_mla", c.qHeadDim()).putU32(a + "attention.value_length_mla", c.vHeadDim())
                .putU32(a + "expert_feed_forward_length", c.moeIntermediateSize()).putU32(a + "expert_shared_count", c.nSharedExperts())
                .putF32(a + "expert_weights_scale", c.routedScalingFactor()).putBool(a + "expert_weights_norm", c.normTopkProb())
                .putU32(a + "rope.dimension_count", c.qkRopeHeadDim());
        if (c.ropeScaling() != null) {
            TextConfig.RopeScaling rs = c.ropeScaling();
            w.putString(a + "rope.scaling.type", "yarn").putF32(a + "rope.scaling.factor", rs.factor())
                    .putU32(a + "rope.scaling.original_context_length", rs.originalMaxPositionEmbeddings())
                    .putF32(a + "rope.scaling.yarn_log_multiplier", 0.1 * rs.mscaleAllDim());
        }
        w.putU32("general.quantization_version", 2);
        if (tokenizerDir == null || !tokenizer(w, tokenizerDir, c)) {
            // no vocabulary: still record the special ids, which the model config needs
            if (c.bosTokenId() >= 0) w.putU32("tokenizer.ggml.bos_token_id", c.bosTokenId());
            if (c.eosTokenId() >= 0) w.putU32("tokenizer.ggml.eos_token_id", c.eosTokenId());
        }

        // tensors: checkpoint names in sorted order; stacked experts at the layer's last expert tensor; k_b then v_b
        TreeSet<String> names = new TreeSet<>();
        for (String n : src.names()) if (n.startsWith(pre) && !n.endsWith("rotary_emb.inv_freq")) names.add(n.substring(pre.length()));
        Map<String, String> lastExpert = new HashMap<>();
        Map<String, Integer> experts = new TreeMap<>();
        for (String n : names) {
            Matcher m = EXPERT.matcher(n);
            if (m.matches()) {
                lastExpert.put(m.group(1), n);
                experts.merge(m.group(1), Integer.parseInt(m.group(2)) + 1, Math::max);
            }
        }
        for (String n : names) {
            Matcher m = EXPERT.matcher(n);
            if (m.matches()) {
                if (n.equals(lastExpert.get(m.group(1)))) {
                    for (String proj : new String[]{"down", "gate", "up"}) addExperts(w, src, pre, m.group(1), proj, experts.get(m.group(1)), rule);
                }
                continue;
            }
            m = KVB.matcher(n);
            if (m.matches()) {
                addKvB(w, src.tensor(pre + n), m.group(1), c, rule);
                continue;
            }
            String g = KimiVlNames.textToGguf(n);
            if (g == null) throw new CheckpointException(src.description() + ": tensor '" + pre + n + "' has no GGUF name");
            addPlain(w, g, src.tensor(pre + n), rule);
        }
        return w;
    }

    private static void addExperts(GgufWriter w, WeightSource src, String pre, String layer, String proj, int count, TypeRule type) {
        TensorData[] t = new TensorData[count];
        for (int e = 0; e < count; e++) t[e] = src.tensor(pre + "model.layers." + layer + ".mlp.experts." + e + "." + proj + "_proj.weight");
        long rows = t[0].shape()[0], cols = t[0].shape()[1];
        for (TensorData x : t) x.requireShape(rows, cols);
        long[] ne = {cols, rows, count};
        String g = "blk." + layer + ".ffn_" + proj + "_exps.weight";
        GgmlType gt = type.of(g, ne);
        long per = gt.bytesFor(rows * cols);
        w.addTensor(g, gt, ne, dst -> {
            for (int e = 0; e < count; e++) writeRows(dst.asSlice(e * per, per), gt, (int) rows, (int) cols, rowsOf(t[e], (int) cols));
        });
    }

    private static void addKvB(GgufWriter w, TensorData kvb, String layer, TextConfig c, TypeRule type) {
        int h = c.numHeads(), nope = c.qkNopeHeadDim(), v = c.vHeadDim(), kvl = c.kvLoraRank();
        kvb.requireShape((long) h * (nope + v), kvl);
        // read when written (each half decodes kv_b again: 16 MB in BF16 for Kimi-VL-A3B, not worth holding)
        addFloats(w, "blk." + layer + ".attn_k_b.weight", () -> splitKvB(kvb, c)[0], new long[]{h, kvl, nope}, type);
        addFloats(w, "blk." + layer + ".attn_v_b.weight", () -> splitKvB(kvb, c)[1], new long[]{h, v, kvl}, type);
    }

    /** kv_b [h·(nope + v), kvl] as llama.cpp's {attn_k_b [h, kvl, nope] (W_UKᵀ per head), attn_v_b [h, v, kvl]}. */
    private static float[][] splitKvB(TensorData kvb, TextConfig c) {
        int h = c.numHeads(), nope = c.qkNopeHeadDim(), v = c.vHeadDim(), kvl = c.kvLoraRank();
        float[] all = kvb.toFloats();
        float[] kb = new float[h * kvl * nope], vb = new float[h * v * kvl];
        for (int hh = 0; hh < h; hh++) {
            for (int i = 0; i < nope; i++) {
                for (int col = 0; col < kvl; col++) kb[(hh * kvl + col) * nope + i] = all[(hh * (nope + v) + i) * kvl + col];
            }
            System.arraycopy(all, (hh * (nope + v) + nope) * kvl, vb, hh * v * kvl, v * kvl);
        }
        return new float[][]{kb, vb};
    }

    /** Writes the vision tower and projector of {@code src} as a clip mmproj GGUF (projector kimivl). */
    public static void writeMmproj(WeightSource src, ModelConfig cfg, PreprocessorConfig pp, Type type, String name, Path out, GgufWriter.Progress progress) {
        mmprojWriter(src, cfg, pp, type, name).write(out, progress);
    }

    /** The mmproj GGUF of {@link #writeMmproj}, ready to write (as {@link #textWriter}). */
    public static GgufWriter mmprojWriter(WeightSource src, ModelConfig cfg, PreprocessorConfig pp, Type type, String name) {
        VisionConfig v = cfg.vision();
        TypeRule rule = (g, ne) -> mmprojTensorType(g, ne, type);
        if (v == null) throw new CheckpointException(src.description() + ": the checkpoint has no vision tower");
        GgufWriter w = new GgufWriter();
        w.putString("general.architecture", "clip").putString("general.type", "mmproj");
        if (name != null) w.putString("general.name", name);
        w.putU32("general.file_type", type.mmproj().fileType).putBool("clip.has_vision_encoder", true)
                .putU32("clip.vision.projection_dim", cfg.text() != null ? cfg.text().hiddenSize() : src.tensor("multi_modal_projector.linear_2.weight").shape()[0])
                .putU32("clip.vision.image_size", 64L * v.patchSize()).putU32("clip.vision.patch_size", v.patchSize())
                .putU32("clip.vision.embedding_length", v.hiddenSize()).putU32("clip.vision.feed_forward_length", v.intermediateSize())
                .putU32("clip.vision.block_count", v.numLayers()).putU32("clip.vision.attention.head_count", v.numHeads())
                .putF32s("clip.vision.image_mean", pp != null ? pp.imageMean() : new double[]{0.5, 0.5, 0.5})
                .putF32s("clip.vision.image_std", pp != null ? pp.imageStd() : new double[]{0.5, 0.5, 0.5})
                .putString("clip.projector_type", "kimivl").putBool("clip.use_gelu", true)
                .putU32("clip.vision.projector.scale_factor", v.mergeH())
                .putF32("clip.vision.attention.layer_norm_epsilon", VisionConfig.LAYER_NORM_EPS)
                .putU32("general.quantization_version", 2);
        TreeSet<String> names = new TreeSet<>();
        for (String n : src.names()) if (n.startsWith("vision_tower.") || n.startsWith("multi_modal_projector.")) names.add(n);
        for (String n : names) {
            TensorData t = src.tensor(n);
            Matcher m = WQKV.matcher(n);
            if (m.matches()) {
                long rows = t.shape()[0];
                if (rows % 3 != 0) throw new CheckpointException(src.description() + ": " + n + " " + t.shapeString() + " does not split in three");
                long part = rows / 3;
                long cols = t.shape().length == 2 ? t.shape()[1] : 1;
                long partBytes = t.dtype().bytesFor(part * cols);
                String[] qkv = {"q", "k", "v"};
                for (int i = 0; i < 3; i++) {
                    long[] shape = t.shape().length == 2 ? new long[]{part, cols} : new long[]{part};
                    TensorData p = new TensorData(n + "[" + qkv[i] + "]", t.dtype(), shape, t.data().asSlice(i * partBytes, partBytes), t.origin());
                    addPlain(w, "v.blk." + m.group(1) + ".attn_" + qkv[i] + "." + m.group(2), p, rule);
                }
                continue;
            }
            String g = KimiVlNames.visionToGguf(n);
            if (g == null) throw new CheckpointException(src.description() + ": tensor '" + n + "' has no GGUF name");
            if (g.equals("v.position_embd.weight")) {
                long[] s = t.shape();
                t = new TensorData(n, t.dtype(), new long[]{s[0] * s[1], s[2]}, t.data(), t.origin());
            }
            addPlain(w, g, t, rule);
        }
        return w;
    }

    // ---- tokenizer (tiktoken.model + tokenizer_config.json, as llama.cpp's converter writes Kimi's vocabulary)

    /** Writes the tokenizer section when dir has a tiktoken.model; false when it has none. */
    private static boolean tokenizer(GgufWriter w, Path dir, TextConfig c) {
        Path model = dir.resolve("tiktoken.model");
        if (!Files.isRegularFile(model)) return false;
        int vocab = c.vocabSize();
        String[] tokens = new String[vocab];
        long[] types = new long[vocab];
        String[] byteChars = gpt2ByteChars();
        try {
            for (String line : Files.readAllLines(model, StandardCharsets.UTF_8)) {
                if (line.isBlank()) continue;
                String[] parts = line.trim().split("\\s+");
                int rank = Integer.parseInt(parts[1]);
                if (rank >= vocab) continue;
                byte[] b = Base64.getDecoder().decode(parts[0]);
                StringBuilder sb = new StringBuilder();
                for (byte x : b) sb.append(byteChars[x & 0xFF]);
                tokens[rank] = sb.toString();
                types[rank] = 1;
            }
            Path tc = dir.resolve("tokenizer_config.json");
            if (Files.isRegularFile(tc)) {
                JsonNode added = new ObjectMapper().readTree(tc.toFile()).path("added_tokens_decoder");
                for (var it = added.properties().iterator(); it.hasNext(); ) {
                    var e = it.next();
                    int id = Integer.parseInt(e.getKey());
                    if (id < 0 || id >= vocab) continue;
                    tokens[id] = e.getValue().path("content").asText();
                    types[id] = e.getValue().path("special").asBoolean(true) ? 3 : 4;
                }
            }
        } catch (IOException | RuntimeException e) {
            throw new CheckpointException(dir + ": cannot read the tokenizer (tiktoken.model / tokenizer_config.json): " + e.getMessage(), e);
        }
        for (int i = 0; i < vocab; i++) if (tokens[i] == null) { tokens[i] = "[PAD" + i + "]"; types[i] = 5; }
        w.putString("tokenizer.ggml.model", "gpt2").putString("tokenizer.ggml.pre", "kimi-k2")
                .putStrings("tokenizer.ggml.tokens", tokens).putI32s("tokenizer.ggml.token_type", types);
        if (c.bosTokenId() >= 0) w.putU32("tokenizer.ggml.bos_token_id", c.bosTokenId());
        if (c.eosTokenId() >= 0) w.putU32("tokenizer.ggml.eos_token_id", c.eosTokenId());
        w.putBool("tokenizer.ggml.add_bos_token", false);
        return true;
    }

    /** GPT-2's bytes_to_unicode table. */
    static String[] gpt2ByteChars() {
        List<Integer> bs = new ArrayList<>();
        for (int b = '!'; b <= '~'; b++) bs.add(b);
        for (int b = 0xA1; b <= 0xAC; b++) bs.add(b);
        for (int b = 0xAE; b <= 0xFF; b++) bs.add(b);
        String[] out = new String[256];
        for (int b : bs) out[b] = String.valueOf((char) b);
        int n = 0;
        for (int b = 0; b < 256; b++) if (out[b] == null) out[b] = String.valueOf((char) (256 + n++));
        return out;
    }
}
