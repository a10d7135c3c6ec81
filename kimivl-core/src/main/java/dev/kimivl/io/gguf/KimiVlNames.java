package dev.kimivl.io.gguf;

import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The one-to-one tensor renames between Hugging Face Kimi-VL / DeepSeek-V3 names and llama.cpp's GGUF names
 * (text names without the {@code language_model.} prefix). Tensors that llama.cpp transforms (kv_b_proj split into
 * attn_k_b/attn_v_b, stacked experts, wqkv split into attn_q/k/v, the flattened pos-emb) are handled by the
 * callers; the pos-emb rename is listed here because its data is only reshaped.
 */
public final class KimiVlNames {
    private KimiVlNames() {}

    /** {HF, GGUF} pairs; "#" stands for the layer/block number. */
    static final List<String[]> TEXT = List.of(
            new String[]{"model.embed_tokens.weight", "token_embd.weight"},
            new String[]{"lm_head.weight", "output.weight"},
            new String[]{"model.norm.weight", "output_norm.weight"},
            new String[]{"model.layers.#.input_layernorm.weight", "blk.#.attn_norm.weight"},
            new String[]{"model.layers.#.post_attention_layernorm.weight", "blk.#.ffn_norm.weight"},
            new String[]{"model.layers.#.self_attn.q_proj.weight", "blk.#.attn_q.weight"},
            new String[]{"model.layers.#.self_attn.q_a_proj.weight", "blk.#.attn_q_a.weight"},
            new String[]{"model.layers.#.self_attn.q_a_layernorm.weight", "blk.#.attn_q_a_norm.weight"},
            new String[]{"model.layers.#.self_attn.q_b_proj.weight", "blk.#.attn_q_b.weight"},
            new String[]{"model.layers.#.self_attn.kv_a_proj_with_mqa.weight", "blk.#.attn_kv_a_mqa.weight"},
            new String[]{"model.layers.#.self_attn.kv_a_layernorm.weight", "blk.#.attn_kv_a_norm.weight"},
            new String[]{"model.layers.#.self_attn.kv_b_proj.weight", "blk.#.attn_kv_b.weight"},
            new String[]{"model.layers.#.self_attn.o_proj.weight", "blk.#.attn_output.weight"},
            new String[]{"model.layers.#.mlp.gate_proj.weight", "blk.#.ffn_gate.weight"},
            new String[]{"model.layers.#.mlp.up_proj.weight", "blk.#.ffn_up.weight"},
            new String[]{"model.layers.#.mlp.down_proj.weight", "blk.#.ffn_down.weight"},
            new String[]{"model.layers.#.mlp.gate.weight", "blk.#.ffn_gate_inp.weight"},
            new String[]{"model.layers.#.mlp.gate.e_score_correction_bias", "blk.#.exp_probs_b.bias"},
            new String[]{"model.layers.#.mlp.shared_experts.gate_proj.weight", "blk.#.ffn_gate_shexp.weight"},
            new String[]{"model.layers.#.mlp.shared_experts.up_proj.weight", "blk.#.ffn_up_shexp.weight"},
            new String[]{"model.layers.#.mlp.shared_experts.down_proj.weight", "blk.#.ffn_down_shexp.weight"});

    static final List<String[]> VISION = List.of(
            new String[]{"vision_tower.patch_embed.proj.weight", "v.patch_embd.weight"},
            new String[]{"vision_tower.patch_embed.proj.bias", "v.patch_embd.bias"},
            new String[]{"vision_tower.patch_embed.pos_emb.weight", "v.position_embd.weight"},
            new String[]{"vision_tower.encoder.blocks.#.wo.weight", "v.blk.#.attn_out.weight"},
            new String[]{"vision_tower.encoder.blocks.#.wo.bias", "v.blk.#.attn_out.bias"},
            new String[]{"vision_tower.encoder.blocks.#.norm0.weight", "v.blk.#.ln1.weight"},
            new String[]{"vision_tower.encoder.blocks.#.norm0.bias", "v.blk.#.ln1.bias"},
            new String[]{"vision_tower.encoder.blocks.#.norm1.weight", "v.blk.#.ln2.weight"},
            new String[]{"vision_tower.encoder.blocks.#.norm1.bias", "v.blk.#.ln2.bias"},
            new String[]{"vision_tower.encoder.blocks.#.mlp.fc0.weight", "v.blk.#.ffn_up.weight"},
            new String[]{"vision_tower.encoder.blocks.#.mlp.fc0.bias", "v.blk.#.ffn_up.bias"},
            new String[]{"vision_tower.encoder.blocks.#.mlp.fc1.weight", "v.blk.#.ffn_down.weight"},
            new String[]{"vision_tower.encoder.blocks.#.mlp.fc1.bias", "v.blk.#.ffn_down.bias"},
            new String[]{"vision_tower.encoder.final_layernorm.weight", "v.post_ln.weight"},
            new String[]{"vision_tower.encoder.final_layernorm.bias", "v.post_ln.bias"},
            new String[]{"multi_modal_projector.pre_norm.weight", "mm.input_norm.weight"},
            new String[]{"multi_modal_projector.pre_norm.bias", "mm.input_norm.bias"},
            new String[]{"multi_modal_projector.linear_1.weight", "mm.1.weight"},
            new String[]{"multi_modal_projector.linear_1.bias", "mm.1.bias"},
            new String[]{"multi_modal_projector.linear_2.weight", "mm.2.weight"},
            new String[]{"multi_modal_projector.linear_2.bias", "mm.2.bias"});

    private static Pattern pattern(String template) {
        return Pattern.compile(Pattern.quote(template).replace("#", "\\E(\\d+)\\Q"));
    }

    private static final List<Pattern[]> TEXT_P = TEXT.stream().map(p -> new Pattern[]{pattern(p[0]), pattern(p[1])}).toList();
    private static final List<Pattern[]> VISION_P = VISION.stream().map(p -> new Pattern[]{pattern(p[0]), pattern(p[1])}).toList();

    private static String map(List<Pattern[]> table, List<String[]> names, int from, String name) {
        for (int i = 0; i < table.size(); i++) {
            Matcher m = table.get(i)[from].matcher(name);
            if (m.matches()) {
                String out = names.get(i)[1 - from];
                return m.groupCount() > 0 ? out.replace("#", m.group(1)) : out;
            }
        }
        return null;
    }

    /** HF text name (without language_model.) → GGUF name, or null when it is not a one-to-one rename. */
    public static String textToGguf(String hf) { return map(TEXT_P, TEXT, 0, hf); }

    public static String textFromGguf(String gguf) { return map(TEXT_P, TEXT, 1, gguf); }

    /** HF vision/projector name → GGUF mmproj name, or null. */
    public static String visionToGguf(String hf) { return map(VISION_P, VISION, 0, hf); }

    public static String visionFromGguf(String gguf) { return map(VISION_P, VISION, 1, gguf); }
}
