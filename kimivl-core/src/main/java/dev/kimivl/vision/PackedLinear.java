package dev.kimivl.vision;

import dev.kimivl.tensor.KernelSettings;
import dev.kimivl.tensor.Matrix;
import dev.kimivl.tensor.MicroKernel;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * A vision Linear layer y = x·Wᵀ + b computed as a dense float32 GEMM on weights converted into a packed panel layout,
 * for the compute-bound vision tower (thousands of patches per call).
 *
 * <p>The packed float32 copy is not kept: the caller packs ({@link #pack}) right before the product, into a buffer it
 * reuses layer after layer, and the source matrix (quantized, memory-mapped) stays the only resident copy. Kept
 * resident, the tower's panels were 1.8 GB of heap for a 0.6 GB Q8_0 mmproj. Packing is a dequantize + transpose of
 * each weight once per encode: 0.7 s wall (1.2 CPU-s) for the full-size Q8_0 tower on 2 threads, against 40-100 s for
 * an 896×896 image (16 s for 448×448).
 *
 * <p>Layout: W [N, K] (PyTorch Linear) becomes ⌈N/16⌉ panels of [K][16] floats (16 consecutive output features per
 * k, zero-padded), so the micro-kernel streams one 64-byte row per k. Activations are packed per block into
 * [rows/6][kc][6]. The 6×16 micro-kernel ({@link MicroKernel#gemm6x16}, shared with MoonViT's attention) keeps 12
 * AVX2 accumulators (6 patches × 16 outputs), two weight vectors and one broadcast in the 16 ymm registers:
 * 12 FMAs per 2 vector loads + 6 broadcasts.
 *
 * <p>Blocking: k in blocks of {@link #KC} (a 16 KB weight micro-panel stays in L1 while the row block passes over it),
 * rows in blocks of {@link #MC} (the packed activation block, 96 KB, stays in L2). Work items are (row block, column
 * range) pairs taken dynamically by the pool threads, so a core slowed by other load does not stall the other.
 *
 * <p>Epilogues are fused: bias, residual accumulate (y += x·Wᵀ + b) and GELU (tanh or erf) are applied to the
 * accumulators before the single store, so no extra pass over the output is needed.
 */
final class PackedLinear {
    static final VectorSpecies<Float> F = dev.kimivl.tensor.Vectors.F8;   // the 6×16 kernel is blocked for 8 lanes
    static final int MR = MicroKernel.MR, NR = MicroKernel.NR;
    static final int KC = KernelSettings.SYSTEM.vitKc();
    static final int MC = KernelSettings.SYSTEM.vitMcRounded();
    /** Default output columns per work item (about; -Dkimivl.vit.nc): the output block [MC, nc] stays in L2. */
    static final int NC = KernelSettings.SYSTEM.vitNc();

    enum Act { NONE, GELU_TANH, GELU_ERF }

    private final Matrix source;
    private final float[] bias;          // [N] or null
    final int n, k;
    /** Output columns per work item (about), {@link #NC} unless given. */
    private final int nc;

    PackedLinear(Matrix w, float[] bias) { this(w, bias, NC); }

    /** With nc output columns per work item (benchmarks compare sizes on one set of weights). */
    PackedLinear(Matrix w, float[] bias, int nc) {
        if (nc < NR) throw new IllegalArgumentException("nc " + nc + " is below one panel of " + NR + " columns");
        this.nc = nc;
        if (F.length() != 8) throw new IllegalStateException("PackedLinear needs 8-float vectors, species is " + F);
        this.source = w;
        this.bias = bias;
        this.n = w.rows();
        this.k = w.cols();
        if (bias != null && bias.length != n) throw new IllegalArgumentException("bias has " + bias.length + " floats, weight has " + n + " rows");
    }

    int rows() { return n; }

    int cols() { return k; }

    /** Floats of the packed weights: ⌈N/16⌉·16·K. */
    int packedSize() { return Math.multiplyExact((n + NR - 1) / NR * NR, k); }

    /**
     * Packs W into panels [⌈N/16⌉][K][16] (in parallel): into buf when it holds {@link #packedSize()} floats (its
     * first packedSize floats are overwritten, the rest left alone), else into a new array. Returns the panels.
     */
    float[] pack(float[] buf) {
        int np = (n + NR - 1) / NR;
        float[] out = buf != null && buf.length >= packedSize() ? buf : new float[packedSize()];
        Matrix w = source;
        VisionParallel.forTasks(np, (task, scratch) -> {
            float[] rows = scratch.f0(NR * k);                 // [16, K] the panel's weight rows as float32
            int r0 = task * NR, nr = Math.min(NR, n - r0);
            for (int i = 0; i < nr; i++) w.row(r0 + i, rows, i * k);
            int base = task * k * NR;
            for (int c = 0; c < k; c++) {
                int o = base + c * NR;
                for (int i = 0; i < nr; i++) out[o + i] = rows[i * k + c];
                for (int i = nr; i < NR; i++) out[o + i] = 0f;   // padding rows past N (buf may hold another layer)
            }
        });
        return out;
    }

    /** y[m, N] = x[m, K]·Wᵀ + b, then the activation; w: this layer's {@link #pack packed} weights. */
    void forward(float[] w, float[] x, int m, float[] y, Act act) { run(w, x, m, y, false, act); }

    /** y[m, N] += x[m, K]·Wᵀ + b (a residual connection fused into the store); w: this layer's packed weights. */
    void forwardAdd(float[] w, float[] x, int m, float[] y) { run(w, x, m, y, true, Act.NONE); }

    private void run(float[] w, float[] x, int m, float[] y, boolean accumulate, Act act) {
        if (w.length < packedSize()) throw new IllegalArgumentException("packed weights have " + w.length + " floats, need " + packedSize());
        if ((long) m * k > x.length) throw new IllegalArgumentException("x has " + x.length + " floats, needs " + (long) m * k);
        if ((long) m * n > y.length) throw new IllegalArgumentException("y has " + y.length + " floats, needs " + (long) m * n);
        if (m == 0) return;
        int rowBlocks = (m + MC - 1) / MC;
        int panelsN = (n + NR - 1) / NR;
        // columns in chunks of about NC so the output block [MC, NC] stays in L2 across the k-blocks, and enough work
        // items for dynamic balance on 2 threads
        int colSplits = Math.max(1, Math.min(panelsN,
                Math.max((panelsN * NR + nc / 2) / nc, (4 * VisionParallel.threads() + rowBlocks - 1) / rowBlocks)));
        int tasks = rowBlocks * colSplits;
        // k in equal blocks of KC..2·KC−1 (1152 = 4 × 288, 4304 = 16 × 269): no short last block
        int kBlocks = Math.max(1, k / KC);
        VisionParallel.forTasks(tasks, (task, scratch) -> {
            int rb = task / colSplits, cs = task % colSplits;
            int i0 = rb * MC, mb = Math.min(MC, m - i0);
            int p0 = (int) ((long) panelsN * cs / colSplits), p1 = (int) ((long) panelsN * (cs + 1) / colSplits);
            float[] ap = scratch.packA;
            for (int kb = 0; kb < kBlocks; kb++) {
                int pc = (int) ((long) k * kb / kBlocks), kc = (int) ((long) k * (kb + 1) / kBlocks) - pc;
                packA(x, k, i0, mb, pc, kc, ap);
                boolean load = pc > 0 || accumulate, last = kb == kBlocks - 1;
                for (int jp = p0; jp < p1; jp++) {
                    int j0 = jp * NR, nj = Math.min(NR, n - j0);
                    int bo = jp * k * NR + pc * NR;
                    for (int ir = 0; ir < mb; ir += MR) {
                        int mr = Math.min(MR, mb - ir);
                        int ao = ir * kc;
                        if (mr == MR && nj == NR) {
                            int co = (i0 + ir) * n + j0;
                            kernel(ap, ao, w, bo, kc, y, co, n, load);
                            if (last) epilogue(y, co, n, MR, bias, j0, act);
                        } else {
                            // edge tile: through a 6×16 scratch tile
                            float[] t = scratch.tile;
                            if (load) {
                                for (int r = 0; r < mr; r++) System.arraycopy(y, (i0 + ir + r) * n + j0, t, r * NR, nj);
                            }
                            kernel(ap, ao, w, bo, kc, t, 0, NR, load);
                            if (last) {
                                float[] bb = null;
                                if (bias != null) {
                                    bb = scratch.biasTile;
                                    System.arraycopy(bias, j0, bb, 0, nj);
                                }
                                epilogue(t, 0, NR, mr, bb, 0, act);
                            }
                            for (int r = 0; r < mr; r++) System.arraycopy(t, r * NR, y, (i0 + ir + r) * n + j0, nj);
                        }
                    }
                }
            }
        });
    }

    /**
     * Tile rows [mr][16] at co (stride ldc): += bias, then the activation, in place (the tile is still in L1). One
     * vector per iteration and one activation call site per method: with the 12 vectors unrolled, C2 hit
     * NodeCountInliningCutoff, left geluTanh out of line and boxed every vector (GELU then cost 8% of fc0).
     */
    private static void epilogue(float[] c, int co, int ldc, int mr, float[] bias, int bi, Act act) {
        switch (act) {
            case NONE -> { if (bias != null) biasTile(c, co, ldc, mr, bias, bi); }
            case GELU_TANH -> geluTanhTile(c, co, ldc, mr, bias, bi);
            case GELU_ERF -> geluErfTile(c, co, ldc, mr, bias, bi);
        }
    }

    private static void biasTile(float[] c, int co, int ldc, int mr, float[] bias, int bi) {
        FloatVector b0 = FloatVector.fromArray(F, bias, bi), b1 = FloatVector.fromArray(F, bias, bi + 8);
        for (int r = 0, o = co; r < mr; r++, o += ldc) {
            FloatVector.fromArray(F, c, o).add(b0).intoArray(c, o);
            FloatVector.fromArray(F, c, o + 8).add(b1).intoArray(c, o + 8);
        }
    }

    private static void geluTanhTile(float[] c, int co, int ldc, int mr, float[] bias, int bi) {
        for (int i = 0; i < 2 * mr; i++) {
            int o = co + (i >> 1) * ldc + (i & 1) * 8;
            FloatVector v = FloatVector.fromArray(F, c, o);
            if (bias != null) v = v.add(FloatVector.fromArray(F, bias, bi + (i & 1) * 8));
            VisionKernels.geluTanh(v).intoArray(c, o);
        }
    }

    private static void geluErfTile(float[] c, int co, int ldc, int mr, float[] bias, int bi) {
        for (int i = 0; i < 2 * mr; i++) {
            int o = co + (i >> 1) * ldc + (i & 1) * 8;
            FloatVector v = FloatVector.fromArray(F, c, o);
            if (bias != null) v = v.add(FloatVector.fromArray(F, bias, bi + (i & 1) * 8));
            VisionKernels.geluErf(v).intoArray(c, o);
        }
    }

    /** ap[(r/6)·kc·6 + kk·6 + r%6] = x[i0 + r, pc + kk]; rows past mb are zero. */
    private static void packA(float[] x, int k, int i0, int mb, int pc, int kc, float[] ap) {
        for (int ir = 0; ir < mb; ir += MR) {
            int base = ir * kc;
            int mr = Math.min(MR, mb - ir);
            for (int r = 0; r < MR; r++) {
                if (r < mr) {
                    int xo = (i0 + ir + r) * k + pc;
                    for (int kk = 0; kk < kc; kk++) ap[base + kk * MR + r] = x[xo + kk];
                } else {
                    for (int kk = 0; kk < kc; kk++) ap[base + kk * MR + r] = 0f;
                }
            }
        }
    }

    /**
     * C[6, 16] (row stride ldc, at co) = (load ? C : 0) + A[6, kc]·B[kc, 16]: A packed [kc][6] at ao, B packed
     * [kc][16] at bo: {@link MicroKernel#gemm6x16} without column maxima.
     */
    static void kernel(float[] a, int ao, float[] b, int bo, int kc, float[] c, int co, int ldc, boolean load) {
        MicroKernel.gemm6x16(a, ao, b, bo, kc, c, co, ldc, load, null);
    }
}
