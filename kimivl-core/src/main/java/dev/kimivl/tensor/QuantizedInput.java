package dev.kimivl.tensor;

import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;

/**
 * An activation vector (or a batch of them) quantized to int8 for the integer kernels, as llama.cpp's q8_0 and q8_K:
 * the input side of {@link QuantMatrix}'s integer products, made once per product and shared by every matrix it
 * multiplies (gate and up, the experts). Shapes: x [rows, cols] → q, q8 [rows·cols], d, s8 [rows·cols / 32], and for
 * cols % 256 == 0 also k8 [rows·cols], kd [rows·cols / 256], kbs [rows·cols / 16].
 *
 * <p>q[c] = round(x[c] / d[c / 32]) (to nearest, ties to even) with d = amax / 127 per block of 32, held widened to
 * 16 bits for the Java kernels and as int8 for the native ones.
 */
public final class QuantizedInput {
    private static final VectorSpecies<Float> F8 = Vectors.F8;
    private static final VectorSpecies<Short> S128 = ShortVector.SPECIES_128;

    final short[] q;
    final float[] d;
    /** Columns per row, and rows (activations of consecutive tokens, stored one after another). */
    final int cols, rows;
    /** The same values for the native kernels: q as int8, d, and 8 × the sum of each block's q. */
    final byte[] q8;
    final int[] s8;
    final MemorySegment q8Segment, dSegment, s8Segment;
    /**
     * The k-quants' form (llama.cpp's Q8_K), when cols is a multiple of 256, else null: int8 values with one scale
     * per 256 (k8, kd = amax / 127) and the sum of every 16 values (kbs). One scale per super-block lets the
     * Q4_K/Q5_K/Q6_K kernels apply the weights' integer sub-block scales in integers and convert to float once
     * per 256 values (kimivl_kquants.c), where per-32 activation scales cost a float step per 32 values.
     */
    final byte[] k8;
    final float[] kd;
    final short[] kbs;
    final MemorySegment k8Segment, kdSegment, kbsSegment;
    /** The floats it was made from (for the per-thread cache), or null. */
    private float[] source;
    /** The native GEMM's packed form ({@link #nativePacked}), made on first use; stale after a reuse requantized it. */
    private NativeKernels.PackedActivations nativePacked;
    private boolean packedStale;

    private QuantizedInput(int cols, int rows) {
        if (cols % 32 != 0) throw new IllegalArgumentException("quantized input needs a multiple of 32 columns, got " + cols);
        int n = Math.multiplyExact(cols, rows);
        this.cols = cols;
        this.rows = rows;
        this.q = new short[n];
        this.d = new float[n / 32];
        this.q8 = new byte[n];
        this.s8 = new int[n / 32];
        this.q8Segment = MemorySegment.ofArray(q8);
        this.dSegment = MemorySegment.ofArray(d);
        this.s8Segment = MemorySegment.ofArray(s8);
        boolean k = cols % 256 == 0;
        this.k8 = k ? new byte[n] : null;
        this.kd = k ? new float[n / 256] : null;
        this.kbs = k ? new short[n / 16] : null;
        this.k8Segment = k ? MemorySegment.ofArray(k8) : null;
        this.kdSegment = k ? MemorySegment.ofArray(kd) : null;
        this.kbsSegment = k ? MemorySegment.ofArray(kbs) : null;
    }

    /** Quantizes x[xo .. xo + cols). */
    public static QuantizedInput of(float[] x, int xo, int cols) {
        QuantizedInput qi = new QuantizedInput(cols, 1);
        qi.quantize(x, xo);
        return qi;
    }

    /** Quantizes rows x[t·cols .. (t + 1)·cols) for t in [0, rows) (the batched kernels' input). */
    public static QuantizedInput ofRows(float[] x, int rows, int cols) {
        QuantizedInput qi = new QuantizedInput(cols, rows);
        qi.quantize(x, 0);
        return qi;
    }

