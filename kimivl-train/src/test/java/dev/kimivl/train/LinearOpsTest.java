package dev.kimivl.train;

import dev.kimivl.tensor.VectorMath;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * The attention products of the training side (LinearOps.dotsT, rowTimes) give the floats of the per-pair
 * VectorMath.dot / axpy they replace, bit for bit: the text and vision attention's gradients and the kill-and-resume
 * equality rest on that.
 */
class LinearOpsTest {
    private static float[] random(Random r, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float) r.nextGaussian();
        return a;
    }

    /** Rows from an offset j0 of a wider kᵀ, counts that leave a masked last block, widths with and without a scalar tail. */
    @Test
    void dotsTEqualsOneDotPerRow() {
        Random r = new Random(5);
        for (int d : new int[]{16, 32, 48, 33, 7}) {
            int ldb = 75;
            float[] b = random(r, ldb * d), q = random(r, 3 * d);
            float[] bt = LinearOps.transpose(b, ldb, d);
            for (int[] range : new int[][]{{0, 75}, {0, 1}, {5, 17}, {40, 35}, {74, 1}, {3, 64}}) {
                int j0 = range[0], n = range[1];
                float[] out = new float[n + 2];
                LinearOps.dotsT(q, d, bt, ldb, j0, n, d, out, 1);
                for (int j = 0; j < n; j++) {
                    float want = VectorMath.dot(q, d, b, (j0 + j) * d, d);
                    assertEquals(Float.floatToRawIntBits(want), Float.floatToRawIntBits(out[1 + j]),
                            "d " + d + ", row " + (j0 + j) + ": " + want + " vs " + out[1 + j]);
                }
                assertEquals(0f, out[0], "nothing written before oo");
                assertEquals(0f, out[n + 1], "nothing written past n");
            }
        }
    }

    /** Strided rows (one head's slice of a [T, H·d] array) and a strided coefficient column. */
    @Test
    void rowTimesEqualsAxpysIntoZeros() {
        Random r = new Random(6);
        for (int d : new int[]{16, 32, 48, 80, 13}) {
            int heads = 3, n = 23, xs = heads * d + 4;
            float[] x = random(r, 2 + n * xs), coef = random(r, 2 * n + 1);
            for (int cs : new int[]{1, 2}) {
                int xo = 2 + d;                                   // the second head's columns
                float[] want = new float[d], got = new float[d + 1];
                for (int k = 0; k < n; k++) VectorMath.axpy(coef[1 + k * cs], x, xo + k * xs, want, 0, d);
                LinearOps.rowTimes(coef, 1, cs, n, x, xo, xs, d, got, 1);
                for (int c = 0; c < d; c++) {
                    assertEquals(Float.floatToRawIntBits(want[c]), Float.floatToRawIntBits(got[1 + c]), "d " + d + ", cs " + cs + ", column " + c);
                }
            }
        }
    }
}
