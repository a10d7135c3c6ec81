package dev.kimivl.tensor;

/**
 * The one seam between the model code and the kernels that do its products: every quantized product
 * ({@link QuantMatrix}) and the attention kernels with a native form go through a {@code Kernels}, chosen once, with
 * its immutable {@link KernelSettings}. Two implementations:
 * <ul>
 *   <li>{@link #java()}: the Java Vector API kernels only (the fallback where the native library does not load, and
 *       the reference the native kernels are tested against);</li>
 *   <li>{@link #nativeKernels()}: the native AVX2 kernels ({@link NativeKernels}) where they take the format and
 *       shape, the Java ones for the rest (Q2_K, Q3_K, IQ4_NL, IQ4_XS, rows wider than {@link NativeKernels#MAX_COLS}).</li>
 * </ul>
 * {@link #DEFAULT} is the native set when the library loaded (and {@code -Dkimivl.native} is not false), else the Java
 * one; objects built without a choice use it. Tests build instances with one or the other
 * ({@link QuantMatrix#withKernels}, {@code LanguageModel.withKernels}) instead of flipping a global.
 *
 * <p>Attention: {@link #latentAttention} (MLA decode and absorbed prompts) has both implementations (the Java one
 * is {@link LatentAttentionKernels}; the native set uses it where its kernel declines the shapes).
 * {@link #causalAttention} (the decompressed prompt form) is native only: it returns false where it does not run (the
 * Java set always), and MlaAttention then runs its Java loop; {@link #hasCausalAttention} says which beforehand.
 */
public sealed interface Kernels permits JavaKernels, NativeFirstKernels {

    /** The kernels of this process: native when loaded, else Java; settings from the system properties. */
    Kernels DEFAULT = preferred(KernelSettings.SYSTEM);

    /** The Java Vector API kernels with the process's settings. */
    static Kernels java() { return new JavaKernels(KernelSettings.SYSTEM); }

    /** The native kernels (Java where they do not apply); throws, with the reason, where the library is not loaded. */
    static Kernels nativeKernels() {
        if (!NativeKernels.AVAILABLE) throw new IllegalStateException("no native kernels: " + NativeKernels.STATUS);
        return new NativeFirstKernels(KernelSettings.SYSTEM);
    }

    /** Native kernels when loaded and {@code settings.nativeKernels()}, else Java. */
    static Kernels preferred(KernelSettings settings) {
        return settings.nativeKernels() && NativeKernels.AVAILABLE ? new NativeFirstKernels(settings) : new JavaKernels(settings);
    }

    KernelSettings settings();

    /** m with these kernels when it is a quantized matrix (a view of the same weights), else m itself (null stays null). */
    default Matrix bind(Matrix m) {
        return m instanceof QuantMatrix q ? q.withKernels(this) : m;
    }

    /** The same implementation with other settings. */
    Kernels with(KernelSettings settings);

    /** True for the native set. */
    boolean isNative();

    /** One line for reports. */
    default String describe() { return isNative() ? NativeKernels.STATUS : "Java Vector API kernels"; }

    // ---- quantized weights: W [rows, cols] in a block format, the activation quantized to int8 (QuantizedInput) ----

    /** True when a matvec of a {@code type} matrix of {@code cols} columns quantizes its input and runs integer kernels. */
    boolean integerMatvec(DType type, int cols);

    /** True when its batched product quantizes the inputs and runs a native integer GEMM. */
    boolean integerMatmul(DType type, int cols);

    /** y[yo + r] = Σ_c W[r, c]·x'[c] for every row r of w (x' the quantized activation); xq.cols == w.cols(). */
    void matvec(QuantMatrix w, QuantizedInput xq, float[] y, int yo);

    /**
     * y[t·rows + r] = Σ_c W[r, c]·x'_t[c] for every row t of the batch xq. Each token's result equals {@link #matvec}'s
     * bit for bit, except where a faster form rounds the activation otherwise (the AVX-512 Q4_K product from
     * NativeFirstKernels.Q4_K_PACKED_MIN_TOKENS tokens: per 32 values, not per 256); {@link #matmulAsMatvec} never does.
     */
    void matmul(QuantMatrix w, QuantizedInput xq, float[] y);

    /**
     * {@link #matmul} with each token's result equal to {@link #matvec}'s bit for bit whatever the batch: what a batched
     * decode step or a drafted continuation's check needs (model.RowProducts), so that a sequence's logits do not depend
     * on how many others share its step.
     */
    default void matmulAsMatvec(QuantMatrix w, QuantizedInput xq, float[] y) { matmul(w, xq, y); }

