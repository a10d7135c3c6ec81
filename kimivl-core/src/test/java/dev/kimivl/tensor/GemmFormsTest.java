package dev.kimivl.tensor;

import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

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

    /**
     * The native tiles (kimivl_sgemm.c) give the Java tiles' floats bit for bit, in both widths, over every layout
     * PackedGemm.run takes and its lower form: rows leaving a lone 6-row group (67) or none (48), several k-blocks
     * (600 columns: the second and third added to the tiles), panels full, short and of ≤ 8 inputs. Skipped (and said
     * so) where the native library is not loaded.
     */
    @Test
    void nativeTilesGiveTheJavaTilesFloats() {
        assumeTrue(NativeKernels.sgemmTiles(false), "native float GEMM tiles not loaded here: " + NativeKernels.STATUS);
        Random rnd = new Random(43);
        int checked = 0;
        for (boolean wide : new boolean[]{false, true}) {
            if (!NativeKernels.sgemmTiles(wide)) continue;
            for (int[] s : new int[][]{{67, 600, 21}, {48, 600, 3}, {67, 256, 67}, {30, 40, 48}}) {
                int rows = s[0], cols = s[1], n = s[2];
                SegmentMatrix m = SegmentMatrix.ofFloats(random(rnd, rows * cols), rows, cols);
                for (boolean xColumns : new boolean[]{false, true}) {
                    for (boolean yByRow : new boolean[]{false, true}) {
                        for (boolean lower : new boolean[]{false, true}) {
                            float[] x = random(rnd, n * cols), java = new float[n * rows], nat = new float[n * rows];
                            PackedGemm.run(m, x, xColumns, n, java, yByRow, wide, lower, false);
                            PackedGemm.run(m, x, xColumns, n, nat, yByRow, wide, lower, true);
                            String what = (wide ? "512-bit" : "8-lane") + " rows " + rows + " cols " + cols + " n " + n
                                    + (xColumns ? " x columns" : "") + (yByRow ? " y by row" : "") + (lower ? " lower" : "");
                            if (!lower) {
                                assertArrayEquals(java, nat, 0f, what);
                            } else {
                                // only the lower triangle (input t ≤ row r) is specified in the lower form
                                for (int t = 0; t < n; t++) {
                                    for (int r = t; r < rows; r++) {
                                        int i = yByRow ? r * n + t : t * rows + r;
                                        assertEquals(Float.floatToIntBits(java[i]), Float.floatToIntBits(nat[i]), what + " at row " + r + ", input " + t);
                                    }
                                }
                            }
                            checked++;
                        }
                    }
                }
            }
        }
        assertTrue(checked >= 32, checked + " forms checked");
    }

    /**
     * Gemm.gram (X·Xᵀ from the lower triangle's tiles, mirrored) gives the full packed product's floats, symmetric to
     * the bit: r = 67 (a lone 6-row group, panels crossing the diagonal inside a 12-row tile), 128 and 30, k over one
     * and several k-blocks.
     */
    @Test
    void gramIsTheFullProductsFloats() {
        Random rnd = new Random(47);
        for (int[] s : new int[][]{{67, 600}, {128, 256}, {30, 40}, {16, 16}}) {
            int r = s[0], k = s[1];
            float[] x = random(rnd, r * k), full = new float[r * r], gram = new float[r * r];
            SegmentMatrix.ofFloats(x, r, k).matmul(x, full, r);
            Gemm.gram(x, r, k, gram);
            assertArrayEquals(full, gram, 0f, "r " + r + " k " + k);
            for (int i = 0; i < r; i++) for (int j = 0; j < i; j++) assertEquals(gram[i * r + j], gram[j * r + i], 0f);
        }
    }

    /** x rounded to bf16 and back (KvCache.toBf16: nearest, ties to even). */
    private static double bf16(float x) {
        return VectorMath.bf16ToFloat(dev.kimivl.model.KvCache.toBf16(x));
    }

    /**
     * bf16 products (Gemm.Products.BF16, the bf16 C tiles): every element is the exact product sum of the bf16-rounded
     * operands up to float32 accumulation (within 1e-4 relative to the sum of |terms|), in every layout PackedGemm.run
     * takes, the lower form, odd column counts (a half pair at the end), several k-blocks and short panels; and it is
     * not the f32 product (a run that silently stayed in f32 fails). Unbound threads keep the f32 floats. Skipped (and
     * said so) on CPUs without AVX512-BF16.
     */
    @Test
    void bf16ProductsAreTheRoundedOperandsSums() {
        assumeTrue(Gemm.bf16Available(), "no bf16 GEMM tiles on this CPU: " + NativeKernels.STATUS);
        Random rnd = new Random(53);
        for (int[] s : new int[][]{{67, 600, 21}, {48, 255, 3}, {67, 257, 67}, {30, 41, 48}, {96, 513, 200}}) {
            int rows = s[0], cols = s[1], n = s[2];
            float[] w = random(rnd, rows * cols);
            SegmentMatrix m = SegmentMatrix.ofFloats(w, rows, cols);
            for (boolean xColumns : new boolean[]{false, true}) {
                for (boolean yByRow : new boolean[]{false, true}) {
                    for (boolean lower : new boolean[]{false, true}) {
                        float[] x = random(rnd, n * cols), got = new float[n * rows], f32 = new float[n * rows];
                        PackedGemm.run(m, x, xColumns, n, got, yByRow, true, lower, true, true);
                        PackedGemm.run(m, x, xColumns, n, f32, yByRow, true, lower, true, false);
                        String what = "rows " + rows + " cols " + cols + " n " + n + (xColumns ? " x columns" : "") + (yByRow ? " y by row" : "") + (lower ? " lower" : "");
                        double maxFromF32 = 0;
                        for (int t = 0; t < n; t++) {
                            for (int r = lower ? t : 0; r < rows; r++) {
                                double want = 0, scale = 0;
                                for (int c = 0; c < cols; c++) {
                                    double xv = xColumns ? x[c * n + t] : x[t * cols + c];
                                    double term = bf16(w[r * cols + c]) * bf16((float) xv);
                                    want += term;
                                    scale += Math.abs(term);
                                }
                                int i = yByRow ? r * n + t : t * rows + r;
                                assertEquals(want, got[i], 1e-4 * scale, what + " at row " + r + ", input " + t);
                                maxFromF32 = Math.max(maxFromF32, Math.abs(got[i] - f32[i]));
                            }
                        }
                        assertTrue(maxFromF32 > 1e-3, what + ": the bf16 products equal the f32 ones (max difference " + maxFromF32 + ")");
                    }
                }
            }
        }
        // the scoped choice: bf16 inside withProducts, f32 outside it (inference never binds it)
        int m = 40, k = 300, n = 24;
        float[] a = random(rnd, m * k), b = random(rnd, k * n), f32 = new float[m * n], inside = new float[m * n], after = new float[m * n];
        Gemm.matmulNN(a, m, k, b, n, f32);
        Gemm.withProducts(Gemm.Products.BF16, () -> { Gemm.matmulNN(a, m, k, b, n, inside); return null; });
        Gemm.matmulNN(a, m, k, b, n, after);
        assertArrayEquals(f32, after, 0f, "f32 again outside the binding");
        double d = 0;
        for (int i = 0; i < f32.length; i++) d = Math.max(d, Math.abs(f32[i] - inside[i]));
        assertTrue(d > 1e-3 && d < 0.2, "bf16 inside the binding: max difference from f32 " + d);
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
