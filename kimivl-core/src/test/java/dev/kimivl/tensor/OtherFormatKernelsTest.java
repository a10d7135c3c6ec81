package dev.kimivl.tensor;

import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The native integer kernels of the other ggml formats of published GGUF files (kimivl_kquants.c: Q4_K, Q5_K, Q6_K,
 * Q4_1, Q5_0, Q5_1) against the reference dequantizers (Quant, themselves checked against gguf-py in QuantTest):
 * random blocks, every bit pattern of the quants, small random f16 scales. The k-quants multiply the activation in its
 * per-256 form (QuantizedInput.kValue), the 32-block formats in its per-32 form.
 */
class OtherFormatKernelsTest {
    private static final ValueLayout.OfShort S16 = ValueLayout.JAVA_SHORT_UNALIGNED;

    /** The byte offsets of each format's f16 scale fields within a block. */
    private static int[] scaleOffsets(DType t) {
        return switch (t) {
            case Q4_K, Q5_K, Q4_1, Q5_1 -> new int[]{0, 2};
            case Q5_0 -> new int[]{0};
            case Q6_K -> new int[]{208};
            default -> throw new IllegalArgumentException(t.toString());
        };
    }

    /** rows × cols of random valid blocks of type t (random quants, scale fields small finite f16 values). */
    static QuantMatrix randomMatrix(Random rnd, DType t, int rows, int cols) {
        long bytes = t.bytesFor((long) rows * cols);
        MemorySegment seg = MemorySegment.ofArray(new byte[(int) bytes]);
        byte[] b = new byte[(int) bytes];
        rnd.nextBytes(b);
        MemorySegment.copy(MemorySegment.ofArray(b), 0, seg, 0, bytes);
        for (long o = 0; o < bytes; o += t.blockBytes) {
            for (int so : scaleOffsets(t)) seg.set(S16, o + so, Float.floatToFloat16((rnd.nextFloat() - 0.5f) * 0.02f));
        }
        return new QuantMatrix(seg, t, rows, cols);
    }

    private static final DType[] TYPES = {DType.Q4_K, DType.Q5_K, DType.Q6_K, DType.Q4_1, DType.Q5_0, DType.Q5_1};

    private static int[][] shapes(DType t) {
        return t.blockSize == 256 ? new int[][]{{1, 256}, {37, 2048}, {5, 2816}, {3, 11264}}
                : new int[][]{{1, 32}, {3, 224}, {37, 128}, {64, 1408}, {9, 2048}};
    }

    /**
     * The AVX-512 k-quant rows (Q4_K, Q5_K: two chunks per 512-bit vector, vpmaddubsw + vpdpwssd) give the AVX2 rows'
     * results bit for bit, matvec and batched product (8 tokens per pass and tails of them, tiles of 16 rows), through instances of the
     * kernel seam, and so do Q6_K's matvec (both halves of a super-block per vector, vpmaddubsw + vpdpwssd) and Q5_0's
     * (byte permutes); the other formats pass through unchanged. A Q4_K batch
     * of Q4_K_PACKED_MIN_TOKENS or more takes the packed per-32 product (tested below).
     */
    @Test
    void avx512FormsEqualTheAvx2Forms() {
        Kernels[] forms = NativeKernelsTest.avx2AndAvx512();
        Kernels avx2 = forms[0], wide = forms[1];
        Random rnd = new Random(43);
        for (DType t : TYPES) {
            for (int[] s : shapes(t)) {
                int rows = s[0] + 17, cols = s[1];
                QuantMatrix m = randomMatrix(rnd, t, rows, cols);
                for (int n : new int[]{1, 3, 6, 9}) {
                    float[] x = new float[n * cols];
                    for (int i = 0; i < x.length; i++) x[i] = (float) rnd.nextGaussian() * (i % 97 == 0 ? 20 : 1);
                    QuantizedInput xq = QuantizedInput.ofRows(x, n, cols);
                    float[] a = new float[n * rows], b = new float[n * rows];
                    m.withKernels(avx2).matmul(xq, a);
                    m.withKernels(wide).matmul(xq, b);
                    // a Q4_K prompt product takes the per-32 form there (avx512Q4KPromptProductTakesThePer32Form)
                    boolean per32 = t == DType.Q4_K && n >= NativeFirstKernels.Q4_K_PACKED_MIN_TOKENS;
                    for (int i = 0; i < a.length && !per32; i++) {
                        assertEquals(Float.floatToRawIntBits(a[i]), Float.floatToRawIntBits(b[i]),
                                t + " GEMM [" + rows + ", " + cols + "] x " + n + " at " + i + ": " + b[i] + " vs " + a[i]);
                    }
                    float[] va = new float[rows], vb = new float[rows];
                    QuantizedInput x0 = QuantizedInput.of(x, 0, cols);
                    m.withKernels(avx2).matvec(x0, va, 0);
                    m.withKernels(wide).matvec(x0, vb, 0);
                    for (int r = 0; r < rows; r++) {
                        assertEquals(Float.floatToRawIntBits(va[r]), Float.floatToRawIntBits(vb[r]), t + " matvec [" + rows + ", " + cols + "] row " + r);
                    }
                }
            }
        }
    }

