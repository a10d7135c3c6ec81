package dev.kimivl.tensor;

import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * Java Vector API integer matrix-vector kernels for the low-bit formats of published GGUF files that have no native
 * kernel: Q2_K, Q3_K (k-quants, 6-8 GB Kimi-VL-A3B files), IQ4_NL and IQ4_XS (non-linear 4-bit). Built as the Q4_0 /
 * Q8_0 Java kernels of {@link QuantMatrix}: the activation comes quantized to int8 ({@link QuantizedInput})
 * and each weight block's products are summed in integers, converted to float once per block.
 * <ul>
 * <li>Q2_K and Q3_K take the activation's per-256 form (llama.cpp's Q8_K: {@code k8}, one scale {@code kd} per 256,
 *     the 16-sums {@code kbs}): their 4/6-bit sub-block scales are multiplied in 16-bit lanes and one super-block is
 *     summed in int32, one float multiply-add per 256 values; Q2_K's mins go through the 16-sums.
 *     Ranges: Q2_K |q·x·sc| ≤ 3·127·15 = 5715, Q3_K ≤ 4·127·32 = 16256, so adjacent pairs fit a short.</li>
 * <li>IQ4_NL and IQ4_XS take the per-32 form ({@code q}, {@code d}): the nibbles index the 16-level int8 grid
 *     (a byte shuffle), |level·x| ≤ 127·127, pairs summed exactly in int32; one float multiply-add per 32 values
 *     with d_w·d_x (IQ4_XS: d·(sc − 32)·d_x).</li>
 * </ul>
 * Each result equals W·x' (x' the rounded activation) up to float summation order; OtherFormatKernelsTest checks them
 * against the dequantized weights within the activation-rounding bound.
 */
final class LowBitKernels {
    private LowBitKernels() {}

    private static final VectorSpecies<Byte> B128 = ByteVector.SPECIES_128;
    private static final VectorSpecies<Short> S256 = ShortVector.SPECIES_256;
    private static final VectorSpecies<Float> F8 = Vectors.F8;
    private static final ValueLayout.OfShort S16LE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    private static final ByteVector LEVELS = ByteVector.fromArray(B128, Quant.IQ4_LEVELS, 0);

    /** True for the formats these kernels handle. */
    static boolean handles(DType t) {
        return t == DType.Q2_K || t == DType.Q3_K || t == DType.IQ4_NL || t == DType.IQ4_XS;
    }

    /** y[yo + r] = row r · x' for r in [from, to) (rows of {@code rowBytes} at {@code s}). */
    static void matvec(DType t, MemorySegment s, long rowBytes, int cols, int from, int to, QuantizedInput x, float[] y, int yo) {
        switch (t) {
            case Q2_K -> {
                short[] xk = widen(x.k8);
                for (int r = from; r < to; r++) y[yo + r] = dotQ2K(s, r * rowBytes, cols / 256, xk, x.kd, x.kbs);
            }
            case Q3_K -> {
                short[] xk = widen(x.k8);
                for (int r = from; r < to; r++) y[yo + r] = dotQ3K(s, r * rowBytes, cols / 256, xk, x.kd);
            }
            case IQ4_NL -> { for (int r = from; r < to; r++) y[yo + r] = dotIQ4NL(s, r * rowBytes, cols / 32, x.q, x.d); }
            case IQ4_XS -> { for (int r = from; r < to; r++) y[yo + r] = dotIQ4XS(s, r * rowBytes, cols / 256, x.q, x.d); }
            default -> throw new IllegalArgumentException("no low-bit kernel for " + t);
        }
    }

    private static int u8(MemorySegment s, long o) { return s.get(ValueLayout.JAVA_BYTE, o) & 0xFF; }

    /**
     * The int8 activations as shorts, once per call (cols values against rows·cols of weight work): loading them as
     * 16-bit lanes directly keeps a byte→short conversion out of every step, which measured 0.7 GB/s per core.
     */
    private static short[] widen(byte[] b) {
        short[] s = new short[b.length];
        for (int i = 0; i < b.length; i++) s[i] = b[i];
        return s;
    }

    private static ShortVector s16(ByteVector b) { return (ShortVector) b.convertShape(VectorOperators.B2S, S256, 0); }

    /** Σ of adjacent short pairs as ints when each pair's sum fits in a short: (i·65537) >> 16. */
    private static IntVector pairSumSmall(ShortVector p) {
        return p.reinterpretAsInts().mul(65537).lanewise(VectorOperators.ASHR, 16);
    }

