package dev.kimivl.train;

import org.junit.jupiter.api.Test;

import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The token-label head's gradients against central finite differences, and that it learns a separable labelling. */
class TokenLabelHeadTest {
    @Test
    void gradientsMatchFiniteDifferences() {
        int M = 5, D = 6, C = 4;
        TokenLabelHead h = new TokenLabelHead("colour", D, C, 3);
        Random r = new Random(1);
        float[] f = new float[M * D];
        for (int i = 0; i < f.length; i++) f[i] = (float) r.nextGaussian();
        int[] y = {0, 3, 1, 1, 2};
        for (int i = 0; i < C; i++) h.parameters().get(h.B)[i] = (float) r.nextGaussian() * 0.1f;
        float[] dF = new float[f.length];
        TokenLabelHead.Result res = h.lossAndGrads(f, y, dF);
        double eps = 1e-2;
        for (int i = 0; i < f.length; i++) assertEquals(centralDifference(h, f, y, f, i, eps), dF[i], 2e-3, "d loss / d feature " + i);
        for (Map.Entry<String, float[]> e : h.parameters().entrySet()) {
            float[] p = e.getValue(), g = res.grads().get(e.getKey());
            for (int i = 0; i < p.length; i++) assertEquals(centralDifference(h, f, y, p, i, eps), g[i], 2e-3, e.getKey() + "[" + i + "]");
        }
    }

    /** (loss(x[i] + eps) − loss(x[i] − eps)) / 2eps, where x is the features or one of the head's parameters. */
    static double centralDifference(TokenLabelHead h, float[] f, int[] y, float[] x, int i, double eps) {
        float keep = x[i];
        x[i] = (float) (keep + eps);
        double up = h.lossAndGrads(f, y, new float[f.length]).loss();
        x[i] = (float) (keep - eps);
        double down = h.lossAndGrads(f, y, new float[f.length]).loss();
        x[i] = keep;
        return (up - down) / (2 * eps);
    }

    @Test
    void learnsASeparableLabellingAndRefusesBadLabels() {
        int M = 40, D = 8, C = 3;
        TokenLabelHead h = new TokenLabelHead("colour", D, C, 5);
        float[] f = new float[M * D];
        int[] y = new int[M];
        Random r = new Random(2);
        for (int m = 0; m < M; m++) {
            y[m] = m % C;
            for (int d = 0; d < D; d++) f[m * D + d] = (float) (0.3 * r.nextGaussian() + (d == y[m] ? 2 : 0));
        }
        AdamW w = new AdamW(C * D, 0.05f, 0.9f, 0.95f, 1e-8f, 0f), b = new AdamW(C, 0.05f, 0.9f, 0.95f, 1e-8f, 0f);
        double first = Double.NaN;
        TokenLabelHead.Result res = null;
        for (int s = 0; s < 200; s++) {
            res = h.lossAndGrads(f, y, new float[f.length]);
            if (s == 0) first = res.loss();
            w.step(h.parameters().get(h.W), res.grads().get(h.W));
            b.step(h.parameters().get(h.B), res.grads().get(h.B));
        }
        assertTrue(res.loss() < 0.1 * first, first + " → " + res.loss());
        assertEquals(1.0, res.accuracy());
        assertEquals(1.0, res.objectAccuracy());     // the labels 0 and 1 (2, the last class, is "none")
        // a fresh head names the "none" class rarely right by chance: the object accuracy counts labels 0 and 1 alone
        TokenLabelHead fresh = new TokenLabelHead("colour", D, C, 6);
        int[] noneOnly = new int[M];
        java.util.Arrays.fill(noneOnly, C - 1);
        assertTrue(Double.isNaN(fresh.lossAndGrads(f, noneOnly, new float[f.length]).objectAccuracy()));
        assertTrue(Double.isNaN(new TokenLabelHead("place", D, C, 6).lossAndGrads(f, y, new float[f.length]).objectAccuracy()), "a place is never \"none\"");
        assertThrows(IllegalArgumentException.class, () -> h.lossAndGrads(f, new int[M - 1], new float[f.length]));
        int[] bad = y.clone();
        bad[3] = C;
        assertThrows(IllegalArgumentException.class, () -> h.lossAndGrads(f, bad, new float[f.length]));
    }

    @Test
    void unlabelledTokensAreNotScored() {
        // tokens labelled −1 (an image with no shape map) add nothing: the result is the head's on the other tokens alone
        int D = 5, C = 3;
        TokenLabelHead h = new TokenLabelHead("shape", D, C, 7);
        Random r = new Random(4);
        float[] f = new float[3 * D];
        for (int i = 0; i < f.length; i++) f[i] = (float) r.nextGaussian();
        float[] kept = new float[2 * D];
        System.arraycopy(f, 0, kept, 0, D);
        System.arraycopy(f, 2 * D, kept, D, D);
        float[] dF = new float[f.length], dKept = new float[kept.length];
        TokenLabelHead.Result mixed = h.lossAndGrads(f, new int[]{2, -1, 0}, dF), alone = h.lossAndGrads(kept, new int[]{2, 0}, dKept);
        assertEquals(alone.loss(), mixed.loss(), 1e-12);
        assertEquals(2, mixed.scored());
        for (String n : h.parameters().keySet()) org.junit.jupiter.api.Assertions.assertArrayEquals(alone.grads().get(n), mixed.grads().get(n), 1e-7f, n);
        for (int d = 0; d < D; d++) {
            assertEquals(dKept[d], dF[d], 1e-7);
            assertEquals(0, dF[D + d]);
            assertEquals(dKept[D + d], dF[2 * D + d], 1e-7);
        }
        TokenLabelHead.Result none = h.lossAndGrads(f, new int[]{-1, -1, -1}, new float[f.length]);
        assertEquals(0, none.loss());
        assertEquals(0, none.scored());
        assertTrue(Double.isNaN(none.accuracy()));
    }

    @Test
    void namesItsParametersByKindAndRefusesAnUnknownKind() {
        assertEquals(java.util.Set.of("place.weight", "place.bias"), new TokenLabelHead("place", 4, 3, 1).parameters().keySet());
        assertTrue(TokenLabelHead.isHeadParameter("colour.bias") && !TokenLabelHead.isHeadParameter("vision_tower.encoder.x"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new TokenLabelHead("size", 4, 3, 1));
        assertTrue(e.getMessage().contains("size") && e.getMessage().contains("colour"), e.getMessage());
        assertEquals(dev.kimivl.train.data.TokenShapes.CLASSES, TokenLabelHead.classes("shape"));
        assertThrows(IllegalArgumentException.class, () -> TokenLabelHead.classes("size"));
    }
}
