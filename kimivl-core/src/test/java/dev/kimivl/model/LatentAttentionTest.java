package dev.kimivl.model;

import dev.kimivl.tensor.Kernels;
import dev.kimivl.tensor.NativeKernels;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The native latent-attention kernel against the Java one (and both against a plain softmax). */
class LatentAttentionTest {

    /**
     * Kimi-VL-A3B's shape (16 heads, 512 + 64), the golden tiny one (4 heads, 32 + 8), ranges crossing blocks (and the
     * Java fallback's 256-position chunks of an f16 cache); f32 and f16 latents (the reference then uses the f16
     * values, so the tolerances are the same).
     */
    @Test
    void nativeMatchesJavaAndPlainSoftmax() {
        assumeTrue(NativeKernels.AVAILABLE, NativeKernels.STATUS);     // NativeKernelsTest insists on it where gcc exists
        Random rnd = new Random(31);
        int[][] shapes = {{16, 512, 64, 0, 200}, {16, 512, 64, 37, 38}, {4, 32, 8, 5, 70}, {8, 16, 16, 0, 33}, {4, 32, 8, 3, 600}};
        for (int[] sh : shapes) for (boolean f16 : new boolean[]{false, true}) {
            int H = sh[0], R = sh[1], W = R + sh[2], j0 = sh[3], j1 = sh[4];
            float[] q = new float[H * W + 7], lat = new float[j1 * W];
            for (int i = 0; i < q.length; i++) q[i] = (float) rnd.nextGaussian();
            for (int i = 0; i < lat.length; i++) lat[i] = (float) rnd.nextGaussian();
            short[] half = new short[lat.length];
            if (f16) {
                for (int i = 0; i < lat.length; i++) half[i] = Float.floatToFloat16(lat[i]);
                for (int i = 0; i < lat.length; i++) lat[i] = Float.float16ToFloat(half[i]);   // what the kernels see
            }
            float scale = (float) (1 / Math.sqrt(W)) * 3;
            float[] outNative = run(q, lat, f16 ? half : null, W, R, H, j0, j1, scale, true);
            float[] outJava = run(q, lat, f16 ? half : null, W, R, H, j0, j1, scale, false);
            double[] want = plainSoftmax(q, lat, W, R, H, j0, j1, scale);
            for (int h = 0; h < H; h++) {
                for (int d = 0; d < R; d++) {
                    double ref = want[h * R + d];
                    String what = (f16 ? "f16" : "f32") + " cache, " + H + " heads, W " + W + ", positions [" + j0 + ", " + j1 + "), head " + h + " col " + d;
                    assertEquals(ref, outJava[h * R + d], 2e-4, "Java " + what);
                    assertEquals(ref, outNative[h * R + d], 2e-4, "native " + what);
                    assertEquals(outJava[h * R + d], outNative[h * R + d], 2e-5, "native vs Java " + what);
                }
            }
        }
    }

