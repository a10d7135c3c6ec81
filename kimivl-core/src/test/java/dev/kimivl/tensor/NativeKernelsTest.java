package dev.kimivl.tensor;

import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assumptions.assumeTrue;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The native kernels (NativeKernels, AVX2 and AVX-512 forms) against the Java integer kernels and against the exact product with the
 * rounded activations. Where the build compiled the library (gcc present: the pom sets kimivl.requireNative=true)
 * it must load; on a machine without gcc the Java kernels run and these tests have nothing native to check.
 */
class NativeKernelsTest {

    @Test
    void nativeKernelsAreLoadedOnThisMachine() {
        assumeTrue(Boolean.getBoolean("kimivl.requireNative"), "this build has no native kernels (no gcc)");
        assertTrue(NativeKernels.AVAILABLE, "native kernels expected on linux x86-64 with gcc: " + NativeKernels.STATUS);
    }

    /**
     * Every instruction-set form of the Q4_0 and Q8_0 GEMMs (AVX-VNNI: Q8_0's vpdpbusd on w + 128, corrected by the
     * activations' block sums; AVX-512: 512-bit vpdpbusd over pairs of groups, 4 rows × 1-4 tokens) equals the AVX2
     * vpmaddubsw form bit for bit: widths with a partial last group of 8 blocks and an odd number of groups (1152:
     * MoonViT's, 5 groups; 32: one block), odd rows and token counts (every 1-4 token tail), activations at ±127
     * against weights of both signs, and Q8_0 weight bytes of −128 (which Q8_0 files may hold though llama.cpp's
     * rounding never writes them: the sign trick and the flip must both get 128·x right). Runs the forms this CPU has.
     */
    @Test
    void everyIsaFormOfTheGemmEqualsTheAvx2Form() {
        assumeTrue(NativeKernels.AVAILABLE, NativeKernels.STATUS);
        assumeTrue(NativeKernels.BEST != NativeKernels.Isa.AVX2, "this CPU runs only the AVX2 forms");
        Random rnd = new Random(29);
        int[][] shapes = {{7, 32, 3}, {13, 1152, 9}, {32, 4608, 4}, {5, 288, 1}, {6, 2048, 7}, {9, 1408, 6}, {4, 11264, 2}};
        int compared = 0;
        for (int[] s : shapes) {
            int rows = s[0], cols = s[1], n = s[2];
            float[] w = QuantTest.random(rnd, rows * cols, 0.1f), x = QuantTest.random(rnd, n * cols, 1f);
            for (int i = 0; i < x.length; i += 37) x[i] = (i & 1) == 0 ? 40f : -40f;   // blocks whose amax hits ±127
            NativeKernels.PackedActivations xp = QuantizedInput.ofRows(x, n, cols).nativePacked();
            for (DType type : new DType[]{DType.Q4_0, DType.Q8_0}) {
                java.lang.foreign.MemorySegment q = Quant.quantize(w, rows, cols, type);
                long rowBytes = type.bytesFor(cols);
                if (type == DType.Q8_0) {
                    for (int r = 0; r < rows; r += 3) q.set(java.lang.foreign.ValueLayout.JAVA_BYTE, r * rowBytes + 2 + (r % 32), (byte) -128);
                }
                float[] ref = new float[n * rows];
                NativeKernels.gemmTile(type, q, rowBytes, 0, rows, xp, 0, n, ref, 0, rows, NativeKernels.Isa.AVX2);
                for (NativeKernels.Isa isa : NativeKernels.Isa.values()) {
                    if (isa == NativeKernels.Isa.AVX2 || !isa.supported()) continue;
                    float[] a = new float[n * rows];
                    NativeKernels.gemmTile(type, q, rowBytes, 0, rows, xp, 0, n, a, 0, rows, isa);
                    for (int i = 0; i < a.length; i++) {
                        assertEquals(Float.floatToRawIntBits(ref[i]), Float.floatToRawIntBits(a[i]), type + " " + isa + " [" + rows + ", " + cols
                                + "] x " + n + " at token " + i / rows + " row " + i % rows + ": " + a[i] + " vs " + ref[i]);
                    }
                    compared++;
                }
            }
        }
        assertTrue(compared >= shapes.length, "compared " + compared + " forms");
    }

