package dev.kimivl.tensor;

import java.lang.foreign.MemorySegment;

/**
 * The native implementation of {@link Kernels}: the AVX2 kernels of {@link NativeKernels} for Q8_0 and Q4_0 (rows up
 * to {@link NativeKernels#MAX_COLS}) and for the k-quant files' formats (Q4_K, Q5_K, Q6_K, Q4_1, Q5_0, Q5_1), matvec
 * and batched GEMM, and MLA's latent and causal attention; the Java kernels ({@link JavaKernels}) for what they do not
 * take. Built only where the library loaded ({@link Kernels#nativeKernels()}). {@code isa}: the instruction set of
 * the kernels that come in several ({@link NativeKernels.Isa}: the same results, bit for bit), from
 * {@link KernelSettings#nativeIsa}.
 */
record NativeFirstKernels(KernelSettings settings, NativeKernels.Isa isa) implements Kernels {
    NativeFirstKernels {
        if (!NativeKernels.AVAILABLE) throw new IllegalStateException("no native kernels: " + NativeKernels.STATUS);
        if (!isa.supported()) throw new IllegalArgumentException("this CPU has no " + isa.id() + " kernels");
    }

    NativeFirstKernels(KernelSettings settings) {
        this(settings, NativeKernels.Isa.resolve(settings.nativeIsa()));
    }

    @Override public Kernels with(KernelSettings s) { return new NativeFirstKernels(s); }

    @Override
    public String describe() {
        return NativeKernels.STATUS + "; running the " + isa.id() + " forms" + (isa == NativeKernels.BEST ? "" : " (-Dkimivl.nativeIsa)");
    }
    @Override public boolean isNative() { return true; }

    /** A format of kimivl_kquants.c. */
    private static boolean otherFormat(DType type) { return NativeKernels.otherFormatCode(type) >= 0; }

    private static boolean q8q4(DType type, int cols) {
        return (type == DType.Q8_0 || type == DType.Q4_0) && cols <= NativeKernels.MAX_COLS;
    }

    @Override
    public boolean integerMatvec(DType type, int cols) {
        return settings.intMatvec() && (type == DType.Q8_0 || type == DType.Q4_0 || LowBitKernels.handles(type) || otherFormat(type));
    }

    @Override
    public boolean integerMatmul(DType type, int cols) {
        return integerMatvec(type, cols) && (cols <= NativeKernels.MAX_COLS || otherFormat(type));
    }

    @Override
    public void matvec(QuantMatrix w, QuantizedInput xq, float[] y, int yo) {
        if (w.isRepacked()) { matvecRows4(w, xq, y, yo); return; }
        DType dtype = w.dtype();
        int cols = w.cols();
        if (q8q4(dtype, cols) || otherFormat(dtype)) {
            java.lang.foreign.MemorySegment data = w.segment();
            Parallel.forRange(w.rows(), 16, (from, to) -> NativeKernels.matvec(dtype, data, from, to, cols, xq, y, yo, isa));
            return;
        }
        JavaKernels.javaMatvec(w, xq, y, yo);
    }

    /**
     * Tokens from which an AVX-512 Q4_K product takes the packed 32-block GEMM (kv_gemm_q4_k_512) instead of kv_gemm_kq.
     * The packed one multiplies the activation in its per-32 form, kv_gemm_kq (like the decode matvec) in its per-256
     * form, so they differ by the activation's rounding; below this count a batch keeps giving the matvec's results
     * bit for bit, and {@link #matmulAsMatvec} (the batched decode of several sequences, a drafted continuation's
     * check: model.RowProducts) keeps kv_gemm_kq at any count. On one core of Zen 4, [1408, 2048]: 191 against 139
     * GOP/s at 8 tokens, 229 at 16, 267 at 48; level at 4.
     */
    static final int Q4_K_PACKED_MIN_TOKENS = 8;

    /**
     * True when the batched product of n tokens takes activations packed once (kv_pack_act) and rows unpacked once for
     * a block of tokens: Q4_0 and Q8_0; in the AVX-512 form also Q5_0 (Q4_K_M files' ffn_down_exps) and, unless the
     * product must give the matvec's bits ({@code asMatvec}), Q4_K from {@link #Q4_K_PACKED_MIN_TOKENS} tokens.
     */
    private boolean packedGemm(DType type, int cols, int n, boolean asMatvec) {
        if (q8q4(type, cols)) return true;
        if (isa != NativeKernels.Isa.AVX512 || cols > NativeKernels.MAX_COLS) return false;
        return type == DType.Q5_0 || (type == DType.Q4_K && !asMatvec && cols % 256 == 0 && n >= Q4_K_PACKED_MIN_TOKENS);
    }

