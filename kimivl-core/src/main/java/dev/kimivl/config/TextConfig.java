package dev.kimivl.config;

import dev.kimivl.io.CheckpointException;

/**
 * The DeepSeek-V2/V3 language model configuration (Moonlight / Kimi-VL text_config, DeepSeek-V2-Lite).
 * Absent optional keys take the defaults of HF's DeepseekV3Config / DeepseekV2Config.
 *
 * @param qLoraRank          0 when q_lora_rank is null (a plain q_proj)
 * @param nRoutedExperts     0 for a dense model
 * @param v3Gate             DeepSeek-V3 gate semantics: routed_scaling_factor always applied (V2 applies it only without norm_topk_prob)
 */
public record TextConfig(
        String modelType, int vocabSize, int hiddenSize, int intermediateSize, int moeIntermediateSize,
        int numLayers, int numHeads, int nSharedExperts, int nRoutedExperts, double routedScalingFactor,
        int kvLoraRank, int qLoraRank, int qkRopeHeadDim, int vHeadDim, int qkNopeHeadDim,
        String topkMethod, int nGroup, int topkGroup, int numExpertsPerTok, int moeLayerFreq, int firstKDenseReplace,
        boolean normTopkProb, String scoringFunc, double rmsNormEps, double ropeTheta, RopeScaling ropeScaling,
        int maxPositionEmbeddings, int bosTokenId, int eosTokenId, boolean tieWordEmbeddings, boolean v3Gate) {

    /** YaRN parameters (DeepSeek's DeepseekV3YarnRotaryEmbedding). */
    public record RopeScaling(String type, double factor, int originalMaxPositionEmbeddings, double betaFast, double betaSlow,
                              double mscale, double mscaleAllDim) {}

    public int qHeadDim() { return qkNopeHeadDim + qkRopeHeadDim; }

    /** Layer l uses the MoE block (else the dense SwiGLU). */
    public boolean isMoeLayer(int l) {
        return nRoutedExperts > 0 && l >= firstKDenseReplace && l % moeLayerFreq == 0;
    }

    static TextConfig parse(Json j, boolean v3Default) {
        String modelType = j.text("model_type", v3Default ? "deepseek_v3" : "deepseek_v2");
        boolean v3 = !modelType.equals("deepseek_v2");
        RopeScaling rs = null;
        if (j.has("rope_scaling")) {
            Json r = j.child("rope_scaling");
            String type = r.text("type", r.text("rope_type", "yarn"));
            if (!type.equals("yarn")) throw new CheckpointException(j.where() + ": rope_scaling type '" + type + "' is not supported (only yarn)");
            rs = new RopeScaling(type, r.number("factor"), r.integer("original_max_position_embeddings", 4096),
                    r.number("beta_fast", 32), r.number("beta_slow", 1), r.number("mscale", 1), r.number("mscale_all_dim", 0));
        }
        int nRouted = j.integer("n_routed_experts", 0);
        TextConfig c = new TextConfig(
                modelType,
                j.positive("vocab_size", j.integer("vocab_size")),
                j.positive("hidden_size", j.integer("hidden_size")),
                j.positive("intermediate_size", j.integer("intermediate_size")),
                j.integer("moe_intermediate_size", 1407),
                j.positive("num_hidden_layers", j.integer("num_hidden_layers")),
                j.positive("num_attention_heads", j.integer("num_attention_heads")),
                j.integer("n_shared_experts", 0),
                nRouted,
                j.number("routed_scaling_factor", 1.0),
                j.positive("kv_lora_rank", j.integer("kv_lora_rank", 512)),
                j.integer("q_lora_rank", 0),
                j.positive("qk_rope_head_dim", j.integer("qk_rope_head_dim", 64)),
                j.positive("v_head_dim", j.integer("v_head_dim", 128)),
                j.positive("qk_nope_head_dim", j.integer("qk_nope_head_dim", 128)),
                j.text("topk_method", v3 ? "noaux_tc" : "greedy"),
                j.integer("n_group", 1),
                j.integer("topk_group", 1),
                j.integer("num_experts_per_tok", nRouted > 0 ? 1 : 0),
                j.integer("moe_layer_freq", 1),
                j.integer("first_k_dense_replace", 0),
                j.bool("norm_topk_prob", false),
                j.text("scoring_func", v3 ? "sigmoid" : "softmax"),
                j.number("rms_norm_eps", 1e-6),
                j.number("rope_theta", 10000.0),
                rs,
                j.integer("max_position_embeddings", 4096),
                j.integer("bos_token_id", -1),
                j.integer("eos_token_id", -1),
                j.bool("tie_word_embeddings", false),
                v3);
        c.validate(j.where());
        return c;
    }

    /** The checks every source of a config needs (config.json, GGUF metadata); errors name {@code where}. */
    public void validate(String where) {
        if (!scoringFunc.equals("sigmoid") && !scoringFunc.equals("softmax")) throw new CheckpointException(where + ": scoring_func '" + scoringFunc + "' is not supported");
        if (!topkMethod.equals("noaux_tc") && !topkMethod.equals("greedy") && !topkMethod.equals("group_limited_greedy")) {
            throw new CheckpointException(where + ": topk_method '" + topkMethod + "' is not supported");
        }
        if (nRoutedExperts > 0) {
            if (numExpertsPerTok <= 0 || numExpertsPerTok > nRoutedExperts) throw new CheckpointException(where + ": num_experts_per_tok " + numExpertsPerTok + " must be in 1.." + nRoutedExperts);
            if (nGroup <= 0 || nRoutedExperts % nGroup != 0) throw new CheckpointException(where + ": n_group " + nGroup + " must divide n_routed_experts " + nRoutedExperts);
            if (topkGroup <= 0 || topkGroup > nGroup) throw new CheckpointException(where + ": topk_group " + topkGroup + " must be in 1..n_group");
            if (moeLayerFreq <= 0) throw new CheckpointException(where + ": moe_layer_freq must be positive");
        }
        if (qkRopeHeadDim % 2 != 0) throw new CheckpointException(where + ": qk_rope_head_dim " + qkRopeHeadDim + " must be even");
    }
}