    /**
     * The causal prompt kernel (decompressed form) on Kimi-VL-A3B's layout: query rows strided over 16 heads, keys
     * [S, 192], values read in place from kv [S, 16·256] at a head's offset; rows see keys up to their own position;
     * the key range split in two calls (state merged in place) and rows past the prompt (padding) ignored.
     */
    @Test
    void causalPromptKernelMatchesPlainSoftmax() {
        assumeTrue(NativeKernels.AVAILABLE, NativeKernels.STATUS);
        Random rnd = new Random(7);
        int heads = 16, D = 192, R = 128, pos0 = 45, T = 30, S = pos0 + T, qs = heads * D, kvw = heads * 256, h = 5;
        float[] q = new float[(T + 2) * qs], k = new float[S * D], kv = new float[S * kvw];
        for (int i = 0; i < q.length; i++) q[i] = (float) rnd.nextGaussian() * 0.3f;
        for (int i = 0; i < k.length; i++) k[i] = (float) rnd.nextGaussian();
        for (int i = 0; i < kv.length; i++) kv[i] = (float) rnd.nextGaussian();
        float scale = 0.2f;
        int t0 = 12, rows = 20;                        // prompt tokens 12..31: the last two are padding
        float[] m = new float[rows], l = new float[rows], o = new float[rows * R];
        java.util.Arrays.fill(m, Float.NEGATIVE_INFINITY);
        int j1 = Math.min(S, pos0 + t0 + rows), vo = h * 256 + 128;
        assertTrue(NativeKernels.mhaCausal(q, t0 * qs + h * D, qs, D, k, 0, D, kv, vo, kvw, R, rows, 0, 33, scale, pos0 + t0, m, l, o));
        assertTrue(NativeKernels.mhaCausal(q, t0 * qs + h * D, qs, D, k, 0, D, kv, vo, kvw, R, rows, 33, j1, scale, pos0 + t0, m, l, o));
        for (int i = 0; i < rows && t0 + i < T; i++) {
            int last = pos0 + t0 + i;
            double[] p = new double[last + 1];
            double mx = Double.NEGATIVE_INFINITY, sum = 0;
            for (int j = 0; j <= last; j++) {
                double d = 0;
                for (int c = 0; c < D; c++) d += (double) q[(t0 + i) * qs + h * D + c] * k[j * D + c];
                p[j] = d * scale;
                mx = Math.max(mx, p[j]);
            }
            for (int j = 0; j <= last; j++) sum += p[j] = Math.exp(p[j] - mx);
            for (int c = 0; c < R; c++) {
                double ref = 0;
                for (int j = 0; j <= last; j++) ref += p[j] / sum * kv[j * kvw + vo + c];
                assertEquals(ref, o[i * R + c] / l[i], 2e-5, "token " + (t0 + i) + " column " + c);
            }
        }
        assertTrue(!NativeKernels.mhaCausal(q, 0, qs, D, k, 0, D, kv, vo, kvw, R, 6, 0, 5, scale, 0, m, l, o), "rows % 4 != 0 is declined");
    }

    /**
     * The AVX-512 attention kernels give the AVX2 ones' state bit for bit: latent decode over f32 and f16 caches (16
     * heads, 576-wide latents, 512-wide values, position ranges that end mid-block and mid-tile of 6), and the causal
     * prompt kernel with its mask (rows seeing 0..all keys of a block), split in two calls.
     */
    @Test
    void avx512FormsEqualTheAvx2Forms() {
        assumeTrue(NativeKernels.AVAILABLE, NativeKernels.STATUS);
        assumeTrue(NativeKernels.Isa.AVX512.supported(), "this CPU has no AVX-512 kernels");
        var avx2 = NativeKernels.Isa.AVX2;
        var wide = NativeKernels.Isa.AVX512;
        Random rnd = new Random(13);
        int H = 16, W = 576, R = 512;
        for (int S : new int[]{1, 5, 31, 32, 77, 200}) {
            float[] q = new float[H * W], lat = new float[S * W];
            short[] lat16 = new short[S * W];
            for (int i = 0; i < q.length; i++) q[i] = (float) rnd.nextGaussian() * 0.2f;
            for (int i = 0; i < lat.length; i++) { lat[i] = (float) rnd.nextGaussian(); lat16[i] = Float.floatToFloat16(lat[i]); }
            for (int f16 = 0; f16 < 2; f16++) {
                float[][] st = new float[2][];
                for (int form = 0; form < 2; form++) {
                    float[] m = new float[H], l = new float[H], o = new float[H * R];
                    java.util.Arrays.fill(m, Float.NEGATIVE_INFINITY);
                    var isa = form == 0 ? avx2 : wide;
                    int mid = S / 3;
                    for (int[] range : new int[][]{{0, mid}, {mid, S}}) {
                        assertTrue(f16 == 0 ? NativeKernels.latentAttention(q, 0, lat, W, R, H, range[0], range[1], 0.07f, m, l, o, isa)
                                : NativeKernels.latentAttentionF16(q, 0, lat16, W, R, H, range[0], range[1], 0.07f, m, l, o, isa));
                    }
                    st[form] = state(m, l, o);
                }
                for (int i = 0; i < st[0].length; i++) {
                    assertEquals(Float.floatToRawIntBits(st[0][i]), Float.floatToRawIntBits(st[1][i]),
                            (f16 == 1 ? "f16" : "f32") + " cache, " + S + " positions, state " + i + ": " + st[1][i] + " vs " + st[0][i]);
                }
            }
        }
        int heads = 16, D = 192, Rv = 128, pos0 = 45, T = 30, S = pos0 + T, qs = heads * D, kvw = heads * 256, h = 3;
        float[] q = new float[(T + 2) * qs], k = new float[S * D], kv = new float[S * kvw];
        for (int i = 0; i < q.length; i++) q[i] = (float) rnd.nextGaussian() * 0.3f;
        for (int i = 0; i < k.length; i++) k[i] = (float) rnd.nextGaussian();
        for (int i = 0; i < kv.length; i++) kv[i] = (float) rnd.nextGaussian();
        int t0 = 12, rows = 20, j1 = Math.min(S, pos0 + t0 + rows), vo = h * 256 + 128;
        float[][] st = new float[2][];
        for (int form = 0; form < 2; form++) {
            var isa = form == 0 ? avx2 : wide;
            float[] m = new float[rows], l = new float[rows], o = new float[rows * Rv];
            java.util.Arrays.fill(m, Float.NEGATIVE_INFINITY);
            assertTrue(NativeKernels.mhaCausal(q, t0 * qs + h * D, qs, D, k, 0, D, kv, vo, kvw, Rv, rows, 0, 33, 0.2f, pos0 + t0, m, l, o, isa));
            assertTrue(NativeKernels.mhaCausal(q, t0 * qs + h * D, qs, D, k, 0, D, kv, vo, kvw, Rv, rows, 33, j1, 0.2f, pos0 + t0, m, l, o, isa));
            st[form] = state(m, l, o);
        }
        for (int i = 0; i < st[0].length; i++) {
            assertEquals(Float.floatToRawIntBits(st[0][i]), Float.floatToRawIntBits(st[1][i]), "causal prompt state " + i + ": " + st[1][i] + " vs " + st[0][i]);
        }
    }

