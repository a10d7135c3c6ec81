package dev.kimivl.tensor;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * Quantizers for the block types of llama.cpp's mixes that gguf-py cannot write (k-quants), and Q5_0, which
 * {@code kimivl convert --type q4_k_m} writes where a row is not a whole number of 256-blocks. They follow ggml's
 * reference quantizers without an importance matrix (what {@code llama-quantize} runs without {@code --imatrix}):
 * <ul>
 * <li>Q5_0: amax-signed scale d = max / −16, values trunc(x/d + 16.5) clamped to 31 (gguf-py's, bit-exact: QuantTest);</li>
 * <li>Q4_K: per 32 values a (scale, min) pair fitted by a weighted least-squares search over 21 candidate inverse
 *     scales (weights av|x| + |x|), the pairs coded in 6 bits against the super-block's max scale and max min, then
 *     every value re-rounded against the coded pair;</li>
 * <li>Q6_K: per 16 values a signed scale from a search over 19 candidate scales weighted by x², coded in int8
 *     against the super-block's largest one, values re-rounded to [−32, 31];</li>
 * <li>Q2_K (2-bit with 4-bit scale/min per 16) and Q3_K (signed 3-bit with 6-bit scales per 16), as ggml's.</li>
 * </ul>
 * Round-trip errors are bounded in KQuantizersTest; the byte layouts are those read by {@link Quant}'s dequantizers
 * (equal to gguf-py's). ggml's float operations are followed but without a C compiler in the loop bit-equality with
 * llama-quantize is not claimed.
 */
public final class KQuantizers {
    private KQuantizers() {}

    private static final ValueLayout.OfShort S16LE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfInt S32LE = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final float GROUP_MAX_EPS = 1e-15f;

    /** ggml's nearest_int: round half to even through the 1.5·2^23 trick (|f| ≤ 2^22). */
    static int nearestInt(float f) {
        float v = f + 12582912f;
        return (Float.floatToRawIntBits(v) & 0x007fffff) - 0x00400000;
    }

    private static float fp16Round(float v) { return Float.float16ToFloat(Float.floatToFloat16(v)); }

    private static void putByte(MemorySegment s, long o, int v) { s.set(ValueLayout.JAVA_BYTE, o, (byte) v); }

    // ---------------------------------------------------------------- Q5_0

    /** n (multiple of 32) floats of x from xo → Q5_0 blocks (22 bytes: f16 d, u32 fifth bits, 16 nibble bytes). */
    public static void quantizeQ5_0(float[] x, int xo, int n, MemorySegment dst, long dstOff) {
        if (n % 32 != 0) throw new IllegalArgumentException("Q5_0 needs a multiple of 32 elements, got " + n);
        for (int b = 0; b < n / 32; b++) {
            int base = xo + 32 * b;
            float amax = 0, max = 0;
            for (int j = 0; j < 32; j++) {
                float v = x[base + j];
                if (amax < Math.abs(v)) { amax = Math.abs(v); max = v; }
            }
            float d = max / -16f;
            float id = d != 0 ? 1f / d : 0f;
            long o = dstOff + 22L * b;
            dst.set(S16LE, o, Float.floatToFloat16(d));
            int qh = 0;
            for (int j = 0; j < 16; j++) {
                int q0 = Math.min(31, (byte) (int) (x[base + j] * id + 16.5f));
                int q1 = Math.min(31, (byte) (int) (x[base + 16 + j] * id + 16.5f));
                putByte(dst, o + 6 + j, (q0 & 0xF) | ((q1 & 0xF) << 4));
                qh |= ((q0 >> 4) & 1) << j;
                qh |= ((q1 >> 4) & 1) << (j + 16);
            }
            dst.set(S32LE, o + 2, qh);
        }
    }

    // ---------------------------------------------------------------- shared searches

    /**
     * ggml's make_qkx2_quants: fits x[xo .. xo + n) ≈ scale·L − min with L in [0, nmax] (returns scale, min in
     * minOut[0] as a positive offset), starting from the range fit then trying inverse scales
     * (rmin + rdelta·is + nmax)/(max − min) for is = 0..nstep, keeping the least weighted error (absolute when useMad).
     */
    static float makeQkx2(int n, int nmax, float[] x, int xo, float[] w, int[] L, int lo, float[] minOut, int[] laux,
                          float rmin, float rdelta, int nstep, boolean useMad) {
        float min = x[xo], max = x[xo];
        float sumW = w[0], sumX = sumW * x[xo];
        for (int i = 1; i < n; i++) {
            float v = x[xo + i];
            if (v < min) min = v;
            if (v > max) max = v;
            sumW += w[i];
            sumX += w[i] * v;
        }
        if (min > 0) min = 0;
        if (max == min) {
            for (int i = 0; i < n; i++) L[lo + i] = 0;
            minOut[0] = -min;
            return 0f;
        }
        float iscale = nmax / (max - min);
        float scale = 1 / iscale;
        float best = 0;
        for (int i = 0; i < n; i++) {
            int l = Math.max(0, Math.min(nmax, nearestInt(iscale * (x[xo + i] - min))));
            L[lo + i] = l;
            float diff = scale * l + min - x[xo + i];
            diff = useMad ? Math.abs(diff) : diff * diff;
            best += w[i] * diff;
        }
        if (nstep < 1) {
            minOut[0] = -min;
            return scale;
        }
        for (int is = 0; is <= nstep; is++) {
            iscale = (rmin + rdelta * is + nmax) / (max - min);
            float sumL = 0, sumL2 = 0, sumXL = 0;
            for (int i = 0; i < n; i++) {
                int l = Math.max(0, Math.min(nmax, nearestInt(iscale * (x[xo + i] - min))));
                laux[i] = l;
                sumL += w[i] * l;
                sumL2 += w[i] * l * l;
                sumXL += w[i] * l * x[xo + i];
            }
            float D = sumW * sumL2 - sumL * sumL;
            if (D > 0) {
                float thisScale = (sumW * sumXL - sumX * sumL) / D;
                float thisMin = (sumL2 * sumX - sumL * sumXL) / D;
                if (thisMin > 0) {
                    thisMin = 0;
                    thisScale = sumXL / sumL2;
                }
                float err = 0;
                for (int i = 0; i < n; i++) {
                    float diff = thisScale * laux[i] + thisMin - x[xo + i];
                    diff = useMad ? Math.abs(diff) : diff * diff;
                    err += w[i] * diff;
                }
                if (err < best) {
                    System.arraycopy(laux, 0, L, lo, n);
                    best = err;
                    scale = thisScale;
                    min = thisMin;
                }
            }
        }
        minOut[0] = -min;
        return scale;
    }

    /** The value of x[xo .. xo + n) with the largest magnitude (the first such), sign kept: make_qx/q3_quants' "max". */
    private static float signedMax(int n, float[] x, int xo) {
        float max = 0, amax = 0;
        for (int i = 0; i < n; i++) {
            float ax = Math.abs(x[xo + i]);
            if (ax > amax) { amax = ax; max = x[xo + i]; }
        }
        return max;
    }

    /**
     * ggml's make_qx_quants with rmse_type 1 and no importance weights: a signed scale for x[xo .. xo + n), L in
     * [0, 2·nmax) (value L − nmax), trying −(nmax + 0.1·is)/max for is = −9..9 and keeping the best x²-weighted fit.
     */
    static float makeQx(int n, int nmax, float[] x, int xo, int[] L, int lo) {
        float max = signedMax(n, x, xo);
        if (Math.abs(max) < GROUP_MAX_EPS) {
            java.util.Arrays.fill(L, lo, lo + n, 0);
            return 0f;
        }
        float iscale = -nmax / max;
        float sumlx = 0, suml2 = 0;
        for (int i = 0; i < n; i++) {
            float v = x[xo + i];
            int l = Math.max(-nmax, Math.min(nmax - 1, nearestInt(iscale * v)));
            L[lo + i] = l + nmax;
            float w = v * v;
            sumlx += w * v * l;
            suml2 += w * l * l;
        }
        float scale = suml2 != 0 ? sumlx / suml2 : 0f;
        float best = scale * sumlx;
        for (int is = -9; is <= 9; is++) {
            if (is == 0) continue;
            iscale = -(nmax + 0.1f * is) / max;
            sumlx = 0;
            suml2 = 0;
            for (int i = 0; i < n; i++) {
                float v = x[xo + i];
                int l = Math.max(-nmax, Math.min(nmax - 1, nearestInt(iscale * v)));
                float w = v * v;
                sumlx += w * v * l;
                suml2 += w * l * l;
            }
            if (suml2 > 0 && sumlx * sumlx > best * suml2) {
                for (int i = 0; i < n; i++) L[lo + i] = nmax + Math.max(-nmax, Math.min(nmax - 1, nearestInt(iscale * x[xo + i])));
                scale = sumlx / suml2;
                best = scale * sumlx;
            }
        }
        return scale;
    }

    /** ggml's make_q3_quants with do_rmse: signed L in [−nmax, nmax) refined by up to 5 passes of coordinate descent (returned + nmax). */
    static float makeQ3(int n, int nmax, float[] x, int xo, int[] L, int lo) {
        float max = signedMax(n, x, xo);
        if (Math.abs(max) < GROUP_MAX_EPS) {
            java.util.Arrays.fill(L, lo, lo + n, 0);
            return 0f;
        }
        float iscale = -nmax / max;
        float sumlx = 0, suml2 = 0;
        for (int i = 0; i < n; i++) {
            float v = x[xo + i];
            int l = Math.max(-nmax, Math.min(nmax - 1, nearestInt(iscale * v)));
            L[lo + i] = l;
            float w = v * v;
            sumlx += w * v * l;
            suml2 += w * l * l;
        }
        for (int itry = 0; itry < 5; itry++) {
            int changed = 0;
            for (int i = 0; i < n; i++) {
                float v = x[xo + i], w = v * v;
                float slx = sumlx - w * v * L[lo + i];
                if (slx > 0) {
                    float sl2 = suml2 - w * L[lo + i] * L[lo + i];
                    int nl = Math.max(-nmax, Math.min(nmax - 1, nearestInt(v * sl2 / slx)));
                    if (nl != L[lo + i]) {
                        slx += w * v * nl;
                        sl2 += w * nl * nl;
                        if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                            L[lo + i] = nl;
                            sumlx = slx;
                            suml2 = sl2;
                            changed++;
                        }
                    }
                }
            }
            if (changed == 0) break;
        }
        for (int i = 0; i < n; i++) L[lo + i] += nmax;
        return suml2 > 0 ? sumlx / suml2 : 0f;
    }

    // ---------------------------------------------------------------- Q4_K

    /** n (multiple of 256) floats → Q4_K super-blocks of 144 bytes (f16 d, f16 dmin, 12 scale bytes, 128 nibble bytes). */
    public static void quantizeQ4_K(float[] x, int xo, int n, MemorySegment dst, long dstOff) {
        if (n % 256 != 0) throw new IllegalArgumentException("Q4_K needs a multiple of 256 elements, got " + n);
        int[] L = new int[256], laux = new int[32];
        float[] w = new float[32], scales = new float[8], mins = new float[8], m1 = new float[1];
        byte[] sc = new byte[12];
        for (int b = 0; b < n / 256; b++) {
            int base = xo + 256 * b;
            float maxScale = 0, maxMin = 0;
            for (int j = 0; j < 8; j++) {
                float sumX2 = 0;
                for (int l = 0; l < 32; l++) sumX2 += x[base + 32 * j + l] * x[base + 32 * j + l];
                float av = (float) Math.sqrt(sumX2 / 32);
                for (int l = 0; l < 32; l++) w[l] = av + Math.abs(x[base + 32 * j + l]);
                scales[j] = makeQkx2(32, 15, x, base + 32 * j, w, L, 32 * j, m1, laux, -1f, 0.1f, 20, false);
                mins[j] = m1[0];
                maxScale = Math.max(maxScale, scales[j]);
                maxMin = Math.max(maxMin, mins[j]);
            }
            float invScale = maxScale > 0 ? 63f / maxScale : 0f, invMin = maxMin > 0 ? 63f / maxMin : 0f;
            java.util.Arrays.fill(sc, (byte) 0);
            for (int j = 0; j < 8; j++) {
                int ls = Math.min(63, nearestInt(invScale * scales[j]) & 0xFF), lm = Math.min(63, nearestInt(invMin * mins[j]) & 0xFF);
                if (j < 4) {
                    sc[j] = (byte) ls;
                    sc[j + 4] = (byte) lm;
                } else {
                    sc[j + 4] = (byte) ((ls & 0xF) | ((lm & 0xF) << 4));
                    sc[j - 4] |= (byte) ((ls >> 4) << 6);
                    sc[j] |= (byte) ((lm >> 4) << 6);
                }
            }
            long o = dstOff + 144L * b;
            dst.set(S16LE, o, Float.floatToFloat16(maxScale / 63f));
            dst.set(S16LE, o + 2, Float.floatToFloat16(maxMin / 63f));
            MemorySegment.copy(sc, 0, dst, ValueLayout.JAVA_BYTE, o + 4, 12);
            float d = fp16Round(maxScale / 63f), dmin = fp16Round(maxMin / 63f);
            int[] sm = new int[2];
            for (int j = 0; j < 8; j++) {
                Quant.scaleMinK4(j, dst, o + 4, sm);
                float dj = d * sm[0];
                if (dj == 0) continue;
                float dm = dmin * sm[1];
                for (int i = 0; i < 32; i++) L[32 * j + i] = Math.max(0, Math.min(15, nearestInt((x[base + 32 * j + i] + dm) / dj)));
            }
            for (int j = 0; j < 256; j += 64) {
                for (int l = 0; l < 32; l++) putByte(dst, o + 16 + j / 2 + l, L[j + l] | (L[j + l + 32] << 4));
            }
        }
    }

    // ---------------------------------------------------------------- Q6_K

    /** n (multiple of 256) floats → Q6_K super-blocks of 210 bytes (ql[128], qh[64], int8 scales[16], f16 d). */
    public static void quantizeQ6_K(float[] x, int xo, int n, MemorySegment dst, long dstOff) {
        if (n % 256 != 0) throw new IllegalArgumentException("Q6_K needs a multiple of 256 elements, got " + n);
        int[] L = new int[256];
        float[] scales = new float[16];
        for (int b = 0; b < n / 256; b++) {
            int base = xo + 256 * b;
            long o = dstOff + 210L * b;
            float maxScale = 0, maxAbs = 0;
            for (int ib = 0; ib < 16; ib++) {
                scales[ib] = makeQx(16, 32, x, base + 16 * ib, L, 16 * ib);
                if (Math.abs(scales[ib]) > maxAbs) { maxAbs = Math.abs(scales[ib]); maxScale = scales[ib]; }
            }
            if (maxAbs < GROUP_MAX_EPS) {
                dst.asSlice(o, 210).fill((byte) 0);
                continue;
            }
            float iscale = -128f / maxScale;
            dst.set(S16LE, o + 208, Float.floatToFloat16(1 / iscale));
            float d = fp16Round(1 / iscale);
            for (int ib = 0; ib < 16; ib++) putByte(dst, o + 192 + ib, Math.min(127, nearestInt(iscale * scales[ib])));
            for (int j = 0; j < 16; j++) {
                float dj = d * dst.get(ValueLayout.JAVA_BYTE, o + 192 + j);
                if (dj == 0) continue;
                for (int i = 0; i < 16; i++) L[16 * j + i] = Math.max(-32, Math.min(31, nearestInt(x[base + 16 * j + i] / dj))) + 32;
            }
            for (int j = 0, half = 0; j < 256; j += 128, half++) {
                long ql = o + 64L * half, qh = o + 128 + 32L * half;
                for (int l = 0; l < 32; l++) {
                    int q1 = L[j + l], q2 = L[j + l + 32], q3 = L[j + l + 64], q4 = L[j + l + 96];
                    putByte(dst, ql + l, (q1 & 0xF) | ((q3 & 0xF) << 4));
                    putByte(dst, ql + l + 32, (q2 & 0xF) | ((q4 & 0xF) << 4));
                    putByte(dst, qh + l, (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
                }
            }
        }
    }

    // ---------------------------------------------------------------- Q2_K

    /** n (multiple of 256) floats → Q2_K super-blocks of 84 bytes (scales[16]: low nibble scale, high min; qs[64]; f16 d, dmin). */
    public static void quantizeQ2_K(float[] x, int xo, int n, MemorySegment dst, long dstOff) {
        if (n % 256 != 0) throw new IllegalArgumentException("Q2_K needs a multiple of 256 elements, got " + n);
        int[] L = new int[256], laux = new int[16];
        float[] w = new float[16], scales = new float[16], mins = new float[16], m1 = new float[1];
        for (int b = 0; b < n / 256; b++) {
            int base = xo + 256 * b;
            long o = dstOff + 84L * b;
            float maxScale = 0, maxMin = 0;
            for (int j = 0; j < 16; j++) {
                for (int l = 0; l < 16; l++) w[l] = Math.abs(x[base + 16 * j + l]);
                scales[j] = makeQkx2(16, 3, x, base + 16 * j, w, L, 16 * j, m1, laux, -0.5f, 0.1f, 15, true);
                mins[j] = m1[0];
                maxScale = Math.max(maxScale, scales[j]);
                maxMin = Math.max(maxMin, mins[j]);
            }
            int[] sc = new int[16];
            if (maxScale > 0) {
                float iscale = 15f / maxScale;
                for (int j = 0; j < 16; j++) sc[j] = nearestInt(iscale * scales[j]);
                dst.set(S16LE, o + 80, Float.floatToFloat16(maxScale / 15f));
            } else {
                dst.set(S16LE, o + 80, Float.floatToFloat16(0f));
            }
            if (maxMin > 0) {
                float iscale = 15f / maxMin;
                for (int j = 0; j < 16; j++) sc[j] |= nearestInt(iscale * mins[j]) << 4;
                dst.set(S16LE, o + 82, Float.floatToFloat16(maxMin / 15f));
            } else {
                dst.set(S16LE, o + 82, Float.floatToFloat16(0f));
            }
            float d = Quant.f16(dst, o + 80), dmin = Quant.f16(dst, o + 82);
            for (int j = 0; j < 16; j++) {
                int s = sc[j] & 0xFF;
                putByte(dst, o + j, s);
                float dj = d * (s & 0xF);
                if (dj == 0) continue;
                float dm = dmin * (s >> 4);
                for (int i = 0; i < 16; i++) L[16 * j + i] = Math.max(0, Math.min(3, nearestInt((x[base + 16 * j + i] + dm) / dj)));
            }
            for (int j = 0; j < 256; j += 128) {
                for (int l = 0; l < 32; l++) {
                    putByte(dst, o + 16 + j / 4 + l, L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
                }
            }
        }
    }

    // ---------------------------------------------------------------- Q3_K

    /** n (multiple of 256) floats → Q3_K super-blocks of 110 bytes (hmask[32], qs[64], 12 scale bytes, f16 d). */
    public static void quantizeQ3_K(float[] x, int xo, int n, MemorySegment dst, long dstOff) {
        if (n % 256 != 0) throw new IllegalArgumentException("Q3_K needs a multiple of 256 elements, got " + n);
        int[] L = new int[256];
        float[] scales = new float[16];
        byte[] sc = new byte[12];
        for (int b = 0; b < n / 256; b++) {
            int base = xo + 256 * b;
            long o = dstOff + 110L * b;
            float maxScale = 0, amax = 0;
            for (int j = 0; j < 16; j++) {
                scales[j] = makeQ3(16, 4, x, base + 16 * j, L, 16 * j);
                if (Math.abs(scales[j]) > amax) { amax = Math.abs(scales[j]); maxScale = scales[j]; }
            }
            java.util.Arrays.fill(sc, (byte) 0);
            if (maxScale != 0) {
                float iscale = -32f / maxScale;
                for (int j = 0; j < 16; j++) {
                    int l = Math.max(-32, Math.min(31, (byte) nearestInt(iscale * scales[j]))) + 32;
                    if (j < 8) sc[j] = (byte) (l & 0xF);
                    else sc[j - 8] |= (byte) ((l & 0xF) << 4);
                    l >>= 4;
                    sc[j % 4 + 8] |= (byte) (l << (2 * (j / 4)));
                }
                dst.set(S16LE, o + 108, Float.floatToFloat16(1 / iscale));
            } else {
                dst.set(S16LE, o + 108, Float.floatToFloat16(0f));
            }
            MemorySegment.copy(sc, 0, dst, ValueLayout.JAVA_BYTE, o + 96, 12);
            float dAll = Quant.f16(dst, o + 108);
            for (int j = 0; j < 16; j++) {
                int s = j < 8 ? sc[j] & 0xF : (sc[j - 8] & 0xFF) >> 4;
                s = (s | (((sc[8 + j % 4] & 0xFF) >> (2 * (j / 4))) & 3) << 4) - 32;
                float dj = dAll * s;
                if (dj == 0) continue;
                for (int i = 0; i < 16; i++) L[16 * j + i] = Math.max(-4, Math.min(3, nearestInt(x[base + 16 * j + i] / dj))) + 4;
            }
            dst.asSlice(o, 32).fill((byte) 0);
            for (int j = 0, m = 0, hm = 1; j < 256; j++) {
                if (L[j] > 3) {
                    putByte(dst, o + m, dst.get(ValueLayout.JAVA_BYTE, o + m) | hm);
                    L[j] -= 4;
                }
                if (++m == 32) { m = 0; hm <<= 1; }
            }
            for (int j = 0; j < 256; j += 128) {
                for (int l = 0; l < 32; l++) {
                    putByte(dst, o + 32 + j / 4 + l, L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
                }
            }
        }
    }
}
