package dev.kimivl.train.probe;

import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The ridge read-out: exact on a noise-free linear map, shrinking with λ, R² as defined. */
class RidgeTest {
    /** Rows of d features on very different scales and offsets (standardisation must undo both). */
    static float[] features(SplittableRandom r, int n, int d) {
        float[] x = new float[n * d];
        for (int i = 0; i < n; i++) for (int j = 0; j < d; j++) x[i * d + j] = (float) ((r.nextDouble() - 0.5) * Math.pow(10, j % 3) + 3 * j);
        return x;
    }

    @Test
    void recoversAKnownLinearMapExactly() {
        SplittableRandom r = new SplittableRandom(7);
        int n = 300, d = 6, k = 3;
        float[] x = features(r, n, d);
        double[] w = new double[d * k], b = {0.5, -2, 10};
        for (int i = 0; i < w.length; i++) w[i] = r.nextDouble() * 4 - 2;
        double[] y = new double[n * k];
        for (int i = 0; i < n; i++) for (int j = 0; j < k; j++) {
            double v = b[j];
            for (int p = 0; p < d; p++) v += x[i * d + p] * w[p * k + j];
            y[i * k + j] = v;
        }
        Ridge.Model m = Ridge.of(x, n, d, y, k).solve(0);
        for (int i = 0; i < w.length; i++) assertEquals(w[i], m.weights()[i], 1e-8, "weight " + i);
        for (int j = 0; j < k; j++) assertEquals(b[j], m.bias()[j], 1e-6, "bias " + j);
        double[] pred = m.predict(x, n);
        for (int j = 0; j < k; j++) assertEquals(1.0, Ridge.r2(pred, y, k, j), 1e-12);
    }

    @Test
    void aPenaltyShrinksTheWeightsAndMeanPredictionScoresZero() {
        SplittableRandom r = new SplittableRandom(8);
        int n = 200, d = 4;
        float[] x = features(r, n, d);
        double[] y = new double[n];
        for (int i = 0; i < n; i++) y[i] = x[i * d] * 2 - x[i * d + 3] + 0.2 * r.nextDouble();    // signal variance 5/12, noise 0.04/12: R² ≈ 0.99
        Ridge fit = Ridge.of(x, n, d, y, 1);
        double prev = Double.POSITIVE_INFINITY;
        for (double l : new double[]{0, 0.1, 1, 10, 100}) {
            Ridge.Model m = fit.solve(l);
            double norm = 0;
            for (int p = 0; p < d; p++) norm += Math.pow(m.weights()[p] * Math.sqrt(variance(x, n, d, p)), 2);   // in standardised units
            assertTrue(norm < prev, "λ " + l + ": standardised weight norm " + norm + " did not fall below " + prev);
            prev = norm;
        }
        double mean = 0;
        for (double v : y) mean += v / n;
        double[] constant = new double[n];
        java.util.Arrays.fill(constant, mean);
        assertEquals(0.0, Ridge.r2(constant, y, 1, 0), 1e-12);
        assertTrue(Ridge.r2(fit.solve(1e-3).predict(x, n), y, 1, 0) > 0.9);
    }

    @Test
    void dependentFeaturesNeedAPenalty() {
        int n = 50, d = 3;
        float[] x = new float[n * d];
        double[] y = new double[n];
        for (int i = 0; i < n; i++) {
            x[i * d] = i;
            x[i * d + 1] = 2 * i + 1;        // a copy of the first column, scaled and shifted
            x[i * d + 2] = (i * 37) % 11;
            y[i] = i;
        }
        Ridge fit = Ridge.of(x, n, d, y, 1);
        assertThrows(IllegalArgumentException.class, () -> fit.solve(0));
        assertEquals(1.0, Ridge.r2(fit.solve(1e-6).predict(x, n), y, 1, 0), 1e-4);
        assertThrows(IllegalArgumentException.class, () -> Ridge.of(x, n, d + 1, y, 1), "a size mismatch must be named");
    }

    static double variance(float[] x, int n, int d, int col) {
        double m = 0, v = 0;
        for (int i = 0; i < n; i++) m += x[i * d + col] / (double) n;
        for (int i = 0; i < n; i++) v += Math.pow(x[i * d + col] - m, 2) / n;
        return v;
    }
}
