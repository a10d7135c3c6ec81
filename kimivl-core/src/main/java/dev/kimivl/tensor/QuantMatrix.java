package dev.kimivl.tensor;

import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;

/**
 * A block-quantized matrix (llama.cpp layout, ggml row-major: each row is cols/blockSize consecutive blocks)
 * over a memory segment. Q8_0 and Q4_0 have Vector API kernels, and so do Q2_K, Q3_K, IQ4_NL and IQ4_XS
 * ({@link LowBitKernels}); the other formats (Q4_K, Q5_K, Q6_K, Q4_1, Q5_x) have
 * native integer kernels (kimivl_kquants.c) and otherwise decode rows to floats ({@link KQuantRows}: vectorized for
 * Q4_K, Q6_K and Q5_0, the reference dequantizers for the rest).
 *
 * <p><b>Integer matvec (the default for every block format with a kernel; {@code -Dkimivl.intMatvec=false} selects the
 * exact kernels).</b> As llama.cpp does (q8_0 × q8_0, q4_0 × q8_0, q4_K × q8_K), the activation vector is quantized
 * once per product to int8 ({@link QuantizedInput}: blocks of 32 with one float scale each, and for the k-quants also
 * blocks of 256; values rounded to nearest) and each weight block's dot product is taken in integers, converted to
 * float once per block, then multiplied by the two scales. It changes the numerics: each activation moves by at most
 * half its block's step (amax/127/2), so |y_int − y_exact| ≤ Σ_blocks (amax_x/254)·Σ|w| (see QuantTest,
 * OtherFormatKernelsTest).
 *
 * <p>It is the default because the native kernels ({@link NativeKernels}: vpmaddubsw/vpmaddwd) make it about 2x
 * faster than float activations at decode, and llama.cpp's numerics are what users of quantized files expect. The
 * golden tests run the exact kernels (the build passes -Dkimivl.intMatvec=false to them): on the tiny golden models
 * the int8 rounding alone moves a greedy token. {@link #matvecExact} is always the exact float-activation kernel, and
 * the Java Vector API integer kernels remain the fallback where the native library is unavailable.
 */
public final class QuantMatrix implements Matrix {
    /** The machine's widest float vector (512 bits with AVX-512, 256 with AVX2), at most 16 lanes. */
    static final VectorSpecies<Float> F = species();
    private static VectorSpecies<Float> species() {
        // -Dkimivl.vectorBits=256|512 forces a width (to test the other kernels; a width the CPU lacks runs very slowly)
        int bits = Integer.getInteger("kimivl.vectorBits", FloatVector.SPECIES_PREFERRED.vectorBitSize());
        return bits >= 512 ? FloatVector.SPECIES_512 : FloatVector.SPECIES_256;
    }
    static final int FL = F.length();
    /** Bytes loaded per float vector: one byte per float lane. */
    private static final VectorSpecies<Byte> B = VectorSpecies.of(byte.class, VectorShape.forBitSize(FL * 8));
    private static final ValueLayout.OfShort S16LE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;

    private final MemorySegment data;
    private final DType dtype;
    private final int rows, cols, blocks;
    private final long rowBytes;

    public QuantMatrix(MemorySegment data, DType dtype, int rows, int cols) {
        if (!dtype.isQuantized()) throw new IllegalArgumentException("QuantMatrix holds block formats, not " + dtype);
        if (cols % dtype.blockSize != 0) {
            throw new IllegalArgumentException(dtype + " matrix [" + rows + ", " + cols + "]: cols must be a multiple of " + dtype.blockSize);
        }
        long need = dtype.bytesFor((long) rows * cols);
        if (data.byteSize() < need) {
            throw new IllegalArgumentException(dtype + " matrix [" + rows + ", " + cols + "] needs " + need + " bytes, segment has " + data.byteSize());
        }
        this.data = Segments.kernelView(data);
        this.dtype = dtype;
        this.rows = rows;
        this.cols = cols;
        this.blocks = cols / dtype.blockSize;
        this.rowBytes = dtype.bytesFor(cols);
    }

    /** Quantizes a row-major float matrix (Q8_0 or Q4_0) into a new heap-backed matrix. */
    public static QuantMatrix quantize(float[] w, int rows, int cols, DType type) {
        return new QuantMatrix(Quant.quantize(w, rows, cols, type), type, rows, cols);
    }