    /**
     * As {@link #ofRows(float[], int, int)}, into {@code reuse}'s arrays when it has the same shape (its packed form, if
     * made, is packed again on its next use), else into a new batch. For a caller that quantizes one activation shape
     * product after product (MoonViT's layers): a batch is megabytes, and new ones each time pile up as garbage
     * between collections (about +100 MB of peak RSS on a 4-layer tower at 896x896). The caller owns reuse: nothing
     * else may use it then.
     */
    public static QuantizedInput ofRows(float[] x, int rows, int cols, QuantizedInput reuse) {
        if (reuse == null || reuse.rows != rows || reuse.cols != cols || reuse.source != null) return ofRows(x, rows, cols);
        synchronized (reuse) {
            reuse.packedStale = true;
        }
        reuse.quantize(x, 0);
        return reuse;
    }

    public int cols() { return cols; }

    /** Rows of the batch (tokens). */
    public int rows() { return rows; }

    /** Row t of a batch as a one-row input (a copy). */
    QuantizedInput row(int t) {
        QuantizedInput r = new QuantizedInput(cols, 1);
        int nb = cols / 32;
        System.arraycopy(q, t * cols, r.q, 0, cols);
        System.arraycopy(q8, t * cols, r.q8, 0, cols);
        System.arraycopy(d, t * nb, r.d, 0, nb);
        System.arraycopy(s8, t * nb, r.s8, 0, nb);
        if (k8 != null) {
            System.arraycopy(k8, t * cols, r.k8, 0, cols);
            System.arraycopy(kd, t * (cols / 256), r.kd, 0, cols / 256);
            System.arraycopy(kbs, t * (cols / 16), r.kbs, 0, cols / 16);
        }
        return r;
    }

    /**
     * The batch in the native GEMM's layout (kv_pack_act), packed on the first call and kept: the tiles of one
     * product ({@link Kernels#matmulTile}) share it. Pack it before handing the batch to pool threads
     * ({@link Kernels#prepareTiles}), so the packing itself runs over the pool.
     */
    synchronized NativeKernels.PackedActivations nativePacked() {
        if (nativePacked == null) {
            nativePacked = new NativeKernels.PackedActivations(this);
        } else if (packedStale) {
            nativePacked.pack(this);
        }
        packedStale = false;
        return nativePacked;
    }

    /** The value the kernels use in place of x[c]: q[c]·d[c / 32]. */
    public float value(int c) { return q[c] * d[c >> 5]; }

    /** The value the k-quant kernels use in place of x[c] (one scale per 256 values); needs cols % 256 == 0. */
    public float kValue(int c) { return k8[c] * kd[c >> 8]; }

    private void quantize(float[] x, int xo) {
        if (xo < 0 || xo + (long) rows * cols > x.length) throw new IndexOutOfBoundsException("x too short");
        // a vision layer's batch (thousands of patches) over the pool, in row ranges of ≥ 64 K values; a token alone
        // inline. Every block is quantized on its own, so the result does not depend on the split.
        if ((long) rows * cols < (1 << 17)) quantizeRows(x, xo, 0, rows);     // decode's one token: no lambda
        else Parallel.forRange(rows, Math.max(1, (1 << 16) / cols), (t0, t1) -> quantizeRows(x, xo, t0, t1));
    }

    /** Rows [t0, t1) of the batch x[xo ..]. */
    private void quantizeRows(float[] x, int xo, int t0, int t1) {
        int nb = cols / 32;
        for (int b = t0 * nb; b < t1 * nb; b++) {       // blocks never straddle rows: cols % 32 == 0
            int o = xo + 32 * b;
            FloatVector v0 = FloatVector.fromArray(F8, x, o), v1 = FloatVector.fromArray(F8, x, o + 8),
                    v2 = FloatVector.fromArray(F8, x, o + 16), v3 = FloatVector.fromArray(F8, x, o + 24);
            float amax = v0.abs().max(v1.abs()).max(v2.abs().max(v3.abs())).reduceLanes(VectorOperators.MAX);
            float id = amax != 0 ? 127f / amax : 0f;
            d[b] = amax / 127f;
            IntVector sum = round(v0, id, 32 * b).add(round(v1, id, 32 * b + 8))
                    .add(round(v2, id, 32 * b + 16)).add(round(v3, id, 32 * b + 24));
            s8[b] = 8 * sum.reduceLanes(VectorOperators.ADD);
        }
        if (k8 != null) quantizeK(x, xo, t0 * (cols / 256), t1 * (cols / 256));
    }

