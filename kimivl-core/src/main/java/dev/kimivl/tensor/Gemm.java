package dev.kimivl.tensor;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * Batched products y[t·rows + r] = Σ_c W[r, c]·x[t·cols + c] for any {@link Matrix}. From {@link #PACKED_MIN_N}
 * inputs on, {@link PackedGemm} (decoded weight tiles × packed input panels, 6×16 micro-kernel, 2-3× faster);
 * below, the row-decoding path of {@link #matmulRows}: weight rows are decoded
 * (dequantized) in groups of 4 into a small float buffer and multiplied with tiles of inputs that stay in L2,
 * with a 4×4 register-blocked Vector API kernel (16 accumulators). Each weight row is decoded once per input
 * tile (n / tile times in all), so decoding costs a few percent of the multiply-adds.
 */
public final class Gemm {
    private static final VectorSpecies<Float> F = Vectors.F;
    /** Inputs per micro-kernel: 4 with 32 vector registers (AVX-512), 2 with 16 (AVX2). */
    private static final int TN = F.length() >= 16 ? 4 : 2;
    /** Columns per k-block: 4 rows × KC floats = 16 KB, half an L1. */
    private static final int KC = 1024;
    private static final int RG = 4;
    /** Bytes of inputs per tile: about half an L2. */
    private static final int TILE_BYTES = KernelSettings.SYSTEM.gemmTileBytes();

    private Gemm() {}

    /**
     * The precision of the packed GEMM's products on the current thread: {@code F32} (the default, and every inference
     * path: float32 operands, the goldens' floats) or {@code BF16}, which a training run may choose for its steps
     * (a recipe's {@code "products": "bf16"}): both operands rounded to bf16 (nearest, ties to even), products and sums
     * in float32, as PyTorch's bf16 autocast runs a CPU matmul, at twice the multiply-adds per instruction
     * (vdpbf16ps). BF16 runs where {@link #bf16Available()}; elsewhere the products stay F32.
     */
    public enum Products { F32, BF16 }

    private static final ScopedValue<Products> PRODUCTS = ScopedValue.newInstance();

    /** The products' precision bound on this thread ({@link #withProducts}), F32 when none is. */
    public static Products products() { return PRODUCTS.orElse(Products.F32); }

    /**
     * Runs op with the packed GEMM's products in precision p on this thread (a scoped binding: the pool's workers take
     * the caller's choice for the products it starts, but a body that itself starts products on a worker must bind
     * it there too).
     */
    public static <R, X extends Throwable> R withProducts(Products p, ScopedValue.CallableOp<? extends R, X> op) throws X {
        return ScopedValue.where(PRODUCTS, p).call(op);
    }

    /** Whether bf16 products run on this machine (the 512-bit tiles' bf16 form: a CPU with AVX512-BF16). */
    public static boolean bf16Available() { return PackedGemm.bf16Tiles(); }

    /** Inputs from which {@link PackedGemm} (decoded weight blocks × packed inputs, 6×16 micro-kernel) is used. */
    static final int PACKED_MIN_N = KernelSettings.SYSTEM.gemmPackedMinN();

    /** Whether {@link #matmul} takes the packed GEMM for n inputs (else the row-decoding path, other float order). */
    public static boolean packed(int n) { return n >= PACKED_MIN_N && PackedGemm.supported(); }

    /**
     * C [m, n] = A [m, k]·B [k, n], all float32 row-major, on the packed GEMM without transposing anything: A's rows
     * are the weight rows, B's columns the inputs. The floats of {@code ofFloats(Bᵀ).matmul(A)} (see
     * {@link PackedGemm#run}). Needs {@link #packed}(m) (the transposing form's input count).
     */
    public static void matmulNN(float[] a, int m, int k, float[] b, int n, float[] c) {
        checkPacked(m);
        checkSizes("A", a, m, k, b, k, n, c, m, n);
        PackedGemm.run(SegmentMatrix.ofFloats(a, m, k), b, true, n, c, true, MicroKernel.WIDE);
    }

    /**
     * C [m, n] = Aᵀ·B for A [k, m], B [k, n], float32 row-major (a weight gradient dyᵀ·x): A read through
     * {@link TransposedFloats}, B's columns packed from its rows; the floats of {@code ofFloats(Bᵀ).matmul(Aᵀ)}.
     * Needs {@link #packed}(m).
     */
    public static void matmulTN(float[] a, int k, int m, float[] b, int n, float[] c) {
        checkPacked(m);
        checkSizes("A (stored [k, m])", a, k, m, b, k, n, c, m, n);
        PackedGemm.run(new TransposedFloats(a, k, m), b, true, n, c, true, MicroKernel.WIDE);
    }

    /**
     * G [r, r] = X·Xᵀ for X [r, k] row-major (a Gram matrix: Muon's Newton–Schulz products X·Xᵀ and A·A = A·Aᵀ), the
     * floats of {@code ofFloats(X).matmul(X)}. On the packed GEMM only the micro-tiles that reach the lower triangle
     * are multiplied (a little over half the multiply-adds) and the rest is mirrored: every computed element is the
     * same FMA chain, and that chain's products commute exactly, so G is what the full product gives, symmetric to the
     * bit. Below {@link #packed}(r) the full row-decoding product (whose floats are not symmetric).
     */
    public static void gram(float[] x, int r, int k, float[] g) {
        if ((long) r * k > x.length) throw new IllegalArgumentException("X [" + r + ", " + k + "] needs " + (long) r * k + " floats, has " + x.length);
        if ((long) r * r > g.length) throw new IllegalArgumentException("G [" + r + ", " + r + "] needs " + (long) r * r + " floats, has " + g.length);
        SegmentMatrix m = SegmentMatrix.ofFloats(x, r, k);
        if (!packed(r)) { matmulRows(m, x, g, r); return; }
        PackedGemm.run(m, x, false, r, g, true, MicroKernel.WIDE, true);     // g[row·r + t] for t ≤ row (and some above)
        for (int i = 0; i < r; i++) {
            for (int j = i + 1; j < r; j++) g[i * r + j] = g[j * r + i];
        }
    }

    private static void checkSizes(String aName, float[] a, int ar, int ac, float[] b, int br, int bc, float[] c, int cr, int cc) {
        if ((long) ar * ac > a.length) throw new IllegalArgumentException(aName + " [" + ar + ", " + ac + "] needs " + (long) ar * ac + " floats, has " + a.length);
        if ((long) br * bc > b.length) throw new IllegalArgumentException("B [" + br + ", " + bc + "] needs " + (long) br * bc + " floats, has " + b.length);
        if ((long) cr * cc > c.length) throw new IllegalArgumentException("C [" + cr + ", " + cc + "] needs " + (long) cr * cc + " floats, has " + c.length);
    }

    private static void checkPacked(int inputs) {
        if (!packed(inputs)) throw new IllegalArgumentException(inputs + " rows: below the packed GEMM's " + PACKED_MIN_N + " (or no 8-lane vectors), whose floats these forms give");
    }

    public static void matmul(Matrix m, float[] x, float[] y, int n) {
        final int rows = m.rows(), cols = m.cols();
        if ((long) n * cols > x.length) throw new IllegalArgumentException("x has " + x.length + " floats, needs " + (long) n * cols);
        if ((long) n * rows > y.length) throw new IllegalArgumentException("y has " + y.length + " floats, needs " + (long) n * rows);
        if (n >= PACKED_MIN_N && PackedGemm.supported()) { PackedGemm.matmul(m, x, y, n); return; }
        matmulRows(m, x, y, n);
    }

    /** The row-decoding path (4 decoded rows × 2 or 4 inputs register-blocked), for small n. */
    static void matmulRows(Matrix m, float[] x, float[] y, int n) {
        final int rows = m.rows(), cols = m.cols();
        final int tile = Math.max(RG, Math.min(n, TILE_BYTES / (4 * Math.max(1, cols)) / RG * RG));
        int groups = (rows + RG - 1) / RG;
        Parallel.forRange(groups, 4, (g0, g1) -> {
            float[] w = new float[RG * cols];
            for (int t0 = 0; t0 < n; t0 += tile) {
                int t1 = Math.min(n, t0 + tile);
                for (int g = g0; g < g1; g++) {
                    int r0 = g * RG, nr = Math.min(RG, rows - r0);
                    for (int i = 0; i < nr; i++) m.row(r0 + i, w, i * cols);
                    if (nr == RG) {
                        // k-blocks keep the 4 decoded rows' slice in L1 while all inputs of the tile pass over it
                        for (int c0 = 0; c0 < cols; c0 += KC) {
                            int c1 = Math.min(cols, c0 + KC);
                            boolean acc = c0 > 0;
                            int t = t0;
                            if (TN == 4) for (; t + 4 <= t1; t += 4) kernel4x4(w, cols, x, t, y, rows, r0, c0, c1, acc);
                            for (; t + 2 <= t1; t += 2) kernel4x2(w, cols, x, t, y, rows, r0, c0, c1, acc);
                            for (; t < t1; t++) {
                                for (int i = 0; i < RG; i++) {
                                    float d = VectorMath.dot(w, i * cols + c0, x, t * cols + c0, c1 - c0);
                                    y[t * rows + r0 + i] = acc ? y[t * rows + r0 + i] + d : d;
                                }
                            }
                        }
                    } else {
                        for (int t = t0; t < t1; t++) {
                            for (int i = 0; i < nr; i++) y[t * rows + r0 + i] = VectorMath.dot(w, i * cols, x, t * cols, cols);
                        }
                    }
                }
            }
        });
    }

    private static void kernel4x2(float[] w, int cols, float[] x, int t, float[] y, int rows, int r0, int c0, int c1, boolean acc) {
        FloatVector a00 = FloatVector.zero(F), a01 = a00, a10 = a00, a11 = a00;
        FloatVector a20 = a00, a21 = a00, a30 = a00, a31 = a00;
        int x0 = t * cols, x1 = x0 + cols;
        int w1 = cols, w2 = 2 * cols, w3 = 3 * cols;
        int c = c0, bound = c0 + F.loopBound(c1 - c0);
        for (; c < bound; c += F.length()) {
            FloatVector v0 = FloatVector.fromArray(F, w, c);
            FloatVector v1 = FloatVector.fromArray(F, w, w1 + c);
            FloatVector v2 = FloatVector.fromArray(F, w, w2 + c);
            FloatVector v3 = FloatVector.fromArray(F, w, w3 + c);
            FloatVector u = FloatVector.fromArray(F, x, x0 + c);
            a00 = v0.fma(u, a00); a10 = v1.fma(u, a10); a20 = v2.fma(u, a20); a30 = v3.fma(u, a30);
            u = FloatVector.fromArray(F, x, x1 + c);
            a01 = v0.fma(u, a01); a11 = v1.fma(u, a11); a21 = v2.fma(u, a21); a31 = v3.fma(u, a31);
        }
        int y0 = t * rows + r0, y1 = y0 + rows;
        st(y, y0, a00, acc); st(y, y0 + 1, a10, acc);
        st(y, y0 + 2, a20, acc); st(y, y0 + 3, a30, acc);
        st(y, y1, a01, acc); st(y, y1 + 1, a11, acc);
        st(y, y1 + 2, a21, acc); st(y, y1 + 3, a31, acc);
        if (c < c1) tail(w, cols, x, t, 2, y, rows, r0, c, c1);
    }

    private static void st(float[] y, int i, FloatVector a, boolean acc) {
        float v = VectorMath.sum(a);
        y[i] = acc ? y[i] + v : v;
    }

    private static void tail(float[] w, int cols, float[] x, int t, int nt, float[] y, int rows, int r0, int c, int c1) {
        for (int i = 0; i < 4; i++) {
            for (int j = 0; j < nt; j++) {
                float s = 0;
                for (int k = c; k < c1; k++) s += w[i * cols + k] * x[(t + j) * cols + k];
                y[(t + j) * rows + r0 + i] += s;
            }
        }
    }

    private static void kernel4x4(float[] w, int cols, float[] x, int t, float[] y, int rows, int r0, int c0, int c1, boolean acc) {
        FloatVector a00 = FloatVector.zero(F), a01 = a00, a02 = a00, a03 = a00;
        FloatVector a10 = a00, a11 = a00, a12 = a00, a13 = a00;
        FloatVector a20 = a00, a21 = a00, a22 = a00, a23 = a00;
        FloatVector a30 = a00, a31 = a00, a32 = a00, a33 = a00;
        int x0 = t * cols, x1 = x0 + cols, x2 = x1 + cols, x3 = x2 + cols;
        int w1 = cols, w2 = 2 * cols, w3 = 3 * cols;
        int c = c0, bound = c0 + F.loopBound(c1 - c0);
        for (; c < bound; c += F.length()) {
            FloatVector v0 = FloatVector.fromArray(F, w, c);
            FloatVector v1 = FloatVector.fromArray(F, w, w1 + c);
            FloatVector v2 = FloatVector.fromArray(F, w, w2 + c);
            FloatVector v3 = FloatVector.fromArray(F, w, w3 + c);
            FloatVector u = FloatVector.fromArray(F, x, x0 + c);
            a00 = v0.fma(u, a00); a10 = v1.fma(u, a10); a20 = v2.fma(u, a20); a30 = v3.fma(u, a30);
            u = FloatVector.fromArray(F, x, x1 + c);
            a01 = v0.fma(u, a01); a11 = v1.fma(u, a11); a21 = v2.fma(u, a21); a31 = v3.fma(u, a31);
            u = FloatVector.fromArray(F, x, x2 + c);
            a02 = v0.fma(u, a02); a12 = v1.fma(u, a12); a22 = v2.fma(u, a22); a32 = v3.fma(u, a32);
            u = FloatVector.fromArray(F, x, x3 + c);
            a03 = v0.fma(u, a03); a13 = v1.fma(u, a13); a23 = v2.fma(u, a23); a33 = v3.fma(u, a33);
        }
        int y0 = t * rows + r0, y1 = y0 + rows, y2 = y1 + rows, y3 = y2 + rows;
        st(y, y0, a00, acc); st(y, y0 + 1, a10, acc);
        st(y, y0 + 2, a20, acc); st(y, y0 + 3, a30, acc);
        st(y, y1, a01, acc); st(y, y1 + 1, a11, acc);
        st(y, y1 + 2, a21, acc); st(y, y1 + 3, a31, acc);
        st(y, y2, a02, acc); st(y, y2 + 1, a12, acc);
        st(y, y2 + 2, a22, acc); st(y, y2 + 3, a32, acc);
        st(y, y3, a03, acc); st(y, y3 + 1, a13, acc);
        st(y, y3 + 2, a23, acc); st(y, y3 + 3, a33, acc);
        if (c < c1) tail(w, cols, x, t, 4, y, rows, r0, c, c1);
    }
}
