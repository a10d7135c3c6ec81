package dev.kimivl.tensor;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * llama.cpp block formats: reference quantizers (bit-exact with ggml's {@code quantize_row_q8_0_ref} /
 * {@code quantize_row_q4_0_ref} and gguf-py's numpy versions) and scalar row dequantizers for
 * Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL and IQ4_XS (ggml's {@code dequantize_row_*}: the same float operations in the
 * same order, without fused multiply-adds, so the results are bit-identical to gguf-py's numpy dequantizers, which
 * QuantTest checks). All offsets are in bytes for segments and in elements for float arrays.
 */
public final class Quant {
    static final ValueLayout.OfShort S16LE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfInt S32LE = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private Quant() {}

    /** Half-away-from-zero rounding, as C's roundf. */
    static float roundf(float v) {
        return v < 0 ? -(float) Math.floor(-v + 0.5f) : (float) Math.floor(v + 0.5f);
    }

    /** Quantizes n (multiple of 32) floats to Q8_0 blocks at dst[dstOff..]. */
    public static void quantizeQ8_0(float[] x, int xo, int n, MemorySegment dst, long dstOff) {
        if (n % 32 != 0) throw new IllegalArgumentException("Q8_0 needs a multiple of 32 elements, got " + n);
        for (int b = 0; b < n / 32; b++) {
            int base = xo + b * 32;
            float amax = 0;
            for (int j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[base + j]));
            float d = amax / 127f;
            float id = d != 0 ? 1f / d : 0f;
            long o = dstOff + b * 34L;
            dst.set(S16LE, o, Float.floatToFloat16(d));
            for (int j = 0; j < 32; j++) dst.set(ValueLayout.JAVA_BYTE, o + 2 + j, (byte) (int) roundf(x[base + j] * id));
        }
    }

    /** Quantizes n (multiple of 32) floats to Q4_0 blocks at dst[dstOff..]. */
    public static void quantizeQ4_0(float[] x, int xo, int n, MemorySegment dst, long dstOff) {
        if (n % 32 != 0) throw new IllegalArgumentException("Q4_0 needs a multiple of 32 elements, got " + n);
        for (int b = 0; b < n / 32; b++) {
            int base = xo + b * 32;
            float amax = 0, max = 0;
            for (int j = 0; j < 32; j++) {
                float v = x[base + j];
                if (amax < Math.abs(v)) { amax = Math.abs(v); max = v; }
            }
            float d = max / -8f;
            float id = d != 0 ? 1f / d : 0f;
            long o = dstOff + b * 18L;
            dst.set(S16LE, o, Float.floatToFloat16(d));
            for (int j = 0; j < 16; j++) {
                float x0 = x[base + j] * id, x1 = x[base + 16 + j] * id;
                int xi0 = Math.min(15, (byte) (int) (x0 + 8.5f)), xi1 = Math.min(15, (byte) (int) (x1 + 8.5f));
                dst.set(ValueLayout.JAVA_BYTE, o + 2 + j, (byte) (xi0 | (xi1 << 4)));
            }
        }
    }

    /** Quantizes a row-major [rows, cols] float matrix to a new native (GC-managed) segment of the given type (Q8_0, Q4_0, Q5_0, Q2_K, Q3_K, Q4_K, Q6_K, F16, BF16, F32). */
    public static MemorySegment quantize(float[] x, int rows, int cols, DType type) {
        MemorySegment dst = Segments.allocate(type.bytesFor((long) rows * cols));
        quantizeRows(x, 0, rows, cols, type, dst, 0);
        return dst;
    }

    /** Writes rows·cols floats of x (from xo) as {@code type} to dst at dstOff. */
    public static void quantizeRows(float[] x, int xo, int rows, int cols, DType type, MemorySegment dst, long dstOff) {
        long rowBytes = type.bytesFor(cols);
        for (int r = 0; r < rows; r++) {
            int src = xo + r * cols;
            long o = dstOff + r * rowBytes;
            switch (type) {
                case Q8_0 -> quantizeQ8_0(x, src, cols, dst, o);
                case Q4_0 -> quantizeQ4_0(x, src, cols, dst, o);
                case Q5_0 -> KQuantizers.quantizeQ5_0(x, src, cols, dst, o);
                case Q4_K -> KQuantizers.quantizeQ4_K(x, src, cols, dst, o);
                case Q6_K -> KQuantizers.quantizeQ6_K(x, src, cols, dst, o);
                case Q2_K -> KQuantizers.quantizeQ2_K(x, src, cols, dst, o);
                case Q3_K -> KQuantizers.quantizeQ3_K(x, src, cols, dst, o);
                case F32 -> MemorySegment.copy(x, src, dst, ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), o, cols);
                case F16 -> { for (int c = 0; c < cols; c++) dst.set(S16LE, o + 2L * c, Float.floatToFloat16(x[src + c])); }
                case BF16 -> { for (int c = 0; c < cols; c++) dst.set(S16LE, o + 2L * c, VectorMath.floatToBf16(x[src + c])); }
                default -> throw new IllegalArgumentException("cannot quantize to " + type);
            }
        }
    }

    /** Dequantizes n elements (a multiple of the block size) of a block-format row starting at byte src. */
    public static void dequantize(DType type, MemorySegment seg, long src, float[] y, int yo, int n) {
        switch (type) {
            case Q8_0 -> dequantQ8_0(seg, src, y, yo, n);
            case Q4_0 -> dequantQ4_0(seg, src, y, yo, n);
            case Q4_1 -> dequantQ4_1(seg, src, y, yo, n);
            case Q5_0 -> dequantQ5_0(seg, src, y, yo, n);
            case Q5_1 -> dequantQ5_1(seg, src, y, yo, n);
            case Q4_K -> dequantQ4_K(seg, src, y, yo, n);
            case Q5_K -> dequantQ5_K(seg, src, y, yo, n);
            case Q6_K -> dequantQ6_K(seg, src, y, yo, n);
            case Q2_K -> dequantQ2_K(seg, src, y, yo, n);
            case Q3_K -> dequantQ3_K(seg, src, y, yo, n);
            case IQ4_NL -> dequantIQ4_NL(seg, src, y, yo, n);
            case IQ4_XS -> dequantIQ4_XS(seg, src, y, yo, n);
            case F32 -> MemorySegment.copy(seg, ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), src, y, yo, n);
            case F16 -> { for (int i = 0; i < n; i++) y[yo + i] = Float.float16ToFloat(seg.get(S16LE, src + 2L * i)); }
            case BF16 -> { for (int i = 0; i < n; i++) y[yo + i] = Float.intBitsToFloat((seg.get(S16LE, src + 2L * i) & 0xFFFF) << 16); }
            default -> throw new IllegalArgumentException("cannot dequantize " + type);
        }
    }

    static float f16(MemorySegment s, long off) { return Float.float16ToFloat(s.get(S16LE, off)); }

    private static int u8(MemorySegment s, long off) { return s.get(ValueLayout.JAVA_BYTE, off) & 0xFF; }

    public static void dequantQ8_0(MemorySegment s, long src, float[] y, int yo, int n) {
        for (int b = 0; b < n / 32; b++) {
            long o = src + b * 34L;
            float d = f16(s, o);
            for (int j = 0; j < 32; j++) y[yo + b * 32 + j] = d * s.get(ValueLayout.JAVA_BYTE, o + 2 + j);
        }
    }

    public static void dequantQ4_0(MemorySegment s, long src, float[] y, int yo, int n) {
        for (int b = 0; b < n / 32; b++) {
            long o = src + b * 18L;
            float d = f16(s, o);
            for (int j = 0; j < 16; j++) {
                int q = u8(s, o + 2 + j);
                y[yo + b * 32 + j] = ((q & 0xF) - 8) * d;
                y[yo + b * 32 + 16 + j] = ((q >> 4) - 8) * d;
            }
        }
    }

    /** block_q4_1: f16 d, f16 m, u8 qs[16]; value = d·q + m, nibbles ordered as Q4_0 (low: 0..15, high: 16..31). */
    public static void dequantQ4_1(MemorySegment s, long src, float[] y, int yo, int n) {
        for (int b = 0; b < n / 32; b++) {
            long o = src + b * 20L;
            float d = f16(s, o), m = f16(s, o + 2);
            for (int j = 0; j < 16; j++) {
                int q = u8(s, o + 4 + j);
                y[yo + b * 32 + j] = (q & 0xF) * d + m;
                y[yo + b * 32 + 16 + j] = (q >> 4) * d + m;
            }
        }
    }

    /**
     * block_q5_0: f16 d, u8 qh[4], u8 qs[16]. The fifth bits are one little-endian 32-bit word whose bit j belongs to
     * element j (so bits 0..15 go with the low nibbles, 16..31 with the high ones); value = d·(q − 16). llama.cpp
     * writes Q5_0 where a Q4_K_M file cannot use Q4_K: rows whose length is not a multiple of 256, such as Kimi-VL's
     * MoE ffn_down (1408 columns).
     */
    public static void dequantQ5_0(MemorySegment s, long src, float[] y, int yo, int n) {
        for (int b = 0; b < n / 32; b++) {
            long o = src + b * 22L;
            float d = f16(s, o);
            int qh = s.get(S32LE, o + 2);
            for (int j = 0; j < 16; j++) {
                int q = u8(s, o + 6 + j);
                y[yo + b * 32 + j] = (((q & 0xF) | (((qh >>> j) & 1) << 4)) - 16) * d;
                y[yo + b * 32 + 16 + j] = (((q >> 4) | (((qh >>> (j + 16)) & 1) << 4)) - 16) * d;
            }
        }
    }

    /** block_q5_1: f16 d, f16 m, u8 qh[4], u8 qs[16]; the bits as Q5_0, value = d·q + m (unsigned q, no −16). */
    public static void dequantQ5_1(MemorySegment s, long src, float[] y, int yo, int n) {
        for (int b = 0; b < n / 32; b++) {
            long o = src + b * 24L;
            float d = f16(s, o), m = f16(s, o + 2);
            int qh = s.get(S32LE, o + 4);
            for (int j = 0; j < 16; j++) {
                int q = u8(s, o + 8 + j);
                y[yo + b * 32 + j] = ((q & 0xF) | (((qh >>> j) & 1) << 4)) * d + m;
                y[yo + b * 32 + 16 + j] = ((q >> 4) | (((qh >>> (j + 16)) & 1) << 4)) * d + m;
            }
        }
    }

    /** block_q4_K: f16 d, f16 dmin, u8 scales[12] (6-bit scale/min pairs), u8 qs[128]. */
    public static void dequantQ4_K(MemorySegment s, long src, float[] y, int yo, int n) { dequantK45(s, src, y, yo, n, false); }

    /**
     * block_q5_K: f16 d, f16 dmin, u8 scales[12] (packed as Q4_K), u8 qh[32], u8 qs[128]. Each 64 elements are two
     * sub-blocks of 32 sharing qs[l] (low nibble, then high nibble, as Q4_K); the fifth bit of element l of sub-block
     * i (0..7) is bit i of qh[l], so the pair at 64·k takes bits 2k and 2k + 1.
     */
    public static void dequantQ5_K(MemorySegment s, long src, float[] y, int yo, int n) { dequantK45(s, src, y, yo, n, true); }

    /** Q4_K, or Q5_K when q5 (the same layout with 32 bytes of fifth bits after the scales; +0 for Q4_K is exact). */
    private static void dequantK45(MemorySegment s, long src, float[] y, int yo, int n, boolean q5) {
        int[] sm = new int[2];
        int bb = q5 ? 176 : 144;
        for (int b = 0; b < n / 256; b++) {
            long o = src + (long) b * bb;
            float d = f16(s, o), dmin = f16(s, o + 2);
            long sc = o + 4, qh = o + 16, q = q5 ? o + 48 : o + 16;
            int out = yo + b * 256;
            for (int j = 0, is = 0; j < 256; j += 64, is += 2) {
                scaleMinK4(is, s, sc, sm);
                float d1 = d * sm[0], m1 = dmin * sm[1];
                scaleMinK4(is + 1, s, sc, sm);
                float d2 = d * sm[0], m2 = dmin * sm[1];
                int u1 = 1 << is, u2 = 2 << is;
                for (int l = 0; l < 32; l++) y[out++] = d1 * ((u8(s, q + l) & 0xF) + (q5 && (u8(s, qh + l) & u1) != 0 ? 16 : 0)) - m1;
                for (int l = 0; l < 32; l++) y[out++] = d2 * ((u8(s, q + l) >> 4) + (q5 && (u8(s, qh + l) & u2) != 0 ? 16 : 0)) - m2;
                q += 32;
            }
        }
    }

    static void scaleMinK4(int j, MemorySegment s, long q, int[] out) {
        if (j < 4) {
            out[0] = u8(s, q + j) & 63;
            out[1] = u8(s, q + j + 4) & 63;
        } else {
            out[0] = (u8(s, q + j + 4) & 0xF) | ((u8(s, q + j - 4) >> 6) << 4);
            out[1] = (u8(s, q + j + 4) >> 4) | ((u8(s, q + j) >> 6) << 4);
        }
    }

    /** block_q6_K: u8 ql[128], u8 qh[64], i8 scales[16], f16 d. */
    public static void dequantQ6_K(MemorySegment s, long src, float[] y, int yo, int n) {
        for (int b = 0; b < n / 256; b++) {
            long o = src + b * 210L;
            float d = f16(s, o + 208);
            long ql = o, qh = o + 128, sc = o + 192;
            int out = yo + b * 256;
            for (int half = 0; half < 2; half++) {
                for (int l = 0; l < 32; l++) {
                    int is = l / 16;
                    int h = u8(s, qh + l);
                    int q1 = ((u8(s, ql + l) & 0xF) | (((h >> 0) & 3) << 4)) - 32;
                    int q2 = ((u8(s, ql + l + 32) & 0xF) | (((h >> 2) & 3) << 4)) - 32;
                    int q3 = ((u8(s, ql + l) >> 4) | (((h >> 4) & 3) << 4)) - 32;
                    int q4 = ((u8(s, ql + l + 32) >> 4) | (((h >> 6) & 3) << 4)) - 32;
                    y[out + l] = d * s.get(ValueLayout.JAVA_BYTE, sc + is) * q1;
                    y[out + l + 32] = d * s.get(ValueLayout.JAVA_BYTE, sc + is + 2) * q2;
                    y[out + l + 64] = d * s.get(ValueLayout.JAVA_BYTE, sc + is + 4) * q3;
                    y[out + l + 96] = d * s.get(ValueLayout.JAVA_BYTE, sc + is + 6) * q4;
                }
                out += 128; ql += 64; qh += 32; sc += 8;
            }
        }
    }

    /**
     * block_q2_K: u8 scales[16] (low nibble: scale, high nibble: min, one pair per 16 values), u8 qs[64], f16 d, f16
     * dmin. Value 128h + 32s + l (h = 0, 1; s = 0..3; l < 32) is bits 2s..2s+1 of qs[32h + l], in sub-block
     * (128h + 32s + l) / 16; value d·sc·q − dmin·m (d·sc and dmin·m each one float product, as gguf-py).
     */
    public static void dequantQ2_K(MemorySegment s, long src, float[] y, int yo, int n) {
        for (int b = 0; b < n / 256; b++) {
            long o = src + 84L * b;
            float d = f16(s, o + 80), dmin = f16(s, o + 82);
            int out = yo + 256 * b;
            for (int v = 0; v < 256; v++) {
                int h = v >> 7, sh = (v >> 5) & 3, l = v & 31;
                int sc = u8(s, o + v / 16);
                float dl = d * (sc & 0xF), ml = dmin * (sc >> 4);
                int q = (u8(s, o + 16 + 32 * h + l) >> (2 * sh)) & 3;
                y[out + v] = dl * q - ml;
            }
        }
    }

    /**
     * block_q3_K: u8 hmask[32], u8 qs[64], u8 scales[12], f16 d. Value v = 128h + 32s + l: low 2 bits as Q2_K's, high
     * bit = bit (v / 32) of hmask[l] (set: +0, clear: −4), so q in [−4, 3]. The 16 6-bit scales (minus 32): low 4 bits
     * of scale k in scales[k] (k &lt; 8) or its high nibble of scales[k − 8], top 2 bits at bit 2·(k / 4) of
     * scales[8 + k % 4]. Value (d·(sc − 32))·q.
     */
    public static void dequantQ3_K(MemorySegment s, long src, float[] y, int yo, int n) {
        for (int b = 0; b < n / 256; b++) {
            long o = src + 110L * b;
            float d = f16(s, o + 108);
            int out = yo + 256 * b;
            float[] dl = new float[16];
            for (int k = 0; k < 16; k++) dl[k] = d * q3kScale(s, o + 96, k);
            for (int v = 0; v < 256; v++) {
                int h = v >> 7, sh = (v >> 5) & 3, l = v & 31;
                int q = ((u8(s, o + 32 + 32 * h + l) >> (2 * sh)) & 3) - (((u8(s, o + l) >> (v >> 5)) & 1) != 0 ? 0 : 4);
                y[out + v] = dl[v >> 4] * q;
            }
        }
    }

    /** Q3_K's scale k (0..15) from its 12 packed bytes at sc, minus 32. */
    static int q3kScale(MemorySegment s, long sc, int k) {
        int lo = k < 8 ? u8(s, sc + k) & 0xF : u8(s, sc + k - 8) >> 4;
        int hi = (u8(s, sc + 8 + (k & 3)) >> (2 * (k >> 2))) & 3;
        return (lo | hi << 4) - 32;
    }

    /** llama.cpp's kvalues_iq4nl: the 16 int8 levels IQ4_NL and IQ4_XS nibbles index. */
    static final byte[] IQ4_LEVELS = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

    /** block_iq4_nl: f16 d, u8 qs[16]; value j &lt; 16: d·levels[qs[j] &amp; 15], j ≥ 16: d·levels[qs[j − 16] &gt;&gt; 4]. */
    public static void dequantIQ4_NL(MemorySegment s, long src, float[] y, int yo, int n) {
        for (int b = 0; b < n / 32; b++) {
            long o = src + 18L * b;
            float d = f16(s, o);
            for (int j = 0; j < 16; j++) {
                int q = u8(s, o + 2 + j);
                y[yo + 32 * b + j] = d * IQ4_LEVELS[q & 0xF];
                y[yo + 32 * b + 16 + j] = d * IQ4_LEVELS[q >> 4];
            }
        }
    }

    /**
     * block_iq4_xs: f16 d, u16 scales_h, u8 scales_l[4], u8 qs[128]. Sub-block ib (32 values) has the 6-bit scale
     * (nibble ib % 2 of scales_l[ib / 2]) | (bits 2ib..2ib+1 of scales_h) &lt;&lt; 4, minus 32, and the nibbles of
     * qs[16ib .. 16ib + 16) as IQ4_NL's; value (d·sc)·levels[nibble].
     */
    public static void dequantIQ4_XS(MemorySegment s, long src, float[] y, int yo, int n) {
        for (int b = 0; b < n / 256; b++) {
            long o = src + 136L * b;
            float d = f16(s, o);
            for (int ib = 0; ib < 8; ib++) {
                float dl = d * iq4xsScale(s, o, ib);
                int out = yo + 256 * b + 32 * ib;
                for (int j = 0; j < 16; j++) {
                    int q = u8(s, o + 8 + 16 * ib + j);
                    y[out + j] = dl * IQ4_LEVELS[q & 0xF];
                    y[out + 16 + j] = dl * IQ4_LEVELS[q >> 4];
                }
            }
        }
    }

    /** IQ4_XS's sub-block scale ib (0..7) of the super-block at o, minus 32. */
    static int iq4xsScale(MemorySegment s, long o, int ib) {
        int sh = s.get(S16LE, o + 2) & 0xFFFF;
        return (((u8(s, o + 4 + ib / 2) >> (4 * (ib & 1))) & 0xF) | (((sh >> (2 * ib)) & 3) << 4)) - 32;
    }
}