    /** Σ of adjacent short pairs as ints (exact for any shorts). */
    private static IntVector pairSum(ShortVector p) {
        IntVector i = p.reinterpretAsInts();
        return i.lanewise(VectorOperators.ASHR, 16).add(i.lanewise(VectorOperators.LSHL, 16).lanewise(VectorOperators.ASHR, 16));
    }

    // ---------------------------------------------------------------- Q2_K

    /*
     * The k-quant kernels walk a row as one flat loop over its 16-value steps (16 per super-block) with one call site
     * of the step: nested constant-trip loops were unrolled by C2, whose inlining budget then left the step's vectors
     * boxed (measured 0.7 GB/s per core against 5+ flat).
     */

    /**
     * One Q2_K row: per super-block Σ = d·kd·Σ_k sc_k·(Σ_{i∈k} q_i·x_i) − dmin·kd·Σ_k m_k·bs_k. Step k (sub-block k
     * = 8h + 2j + t) holds values 128h + 32j + 16t + i, bits 2j of qs[32h + 16t + i].
     */
    private static float dotQ2K(MemorySegment s, long base, int nsb, short[] xk, float[] kd, short[] bs) {
        FloatVector acc = FloatVector.zero(F8);
        float mins = 0;
        for (int step = 0, n = 16 * nsb; step < n; step++) {
            int sb = step >> 4, k = step & 15, h = k >> 3, j = (k >> 1) & 3, t = k & 1;
            long o = base + 84L * sb;
            int sc = u8(s, o + k);
            IntVector p = stepQ2K(s, o + 16 + 32 * h + 16 * t, 2 * j, xk, 256 * sb + 128 * h + 32 * j + 16 * t, sc & 0xF);
            acc = ((FloatVector) p.convert(VectorOperators.I2F, 0)).fma(FloatVector.broadcast(F8, Quant.f16(s, o + 80) * kd[sb]), acc);
            mins += (sc >> 4) * bs[step] * Quant.f16(s, o + 82) * kd[sb];
        }
        return VectorMath.sum(acc) - mins;
    }

    /** 16 values: bits shift..shift+1 of the 16 bytes at q, times 16 activations at xk[xb], times the scale, pairs summed. */
    private static IntVector stepQ2K(MemorySegment s, long q, int shift, short[] xk, int xb, int sc) {
        // widened first: shifts run on 16-bit lanes (AVX2 has no byte shift); the mask keeps the byte's own bits
        ShortVector v = bits2(s16(ByteVector.fromMemorySegment(B128, s, q, LE)), shift >> 1);
        return pairSumSmall(v.mul(ShortVector.fromArray(S256, xk, xb)).mul((short) sc));
    }

    /**
     * Bits 2j..2j+1 of each lane, with constant shifts: a shift by a variable count measured many times slower here
     * (the Vector API's variable-count shift was not compiled to vpsrlw).
     */
    private static ShortVector bits2(ShortVector v, int j) {
        return switch (j) {
            case 0 -> v.and((short) 3);
            case 1 -> v.lanewise(VectorOperators.LSHR, 2).and((short) 3);
            case 2 -> v.lanewise(VectorOperators.LSHR, 4).and((short) 3);
            default -> v.lanewise(VectorOperators.LSHR, 6).and((short) 3);
        };
    }

    // ---------------------------------------------------------------- Q3_K

    /**
     * One Q3_K row: per super-block Σ = d·kd·Σ_k (sc_k − 32)·(Σ_{i∈k} q_i·x_i), q = low 2 bits − 4 + 4·(high bit).
     * Step k = 8h + 2j + t: low bits as Q2_K's (qs at 32), high bit = bit 4h + j of hmask[16t + i].
     */
    private static float dotQ3K(MemorySegment s, long base, int nsb, short[] xk, float[] kd) {
        FloatVector acc = FloatVector.zero(F8);
        for (int step = 0, n = 16 * nsb; step < n; step++) {
            int sb = step >> 4, k = step & 15, h = k >> 3, j = (k >> 1) & 3, t = k & 1;
            long o = base + 110L * sb;
            IntVector p = stepQ3K(s, o + 32 + 32 * h + 16 * t, o + 16 * t, j, 4 * h + j, xk, 256 * sb + 128 * h + 32 * j + 16 * t,
                    Quant.q3kScale(s, o + 96, k));
            acc = ((FloatVector) p.convert(VectorOperators.I2F, 0)).fma(FloatVector.broadcast(F8, Quant.f16(s, o + 108) * kd[sb]), acc);
        }
        return VectorMath.sum(acc);
    }

