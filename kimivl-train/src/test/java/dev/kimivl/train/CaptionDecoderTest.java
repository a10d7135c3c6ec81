package dev.kimivl.train;

import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@link CaptionDecoder}: gradients (through the attention and the pooling, to the features) against central finite differences; it learns. */
class CaptionDecoderTest {
    static final int DT = SigLipTest.DT, H = 5, VOCAB = SigLipTest.VOCAB;

    static CaptionDecoder.Result run(CaptionDecoder c, float[] f, float[] dFeatures) {
        double[][] dPooled = new double[SigLipTest.MERGED.length][DT];
        CaptionDecoder.Result r = c.lossAndGrads(f, SigLipTest.MERGED, SigLipTest.CAPTIONS, dPooled, dFeatures != null ? dFeatures : new float[f.length]);
        if (dFeatures != null) ImagePooling.meanBackward(dPooled, SigLipTest.MERGED, DT, dFeatures);
        return r;
    }

    @org.junit.jupiter.params.ParameterizedTest
    @org.junit.jupiter.params.provider.ValueSource(booleans = {true, false})
    void gradientsMatchFiniteDifferences(boolean attends) {
        CaptionDecoder c = new CaptionDecoder(DT, H, VOCAB, 3, attends);
        assertEquals(attends, c.parameters().containsKey(CaptionDecoder.QUERY));
        float[] f = SigLipTest.features(4);
        float[] dF = new float[f.length];
        CaptionDecoder.Result r = run(c, f, dF);
        assertEquals(Math.log(VOCAB), r.loss(), 2.5, "a fresh decoder is near the uniform guess");
        for (int i = 0; i < f.length; i++) SigLipTest.check("features[" + i + "]", f, i, dF[i], () -> run(c, f, null).loss());
        for (Map.Entry<String, float[]> e : c.parameters().entrySet()) {
            float[] p = e.getValue(), g = r.grads().get(e.getKey());
            for (int i = 0; i < p.length; i++) SigLipTest.check(e.getKey() + "[" + i + "]", p, i, g[i], () -> run(c, f, null).loss());
        }
    }

    @Test
    void plainGradientDescentLearnsTheCaptions() {
        CaptionDecoder c = new CaptionDecoder(DT, H, VOCAB, 3);
        float[] f = SigLipTest.features(5);
        double first = run(c, f, null).loss();
        CaptionDecoder.Result r = null;
        for (int step = 0; step < 300; step++) {
            r = run(c, f, null);
            for (var e : c.parameters().entrySet()) {
                float[] p = e.getValue(), g = r.grads().get(e.getKey());
                for (int i = 0; i < p.length; i++) p[i] -= 0.5f * g[i];
            }
        }
        assertTrue(r.loss() < first / 4, first + " -> " + r.loss());
        assertEquals(1.0, r.tokenAccuracy(), "the three captions are learnt token by token");
    }

    /**
     * Two images whose tokens have the same mean but differ one by one get different captions: the mean alone cannot
     * tell them apart, so learning them needs the decoder's look at the tokens (where and how many live there).
     */
    @Test
    void theAttentionSeesWhatTheMeanHides() {
        CaptionDecoder c = new CaptionDecoder(DT, H, VOCAB, 3);
        float[] f = new float[4 * DT];
        int[] merged = {2, 2};
        f[0] = 1; f[1] = 1;                   // image 0: (1, 1, 0, …), (1, −1, 0, …)
        f[DT] = 1; f[DT + 1] = -1;
        f[2 * DT] = 1; f[2 * DT + 2] = 1;      // image 1: (1, 0, 1, …), (1, 0, −1, …): the same mean
        f[3 * DT] = 1; f[3 * DT + 2] = -1;
        List<int[]> captions = List.of(new int[] {1, 2}, new int[] {1, 3});
        CaptionDecoder.Result r = null;
        for (int step = 0; step < 400; step++) {
            r = c.lossAndGrads(f, merged, captions, new double[2][DT], new float[f.length]);
            for (var e : c.parameters().entrySet()) {
                float[] p = e.getValue(), g = r.grads().get(e.getKey());
                for (int i = 0; i < p.length; i++) p[i] -= 0.5f * g[i];
            }
        }
        assertEquals(1.0, r.tokenAccuracy(), "both captions learnt: loss " + r.loss());
    }

    @Test
    void badInputsAreNamed() {
        CaptionDecoder c = new CaptionDecoder(DT, H, VOCAB, 3);
        float[] f = new float[2 * DT], d = new float[2 * DT];
        int[] merged = {1, 1};
        var e = assertThrows(IllegalArgumentException.class, () -> c.lossAndGrads(f, merged, List.of(new int[] {1}, new int[] {-1}), new double[2][DT], d));
        assertTrue(e.getMessage().contains("caption 1 has token -1"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> c.lossAndGrads(f, merged, List.of(new int[] {1}), new double[2][DT], d));
    }
}
