package dev.kimivl.tensor;

import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/** The kernel seam: the Java and native {@link Kernels} against each other, and {@link KernelSettings}' parsing. */
class KernelsTest {

    /** Java and native integer products of Q8_0 and Q4_0 agree (matvec and the batched product), on one shared matrix. */
    @Test
    void javaAndNativeQ8Q4ProductsAgree() {
        assumeTrue(NativeKernels.AVAILABLE, NativeKernels.STATUS);
        Kernels nat = Kernels.nativeKernels(), java = Kernels.java();
        Random rnd = new Random(71);
        int[][] shapes = {{7, 64, 3}, {40, 1408, 5}, {33, 2048, 9}};
        for (int[] s : shapes) {
            int rows = s[0], cols = s[1], n = s[2];
            float[] w = QuantTest.random(rnd, rows * cols, 0.1f), x = QuantTest.random(rnd, n * cols, 1f);
            for (DType t : new DType[]{DType.Q8_0, DType.Q4_0}) {
                QuantMatrix m = QuantMatrix.quantize(w, rows, cols, t);
                QuantMatrix mn = m.withKernels(nat), mj = m.withKernels(java);
                assertSame(m.segment(), mj.segment(), "withKernels shares the weights");
                QuantizedInput batch = QuantizedInput.ofRows(x, n, cols);
                float[] yn = new float[n * rows], yj = new float[n * rows];
                mn.matmul(batch, yn);
                mj.matmul(batch, yj);
                float[] vn = new float[rows], vj = new float[rows];
                QuantizedInput one = QuantizedInput.of(x, 0, cols);
                mn.matvec(one, vn, 0);
                mj.matvec(one, vj, 0);
                for (int i = 0; i < yn.length; i++) {
                    int tok = i / rows, r = i % rows;
                    double mag = 0;
                    for (int c = 0; c < cols; c++) mag += Math.abs(w[r * cols + c] * x[tok * cols + c]);
                    String what = t + " [" + rows + ", " + cols + "] token " + tok + " row " + r;
                    assertEquals(yj[i], yn[i], 2e-6 * mag + 1e-7, what + ": native vs Java batched product");
                    if (tok == 0) assertEquals(vj[r], vn[r], 2e-6 * mag + 1e-7, what + ": native vs Java matvec");
                }
            }
        }
    }

    /**
     * A tile of the batched product (MoonViT's integer linear layers): native and Java agree, each value equals the
     * matvec of its token, it lands at yo + (t − t0)·ldy + (r − r0), and nothing outside the tile is written. Bounds
     * not on the kernel's 4-row / 2-token steps, and a batch quantized and packed over the pool (64 K values and up).
     */
    @Test
    void tilesOfTheBatchedProductAgreeAndStayInPlace() {
        assumeTrue(NativeKernels.AVAILABLE, NativeKernels.STATUS);
        Kernels nat = Kernels.nativeKernels(), java = Kernels.java();
        Random rnd = new Random(72);
        int rows = 70, cols = 1152, n = 90;
        float[] w = QuantTest.random(rnd, rows * cols, 0.1f), x = QuantTest.random(rnd, n * cols, 1f);
        QuantizedInput batch = QuantizedInput.ofRows(x, n, cols);
        assertEquals(n, batch.rows());
        int r0 = 5, r1 = 66, t0 = 3, t1 = 88, yo = 7, ldy = 64;
        for (DType t : new DType[]{DType.Q8_0, DType.Q4_0}) {
            QuantMatrix m = QuantMatrix.quantize(w, rows, cols, t);
            assertTrue(nat.nativeTiles(t, cols) && !java.nativeTiles(t, cols));
            m.withKernels(nat).prepareTiles(batch);
            float[] yn = new float[yo + (t1 - t0) * ldy + 5], yj = new float[yn.length];
            Arrays.fill(yn, -99f);
            Arrays.fill(yj, -99f);
            m.withKernels(nat).matmulTile(batch, r0, r1, t0, t1, yn, yo, ldy);
            m.withKernels(java).matmulTile(batch, r0, r1, t0, t1, yj, yo, ldy);
            float[] all = new float[n * rows];
            m.withKernels(nat).matmul(batch, all);
            for (int i = 0; i < yn.length; i++) {
                int rel = i - yo, tok = t0 + Math.floorDiv(rel, ldy), r = r0 + Math.floorMod(rel, ldy);
                boolean inTile = rel >= 0 && tok < t1 && r < r1;
                if (!inTile) {
                    assertEquals(-99f, yn[i], t + ": native tile wrote outside itself at " + i);
                    assertEquals(-99f, yj[i], t + ": Java tile wrote outside itself at " + i);
                    continue;
                }
                double mag = 0;
                for (int c = 0; c < cols; c++) mag += Math.abs(w[r * cols + c] * x[tok * cols + c]);
                String what = t + " token " + tok + " row " + r;
                assertEquals(all[tok * rows + r], yn[i], what + ": the native tile equals the batched product bit for bit");
                assertEquals(yj[i], yn[i], 2e-6 * mag + 1e-7, what + ": native vs Java tile");
            }
        }
    }

