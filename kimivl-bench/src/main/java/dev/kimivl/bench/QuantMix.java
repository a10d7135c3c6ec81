package dev.kimivl.bench;

import dev.kimivl.io.gguf.Converter;
import dev.kimivl.io.gguf.GgmlType;
import dev.kimivl.tensor.DType;

import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The weight formats {@code kimivl bench --type} writes the random model in: one block format for every matrix
 * ({@link #Q4_0}, {@link #Q8_0}; what {@code kimivl convert --type} writes) or llama.cpp's Q4_K_M mix ({@link #Q4_K_M}:
 * the type {@code llama-quantize ... Q4_K_M} gives each tensor of Kimi-VL-A3B, see {@link #textType}).
 */
public enum QuantMix {
    Q4_0(DType.Q4_0, 2), Q8_0(DType.Q8_0, 7),
    /** llama.cpp's {@code LLAMA_FTYPE_MOSTLY_Q4_K_M} (file type 15), the type of the published Kimi-VL GGUFs people download. */
    Q4_K_M(null, 15);

    private final DType uniform;
    private final int fileType;

    QuantMix(DType uniform, int fileType) {
        this.uniform = uniform;
        this.fileType = fileType;
    }

    /** The --type spelling and cache-file tag: q4_0, q8_0, q4_k_m. */
    public String label() { return name().toLowerCase(Locale.ROOT); }

    /** The one block format of every matrix, or null for a mix (which only exists as GGUF). */
    public DType uniform() { return uniform; }

    /** llama.cpp's {@code general.file_type} (enum llama_ftype) for this mix. */
    public int fileType() { return fileType; }

    /** --type value to mix: q4_0, q8_0 or q4_k_m. */
    public static QuantMix parse(String s) {
        String t = s.toLowerCase(Locale.ROOT);
        return switch (t) {
            case "q4_0" -> Q4_0;
            case "q8_0" -> Q8_0;
            case "q4_k_m" -> Q4_K_M;
            case "bf16" -> { RandomCheckpoint.parseType(t); throw new IllegalStateException(); }   // throws its explanation
            default -> throw new IllegalArgumentException("--type must be q4_0, q8_0 or q4_k_m, not '" + s + "'");
        };
    }

    private static final Pattern LAYER = Pattern.compile("blk\\.(\\d+)\\..*");

    /**
     * The ggml type of a text tensor in this mix, given its GGUF name, ggml {@code ne} (fastest dimension first) and the
     * number of layers. For Q4_0/Q8_0: {@link Converter#tensorType}. For Q4_K_M: what llama.cpp's
     * {@code llama_tensor_get_type} (src/llama-quant.cpp) picks for a deepseek2 model, from an F16/BF16 GGUF written by
     * convert_hf_to_gguf.py (which keeps 1-D tensors and the router F32), without an imatrix or overrides:
     * <ul>
     * <li>{@code tensor_allows_quantization}: tensors with fewer than 2 dims, names not ending in "weight",
     *     {@code *_norm.weight} and {@code ffn_gate_inp.weight} are copied as they are: F32 here (norms, the
     *     {@code exp_probs_b.bias} routing bias, the router);</li>
     * <li>the default type of {@code LLAMA_FTYPE_MOSTLY_Q4_K_M} ({@code llama_ftype_get_default_type}) is Q4_K;</li>
     * <li>{@code output.weight} (category OUTPUT): Q6_K ("else if new_type != Q8_0 → Q6_K"; Q8_0 if ne[0] is not a
     *     multiple of 256);</li>
     * <li>{@code token_embd.weight}: the TOKEN_EMBD branch changes only IQ*, TQ* and Q2_0 files: stays Q4_K (the output is
     *     not tied, so the OUTPUT rule does not apply to it);</li>
     * <li>every name containing {@code ffn_down} (dense {@code ffn_down}, {@code ffn_down_exps}, {@code ffn_down_shexp}):
     *     Q6_K where {@code use_more_bits(i_layer, n_layer)} = i &lt; n/8 || i &ge; 7n/8 || (i − n/8) % 3 == 2, i_layer
     *     parsed from the name (n_expert &gt; 1), n_layer the model's layer count (the state's n_ffn_down); else Q4_K;</li>
     * <li>attention-v-like names ({@code attn_v.weight}, {@code attn_qkv.weight}, {@code attn_kv_b.weight}): Q6_K where
     *     use_more_bits(i_attention_wv, n_attention_wv). Kimi-VL's GGUF has none of them: llama.cpp splits kv_b into
     *     {@code attn_k_b}/{@code attn_v_b}, which match no rule (category OTHER), nor do {@code attn_q},
     *     {@code attn_kv_a_mqa}, {@code attn_output} (only n_expert == 8 models change it), {@code ffn_gate*},
     *     {@code ffn_up*}: all Q4_K. (The counter is taken as the layer index: one such tensor per layer.)</li>
     * <li>{@code tensor_type_fallback}: a row length ne[0] that is not a multiple of the type's block (256) falls back,
     *     Q4_K → Q5_0 and Q6_K → Q8_0 (F16 if even 32 does not divide it): Kimi-VL's {@code ffn_down_exps} (1408
     *     columns) become Q5_0 or Q8_0, {@code attn_k_b} (128 columns) Q5_0.</li>
     * </ul>
     */
    public GgmlType textType(String name, long[] ne, int nLayers) {
        if (this != Q4_K_M) return Converter.tensorType(name, ne, this == Q4_0 ? Converter.Type.Q4_0 : Converter.Type.Q8_0);
        if (ne.length < 2 || !name.endsWith("weight") || name.contains("_norm.weight") || name.contains("ffn_gate_inp.weight")) return GgmlType.F32;
        GgmlType t = GgmlType.Q4_K;
        if (name.equals("output.weight")) {
            t = ne[0] % GgmlType.Q4_K.blockSize != 0 ? GgmlType.Q8_0 : GgmlType.Q6_K;
        } else if (name.equals("token_embd.weight")) {
            t = GgmlType.Q4_K;
        } else if (name.contains("attn_v.weight") || name.contains("attn_qkv.weight") || name.contains("attn_kv_b.weight")) {
            if (useMoreBits(layer(name), nLayers)) t = GgmlType.Q6_K;
        } else if (name.contains("ffn_down")) {
            if (useMoreBits(layer(name), nLayers)) t = GgmlType.Q6_K;
        }
        if (ne[0] % t.blockSize != 0) {
            t = switch (t) {
                case Q4_K -> GgmlType.Q5_0;
                case Q6_K -> GgmlType.Q8_0;
                default -> t;
            };
            if (ne[0] % t.blockSize != 0) t = GgmlType.F16;
        }
        return t;
    }

    /** llama.cpp's use_more_bits: the first and last eighth of the layers and every third one between. */
    static boolean useMoreBits(int layer, int n) {
        return layer < n / 8 || layer >= 7 * n / 8 || (layer - n / 8) % 3 == 2;
    }

    private static int layer(String name) {
        Matcher m = LAYER.matcher(name);
        if (!m.matches()) throw new IllegalArgumentException("tensor '" + name + "': no layer number");
        return Integer.parseInt(m.group(1));
    }
}
