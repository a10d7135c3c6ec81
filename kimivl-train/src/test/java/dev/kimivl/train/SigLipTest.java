package dev.kimivl.train;

import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link SigLip} after {@link ImagePooling}: its loss against a direct evaluation, its gradients (through the pooling,
 * to the features) against central finite differences.
 */
class SigLipTest {
    static final int DT = 6, E = 4, VOCAB = 9;
    // three images of 2, 3 and 1 merged tokens; captions 0 and 2 are the same text (a positive pair off the diagonal)
    static final int[] MERGED = {2, 3, 1};
    static final List<int[]> CAPTIONS = List.of(new int[] {1, 4, 4}, new int[] {2, 7}, new int[] {1, 4, 4});

    static float[] features(long seed) {
        Random r = new Random(seed);
        float[] f = new float[6 * DT];
        for (int i = 0; i < f.length; i++) f[i] = (float) r.nextGaussian();
        return f;
    }

    /** A SigLip whose scale and bias are moved off their init, so that no term of the loss is saturated. */
    static SigLip head() {
        SigLip s = new SigLip(DT, E, VOCAB, 5);
        s.parameters().get(SigLip.LOG_SCALE)[0] = 0.7f;
        s.parameters().get(SigLip.BIAS)[0] = -0.4f;
        return s;
    }

    /** Pools, runs the loss, and returns the result with d L / d features [M, Dt] in {@code dFeatures}. */
    static SigLip.Result run(SigLip s, float[] f, float[] dFeatures) {
        double[][] pooled = ImagePooling.mean(f, MERGED, DT), dPooled = new double[MERGED.length][DT];
        SigLip.Result r = s.lossAndGrads(pooled, CAPTIONS, dPooled);
        if (dFeatures != null) ImagePooling.meanBackward(dPooled, MERGED, DT, dFeatures);
        return r;
    }

    @Test
    void lossIsTheSigmoidLossOfTheCosineLogits() {
        SigLip s = head();
        float[] f = features(1);
        double loss = run(s, f, null).loss();
        // direct: pooled → projected → normalised; bag of words → normalised; Σ softplus(−s·z) / B
        float[] w = s.parameters().get(SigLip.IMAGE_PROJ), t = s.parameters().get(SigLip.TEXT_EMBED);
        double[][] u = new double[3][E], v = new double[3][E];
        int off = 0;
        for (int i = 0; i < 3; i++) {
            double[] pool = new double[DT];
            for (int k = 0; k < MERGED[i]; k++) for (int d = 0; d < DT; d++) pool[d] += f[(off + k) * DT + d] / MERGED[i];
            off += MERGED[i];
            for (int o = 0; o < E; o++) for (int d = 0; d < DT; d++) u[i][o] += w[o * DT + d] * pool[d];
            for (int id : CAPTIONS.get(i)) for (int o = 0; o < E; o++) v[i][o] += t[id * E + o];
            unit(u[i]);
            unit(v[i]);
        }
        double want = 0;
        for (int i = 0; i < 3; i++) for (int j = 0; j < 3; j++) {
            double z = Math.exp(0.7f) * dot(u[i], v[j]) - 0.4f;
            double sign = i == j || (i + j == 2 && i != 1) ? 1 : -1;
            want += Math.log1p(Math.exp(-sign * z)) / 3;
        }
        assertEquals(want, loss, 1e-9);
    }

    @Test
    void gradientsMatchFiniteDifferences() {
        SigLip s = head();
        float[] f = features(2);
        float[] dF = new float[f.length];
        SigLip.Result r = run(s, f, dF);
        // the features
        for (int i = 0; i < f.length; i++) check("features[" + i + "]", f, i, dF[i], () -> run(s, f, null).loss());
        // every tower parameter that the batch touches (rows of the text table for unused ids have gradient 0)
        for (Map.Entry<String, float[]> e : s.parameters().entrySet()) {
            float[] p = e.getValue(), g = r.grads().get(e.getKey());
            for (int i = 0; i < p.length; i++) check(e.getKey() + "[" + i + "]", p, i, g[i], () -> run(s, f, null).loss());
        }
        assertEquals(0f, r.grads().get(SigLip.TEXT_EMBED)[0 * E], "token 0 is in no caption");
    }

    @Test
    void retrievalAccuracyCountsImagesWhoseBestCaptionIsAPositive() {
        SigLip s = head();
        double acc = run(s, features(3), null).retrievalAccuracy();
        assertTrue(acc >= 0 && acc <= 1);
        assertEquals(0, Math.round(acc * 3) - acc * 3, 1e-12, "a multiple of 1/3");
    }

    @Test
    void badInputsAreNamed() {
        SigLip s = head();
        double[][] pooled = ImagePooling.mean(features(1), MERGED, DT), d = new double[3][DT];
        var ex = assertThrows(IllegalArgumentException.class, () -> s.lossAndGrads(pooled, List.of(new int[] {1}, new int[] {2}, new int[] {VOCAB}), d));
        assertTrue(ex.getMessage().contains("caption 2 has token 9 outside the vocabulary of 9"), ex.getMessage());
        assertThrows(IllegalArgumentException.class, () -> s.lossAndGrads(pooled, CAPTIONS.subList(0, 2), d));
        ex = assertThrows(IllegalArgumentException.class, () -> ImagePooling.mean(new float[5 * DT], MERGED, DT));
        assertTrue(ex.getMessage().contains("5 rows, the images 6"), ex.getMessage());
    }

    interface Loss { double get(); }

    /** Central difference of the loss in p[i] (float parameters: step 1e-3, tolerance relative 1e-3 or 2e-5 absolute). */
    static void check(String what, float[] p, int i, float analytic, Loss loss) {
        float keep = p[i];
        float h = 1e-3f;
        p[i] = keep + h;
        double up = loss.get();
        p[i] = keep - h;
        double down = loss.get();
        p[i] = keep;
        double numeric = (up - down) / (2 * (double) h);
        assertEquals(numeric, analytic, Math.max(2e-5, 1e-3 * Math.abs(numeric)), what);
    }

    static void unit(double[] a) {
        double n = Math.sqrt(dot(a, a));
        for (int i = 0; i < a.length; i++) a[i] /= n;
    }

    static double dot(double[] a, double[] b) {
        double s = 0;
        for (int i = 0; i < a.length; i++) s += a[i] * b[i];
        return s;
    }
}