    @Override
    public void matmul(QuantMatrix w, QuantizedInput xq, float[] y) { matmul(w, xq, y, false); }

    /** As {@link #matmul}, but a Q4_K batch keeps kv_gemm_kq (the matvec's per-256 rounding) at any token count. */
    @Override
    public void matmulAsMatvec(QuantMatrix w, QuantizedInput xq, float[] y) { matmul(w, xq, y, true); }

    /**
     * The R4 matvec ({@link Q4KRows4}) over whole groups of 4 rows per work item; physical rows [skip, skip + rows) of
     * the slice's groups. Without the AVX-512 form (a test's other kernels) the rows are unpacked first.
     */
    private void matvecRows4(QuantMatrix w, QuantizedInput xq, float[] y, int yo) {
        if (isa != NativeKernels.Isa.AVX512) { matvec(w.plainCopy(), xq, y, yo); return; }
        MemorySegment data = w.segment();
        int skip = w.r4Skip(), p1 = skip + w.rows(), groups = (p1 + 3) / 4, cols = w.cols();
        Parallel.forRange(groups, 4, (g0, g1) ->
                NativeKernels.matvecQ4KRows4(data, Math.max(skip, 4 * g0), Math.min(p1, 4 * g1), cols, xq, y, yo - skip));
    }

    /**
     * The batched products of an R4 matrix: the plain matrix's kernels and floats (the 32-block GEMM from
     * {@link #Q4_K_PACKED_MIN_TOKENS} tokens unless {@code asMatvec}, else the per-256 row kernel), each row read back
     * in the Q4_K layout by the kernel. A slice starting inside a group (rare: tiles of the per-token matvec take the
     * matvec) computes into a scratch batch from the group's first row.
     */
    private void matmulRows4(QuantMatrix w, QuantizedInput xq, float[] y, boolean asMatvec) {
        if (isa != NativeKernels.Isa.AVX512) { matmul(w.plainCopy(), xq, y, asMatvec); return; }
        int n = xq.rows, rows = w.rows(), cols = w.cols(), skip = w.r4Skip(), ld = skip + rows;
        boolean packed = !asMatvec && n >= Q4_K_PACKED_MIN_TOKENS;
        float[] out = skip == 0 ? y : new float[n * ld];
        MemorySegment data = w.segment();
        int step = packedStep(rows, n, cols);
        Parallel.forRange((ld + 3) / 4, 2, (g0, g1) -> {
            int to = Math.min(ld, 4 * g1);
            for (int r = Math.max(skip, 4 * g0); r < to; r += step) NativeKernels.gemmQ4KRows4(data, r, Math.min(to, r + step), xq, packed, out, ld);
        });
        if (skip != 0) for (int t = 0; t < n; t++) System.arraycopy(out, t * ld + skip, y, t * rows, rows);
    }

    /**
     * Rows per call of a packed GEMM over n tokens of cols columns, a multiple of 4: a critical native call holds off
     * safepoints (GC) while it runs, so at most ~2^26 multiply-adds per call.
     */
    private static int packedStep(int rows, int n, int cols) {
        return (int) Math.max(4, Math.min(rows, (1L << 26) / ((long) n * cols)) & ~3L);
    }

    private void matmul(QuantMatrix w, QuantizedInput xq, float[] y, boolean asMatvec) {
        if (w.isRepacked()) { matmulRows4(w, xq, y, asMatvec); return; }
        DType dtype = w.dtype();
        int n = xq.rows, rows = w.rows(), cols = w.cols();
        boolean packed = packedGemm(dtype, cols, n, asMatvec);
        java.lang.foreign.MemorySegment data = w.segment();
        if (otherFormat(dtype) && !packed) {
            // each row unpacked once per 4 tokens over L1-resident tiles of rows (kv_gemm_kq); bounded calls as below
            int step = (int) Math.max(1, Math.min(rows, (1L << 26) / ((long) n * cols)));
            Parallel.forRange(rows, 8, (from, to) -> {
                for (int r = from; r < to; r += step) NativeKernels.gemmOtherFormat(dtype, data, r, Math.min(to, r + step), xq, y, rows, isa);
            });
            return;
        }
        if (packed) {
            // packed once per batch and kept with it: gate and up (and every expert's tile) share one packing
            NativeKernels.PackedActivations xp = xq.nativePacked();
            int step = packedStep(rows, n, cols);
            Parallel.forRange(rows, 8, (from, to) -> {
                for (int r = from; r < to; r += step) NativeKernels.gemm(dtype, data, r, Math.min(to, r + step), xp, y, rows, isa);
            });
            return;
        }
        JavaKernels.perToken(this, w, xq, y);       // Q2_K, Q3_K, IQ4_NL, IQ4_XS, wide rows: the matvec per token
    }

