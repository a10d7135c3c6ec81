package dev.kimivl.tensor;

import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Q4_K rows regrouped 4 at a time ({@link Q4KRows4}, QuantMatrix.repackedQ4K): every product and row read of the
 * repacked matrix gives the plain matrix's floats bit for bit (the R4 matvec kernel's integers and float steps are the
 * row kernel's), also for slices that start inside a group and for kernels without the R4 form.
 */
class Q4KRows4Test {
    private static void assertSameFloats(float[] want, float[] got, String what) {
        assertEquals(want.length, got.length, what + ": length");
        for (int i = 0; i < want.length; i++) {
            assertEquals(Float.floatToRawIntBits(want[i]), Float.floatToRawIntBits(got[i]), what + " at " + i + ": " + got[i] + " vs " + want[i]);
        }
    }

    private static QuantizedInput input(Random rnd, int n, int cols) {
        float[] x = new float[n * cols];
        for (int i = 0; i < x.length; i++) x[i] = (float) rnd.nextGaussian() * (i % 89 == 0 ? 25 : 1);
        return QuantizedInput.ofRows(x, n, cols);
    }

    @Test
    void repackedRowsGiveThePlainRowsFloats() {
        Kernels wide = NativeKernelsTest.avx2AndAvx512()[1];
        Random rnd = new Random(29);
        for (int[] s : new int[][]{{4, 256}, {40, 2048}, {12, 2816}, {8, 11264}}) {
            int rows = s[0], cols = s[1];
            QuantMatrix plain = OtherFormatKernelsTest.randomMatrix(rnd, DType.Q4_K, rows, cols).withKernels(wide);
            QuantMatrix r4 = plain.repackedQ4K();
            String shape = "[" + rows + ", " + cols + "]";
            assertTrue(r4.isRepacked(), shape + " is repacked");
            assertFalse(plain.isRepacked());
            assertSame(r4, r4.repackedQ4K(), "repacking twice is a no-op");

            QuantizedInput x = input(rnd, 1, cols);
            float[] a = new float[rows + 3], b = new float[rows + 3];
            plain.matvec(x, a, 3);
            r4.matvec(x, b, 3);
            assertSameFloats(a, b, "matvec " + shape);

            float[] ra = new float[cols], rb = new float[cols];
            for (int r = 0; r < rows; r += 3) {
                plain.row(r, ra, 0);
                r4.row(r, rb, 0);
                assertSameFloats(ra, rb, "row " + r + " of " + shape);
            }
            // a tile of columns from an unaligned row: the Java path reads rows back in the Q4_K layout
            int nr = Math.min(3, rows - 1), c0 = cols > 256 ? 256 : 0, len = cols - c0;
            float[] ta = new float[nr * len], tb = new float[nr * len];
            plain.decodeTile(1, nr, c0, len, ta, 0, len);
            r4.decodeTile(1, nr, c0, len, tb, 0, len);
            assertSameFloats(ta, tb, "decodeTile " + shape);

            // slices inside and across groups (a slice's first row may sit anywhere in its group)
            for (int[] sl : new int[][]{{0, rows}, {1, rows - 1}, {2, Math.min(5, rows - 2)}, {rows - 3, 3}, {3, 1}}) {
                QuantMatrix ps = plain.rowSlice(sl[0], sl[1]), qs = r4.rowSlice(sl[0], sl[1]);
                float[] ya = new float[sl[1]], yb = new float[sl[1]];
                ps.matvec(x, ya, 0);
                qs.matvec(x, yb, 0);
                assertSameFloats(ya, yb, "matvec of rows [" + sl[0] + ", " + (sl[0] + sl[1]) + ") of " + shape);
                for (int n : new int[]{3, NativeFirstKernels.Q4_K_PACKED_MIN_TOKENS + 1}) {
                    QuantizedInput xs = input(rnd, n, cols);
                    float[] ma = new float[n * sl[1]], mb = new float[n * sl[1]];
                    ps.matmul(xs, ma);
                    qs.matmul(xs, mb);
                    assertSameFloats(ma, mb, "matmul x " + n + " of rows [" + sl[0] + ", " + (sl[0] + sl[1]) + ") of " + shape);
                }
            }
            // the batched forms: per-256 (matvec bits) and, from Q4_K_PACKED_MIN_TOKENS tokens, the packed per-32 GEMM
            for (int n : new int[]{2, 7, NativeFirstKernels.Q4_K_PACKED_MIN_TOKENS, 67}) {
                QuantizedInput xs = input(rnd, n, cols);
                float[] ma = new float[n * rows], mb = new float[n * rows];
                plain.matmul(xs, ma);
                r4.matmul(xs, mb);
                assertSameFloats(ma, mb, "matmul x " + n + " " + shape);
                plain.matmulAsMatvec(xs, ma);
                r4.matmulAsMatvec(xs, mb);
                assertSameFloats(ma, mb, "matmulAsMatvec x " + n + " " + shape);
                float[] tile = new float[n * rows], tile4 = new float[n * rows];
                plain.matmulTile(xs, 1, rows, 0, n, tile, 0, rows);
                r4.matmulTile(xs, 1, rows, 0, n, tile4, 0, rows);
                assertSameFloats(tile, tile4, "matmulTile x " + n + " " + shape);
            }
        }
    }

    /** Kernels without the R4 form (here the AVX2 ones, and the exact float path) read the rows back and agree too. */
    @Test
    void otherKernelsReadTheRepackedRowsBack() {
        Kernels[] forms = NativeKernelsTest.avx2AndAvx512();
        Random rnd = new Random(31);
        int rows = 24, cols = 2048;
        QuantMatrix plain = OtherFormatKernelsTest.randomMatrix(rnd, DType.Q4_K, rows, cols).withKernels(forms[0]);
        QuantMatrix r4 = plain.withKernels(forms[1]).repackedQ4K().withKernels(forms[0]);
        assertTrue(r4.isRepacked());
        QuantizedInput x = input(rnd, 1, cols);
        float[] a = new float[rows], b = new float[rows];
        plain.matvec(x, a, 0);
        r4.matvec(x, b, 0);
        assertSameFloats(a, b, "AVX2 matvec of the repacked rows");
        float[] xf = new float[cols];
        for (int i = 0; i < cols; i++) xf[i] = (float) Math.sin(i);
        plain.matvecExact(xf, 0, a, 0);
        r4.matvecExact(xf, 0, b, 0);
        assertSameFloats(a, b, "exact matvec of the repacked rows");
        assertArrayEquals(plain.toFloatArray(), r4.toFloatArray());
    }

    /** What the layout does not take stays as it is. */
    @Test
    void otherShapesAndTypesAreNotRepacked() {
        NativeKernelsTest.avx2AndAvx512();
        Random rnd = new Random(37);
        QuantMatrix odd = OtherFormatKernelsTest.randomMatrix(rnd, DType.Q4_K, 6, 256);
        assertSame(odd, odd.repackedQ4K(), "6 rows: not whole groups of 4");
        QuantMatrix q5 = OtherFormatKernelsTest.randomMatrix(rnd, DType.Q5_K, 8, 256);
        assertSame(q5, q5.repackedQ4K(), "Q5_K");
    }
}