    /**
     * The k-quants' form of x[xo ..] (see k8), super-blocks [sb0, sb1): per 256 values amax / 127, values rounded to
     * nearest even.
     */
    private void quantizeK(float[] x, int xo, int sb0, int sb1) {
        for (int sb = sb0; sb < sb1; sb++) {
            int o = xo + 256 * sb;
            FloatVector m = FloatVector.zero(F8);
            for (int i = 0; i < 256; i += 8) m = m.max(FloatVector.fromArray(F8, x, o + i).abs());
            float amax = m.reduceLanes(VectorOperators.MAX);
            FloatVector id = FloatVector.broadcast(F8, amax != 0 ? 127f / amax : 0f), magic = FloatVector.broadcast(F8, 12582912f);
            kd[sb] = amax / 127f;
            for (int i = 0; i < 256; i += 16) {
                IntVector r0 = FloatVector.fromArray(F8, x, o + i).fma(id, magic).reinterpretAsInts().sub(0x4B400000);
                IntVector r1 = FloatVector.fromArray(F8, x, o + i + 8).fma(id, magic).reinterpretAsInts().sub(0x4B400000);
                ((ByteVector) r0.convertShape(VectorOperators.I2B, ByteVector.SPECIES_64, 0)).intoArray(k8, 256 * sb + i);
                ((ByteVector) r1.convertShape(VectorOperators.I2B, ByteVector.SPECIES_64, 0)).intoArray(k8, 256 * sb + i + 8);
                kbs[16 * sb + i / 16] = (short) (r0.reduceLanes(VectorOperators.ADD) + r1.reduceLanes(VectorOperators.ADD));
            }
        }
    }

    /**
     * round(v·id) to nearest even via the 1.5·2^23 trick (|v·id| ≤ 127), stored as 8 shorts at q[i] and 8 bytes at
     * q8[i]; returns the 8 values (for the block sum).
     */
    private IntVector round(FloatVector v, float id, int i) {
        IntVector r = v.fma(FloatVector.broadcast(F8, id), FloatVector.broadcast(F8, 12582912f)).reinterpretAsInts().sub(0x4B400000);
        ((ShortVector) r.convertShape(VectorOperators.I2S, S128, 0)).intoArray(q, i);
        ((ByteVector) r.convertShape(VectorOperators.I2B, ByteVector.SPECIES_64, 0)).intoArray(q8, i);
        return r;
    }

    private static final ThreadLocal<QuantizedInput[]> LAST = ThreadLocal.withInitial(() -> new QuantizedInput[1]);

    /**
     * The quantized form of x[xo .. xo + cols), reusing this thread's last one when the floats are equal
     * (bitwise, checked): callers that multiply one input by many matrices, or by a matrix cut into row
     * blocks, quantize it once.
     */
    static QuantizedInput cached(float[] x, int xo, int cols) {
        QuantizedInput[] slot = LAST.get();
        QuantizedInput c = slot[0];
        if (c != null && c.cols == cols && Arrays.equals(c.source, 0, cols, x, xo, xo + cols)) return c;
        if (c == null || c.cols != cols) slot[0] = c = new QuantizedInput(cols, 1);
        c.source = c.source == null || c.source.length != cols ? new float[cols] : c.source;
        System.arraycopy(x, xo, c.source, 0, cols);
        c.quantize(x, xo);
        return c;
    }
}
