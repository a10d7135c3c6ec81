package dev.kimivl.tensor;

/**
 * Aᵀ as a {@link Matrix} over a live float array A [k, m] (row-major, no copy): row r of the view is column r of A.
 * The packed GEMM reads it a [rows × KC] tile at a time ({@link #decodeTile}: each of the tile's kc columns of the
 * view is a contiguous run of A's row), so C = Aᵀ·B needs no transposed copy of A.
 */
final class TransposedFloats implements Matrix {
    private final float[] a;
    private final int k, m;

    /** The view Aᵀ [m, k] of a [k, m]. */
    TransposedFloats(float[] a, int k, int m) {
        if ((long) k * m > a.length) throw new IllegalArgumentException("A [" + k + ", " + m + "] needs " + (long) k * m + " floats, has " + a.length);
        this.a = a;
        this.k = k;
        this.m = m;
    }

    @Override public int rows() { return m; }
    @Override public int cols() { return k; }
    @Override public DType dtype() { return DType.F32; }

    @Override
    public void matvec(float[] x, int xo, float[] y, int yo) {
        for (int r = 0; r < m; r++) {
            float s = 0;
            for (int c = 0; c < k; c++) s += a[c * m + r] * x[xo + c];
            y[yo + r] = s;
        }
    }

    @Override
    public void row(int r, float[] dst, int off) {
        for (int c = 0; c < k; c++) dst[off + c] = a[c * m + r];
    }

    /** dst[off + i·ld + j] = view[r0 + i, c0 + j] = a[(c0 + j)·m + r0 + i] for i < nr, j < len. */
    void decodeTile(int r0, int nr, int c0, int len, float[] dst, int off, int ld) {
        for (int j = 0; j < len; j++) {
            int src = (c0 + j) * m + r0;
            for (int i = 0; i < nr; i++) dst[off + i * ld + j] = a[src + i];
        }
    }
}
