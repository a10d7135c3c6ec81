package dev.kimivl.train;

import dev.kimivl.tensor.Gemm;
import dev.kimivl.tensor.Parallel;
import dev.kimivl.tensor.SegmentMatrix;
import dev.kimivl.tensor.VectorMath;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorSpecies;

/**
 * The products of a linear layer y = x·Wᵀ (+ b) and its backward pass, all on the one packed GEMM of the inference
 * engine ({@code dev.kimivl.tensor.Gemm}, 6×16 Vector API micro-kernel, threaded over the kernel pool) through a
 * float matrix over the live training array ({@link SegmentMatrix#ofFloats}, no copy):
 * <ul>
 *   <li>forward  y [n, out] = x [n, in] · Wᵀ: the GEMM as inference runs it, W [out, in] as stored;
 *   <li>backward dx [n, in] += dy [n, out] · W: {@code Gemm.matmulNN}, dy's rows as the GEMM's rows and W's columns
 *       as its inputs, packed straight from W's rows;
 *   <li>weights  dW [out, in] += dyᵀ · x: {@code Gemm.matmulTN}, dy read by columns, x's columns as the inputs.
 * </ul>
 * Both give the floats of the GEMM over transposed copies (Wᵀ; xᵀ and dyᵀ), which they replace where that GEMM is the
 * packed one (≥ {@code kimivl.gemmPackedMinN} inputs); below it (a MoE expert with a handful of tokens) the
 * transposing form stays, with the row path's floats.
 * Precision convention of the training side: float32 storage and float32 products (as PyTorch's CPU float GEMM),
 * double only for row reductions (norm statistics, softmax sums, the loss).
 */
public final class LinearOps {
    private static final VectorSpecies<Float> F = dev.kimivl.tensor.Vectors.F;     // the one vector width (kimivl.vectorBits)
    /** The species of {@link VectorMath}'s dot and axpy, whose floats {@link #dotsT} and {@link #rowTimes} reproduce. */
    private static final VectorSpecies<Float> VF = VectorMath.F;

    private LinearOps() {}

    /** y [n, out] = x [n, in] · Wᵀ, W [out, in]. */
    public static float[] forward(float[] x, int n, int in, float[] w, int out) {
        float[] y = new float[n * out];
        if (n > 0) SegmentMatrix.ofFloats(w, out, in).matmul(x, y, n);
        return y;
    }

    /** y [n, out] = x [n, in] · Wᵀ + b. */
    public static float[] forward(float[] x, int n, int in, float[] w, float[] b, int out) {
        float[] y = forward(x, n, in, w, out);
        if (b != null) for (int t = 0; t < n; t++) addInto(y, t * out, b, 0, out);
        return y;
    }

    /** dx [n, in] += dy [n, out] · W (dx may be null: nothing to propagate); dW [out, in] += dyᵀ · x; db [out] += Σ_t dy. */
    public static void backward(float[] dy, int n, int out, float[] x, int in, float[] w, float[] dx, float[] dW, float[] db) {
        if (n == 0) return;
        if (dx != null) {
            float[] tmp = new float[n * in];
            if (Gemm.packed(n)) {
                Gemm.matmulNN(dy, n, out, w, in, tmp);                   // dy [n, out]·W [out, in], W's columns packed as read
            } else {
                SegmentMatrix.ofFloats(transpose(w, out, in), in, out).matmul(dy, tmp, n);
            }
            addInto(dx, 0, tmp, 0, n * in);
        }
        if (dW != null) {
            float[] tmp = new float[out * in];
            if (Gemm.packed(out)) {
                Gemm.matmulTN(dy, n, out, x, in, tmp);                   // dyᵀ·x, dy read by columns, x's columns packed as read
            } else {
                float[] xt = transpose(x, n, in), dyt = transpose(dy, n, out);   // [in, n], [out, n]
                SegmentMatrix.ofFloats(xt, in, n).matmul(dyt, tmp, out);
            }
            addInto(dW, 0, tmp, 0, out * in);
        }
        if (db != null) {
            for (int t = 0; t < n; t++) addInto(db, 0, dy, t * out, out);
        }
    }

    /** For y = x·Wᵀ without bias: {@link #backward} with no db. */
    public static void backward(float[] dy, int n, int out, float[] x, int in, float[] w, float[] dx, float[] dW) {
        backward(dy, n, out, x, in, w, dx, dW, null);
    }

