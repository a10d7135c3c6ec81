package dev.kimivl.model;

import dev.kimivl.tensor.QuantizedInput;
import dev.kimivl.tensor.Matrix;
import dev.kimivl.tensor.Parallel;
import dev.kimivl.tensor.QuantMatrix;
import dev.kimivl.tensor.VectorMath;

/**
 * Batched products y[t·rows + r] = Σ_c W[r, c]·x[t·cols + c] in which every input row's result is computed by the
 * same arithmetic whatever the other rows are and however many there are: what a batched decode step needs so that
 * a sequence gets bit for bit the same logits (hence tokens) alone and among others. {@link Matrix#matmul} does not
 * promise that: for float weights it register-blocks inputs in pairs and fours below 9 rows and switches to the
 * packed GEMM from 9 on, so a row's rounding depends on its neighbours.
 *
 * <p>Each weight row is still read once per call for all inputs (what makes a batched step cheaper than one matvec
 * per sequence when decoding is memory-bound):
 * <ul>
 *   <li>Q8_0/Q4_0 and the k-quants with native kernels: the integer GEMM in the form whose result for each input
 *       equals the integer matvec's bit for bit ({@link QuantMatrix#matmulAsMatvec}: not the AVX-512 Q4_K prompt
 *       product, which rounds the activation per 32 values);</li>
 *   <li>other quantized matrices with an integer matvec but no native GEMM: one matvec per input (exact, weights read
 *       per input; only machines without the native kernels);</li>
 *   <li>float weights (F32/BF16/F16): four weight rows decoded at a time, then one {@link VectorMath#dot} per input and
 *       row.</li>
 * </ul>
 */
final class RowProducts {
    private RowProducts() {}

    private static final int RG = 4;

    /** x [n, cols] → y [n, rows]. */
    static void matmul(Matrix m, float[] x, float[] y, int n) {
        int rows = m.rows(), cols = m.cols();
        if ((long) n * cols > x.length) throw new IllegalArgumentException("x has " + x.length + " floats, needs " + (long) n * cols);
        if ((long) n * rows > y.length) throw new IllegalArgumentException("y has " + y.length + " floats, needs " + (long) n * rows);
        // one input (e.g. an expert only one row of a verify pass or of a batched step chose) takes the decode matvec
        // kernel, built to stream one input's weights, even where the GEMM exists (same result: its contract)
        if (m instanceof QuantMatrix q && q.usesIntegerMatmul() && n > 1) {
            q.matmulAsMatvec(QuantizedInput.ofRows(x, n, cols), y);
            return;
        }
        if (m instanceof QuantMatrix q && q.usesIntegerMatvec()) {
            for (int t = 0; t < n; t++) q.matvec(x, t * cols, y, t * rows);
            return;
        }
        int groups = (rows + RG - 1) / RG;
        Parallel.forRange(groups, 4, (g0, g1) -> {
            float[] w = new float[RG * cols];
            for (int g = g0; g < g1; g++) {
                int r0 = g * RG, nr = Math.min(RG, rows - r0);
                for (int i = 0; i < nr; i++) m.row(r0 + i, w, i * cols);
                for (int t = 0; t < n; t++) {
                    for (int i = 0; i < nr; i++) y[t * rows + r0 + i] = VectorMath.dot(w, i * cols, x, t * cols, cols);
                }
            }
        });
    }
}
