package dev.kimivl.tensor;

import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;

class VectorMathTest {

    /** The vectorised SwiGLU gate against the scalar double-exp form, over both signs, large magnitudes and a tail. */
    @Test
    void siluMulMatchesScalar() {
        Random rnd = new Random(3);
        int n = 1000 + 5;
        float[] g = new float[n], u = new float[n];
        for (int i = 0; i < n; i++) {
            g[i] = (float) (rnd.nextGaussian() * (i % 10 == 0 ? 40 : 3));
            u[i] = (float) rnd.nextGaussian();
        }
        g[0] = 0f; g[1] = -0f; g[2] = 88f; g[3] = -88f; g[4] = -200f; g[5] = 200f;
        float[] out = g.clone();
        VectorMath.siluMul(out, u, n);
        for (int i = 0; i < n; i++) {
            double x = g[i], ref = x / (1 + Math.exp(-x)) * u[i];
            assertEquals(ref, out[i], 4e-7 * Math.abs(ref) + 1e-30, "x = " + x);
        }
    }
}
