package dev.kimivl.tensor;

/**
 * A 2-D weight matrix W [rows, cols] in PyTorch Linear layout (y = W·x), stored in any {@link DType}.
 * Activations are float32 heap arrays; weights may live in a memory-mapped file.
 */
public interface Matrix {
    int rows();

    int cols();

    DType dtype();

    /** y[yo + r] = Σ_c W[r, c]·x[xo + c] for r in [0, rows). */
    void matvec(float[] x, int xo, float[] y, int yo);

    /** Decodes row r to float32 into dst[off .. off + cols). */
    void row(int r, float[] dst, int off);

    /**
     * Batched product for prefill: y[t·rows + r] = Σ_c W[r, c]·x[t·cols + c] for t in [0, n).
     * Each weight row is decoded once and used for all n inputs.
     */
    default void matmul(float[] x, float[] y, int n) {
        if (n == 1) { matvec(x, 0, y, 0); return; }
        Gemm.matmul(this, x, y, n);
    }

    /** The whole matrix as a float32 row-major array (for small matrices and tests). */
    default float[] toFloatArray() {
        float[] out = new float[Math.multiplyExact(rows(), cols())];
        for (int r = 0; r < rows(); r++) row(r, out, r * cols());
        return out;
    }

    /** Bytes of weight data read by one matvec. */
    default long bytes() { return dtype().bytesFor((long) rows() * cols()); }
}
