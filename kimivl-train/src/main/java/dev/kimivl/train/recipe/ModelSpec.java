package dev.kimivl.train.recipe;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.kimivl.config.ModelConfig;
import dev.kimivl.io.SafeTensorsWriter;
import dev.kimivl.model.ExpectedTensors;
import dev.kimivl.train.tokenizer.SpecialIds;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * The sizes of a small Kimi-VL: the published architecture (MoonViT with 2-D RoPE and the interpolated position table,
 * the 2×2 pixel-shuffle projector, MLA without q LoRA, DeepSeek-V3 MoE with shared experts and {@code noaux_tc}
 * sigmoid routing), scaled down. {@link #writeInitial} writes a randomly initialised checkpoint of it in the published
 * layout (nested {@code config.json}, {@code preprocessor_config.json}, {@code generation_config.json},
 * {@code model.safetensors}), which every stage of a recipe then trains and rewrites.
 *
 * @param hidden        language model width (hidden_size)
 * @param layers        decoder layers; the first {@code firstDense} are dense SwiGLU, the rest MoE
 * @param denseInter    intermediate size of the dense layers
 * @param moeInter      intermediate size of one routed expert (a shared expert has n_shared × that)
 * @param inTokenLimit  the image preprocessor's patch budget: larger images are downscaled to fit
 * @param initStd       N(0, initStd) for matrices (GPT-2 style, output projections / sqrt(2·layers)); 0: fan-in
 *                      scaling, 1/sqrt(fan-in), which is what a model trained from scratch here learns from (with
 *                      0.02 the nano model's vision side did not start to learn colours in 100 steps; with fan-in
 *                      scaling it did, as the oracle's tiny-random checkpoint does)
 * @param posEmbInit    how the vision position table starts: "normal" or "sincos"
 */
public record ModelSpec(int hidden, int layers, int heads, int kvLora, int nopeDim, int ropeDim, int vDim,
                        int denseInter, int moeInter, int experts, int topK, int sharedExperts, int firstDense,
                        double ropeTheta, int maxPositions,
                        int visionHidden, int visionLayers, int visionHeads, int visionInter, int posEmb,
                        int inTokenLimit, double initStd, String posEmbInit) {

    /** {@code posEmbInit}: "normal" (the default, N(0, 0.5)) or "sincos" (see {@link #sinCosTable}). */
    public ModelSpec {
        if (posEmbInit == null) posEmbInit = "normal";
        if (!posEmbInit.equals("normal") && !posEmbInit.equals("sincos"))
            throw new IllegalArgumentException("model.posEmbInit must be \"normal\" or \"sincos\", not \"" + posEmbInit + "\"");
    }

    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    /** The nested Kimi-VL config.json for this spec and a tokenizer's special ids. */
    public ObjectNode configJson(SpecialIds ids) {
        ObjectNode root = JSON.createObjectNode();
        root.putArray("architectures").add("KimiVLForConditionalGeneration");
        ObjectNode v = root.putObject("vision_config");
        v.put("model_type", "moonvit");
        v.put("patch_size", 14);
        v.put("num_attention_heads", visionHeads);
        v.put("num_hidden_layers", visionLayers);
        v.put("hidden_size", visionHidden);
        v.put("intermediate_size", visionInter);
        v.put("init_pos_emb_height", posEmb);
        v.put("init_pos_emb_width", posEmb);
        ArrayNode merge = v.putArray("merge_kernel_size");
        merge.add(2).add(2);
        v.put("torch_dtype", "float32");
        ObjectNode t = root.putObject("text_config");
        t.put("vocab_size", ids.vocabSize());
        t.put("max_position_embeddings", maxPositions);
        t.put("hidden_size", hidden);
        t.put("intermediate_size", denseInter);
        t.put("moe_intermediate_size", moeInter);
        t.put("num_hidden_layers", layers);
        t.put("num_attention_heads", heads);
        t.put("n_shared_experts", sharedExperts);
        t.put("n_routed_experts", experts);
        t.put("ep_size", 1);
        t.put("routed_scaling_factor", 2.446);
        t.put("kv_lora_rank", kvLora);
        t.putNull("q_lora_rank");
        t.put("qk_rope_head_dim", ropeDim);
        t.put("v_head_dim", vDim);
        t.put("qk_nope_head_dim", nopeDim);
        t.put("topk_method", "noaux_tc");
        t.put("n_group", 1);
        t.put("topk_group", 1);
        t.put("num_experts_per_tok", topK);
        t.put("moe_layer_freq", 1);
        t.put("first_k_dense_replace", firstDense);
        t.put("norm_topk_prob", true);
        t.put("scoring_func", "sigmoid");
        t.put("aux_loss_alpha", 0.001);
        t.put("seq_aux", true);
        t.put("num_key_value_heads", heads);
        t.put("hidden_act", "silu");
        t.put("initializer_range", initStd);
        t.put("rms_norm_eps", 1e-5);
        t.put("rope_theta", ropeTheta);
        t.putNull("rope_scaling");
        t.put("attention_bias", false);
        t.put("bos_token_id", ids.bos());
        t.put("pad_token_id", ids.pad());
        t.put("eos_token_id", ids.eos());
        t.put("torch_dtype", "float32");
        t.put("tie_word_embeddings", false);
        root.put("ignore_index", -100);
        root.put("media_placeholder_token_id", ids.mediaPlaceholder());
        root.put("torch_dtype", "float32");
        root.put("tie_word_embeddings", false);
        root.put("vocab_size", ids.vocabSize());
        root.put("model_type", "kimi_vl");
        return root;
    }

    /** preprocessor_config.json: Kimi-VL's (patch 14, mean = std = 0.5, padding to the merge) with this spec's patch budget. */
    public ObjectNode preprocessorJson() {
        ObjectNode p = JSON.createObjectNode();
        p.putArray("image_mean").add(0.5).add(0.5).add(0.5);
        p.put("image_processor_type", "KimiVLImageProcessor");
        p.putArray("image_std").add(0.5).add(0.5).add(0.5);
        p.put("in_token_limit", inTokenLimit);
        p.putArray("merge_kernel_size").add(2).add(2);
        p.put("num_pooled_tokens", inTokenLimit / 4);
        p.put("pad_input", true);
        p.put("patch_size", 14);
        p.put("processor_class", "KimiVLProcessor");
        return p;
    }

    /**
     * Writes config, preprocessor config and randomly initialised weights into {@code dir} (the tokenizer files are
     * expected there already). Init as DeepSeek-V3 / MoonViT train from: N(0, initStd) for matrices and embeddings,
     * output projections (o_proj, down_proj, wo, fc1, linear_2) scaled by 1/sqrt(2·layers) as GPT-2 does so the
     * residual stream does not grow with depth, norm weights 1, biases 0, the routing bias 0.
     */
    public void writeInitial(Path dir, SpecialIds ids, long seed) throws IOException {
        Files.createDirectories(dir);
        Files.writeString(dir.resolve("config.json"), JSON.writeValueAsString(configJson(ids)));
        Files.writeString(dir.resolve("preprocessor_config.json"), JSON.writeValueAsString(preprocessorJson()));
        ModelConfig cfg = ModelConfig.load(dir);
        SafeTensorsWriter w = new SafeTensorsWriter();
        SplittableRandom rnd = new SplittableRandom(seed);
        for (Map.Entry<String, long[]> e : ExpectedTensors.of(cfg).entrySet()) {
            String n = e.getKey();
            long[] shape = e.getValue();
            int size = 1;
            for (long d : shape) size = Math.multiplyExact(size, (int) d);
            float[] v = new float[size];
            if (shape.length == 1) {
                if (n.endsWith("weight")) java.util.Arrays.fill(v, 1f);          // RMSNorm / LayerNorm scales
            } else if (n.endsWith("pos_emb.weight") && posEmbInit.equals("sincos")) {
                v = sinCosTable((int) shape[0], (int) shape[1], (int) shape[2]);
            } else {
                double std;
                if (initStd > 0) {
                    boolean out = n.contains("o_proj") || n.contains("down_proj") || n.contains(".wo.") || n.contains("fc1") || n.contains("linear_2");
                    int depth = n.startsWith("vision_tower") ? visionLayers : layers;
                    std = out ? initStd / Math.sqrt(2.0 * depth) : initStd;
                } else {
                    // fan-in scaling (PyTorch's default for Linear, as the golden oracle's random checkpoints): every
                    // product keeps unit scale at any width; token embeddings N(0, 1), the position table N(0, 0.5)
                    long fanIn = n.endsWith("pos_emb.weight") ? 4 : n.endsWith("embed_tokens.weight") ? 1 : shape[shape.length - 1];
                    std = 1.0 / Math.sqrt(fanIn);
                }
                for (int i = 0; i < size; i++) v[i] = (float) (dev.kimivl.train.Init.standardNormal(rnd) * std);
            }
            w.f32(n, v, shape);
        }
        Path tmp = dir.resolve("model.safetensors.tmp");
        w.write(tmp);
        Files.move(tmp, dir.resolve("model.safetensors"), java.nio.file.StandardCopyOption.REPLACE_EXISTING,
                java.nio.file.StandardCopyOption.ATOMIC_MOVE);
    }


    /**
     * A 2-D sine-cosine position table [h, w, dim] (MAE's fixed embedding, here only the starting point of the learnt
     * table): the first half of the channels encodes the column, the second the row, each as sin and cos pairs at
     * dim/4 frequencies from 1 down to 1/100 per cell. A random N(0, 0.5) table carries place only weakly (a linear
     * probe of a merged token's column from its features: R² 0.37 before training), and the position and size
     * questions need tokens that say where they are.
     */
    static float[] sinCosTable(int h, int w, int dim) {
        int quarter = dim / 4;
        float[] t = new float[h * w * dim];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int k = 0; k < quarter; k++) {
                    double omega = Math.pow(100.0, -(double) k / Math.max(1, quarter - 1));
                    int base = (y * w + x) * dim;
                    t[base + 2 * k] = (float) Math.sin(x * omega);
                    t[base + 2 * k + 1] = (float) Math.cos(x * omega);
                    t[base + 2 * quarter + 2 * k] = (float) Math.sin(y * omega);
                    t[base + 2 * quarter + 2 * k + 1] = (float) Math.cos(y * omega);
                }
        return t;
    }
}
