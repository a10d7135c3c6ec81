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
 * transforms, metadata keys and per-tensor types follow llama.cpp's converter (golden/gguf/README.md): 1-D tensors
 * and the router stay F32, rows that are not a whole number of 32-blocks fall back to F16, the patch embedding
 * stays F32. Files are written to a temporary name and renamed when complete.
 */
public final class Converter {
    /** Output types of {@code kimivl convert}. */
    public enum Type {
        F32(GgmlType.F32, 0), BF16(GgmlType.BF16, 32), Q8_0(GgmlType.Q8_0, 7), Q4_0(GgmlType.Q4_0, 2);
        final GgmlType ggml;
        final int fileType;
        Type(GgmlType g, int fileType) { this.ggml = g; this.fileType = fileType; }
    }

    private static final Pattern EXPERT = Pattern.compile("model\\.layers\\.(\\d+)\\.mlp\\.experts\\.(\\d+)\\.(gate|up|down)_proj\\.weight");
    private static final Pattern KVB = Pattern.compile("model\\.layers\\.(\\d+)\\.self_attn\\.kv_b_proj\\.weight");
    private static final Pattern WQKV = Pattern.compile("vision_tower\\.encoder\\.blocks\\.(\\d+)\\.wqkv\\.(weight|bias)");

    private Converter() {}

    /** The type llama.cpp's converter gives a tensor of this GGUF name and ne when the file type is {@code type}. */
    public static GgmlType tensorType(String ggufName, long[] ne, Type type) {
        if (type == Type.F32 || ne.length <= 1 || ggufName.endsWith("ffn_gate_inp.weight") || ggufName.equals("v.patch_embd.weight")) return GgmlType.F32;
        if (type.ggml.blockSize > 1 && ne[0] % type.ggml.blockSize != 0) return GgmlType.F16;
        return type.ggml;
    }

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

    private static void addPlain(GgufWriter w, String gguf, TensorData t, Type type) {
        long[] ne = ne(t.shape());
        GgmlType gt = tensorType(gguf, ne, type);
        int cols = (int) ne[0];
        int rows = (int) (t.numel() / cols);
        w.addTensor(gguf, gt, ne, dst -> writeRows(dst, gt, rows, cols, rowsOf(t, cols)));
    }

    private static void addFloats(GgufWriter w, String gguf, float[] v, long[] shape, Type type) {
        long[] ne = ne(shape);
        GgmlType gt = tensorType(gguf, ne, type);
        int cols = (int) ne[0];
        w.addTensor(gguf, gt, ne, dst -> writeRows(dst, gt, v.length / cols, cols, (from, to, d) -> System.arraycopy(v, from * cols, d, 0, (to - from) * cols)));
    }

    /**
     * Writes the language model of {@code src} (names with {@code cfg.textPrefix()}) as a deepseek2 GGUF.
     * {@code tokenizerDir}: the checkpoint directory with tiktoken.model and tokenizer_config.json, or null to
     * write no tokenizer.
     */
    public static void writeText(WeightSource src, ModelConfig cfg, Path tokenizerDir, Type type, String name, Path out, GgufWriter.Progress progress) {
        TextConfig c = cfg.text();
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
                    for (String proj : new String[]{"down", "gate", "up"}) addExperts(w, src, pre, m.group(1), proj, experts.get(m.group(1)), type);
                }
                continue;
            }
            m = KVB.matcher(n);
            if (m.matches()) {
                addKvB(w, src.tensor(pre + n), m.group(1), c, type);
                continue;
            }
            String g = KimiVlNames.textToGguf(n);
            if (g == null) throw new CheckpointException(src.description() + ": tensor '" + pre + n + "' has no GGUF name");
            addPlain(w, g, src.tensor(pre + n), type);
        }
        w.write(out, progress);
    }

    private static void addExperts(GgufWriter w, WeightSource src, String pre, String layer, String proj, int count, Type type) {
        TensorData[] t = new TensorData[count];
        for (int e = 0; e < count; e++) t[e] = src.tensor(pre + "model.layers." + layer + ".mlp.experts." + e + "." + proj + "_proj.weight");
        long rows = t[0].shape()[0], cols = t[0].shape()[1];
        for (TensorData x : t) x.requireShape(rows, cols);
        long[] ne = {cols, rows, count};
        String g = "blk." + layer + ".ffn_" + proj + "_exps.weight";
        GgmlType gt = tensorType(g, ne, type);
        long per = gt.bytesFor(rows * cols);
        w.addTensor(g, gt, ne, dst -> {
            for (int e = 0; e < count; e++) writeRows(dst.asSlice(e * per, per), gt, (int) rows, (int) cols, rowsOf(t[e], (int) cols));
        });
    }

    private static void addKvB(GgufWriter w, TensorData kvb, String layer, TextConfig c, Type type) {
        int h = c.numHeads(), nope = c.qkNopeHeadDim(), v = c.vHeadDim(), kvl = c.kvLoraRank();
        kvb.requireShape((long) h * (nope + v), kvl);
        float[] all = kvb.toFloats();
        float[] kb = new float[h * kvl * nope], vb = new float[h * v * kvl];
        for (int hh = 0; hh < h; hh++) {
            for (int i = 0; i < nope; i++) {
                for (int col = 0; col < kvl; col++) kb[(hh * kvl + col) * nope + i] = all[(hh * (nope + v) + i) * kvl + col];
            }
            System.arraycopy(all, (hh * (nope + v) + nope) * kvl, vb, hh * v * kvl, v * kvl);
        }
        addFloats(w, "blk." + layer + ".attn_k_b.weight", kb, new long[]{h, kvl, nope}, type);
        addFloats(w, "blk." + layer + ".attn_v_b.weight", vb, new long[]{h, v, kvl}, type);
    }

    /** Writes the vision tower and projector of {@code src} as a clip mmproj GGUF (projector kimivl). */
    public static void writeMmproj(WeightSource src, ModelConfig cfg, PreprocessorConfig pp, Type type, String name, Path out, GgufWriter.Progress progress) {
        VisionConfig v = cfg.vision();
        if (v == null) throw new CheckpointException(src.description() + ": the checkpoint has no vision tower");
        GgufWriter w = new GgufWriter();
        w.putString("general.architecture", "clip").putString("general.type", "mmproj");
        if (name != null) w.putString("general.name", name);
        w.putU32("general.file_type", type.fileType).putBool("clip.has_vision_encoder", true)
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
                    addPlain(w, "v.blk." + m.group(1) + ".attn_" + qkv[i] + "." + m.group(2), p, type);
                }
                continue;
            }
            String g = KimiVlNames.visionToGguf(n);
            if (g == null) throw new CheckpointException(src.description() + ": tensor '" + n + "' has no GGUF name");
            if (g.equals("v.position_embd.weight")) {
                long[] s = t.shape();
                t = new TensorData(n, t.dtype(), new long[]{s[0] * s[1], s[2]}, t.data(), t.origin());
            }
            addPlain(w, g, t, type);
        }
        w.write(out, progress);
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
