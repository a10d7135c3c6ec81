package dev.kimivl.tensor;

import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The training side's native kernels (kimivl_train.c) against double references: MoonViT's attention for one head,
 * forward (softmax(scale·q·kᵀ)·v) and backward (dq, dk, dv), over head widths 16-80 (one to five vectors a row, the
 * 64-column chunks' tail included) and positions 1-150 (row and key tails), writing into strided rows at offsets as
 * VisionGrad's [L, D] and [L, 3D] arrays need. Skipped (and said so) where the AVX-512 kernels are not loaded.
 */
class NativeTrainKernelsTest {
    private static float[] random(Random r, int n, double scale) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float) (r.nextGaussian() * scale);
        return a;
    }

    /** P [n][n] = softmax(scale·q·kᵀ), in double. */
    private static double[][] probs(float[] q, float[] k, int n, int d, double scale) {
        double[][] p = new double[n][n];
        for (int i = 0; i < n; i++) {
            double max = Double.NEGATIVE_INFINITY;
            for (int j = 0; j < n; j++) {
                double s = 0;
                for (int c = 0; c < d; c++) s += (double) q[i * d + c] * k[j * d + c];
                p[i][j] = s * scale;
                max = Math.max(max, p[i][j]);
            }
            double sum = 0;
            for (int j = 0; j < n; j++) { p[i][j] = Math.exp(p[i][j] - max); sum += p[i][j]; }
            for (int j = 0; j < n; j++) p[i][j] /= sum;
        }
        return p;
    }

    @Test
    void vitAttentionForwardAndBackwardMatchDouble() {
        assumeTrue(NativeKernels.vitAttention(32), "native training kernels not loaded here: " + NativeKernels.STATUS);
        Random rnd = new Random(61);
        int checked = 0;
        for (int d : new int[]{16, 32, 48, 80}) {
            for (int n : new int[]{1, 3, 16, 37, 150}) {
                float scale = (float) (1 / Math.sqrt(d));
                float[] q = random(rnd, n * d, 1.5), k = random(rnd, n * d, 1.5), v = random(rnd, n * d, 1), dO = random(rnd, n * d, 1);
                int np = (n + 15) & ~15;
                float[] p = new float[n * np], ds = new float[n * np], t = new float[d * np];
                // forward into rows of a wider array at an offset (VisionGrad's [L, D] with this head's columns)
                int ldo = d + 24, off = 7;
                float[] out = new float[off + n * ldo];
                NativeKernels.vitAttention(q, k, v, n, d, scale, p, t, out, off, ldo);
                double[][] pr = probs(q, k, n, d, scale);
                for (int i = 0; i < n; i++) {
                    for (int c = 0; c < d; c++) {
                        double want = 0;
                        for (int j = 0; j < n; j++) want += pr[i][j] * v[j * d + c];
                        assertEquals(want, out[off + i * ldo + c], 2e-5, "out d " + d + " n " + n + " at " + i + ", " + c);
                    }
                }
                assertEquals(0f, out[off + d], "columns outside the head untouched");
                // backward: dq, dk, dv into one [n][3·ldo]-like array at three offsets
                int stride = 3 * d + 5, oq = 2, ok = oq + d, ov = ok + d;
                float[] g = new float[ov + (n - 1) * stride + d];
                NativeKernels.vitAttentionBackward(q, k, v, dO, n, d, scale, p, ds, t, g, oq, ok, ov, stride);
                double[][] dS = new double[n][n];
                for (int i = 0; i < n; i++) {
                    double[] dP = new double[n];
                    double rowDot = 0;
                    for (int j = 0; j < n; j++) {
                        for (int c = 0; c < d; c++) dP[j] += (double) dO[i * d + c] * v[j * d + c];
                        rowDot += dP[j] * pr[i][j];
                    }
                    for (int j = 0; j < n; j++) dS[i][j] = pr[i][j] * (dP[j] - rowDot) * scale;
                }
                for (int i = 0; i < n; i++) {
                    for (int c = 0; c < d; c++) {
                        double dq = 0, dk = 0, dv = 0;
                        for (int j = 0; j < n; j++) {
                            dq += dS[i][j] * k[j * d + c];
                            dk += dS[j][i] * q[j * d + c];
                            dv += pr[j][i] * dO[j * d + c];
                        }
                        String at = " d " + d + " n " + n + " at " + i + ", " + c;
                        assertEquals(dq, g[oq + i * stride + c], 5e-5, "dq" + at);
                        assertEquals(dk, g[ok + i * stride + c], 5e-5, "dk" + at);
                        assertEquals(dv, g[ov + i * stride + c], 5e-5, "dv" + at);
                    }
                }
                checked++;
            }
        }
        assertEquals(20, checked);
    }

    @Test
    void refusesWidthsAndScratchItDoesNotTake() {
        assumeTrue(NativeKernels.vitAttention(32), "native training kernels not loaded here: " + NativeKernels.STATUS);
        assertTrue(!NativeKernels.vitAttention(12) && !NativeKernels.vitAttention(272), "widths off the 16-float grid are the Java form's");
        float[] q = new float[10 * 32];
        var e = assertThrows(IllegalArgumentException.class,
                () -> NativeKernels.vitAttention(q, q, q, 10, 32, 1f, new float[10 * 15], new float[32 * 16], new float[320], 0, 32));
        assertTrue(e.getMessage().contains("scratch p holds 150 floats, needs 160"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> NativeKernels.vitAttention(q, new float[300], q, 10, 32, 1f, new float[160], new float[32 * 16], new float[320], 0, 32));
        assertTrue(e.getMessage().contains("[10, 32] needs 320"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> NativeKernels.vitAttention(q, q, q, 10, 32, 1f, new float[160], new float[32 * 16], new float[320], 1, 32));
        assertTrue(e.getMessage().contains("out holds 320 floats, rows need 321"), e.getMessage());
    }
}