    /**
     * The native kernels with -Dkimivl.nativeIsa's avx2 and avx512 settings (instances: no global flipped), for the
     * tests comparing the two; skipped where the library or AVX-512 is missing.
     */
    static Kernels[] avx2AndAvx512() {
        assumeTrue(NativeKernels.AVAILABLE, NativeKernels.STATUS);
        assumeTrue(NativeKernels.Isa.AVX512.supported(), "this CPU has no AVX-512 kernels");
        return new Kernels[]{Kernels.preferred(KernelSettings.SYSTEM.withNativeIsa("avx2")),
                Kernels.preferred(KernelSettings.SYSTEM.withNativeIsa("avx512"))};
    }

    /**
     * The Q4_0 and Q8_0 matvecs of decode in every form equal the AVX2 form bit for bit, through the kernel seam
     * (instances built with -Dkimivl.nativeIsa's setting, no global flipped): whole groups of 8 blocks, tails of 1-7
     * blocks, rows of 4 blocks (which the AVX-512 forms hand to the AVX2 kernels' row pairs), the model's widths, and
     * activations with outliers so that blocks reach ±127.
     */
    @Test
    void everyIsaFormOfTheQ4AndQ8MatvecsEqualsTheAvx2Form() {
        Kernels[] forms = avx2AndAvx512();
        Kernels avx2 = forms[0], wide = forms[1];
        Random rnd = new Random(31);
        int[][] shapes = {{1, 32}, {3, 224}, {37, 128}, {17, 256}, {5, 288}, {64, 1408}, {40, 2048}, {9, 11264}, {6, 2016}};
        for (DType type : new DType[]{DType.Q4_0, DType.Q8_0}) {
            for (int[] s : shapes) {
                int rows = s[0], cols = s[1];
                float[] w = QuantTest.random(rnd, rows * cols, 0.1f), x = QuantTest.random(rnd, cols, 1f);
                for (int i = 0; i < cols; i += 53) x[i] *= 30;
                QuantizedInput xq = QuantizedInput.of(x, 0, cols);
                QuantMatrix m = QuantMatrix.quantize(w, rows, cols, type);
                float[] a = new float[rows + 2], b = new float[rows + 2];
                m.withKernels(avx2).matvec(xq, a, 2);
                m.withKernels(wide).matvec(xq, b, 2);
                for (int r = 0; r < rows; r++) {
                    assertEquals(Float.floatToRawIntBits(a[2 + r]), Float.floatToRawIntBits(b[2 + r]),
                            type + " [" + rows + ", " + cols + "] row " + r + ": " + b[2 + r] + " vs " + a[2 + r]);
                }
            }
        }
    }