    /**
     * One tile of a batched product, on the calling thread (for callers that spread tiles over the pool themselves and
     * fuse their epilogue while the tile is in cache, as MoonViT does): y[yo + (t − t0)·ldy + (r − r0)] =
     * Σ_c W[r, c]·x'_t[c] for rows r in [r0, r1) and tokens t in [t0, t1) of the batch xq. Each value equals
     * {@link #matvec}'s for that token. Call {@link #prepareTiles} once per batch before sharing it between threads.
     */
    void matmulTile(QuantMatrix w, QuantizedInput xq, int r0, int r1, int t0, int t1, float[] y, int yo, int ldy);

    /** True when {@link #matmulTile} of a {@code type} matrix of {@code cols} columns runs a native integer GEMM. */
    boolean nativeTiles(DType type, int cols);

    /** Makes what {@link #matmulTile} needs of the batch (the native GEMM's packed activations), over the pool. */
    default void prepareTiles(QuantizedInput xq) {}

    // ---- attention ----

    /**
     * Latent attention (MLA decode): heads query rows q[qo + h·W ..] (width W) against the cache rows lat[j·W ..] for j in
     * [j0, j1), online softmax state m [heads], l [heads], o [heads·R] updated in place ({@link LatentAttentionKernels}).
     */
    void latentAttention(float[] q, int qo, float[] lat, int W, int R, int heads, int j0, int j1, float scale, float[] m, float[] l, float[] o);

    /** As {@link #latentAttention} over an f16 cache (IEEE half bits). */
    void latentAttentionF16(float[] q, int qo, short[] lat, int W, int R, int heads, int j0, int j1, float scale, float[] m, float[] l, float[] o);

    /**
     * As {@link #latentAttention} over a bf16 cache (the top 16 bits of each f32). The native kernel (AVX512-BF16)
     * rounds the queries and the softmax weights to bf16 for its products; the others widen the cache and compute in f32.
     */
    void latentAttentionBf16(float[] q, int qo, short[] lat, int W, int R, int heads, int j0, int j1, float scale, float[] m, float[] l, float[] o);

    /** True when {@link #latentAttentionBf16} runs natively in vdpbf16ps here (the AVX-512 forms on a CPU with AVX512-BF16). */
    default boolean fastBf16Attention() { return false; }

    /** True when {@link #causalAttention} takes heads of query/key width {@code qk} and value width {@code v}. */
    boolean hasCausalAttention(int qk, int v);

    /**
     * Causal attention of {@code rows} query rows (row i at q[qo + i·ldq], position pos0 + i) over keys/values [j0, j1):
     * see {@link NativeKernels#mhaCausal}. False where it did not run (the caller then runs its Java loop).
     */
    boolean causalAttention(float[] q, int qo, int ldq, int dk, float[] k, int ko, int ldk, float[] v, int vo, int ldv,
                            int dv, int rows, int j0, int j1, float scale, int pos0, float[] m, float[] l, float[] o);

    /**
     * True when {@link #causalAttentionBf16} runs here for heads of query/key width {@code qk} and value width {@code v}
     * (vdpbf16ps: the AVX-512 forms on a CPU with AVX512-BF16); the prompt attention over a bf16 cache then takes it.
     */
    default boolean hasCausalAttentionBf16(int qk, int v) { return false; }

    /**
     * n keys k[j·ks ..] (width dk) and values v[j·vs ..] (width dv) of one head as bf16, in the layouts
     * {@link #causalAttentionBf16} reads (NativeKernels#packKeysValuesBf16: kt ≥ ⌈n/16⌉·16·dk/2, vp ≥ ⌈n/2⌉·dv ints).
     */
    default void packKeysValuesBf16(float[] k, int ks, int dk, float[] v, int vs, int dv, int n, int[] kt, int[] vp) {
        throw new UnsupportedOperationException("no bf16 prompt attention here");
    }

    /**
     * {@link #causalAttention} over keys and values packed by {@link #packKeysValuesBf16} (j0 a multiple of 16), in
     * vdpbf16ps: queries and weights rounded to bf16 for the products. False where it did not run.
     */
    default boolean causalAttentionBf16(float[] q, int qo, int ldq, int dk, int[] kt, int[] vp, int dv, int rows, int j0, int j1,
                                        float scale, int pos0, float[] m, float[] l, float[] o) {
        return false;
    }
}
