package dev.kimivl.tensor;

import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * A block-quantized matrix (llama.cpp layout, ggml row-major: each row is cols/blockSize consecutive blocks)
 * over a memory segment. Q8_0 and Q4_0 have Vector API kernels; Q4_K and Q6_K decode rows with the scalar
 * reference dequantizers (correct, not fast).
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

    @Override
    public void matvec(float[] x, int xo, float[] y, int yo) {
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
        return acc0.add(acc1).reduceLanes(VectorOperators.ADD);
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
        return acc0.add(acc1).reduceLanes(VectorOperators.ADD) - 8 * corr;
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
        return acc0.add(acc1).reduceLanes(VectorOperators.ADD);
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
        return acc0.add(acc1).reduceLanes(VectorOperators.ADD);
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
            default -> Quant.dequantize(dtype, data, base, dst, off, cols);
        }
    }

    @Override
    public void matmul(float[] x, float[] y, int n) {
        if (n == 1) { matvec(x, 0, y, 0); return; }
        Gemm.matmul(this, x, y, n);
    }
}
