package dev.kimivl.tensor;

/**
 * The Java Vector API implementation of {@link Kernels}: integer products for Q8_0 and Q4_0 ({@link Q8Q4Kernels})
 * and for Q2_K, Q3_K, IQ4_NL and IQ4_XS ({@link LowBitKernels}); no batched integer kernel (a batch runs the matvec per
 * token); latent attention in {@link LatentAttentionKernels}; no causal prompt kernel (MlaAttention's Java loop runs).
 */
record JavaKernels(KernelSettings settings) implements Kernels {

    @Override public Kernels with(KernelSettings s) { return new JavaKernels(s); }
    @Override public boolean isNative() { return false; }

    @Override
    public boolean integerMatvec(DType type, int cols) {
        return settings.intMatvec() && (type == DType.Q8_0 || type == DType.Q4_0 || LowBitKernels.handles(type));
    }

    @Override public boolean integerMatmul(DType type, int cols) { return false; }

    @Override
    public void matvec(QuantMatrix w, QuantizedInput xq, float[] y, int yo) {
        javaMatvec(w, xq, y, yo);
    }

    /** The Java integer matvec, which {@link NativeFirstKernels} also falls back to. */
    static void javaMatvec(QuantMatrix w, QuantizedInput xq, float[] y, int yo) {
        DType dtype = w.dtype();
        java.lang.foreign.MemorySegment data = w.segment();
        long rowBytes = w.rowBytes();
        int rows = w.rows(), cols = w.cols(), blocks = w.blocks();
        if (LowBitKernels.handles(dtype)) {        // Q2_K, Q3_K, IQ4_NL, IQ4_XS: Java kernels only
            Parallel.forRange(rows, 16, (from, to) -> LowBitKernels.matvec(dtype, data, rowBytes, cols, from, to, xq, y, yo));
            return;
        }
        switch (dtype) {
            case Q8_0 -> Parallel.forRange(rows, 16, (from, to) -> {
                for (int r = from; r < to; r++) y[yo + r] = Q8Q4Kernels.dotQ8Int(data, r * rowBytes, blocks, xq.q, xq.d);
            });
            case Q4_0 -> Parallel.forRange((rows + 1) / 2, 8, (from, to) -> {
                for (int p = from; p < to; p++) {
                    int r = 2 * p;
                    if (r + 1 < rows) Q8Q4Kernels.dotQ4Int2(data, r * rowBytes, rowBytes, blocks, xq.q, xq.d, y, yo + r);
                    else y[yo + r] = Q8Q4Kernels.dotQ4Int(data, r * rowBytes, blocks, xq.q, xq.d);
                }
            });
            default -> throw new UnsupportedOperationException("no integer matvec for " + dtype + " (" + NativeKernels.STATUS + ")");
        }
    }

    @Override
    public void matmul(QuantMatrix w, QuantizedInput xq, float[] y) {
        perToken(this, w, xq, y);
    }

    /** The batch as one matvec per token (the kernels without a batched form). */
    static void perToken(Kernels k, QuantMatrix w, QuantizedInput xq, float[] y) {
        DType dtype = w.dtype();
        if (dtype != DType.Q8_0 && dtype != DType.Q4_0 && !LowBitKernels.handles(dtype)) {
            throw new UnsupportedOperationException("no integer matmul for " + dtype + " (" + NativeKernels.STATUS + ")");
        }
        for (int t = 0; t < xq.rows; t++) k.matvec(w, xq.row(t), y, t * w.rows());
    }

    @Override
    public void matmulTile(QuantMatrix w, QuantizedInput xq, int r0, int r1, int t0, int t1, float[] y, int yo, int ldy) {
        javaTile(this, w, xq, r0, r1, t0, t1, y, yo, ldy);
    }

    @Override public boolean nativeTiles(DType type, int cols) { return false; }

    /** A tile as one matvec of rows [r0, r1) per token (the reference the native tiles are tested against). */
    static void javaTile(Kernels k, QuantMatrix w, QuantizedInput xq, int r0, int r1, int t0, int t1, float[] y, int yo, int ldy) {
        if (xq.cols != w.cols()) throw new IllegalArgumentException("input has " + xq.cols + " columns, matrix " + w.cols());
        if (r0 < 0 || r1 < r0 || r1 > w.rows() || t0 < 0 || t1 < t0 || t1 > xq.rows) {
            throw new IndexOutOfBoundsException("tile rows [" + r0 + ", " + r1 + ") of " + w.rows() + ", tokens [" + t0 + ", " + t1 + ") of " + xq.rows);
        }
        QuantMatrix rows = w.rowSlice(r0, r1 - r0);
        for (int t = t0; t < t1; t++) k.matvec(rows, xq.row(t), y, yo + (t - t0) * ldy);
    }

    @Override
    public void latentAttention(float[] q, int qo, float[] lat, int W, int R, int heads, int j0, int j1, float scale, float[] m, float[] l, float[] o) {
        LatentAttentionKernels.accumulate(q, qo, lat, W, R, heads, j0, j1, scale, m, l, o);
    }

    @Override
    public void latentAttentionF16(float[] q, int qo, short[] lat, int W, int R, int heads, int j0, int j1, float scale, float[] m, float[] l, float[] o) {
        LatentAttentionKernels.accumulate(q, qo, lat, false, W, R, heads, j0, j1, scale, m, l, o);
    }

    @Override
    public void latentAttentionBf16(float[] q, int qo, short[] lat, int W, int R, int heads, int j0, int j1, float scale, float[] m, float[] l, float[] o) {
        LatentAttentionKernels.accumulate(q, qo, lat, true, W, R, heads, j0, j1, scale, m, l, o);
    }

    @Override public boolean hasCausalAttention(int qk, int v) { return false; }

    @Override
    public boolean causalAttention(float[] q, int qo, int ldq, int dk, float[] k, int ko, int ldk, float[] v, int vo, int ldv,
                                   int dv, int rows, int j0, int j1, float scale, int pos0, float[] m, float[] l, float[] o) {
        return false;
    }
}
