package dev.kimivl.train;

import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * The vector-lane forms of training's element-wise maths against their scalar definitions: SwiGLU's SiLU and its
 * backward (TextGrad.siluTimes, siluTimesBackward) within a few float ulp, over arguments that reach both exp's
 * saturation and its cancellation; the caption decoder's double dot and axpy (Doubles) against the plain loops.
 */
class ElementwiseLanesTest {
    @Test
    void siluOnLanesMatchesTheScalarFormulas() {
        Random r = new Random(7);
        int n = 203;                                        // whole vectors and a scalar tail, from an odd offset
        float[] g = new float[n], u = new float[n], dA = new float[n];
        for (int i = 0; i < n; i++) {
            g[i] = (float) (r.nextGaussian() * (i % 3 == 0 ? 30 : 3));
            u[i] = (float) r.nextGaussian();
            dA[i] = (float) r.nextGaussian();
        }
        float[] a = new float[n], dGate = new float[n], dUp = new float[n];
        TextGrad.siluTimes(g, u, a, 3, n);
        TextGrad.siluTimesBackward(g, u, dA, dGate, dUp, 3, n);
        for (int i = 3; i < n; i++) {
            double x = g[i], s = 1 / (1 + Math.exp(-x));
            assertEquals(x * s * u[i], a[i], 1e-6 * Math.max(1, Math.abs(x * u[i])), "silu·u at " + x);
            assertEquals(dA[i] * x * s, dUp[i], 1e-6 * Math.max(1, Math.abs(dA[i] * x)), "dUp at " + x);
            assertEquals(dA[i] * u[i] * s * (1 + x * (1 - s)), dGate[i], 1e-6 * Math.max(1, Math.abs(dA[i] * u[i] * x)), "dGate at " + x);
        }
        assertEquals(0, a[0] + a[1] + a[2] + dGate[0] + dUp[2], "nothing written before i0");
    }

    @Test
    void doubleLanesMatchThePlainLoops() {
        Random r = new Random(9);
        for (int n : new int[]{0, 1, 3, 8, 17, 128, 131}) {
            double[] a = new double[n + 5], b = new double[n + 2], y = new double[n + 4], y0;
            for (int i = 0; i < a.length; i++) a[i] = r.nextGaussian();
            for (int i = 0; i < b.length; i++) b[i] = r.nextGaussian();
            for (int i = 0; i < y.length; i++) y[i] = r.nextGaussian();
            double plain = 0;
            for (int i = 0; i < n; i++) plain += a[5 + i] * b[2 + i];
            assertEquals(plain, Doubles.dot(a, 5, b, 2, n), 1e-12 * Math.max(1, n), "dot of " + n);
            y0 = y.clone();
            Doubles.axpy(0.75, a, 5, y, 4, n);
            for (int i = 0; i < y.length; i++) {
                double want = i >= 4 && i < 4 + n ? Math.fma(0.75, a[5 + i - 4], y0[i]) : y0[i];
                assertEquals(want, y[i], 0, "axpy " + n + " at " + i);
            }
        }
    }
}