    /**
     * Over a bf16 cache the native kernel (vdpbf16ps, where the CPU has AVX512-BF16) rounds the queries and the softmax
     * weights to bf16, the Java one does not: both are held to a plain double softmax over the widened latents, within
     * what that rounding moves (relative 2⁻⁹ per query value and weight), on Kimi-VL-A3B's shape, a width with a tail
     * of 8 columns past the last 32 (W 40), odd and even range ends, and a value width the native kernel declines (R 16).
     */
    @Test
    void bf16CacheMatchesPlainSoftmax() {
        Random rnd = new Random(57);
        int[][] shapes = {{16, 512, 64, 0, 200}, {16, 512, 64, 37, 38}, {4, 32, 8, 5, 70}, {8, 16, 16, 0, 33}, {4, 64, 16, 3, 601}};
        for (int[] sh : shapes) {
            int H = sh[0], R = sh[1], W = R + sh[2], j0 = sh[3], j1 = sh[4];
            float[] q = new float[H * W], lat = new float[j1 * W];
            short[] bf = new short[lat.length];
            for (int i = 0; i < q.length; i++) q[i] = (float) rnd.nextGaussian();
            for (int i = 0; i < lat.length; i++) {
                bf[i] = KvCache.toBf16((float) rnd.nextGaussian());
                lat[i] = Float.intBitsToFloat(bf[i] << 16);                       // what the kernels see
            }
            float scale = (float) (1 / Math.sqrt(W));
            boolean declined = R % 32 != 0;
            if (NativeKernels.BF16) {
                float[] m = new float[H], l = new float[H], o = new float[H * R];
                assertEquals(!declined, NativeKernels.latentAttentionBf16(q, 0, bf, W, R, H, j0, j1, scale, m, l, o), "native takes R " + R);
            }
            if (NativeKernels.AVAILABLE) {
                // the AVX2 kernel on the widened cache (what CPUs without AVX512-BF16 run): f32 products, as the Java one
                float[] m = new float[H], l = new float[H], o = new float[H * R];
                java.util.Arrays.fill(m, Float.NEGATIVE_INFINITY);
                assertTrue(NativeKernels.latentAttentionBf16Widened(q, 0, bf, W, R, H, j0, j1, scale, m, l, o));
                double[] want = plainSoftmax(q, lat, W, R, H, j0, j1, scale);
                for (int i = 0; i < H * R; i++) {
                    assertEquals(want[i], o[i] / l[i / R], 2e-4, "widened bf16, " + H + " heads, W " + W + ", R " + R + ", value " + i);
                }
            }
            for (boolean nativeKernel : new boolean[]{true, false}) {
                Kernels k = nativeKernel ? Kernels.nativeKernels() : Kernels.java();
                int mid = (j0 + j1) / 2;
                LatentAttention.State a = new LatentAttention.State(0, H, R), b = new LatentAttention.State(0, H, R);
                k.latentAttentionBf16(q, 0, bf, W, R, H, j0, mid, scale, a.m, a.l, a.o);
                k.latentAttentionBf16(q, 0, bf, W, R, H, mid, j1, scale, b.m, b.l, b.o);
                float[] out = new float[H * R];
                LatentAttention.State[] parts = mid > j0 ? new LatentAttention.State[]{a, b} : new LatentAttention.State[]{b};
                for (int h = 0; h < H; h++) LatentAttention.finish(parts, h, out, h * R);
                double[] want = plainSoftmax(q, lat, W, R, H, j0, j1, scale);
                double worst = 0;
                for (int i = 0; i < H * R; i++) worst = Math.max(worst, Math.abs(want[i] - out[i]));
                // the Java kernel computes in f32 over the same values; the native one's bf16 queries and weights
                // move an output by ~1e-3 here (values ~N(0, 1)), a wrong column order or pairing by ~1
                boolean bf16Products = nativeKernel && NativeKernels.AVAILABLE && NativeKernels.BF16 && !declined;
                double tol = bf16Products ? 1e-2 : 2e-4;
                assertTrue(worst <= tol, (nativeKernel ? "native" : "Java") + " kernels over bf16, " + H + " heads, W " + W + ", R " + R + ", [" + j0 + ", " + j1 + "): max error " + worst);
            }
        }
    }

