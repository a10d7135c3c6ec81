package dev.kimivl.tensor;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * The 6×16 float GEMM micro-kernels, in one place for the language model's prefill GEMM ({@link PackedGemm}), MoonViT's
 * linear layers ({@code dev.kimivl.vision.PackedLinear}) and MoonViT's attention ({@code dev.kimivl.vision.VisionAttention}):
 * <pre>
 *   C[6, 16] (at co) = (load ? C : 0) + A[6, kc] · B[kc, 16]        B packed [kc][16]: B[k, j] = b[bo + 16·k + j]
 * </pre>
 * {@link #gemm6x16} serves MoonViT (linear layers and both attention products): A packed [kc][6],
 * A[r, k] = a[ao + 6·k + r] (activations, keys and values are packed per block, cheaply). {@link #rows6x16} (and its
 * narrow forms for a last panel of ≤ 8 inputs) serves the prefill GEMM: A row-major with row stride {@link #ROWS_KC},
 * A[r, k] = a[ao + ROWS_KC·r + k] — there A is a block of weight rows, decoded row by row and copied with
 * arraycopy; interleaving it into [kc][6] would be a scalar store per weight, against ~6 FMAs per weight for an
 * expert's ~48 inputs (an estimate: about a third more time; not built).
 *
 * <p>Why two loops and not one with A's strides as arguments: that form was measured (2026-12-05, same JVM run,
 * alternating, thread CPU time, one thread, shared 2-vCPU EPYC): prefill GEMM ×0.97, MoonViT attention ×0.96 against
 * the constant-offset loops (MoonViT linear ×1.00). With variable strides each of the six broadcasts needs its own
 * address add in a loop that is already at the front end's limit (12 FMAs, 8 loads per k); with constants they are
 * displacements of one address. C2 does not inline a method this large into its callers, so the strides cannot become
 * constants there either.
 *
 * <p>With AVX-512 (32 zmm registers) the prefill GEMM takes {@link #rows12x16} instead: 12 weight rows × 16 inputs in
 * 12 zmm accumulators, the same FMA chain per element (the same floats), 1.4-2× the multiply-adds per second.
 *
 * <p>Register blocking for AVX2 (16 ymm registers, 8 float lanes: {@link Vectors#F8} whatever the machine): 12
 * accumulators (6 rows × two 8-lane halves), two B vectors and one broadcast of A; 12 FMAs per 2 vector loads + 6
 * broadcasts. Written so C2 keeps all 12 accumulators in registers:
 * <ul>
 *   <li>pointer-increment loop (ak += 6 or 1, bk += 16): with k·stride indexing C2 spilled an accumulator and ran at
 *       less than half speed;
 *   <li>accumulators start at zero and C is added after the loop, so the FMA chains do not wait for C's cache misses;
 *   <li>no epilogue code in the kernels (bias, GELU are the callers' passes over the tile while it is in L1), except
 *       the column maxima of {@link #gemm6x16}, below.
 * </ul>
 *
 * <p>{@code mx} of {@link #gemm6x16} (null for none): also raise mx[0..16) to the column maxima of the 6 rows of C,
 * from the registers. MoonViT attention computes Sᵀ with it so its softmax needs no separate pass for the maximum;
 * re-reading the stored tile for the maxima instead made that attention 2× slower (5.7 s vs 2.95 s for 4 layers of an
 * 896×896 image), as C2 then kept neither the accumulators nor the maxima in registers. Compare + blend rather than
 * max(): Java's max() also orders −0/+0 and NaN, which costs several instructions per vector on AVX2.
 */
public final class MicroKernel {
    private static final VectorSpecies<Float> F = Vectors.F8;
    /** Rows of A (and C) per call. */
    public static final int MR = 6;
    /** Columns of B (and C) per call: two 8-lane vectors. */
    public static final int NR = 16;
    /** Row stride of A in {@link #rows6x16}: the prefill GEMM's k-block (-Dkimivl.gemmKc), a JIT constant. */
    public static final int ROWS_KC = KernelSettings.SYSTEM.gemmKc();

    private MicroKernel() {}

    /**
     * C[6, 16] (row stride ldc, at co) = (load ? C : 0) + A·B with A packed [kc][6] at ao, B packed [kc][16] at bo;
     * mx: raised to the column maxima of C, or null (see the class comment).
     */
    public static void gemm6x16(float[] a, int ao, float[] b, int bo, int kc,
                                float[] c, int co, int ldc, boolean load, float[] mx) {
        FloatVector c00 = FloatVector.zero(F), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
        FloatVector c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
        for (int ak = ao, bk = bo, end = bo + kc * NR; bk < end; bk += NR, ak += MR) {
            FloatVector b0 = FloatVector.fromArray(F, b, bk), b1 = FloatVector.fromArray(F, b, bk + 8);
            FloatVector av = FloatVector.broadcast(F, a[ak]);
            c00 = av.fma(b0, c00); c01 = av.fma(b1, c01);
            av = FloatVector.broadcast(F, a[ak + 1]);
            c10 = av.fma(b0, c10); c11 = av.fma(b1, c11);
            av = FloatVector.broadcast(F, a[ak + 2]);
            c20 = av.fma(b0, c20); c21 = av.fma(b1, c21);
            av = FloatVector.broadcast(F, a[ak + 3]);
            c30 = av.fma(b0, c30); c31 = av.fma(b1, c31);
            av = FloatVector.broadcast(F, a[ak + 4]);
            c40 = av.fma(b0, c40); c41 = av.fma(b1, c41);
            av = FloatVector.broadcast(F, a[ak + 5]);
            c50 = av.fma(b0, c50); c51 = av.fma(b1, c51);
        }
        if (load) {
            int o = co;
            c00 = c00.add(FloatVector.fromArray(F, c, o)); c01 = c01.add(FloatVector.fromArray(F, c, o + 8)); o += ldc;
            c10 = c10.add(FloatVector.fromArray(F, c, o)); c11 = c11.add(FloatVector.fromArray(F, c, o + 8)); o += ldc;
            c20 = c20.add(FloatVector.fromArray(F, c, o)); c21 = c21.add(FloatVector.fromArray(F, c, o + 8)); o += ldc;
            c30 = c30.add(FloatVector.fromArray(F, c, o)); c31 = c31.add(FloatVector.fromArray(F, c, o + 8)); o += ldc;
            c40 = c40.add(FloatVector.fromArray(F, c, o)); c41 = c41.add(FloatVector.fromArray(F, c, o + 8)); o += ldc;
            c50 = c50.add(FloatVector.fromArray(F, c, o)); c51 = c51.add(FloatVector.fromArray(F, c, o + 8));
        }
        int o = co;
        c00.intoArray(c, o); c01.intoArray(c, o + 8); o += ldc;
        c10.intoArray(c, o); c11.intoArray(c, o + 8); o += ldc;
        c20.intoArray(c, o); c21.intoArray(c, o + 8); o += ldc;
        c30.intoArray(c, o); c31.intoArray(c, o + 8); o += ldc;
        c40.intoArray(c, o); c41.intoArray(c, o + 8); o += ldc;
        c50.intoArray(c, o); c51.intoArray(c, o + 8);
        if (mx != null) {
            // written out, not through a max() helper: in this method C2 refused to inline the helper ("callee uses
            // too much stack") and then boxed every vector, 10× slower
            FloatVector m0 = FloatVector.fromArray(F, mx, 0), m1 = FloatVector.fromArray(F, mx, 8);
            m0 = m0.blend(c00, m0.compare(VectorOperators.LT, c00)); m1 = m1.blend(c01, m1.compare(VectorOperators.LT, c01));
            m0 = m0.blend(c10, m0.compare(VectorOperators.LT, c10)); m1 = m1.blend(c11, m1.compare(VectorOperators.LT, c11));
            m0 = m0.blend(c20, m0.compare(VectorOperators.LT, c20)); m1 = m1.blend(c21, m1.compare(VectorOperators.LT, c21));
            m0 = m0.blend(c30, m0.compare(VectorOperators.LT, c30)); m1 = m1.blend(c31, m1.compare(VectorOperators.LT, c31));
            m0 = m0.blend(c40, m0.compare(VectorOperators.LT, c40)); m1 = m1.blend(c41, m1.compare(VectorOperators.LT, c41));
            m0 = m0.blend(c50, m0.compare(VectorOperators.LT, c50)); m1 = m1.blend(c51, m1.compare(VectorOperators.LT, c51));
            m0.intoArray(mx, 0);
            m1.intoArray(mx, 8);
        }
    }

    /**
     * C[6][16] at co (row stride 16) = (load ? C : 0) + A[6 rows, kc]·B[kc, 16]: A row-major with row stride
     * {@link #ROWS_KC} at ao (the prefill GEMM's weight block), B packed [kc][16] at bo. The loop of
     * {@link #gemm6x16} with A's other layout (see the class comment on why it is a second loop).
     */
    public static void rows6x16(float[] a, int ao, float[] b, int bo, int kc, float[] c, int co, boolean load) {
        FloatVector c00 = FloatVector.zero(F), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
        FloatVector c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
        for (int ak = ao, bk = bo, end = bo + kc * NR; bk < end; bk += NR, ak++) {
            FloatVector b0 = FloatVector.fromArray(F, b, bk), b1 = FloatVector.fromArray(F, b, bk + 8);
            FloatVector av = FloatVector.broadcast(F, a[ak]);
            c00 = av.fma(b0, c00); c01 = av.fma(b1, c01);
            av = FloatVector.broadcast(F, a[ak + ROWS_KC]);
            c10 = av.fma(b0, c10); c11 = av.fma(b1, c11);
            av = FloatVector.broadcast(F, a[ak + 2 * ROWS_KC]);
            c20 = av.fma(b0, c20); c21 = av.fma(b1, c21);
            av = FloatVector.broadcast(F, a[ak + 3 * ROWS_KC]);
            c30 = av.fma(b0, c30); c31 = av.fma(b1, c31);
            av = FloatVector.broadcast(F, a[ak + 4 * ROWS_KC]);
            c40 = av.fma(b0, c40); c41 = av.fma(b1, c41);
            av = FloatVector.broadcast(F, a[ak + 5 * ROWS_KC]);
            c50 = av.fma(b0, c50); c51 = av.fma(b1, c51);
        }
        if (load) {
            int o = co;
            c00 = c00.add(FloatVector.fromArray(F, c, o)); c01 = c01.add(FloatVector.fromArray(F, c, o + 8)); o += NR;
            c10 = c10.add(FloatVector.fromArray(F, c, o)); c11 = c11.add(FloatVector.fromArray(F, c, o + 8)); o += NR;
            c20 = c20.add(FloatVector.fromArray(F, c, o)); c21 = c21.add(FloatVector.fromArray(F, c, o + 8)); o += NR;
            c30 = c30.add(FloatVector.fromArray(F, c, o)); c31 = c31.add(FloatVector.fromArray(F, c, o + 8)); o += NR;
            c40 = c40.add(FloatVector.fromArray(F, c, o)); c41 = c41.add(FloatVector.fromArray(F, c, o + 8)); o += NR;
            c50 = c50.add(FloatVector.fromArray(F, c, o)); c51 = c51.add(FloatVector.fromArray(F, c, o + 8));
        }
        int o = co;
        c00.intoArray(c, o); c01.intoArray(c, o + 8); o += NR;
        c10.intoArray(c, o); c11.intoArray(c, o + 8); o += NR;
        c20.intoArray(c, o); c21.intoArray(c, o + 8); o += NR;
        c30.intoArray(c, o); c31.intoArray(c, o + 8); o += NR;
        c40.intoArray(c, o); c41.intoArray(c, o + 8); o += NR;
        c50.intoArray(c, o); c51.intoArray(c, o + 8);
    }

    /** The 16-lane species of {@link #rows12x16} (AVX-512: one zmm register holds a whole 16-input row of C). */
    private static final VectorSpecies<Float> F16 = FloatVector.SPECIES_512;

    /** Whether {@link #rows12x16} runs here: 512-bit vectors intrinsified ({@code kimivl.vectorBits} 512). */
    public static final boolean WIDE = Vectors.FL >= 16;

    /**
     * {@link #rows6x16} for two 6-row groups at once with 512-bit vectors (AVX-512's 32 registers): 12 accumulators
     * (12 weight rows × the panel's 16 inputs, one zmm each), one input vector and one broadcast; 12 FMAs of 16 lanes
     * per load + 12 broadcasts, against 12 FMAs of 8 lanes per 2 loads + 6 broadcasts. C[r][j] is the same FMA chain
     * over k as in rows6x16 (one chain per element, k in order, from zero, then + C), so the floats are identical.
     * Only for {@link #WIDE} machines: elsewhere a 512-bit species is emulated, far slower. Written out apart from
     * {@link #rows12x8}, which has the same shape on 8 lanes: a species argument would not be a JIT constant, as C2
     * does not inline a kernel this large into its callers (see the class comment).
     */
    public static void rows12x16(float[] a, int ao, float[] b, int bo, int kc, float[] c, int co, boolean load) {
        FloatVector c0 = FloatVector.zero(F16), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0;
        FloatVector c6 = c0, c7 = c0, c8 = c0, c9 = c0, c10 = c0, c11 = c0;
        for (int ak = ao, bk = bo, end = bo + kc * NR; bk < end; bk += NR, ak++) {
            FloatVector b0 = FloatVector.fromArray(F16, b, bk);
            c0 = FloatVector.broadcast(F16, a[ak]).fma(b0, c0);
            c1 = FloatVector.broadcast(F16, a[ak + ROWS_KC]).fma(b0, c1);
            c2 = FloatVector.broadcast(F16, a[ak + 2 * ROWS_KC]).fma(b0, c2);
            c3 = FloatVector.broadcast(F16, a[ak + 3 * ROWS_KC]).fma(b0, c3);
            c4 = FloatVector.broadcast(F16, a[ak + 4 * ROWS_KC]).fma(b0, c4);
            c5 = FloatVector.broadcast(F16, a[ak + 5 * ROWS_KC]).fma(b0, c5);
            c6 = FloatVector.broadcast(F16, a[ak + 6 * ROWS_KC]).fma(b0, c6);
            c7 = FloatVector.broadcast(F16, a[ak + 7 * ROWS_KC]).fma(b0, c7);
            c8 = FloatVector.broadcast(F16, a[ak + 8 * ROWS_KC]).fma(b0, c8);
            c9 = FloatVector.broadcast(F16, a[ak + 9 * ROWS_KC]).fma(b0, c9);
            c10 = FloatVector.broadcast(F16, a[ak + 10 * ROWS_KC]).fma(b0, c10);
            c11 = FloatVector.broadcast(F16, a[ak + 11 * ROWS_KC]).fma(b0, c11);
        }
        if (load) {
            c0 = c0.add(FloatVector.fromArray(F16, c, co));
            c1 = c1.add(FloatVector.fromArray(F16, c, co + NR));
            c2 = c2.add(FloatVector.fromArray(F16, c, co + 2 * NR));
            c3 = c3.add(FloatVector.fromArray(F16, c, co + 3 * NR));
            c4 = c4.add(FloatVector.fromArray(F16, c, co + 4 * NR));
            c5 = c5.add(FloatVector.fromArray(F16, c, co + 5 * NR));
            c6 = c6.add(FloatVector.fromArray(F16, c, co + 6 * NR));
            c7 = c7.add(FloatVector.fromArray(F16, c, co + 7 * NR));
            c8 = c8.add(FloatVector.fromArray(F16, c, co + 8 * NR));
            c9 = c9.add(FloatVector.fromArray(F16, c, co + 9 * NR));
            c10 = c10.add(FloatVector.fromArray(F16, c, co + 10 * NR));
            c11 = c11.add(FloatVector.fromArray(F16, c, co + 11 * NR));
        }
        c0.intoArray(c, co);
        c1.intoArray(c, co + NR);
        c2.intoArray(c, co + 2 * NR);
        c3.intoArray(c, co + 3 * NR);
        c4.intoArray(c, co + 4 * NR);
        c5.intoArray(c, co + 5 * NR);
        c6.intoArray(c, co + 6 * NR);
        c7.intoArray(c, co + 7 * NR);
        c8.intoArray(c, co + 8 * NR);
        c9.intoArray(c, co + 9 * NR);
        c10.intoArray(c, co + 10 * NR);
        c11.intoArray(c, co + 11 * NR);
    }

    /**
     * 12 weight rows (two 6-row groups, row stride ROWS_KC) × the first 8 inputs of a panel: 12 FMAs per load and 12
     * broadcasts, for a last panel of at most 8 inputs (the 6×8 kernel does 6 FMAs per 7 loads).
     */
    public static void rows12x8(float[] a, int ao, float[] b, int bo, int kc, float[] c, int co, boolean load) {
        FloatVector c0 = FloatVector.zero(F), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0;
        FloatVector c6 = c0, c7 = c0, c8 = c0, c9 = c0, c10 = c0, c11 = c0;
        for (int ak = ao, bk = bo, end = bo + kc * NR; bk < end; bk += NR, ak++) {
            FloatVector b0 = FloatVector.fromArray(F, b, bk);
            c0 = FloatVector.broadcast(F, a[ak]).fma(b0, c0);
            c1 = FloatVector.broadcast(F, a[ak + ROWS_KC]).fma(b0, c1);
            c2 = FloatVector.broadcast(F, a[ak + 2 * ROWS_KC]).fma(b0, c2);
            c3 = FloatVector.broadcast(F, a[ak + 3 * ROWS_KC]).fma(b0, c3);
            c4 = FloatVector.broadcast(F, a[ak + 4 * ROWS_KC]).fma(b0, c4);
            c5 = FloatVector.broadcast(F, a[ak + 5 * ROWS_KC]).fma(b0, c5);
            c6 = FloatVector.broadcast(F, a[ak + 6 * ROWS_KC]).fma(b0, c6);
            c7 = FloatVector.broadcast(F, a[ak + 7 * ROWS_KC]).fma(b0, c7);
            c8 = FloatVector.broadcast(F, a[ak + 8 * ROWS_KC]).fma(b0, c8);
            c9 = FloatVector.broadcast(F, a[ak + 9 * ROWS_KC]).fma(b0, c9);
            c10 = FloatVector.broadcast(F, a[ak + 10 * ROWS_KC]).fma(b0, c10);
            c11 = FloatVector.broadcast(F, a[ak + 11 * ROWS_KC]).fma(b0, c11);
        }
        if (load) {
            c0 = c0.add(FloatVector.fromArray(F, c, co));
            c1 = c1.add(FloatVector.fromArray(F, c, co + NR));
            c2 = c2.add(FloatVector.fromArray(F, c, co + 2 * NR));
            c3 = c3.add(FloatVector.fromArray(F, c, co + 3 * NR));
            c4 = c4.add(FloatVector.fromArray(F, c, co + 4 * NR));
            c5 = c5.add(FloatVector.fromArray(F, c, co + 5 * NR));
            c6 = c6.add(FloatVector.fromArray(F, c, co + 6 * NR));
            c7 = c7.add(FloatVector.fromArray(F, c, co + 7 * NR));
            c8 = c8.add(FloatVector.fromArray(F, c, co + 8 * NR));
            c9 = c9.add(FloatVector.fromArray(F, c, co + 9 * NR));
            c10 = c10.add(FloatVector.fromArray(F, c, co + 10 * NR));
            c11 = c11.add(FloatVector.fromArray(F, c, co + 11 * NR));
        }
        c0.intoArray(c, co);
        c1.intoArray(c, co + NR);
        c2.intoArray(c, co + 2 * NR);
        c3.intoArray(c, co + 3 * NR);
        c4.intoArray(c, co + 4 * NR);
        c5.intoArray(c, co + 5 * NR);
        c6.intoArray(c, co + 6 * NR);
        c7.intoArray(c, co + 7 * NR);
        c8.intoArray(c, co + 8 * NR);
        c9.intoArray(c, co + 9 * NR);
        c10.intoArray(c, co + 10 * NR);
        c11.intoArray(c, co + 11 * NR);
    }

    /** {@link #rows6x16} for a last panel with at most 8 inputs: only its first half. */
    public static void rows6x8(float[] a, int ao, float[] b, int bo, int kc, float[] c, int co, boolean load) {
        FloatVector c0 = FloatVector.zero(F), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0;
        for (int ak = ao, bk = bo, end = bo + kc * NR; bk < end; bk += NR, ak++) {
            FloatVector b0 = FloatVector.fromArray(F, b, bk);
            c0 = FloatVector.broadcast(F, a[ak]).fma(b0, c0);
            c1 = FloatVector.broadcast(F, a[ak + ROWS_KC]).fma(b0, c1);
            c2 = FloatVector.broadcast(F, a[ak + 2 * ROWS_KC]).fma(b0, c2);
            c3 = FloatVector.broadcast(F, a[ak + 3 * ROWS_KC]).fma(b0, c3);
            c4 = FloatVector.broadcast(F, a[ak + 4 * ROWS_KC]).fma(b0, c4);
            c5 = FloatVector.broadcast(F, a[ak + 5 * ROWS_KC]).fma(b0, c5);
        }
        if (load) {
            c0 = c0.add(FloatVector.fromArray(F, c, co));
            c1 = c1.add(FloatVector.fromArray(F, c, co + NR));
            c2 = c2.add(FloatVector.fromArray(F, c, co + 2 * NR));
            c3 = c3.add(FloatVector.fromArray(F, c, co + 3 * NR));
            c4 = c4.add(FloatVector.fromArray(F, c, co + 4 * NR));
            c5 = c5.add(FloatVector.fromArray(F, c, co + 5 * NR));
        }
        c0.intoArray(c, co);
        c1.intoArray(c, co + NR);
        c2.intoArray(c, co + 2 * NR);
        c3.intoArray(c, co + 3 * NR);
        c4.intoArray(c, co + 4 * NR);
        c5.intoArray(c, co + 5 * NR);
    }
}
