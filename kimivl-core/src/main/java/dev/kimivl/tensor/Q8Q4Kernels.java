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

/**
 * The Java Vector API kernels of the Q8_0 and Q4_0 block formats ({@link QuantMatrix}'s weights): a Q8_0 block is
 * 34 bytes (f16 scale d, 32 int8 q: w = d·q), a Q4_0 block 18 bytes (f16 d, 16 bytes of nibbles: elements 0-15 in the
 * low nibbles, 16-31 in the high ones, w = d·(q − 8)); a row of cols columns is cols / 32 consecutive blocks.
 * <ul>
 *   <li>integer products (the default matvec): the row against a {@link QuantizedInput}, 256-bit on every machine;</li>
 *   <li>exact products (float activations, {@link QuantMatrix#matvecExact}): machine width ({@link Vectors#F}), with
 *       8-lane forms for AVX2;</li>
 *   <li>decoding blocks to floats (row(), the float GEMM's tiles).</li>
 * </ul>
 * Every method takes the weight segment, the byte offset of its row and the row's block count.
 */
final class Q8Q4Kernels {
    /** The machine's float width (at most 16 lanes). */
    static final VectorSpecies<Float> F = Vectors.F;
    static final int FL = Vectors.FL;
    /** Bytes loaded per float vector: one byte per float lane. */
    private static final VectorSpecies<Byte> B = VectorSpecies.of(byte.class, VectorShape.forBitSize(FL * 8));
    private static final ValueLayout.OfShort S16LE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    private static final VectorSpecies<Float> F8 = Vectors.F8;
    private static final VectorSpecies<Short> S256 = ShortVector.SPECIES_256;
    private static final VectorSpecies<Byte> B128 = ByteVector.SPECIES_128;
    private static final VectorSpecies<Byte> B256 = ByteVector.SPECIES_256;
    private static final VectorSpecies<Integer> I8L = IntVector.SPECIES_256;

    private Q8Q4Kernels() {}

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
    static float dotQ8Int(MemorySegment s, long base, int blocks, short[] xq, float[] dx) {
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
    static void dotQ4Int2(MemorySegment s, long base, long rowBytes, int blocks, short[] xq, float[] dx, float[] y, int yi) {
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

    /**
     * One Q4_0 row · quantized x (the odd last row). Not folded with dotQ4Int2 into a shared block step: that helper
     * (f16 scale read inside it) measured the two-row kernel 5% slower than before; this form, 6% faster (same A/B
     * as dotQ8's).
     */
    static float dotQ4Int(MemorySegment s, long base, int blocks, short[] xq, float[] dx) {
        FloatVector a0 = FloatVector.zero(F8);
        long o = base;
        for (int b = 0; b < blocks; b++, o += 18) {
            a0 = accQ4(prodQ4(s, o, ShortVector.fromArray(S256, xq, 32 * b), ShortVector.fromArray(S256, xq, 32 * b + 16)),
                    Float.float16ToFloat(s.get(S16LE, o)) * dx[b], a0);
        }
        return VectorMath.sum(a0);
    }


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
    static float dotQ8Avx2(MemorySegment s, long base, int blocks, float[] xp) {
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
    static float dotQ4Avx2(MemorySegment s, long base, int blocks, float[] x, int xo, float[] xs) {
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

    /**
     * Σ_c W[r, c]·x[xo + c] for one Q8_0 row starting at byte {@code base}; two blocks per iteration. The odd last
     * block repeats the loop's block step: with one per-block helper called twice per iteration (as dotQ4 does) this
     * kernel measured 4.5% slower than before, this form 3% slower in the next run of the same A/B (SmallKernelsBench,
     * one thread, 2026-12-05): the helper's cost is within the noise but not shown to be zero, so it stays unfolded.
     */
    static float dotQ8(MemorySegment s, long base, int blocks, float[] x, int xo) {
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
    static float dotQ4(MemorySegment s, long base, int blocks, float[] x, int xo) {
        FloatVector acc0 = FloatVector.zero(F), acc1 = acc0;
        int b = 0;
        long o = base;
        int xi = xo;
        for (; b + 1 < blocks; b += 2, o += 36, xi += 64) {
            acc0 = blockQ4Exact(s, o, x, xi, acc0);
            acc1 = blockQ4Exact(s, o + 18, x, xi + 32, acc1);
        }
        if (b < blocks) acc0 = blockQ4Exact(s, o, x, xi, acc0);
        return VectorMath.sum(acc0.add(acc1));
    }

    /** acc + d·Σ (q − 8)·x over the Q4_0 block at byte o against x[xi .. xi + 32). */
    private static FloatVector blockQ4Exact(MemorySegment s, long o, float[] x, int xi, FloatVector acc) {
        FloatVector t = FloatVector.zero(F);
        for (int k = 0; k < 16; k += FL) {
            ByteVector p = ByteVector.fromMemorySegment(B, s, o + 2 + k, LE);
            t = lo(p).fma(FloatVector.fromArray(F, x, xi + k), t);
            t = hi(p).fma(FloatVector.fromArray(F, x, xi + 16 + k), t);
        }
        return t.fma(FloatVector.broadcast(F, Float.float16ToFloat(s.get(S16LE, o))), acc);
    }

    /** Low nibbles − 8 as floats. */
    private static FloatVector lo(ByteVector p) {
        return (FloatVector) p.and((byte) 0xF).sub((byte) 8).convertShape(VectorOperators.B2F, F, 0);
    }

    /** High nibbles − 8 as floats. */
    private static FloatVector hi(ByteVector p) {
        return (FloatVector) p.lanewise(VectorOperators.LSHR, 4).sub((byte) 8).convertShape(VectorOperators.B2F, F, 0);
    }

    /** Decodes nb Q8_0 blocks starting at byte o into dst[d0 ..] (32 floats per block). */
    static void decodeQ8(MemorySegment s, long o, int nb, float[] dst, int d0) {
        for (int b = 0; b < nb; b++, o += 34, d0 += 32) {
            FloatVector d = FloatVector.broadcast(F, Float.float16ToFloat(s.get(S16LE, o)));
            for (int k = 0; k < 32; k += FL) q8(s, o + 2 + k).mul(d).intoArray(dst, d0 + k);
        }
    }

    /** Decodes nb Q4_0 blocks starting at byte o into dst[d0 ..] (32 floats per block). */
    static void decodeQ4(MemorySegment s, long o, int nb, float[] dst, int d0) {
        for (int b = 0; b < nb; b++, o += 18, d0 += 32) {
            FloatVector d = FloatVector.broadcast(F, Float.float16ToFloat(s.get(S16LE, o)));
            for (int k = 0; k < 16; k += FL) {
                ByteVector p = ByteVector.fromMemorySegment(B, s, o + 2 + k, LE);
                lo(p).mul(d).intoArray(dst, d0 + k);
                hi(p).mul(d).intoArray(dst, d0 + 16 + k);
            }
        }
    }
}