    /**
     * A batch quantized into a reused one (MoonViT's layers) gives what a new one gives, its native packed form included
     * (packed again after the reuse, not the previous values); another shape gets a new batch.
     */
    @Test
    void reusedBatchEqualsANewOne() {
        assumeTrue(NativeKernels.AVAILABLE, NativeKernels.STATUS);
        Random rnd = new Random(73);
        int rows = 9, cols = 288, n = 70;
        float[] w = QuantTest.random(rnd, rows * cols, 0.1f), x1 = QuantTest.random(rnd, n * cols, 1f), x2 = QuantTest.random(rnd, n * cols, 3f);
        QuantMatrix m = QuantMatrix.quantize(w, rows, cols, DType.Q8_0).withKernels(Kernels.nativeKernels());
        QuantizedInput a = QuantizedInput.ofRows(x1, n, cols);
        m.prepareTiles(a);
        QuantizedInput b = QuantizedInput.ofRows(x2, n, cols, a);
        assertSame(a, b, "same shape: the arrays are reused");
        float[] reused = new float[n * rows], fresh = new float[n * rows];
        m.matmulTile(b, 0, rows, 0, n, reused, 0, rows);
        m.matmulTile(QuantizedInput.ofRows(x2, n, cols), 0, rows, 0, n, fresh, 0, rows);
        assertArrayEquals(fresh, reused, "a reused batch multiplies as a new one");
        assertNotSame(a, QuantizedInput.ofRows(x2, n - 1, cols, a), "another shape: a new batch");
    }

    /** Which kernels each set runs for each format (docs/tuning.md and QuantMatrix's javadoc say the same). */
    @Test
    void eachSetSaysWhichProductsAreInteger() {
        KernelSettings on = KernelSettings.SYSTEM.withIntMatvec(true);
        Kernels java = Kernels.java().with(on);
        for (DType t : new DType[]{DType.Q8_0, DType.Q4_0, DType.Q2_K, DType.Q3_K, DType.IQ4_NL, DType.IQ4_XS}) {
            assertTrue(java.integerMatvec(t, 256), t + ": Java integer matvec");
            assertFalse(java.integerMatmul(t, 256), t + ": no Java batched integer kernel");
        }
        for (DType t : new DType[]{DType.Q4_K, DType.Q5_K, DType.Q6_K, DType.Q4_1, DType.Q5_0, DType.Q5_1}) {
            assertFalse(java.integerMatvec(t, 256), t + ": decoded to floats by the Java set");
        }
        assertFalse(Kernels.java().with(on.withIntMatvec(false)).integerMatvec(DType.Q8_0, 256), "intMatvec=false: exact kernels");
        assertFalse(java.isNative());
        assertFalse(java.hasCausalAttention(64, 64), "the Java set has no causal prompt kernel (MlaAttention's loop runs)");
        if (NativeKernels.AVAILABLE) {
            Kernels nat = Kernels.nativeKernels().with(on);
            assertTrue(nat.isNative());
            for (DType t : new DType[]{DType.Q8_0, DType.Q4_0, DType.Q4_K, DType.Q5_K, DType.Q6_K, DType.Q4_1, DType.Q5_0, DType.Q5_1}) {
                assertTrue(nat.integerMatvec(t, 2048) && nat.integerMatmul(t, 2048), t + ": native integer kernels");
            }
            assertFalse(nat.integerMatmul(DType.Q8_0, NativeKernels.MAX_COLS + 32), "rows wider than the native kernels take: per-token matvec");
            assertTrue(Kernels.preferred(on).isNative() == on.nativeKernels());
        } else {
            assertThrows(IllegalStateException.class, Kernels::nativeKernels);
        }
        KernelSettings off = KernelSettings.fromProperties(Map.of("kimivl.native", "false")::get);
        assertFalse(Kernels.preferred(off).isNative(), "-Dkimivl.native=false picks the Java set");
    }