    @Override public int rows() { return rows; }
    @Override public int cols() { return cols; }
    @Override public DType dtype() { return dtype; }
    /** The weights as the kernels read them (a plain native view of the segment given). */
    public MemorySegment segment() { return data; }

    /** Q8_0/Q4_0 {@link #matvec(float[], int, float[], int)} uses the integer kernels unless {@code -Dkimivl.intMatvec=false}. */
    public static final boolean INT_MATVEC = !"false".equalsIgnoreCase(System.getProperty("kimivl.intMatvec", "true"));

    /** The integer matvec runs the native kernels when they are loaded; tests turn this off to reach the Java ones. */
    static volatile boolean USE_NATIVE = true;

    /**
     * True when {@link #matvec(float[], int, float[], int)} quantizes its input and runs the integer kernels: Q8_0 and
     * Q4_0 (native or Java), Q2_K, Q3_K, IQ4_NL and IQ4_XS (Java, {@link LowBitKernels}), and the other formats of
     * published GGUF files (Q4_K, Q5_K, Q6_K, Q4_1, Q5_0, Q5_1) when the native kernels are loaded; without them those
     * decode rows to floats.
     */
    public boolean usesIntegerMatvec() {
        return INT_MATVEC && (dtype == DType.Q8_0 || dtype == DType.Q4_0 || LowBitKernels.handles(dtype) || nativeOtherFormat());
    }

    /** A format of kimivl_kquants.c, and its kernels loaded. */
    private boolean nativeOtherFormat() {
        return NativeKernels.AVAILABLE && USE_NATIVE && NativeKernels.otherFormatCode(dtype) >= 0;
    }

    @Override
    public void matvec(float[] x, int xo, float[] y, int yo) {
        if (xo + cols > x.length || yo + rows > y.length) throw new IndexOutOfBoundsException("matvec [" + rows + ", " + cols + "]: x or y too short");
        if (usesIntegerMatvec()) {
            matvec(QuantizedInput.cached(x, xo, cols), y, yo);
        } else {
            matvecExact(x, xo, y, yo);
        }
    }

    /**
     * y[yo + r] = Σ_c W[r, c]·x'[c] where x' is the quantized activation: the integer kernels (see {@link #usesIntegerMatvec}).
     * Quantize an input once with {@link QuantizedInput#of} to multiply it by several matrices (gate and up, experts).
     */
    public void matvec(QuantizedInput xq, float[] y, int yo) {
        if (xq.cols != cols) throw new IllegalArgumentException("input has " + xq.cols + " columns, matrix " + cols);
        if (yo + rows > y.length) throw new IndexOutOfBoundsException("matvec [" + rows + ", " + cols + "]: y too short");
        boolean nativeQ = NativeKernels.AVAILABLE && USE_NATIVE && (dtype == DType.Q8_0 || dtype == DType.Q4_0) && cols <= NativeKernels.MAX_COLS;
        if (nativeQ || nativeOtherFormat()) {
            Parallel.forRange(rows, 16, (from, to) -> NativeKernels.matvec(dtype, data, from, to, cols, xq, y, yo));
            return;
        }
        if (LowBitKernels.handles(dtype)) {        // Q2_K, Q3_K, IQ4_NL, IQ4_XS: Java kernels only
            Parallel.forRange(rows, 16, (from, to) -> LowBitKernels.matvec(dtype, data, rowBytes, cols, from, to, xq, y, yo));
            return;
        }
        switch (dtype) {
            case Q8_0 -> Parallel.forRange(rows, 16, (from, to) -> {
                for (int r = from; r < to; r++) y[yo + r] = dotQ8Int(r * rowBytes, xq.q, xq.d);
            });
            case Q4_0 -> Parallel.forRange((rows + 1) / 2, 8, (from, to) -> {
                for (int p = from; p < to; p++) {
                    int r = 2 * p;
                    if (r + 1 < rows) dotQ4Int2(r * rowBytes, xq.q, xq.d, y, yo + r);
                    else y[yo + r] = dotQ4Int(r * rowBytes, xq.q, xq.d);
                }
            });
            default -> throw new UnsupportedOperationException("no integer matvec for " + dtype + " (" + NativeKernels.STATUS + ")");
        }
    }