    /**
     * The bf16 prompt kernel (keys and values packed once per block, queries and weights rounded to bf16) against the
     * f32 one over the same bf16 values: Kimi-VL-A3B's head (192 + 128) and the nano model's (48 + 32), 4 to 32 rows,
     * with the causal mask cutting inside the block and without it, ranges ending mid-group of 16 and mid-pair.
     */
    @Test
    void bf16PromptKernelMatchesTheF32One() {
        assumeTrue(NativeKernels.AVAILABLE && NativeKernels.BF16, "this CPU has no AVX512-BF16 kernels");
        Random rnd = new Random(77);
        int[][] shapes = {{192, 128, 32, 200, -1}, {192, 128, 32, 77, 40}, {192, 128, 8, 33, 20}, {48, 32, 4, 21, 3}, {48, 32, 12, 64, 50}};
        for (int[] sh : shapes) {
            int D = sh[0], R = sh[1], rows = sh[2], n = sh[3], maskBase = sh[4];
            float[] q = new float[rows * D], k = new float[n * D], v = new float[n * R];
            for (int i = 0; i < q.length; i++) q[i] = (float) rnd.nextGaussian() * 0.5f;
            for (int i = 0; i < k.length; i++) k[i] = Float.intBitsToFloat(KvCache.toBf16((float) rnd.nextGaussian()) << 16);
            for (int i = 0; i < v.length; i++) v[i] = Float.intBitsToFloat(KvCache.toBf16((float) rnd.nextGaussian()) << 16);
            int[] kt = new int[(n + 15) / 16 * 16 * (D / 2)], vp = new int[(n + 1) / 2 * R];
            NativeKernels.packKeysValuesBf16(k, D, D, v, R, R, n, kt, vp);
            float[][] out = new float[2][];
            for (int form = 0; form < 2; form++) {
                float[] m = new float[rows], l = new float[rows], o = new float[rows * R];
                java.util.Arrays.fill(m, Float.NEGATIVE_INFINITY);
                float scale = (float) (1 / Math.sqrt(D));
                assertTrue(form == 0 ? NativeKernels.mhaCausal(q, 0, D, D, k, 0, D, v, 0, R, R, rows, 0, n, scale, maskBase, m, l, o)
                        : NativeKernels.mhaCausalBf16(q, 0, D, D, kt, vp, R, rows, 0, n, scale, maskBase, m, l, o));
                for (int i = 0; i < rows; i++) for (int d = 0; d < R; d++) o[i * R + d] /= l[i];
                out[form] = o;
            }
            double worst = 0;
            for (int i = 0; i < out[0].length; i++) worst = Math.max(worst, Math.abs(out[0][i] - out[1][i]));
            assertTrue(worst < 1e-2, "D " + D + ", R " + R + ", " + rows + " rows, " + n + " keys, mask " + maskBase + ": max |Δ| " + worst);
        }
    }

