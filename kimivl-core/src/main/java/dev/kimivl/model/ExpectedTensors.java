package dev.kimivl.model;

import dev.kimivl.config.ModelConfig;
import dev.kimivl.config.TextConfig;
import dev.kimivl.config.VisionConfig;
import dev.kimivl.io.CheckpointException;
import dev.kimivl.io.TensorData;
import dev.kimivl.io.WeightSource;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Every tensor a checkpoint must hold for its config, with its PyTorch shape (spec §2.2), and the check of a
 * {@link WeightSource} against that list: missing, unexpected and mis-shaped tensors are errors that name them.
 */
public final class ExpectedTensors {
    private ExpectedTensors() {}

    /** Buffers the reference stores but recomputes (rotary inv_freq): allowed, never read. */
    static boolean ignorable(String name) { return name.endsWith(".rotary_emb.inv_freq"); }

    public static Map<String, long[]> of(ModelConfig cfg) {
        return of(cfg, Long.MAX_VALUE);
    }

    /** {@link #of}, or null as soon as the list would pass {@code limit} names (the list is not finished then). */
    private static Map<String, long[]> of(ModelConfig cfg, long limit) {
        Map<String, long[]> m = new LinkedHashMap<>() {
            @Override public long[] put(String name, long[] shape) {
                if (size() >= limit && !containsKey(name)) throw new TooMany();
                return super.put(name, shape);
            }
        };
        try {
            text(m, cfg.text(), cfg.textPrefix());
            if (cfg.vision() != null) vision(m, cfg.vision(), cfg.text().hiddenSize());
        } catch (TooMany e) {
            return null;
        }
        return m;
    }

    /** Stops {@link #of(ModelConfig, long)} at its limit; no stack trace, it is caught at once. */
    private static final class TooMany extends RuntimeException {
        TooMany() { super(null, null, false, false); }
    }

    private static void text(Map<String, long[]> m, TextConfig c, String prefix) {
        long D = c.hiddenSize(), V = c.vocabSize(), H = c.numHeads();
        String p = prefix + "model.";
        m.put(p + "embed_tokens.weight", new long[]{V, D});
        for (int l = 0; l < c.numLayers(); l++) {
            String L = p + "layers." + l + ".";
            m.put(L + "input_layernorm.weight", new long[]{D});
            m.put(L + "post_attention_layernorm.weight", new long[]{D});
            long qOut = H * c.qHeadDim();
            if (c.qLoraRank() > 0) {
                m.put(L + "self_attn.q_a_proj.weight", new long[]{c.qLoraRank(), D});
                m.put(L + "self_attn.q_a_layernorm.weight", new long[]{c.qLoraRank()});
                m.put(L + "self_attn.q_b_proj.weight", new long[]{qOut, c.qLoraRank()});
            } else {
                m.put(L + "self_attn.q_proj.weight", new long[]{qOut, D});
            }
            m.put(L + "self_attn.kv_a_proj_with_mqa.weight", new long[]{c.kvLoraRank() + c.qkRopeHeadDim(), D});
            m.put(L + "self_attn.kv_a_layernorm.weight", new long[]{c.kvLoraRank()});
            m.put(L + "self_attn.kv_b_proj.weight", new long[]{H * (c.qkNopeHeadDim() + c.vHeadDim()), c.kvLoraRank()});
            m.put(L + "self_attn.o_proj.weight", new long[]{D, H * c.vHeadDim()});
            if (c.isMoeLayer(l)) {
                long E = c.nRoutedExperts(), I = c.moeIntermediateSize();
                m.put(L + "mlp.gate.weight", new long[]{E, D});
                if (c.topkMethod().equals("noaux_tc")) m.put(L + "mlp.gate.e_score_correction_bias", new long[]{E});
                for (int e = 0; e < E; e++) mlp(m, L + "mlp.experts." + e + ".", D, I);
                if (c.nSharedExperts() > 0) mlp(m, L + "mlp.shared_experts.", D, I * c.nSharedExperts());
            } else {
                mlp(m, L + "mlp.", D, c.intermediateSize());
            }
        }
        m.put(p + "norm.weight", new long[]{D});
        if (!c.tieWordEmbeddings()) m.put(prefix + "lm_head.weight", new long[]{V, D});
    }

    private static void mlp(Map<String, long[]> m, String p, long D, long I) {
        m.put(p + "gate_proj.weight", new long[]{I, D});
        m.put(p + "up_proj.weight", new long[]{I, D});
        m.put(p + "down_proj.weight", new long[]{D, I});
    }