    /** a [rows, cols] → aᵀ [cols, rows], in 32×32 tiles (both sides stay in L1), rows split over the pool when large. */
    public static float[] transpose(float[] a, int rows, int cols) {
        return transpose(a, 0, rows, cols);
    }

    /** {@link #transpose(float[], int, int)} of the [rows, cols] block at a[ao ..] (one head's rows of a larger array). */
    public static float[] transpose(float[] a, int ao, int rows, int cols) {
        float[] t = new float[rows * cols];
        final int B = 32;
        int tiles = (rows + B - 1) / B;
        Parallel.RangeBody body = (t0, t1) -> {
            for (int r0 = t0 * B; r0 < Math.min(rows, t1 * B); r0 += B) {
                int r1 = Math.min(rows, r0 + B);
                for (int c0 = 0; c0 < cols; c0 += B) {
                    int c1 = Math.min(cols, c0 + B);
                    for (int r = r0; r < r1; r++) {
                        int ro = ao + r * cols;
                        for (int c = c0; c < c1; c++) t[c * rows + r] = a[ro + c];
                    }
                }
            }
        };
        if ((long) rows * cols >= (1 << 16)) Parallel.forRange(tiles, 1, body);
        else body.run(0, tiles);
        return t;
    }

    /** dst[do .. do + n) += src[so .. so + n). */
    public static void addInto(float[] dst, int dOff, float[] src, int sOff, int n) {
        int i = 0;
        for (int bound = F.loopBound(n); i < bound; i += F.length()) {
            FloatVector.fromArray(F, dst, dOff + i).add(FloatVector.fromArray(F, src, sOff + i)).intoArray(dst, dOff + i);
        }
        for (; i < n; i++) dst[dOff + i] += src[sOff + i];
    }

    /**
     * out[oo + j] = {@link VectorMath#dot}(a[ao ..], b_j) for the n rows b_j of b [n, d], bit for bit, from bt = bᵀ [d, n].
     * See {@link #dotsT(float[], int, float[], int, int, int, int, float[], int)}.
     */
    public static void dotsT(float[] a, int ao, float[] bt, int n, int d, float[] out, int oo) {
        dotsT(a, ao, bt, n, 0, n, d, out, oo);
    }

    /**
     * out[oo + j] = {@link VectorMath#dot}(a[ao .. ao + d), b_{j0 + j}) for j in [0, n), bit for bit, where the rows b_r
     * are the columns of bt = bᵀ [d, ldb] (row stride ldb), a vector of L rows at a time: lane l of the dot's
     * accumulator becomes a vector p_l over the rows (the products a[c]·b_j[c] of c ≡ l mod L, fused in increasing c),
     * and the lane sum ((p_0 + p_1) + …) + p_{L−1}, then the scalar tail, are the dot's own. About 5× fewer instructions
     * than a dot per row at d = 32; the last n mod L rows go through a lane mask (the same operations per lane).
     */
    public static void dotsT(float[] a, int ao, float[] bt, int ldb, int j0, int n, int d, float[] out, int oo) {
        final int L = VF.length(), bound = VF.loopBound(d);
        int j = 0;
        // whole blocks of L rows with unmasked loads (on AVX2 a masked load per vector is far slower), then the last
        // n mod L rows through a lane mask: the same operations per lane
        for (; j + L <= n; j += L) {
            int col = j0 + j;
            // l = 0 first, so that no vector is ever null: a null-or-vector merge makes C2 box every vector of the loop
            FloatVector s = partialDot(a, ao, bt, ldb, col, 0, bound, L);
            for (int l = 1; l < L; l++) s = s.add(partialDot(a, ao, bt, ldb, col, l, bound, L));
            for (int c = bound; c < d; c++) s = s.add(FloatVector.fromArray(VF, bt, c * ldb + col).mul(a[ao + c]));
            s.intoArray(out, oo + j);
        }
        if (j < n) {
            VectorMask<Float> m = VF.indexInRange(j, n);
            int col = j0 + j;
            FloatVector s = partialDot(a, ao, bt, ldb, col, m, 0, bound, L);
            for (int l = 1; l < L; l++) s = s.add(partialDot(a, ao, bt, ldb, col, m, l, bound, L));
            for (int c = bound; c < d; c++) s = s.add(FloatVector.fromArray(VF, bt, c * ldb + col, m).mul(a[ao + c]));
            s.intoArray(out, oo + j, m);
        }
    }

