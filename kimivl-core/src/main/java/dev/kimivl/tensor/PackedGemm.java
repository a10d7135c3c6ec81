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
 *   <li>the 6×16 micro-kernel ({@link MicroKernel#rows6x16}, its row-major-A form) keeps 12 accumulators (6 weight
 *       rows × 16 inputs), two input vectors and one broadcast in the 16 AVX2 registers: 12 FMAs per 2 loads + 6
 *       broadcasts; with AVX-512, {@link MicroKernel#rows12x16} holds 12 weight rows × 16 inputs in 12 zmm registers
 *       (same floats, 1.4-2× the multiply-adds per second). Tiles are accumulated over the k-blocks in a small
 *       per-thread buffer and transposed into y once per row block.
 * </ul>
 * Row blocks are spread over the one pool ({@link Parallel#forRange}).
 */
final class PackedGemm {
    private static final VectorSpecies<Float> F = Vectors.F8;
    static final int MR = MicroKernel.MR, NR = MicroKernel.NR;
    /** Columns per k-block: a [MC][KC] weight block of 24 KB and a 16 KB input micro-panel. */
    static final int KC = MicroKernel.ROWS_KC;
    /** Weight rows per block (a multiple of 6). */
    static final int MC = KernelSettings.SYSTEM.gemmMcRounded();

    /**
     * Decode whole rows of a block first (one sequential pass over its contiguous bytes), then copy k-blocks: 10-18%
     * faster than decoding each [24 × 256] tile in place (decodeTile, -Dkimivl.gemmTileDecode=true) when the weights
     * come from memory (an expert's do), since the tile walk touches 24 rows a few cache lines at a time.
     */
    static final boolean FULL_ROWS = !KernelSettings.SYSTEM.gemmTileDecode();

    /** Multiply-adds per native tile call at most: a critical call holds off safepoints (~1 ms at the FMA peak). */
    private static final int NATIVE_CALL_MACS = 1 << 26;

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

    /**
     * Whether the bf16 tiles run here: the C library's bf16 form on this CPU ({@link NativeKernels#bf16GemmTiles}), with
     * a block it takes (at most 96 rows × 256 columns, an even k-block so that k-pairs never straddle two).
     */
    static boolean bf16Tiles() {
        return MicroKernel.WIDE && NativeKernels.bf16GemmTiles() && KC % 2 == 0 && KC <= 256 && MC <= 96;
    }

    private static final ThreadLocal<int[]> INT_SCRATCH = new ThreadLocal<>();

    /** An int scratch of at least size (the bf16 panels), kept per thread up to {@link #KEEP_FLOATS}. */
    private static int[] scratchInts(int size) {
        if (size > KEEP_FLOATS) return new int[size];
        int[] a = INT_SCRATCH.get();
        if (a == null || a.length < size) { a = new int[size]; INT_SCRATCH.set(a); }
        return a;
    }

    static void matmul(Matrix m, float[] x, float[] y, int n) {
        matmul(m, x, y, n, MicroKernel.WIDE);
    }

    /** {@link #matmul} with the 512-bit kernel ({@link MicroKernel#rows12x16}) or the 8-lane ones: tests compare both. */
    static void matmul(Matrix m, float[] x, float[] y, int n, boolean wide) {
        run(m, x, false, n, y, false, wide);
    }

    /**
     * The general form: the n inputs are the rows of x [n, cols] ({@code xColumns} false) or the columns of
     * x [cols, n] (true: B of C = A·B, packed straight from its rows, no transpose); the result goes to y[t·rows + r]
     * ({@code yByRow} false) or y[r·n + t] (true: C [rows, n] row-major, copied from the tiles as they are). Every
     * element is the same FMA chain over the columns in k-blocks of {@link #KC} whichever the layouts, so the floats
     * are those of the transposing forms.
     */
    static void run(Matrix m, float[] x, boolean xColumns, int n, float[] y, boolean yByRow, boolean wide) {
        run(m, x, xColumns, n, y, yByRow, wide, false);
    }

    /**
     * {@link #run}, or with {@code lower} only the micro-tiles that reach the lower triangle (input t ≤ row r; a Gram
     * matrix X·Xᵀ, whose other half {@link Gemm#gram} mirrors): the elements it computes are the same FMA chains, so
     * the same floats, whichever tiles are left out; the others are left unspecified in y.
     */
    static void run(Matrix m, float[] x, boolean xColumns, int n, float[] y, boolean yByRow, boolean wide, boolean lower) {
        boolean bf16 = wide && Gemm.products() == Gemm.Products.BF16 && bf16Tiles();
        run(m, x, xColumns, n, y, yByRow, wide, lower, NativeKernels.sgemmTiles(wide), bf16);
    }

    /** {@link #run(Matrix, float[], boolean, int, float[], boolean, boolean, boolean, boolean, boolean)} in f32 products. */
    static void run(Matrix m, float[] x, boolean xColumns, int n, float[] y, boolean yByRow, boolean wide, boolean lower, boolean nativeTiles) {
        run(m, x, xColumns, n, y, yByRow, wide, lower, nativeTiles, false);
    }

    /**
     * {@link #run} with the tiles in Java ({@link MicroKernel}) or, with {@code nativeTiles}, in C (kimivl_sgemm.c,
     * where {@link NativeKernels#sgemmTiles}): the same floats either way, the C ones at the FMA peak. With {@code bf16}
     * the C tiles' bf16 form instead ({@link Gemm.Products#BF16}: both operands rounded to bf16, f32 products and sums;
     * needs the 512-bit form and {@link NativeKernels#bf16GemmTiles}).
     */
    static void run(Matrix m, float[] x, boolean xColumns, int n, float[] y, boolean yByRow, boolean wide, boolean lower, boolean nativeTiles, boolean bf16) {
        if (nativeTiles && !NativeKernels.sgemmTiles(wide)) {
            throw new IllegalArgumentException("no native " + (wide ? "512-bit" : "8-lane") + " float GEMM tiles here: " + NativeKernels.STATUS);
        }
        if (bf16 && !(wide && bf16Tiles())) {
            throw new IllegalArgumentException("no bf16 GEMM tiles here (they need the 512-bit form on a CPU with AVX512-BF16): " + NativeKernels.STATUS);
        }
        final int rows = m.rows(), cols = m.cols();
        if (n <= 0 || rows == 0) return;
        final int groups = (n + NR - 1) / NR;
        final float[] xp = scratch(0, Math.multiplyExact(groups * NR, cols));
        // packing is ~1/100 of the multiply-adds' time, but single-threaded it would leave the other core idle: split
        // over the pool when there are several panels of a large input
        Parallel.RangeBody pack = xColumns ? (g0, g1) -> packColumns(x, n, cols, g0, g1, xp) : (g0, g1) -> packX(x, n, cols, g0, g1, xp);
        if (groups >= 4 && (long) n * cols >= (1 << 18)) {
            Parallel.forRange(groups, 2, pack);
        } else {
            pack.run(0, groups);
        }
        // bf16: the packed panels once more as bf16 k-pairs, [groups][⌈cols/2⌉][16] ints, which every row block reads
        final int[] xpb = bf16 ? scratchInts(Math.multiplyExact(groups * NR, (cols + 1) / 2)) : null;
        if (bf16) {
            Parallel.RangeBody convert = (g0, g1) -> NativeKernels.bf16Panels(xp, 0, cols, g0, g1, xpb);
            if (groups >= 4 && (long) n * cols >= (1 << 18)) Parallel.forRange(groups, 2, convert);
            else convert.run(0, groups);
        }
        int blocks = (rows + MC - 1) / MC;
        // QuantMatrix / SegmentMatrix decode each k-block straight into the [MC][KC] block; other kinds decode whole
        // rows into a scratch first
        final boolean ranged = (!FULL_ROWS && ((m instanceof QuantMatrix q && KC % q.dtype().blockSize == 0) || m instanceof SegmentMatrix))
                || m instanceof TransposedFloats;
        Parallel.forRange(blocks, 1, (b0, b1) -> {
            float[] w = ranged ? null : scratch(1, MC * cols);
            float[] a = scratch(2, MC * KC);
            float[] c = scratch(3, groups * NR * MC);
            for (int b = b0; b < b1; b++) block(m, ranged, rows, cols, b * MC, xp, xpb, n, groups, y, yByRow, w, a, c, wide, lower, nativeTiles);
        });
    }

    private static void block(Matrix m, boolean ranged, int rows, int cols, int r0, float[] xp, int[] xpb, int n, int groups,
                              float[] y, boolean yByRow, float[] w, float[] a, float[] c, boolean wide, boolean lower, boolean nativeTiles) {
        int nr = Math.min(MC, rows - r0);
        int mg = (nr + MR - 1) / MR;
        if (!ranged) for (int i = 0; i < nr; i++) m.row(r0 + i, w, i * cols);
        for (int pc = 0; pc < cols; pc += KC) {
            int kc = Math.min(KC, cols - pc);
            if (m instanceof QuantMatrix q && ranged) {
                q.decodeTile(r0, nr, pc, kc, a, 0, KC);
            } else if (m instanceof SegmentMatrix sm && ranged) {
                sm.decodeTile(r0, nr, pc, kc, a, 0, KC);
            } else if (m instanceof TransposedFloats tf) {
                tf.decodeTile(r0, nr, pc, kc, a, 0, KC);
            } else {
                for (int i = 0; i < nr; i++) System.arraycopy(w, i * cols + pc, a, i * KC, kc);
            }
            // rows past the matrix's end in the last 6-row group multiply as zeros
            for (int i = nr; i < mg * MR; i++) Arrays.fill(a, i * KC, i * KC + kc, 0f);
            boolean load = pc > 0;
            if (nativeTiles || xpb != null) {
                // the tiles in C, a bounded share of panels per call: the same floats at the FMA peak (kimivl_sgemm.c),
                // or bf16 products (kv_sgemm_kblock_bf16: panels as k-pairs, KC even so pc / 2 is a pair)
                int pairs = (cols + 1) / 2;
                int per = (int) Math.max(1, NATIVE_CALL_MACS / ((long) mg * MR * kc * NR));
                for (int g0 = 0; g0 < groups; g0 += per) {
                    int ng = Math.min(per, groups - g0);
                    if (xpb != null) {
                        NativeKernels.sgemmKblockBf16(a, 0, KC, mg, kc, xpb, (g0 * pairs + pc / 2) * NR, pairs * NR, ng,
                                c, g0 * MC * NR, MC * NR, load, lower, r0 - g0 * NR);
                    } else {
                        NativeKernels.sgemmKblock(wide, a, 0, KC, mg, kc, xp, (g0 * cols + pc) * NR, cols * NR, ng,
                                c, g0 * MC * NR, MC * NR, load, lower, r0 - g0 * NR);
                    }
                }
                continue;
            }
            for (int g = 0; g < groups; g++) {
                int bo = (g * cols + pc) * NR;
                int co = g * MC * NR;
                // lower: the 6-row groups wholly above the diagonal (every row < this panel's first input) are skipped,
                // from an even group so that the 12-row pairs stay as they are
                int first = lower ? Math.max(0, (g * NR - r0) / MR) : 0;
                if (wide) {
                    // AVX-512: 12 rows × 16 inputs in zmm registers for every panel (a short last panel's zero lanes
                    // cost no more than the 8-lane forms' extra loads)
                    int ir = first & ~1;
                    for (; ir + 2 <= mg; ir += 2) MicroKernel.rows12x16(a, ir * MR * KC, xp, bo, kc, c, co + ir * MR * NR, load);
                    if (ir < mg) MicroKernel.rows6x16(a, ir * MR * KC, xp, bo, kc, c, co + ir * MR * NR, load);
                } else if (n - g * NR > 8) {
                    for (int ir = first; ir < mg; ir++) MicroKernel.rows6x16(a, ir * MR * KC, xp, bo, kc, c, co + ir * MR * NR, load);
                } else {
                    // a last panel of ≤ 8 inputs: 12 rows × 8 inputs (12 accumulators) where two 6-row groups remain
                    int ir = first & ~1;
                    for (; ir + 2 <= mg; ir += 2) MicroKernel.rows12x8(a, ir * MR * KC, xp, bo, kc, c, co + ir * MR * NR, load);
                    if (ir < mg) MicroKernel.rows6x8(a, ir * MR * KC, xp, bo, kc, c, co + ir * MR * NR, load);
                }
            }
        }
        if (yByRow) {
            // c[g][row in block][16 inputs] → y[r·n + t]: 16 contiguous floats per row and panel
            for (int g = 0; g < groups; g++) {
                int nt = Math.min(NR, n - g * NR);
                for (int i = 0; i < nr; i++) System.arraycopy(c, g * MC * NR + i * NR, y, (r0 + i) * n + g * NR, nt);
            }
            return;
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

    /** xp[g][k][j] = x[k·n + 16g + j] (input t is column t of x [cols, n]), zero past n: 16 contiguous floats per k. */
    static void packColumns(float[] x, int n, int cols, int g0, int g1, float[] xp) {
        for (int g = g0; g < g1; g++) {
            int t0 = g * NR, nt = Math.min(NR, n - t0), base = g * cols * NR;
            for (int k = 0; k < cols; k++) {
                System.arraycopy(x, k * n + t0, xp, base + k * NR, nt);
                if (nt < NR) Arrays.fill(xp, base + k * NR + nt, base + (k + 1) * NR, 0f);
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
}
