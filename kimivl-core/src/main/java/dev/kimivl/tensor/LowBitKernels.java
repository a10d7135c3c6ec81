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
 * Q8_0 Java kernels of {@link QuantMatrix}: the activation comes quantized to int8 ({@link QuantMatrix.QuantizedInput})
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
    private static final VectorSpecies<Float> F8 = FloatVector.SPECIES_256;
    private static final ValueLayout.OfShort S16LE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    private static final ByteVector LEVELS = ByteVector.fromArray(B128, Quant.IQ4_LEVELS, 0);

    /** True for the formats these kernels handle. */
    static boolean handles(DType t) {
        return t == DType.Q2_K || t == DType.Q3_K || t == DType.IQ4_NL || t == DType.IQ4_XS;
    }

    /** y[yo + r] = row r · x' for r in [from, to) (rows of {@code rowBytes} at {@code s}). */
    static void matvec(DType t, MemorySegment s, long rowBytes, int cols, int from, int to, QuantMatrix.QuantizedInput x, float[] y, int yo) {
        switch (t) {
            case Q2_K -> { for (int r = from; r < to; r++) y[yo + r] = dotQ2K(s, r * rowBytes, cols / 256, x.k8, x.kd, x.kbs); }
            case Q3_K -> { for (int r = from; r < to; r++) y[yo + r] = dotQ3K(s, r * rowBytes, cols / 256, x.k8, x.kd); }
            case IQ4_NL -> { for (int r = from; r < to; r++) y[yo + r] = dotIQ4NL(s, r * rowBytes, cols / 32, x.q, x.d); }
            case IQ4_XS -> { for (int r = from; r < to; r++) y[yo + r] = dotIQ4XS(s, r * rowBytes, cols / 256, x.q, x.d); }
            default -> throw new IllegalArgumentException("no low-bit kernel for " + t);
        }
    }

    private static int u8(MemorySegment s, long o) { return s.get(ValueLayout.JAVA_BYTE, o) & 0xFF; }

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

    /**
     * One Q2_K row: per super-block Σ = d·kd·Σ_k sc_k·(Σ_{i∈k} q_i·x_i) − dmin·kd·Σ_k m_k·bs_k. Value 128h + 32j + 16t + i
     * is bits 2j of qs[32h + 16t + i] in sub-block 8h + 2j + t.
     */
    private static float dotQ2K(MemorySegment s, long base, int nsb, byte[] xk, float[] kd, short[] bs) {
        FloatVector acc = FloatVector.zero(F8);
        float mins = 0;
        for (int sb = 0; sb < nsb; sb++) {
            long o = base + 84L * sb;
            int xo = 256 * sb;
            IntVector sum = halfQ2K(s, o, 0, xk, xo).add(halfQ2K(s, o, 1, xk, xo));
            int msum = 0;
            for (int k = 0; k < 16; k++) msum += (u8(s, o + k) >> 4) * bs[16 * sb + k];
            float dk = kd[sb];
            acc = ((FloatVector) sum.convert(VectorOperators.I2F, 0)).fma(FloatVector.broadcast(F8, Quant.f16(s, o + 80) * dk), acc);
            mins += Quant.f16(s, o + 82) * dk * msum;
        }
        return acc.reduceLanes(VectorOperators.ADD) - mins;
    }

    /** Half h (128 values) of a Q2_K super-block at o: Σ sc·q·x per int lane. */
    private static IntVector halfQ2K(MemorySegment s, long o, int h, byte[] xk, int xo) {
        IntVector sum = IntVector.zero(IntVector.SPECIES_256);
        for (int t = 0; t < 2; t++) {
            ByteVector p = ByteVector.fromMemorySegment(B128, s, o + 16 + 32 * h + 16 * t, LE);
            for (int j = 0; j < 4; j++) {
                int k = 8 * h + 2 * j + t;
                ShortVector q = s16(p.lanewise(VectorOperators.LSHR, 2 * j).and((byte) 3));
                ShortVector xv = s16(ByteVector.fromArray(B128, xk, xo + 128 * h + 32 * j + 16 * t));
                sum = sum.add(pairSumSmall(q.mul(xv).mul((short) (u8(s, o + k) & 0xF))));
            }
        }
        return sum;
    }

    // ---------------------------------------------------------------- Q3_K

    /**
     * One Q3_K row: per super-block Σ = d·kd·Σ_k (sc_k − 32)·(Σ_{i∈k} q_i·x_i), q = low 2 bits − 4 + 4·(high bit).
     * Value 128h + 32j + 16t + i: low bits as Q2_K's (qs at 32), high bit = bit 4h + j of hmask[16t + i].
     */
    private static float dotQ3K(MemorySegment s, long base, int nsb, byte[] xk, float[] kd) {
        FloatVector acc = FloatVector.zero(F8);
        for (int sb = 0; sb < nsb; sb++) {
            long o = base + 110L * sb;
            int xo = 256 * sb;
            IntVector sum = halfQ3K(s, o, 0, xk, xo).add(halfQ3K(s, o, 1, xk, xo));
            acc = ((FloatVector) sum.convert(VectorOperators.I2F, 0)).fma(FloatVector.broadcast(F8, Quant.f16(s, o + 108) * kd[sb]), acc);
        }
        return acc.reduceLanes(VectorOperators.ADD);
    }

    private static IntVector halfQ3K(MemorySegment s, long o, int h, byte[] xk, int xo) {
        IntVector sum = IntVector.zero(IntVector.SPECIES_256);
        for (int t = 0; t < 2; t++) {
            ByteVector p = ByteVector.fromMemorySegment(B128, s, o + 32 + 32 * h + 16 * t, LE);
            ByteVector hm = ByteVector.fromMemorySegment(B128, s, o + 16 * t, LE);
            for (int j = 0; j < 4; j++) {
                int k = 8 * h + 2 * j + t;
                ByteVector hi = hm.lanewise(VectorOperators.LSHR, 4 * h + j).and((byte) 1).lanewise(VectorOperators.LSHL, 2);
                ShortVector q = s16(p.lanewise(VectorOperators.LSHR, 2 * j).and((byte) 3).sub((byte) 4).add(hi));
                ShortVector xv = s16(ByteVector.fromArray(B128, xk, xo + 128 * h + 32 * j + 16 * t));
                sum = sum.add(pairSumSmall(q.mul(xv).mul((short) Quant.q3kScale(s, o + 96, k))));
            }
        }
        return sum;
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
        return acc0.add(acc1).reduceLanes(VectorOperators.ADD);
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
        return acc0.add(acc1).reduceLanes(VectorOperators.ADD);
    }
}
