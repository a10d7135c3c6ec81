package dev.kimivl.model;

import dev.kimivl.config.ModelConfig;
import dev.kimivl.config.TextConfig;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** Routing variants of DeepSeek-V2/V3 and YaRN, on hand-computed values. */
class RoutingAndRopeTest {
    static TextConfig config(String extra) { return config("deepseek_v3", extra); }

    static TextConfig config(String type, String extra) {
        String json = """
                {"model_type": "%s", "vocab_size": 16, "hidden_size": 8, "intermediate_size": 16, "moe_intermediate_size": 4,
                 "num_hidden_layers": 2, "num_attention_heads": 2, "kv_lora_rank": 4, "qk_rope_head_dim": 4, "qk_nope_head_dim": 4,
                 "v_head_dim": 4, "n_routed_experts": 8, "num_experts_per_tok": 2, "rms_norm_eps": 1e-6 %s}""";
        return ModelConfig.parse(json.formatted(type, extra), "test config").text();
    }

    static MoeBlock gate(TextConfig c, float[] bias) { return new MoeBlock(c, null, bias, null, null); }

    @Test
    void v2SoftmaxGreedyScalesOnlyWithoutNormalisation() {
        TextConfig c = config("deepseek_v2", ", \"scoring_func\": \"softmax\", \"topk_method\": \"greedy\", \"routed_scaling_factor\": 3.0, \"norm_topk_prob\": false");
        float[] logits = {0, 1, 2, 3, 0, 0, 0, 0};
        MoeBlock.Routing r = gate(c, null).route(logits, 0);
        assertArrayEquals(new int[]{3, 2}, r.experts());
        double z = 5 + Math.exp(1) + Math.exp(2) + Math.exp(3);
        assertEquals(3 * Math.exp(3) / z, r.weights()[0], 1e-6);
        assertEquals(3 * Math.exp(2) / z, r.weights()[1], 1e-6);
    }

    @Test
    void v2WithNormalisationDoesNotScale() {
        TextConfig c = config("deepseek_v2", ", \"scoring_func\": \"softmax\", \"topk_method\": \"greedy\", \"routed_scaling_factor\": 3.0, \"norm_topk_prob\": true");
        MoeBlock.Routing r = gate(c, null).route(new float[]{0, 1, 2, 3, 0, 0, 0, 0}, 0);
        assertEquals(Math.exp(3) / (Math.exp(3) + Math.exp(2)), r.weights()[0], 1e-6);
    }

    @Test
    void v3NoauxTcSelectsByBiasedScoresButWeighsByUnbiased() {
        TextConfig c = config(", \"routed_scaling_factor\": 2.0, \"norm_topk_prob\": true");
        float[] logits = {2, 1, 0, 0, 0, 0, 0, -1};
        float[] bias = {0, 0, 0, 0, 0, 0, 0, 5};      // pushes expert 7 into the selection
        MoeBlock.Routing r = gate(c, bias).route(logits, 0);
        assertArrayEquals(new int[]{7, 0}, r.experts());
        double s7 = 1 / (1 + Math.exp(1)), s0 = 1 / (1 + Math.exp(-2));
        assertEquals(2 * s7 / (s7 + s0), r.weights()[0], 1e-6);
        assertEquals(2 * s0 / (s7 + s0), r.weights()[1], 1e-6);
    }

    @Test
    void groupLimitedSelectionKeepsTheBestGroups() {
        // 4 groups of 2; group score = sum of its top-2 biased scores; keep 1 group
        TextConfig c = config(", \"n_group\": 4, \"topk_group\": 1, \"norm_topk_prob\": true");
        float[] logits = {5, -5, 1, 1, 0, 0, 0, 0};   // group 0 sum σ(5)+σ(-5)=1.0 < group 1 sum 2σ(1)=1.46
        MoeBlock.Routing r = gate(c, new float[8]).route(logits, 0);
        java.util.Arrays.sort(r.experts());
        assertArrayEquals(new int[]{2, 3}, r.experts(), "expert 0 has the best score but its group loses");
    }

    @Test
    void yarnMscaleMatchesDeepseekV2Lite() {
        // DeepSeek-V2-Lite: factor 40, mscale = mscale_all_dim = 0.707 → cos/sin factor 1, softmax scale × m²
        assertEquals(1.0, RotaryEmbedding.yarnMscale(1.0, 0.707));
        double m = RotaryEmbedding.yarnMscale(40, 0.707);
        assertEquals(0.1 * 0.707 * Math.log(40) + 1, m, 1e-12);
        assertEquals(1.2608, m, 1e-4);
    }

    @Test
    void yarnBlendsFrequenciesBetweenTheCorrectionBounds() {
        TextConfig c = config(", \"rope_theta\": 10000, \"rope_scaling\": {\"type\": \"yarn\", \"factor\": 40, \"original_max_position_embeddings\": 4096, "
                + "\"beta_fast\": 32, \"beta_slow\": 1, \"mscale\": 0.707, \"mscale_all_dim\": 0.707}, \"qk_rope_head_dim\": 64");
        RotaryEmbedding yarn = new RotaryEmbedding(c);
        // position 1 rotates pair i by θ_i: read θ back from a unit vector
        float[] x = new float[64];
        for (int i = 0; i < 32; i++) x[2 * i] = 1;
        yarn.apply(x, 0, 1);
        double theta0 = Math.atan2(x[1], x[0]), theta31 = Math.atan2(x[63], x[62]);
        assertEquals(1.0, theta0, 1e-6, "the fastest frequency is kept");
        assertEquals(Math.pow(10000, -62.0 / 64) / 40, theta31, 1e-9, "the slowest is divided by the factor");
    }
}
