package dev.kimivl.bench;

import dev.kimivl.io.gguf.Converter;
import dev.kimivl.io.gguf.GgmlType;
import dev.kimivl.tensor.DType;

import java.util.Locale;

/**
 * The weight formats {@code kimivl bench --type} writes the random model in, each what {@code kimivl convert --type}
 * writes (llama.cpp's per-tensor types, {@link #textType}): {@link #Q8_0} (convert_hf_to_gguf's q8_0), {@link #Q4_0}
 * (llama-quantize Q4_0: Q4_0 with output.weight Q6_K) and {@link #Q4_K_M} (llama-quantize Q4_K_M, the type of the
 * published Kimi-VL GGUFs people download).
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

    /** The block format of the random source the text file is converted from (Q4_0/Q8_0), or null for Q4_K_M (written directly as GGUF). */
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

    /** The {@code kimivl convert --type} of this mix: the rules its text file is written by. */
    public Converter.Type convertType() {
        return switch (this) {
            case Q4_0 -> Converter.Type.Q4_0;
            case Q8_0 -> Converter.Type.Q8_0;
            case Q4_K_M -> Converter.Type.Q4_K_M;
        };
    }

    /**
     * The ggml type of a text tensor in this mix, given its GGUF name, ggml {@code ne} (fastest dimension first) and
     * the number of layers: what {@code kimivl convert --type} writes ({@link Converter#textTensorType}, whose rules are
     * llama.cpp's: convert_hf_to_gguf for Q8_0, llama-quantize of the bf16 file for Q4_0 and Q4_K_M; see
     * {@link dev.kimivl.io.gguf.TensorTypes}). For Q4_K_M: Q4_K, with Q6_K for output.weight and the ffn_down tensors of
     * use_more_bits layers, Q5_0 / Q8_0 where a row is not a whole number of 256-blocks (ffn_down_exps' 1408 columns,
     * attn_k_b's 128), F32 for 1-D tensors, norms and the router.
     */
    public GgmlType textType(String name, long[] ne, int nLayers) {
        return Converter.textTensorType(name, ne, convertType(), nLayers);
    }
}
