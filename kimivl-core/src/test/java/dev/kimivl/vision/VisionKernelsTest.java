package dev.kimivl.vision;

import dev.kimivl.tensor.SegmentMatrix;
import dev.kimivl.tensor.VectorMath;
import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertTrue;

/** The packed vision GEMM and the GEMM-based attention against plain reference code, on awkward sizes. */
class VisionKernelsTest {
    static float[] random(SplittableRandom r, int n, float scale) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float) (r.nextDouble() - 0.5) * scale;
        return a;
    }

    static void close(float[] want, float[] got, double tol, String what) {
        double max = 0;
        for (int i = 0; i < want.length; i++) max = Math.max(max, Math.abs(want[i] - got[i]));
        assertTrue(max <= tol, what + ": max |Δ| " + max);
    }

    @Test
    void packedLinearMatchesPlainProductWithEveryEpilogue() {
        SplittableRandom r = new SplittableRandom(3);
        // rows not a multiple of 16, k over one k-block and ragged, m over one row block and not a multiple of 6
        for (int[] s : new int[][]{{37, 300, 101}, {16, 48, 6}, {5, 7, 1}, {48, 600, 200}}) {
            int n = s[0], k = s[1], m = s[2];
            float[] w = random(r, n * k, 0.2f), b = random(r, n, 1f), x = random(r, m * k, 2f), res = random(r, m * n, 1f);
            float[] plain = new float[m * n];
            for (int t = 0; t < m; t++) {
                for (int j = 0; j < n; j++) {
                    double acc = b[j];
                    for (int c = 0; c < k; c++) acc += (double) w[j * k + c] * x[t * k + c];
                    plain[t * n + j] = (float) acc;
                }
            }
            PackedLinear p = new PackedLinear(SegmentMatrix.ofFloats(w, n, k), b);
            // packed into a reused buffer that still holds NaNs (another layer's weights): no trace of them may remain
            float[] buf = new float[p.packedSize() + 100];
            java.util.Arrays.fill(buf, Float.NaN);
            float[] pw = p.pack(buf);
            assertTrue(pw == buf, "a large enough buffer is reused");
            float[] y = new float[m * n];
            p.forward(pw, x, m, y, PackedLinear.Act.NONE);
            close(plain, y, 1e-4, "none " + n + "x" + k + " m " + m);
            p.forward(pw, x, m, y, PackedLinear.Act.GELU_TANH);
            float[] want = new float[m * n];
            for (int i = 0; i < want.length; i++) want[i] = VectorMath.geluTanh(plain[i]);
            close(want, y, 1e-4, "gelu tanh");
            p.forward(pw, x, m, y, PackedLinear.Act.GELU_ERF);
            for (int i = 0; i < want.length; i++) want[i] = VectorMath.geluErf(plain[i]);
            close(want, y, 1e-4, "gelu erf");
            float[] acc = res.clone();
            p.forwardAdd(p.pack(null), x, m, acc);
            for (int i = 0; i < want.length; i++) want[i] = res[i] + plain[i];
            close(want, acc, 1e-4, "residual");
        }
    }

    @Test
    void gemmAttentionMatchesPerQueryAttention() {
        SplittableRandom r = new SplittableRandom(5);
        int dim = 40, heads = 2;                          // head dim 20: not a multiple of 6
        // three images, none a multiple of 16 or 6; the last spans two key chunks of the exp + P·V pass
        int[] starts = {0, 37, 58}, counts = {37, 21, VisionAttention.PV_CHUNK + 43};
        int L = 58 + counts[2];
        float[] qkv = random(r, L * 3 * dim, 4f);
        float[] want = new float[L * dim], got = new float[L * dim];
        VisionKernels.blockDiagonalAttention(qkv, dim, heads, starts, counts, want);
        // buffers that already served a larger image of NaNs: reuse must not leak into the result
        VisionAttention.Buffers buf = new VisionAttention.Buffers();
        float[] nan = new float[(L + 50) * 3 * dim];
        java.util.Arrays.fill(nan, Float.NaN);
        VisionAttention.blockDiagonal(nan, dim, heads, new int[]{0}, new int[]{L + 50}, new float[(L + 50) * dim], buf);
        VisionAttention.blockDiagonal(qkv, dim, heads, starts, counts, got, buf);
        close(want, got, 1e-5, "attention");
    }
}
