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
 * Vector API decoders of the formats published k-quant files are mostly made of (Q4_K, Q6_K, Q5_0) into floats: the
 * path their matrices take without the native kernels (another CPU, a build without gcc, -Dkimivl.native=false),
 * where a row is decoded and then dotted with the activation. The scalar reference dequantizers ({@link Quant}) ran
 * 0.5-1.7 G weights/s on 2 threads here, a tenth of the Q4_0 Java kernel. Each value is computed with the reference's
 * float operations in the same order (d·sc as one product, then times q; then minus the min), so the results are
 * identical to {@link Quant#dequantize}, checked by QuantTest against gguf-py.
 */
final class KQuantRows {
    private KQuantRows() {}

    private static final VectorSpecies<Float> F = Vectors.F;
    private static final int FL = F.length();
    private static final VectorSpecies<Byte> B = VectorSpecies.of(byte.class, VectorShape.forBitSize(FL * 8));
    private static final VectorSpecies<Integer> I = VectorSpecies.of(int.class, F.vectorShape());
    private static final ValueLayout.OfShort S16LE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfInt I32LE = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    private static final IntVector IOTA = IntVector.zero(I).addIndex(1);

    /** True when {@link #decode} has a vector decoder for the type. */
    static boolean handles(DType t) {
        return t == DType.Q4_K || t == DType.Q6_K || t == DType.Q5_0;
    }

    /** n values (whole blocks) of a row of type t starting at byte src → y[yo ..]. */
    static void decode(DType t, MemorySegment s, long src, float[] y, int yo, int n) {
        switch (t) {
            case Q4_K -> q4k(s, src, y, yo, n);
            case Q6_K -> q6k(s, src, y, yo, n);
            case Q5_0 -> q50(s, src, y, yo, n);
            default -> Quant.dequantize(t, s, src, y, yo, n);
        }
    }

    private static FloatVector bytesToFloats(ByteVector p) {
        return (FloatVector) p.convertShape(VectorOperators.B2F, F, 0);
    }

    private static int u8(MemorySegment s, long o) { return s.get(ValueLayout.JAVA_BYTE, o) & 0xFF; }

    /** block_q4_K as Quant.dequantQ4_K: per 64 values, low nibbles d·sc_a·q − dmin·m_a, high nibbles with sc_b, m_b. */
    private static void q4k(MemorySegment s, long src, float[] y, int yo, int n) {
        int[] sm = new int[2];
        for (int b = 0; b < n / 256; b++) {
            long o = src + b * 144L;
            float d = Quant.f16(s, o), dmin = Quant.f16(s, o + 2);
            long q = o + 16;
            int out = yo + b * 256;
            for (int j = 0; j < 4; j++, q += 32, out += 64) {
                Quant.scaleMinK4(2 * j, s, o + 4, sm);
                FloatVector d1 = FloatVector.broadcast(F, d * sm[0]), m1 = FloatVector.broadcast(F, dmin * sm[1]);
                Quant.scaleMinK4(2 * j + 1, s, o + 4, sm);
                FloatVector d2 = FloatVector.broadcast(F, d * sm[0]), m2 = FloatVector.broadcast(F, dmin * sm[1]);
                for (int l = 0; l < 32; l += FL) {
                    ByteVector p = ByteVector.fromMemorySegment(B, s, q + l, LE);
                    bytesToFloats(p.and((byte) 0xF)).mul(d1).sub(m1).intoArray(y, out + l);
                    bytesToFloats(p.lanewise(VectorOperators.LSHR, 4)).mul(d2).sub(m2).intoArray(y, out + 32 + l);
                }
            }
        }
    }

    /** block_q6_K as Quant.dequantQ6_K: value l + 32i of each half from ql, the top 2 bits from qh, d·sc·(q − 32). */
    private static void q6k(MemorySegment s, long src, float[] y, int yo, int n) {
        for (int b = 0; b < n / 256; b++) {
            long o = src + b * 210L;
            float d = Quant.f16(s, o + 208);
            int out = yo + b * 256;
            for (int half = 0; half < 2; half++, out += 128) {
                long ql = o + 64L * half, qh = o + 128 + 32L * half, sc = o + 192 + 8L * half;
                for (int l = 0; l < 32; l += FL) {
                    int is = l / 16;                  // FL ≤ 16: one scale per chunk
                    ByteVector a = ByteVector.fromMemorySegment(B, s, ql + l, LE), c = ByteVector.fromMemorySegment(B, s, ql + l + 32, LE);
                    ByteVector h = ByteVector.fromMemorySegment(B, s, qh + l, LE);
                    ByteVector q1 = a.and((byte) 0xF).or(h.and((byte) 3).lanewise(VectorOperators.LSHL, 4));
                    ByteVector q2 = c.and((byte) 0xF).or(h.lanewise(VectorOperators.LSHR, 2).and((byte) 3).lanewise(VectorOperators.LSHL, 4));
                    ByteVector q3 = a.lanewise(VectorOperators.LSHR, 4).or(h.lanewise(VectorOperators.LSHR, 4).and((byte) 3).lanewise(VectorOperators.LSHL, 4));
                    ByteVector q4 = c.lanewise(VectorOperators.LSHR, 4).or(h.lanewise(VectorOperators.LSHR, 6).lanewise(VectorOperators.LSHL, 4));
                    int o1 = out + l;
                    bytesToFloats(q1.sub((byte) 32)).mul(d * s.get(ValueLayout.JAVA_BYTE, sc + is)).intoArray(y, o1);
                    bytesToFloats(q2.sub((byte) 32)).mul(d * s.get(ValueLayout.JAVA_BYTE, sc + is + 2)).intoArray(y, o1 + 32);
                    bytesToFloats(q3.sub((byte) 32)).mul(d * s.get(ValueLayout.JAVA_BYTE, sc + is + 4)).intoArray(y, o1 + 64);
                    bytesToFloats(q4.sub((byte) 32)).mul(d * s.get(ValueLayout.JAVA_BYTE, sc + is + 6)).intoArray(y, o1 + 96);
                }
            }
        }
    }

    /** block_q5_0 as Quant.dequantQ5_0: ((nibble | fifth bit << 4) − 16)·d, the fifth bits one per value in a word. */
    private static void q50(MemorySegment s, long src, float[] y, int yo, int n) {
        for (int b = 0; b < n / 32; b++) {
            long o = src + b * 22L;
            FloatVector d = FloatVector.broadcast(F, Quant.f16(s, o));
            int qh = s.get(I32LE, o + 2), out = yo + b * 32;
            for (int l = 0; l < 16; l += FL) {
                ByteVector p = ByteVector.fromMemorySegment(B, s, o + 6 + l, LE);
                FloatVector hLo = (FloatVector) IntVector.broadcast(I, qh).lanewise(VectorOperators.LSHR, IOTA.add(l)).and(1).lanewise(VectorOperators.LSHL, 4)
                        .convert(VectorOperators.I2F, 0);
                FloatVector hHi = (FloatVector) IntVector.broadcast(I, qh).lanewise(VectorOperators.LSHR, IOTA.add(l + 16)).and(1).lanewise(VectorOperators.LSHL, 4)
                        .convert(VectorOperators.I2F, 0);
                bytesToFloats(p.and((byte) 0xF)).add(hLo).sub(16f).mul(d).intoArray(y, out + l);
                bytesToFloats(p.lanewise(VectorOperators.LSHR, 4)).add(hHi).sub(16f).mul(d).intoArray(y, out + 16 + l);
            }
        }
    }
}