    /** Σ over c = l, l + L, … < bound of a[ao + c]·bt[c, col .. col + L), fused from zero. */
    private static FloatVector partialDot(float[] a, int ao, float[] bt, int ldb, int col, int l, int bound, int L) {
        FloatVector p = FloatVector.zero(VF);
        for (int c = l; c < bound; c += L) p = FloatVector.broadcast(VF, a[ao + c]).fma(FloatVector.fromArray(VF, bt, c * ldb + col), p);
        return p;
    }

    /** {@link #partialDot(float[], int, float[], int, int, int, int, int)} over the lanes of m (the others read as 0). */
    private static FloatVector partialDot(float[] a, int ao, float[] bt, int ldb, int col, VectorMask<Float> m, int l, int bound, int L) {
        FloatVector p = FloatVector.zero(VF);
        for (int c = l; c < bound; c += L) p = FloatVector.broadcast(VF, a[ao + c]).fma(FloatVector.fromArray(VF, bt, c * ldb + col, m), p);
        return p;
    }

    /**
     * dst[dOff + i] = e^{src[so + i] − shift} for i in [0, n) on float lanes ({@link VectorMath#exp}, the exp of the
     * engine's own softmaxes; the last lanes through a mask), and returns Σ_i dst[dOff + i] added in index order in
     * double: a softmax's numerators and normaliser. dst may be src.
     */
    public static double expShifted(float[] src, int so, int n, float shift, float[] dst, int dOff) {
        int i = 0;
        for (int bound = F.loopBound(n); i < bound; i += F.length()) {
            VectorMath.exp(FloatVector.fromArray(F, src, so + i).sub(shift)).intoArray(dst, dOff + i);
        }
        if (i < n) {
            VectorMask<Float> m = F.indexInRange(i, n);
            VectorMath.exp(FloatVector.fromArray(F, src, so + i, m).sub(shift)).intoArray(dst, dOff + i, m);
        }
        double sum = 0;
        for (int k = 0; k < n; k++) sum += dst[dOff + k];
        return sum;
    }

    /** {@link #rowTimes(float[], int, int, int, float[], int, int, int, float[], int)} over contiguous rows x [n, d]. */
    public static void rowTimes(float[] coef, int co, int cs, int n, float[] x, int d, float[] out, int oo) {
        rowTimes(coef, co, cs, n, x, 0, d, d, out, oo);
    }

    /**
     * out[oo .. oo + d) = Σ_r coef[co + r·cs]·x_r over the n rows x_r = x[xo0 + r·xs .. + d), r in increasing order, each term
     * fused into the sum as {@link VectorMath#axpy} does (and the scalar tail as its tail): the floats of n axpys into a
     * zeroed row, with the row held in registers (up to four vectors at a time) instead of stored n times.
     */
    public static void rowTimes(float[] coef, int co, int cs, int n, float[] x, int xo0, int xs, int d, float[] out, int oo) {
        final int L = VF.length(), bound = VF.loopBound(d);
        int c = 0;
        for (; c + 4 * L <= bound; c += 4 * L) {
            FloatVector s0 = FloatVector.zero(VF), s1 = s0, s2 = s0, s3 = s0;
            for (int r = 0, ci = co, xo = xo0 + c; r < n; r++, ci += cs, xo += xs) {
                FloatVector w = FloatVector.broadcast(VF, coef[ci]);
                s0 = FloatVector.fromArray(VF, x, xo).fma(w, s0);
                s1 = FloatVector.fromArray(VF, x, xo + L).fma(w, s1);
                s2 = FloatVector.fromArray(VF, x, xo + 2 * L).fma(w, s2);
                s3 = FloatVector.fromArray(VF, x, xo + 3 * L).fma(w, s3);
            }
            s0.intoArray(out, oo + c);
            s1.intoArray(out, oo + c + L);
            s2.intoArray(out, oo + c + 2 * L);
            s3.intoArray(out, oo + c + 3 * L);
        }
        for (; c < bound; c += L) {
            FloatVector s0 = FloatVector.zero(VF);
            for (int r = 0, ci = co, xo = xo0 + c; r < n; r++, ci += cs, xo += xs) s0 = FloatVector.fromArray(VF, x, xo).fma(FloatVector.broadcast(VF, coef[ci]), s0);
            s0.intoArray(out, oo + c);
        }
        for (; c < d; c++) {
            float s = 0;
            for (int r = 0, ci = co; r < n; r++, ci += cs) s += coef[ci] * x[xo0 + r * xs + c];
            out[oo + c] = s;
        }
    }
}