    /** -Dkimivl.nativeIsa names a form; one this CPU lacks, or an unknown name, is refused with the reason. */
    @Test
    void nativeIsaSettingIsResolvedOrRefused() {
        assumeTrue(NativeKernels.AVAILABLE, NativeKernels.STATUS);
        assertEquals(NativeKernels.BEST, NativeKernels.Isa.resolve("auto"));
        assertEquals(NativeKernels.Isa.AVX2, NativeKernels.Isa.resolve("avx2"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> NativeKernels.Isa.resolve("sse2"));
        assertTrue(e.getMessage().contains("kimivl.nativeIsa"), e.getMessage());
        assertThrows(IllegalArgumentException.class,
                () -> KernelSettings.fromProperties(p -> p.equals("kimivl.nativeIsa") ? "neon" : null));
        Kernels k = Kernels.preferred(KernelSettings.SYSTEM.withNativeIsa("avx2"));
        assertTrue(k.describe().contains("running the avx2 forms"), k.describe());
    }

    /** Shapes cover the 8-block main loop, tails of 1-7 blocks, single rows and the model's widths. */
    @Test
    void nativeMatchesJavaIntegerKernels() {
        assumeTrue(NativeKernels.AVAILABLE, NativeKernels.STATUS);
        Random rnd = new Random(23);
        int[][] shapes = {{1, 32}, {3, 224}, {37, 128}, {17, 256}, {64, 1408}, {40, 2048}, {9, 11264}, {130, 288}};
        for (int[] s : shapes) {
            int rows = s[0], cols = s[1];
            float[] w = QuantTest.random(rnd, rows * cols, 0.1f);
            float[] x = QuantTest.random(rnd, cols + 3, 1f);
            for (int i = 0; i < cols; i += 61) x[3 + i] *= 25;
            QuantizedInput xq = QuantizedInput.of(x, 3, cols);
            for (DType t : new DType[]{DType.Q4_0, DType.Q8_0}) {
                QuantMatrix m = QuantMatrix.quantize(w, rows, cols, t);
                float[] dense = m.toFloatArray();
                float[] yNative = new float[rows + 5], yJava = new float[rows + 5];
                m.matvec(xq, yNative, 5);
                m.withKernels(Kernels.java()).matvec(xq, yJava, 5);
                String what = "native " + t + " [" + rows + ", " + cols + "]";
                QuantTest.checkIntegerResult(dense, rows, cols, x, 3, xq, yNative, 5, what);
                for (int r = 0; r < rows; r++) {
                    double mag = 0;
                    for (int c = 0; c < cols; c++) mag += Math.abs(dense[r * cols + c] * xq.value(c));
                    assertEquals(yJava[5 + r], yNative[5 + r], 2e-6 * mag + 1e-7, what + " row " + r + " vs the Java kernel");
                }
                for (int i = 0; i < 5; i++) assertEquals(0f, yNative[i], what + ": wrote outside its rows");
            }
        }
    }

    /** Q8_0 weights may hold −128 (other quantizers, hand-made files): the sign trick must still be exact. */
    @Test
    void q8WeightOfMinus128() {
        assumeTrue(NativeKernels.AVAILABLE, NativeKernels.STATUS);
        int cols = 256;
        java.lang.foreign.MemorySegment seg = java.lang.foreign.Arena.ofAuto().allocate(34L * (cols / 32));
        float[] x = new float[cols];
        double expect = 0;
        QuantizedInput xq;
        for (int c = 0; c < cols; c++) x[c] = (c % 7 == 0 ? -1f : 1f) * (1 + c % 5);
        xq = QuantizedInput.of(x, 0, cols);
        for (int b = 0; b < cols / 32; b++) {
            seg.set(java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED, 34L * b, Float.floatToFloat16(0.5f));
            for (int j = 0; j < 32; j++) {
                byte q = (byte) (j % 3 == 0 ? -128 : j * 4 - 60);
                seg.set(java.lang.foreign.ValueLayout.JAVA_BYTE, 34L * b + 2 + j, q);
                expect += 0.5 * q * xq.value(32 * b + j);
            }
        }
        float[] y = new float[1];
        new QuantMatrix(seg, DType.Q8_0, 1, cols).matvec(xq, y, 0);
        assertEquals(expect, y[0], 1e-4 * Math.abs(expect));
    }

    /**
     * The prefill GEMM gives, token by token, exactly the matvec kernel's result (same integer block sums and float
     * order), so prompt and decode agree bit for bit; and it writes only y[t·rows + r].
     */
    @Test
    void gemmEqualsMatvecPerToken() {
        assumeTrue(NativeKernels.AVAILABLE, NativeKernels.STATUS);
        boolean intWas = QuantMatrix.INT_MATVEC;
        Random rnd = new Random(29);
        int[][] shapes = {{5, 32, 2}, {19, 224, 3}, {7, 128, 3}, {64, 1408, 7}, {33, 2048, 48}, {3, 11264, 4}};
        for (int[] s : shapes) {
            int rows = s[0], cols = s[1], n = s[2];
            float[] w = QuantTest.random(rnd, rows * cols, 0.1f), x = QuantTest.random(rnd, n * cols, 1f);
            for (DType t : new DType[]{DType.Q4_0, DType.Q8_0}) {
                QuantMatrix m = QuantMatrix.quantize(w, rows, cols, t);
                QuantizedInput batch = QuantizedInput.ofRows(x, n, cols);
                float[] y = new float[n * rows];
                m.matmul(batch, y);
                float[] yJava = new float[n * rows];
                m.withKernels(Kernels.java()).matmul(batch, yJava);     // the Java fallback: the integer matvec per token
                for (int i = 0; i < y.length; i++) {
                    double mag = 0;
                    int tok = i / rows, r = i % rows;
                    for (int c = 0; c < cols; c++) mag += Math.abs(w[r * cols + c] * x[tok * cols + c]);
                    assertEquals(yJava[i], y[i], 2e-6 * mag + 1e-7, "Java fallback of matmul, " + t + " element " + i);
                }
                for (int tok = 0; tok < n; tok++) {
                    float[] yt = new float[rows];
                    m.matvec(QuantizedInput.of(x, tok * cols, cols), yt, 0);
                    for (int r = 0; r < rows; r++) {
                        assertEquals(yt[r], y[tok * rows + r], 0f, t + " [" + rows + ", " + cols + "] token " + tok + " row " + r);
                    }
                }
            }
        }
        assertEquals(intWas, QuantMatrix.INT_MATVEC);
    }
}