    /** The exact kernels: float activations, every product in float (the reference for the integer kernels). */
    public void matvecExact(float[] x, int xo, float[] y, int yo) {
        if (xo + cols > x.length || yo + rows > y.length) throw new IndexOutOfBoundsException("matvec [" + rows + ", " + cols + "]: x or y too short");
        switch (dtype) {
            case Q8_0 -> {
                if (FL == 8) {
                    float[] xp = permuteQ8(x, xo, cols);
                    Parallel.forRange(rows, 16, (from, to) -> {
                        for (int r = from; r < to; r++) y[yo + r] = dotQ8Avx2(r * rowBytes, xp);
                    });
                } else {
                    Parallel.forRange(rows, 16, (from, to) -> {
                        for (int r = from; r < to; r++) y[yo + r] = dotQ8(r * rowBytes, x, xo);
                    });
                }
            }
            case Q4_0 -> {
                if (FL == 8) {
                    float[] xs = blockSums(x, xo, cols);
                    Parallel.forRange(rows, 16, (from, to) -> {
                        for (int r = from; r < to; r++) y[yo + r] = dotQ4Avx2(r * rowBytes, x, xo, xs);
                    });
                } else {
                    Parallel.forRange(rows, 16, (from, to) -> {
                        for (int r = from; r < to; r++) y[yo + r] = dotQ4(r * rowBytes, x, xo);
                    });
                }
            }
            default -> Parallel.forRange(rows, 16, (from, to) -> {
                float[] w = new float[cols];
                for (int r = from; r < to; r++) {
                    row(r, w, 0);
                    y[yo + r] = VectorMath.dot(w, 0, x, xo, cols);
                }
            });
        }
    }

    /**
     * An activation vector quantized to int8 blocks of 32 for the integer kernels: q[c] = round(x[c] / d[c / 32])
     * (to nearest, ties to even) with d = amax / 127 per block, held widened to 16 bits for the kernels.
     */
    public static final class QuantizedInput {
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

        public int cols() { return cols; }

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

        /** The value the kernels use in place of x[c]: q[c]·d[c / 32]. */
        public float value(int c) { return q[c] * d[c >> 5]; }

        /** The value the k-quant kernels use in place of x[c] (one scale per 256 values); needs cols % 256 == 0. */
        public float kValue(int c) { return k8[c] * kd[c >> 8]; }