    private static void vision(Map<String, long[]> m, VisionConfig v, long textHidden) {
        long D = v.hiddenSize(), I = v.intermediateSize(), P = v.patchSize();
        String p = "vision_tower.";
        m.put(p + "patch_embed.proj.weight", new long[]{D, 3, P, P});
        m.put(p + "patch_embed.proj.bias", new long[]{D});
        m.put(p + "patch_embed.pos_emb.weight", new long[]{v.posEmbHeight(), v.posEmbWidth(), D});
        for (int b = 0; b < v.numLayers(); b++) {
            String B = p + "encoder.blocks." + b + ".";
            m.put(B + "norm0.weight", new long[]{D});
            m.put(B + "norm0.bias", new long[]{D});
            m.put(B + "wqkv.weight", new long[]{3 * D, D});
            m.put(B + "wqkv.bias", new long[]{3 * D});
            m.put(B + "wo.weight", new long[]{D, D});
            m.put(B + "wo.bias", new long[]{D});
            m.put(B + "norm1.weight", new long[]{D});
            m.put(B + "norm1.bias", new long[]{D});
            m.put(B + "mlp.fc0.weight", new long[]{I, D});
            m.put(B + "mlp.fc0.bias", new long[]{I});
            m.put(B + "mlp.fc1.weight", new long[]{D, I});
            m.put(B + "mlp.fc1.bias", new long[]{D});
        }
        m.put(p + "encoder.final_layernorm.weight", new long[]{D});
        m.put(p + "encoder.final_layernorm.bias", new long[]{D});
        long M = D * v.mergeH() * v.mergeW();
        String q = "multi_modal_projector.";
        m.put(q + "pre_norm.weight", new long[]{D});
        m.put(q + "pre_norm.bias", new long[]{D});
        m.put(q + "linear_1.weight", new long[]{M, M});
        m.put(q + "linear_1.bias", new long[]{M});
        m.put(q + "linear_2.weight", new long[]{textHidden, M});
        m.put(q + "linear_2.bias", new long[]{textHidden});
    }

    /**
     * How many tensors {@link #of} lists for {@code cfg}, or -1 when it is more than {@code limit}, found without
     * listing past the limit. A layer or expert count comes from the checkpoint's own config or metadata: the whole
     * list for a fuzzed {@code clip.vision.block_count} of 196,610 held 2.4 million names and took 18 s
     * (GgufFuzzTest's regress-vision-block-count); 2^31 would exhaust the heap. A list longer than the tensors a
     * checkpoint holds means missing tensors, said without building it.
     */
    static long count(ModelConfig cfg, long limit) {
        Map<String, long[]> m = of(cfg, limit);
        return m == null ? -1 : m.size();
    }

    /** Throws a {@link CheckpointException} naming every problem found (up to a few of each kind). */
    public static void validate(WeightSource w, ModelConfig cfg) {
        int held = w.names().size();
        Map<String, long[]> expected = of(cfg, held);
        if (expected == null) {
            TextConfig c = cfg.text();
            throw new CheckpointException(w.description() + ": checkpoint does not match its config: the config asks for more tensors than the "
                    + held + " the checkpoint holds (" + c.numLayers() + " text layers, " + c.nRoutedExperts() + " routed experts"
                    + (cfg.vision() != null ? ", " + cfg.vision().numLayers() + " vision blocks" : "") + ")");
        }
        List<String> problems = new ArrayList<>();
        List<String> missing = new ArrayList<>();
        for (var e : expected.entrySet()) {
            if (!w.has(e.getKey())) { missing.add(e.getKey()); continue; }
            TensorData t = w.tensor(e.getKey());
            if (!Arrays.equals(t.shape(), e.getValue())) {
                problems.add("tensor '" + e.getKey() + "' in " + t.origin() + " has shape " + t.shapeString() + ", config.json implies " + Arrays.toString(e.getValue()));
            } else if (!t.dtype().isFloat() && !t.dtype().isQuantized()) {
                problems.add("tensor '" + e.getKey() + "' in " + t.origin() + " has dtype " + t.dtype() + ", expected a float or quantized type");
            }
        }
        List<String> unexpected = new ArrayList<>();
        for (String n : w.names()) if (!expected.containsKey(n) && !ignorable(n)) unexpected.add(n);
        if (!missing.isEmpty()) problems.add(missing.size() + " missing tensor(s): " + head(missing));
        if (!unexpected.isEmpty()) problems.add(unexpected.size() + " unexpected tensor(s) (not in the architecture that config.json describes): " + head(unexpected));
        if (!problems.isEmpty()) {
            throw new CheckpointException(w.description() + ": checkpoint does not match its config: " + String.join("; ", problems.subList(0, Math.min(8, problems.size())))
                    + (problems.size() > 8 ? "; and " + (problems.size() - 8) + " more" : ""));
        }
    }

    private static String head(List<String> names) {
        return names.size() <= 5 ? names.toString() : names.subList(0, 5) + " and " + (names.size() - 5) + " more";
    }
}