    @Test
    void integerKernelsMatchTheDequantizedWeights() {
        assumeTrue(NativeKernels.AVAILABLE, NativeKernels.STATUS);
        Random rnd = new Random(41);
        for (DType t : TYPES) {
            assertTrue(NativeKernels.hasKernel(t), t + " has a native kernel");
            for (int[] s : shapes(t)) {
                int rows = s[0], cols = s[1];
                QuantMatrix m = randomMatrix(rnd, t, rows, cols);
                assertEquals(QuantMatrix.INT_MATVEC, m.usesIntegerMatvec(), t + " takes the integer kernels unless -Dkimivl.intMatvec=false");
                float[] dense = m.toFloatArray();
                float[] x = QuantTest.random(rnd, cols + 3, 1f);
                for (int i = 0; i < cols; i += 61) x[3 + i] *= 25;           // outliers: blocks of unequal scales
                QuantizedInput xq = QuantizedInput.of(x, 3, cols);
                float[] y = new float[rows + 5];
                m.matvec(xq, y, 5);
                String what = "native " + t + " [" + rows + ", " + cols + "]";
                if (t.blockSize == 256) {       // the k-quants take the activation rounded per 256 (llama.cpp's Q8_K)
                    QuantTest.checkIntegerResult(dense, rows, cols, x, 3, xq::kValue, 256, y, 5, what);
                } else {
                    QuantTest.checkIntegerResult(dense, rows, cols, x, 3, xq, y, 5, what);
                }
                for (int i = 0; i < 5; i++) assertEquals(0f, y[i], what + ": wrote outside its rows");
            }
        }
    }

    /** The per-256 form: values within half a step of x, one scale per 256 (amax / 127), 16-sums of the values. */
    @Test
    void perSuperBlockActivationForm() {
        Random rnd = new Random(53);
        int cols = 768, rows = 2;
        float[] x = QuantTest.random(rnd, rows * cols, 1f);
        x[300] = 40f;                                   // one super-block with a large amax
        QuantizedInput q = QuantizedInput.ofRows(x, rows, cols);
        for (int c = 0; c < rows * cols; c++) {
            int sb = c / 256;
            float amax = 0;
            for (int i = 256 * sb; i < 256 * sb + 256; i++) amax = Math.max(amax, Math.abs(x[i]));
            assertEquals(amax / 127f, q.kd[sb], 0f, "scale of super-block " + sb);
            assertEquals(x[c], q.k8[c] * q.kd[sb], q.kd[sb] / 2 * (1 + 1e-6), "value " + c);
        }
        for (int g = 0; g < rows * cols / 16; g++) {
            int sum = 0;
            for (int i = 0; i < 16; i++) sum += q.k8[16 * g + i];
            assertEquals(sum, q.kbs[g], "16-sum " + g);
        }
        assertEquals(null, QuantizedInput.of(x, 0, 96).k8, "no per-256 form for 96 columns");
    }

    /** Prefill gives, token by token, exactly the decode kernel's result, and writes only y[t·rows + r]. */
    @Test
    void batchedProductEqualsMatvecPerToken() {
        assumeTrue(NativeKernels.AVAILABLE, NativeKernels.STATUS);
        Random rnd = new Random(43);
        for (DType t : TYPES) {
          // 128 columns: the 32-block kernels' two-rows-at-a-time path (attn_k_b); 7 tokens: groups of 4 and a rest
          for (int cols : t.blockSize == 256 ? new int[]{2048} : new int[]{1408, 128}) {
            int rows = 45, n = 7;
            QuantMatrix m = randomMatrix(rnd, t, rows, cols);
            float[] x = QuantTest.random(rnd, n * cols, 1f);
            float[] y = new float[n * rows];
            m.matmul(QuantizedInput.ofRows(x, n, cols), y);
            for (int tok = 0; tok < n; tok++) {
                float[] yt = new float[rows];
                m.matvec(QuantizedInput.of(x, tok * cols, cols), yt, 0);
                for (int r = 0; r < rows; r++) assertEquals(yt[r], y[tok * rows + r], 0f, t + " [" + rows + ", " + cols + "] token " + tok + " row " + r);
                // a single row alone (no partner row) gives the same bits
                float[] one = new float[rows];
                new QuantMatrix(m.segment().asSlice(t.bytesFor((long) (rows - 2) * cols), t.bytesFor(cols)), t, 1, cols)
                        .matvec(QuantizedInput.of(x, tok * cols, cols), one, 0);
                assertEquals(yt[rows - 2], one[0], 0f, t + " [" + rows + ", " + cols + "] row " + (rows - 2) + " alone");
            }
          }
        }
    }

