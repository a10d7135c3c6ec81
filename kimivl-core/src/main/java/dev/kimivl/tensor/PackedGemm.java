package dev.kimivl.tensor;

import java.util.Arrays;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * Batched product y[t·rows + r] = Σ_c W[r, c]·x[t·cols + c] for n ≳ 8 inputs (prefill), adapted from the vision
 * tower's packed f32 GEMM (dev.kimivl.vision.PackedLinear) with the operands' roles swapped so that nothing of the
 * weights has to be transposed (a transpose costs as much as the multiply-adds when n is ~48, an average expert):
 *
 * <ul>
 *   <li>the inputs are packed once per call into panels of 16 inputs, [⌈n/16⌉][cols][16] (zero-padded), the vector
 *       operand of the micro-kernel: one 64-byte row of the panel per k;
 *   <li>weight rows are decoded (any dtype, {@link Matrix#row}) in blocks of {@link #MC} rows, then copied per k-block
 *       of {@link #KC} columns into a [MC][KC] row-major block whose row stride is a compile-time constant, so the six
 *       broadcasts of a k step address one index register with constant displacements. Each weight is decoded once
 *       per call;
 *   <li>the 6×16 micro-kernel keeps 12 accumulators (6 weight rows × 16 inputs), two input vectors and one broadcast
 *       in the 16 AVX2 registers: 12 FMAs per 2 loads + 6 broadcasts. Tiles are accumulated over the k-blocks in a
 *       small per-thread buffer and transposed into y once per row block.
 * </ul>
 * Row blocks are spread over the one pool ({@link Parallel#forRange}).
 */
final class PackedGemm {
    private static final VectorSpecies<Float> F = Vectors.F8;
    static final int MR = 6, NR = 16;
    /** Columns per k-block: a [MC][KC] weight block of 24 KB and a 16 KB input micro-panel. */
    static final int KC = KernelSettings.SYSTEM.gemmKc();
    /** Weight rows per block (a multiple of 6). */
    static final int MC = KernelSettings.SYSTEM.gemmMcRounded();

    /**
     * Decode whole rows of a block first (one sequential pass over its contiguous bytes), then copy k-blocks: 10-18%
     * faster than decoding each [24 × 256] tile in place (decodeTile, -Dkimivl.gemmTileDecode=true) when the weights
     * come from memory (an expert's do), since the tile walk touches 24 rows a few cache lines at a time.
     */
    static final boolean FULL_ROWS = !KernelSettings.SYSTEM.gemmTileDecode();

    private static final ThreadLocal<float[][]> SCRATCH = ThreadLocal.withInitial(() -> new float[4][]);

    private PackedGemm() {}

    /** 8-float vectors intrinsified (AVX2 or wider). */
    static boolean supported() { return Vectors.FL >= 8; }

    /** Scratch arrays up to this many floats (16 MB) are kept per thread; larger ones (a very long prompt's packed
     *  inputs) are allocated per call so that no thread holds on to them. */
    private static final int KEEP_FLOATS = 4 << 20;

    private static float[] scratch(int slot, int size) {
        if (size > KEEP_FLOATS) return new float[size];
        float[][] s = SCRATCH.get();
        float[] a = s[slot];
        if (a == null || a.length < size) { a = new float[size]; s[slot] = a; }
        return a;
    }

    static void matmul(Matrix m, float[] x, float[] y, int n) {
        final int rows = m.rows(), cols = m.cols();
        if (n <= 0 || rows == 0) return;
        final int groups = (n + NR - 1) / NR;
        final float[] xp = scratch(0, Math.multiplyExact(groups * NR, cols));
        // packing is ~1/100 of the multiply-adds' time, but single-threaded it would leave the other core idle: split
        // over the pool when there are several panels of a large input
        if (groups >= 4 && (long) n * cols >= (1 << 18)) {
            Parallel.forRange(groups, 2, (g0, g1) -> packX(x, n, cols, g0, g1, xp));
        } else {
            packX(x, n, cols, 0, groups, xp);
        }
        int blocks = (rows + MC - 1) / MC;
        // QuantMatrix / SegmentMatrix decode each k-block straight into the [MC][KC] block; other kinds decode whole
        // rows into a scratch first
        final boolean ranged = !FULL_ROWS && ((m instanceof QuantMatrix q && KC % q.dtype().blockSize == 0) || m instanceof SegmentMatrix);
        Parallel.forRange(blocks, 1, (b0, b1) -> {
            float[] w = ranged ? null : scratch(1, MC * cols);
            float[] a = scratch(2, MC * KC);
            float[] c = scratch(3, groups * NR * MC);
            for (int b = b0; b < b1; b++) block(m, ranged, rows, cols, b * MC, xp, n, groups, y, w, a, c);
        });
    }

    private static void block(Matrix m, boolean ranged, int rows, int cols, int r0, float[] xp, int n, int groups,
                              float[] y, float[] w, float[] a, float[] c) {
        int nr = Math.min(MC, rows - r0);
        int mg = (nr + MR - 1) / MR;
        if (!ranged) for (int i = 0; i < nr; i++) m.row(r0 + i, w, i * cols);
        for (int pc = 0; pc < cols; pc += KC) {
            int kc = Math.min(KC, cols - pc);
            if (m instanceof QuantMatrix q && ranged) {
                q.decodeTile(r0, nr, pc, kc, a, 0, KC);
            } else if (m instanceof SegmentMatrix sm && ranged) {
                sm.decodeTile(r0, nr, pc, kc, a, 0, KC);
            } else {
                for (int i = 0; i < nr; i++) System.arraycopy(w, i * cols + pc, a, i * KC, kc);
            }
            // rows past the matrix's end in the last 6-row group multiply as zeros
            for (int i = nr; i < mg * MR; i++) Arrays.fill(a, i * KC, i * KC + kc, 0f);
            boolean load = pc > 0;
            for (int g = 0; g < groups; g++) {
                int bo = (g * cols + pc) * NR;
                int co = g * MC * NR;
                if (n - g * NR > 8) {
                    for (int ir = 0; ir < mg; ir++) kernel16(a, ir * MR * KC, xp, bo, kc, c, co + ir * MR * NR, load);
                } else {
                    // a last panel of ≤ 8 inputs: 12 rows × 8 inputs (12 accumulators) where two 6-row groups remain
                    int ir = 0;
                    for (; ir + 2 <= mg; ir += 2) kernel12x8(a, ir * MR * KC, xp, bo, kc, c, co + ir * MR * NR, load);
                    if (ir < mg) kernel8(a, ir * MR * KC, xp, bo, kc, c, co + ir * MR * NR, load);
                }
            }
        }
        // c[g][row in block][16 inputs] → y[t·rows + r]
        for (int g = 0; g < groups; g++) {
            int nt = Math.min(NR, n - g * NR);
            for (int j = 0; j < nt; j++) {
                int yo = (g * NR + j) * rows + r0, co = g * MC * NR + j;
                for (int i = 0; i < nr; i++) y[yo + i] = c[co + i * NR];
            }
        }
    }

    /** xp[g][k][j] = x[(16g + j)·cols + k], zero past n. */
    static void packX(float[] x, int n, int cols, int g0, int g1, float[] xp) {
        for (int g = g0; g < g1; g++) {
            int base = g * cols * NR;
            for (int j = 0; j < NR; j++) {
                int t = g * NR + j;
                if (t < n) {
                    int xo = t * cols;
                    for (int k = 0, o = base + j; k < cols; k++, o += NR) xp[o] = x[xo + k];
                } else {
                    for (int k = 0, o = base + j; k < cols; k++, o += NR) xp[o] = 0f;
                }
            }
        }
    }

    /**
     * C[6][16] at co (row stride 16) = (load ? C : 0) + A[6 rows, kc]·B[kc, 16]: A row-major with row stride KC at
     * ao, B packed [kc][16] at bo. Only the loop and the stores, so C2 keeps all 12 accumulators in registers.
     */
    static void kernel16(float[] a, int ao, float[] b, int bo, int kc, float[] c, int co, boolean load) {
        FloatVector c00 = FloatVector.zero(F), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
        FloatVector c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
        for (int ak = ao, bk = bo, end = bo + kc * NR; bk < end; bk += NR, ak++) {
            FloatVector b0 = FloatVector.fromArray(F, b, bk), b1 = FloatVector.fromArray(F, b, bk + 8);
            FloatVector av = FloatVector.broadcast(F, a[ak]);
            c00 = av.fma(b0, c00); c01 = av.fma(b1, c01);
            av = FloatVector.broadcast(F, a[ak + KC]);
            c10 = av.fma(b0, c10); c11 = av.fma(b1, c11);
            av = FloatVector.broadcast(F, a[ak + 2 * KC]);
            c20 = av.fma(b0, c20); c21 = av.fma(b1, c21);
            av = FloatVector.broadcast(F, a[ak + 3 * KC]);
            c30 = av.fma(b0, c30); c31 = av.fma(b1, c31);
            av = FloatVector.broadcast(F, a[ak + 4 * KC]);
            c40 = av.fma(b0, c40); c41 = av.fma(b1, c41);
            av = FloatVector.broadcast(F, a[ak + 5 * KC]);
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

    /**
     * 12 weight rows (two 6-row groups, row stride KC) × the first 8 inputs of a panel: 12 FMAs per load and 12
     * broadcasts, for a last panel of at most 8 inputs (the 6×8 kernel does 6 FMAs per 7 loads).
     */
    static void kernel12x8(float[] a, int ao, float[] b, int bo, int kc, float[] c, int co, boolean load) {
        FloatVector c0 = FloatVector.zero(F), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0;
        FloatVector c6 = c0, c7 = c0, c8 = c0, c9 = c0, c10 = c0, c11 = c0;
        for (int ak = ao, bk = bo, end = bo + kc * NR; bk < end; bk += NR, ak++) {
            FloatVector b0 = FloatVector.fromArray(F, b, bk);
            c0 = FloatVector.broadcast(F, a[ak]).fma(b0, c0);
            c1 = FloatVector.broadcast(F, a[ak + KC]).fma(b0, c1);
            c2 = FloatVector.broadcast(F, a[ak + 2 * KC]).fma(b0, c2);
            c3 = FloatVector.broadcast(F, a[ak + 3 * KC]).fma(b0, c3);
            c4 = FloatVector.broadcast(F, a[ak + 4 * KC]).fma(b0, c4);
            c5 = FloatVector.broadcast(F, a[ak + 5 * KC]).fma(b0, c5);
            c6 = FloatVector.broadcast(F, a[ak + 6 * KC]).fma(b0, c6);
            c7 = FloatVector.broadcast(F, a[ak + 7 * KC]).fma(b0, c7);
            c8 = FloatVector.broadcast(F, a[ak + 8 * KC]).fma(b0, c8);
            c9 = FloatVector.broadcast(F, a[ak + 9 * KC]).fma(b0, c9);
            c10 = FloatVector.broadcast(F, a[ak + 10 * KC]).fma(b0, c10);
            c11 = FloatVector.broadcast(F, a[ak + 11 * KC]).fma(b0, c11);
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

    /** {@link #kernel16} for a last panel with at most 8 inputs: only its first half. */
    static void kernel8(float[] a, int ao, float[] b, int bo, int kc, float[] c, int co, boolean load) {
        FloatVector c0 = FloatVector.zero(F), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0;
        for (int ak = ao, bk = bo, end = bo + kc * NR; bk < end; bk += NR, ak++) {
            FloatVector b0 = FloatVector.fromArray(F, b, bk);
            c0 = FloatVector.broadcast(F, a[ak]).fma(b0, c0);
            c1 = FloatVector.broadcast(F, a[ak + KC]).fma(b0, c1);
            c2 = FloatVector.broadcast(F, a[ak + 2 * KC]).fma(b0, c2);
            c3 = FloatVector.broadcast(F, a[ak + 3 * KC]).fma(b0, c3);
            c4 = FloatVector.broadcast(F, a[ak + 4 * KC]).fma(b0, c4);
            c5 = FloatVector.broadcast(F, a[ak + 5 * KC]).fma(b0, c5);
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