    /** 16 values: low bits 2j of the bytes at q, high bit hb of the bytes at hmask (clear: −4), times x and the scale. */
    private static IntVector stepQ3K(MemorySegment s, long q, long hmask, int j, int hb, short[] xk, int xb, int sc) {
        // the high bit as 0 or 4 without a variable shift: min(hmask & bit, 1) << 2
        ShortVector hi = s16(ByteVector.fromMemorySegment(B128, s, hmask, LE)).and((short) (1 << hb)).min((short) 1).lanewise(VectorOperators.LSHL, 2);
        ShortVector v = bits2(s16(ByteVector.fromMemorySegment(B128, s, q, LE)), j).sub((short) 4).add(hi);
        return pairSumSmall(v.mul(ShortVector.fromArray(S256, xk, xb)).mul((short) sc));
    }

    // ---------------------------------------------------------------- IQ4_NL, IQ4_XS

    /** Σ level·x over one 32-value nibble group at o (low nibbles: values 0-15, high: 16-31) as 8 int lanes. */
    private static IntVector groupIQ4(MemorySegment s, long o, short[] xq, int xo) {
        ByteVector p = ByteVector.fromMemorySegment(B128, s, o, LE);
        ShortVector lo = s16(p.and((byte) 0xF).selectFrom(LEVELS)), hi = s16(p.lanewise(VectorOperators.LSHR, 4).selectFrom(LEVELS));
        // each product ≤ 127² = 16129: a sum of two fits a short, pairs summed exactly in ints
        return pairSum(lo.mul(ShortVector.fromArray(S256, xq, xo)).add(hi.mul(ShortVector.fromArray(S256, xq, xo + 16))));
    }

    private static float dotIQ4NL(MemorySegment s, long base, int nb, short[] xq, float[] dx) {
        FloatVector acc0 = FloatVector.zero(F8), acc1 = acc0;
        long o = base;
        int b = 0;
        for (; b + 1 < nb; b += 2, o += 36) {
            acc0 = ((FloatVector) groupIQ4(s, o + 2, xq, 32 * b).convert(VectorOperators.I2F, 0))
                    .fma(FloatVector.broadcast(F8, Quant.f16(s, o) * dx[b]), acc0);
            acc1 = ((FloatVector) groupIQ4(s, o + 20, xq, 32 * b + 32).convert(VectorOperators.I2F, 0))
                    .fma(FloatVector.broadcast(F8, Quant.f16(s, o + 18) * dx[b + 1]), acc1);
        }
        if (b < nb) {
            acc0 = ((FloatVector) groupIQ4(s, o + 2, xq, 32 * b).convert(VectorOperators.I2F, 0))
                    .fma(FloatVector.broadcast(F8, Quant.f16(s, o) * dx[b]), acc0);
        }
        return VectorMath.sum(acc0.add(acc1));
    }

    private static float dotIQ4XS(MemorySegment s, long base, int nsb, short[] xq, float[] dx) {
        FloatVector acc0 = FloatVector.zero(F8), acc1 = acc0;
        for (int sb = 0; sb < nsb; sb++) {
            long o = base + 136L * sb;
            float d = Quant.f16(s, o);
            int sh = s.get(S16LE, o + 2) & 0xFFFF;
            for (int ib = 0; ib < 8; ib += 2) {
                int b = 8 * sb + ib;
                int ls0 = ((u8(s, o + 4 + ib / 2) & 0xF) | (((sh >> (2 * ib)) & 3) << 4)) - 32;
                int ls1 = ((u8(s, o + 4 + ib / 2) >> 4) | (((sh >> (2 * ib + 2)) & 3) << 4)) - 32;
                acc0 = ((FloatVector) groupIQ4(s, o + 8 + 16 * ib, xq, 32 * b).convert(VectorOperators.I2F, 0))
                        .fma(FloatVector.broadcast(F8, d * ls0 * dx[b]), acc0);
                acc1 = ((FloatVector) groupIQ4(s, o + 24 + 16 * ib, xq, 32 * b + 32).convert(VectorOperators.I2F, 0))
                        .fma(FloatVector.broadcast(F8, d * ls1 * dx[b + 1]), acc1);
            }
        }
        return VectorMath.sum(acc0.add(acc1));
    }
}