    /** The defaults, as docs/tuning.md lists them. */
    @Test
    void defaultsWithoutProperties() {
        KernelSettings d = KernelSettings.fromProperties(name -> null);
        assertEquals(Runtime.getRuntime().availableProcessors(), d.threads());
        assertEquals(200, d.spinMicros());
        assertTrue(d.intMatvec() && d.nativeKernels() && !d.gemmTileDecode());
        assertEquals(512 << 10, d.gemmTileBytes());
        assertEquals(9, d.gemmPackedMinN());
        assertEquals(256, d.gemmKc());
        assertEquals(24, d.gemmMcRounded());
        assertEquals(352, d.blockRows());
        assertEquals(512, d.mlaSplit());
        assertEquals(4, d.mlaPrefillTokens());
        assertEquals(KernelSettings.MlaPromptForm.AUTO, d.mlaPromptForm());
        assertEquals(2048, d.prefillChunk());
        assertEquals("auto", d.kvCache());
        assertEquals(256, d.vitKc());
        assertEquals(96, d.vitMcRounded());
        assertEquals(1024, d.vitNc());
        assertEquals(256, d.vitPvChunk());
    }

    /** Values are parsed as before (case-insensitive enums and cache types, multiples of 6 rounded down). */
    @Test
    void parsesValues() {
        KernelSettings s = KernelSettings.fromProperties(Map.of("kimivl.mla.promptForm", "absorbed", "kimivl.kvCache", "F16",
                "kimivl.gemmMc", "31", "kimivl.vit.mc", "100", "kimivl.intMatvec", "FALSE", "kimivl.threads", " 3 ")::get);
        assertEquals(KernelSettings.MlaPromptForm.ABSORBED, s.mlaPromptForm());
        assertEquals("f16", s.kvCache());
        assertEquals(30, s.gemmMcRounded());
        assertEquals(96, s.vitMcRounded());
        assertFalse(s.intMatvec());
        assertEquals(3, s.threads());
    }

    /** A bad value is an error that names the property and says what is allowed. */
    @Test
    void badValuesNameTheProperty() {
        String[][] bad = {
                {"kimivl.threads", "two"}, {"kimivl.threads", "0"}, {"kimivl.vectorBits", "128"}, {"kimivl.intMatvec", "yes"},
                {"kimivl.mla.promptForm", "fast"}, {"kimivl.kvCache", "q8"}, {"kimivl.mla.prefillTokens", "65"},
                {"kimivl.vit.nc", "-1"}, {"kimivl.native", "maybe"}, {"kimivl.gemmKc", "1e3"}, {"kimivl.nativeIsa", "sse2"},
        };
        for (String[] b : bad) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> KernelSettings.fromProperties(Map.of(b[0], b[1])::get), b[0] + "=" + b[1]);
            assertTrue(e.getMessage().startsWith("-D" + b[0] + "="), e.getMessage());
            assertTrue(e.getMessage().contains("expected"), e.getMessage());
        }
    }

    /** Every property KernelSettings reads has its row in docs/tuning.md. */
    @Test
    void everyPropertyIsDocumented() throws Exception {
        List<String> names = new ArrayList<>();
        KernelSettings.fromProperties(name -> { names.add(name); return null; });
        assertEquals(23, names.size(), names.toString());
        Path doc = Path.of("..", "docs", "tuning.md");
        assertTrue(Files.exists(doc), "docs/tuning.md (run from the kimivl-core module directory)");
        String text = Files.readString(doc);
        for (String n : names) assertTrue(text.contains("`" + n + "`"), n + " is not in docs/tuning.md");
    }
}
