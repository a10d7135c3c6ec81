package dev.kimivl.model;

import dev.kimivl.tensor.Kernels;
import dev.kimivl.config.ModelConfig;
import dev.kimivl.io.SafetensorsCheckpoint;
import dev.kimivl.testing.Golden;
import jdk.incubator.vector.FloatVector;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/** The fused decode kernels against plain references: latent attention (one range and split ranges), exp, and the split-positions path. */
class DecodePathsTest {

    /** softmax_j(scale·q_h·lat_j) · lat_j[0..R) in double. */
    private static double[] reference(float[] q, int H, float[] lat, int S, int W, int R, float scale) {
        double[] out = new double[H * R];
        for (int h = 0; h < H; h++) {
            double[] s = new double[S];
            double max = Double.NEGATIVE_INFINITY;
            for (int j = 0; j < S; j++) {
                double d = 0;
                for (int k = 0; k < W; k++) d += (double) q[h * W + k] * lat[j * W + k];
                s[j] = d * scale;
                max = Math.max(max, s[j]);
            }
            double sum = 0;
            for (int j = 0; j < S; j++) { s[j] = Math.exp(s[j] - max); sum += s[j]; }
            for (int j = 0; j < S; j++) for (int k = 0; k < R; k++) out[h * R + k] += s[j] / sum * lat[j * W + k];
        }
        return out;
    }

    @Test
    void latentAttentionMatchesSoftmaxReference() {
        Random r = new Random(3);
        for (int[] dims : new int[][]{{16, 576, 512, 300}, {3, 40, 32, 37}, {9, 24, 16, 5}}) {
            int H = dims[0], W = dims[1], R = dims[2], S = dims[3];
            float[] q = new float[H * W], lat = new float[S * W];
            for (int i = 0; i < q.length; i++) q[i] = (float) r.nextGaussian() * 0.3f;
            for (int i = 0; i < lat.length; i++) lat[i] = (float) r.nextGaussian();
            float scale = (float) Math.pow(W, -0.5);
            double[] ref = reference(q, H, lat, S, W, R, scale);
            // one state over all positions, all heads
            LatentAttention.State all = new LatentAttention.State(0, H, R);
            LatentAttention.accumulate(Kernels.DEFAULT, q, lat, W, R, 0, S, scale, all);
            // three position ranges merged; and per-head states
            int[] cut = {0, S / 3, 2 * S / 3 + 1, S};
            LatentAttention.State[] parts = new LatentAttention.State[3];
            for (int c = 0; c < 3; c++) {
                parts[c] = new LatentAttention.State(0, H, R);
                LatentAttention.accumulate(Kernels.DEFAULT, q, lat, W, R, cut[c], cut[c + 1], scale, parts[c]);
            }
            float[] o1 = new float[R], o2 = new float[R], o3 = new float[R];
            for (int h = 0; h < H; h++) {
                LatentAttention.finish(new LatentAttention.State[]{all}, h, o1, 0);
                LatentAttention.finish(parts, h, o2, 0);
                LatentAttention.State one = new LatentAttention.State(h, 1, R);
                LatentAttention.accumulate(Kernels.DEFAULT, q, lat, W, R, 0, S, scale, one);
                LatentAttention.finish(new LatentAttention.State[]{one}, h, o3, 0);
                for (int k = 0; k < R; k++) {
                    double e = ref[h * R + k];
                    assertEquals(e, o1[k], 2e-5 + 2e-5 * Math.abs(e), "one range, H=" + H + " h=" + h + " k=" + k);
                    assertEquals(e, o2[k], 2e-5 + 2e-5 * Math.abs(e), "split ranges, H=" + H + " h=" + h + " k=" + k);
                    assertEquals(e, o3[k], 2e-5 + 2e-5 * Math.abs(e), "single head, H=" + H + " h=" + h + " k=" + k);
                }
            }
        }
    }