        private void quantize(float[] x, int xo) {
            if (xo < 0 || xo + (long) rows * cols > x.length) throw new IndexOutOfBoundsException("x too short");
            for (int b = 0; b < q.length / 32; b++) {       // blocks never straddle rows: cols % 32 == 0
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
            if (k8 != null) quantizeK(x, xo);
        }

        /** The k-quants' form of x[xo ..] (see k8): per 256 values amax / 127, values rounded to nearest even. */
        private void quantizeK(float[] x, int xo) {
            for (int sb = 0; sb < kd.length; sb++) {
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

    private static final VectorSpecies<Float> F8 = FloatVector.SPECIES_256;
    private static final VectorSpecies<Short> S128 = ShortVector.SPECIES_128;
    private static final VectorSpecies<Short> S256 = ShortVector.SPECIES_256;
    private static final VectorSpecies<Byte> B128 = ByteVector.SPECIES_128;

    // Integer kernels (256-bit on every x86 machine with AVX2). Each method holds at most 2-3 block steps: a bigger
    // body exceeds C2's inlining node budget (NodeCountInliningCutoff) and the Vector API calls stay boxed (~10x slower).

    /** 16 int8 weights at byte o, sign-extended to shorts. */
    private static ShortVector s16(MemorySegment s, long o) {
        return (ShortVector) ByteVector.fromMemorySegment(B128, s, o, LE).convertShape(VectorOperators.B2S, S256, 0);
    }

    /** Σ of adjacent short pairs as ints (exact for any shorts). */
    private static IntVector pairSum(ShortVector p) {
        IntVector i = p.reinterpretAsInts();
        return i.lanewise(VectorOperators.ASHR, 16).add(i.lanewise(VectorOperators.LSHL, 16).lanewise(VectorOperators.ASHR, 16));
    }

    /** Σ of adjacent short pairs as ints when each pair's sum fits in a short: (i·65537) >> 16. */
    private static IntVector pairSumSmall(ShortVector p) {
        return p.reinterpretAsInts().mul(65537).lanewise(VectorOperators.ASHR, 16);
    }

    /** One Q8_0 block at o against x block b: 32 products in two 16-bit multiplies, pair sums ≤ 2·128·127. */
    private static FloatVector blockQ8Int(MemorySegment s, long o, short[] xq, int b, float scale, FloatVector acc) {
        ShortVector p = s16(s, o + 2).mul(ShortVector.fromArray(S256, xq, 32 * b))
                .add(s16(s, o + 18).mul(ShortVector.fromArray(S256, xq, 32 * b + 16)));
        return ((FloatVector) pairSum(p).convert(VectorOperators.I2F, 0)).fma(FloatVector.broadcast(F8, scale), acc);
    }

    /** Q8_0 row · quantized x; two blocks per iteration. */
    private float dotQ8Int(long base, short[] xq, float[] dx) {
        MemorySegment s = data;
        FloatVector acc0 = FloatVector.zero(F8), acc1 = acc0;
        long o = base;
        int b = 0;
        for (; b + 1 < blocks; b += 2, o += 68) {
            acc0 = blockQ8Int(s, o, xq, b, Float.float16ToFloat(s.get(S16LE, o)) * dx[b], acc0);
            acc1 = blockQ8Int(s, o + 34, xq, b + 1, Float.float16ToFloat(s.get(S16LE, o + 34)) * dx[b + 1], acc1);
        }
        if (b < blocks) acc0 = blockQ8Int(s, o, xq, b, Float.float16ToFloat(s.get(S16LE, o)) * dx[b], acc0);
        return VectorMath.sum(acc0.add(acc1));
    }

    /** Σ (q − 8)·x over one Q4_0 block at o (low nibbles: elements 0-15, high: 16-31), as 16 shorts (|.| ≤ 2032). */
    private static ShortVector prodQ4(MemorySegment s, long o, ShortVector x0, ShortVector x1) {
        ShortVector w = (ShortVector) ByteVector.fromMemorySegment(B128, s, o + 2, LE).convertShape(VectorOperators.ZERO_EXTEND_B2S, S256, 0);
        return w.and((short) 0xF).sub((short) 8).mul(x0).add(w.lanewise(VectorOperators.LSHR, 4).sub((short) 8).mul(x1));
    }

    private static FloatVector accQ4(ShortVector p, float scale, FloatVector acc) {
        return ((FloatVector) pairSumSmall(p).convert(VectorOperators.I2F, 0)).fma(FloatVector.broadcast(F8, scale), acc);
    }

    /** Two Q4_0 rows (at base and base + rowBytes) · quantized x into y[yi], y[yi + 1]: each x block loaded once. */
    private void dotQ4Int2(long base, short[] xq, float[] dx, float[] y, int yi) {
        MemorySegment s = data;
        FloatVector a0 = FloatVector.zero(F8), a1 = a0;
        long o = base, u = base + rowBytes;
        for (int b = 0; b < blocks; b++, o += 18, u += 18) {
            ShortVector x0 = ShortVector.fromArray(S256, xq, 32 * b), x1 = ShortVector.fromArray(S256, xq, 32 * b + 16);
            float dxb = dx[b];
            a0 = accQ4(prodQ4(s, o, x0, x1), Float.float16ToFloat(s.get(S16LE, o)) * dxb, a0);
            a1 = accQ4(prodQ4(s, u, x0, x1), Float.float16ToFloat(s.get(S16LE, u)) * dxb, a1);
        }
        y[yi] = VectorMath.sum(a0);
        y[yi + 1] = VectorMath.sum(a1);
    }

    /** One Q4_0 row · quantized x (the odd last row). */
    private float dotQ4Int(long base, short[] xq, float[] dx) {
        MemorySegment s = data;
        FloatVector a0 = FloatVector.zero(F8);
        long o = base;
        for (int b = 0; b < blocks; b++, o += 18) {
            a0 = accQ4(prodQ4(s, o, ShortVector.fromArray(S256, xq, 32 * b), ShortVector.fromArray(S256, xq, 32 * b + 16)),
                    Float.float16ToFloat(s.get(S16LE, o)) * dx[b], a0);
        }
        return VectorMath.sum(a0);
    }

    private static final VectorSpecies<Byte> B256 = ByteVector.SPECIES_256;
    private static final VectorSpecies<Integer> I8L = IntVector.SPECIES_256;

    /**
     * x reordered per 32-block for the 8-lane Q8_0 kernel: the kernel reads a block's 32 int8 as 8 ints and
     * takes byte k of every int at once (elements 4j + k, j = 0..7), so xp[32b + 8k + j] = x[32b + 4j + k].
     */
    static float[] permuteQ8(float[] x, int xo, int cols) {
        float[] xp = new float[cols];
        for (int b = 0; b < cols; b += 32) {
            for (int k = 0; k < 4; k++) {
                for (int j = 0; j < 8; j++) xp[b + 8 * k + j] = x[xo + b + 4 * j + k];
            }
        }
        return xp;
    }

    /** Sums of x over each 32-element block. */
    static float[] blockSums(float[] x, int xo, int cols) {
        float[] s = new float[cols / 32];
        for (int b = 0; b < s.length; b++) {
            float t = 0;
            for (int j = 0; j < 32; j++) t += x[xo + 32 * b + j];
            s[b] = t;
        }
        return s;
    }

    /** One Q8_0 block at o against the permuted x at xb, unscaled: the int8 are sign-extended with shifts. */
    private static FloatVector blockQ8(MemorySegment s, long o, float[] xp, int xb) {
        IntVector q = ByteVector.fromMemorySegment(B256, s, o + 2, LE).reinterpretAsInts();
        FloatVector t = ((FloatVector) q.lanewise(VectorOperators.LSHL, 24).lanewise(VectorOperators.ASHR, 24)
                .convert(VectorOperators.I2F, 0)).mul(FloatVector.fromArray(F, xp, xb));
        t = ((FloatVector) q.lanewise(VectorOperators.LSHL, 16).lanewise(VectorOperators.ASHR, 24)
                .convert(VectorOperators.I2F, 0)).fma(FloatVector.fromArray(F, xp, xb + 8), t);
        t = ((FloatVector) q.lanewise(VectorOperators.LSHL, 8).lanewise(VectorOperators.ASHR, 24)
                .convert(VectorOperators.I2F, 0)).fma(FloatVector.fromArray(F, xp, xb + 16), t);
        return ((FloatVector) q.lanewise(VectorOperators.ASHR, 24).convert(VectorOperators.I2F, 0))
                .fma(FloatVector.fromArray(F, xp, xb + 24), t);
    }

    /** Q8_0 row dot for 8-lane (AVX2) machines: 32-byte loads, int shifts instead of byte→float widening. */
    private float dotQ8Avx2(long base, float[] xp) {
        MemorySegment s = data;
        FloatVector acc0 = FloatVector.zero(F), acc1 = acc0;
        int b = 0;
        long o = base;
        for (; b + 1 < blocks; b += 2, o += 68) {
            float d0 = Float.float16ToFloat(s.get(S16LE, o));
            float d1 = Float.float16ToFloat(s.get(S16LE, o + 34));
            acc0 = blockQ8(s, o, xp, 32 * b).fma(FloatVector.broadcast(F, d0), acc0);
            acc1 = blockQ8(s, o + 34, xp, 32 * b + 32).fma(FloatVector.broadcast(F, d1), acc1);
        }
        if (b < blocks) acc0 = blockQ8(s, o, xp, 32 * b).fma(FloatVector.broadcast(F, Float.float16ToFloat(s.get(S16LE, o))), acc0);
        return VectorMath.sum(acc0.add(acc1));
    }

    /** Q4_0 row dot for 8-lane machines: bytes zero-extended to ints, nibbles taken with AND / shift, the −8 offset applied through block sums of x. */
    private float dotQ4Avx2(long base, float[] x, int xo, float[] xs) {
        MemorySegment s = data;
        FloatVector acc0 = FloatVector.zero(F), acc1 = acc0;
        float corr = 0;
        long o = base;
        int xi = xo;
        for (int b = 0; b < blocks; b++, o += 18, xi += 32) {
            float d = Float.float16ToFloat(s.get(S16LE, o));
            IntVector p0 = (IntVector) ByteVector.fromMemorySegment(B, s, o + 2, LE).convertShape(VectorOperators.ZERO_EXTEND_B2I, I8L, 0);
            IntVector p1 = (IntVector) ByteVector.fromMemorySegment(B, s, o + 10, LE).convertShape(VectorOperators.ZERO_EXTEND_B2I, I8L, 0);
            FloatVector t = ((FloatVector) p0.and(0xF).convert(VectorOperators.I2F, 0)).mul(FloatVector.fromArray(F, x, xi));
            FloatVector u = ((FloatVector) p1.and(0xF).convert(VectorOperators.I2F, 0)).mul(FloatVector.fromArray(F, x, xi + 8));
            t = ((FloatVector) p0.lanewise(VectorOperators.LSHR, 4).convert(VectorOperators.I2F, 0)).fma(FloatVector.fromArray(F, x, xi + 16), t);
            u = ((FloatVector) p1.lanewise(VectorOperators.LSHR, 4).convert(VectorOperators.I2F, 0)).fma(FloatVector.fromArray(F, x, xi + 24), u);
            FloatVector vd = FloatVector.broadcast(F, d);
            acc0 = t.fma(vd, acc0);
            acc1 = u.fma(vd, acc1);
            corr += d * xs[b];
        }
        return VectorMath.sum(acc0.add(acc1)) - 8 * corr;
    }

    /** Σ_c W[r, c]·x[xo + c] for one Q8_0 row starting at byte {@code base}; two blocks per iteration. */
    private float dotQ8(long base, float[] x, int xo) {
        MemorySegment s = data;
        FloatVector acc0 = FloatVector.zero(F), acc1 = acc0;
        int b = 0;
        long o = base;
        int xi = xo;
        for (; b + 1 < blocks; b += 2, o += 68, xi += 64) {
            float d0 = Float.float16ToFloat(s.get(S16LE, o));
            float d1 = Float.float16ToFloat(s.get(S16LE, o + 34));
            FloatVector t0 = FloatVector.zero(F), t1 = t0;
            for (int k = 0; k < 32; k += FL) {
                t0 = q8(s, o + 2 + k).fma(FloatVector.fromArray(F, x, xi + k), t0);
                t1 = q8(s, o + 36 + k).fma(FloatVector.fromArray(F, x, xi + 32 + k), t1);
            }
            acc0 = t0.fma(FloatVector.broadcast(F, d0), acc0);
            acc1 = t1.fma(FloatVector.broadcast(F, d1), acc1);
        }
        if (b < blocks) {
            float d0 = Float.float16ToFloat(s.get(S16LE, o));
            FloatVector t0 = FloatVector.zero(F);
            for (int k = 0; k < 32; k += FL) t0 = q8(s, o + 2 + k).fma(FloatVector.fromArray(F, x, xi + k), t0);
            acc0 = t0.fma(FloatVector.broadcast(F, d0), acc0);
        }
        return VectorMath.sum(acc0.add(acc1));
    }

    /** FL int8 values at byte off as floats. */
    private static FloatVector q8(MemorySegment s, long off) {
        return (FloatVector) ByteVector.fromMemorySegment(B, s, off, LE).convertShape(VectorOperators.B2F, F, 0);
    }

    /** Σ_c W[r, c]·x[xo + c] for one Q4_0 row starting at byte {@code base}; two blocks per iteration. */
    private float dotQ4(long base, float[] x, int xo) {
        MemorySegment s = data;
        FloatVector acc0 = FloatVector.zero(F), acc1 = acc0;
        int b = 0;
        long o = base;
        int xi = xo;
        for (; b + 1 < blocks; b += 2, o += 36, xi += 64) {
            float d0 = Float.float16ToFloat(s.get(S16LE, o));
            float d1 = Float.float16ToFloat(s.get(S16LE, o + 18));
            FloatVector t0 = FloatVector.zero(F), t1 = t0;
            for (int k = 0; k < 16; k += FL) {
                ByteVector p0 = ByteVector.fromMemorySegment(B, s, o + 2 + k, LE);
                ByteVector p1 = ByteVector.fromMemorySegment(B, s, o + 20 + k, LE);
                t0 = lo(p0).fma(FloatVector.fromArray(F, x, xi + k), t0);
                t1 = lo(p1).fma(FloatVector.fromArray(F, x, xi + 32 + k), t1);
                t0 = hi(p0).fma(FloatVector.fromArray(F, x, xi + 16 + k), t0);
                t1 = hi(p1).fma(FloatVector.fromArray(F, x, xi + 48 + k), t1);
            }
            acc0 = t0.fma(FloatVector.broadcast(F, d0), acc0);
            acc1 = t1.fma(FloatVector.broadcast(F, d1), acc1);
        }
        if (b < blocks) {
            float d0 = Float.float16ToFloat(s.get(S16LE, o));
            FloatVector t0 = FloatVector.zero(F);
            for (int k = 0; k < 16; k += FL) {
                ByteVector p0 = ByteVector.fromMemorySegment(B, s, o + 2 + k, LE);
                t0 = lo(p0).fma(FloatVector.fromArray(F, x, xi + k), t0);
                t0 = hi(p0).fma(FloatVector.fromArray(F, x, xi + 16 + k), t0);
            }
            acc0 = t0.fma(FloatVector.broadcast(F, d0), acc0);
        }
        return VectorMath.sum(acc0.add(acc1));
    }

    /** Low nibbles − 8 as floats. */
    private static FloatVector lo(ByteVector p) {
        return (FloatVector) p.and((byte) 0xF).sub((byte) 8).convertShape(VectorOperators.B2F, F, 0);
    }

    /** High nibbles − 8 as floats. */
    private static FloatVector hi(ByteVector p) {
        return (FloatVector) p.lanewise(VectorOperators.LSHR, 4).sub((byte) 8).convertShape(VectorOperators.B2F, F, 0);
    }

    @Override
    public void row(int r, float[] dst, int off) {
        if (r < 0 || r >= rows) throw new IndexOutOfBoundsException("row " + r + " of " + rows);
        long base = r * rowBytes;
        switch (dtype) {
            case Q8_0 -> {
                for (int b = 0; b < blocks; b++) {
                    long o = base + 34L * b;
                    FloatVector d = FloatVector.broadcast(F, Float.float16ToFloat(data.get(S16LE, o)));
                    for (int k = 0; k < 32; k += FL) q8(data, o + 2 + k).mul(d).intoArray(dst, off + 32 * b + k);
                }
            }
            case Q4_0 -> {
                for (int b = 0; b < blocks; b++) {
                    long o = base + 18L * b;
                    FloatVector d = FloatVector.broadcast(F, Float.float16ToFloat(data.get(S16LE, o)));
                    for (int k = 0; k < 16; k += FL) {
                        ByteVector p = ByteVector.fromMemorySegment(B, data, o + 2 + k, LE);
                        lo(p).mul(d).intoArray(dst, off + 32 * b + k);
                        hi(p).mul(d).intoArray(dst, off + 32 * b + 16 + k);
                    }
                }
            }
            default -> KQuantRows.decode(dtype, data, base, dst, off, cols);
        }
    }

    /**
     * Decodes columns [c0, c0 + len) of rows [r0, r0 + nr) into dst[off + i·ld ..) for row r0 + i: c0 and len
     * multiples of the block size (len may also end at the row's end). For {@link PackedGemm}, which decodes a
     * k-block of a block of rows at a time (one call per tile: the per-call checks are amortised over all its blocks).
     */
    void decodeTile(int r0, int nr, int c0, int len, float[] dst, int off, int ld) {
        int bs = dtype.blockSize;
        if (r0 < 0 || nr < 0 || r0 + nr > rows) throw new IndexOutOfBoundsException("rows [" + r0 + ", " + (r0 + nr) + ") of " + rows);
        if (c0 % bs != 0 || (len % bs != 0 && c0 + len != cols) || c0 < 0 || len < 0 || c0 + len > cols) {
            throw new IllegalArgumentException("columns [" + c0 + ", " + (c0 + len) + ") of a " + dtype + " row of " + cols);
        }
        if ((long) off + (long) (nr - 1) * ld + len > dst.length || (nr > 0 && (off < 0 || ld < len))) {
            throw new IndexOutOfBoundsException("tile does not fit dst");
        }
        int nb = (len + bs - 1) / bs;
        MemorySegment s = data;
        switch (dtype) {
            case Q8_0 -> {
                for (int i = 0; i < nr; i++) {
                    long o = (r0 + i) * rowBytes + 34L * (c0 / 32);
                    for (int b = 0, d0 = off + i * ld; b < nb; b++, o += 34, d0 += 32) {
                        FloatVector d = FloatVector.broadcast(F, Float.float16ToFloat(s.get(S16LE, o)));
                        for (int k = 0; k < 32; k += FL) q8(s, o + 2 + k).mul(d).intoArray(dst, d0 + k);
                    }
                }
            }
            case Q4_0 -> {
                for (int i = 0; i < nr; i++) {
                    long o = (r0 + i) * rowBytes + 18L * (c0 / 32);
                    for (int b = 0, d0 = off + i * ld; b < nb; b++, o += 18, d0 += 32) {
                        FloatVector d = FloatVector.broadcast(F, Float.float16ToFloat(s.get(S16LE, o)));
                        for (int k = 0; k < 16; k += FL) {
                            ByteVector p = ByteVector.fromMemorySegment(B, s, o + 2 + k, LE);
                            lo(p).mul(d).intoArray(dst, d0 + k);
                            hi(p).mul(d).intoArray(dst, d0 + 16 + k);
                        }
                    }
                }
            }
            default -> {
                for (int i = 0; i < nr; i++) KQuantRows.decode(dtype, s, (r0 + i) * rowBytes + dtype.bytesFor(c0), dst, off + i * ld, len);
            }
        }
    }

    @Override
    public void matmul(float[] x, float[] y, int n) {
        if (n == 1) { matvec(x, 0, y, 0); return; }
        if (usesIntegerMatmul()) {
            // the integer kernels for prefill too (as llama.cpp)
            matmul(QuantizedInput.ofRows(x, n, cols), y);
            return;
        }
        Gemm.matmul(this, x, y, n);
    }

    /** True when {@link #matmul(float[], float[], int)} quantizes its inputs and runs the native integer GEMM. */
    public boolean usesIntegerMatmul() {
        return usesIntegerMatvec() && NativeKernels.AVAILABLE && USE_NATIVE && (cols <= NativeKernels.MAX_COLS || nativeOtherFormat());
    }

    /**
     * y[t·rows + r] = Σ_c W[r, c]·x'_t[c] for every row t of the quantized batch: for Q8_0 and Q4_0 the native GEMM
     * (each weight row unpacked once, then dotted with every token) when loaded, else the integer matvec per token;
     * for the other formats with native kernels, their row kernel per token over tiles of rows held in L1.
     * Either way each token's result equals {@link #matvec(QuantizedInput, float[], int)} bit for bit.
     */
    public void matmul(QuantizedInput xq, float[] y) {
        int n = xq.rows;
        if (xq.cols != cols) throw new IllegalArgumentException("input has " + xq.cols + " columns, matrix " + cols);
        if (y.length < (long) n * rows) throw new IndexOutOfBoundsException("matmul [" + rows + ", " + cols + "] x " + n + ": y too short");
        if (nativeOtherFormat()) {
            // each row unpacked once per 4 tokens over L1-resident tiles of rows (kv_gemm_kq); bounded calls as below
            int step = (int) Math.max(1, Math.min(rows, (1L << 26) / ((long) n * cols)));
            Parallel.forRange(rows, 8, (from, to) -> {
                for (int r = from; r < to; r += step) NativeKernels.gemmOtherFormat(dtype, data, r, Math.min(to, r + step), xq, y, rows);
            });
            return;
        }
        if (LowBitKernels.handles(dtype)) {       // no batched kernel: the matvec per token
            for (int t = 0; t < n; t++) matvec(xq.row(t), y, t * rows);
            return;
        }
        if (dtype != DType.Q8_0 && dtype != DType.Q4_0) throw new UnsupportedOperationException("no integer matmul for " + dtype + " (" + NativeKernels.STATUS + ")");
        if (NativeKernels.AVAILABLE && USE_NATIVE && cols <= NativeKernels.MAX_COLS) {
            NativeKernels.PackedActivations xp = new NativeKernels.PackedActivations(xq);
            // a critical native call holds off safepoints (GC) while it runs: at most ~2^26 multiply-adds per call
            int step = (int) Math.max(4, Math.min(rows, (1L << 26) / ((long) n * cols)) & ~3L);
            Parallel.forRange(rows, 8, (from, to) -> {
                for (int r = from; r < to; r += step) NativeKernels.gemm(dtype, data, r, Math.min(to, r + step), xp, y, rows);
            });
            return;
        }
        for (int t = 0; t < n; t++) matvec(xq.row(t), y, t * rows);
    }
}