    /**
     * A prompt's Q4_K product in the AVX-512 form (from NativeFirstKernels.Q4_K_PACKED_MIN_TOKENS tokens) takes the packed
     * 32-block GEMM: each token's result is the exact product of the dequantized weights with that token's activation
     * rounded per 32 values (not per 256 as the matvec), within that rounding's bound of W·x, and rows and tokens past
     * the tiles' multiples of 4 are right; {@code matmulAsMatvec} (what model.RowProducts takes) gives the matvec's bits at
     * the same counts. Below the threshold the batch still equals the matvec bit for bit
     * (batchedProductEqualsMatvecPerToken), and the AVX2 form keeps kv_gemm_kq at any count.
     */
    @Test
    void avx512Q4KPromptProductTakesThePer32Form() {
        Kernels wide = NativeKernelsTest.avx2AndAvx512()[1];
        Random rnd = new Random(59);
        for (int[] s : new int[][]{{45, 2048}, {7, 2816}, {9, 256}}) {
            int rows = s[0], cols = s[1];
            QuantMatrix m = randomMatrix(rnd, DType.Q4_K, rows, cols).withKernels(wide);
            float[] dense = m.toFloatArray();
            for (int n : new int[]{NativeFirstKernels.Q4_K_PACKED_MIN_TOKENS, 67}) {
                float[] x = QuantTest.random(rnd, n * cols, 1f);
                for (int i = 0; i < x.length; i += 61) x[i] *= 25;             // outliers: blocks of unequal scales
                float[] y = new float[n * rows];
                m.matmul(QuantizedInput.ofRows(x, n, cols), y);
                float[] exact = new float[n * rows];
                m.matmulAsMatvec(QuantizedInput.ofRows(x, n, cols), exact);
                for (int t = 0; t < n; t++) {
                    QuantizedInput xt = QuantizedInput.of(x, t * cols, cols);
                    String what = "Q4_K [" + rows + ", " + cols + "] x " + n + " token " + t;
                    QuantTest.checkIntegerResult(dense, rows, cols, x, t * cols, xt, y, t * rows, what);
                    // the form a batched decode step takes: the matvec's bits, whatever the batch
                    float[] one = new float[rows];
                    m.matvec(xt, one, 0);
                    for (int r = 0; r < rows; r++) {
                        assertEquals(Float.floatToRawIntBits(one[r]), Float.floatToRawIntBits(exact[t * rows + r]), what + " row " + r + " as the matvec");
                    }
                }
            }
        }
    }

    /** Without the native kernels (and with -Dkimivl.intMatvec=false, as the tests run) these formats take the exact float path. */
    @Test
    void exactPathWithoutTheNativeKernels() {
        Random rnd = new Random(47);
        for (DType t : TYPES) {
            int cols = t.blockSize == 256 ? 512 : 96, rows = 6;
            QuantMatrix m = randomMatrix(rnd, t, rows, cols);
            float[] dense = m.toFloatArray(), x = QuantTest.random(rnd, cols, 1f), y = new float[rows];
            QuantMatrix java = m.withKernels(Kernels.java());
            assertTrue(!java.usesIntegerMatvec(), t + " has no Java integer kernel");
            java.matvec(x, 0, y, 0);
            for (int r = 0; r < rows; r++) {
                double ref = 0, mag = 0;
                for (int c = 0; c < cols; c++) {
                    ref += (double) dense[r * cols + c] * x[c];
                    mag += Math.abs((double) dense[r * cols + c] * x[c]);
                }
                assertEquals(ref, y[r], 1e-5 * mag + 1e-7, t + " row " + r + " exact path");
            }
        }
    }
}
