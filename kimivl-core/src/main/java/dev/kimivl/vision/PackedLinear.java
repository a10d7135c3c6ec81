package dev.kimivl.vision;

import dev.kimivl.tensor.VectorMath;

import dev.kimivl.tensor.KernelSettings;
import dev.kimivl.tensor.Matrix;
import dev.kimivl.tensor.MicroKernel;
import dev.kimivl.tensor.QuantMatrix;
import dev.kimivl.tensor.QuantizedInput;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * A vision Linear layer y = x·Wᵀ + b over thousands of patches per call (compute-bound), in one of two forms chosen
 * from the weights when the layer is built:
 *
 * <p><b>Integer (Q8_0 and Q4_0 weights with the native kernels, {@link QuantMatrix#usesNativeTiles}).</b> The weights
 * stay in their GGUF blocks (memory-mapped); no float copy of them is made. The activations are quantized per row to
 * int8 blocks of 32 (llama.cpp's q8_0, {@link QuantizedInput}) once per product, and the language model's prefill GEMM
 * ({@link QuantMatrix#matmulTile}: vpmaddubsw/vpmaddwd, or vpdpbusd where the CPU has AVX-VNNI; kimivl_kernels.c)
 * computes tiles of [{@link #INT_TOKENS} patches × {@link #INT_ROWS} outputs]; bias, GELU and the residual add are
 * applied to each tile while it is in L1. These are the numerics llama.cpp's CLIP runs a Q8_0 mmproj with (its CPU
 * mul_mat also quantizes the activations to q8_0); they differ from the float path by each activation's rounding to
 * its block's int8 step (QuantVisionTest bounds it).
 * Tiles are taken dynamically by the pool threads, those of one patch block one after another, so the block's packed
 * activations (INT_TOKENS × K bytes) stay in L2 while the layer's weights stream past.
 *
 * <p><b>Float (F32, BF16, F16 weights; quantized ones without the native kernels or with -Dkimivl.intMatvec=false).</b>
 * A dense float32 GEMM on weights converted into a packed panel layout. The packed copy is not kept: the caller packs
 * ({@link #pack}) right before the product, into a buffer it reuses layer after layer, and the source matrix stays the
 * only resident copy. Kept resident, the tower's panels were 1.8 GB of heap for a 0.6 GB Q8_0 mmproj. Packing is a
 * dequantize + transpose of each weight once per encode.
 *
 * <p>Float layout: W [N, K] (PyTorch Linear) becomes ⌈N/16⌉ panels of [K][16] floats (16 consecutive output features
 * per k, zero-padded), so the micro-kernel streams one 64-byte row per k. Activations are packed per block into
 * [rows/6][kc][6]. The 6×16 micro-kernel ({@link MicroKernel#gemm6x16}, shared with MoonViT's attention) keeps 12
 * AVX2 accumulators (6 patches × 16 outputs), two weight vectors and one broadcast in the 16 ymm registers:
 * 12 FMAs per 2 vector loads + 6 broadcasts.
 *
 * <p>Float blocking: k in blocks of {@link #KC} (a 16 KB weight micro-panel stays in L1 while the row block passes
 * over it), rows in blocks of {@link #MC} (the packed activation block, 96 KB, stays in L2). Work items are (row block,
 * column range) pairs taken dynamically by the pool threads, so a core slowed by other load does not stall the other.
 *
 * <p>Epilogues are fused in both forms: bias, residual accumulate (y += x·Wᵀ + b) and GELU (tanh or erf) are applied
 * before the single store, so no extra pass over the output is needed.
 */
final class PackedLinear {
    static final VectorSpecies<Float> F = dev.kimivl.tensor.Vectors.F8;   // the 6×16 kernel is blocked for 8 lanes
    static final int MR = MicroKernel.MR, NR = MicroKernel.NR;
    static final int KC = KernelSettings.SYSTEM.vitKc();
    static final int MC = KernelSettings.SYSTEM.vitMcRounded();
    /** Default output columns per work item (about; -Dkimivl.vit.nc): the output block [MC, nc] stays in L2. */
    static final int NC = KernelSettings.SYSTEM.vitNc();

    /**
     * Patches per tile of the integer form: their int8 activations (INT_TOKENS × K bytes, 147 KB for K = 1152) stay in
     * L2 while every weight row of the layer passes; each 4-row weight group is unpacked once per tile.
     */
    static final int INT_TOKENS = 128;
    /** Output features per tile of the integer form (a multiple of the kernel's 4 rows): a [128 × 64] tile is 32 KB. */
    static final int INT_ROWS = 64;

    enum Act { NONE, GELU_TANH, GELU_ERF }

    private final Matrix source;
    /** The weights when the integer form runs them ({@link QuantMatrix#usesNativeTiles}), else null. */
    private final QuantMatrix integer;
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
        this.integer = w instanceof QuantMatrix q && q.usesNativeTiles() ? q : null;
        this.bias = bias;
        this.n = w.rows();
        this.k = w.cols();
        if (bias != null && bias.length != n) throw new IllegalArgumentException("bias has " + bias.length + " floats, weight has " + n + " rows");
    }

    int rows() { return n; }

    int cols() { return k; }

    /** True when the products run on the quantized weights (int8 activations), with no float copy of W. */
    boolean isInteger() { return integer != null; }

    /** Floats of the packed weights: ⌈N/16⌉·16·K, or 0 for the integer form (it packs nothing). */
    int packedSize() { return integer != null ? 0 : Math.multiplyExact((n + NR - 1) / NR * NR, k); }

    /**
     * Packs W into panels [⌈N/16⌉][K][16] (in parallel): into buf when it holds {@link #packedSize()} floats (its
     * first packedSize floats are overwritten, the rest left alone), else into a new array. Returns the panels.
     */
    float[] pack(float[] buf) {
        if (integer != null) return buf;                       // nothing to pack: the kernel reads the blocks
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

    /**
     * The integer form's int8 activations, kept by one forward pass for its next layers with inputs of the same shape
     * (MoonViT's wqkv, wo and fc0 take [L, D], fc1 [L, I]): a batch of arrays per input shape and pass instead of one
     * per product. Two shapes, the older one replaced by a third. One pass at a time (other encodes have their own).
     */
    static final class InputBuffer {
        private QuantizedInput last, before;

        /** A kept batch of [rows, cols], or null. */
        QuantizedInput get(int rows, int cols) {
            for (QuantizedInput q : new QuantizedInput[]{last, before}) {
                if (q != null && q.rows() == rows && q.cols() == cols) return q;
            }
            return null;
        }

        /** q becomes the most recent batch (the other kept one, if not q, the older). */
        void keep(QuantizedInput q) {
            if (q != last) { before = last; last = q; }
        }
    }

    /** y[m, N] = x[m, K]·Wᵀ + b, then the activation; w: this layer's {@link #pack packed} weights. */
    void forward(float[] w, float[] x, int m, float[] y, Act act) { run(w, x, m, y, false, act, null); }

    /** As {@link #forward(float[], float[], int, float[], Act)}, the integer form quantizing x into buf's batch. */
    void forward(float[] w, float[] x, int m, float[] y, Act act, InputBuffer buf) { run(w, x, m, y, false, act, buf); }

    /** y[m, N] += x[m, K]·Wᵀ + b (a residual connection fused into the store); w: this layer's packed weights. */
    void forwardAdd(float[] w, float[] x, int m, float[] y) { run(w, x, m, y, true, Act.NONE, null); }

    /** As {@link #forwardAdd(float[], float[], int, float[])}, the integer form quantizing x into buf's batch. */
    void forwardAdd(float[] w, float[] x, int m, float[] y, InputBuffer buf) { run(w, x, m, y, true, Act.NONE, buf); }

    private void run(float[] w, float[] x, int m, float[] y, boolean accumulate, Act act, InputBuffer buf) {
        if (integer != null) { runInteger(x, m, y, accumulate, act, buf); return; }
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
     * The integer form: y[m, N] (+)= x'[m, K]·Wᵀ + b then act, x' = x quantized per row to int8 blocks of 32. Tiles of
     * [INT_TOKENS patches × INT_ROWS outputs] go to the pool threads in patch-block order; each is computed into the
     * thread's scratch and stored through {@link #storeRow}.
     */
    private void runInteger(float[] x, int m, float[] y, boolean accumulate, Act act, InputBuffer buf) {
        if ((long) m * k > x.length) throw new IllegalArgumentException("x has " + x.length + " floats, needs " + (long) m * k);
        if ((long) m * n > y.length) throw new IllegalArgumentException("y has " + y.length + " floats, needs " + (long) m * n);
        if (m == 0) return;
        QuantMatrix q = integer;
        // [m, K] → int8 blocks of 32 + scales, into the pass's batch when it has this shape
        QuantizedInput xq = QuantizedInput.ofRows(x, m, k, buf != null ? buf.get(m, k) : null);
        if (buf != null) buf.keep(xq);
        q.prepareTiles(xq);
        int tokenBlocks = (m + INT_TOKENS - 1) / INT_TOKENS, rowChunks = (n + INT_ROWS - 1) / INT_ROWS;
        VisionParallel.forTasks(tokenBlocks * rowChunks, (task, scratch) -> {
            int t0 = task / rowChunks * INT_TOKENS, t1 = Math.min(m, t0 + INT_TOKENS);
            int r0 = task % rowChunks * INT_ROWS, r1 = Math.min(n, r0 + INT_ROWS), w = r1 - r0;
            float[] tile = scratch.f1(INT_TOKENS * INT_ROWS);          // [t1 − t0, w]
            q.matmulTile(xq, r0, r1, t0, t1, tile, 0, w);
            for (int t = t0; t < t1; t++) storeRow(tile, (t - t0) * w, y, t * n + r0, w, bias, r0, act, accumulate, scratch);
        });
    }

    /**
     * y[yo + j] = act(t[to + j] + b[bo + j]) for j in [0, w), or y[yo + j] += t[to + j] + b[bo + j] ({@code add}; act is
     * then NONE). A last partial vector goes through an 8-float scratch so the activation stays one vector call.
     */
    private static void storeRow(float[] t, int to, float[] y, int yo, int w, float[] b, int bo, Act act, boolean add,
                                 VisionParallel.Scratch scratch) {
        int j = 0;
        for (int bound = F.loopBound(w); j < bound; j += 8) storeVector(t, to + j, y, yo + j, b, bo + j, act, add);
        if (j < w) {
            int rest = w - j;
            float[] tt = scratch.tail;                            // [t | y | b] of the last partial vector, 8 each
            java.util.Arrays.fill(tt, 0f);
            System.arraycopy(t, to + j, tt, 0, rest);
            System.arraycopy(y, yo + j, tt, 8, rest);
            if (b != null) System.arraycopy(b, bo + j, tt, 16, rest);
            storeVector(tt, 0, tt, 8, b != null ? tt : null, 16, act, add);
            System.arraycopy(tt, 8, y, yo + j, rest);
        }
    }

    private static void storeVector(float[] t, int to, float[] y, int yo, float[] b, int bo, Act act, boolean add) {
        FloatVector v = FloatVector.fromArray(F, t, to);
        if (b != null) v = v.add(FloatVector.fromArray(F, b, bo));
        switch (act) {
            case NONE -> { }
            case GELU_TANH -> v = VectorMath.geluTanh(v);
            case GELU_ERF -> v = VisionKernels.geluErf(v);
        }
        if (add) v = v.add(FloatVector.fromArray(F, y, yo));
        v.intoArray(y, yo);
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
            VectorMath.geluTanh(v).intoArray(c, o);
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