    @Override public boolean nativeTiles(DType type, int cols) { return q8q4(type, cols); }

    @Override public void prepareTiles(QuantizedInput xq) { xq.nativePacked(); }

    @Override
    public void matmulTile(QuantMatrix w, QuantizedInput xq, int r0, int r1, int t0, int t1, float[] y, int yo, int ldy) {
        if (!q8q4(w.dtype(), w.cols())) {             // other formats: the matvec per token
            JavaKernels.javaTile(this, w, xq, r0, r1, t0, t1, y, yo, ldy);
            return;
        }
        if (xq.cols != w.cols()) throw new IllegalArgumentException("input has " + xq.cols + " columns, matrix " + w.cols());
        if (r1 > w.rows()) throw new IndexOutOfBoundsException("tile rows [" + r0 + ", " + r1 + ") of " + w.rows());
        NativeKernels.gemmTile(w.dtype(), w.segment(), w.rowBytes(), r0, r1, xq.nativePacked(), t0, t1, y, yo, ldy, isa);
    }

    @Override
    public void latentAttention(float[] q, int qo, float[] lat, int W, int R, int heads, int j0, int j1, float scale, float[] m, float[] l, float[] o) {
        if (!NativeKernels.latentAttention(q, qo, lat, W, R, heads, j0, j1, scale, m, l, o, isa)) {
            LatentAttentionKernels.accumulate(q, qo, lat, W, R, heads, j0, j1, scale, m, l, o);     // shapes it declines
        }
    }

    @Override
    public void latentAttentionF16(float[] q, int qo, short[] lat, int W, int R, int heads, int j0, int j1, float scale, float[] m, float[] l, float[] o) {
        if (!NativeKernels.latentAttentionF16(q, qo, lat, W, R, heads, j0, j1, scale, m, l, o, isa)) {
            LatentAttentionKernels.accumulate(q, qo, lat, false, W, R, heads, j0, j1, scale, m, l, o);
        }
    }

    @Override public boolean fastBf16Attention() { return isa == NativeKernels.Isa.AVX512 && NativeKernels.BF16; }

    /**
     * vdpbf16ps in the AVX-512 form on CPUs with AVX512-BF16 ({@link NativeKernels#BF16}); elsewhere the AVX2 kernel on
     * the widened cache; the Java kernel for shapes neither takes.
     */
    @Override
    public void latentAttentionBf16(float[] q, int qo, short[] lat, int W, int R, int heads, int j0, int j1, float scale, float[] m, float[] l, float[] o) {
        if (fastBf16Attention() && NativeKernels.latentAttentionBf16(q, qo, lat, W, R, heads, j0, j1, scale, m, l, o)) return;
        if (NativeKernels.latentAttentionBf16Widened(q, qo, lat, W, R, heads, j0, j1, scale, m, l, o)) return;
        LatentAttentionKernels.accumulate(q, qo, lat, true, W, R, heads, j0, j1, scale, m, l, o);
    }

    /** The shapes kv_mha_causal takes (query/key width a multiple of 8 up to 576, value width a multiple of 16). */
    @Override public boolean hasCausalAttention(int qk, int v) { return qk % 8 == 0 && qk <= 576 && v % 16 == 0; }

    @Override
    public boolean causalAttention(float[] q, int qo, int ldq, int dk, float[] k, int ko, int ldk, float[] v, int vo, int ldv,
                                   int dv, int rows, int j0, int j1, float scale, int pos0, float[] m, float[] l, float[] o) {
        return NativeKernels.mhaCausal(q, qo, ldq, dk, k, ko, ldk, v, vo, ldv, dv, rows, j0, j1, scale, pos0, m, l, o, isa);
    }

    /** The shapes kv_mha_causal_bf16_512 takes (even query/key width up to 576, value width a multiple of 16 up to 512). */
    @Override
    public boolean hasCausalAttentionBf16(int qk, int v) {
        return fastBf16Attention() && qk % 2 == 0 && qk <= 576 && v % 16 == 0 && v <= 512;
    }

    @Override
    public void packKeysValuesBf16(float[] k, int ks, int dk, float[] v, int vs, int dv, int n, int[] kt, int[] vp) {
        NativeKernels.packKeysValuesBf16(k, ks, dk, v, vs, dv, n, kt, vp);
    }

    @Override
    public boolean causalAttentionBf16(float[] q, int qo, int ldq, int dk, int[] kt, int[] vp, int dv, int rows, int j0, int j1,
                                       float scale, int pos0, float[] m, float[] l, float[] o) {
        return fastBf16Attention() && NativeKernels.mhaCausalBf16(q, qo, ldq, dk, kt, vp, dv, rows, j0, j1, scale, pos0, m, l, o);
    }
}