    @Test
    void expIsAccurate() {
        int L = FloatVector.SPECIES_PREFERRED.length();
        float[] x = new float[L * 4096], y = new float[x.length];
        // [−100, 0] (softmax numerators, SiLU) and [0, 80] (GELU-tanh's e^{2u})
        for (int i = 0; i < x.length; i++) x[i] = i < x.length / 2 ? -100f * i / (x.length / 2) : 80f * (i - x.length / 2) / (x.length / 2);
        for (int i = 0; i < x.length; i += L) dev.kimivl.tensor.VectorMath.exp(FloatVector.fromArray(FloatVector.SPECIES_PREFERRED, x, i)).intoArray(y, i);
        for (int i = 0; i < x.length; i++) {
            double e = Math.exp(x[i]);
            if (x[i] < -87) assertTrue(y[i] >= 0 && y[i] < 1e-37, "exp(" + x[i] + ")");
            else assertEquals(e, y[i], 3e-7 * e + 1e-38, "exp(" + x[i] + ")");
        }
    }

    @Test
    void splitPositionsDecodeEqualsPerHeadDecode() {
        Golden golden = Golden.load("a_text_only");
        try (SafetensorsCheckpoint ckpt = SafetensorsCheckpoint.open(golden.dir)) {
            ModelConfig cfg = ModelConfig.load(golden.dir);
            LanguageModel base = LanguageModel.load(ckpt, cfg.text(), cfg.textPrefix());
            int[] prompt = {1, 5, 9, 13, 17, 2, 40, 7};
            float[][] logits = new float[2][];
            {
                for (int mode = 0; mode < 2; mode++) {
                    LanguageModel lm = base.withKernels(base.kernels().with(base.kernels().settings().withMlaSplit(mode == 0 ? 1 << 20 : 1)));
                    KvCache c = lm.newCache(64);
                    lm.forward(lm.embed(prompt), prompt.length, c, StageSink.NONE, null);
                    float[] h = null;
                    for (int t : new int[]{3, 8, 21, 4}) h = lm.forward(lm.embed(new int[]{t}), 1, c, StageSink.NONE, null);
                    logits[mode] = lm.logits(h, 0);
                }
            }
            assertArrayEquals(logits[0], logits[1], 2e-5f);
        }
    }

    /** The prompt-form rule on Kimi-VL-A3B's dimensions (16 heads, kv_lora 512, rope 64, nope 128, v 128). */
    @Test
    void decompressedPromptFormWhereItPays() {
        assertTrue(MlaAttention.decompressionPays(172, 0, 16, 512, 64, 128, 128), "a fresh 172-token prompt");
        assertTrue(!MlaAttention.decompressionPays(160, 0, 16, 512, 64, 128, 128), "a fresh 160-token prompt");
        assertTrue(!MlaAttention.decompressionPays(40, 8000, 16, 512, 64, 128, 128), "a 40-token turn after 8000 positions");
        assertTrue(MlaAttention.decompressionPays(512, 4000, 16, 512, 64, 128, 128), "a 512-token turn after 4000 positions");
        for (int T = 1; T < MlaAttention.SHORT_TURN; T++) {
            for (int pos0 : new int[]{1, 100, 2000, 8000}) {
                assertTrue(!MlaAttention.decompressionSavesMacs(T, pos0, 16, 512, 64, 128, 128), "the short-turn rule changes nothing on A3B: " + T + " after " + pos0);
            }
        }
        // tiny-random's dimensions (4 heads, kv_lora 32, rope 8, nope 16, v 16): a fresh prompt decompresses, a short
        // second turn after a long first one does not (the MAC count alone would decompress its 2,000 positions)
        assertTrue(MlaAttention.decompressionPays(2000, 0, 4, 32, 8, 16, 16), "a fresh 2000-token prompt, tiny dims");
        assertTrue(MlaAttention.decompressionSavesMacs(34, 1966, 4, 32, 8, 16, 16), "the MAC count alone would decompress");
        assertTrue(!MlaAttention.decompressionPays(34, 1966, 4, 32, 8, 16, 16), "a 34-token turn after 1966 positions, tiny dims");
    }
}