    /** The heads' attention outputs [H·R] as a plain softmax in double over positions [j0, j1) (the reference). */
    private static double[] plainSoftmax(float[] q, float[] lat, int W, int R, int H, int j0, int j1, float scale) {
        double[] out = new double[H * R];
        for (int h = 0; h < H; h++) {
            double[] p = new double[j1];
            double mx = Double.NEGATIVE_INFINITY, sum = 0;
            for (int j = j0; j < j1; j++) {
                double d = 0;
                for (int c = 0; c < W; c++) d += (double) q[h * W + c] * lat[j * W + c];
                mx = Math.max(mx, p[j] = d * scale);
            }
            for (int j = j0; j < j1; j++) sum += p[j] = Math.exp(p[j] - mx);
            for (int d = 0; d < R; d++) {
                double ref = 0;
                for (int j = j0; j < j1; j++) ref += p[j] / sum * lat[j * W + d];
                out[h * R + d] = ref;
            }
        }
        return out;
    }

    /** An online-softmax state (m, l, o) as one array, to compare two kernels' states value by value. */
    private static float[] state(float[] m, float[] l, float[] o) {
        float[] all = new float[m.length + l.length + o.length];
        System.arraycopy(m, 0, all, 0, m.length);
        System.arraycopy(l, 0, all, m.length, l.length);
        System.arraycopy(o, 0, all, m.length + l.length, o.length);
        return all;
    }

    /** Unsupported shapes (heads not a multiple of 4) are declined, not computed wrongly. */
    @Test
    void declinesUnsupportedShapes() {
        assumeTrue(NativeKernels.AVAILABLE, NativeKernels.STATUS);
        float[] m = new float[3], l = new float[3], o = new float[3 * 16];
        assertTrue(!NativeKernels.latentAttention(new float[3 * 24], 0, new float[10 * 24], 24, 16, 3, 0, 10, 1f, m, l, o));
        assertEquals(0f, l[0]);
    }

    /** Through the f16 entry point when half is not null, else over the floats. */
    private static float[] run(float[] q, float[] lat, short[] half, int W, int R, int H, int j0, int j1, float scale, boolean nativeKernel) {
        Kernels k = nativeKernel ? Kernels.nativeKernels() : Kernels.java();
        {
            // two partial states over a split of the range, merged: the path long-context decode takes
            int mid = (j0 + j1) / 2;
            LatentAttention.State a = new LatentAttention.State(0, H, R), b = new LatentAttention.State(0, H, R);
            if (half != null) {
                LatentAttention.accumulate(k, q, half, W, R, j0, mid, scale, a, 0);
                LatentAttention.accumulate(k, q, half, W, R, mid, j1, scale, b, 0);
            } else {
                LatentAttention.accumulate(k, q, lat, W, R, j0, mid, scale, a);
                LatentAttention.accumulate(k, q, lat, W, R, mid, j1, scale, b);
            }
            float[] out = new float[H * R];
            LatentAttention.State[] parts = mid > j0 ? new LatentAttention.State[]{a, b} : new LatentAttention.State[]{b};
            for (int h = 0; h < H; h++) LatentAttention.finish(parts, h, out, h * R);
            return out;
        }
    }
}
