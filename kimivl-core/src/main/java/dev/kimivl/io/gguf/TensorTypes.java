package dev.kimivl.io.gguf;

import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The ggml type llama.cpp's tools give each tensor of a GGUF file, by its GGUF name and {@code ne} (ggml order, fastest
 * dimension first): what {@code kimivl convert} writes and what {@code kimivl bench} writes its random models in.
 * Two tools, two rule sets (read from llama.cpp's {@code convert_hf_to_gguf.py} and {@code src/llama-quant.cpp}; the
 * rules, not the code, are followed here):
 *
 * <ul>
 * <li>{@link #converted}: {@code convert_hf_to_gguf.py --outtype f32|f16|bf16|q8_0} ({@code ModelBase.prepare_tensors}
 *     and {@code MmprojModel.tensor_force_quant}).</li>
 * <li>{@link #quantized}: {@code llama-quantize} of such a BF16/F16 file to {@link Ftype#Q4_0} or {@link Ftype#Q4_K_M}
 *     (no imatrix, no overrides, not {@code --pure}): how the published Q4_0 / Q4_K_M GGUFs are made. llama-quantize
 *     only reads text models; an mmproj ({@code clip}) file next to a Q4 text file is a convert_hf_to_gguf output
 *     (ggml-org publishes Q8_0 and F16 ones).</li>
 * </ul>
 * Tested against every tensor of Kimi-VL-A3B-Instruct (TensorTypesTest, ConverterTypeRulesTest).
 */
public final class TensorTypes {
    private TensorTypes() {}

    /** llama.cpp file types (enum llama_ftype) that llama-quantize makes from a converted file. */
    public enum Ftype {
        /** LLAMA_FTYPE_MOSTLY_Q4_0 (2): default type Q4_0. */
        Q4_0(2, GgmlType.Q4_0),
        /** LLAMA_FTYPE_MOSTLY_Q4_K_M (15): default type Q4_K, more bits for some ffn_down and attn_v tensors. */
        Q4_K_M(15, GgmlType.Q4_K);

        /** {@code general.file_type}. */
        public final int fileType;
        /** llama_ftype_get_default_type. */
        public final GgmlType defaultType;

        Ftype(int fileType, GgmlType defaultType) {
            this.fileType = fileType;
            this.defaultType = defaultType;
        }
    }

    /**
     * The type convert_hf_to_gguf.py writes a tensor in when the output type is {@code out} (F32, F16, BF16 or Q8_0):
     * <ol>
     * <li>{@code tensor_force_quant} of mmproj models: {@code *.patch_embd.weight} and {@code *.patch_merger.weight}
     *     are F16 in an F16 file, else F32;</li>
     * <li>tensors of at most one dimension, and names ending in {@code _norm.weight}: F32;</li>
     * <li>the expert routers ({@code ffn_gate_inp}, {@code ffn_gate_inp_shexp}), position embeddings
     *     ({@code position_embd}, the vision tower's {@code v.position_embd}), {@code token_types}: F32, and so is
     *     every name that does not end in {@code .weight} (the biases, deepseek2's {@code exp_probs_b.bias});</li>
     * <li>everything else is {@code out}; when gguf-py cannot quantize it (ne[0] not a multiple of the block) F16.</li>
     * </ol>
     * (The other names of the F32 list, SSM/RWKV/AltUp tensors, do not occur in the models kimivl converts.)
     */
    public static GgmlType converted(String name, long[] ne, GgmlType out) {
        if (out != GgmlType.F32 && out != GgmlType.F16 && out != GgmlType.BF16 && out != GgmlType.Q8_0) {
            throw new IllegalArgumentException("convert_hf_to_gguf writes f32, f16, bf16 or q8_0, not " + out);
        }
        if (name.endsWith(".patch_embd.weight") || name.endsWith(".patch_merger.weight")) return out == GgmlType.F16 ? GgmlType.F16 : GgmlType.F32;
        if (ne.length <= 1 || name.endsWith("_norm.weight")) return GgmlType.F32;
        if (alwaysF32(name) || !name.endsWith(".weight")) return GgmlType.F32;
        if (ne[0] % out.blockSize != 0) return GgmlType.F16;
        return out;
    }

    private static final Pattern ROUTER = Pattern.compile("blk\\.\\d+\\.ffn_gate_inp(_shexp)?\\.weight");

    private static boolean alwaysF32(String name) {
        return ROUTER.matcher(name).matches() || name.equals("position_embd.weight") || name.equals("v.position_embd.weight")
                || name.equals("token_types.weight");
    }

    /**
     * The type llama-quantize gives a text-model tensor for {@code ftype}, {@code source} being its type in the
     * converted F16/BF16 file it reads ({@link #converted} with BF16) and {@code nLayers} the model's layer count
     * ({@code n_layer_all}). Assumes the model has an {@code output.weight} (untied embeddings), as Kimi-VL does.
     * <ul>
     * <li>{@code tensor_allows_quantization}: tensors with fewer than 2 dims, names not ending in "weight", containing
     *     {@code _norm.weight}, {@code ffn_gate_inp.weight}, {@code .position_embd}, {@code .patch_embd},
     *     {@code .patch_merger}, or equal to {@code position_embd.weight} / {@code token_types.weight}, are copied:
     *     they keep {@code source};</li>
     * <li>{@code output.weight} (category OUTPUT): Q8_0 when ne[0] is not a multiple of the default type's block, else
     *     Q6_K unless the default is Q8_0 (so Q6_K in both Q4_0 and Q4_K_M files);</li>
     * <li>{@code token_embd.weight}: the default type (its rule only changes IQ, TQ and Q2_0 files);</li>
     * <li>Q4_K_M only, {@code use_more_bits(i, n)} = i &lt; n/8 || i &ge; 7n/8 || (i − n/8) % 3 == 2:
     *     every name containing {@code ffn_down} (dense, {@code _exps}, {@code _shexp}) is Q6_K when use_more_bits(its
     *     layer, nLayers); attention-v-like names ({@code attn_v.weight}, {@code attn_qkv.weight},
     *     {@code attn_kv_b.weight}) Q6_K when use_more_bits(their layer, nLayers). (llama.cpp counts the attention-v
     *     tensors in file order; with one per layer that is the layer. Kimi-VL's files have none: llama.cpp splits
     *     kv_b into {@code attn_k_b}/{@code attn_v_b}, which no rule names.) The other names ({@code attn_q*},
     *     {@code attn_kv_a_mqa}, {@code attn_k_b}, {@code attn_v_b}, {@code attn_output} (changed only for 8-expert
     *     models), {@code ffn_gate*}, {@code ffn_up*}) keep the default;</li>
     * <li>{@code tensor_type_fallback}: when ne[0] is not a multiple of the chosen type's block, Q4_K → Q5_0,
     *     Q6_K → Q8_0 (Kimi-VL's {@code ffn_down_exps}, 1408 columns; {@code attn_k_b}, 128), and F16 if even that
     *     block does not divide it. (For Q4_0 llama-quantize has no fallback and stops; kimivl writes F16, as it
     *     does for rows too short for any block, which only the small test models have.)</li>
     * </ul>
     */
    public static GgmlType quantized(String name, long[] ne, Ftype ftype, int nLayers, GgmlType source) {
        if (!allowsQuantization(name, ne)) return source;
        GgmlType t = ftype.defaultType;
        if (name.equals("output.weight")) {
            if (ne[0] % t.blockSize != 0) t = GgmlType.Q8_0;
            else if (t != GgmlType.Q8_0) t = GgmlType.Q6_K;
        } else if (name.equals("token_embd.weight")) {
            // unchanged for Q4_0 and Q4_K_M
        } else if (ftype == Ftype.Q4_K_M && (name.contains("attn_v.weight") || name.contains("attn_qkv.weight") || name.contains("attn_kv_b.weight"))) {
            if (useMoreBits(layer(name), nLayers)) t = GgmlType.Q6_K;
        } else if (ftype == Ftype.Q4_K_M && name.contains("ffn_down")) {
            if (useMoreBits(layer(name), nLayers)) t = GgmlType.Q6_K;
        }
        if (ne[0] % t.blockSize != 0) {
            t = switch (t) {
                case Q4_K -> GgmlType.Q5_0;
                case Q6_K -> GgmlType.Q8_0;
                // llama-quantize has no fallback for Q4_0 (it stops with an error); kimivl writes F16, so that the
                // small test models (rows of 16) convert too
                default -> GgmlType.F16;
            };
            if (ne[0] % t.blockSize != 0) t = GgmlType.F16;
        }
        return t;
    }

    /** llama-quantize's tensor_allows_quantization for the names of kimivl's models (see {@link #quantized}). */
    static boolean allowsQuantization(String name, long[] ne) {
        if (ne.length < 2 || !name.endsWith("weight")) return false;
        for (String s : new String[]{"_norm.weight", "ffn_gate_inp.weight", ".position_embd", ".patch_embd", ".patch_merger"}) {
            if (name.contains(s)) return false;
        }
        return !name.equals("position_embd.weight") && !name.equals("token_types.weight");
    }

    /** llama.cpp's use_more_bits: the first and last eighth of the layers and every third one between. */
    public static boolean useMoreBits(int layer, int n) {
        return layer < n / 8 || layer >= 7 * n / 8 || (layer - n / 8) % 3 == 2;
    }

    private static final Pattern LAYER = Pattern.compile("blk\\.(\\d+)\\..*");

    private static int layer(String name) {
        Matcher m = LAYER.matcher(name);
        if (!m.matches()) throw new IllegalArgumentException("tensor '" + name + "': no layer number (blk.N.)");
        return Integer.parseInt(m.group(1));
    }
}
