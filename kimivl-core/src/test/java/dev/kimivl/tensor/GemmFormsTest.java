package dev.kimivl.tensor;

import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Gemm.matmulNN (C = A·B) and matmulTN (C = Aᵀ·B), the training side's backward products without transposed copies,
 * give the floats of the packed GEMM over the transposed copies bit for bit: sizes with a short last panel (n = 21,
 * 3), several k-blocks (k = 600 over k-blocks of 256), a lone 6-row group (m = 67).
 */
class GemmFormsTest {
    private static float[] random(Random r, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float) r.nextGaussian();
        return a;
    }

    private static float[] transpose(float[] a, int rows, int cols) {
        float[] t = new float[rows * cols];
        for (int r = 0; r < rows; r++) for (int c = 0; c < cols; c++) t[c * rows + r] = a[r * cols + c];
        return t;
    }

    @Test
    void nnAndTnGiveTheTransposingFormsFloats() {
        Random rnd = new Random(41);
        assertTrue(Gemm.packed(16), "this machine runs the packed GEMM");
        for (int[] s : new int[][]{{67, 600, 21}, {48, 256, 3}, {16, 40, 48}, {9, 7, 100}}) {
            int m = s[0], k = s[1], n = s[2];
            float[] a = random(rnd, m * k), b = random(rnd, k * n);
            // A·B = the GEMM with Bᵀ as the matrix and A's rows as the inputs
            float[] want = new float[m * n], got = new float[m * n];
            SegmentMatrix.ofFloats(transpose(b, k, n), n, k).matmul(a, want, m);
            Gemm.matmulNN(a, m, k, b, n, got);
            assertArrayEquals(want, got, 0f, "NN m " + m + " k " + k + " n " + n);
            // Aᵀ·B with A' [k, m]: the GEMM over Bᵀ and A'ᵀ
            float[] at = transpose(a, m, k);                    // A' = Aᵀ stored [k, m]
            float[] got2 = new float[m * n];
            Gemm.matmulTN(at, k, m, b, n, got2);
            assertArrayEquals(want, got2, 0f, "TN m " + m + " k " + k + " n " + n);
        }
    }

    @Test
    void refusesTooFewRowsForThePackedFloats() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Gemm.matmulNN(new float[8], 2, 4, new float[8], 2, new float[4]));
        assertTrue(e.getMessage().contains("2 rows"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> Gemm.matmulNN(new float[16 * 4], 16, 4, new float[7], 2, new float[32]));
        assertTrue(e.getMessage().contains("B [4, 2] needs 8 floats, has 7"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> Gemm.matmulTN(new float[4 * 16], 4, 16, new float[8], 2, new float[31]));
        assertTrue(e.getMessage().contains("C [16, 2] needs 32 floats, has 31"), e.getMessage());
    }
}
