package dev.kimivl.tensor;

import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

class QuantTest {
    static byte[] resource(String name) { return dev.kimivl.testing.TestData.quantResource(name); }

    static float[] floats(byte[] b) { return dev.kimivl.testing.TestData.floats(b); }

    static float[] random(Random rnd, int n, float scale) {
        float[] f = new float[n];
        for (int i = 0; i < n; i++) f[i] = (float) rnd.nextGaussian() * scale;
        return f;
    }

    @Test
    void q8_0HandComputedBlock() {
        // x[j] = j - 16 for j < 32: amax 16, d = 16/127, id = 127/16 = 7.9375 exactly; q = roundf((j-16)·7.9375)
        float[] x = new float[32];
        for (int j = 0; j < 32; j++) x[j] = j - 16;
        MemorySegment q = Quant.quantize(x, 1, 32, DType.Q8_0);
        assertEquals(34, q.byteSize());
        assertEquals(Float.floatToFloat16(16f / 127f), q.get(Quant.S16LE, 0));
        assertEquals((short) 0x3008, q.get(Quant.S16LE, 0)); // fp16(0.125984...) = 0x3008 (0.12598)
        byte[] expect = new byte[32];
        // (j-16)·7.9375: -127, -119.0625→-119, -111.125→-111, ..., 0, 7.9375→8, 15.875→16, ...
        int[] hand = {-127, -119, -111, -103, -95, -87, -79, -71, -64, -56, -48, -40, -32, -24, -16, -8,
                0, 8, 16, 24, 32, 40, 48, 56, 64, 71, 79, 87, 95, 103, 111, 119};
        for (int j = 0; j < 32; j++) expect[j] = (byte) hand[j];
        assertArrayEquals(expect, q.asSlice(2, 32).toArray(ValueLayout.JAVA_BYTE));
    }

    @Test
    void q4_0HandComputedBlock() {
        // x[j] = j - 16: max-magnitude element is -16 (first), d = -16/-8 = 2, id = 0.5;
        // q = min(15, trunc((j-16)·0.5 + 8.5)): j=0 → 0, j=1 → 0 (0.5+8.5−8=1.0? (1-16)·0.5+8.5 = 1.0 → 1)
        float[] x = new float[32];
        for (int j = 0; j < 32; j++) x[j] = j - 16;
        MemorySegment q = Quant.quantize(x, 1, 32, DType.Q4_0);
        assertEquals(18, q.byteSize());
        assertEquals(Float.floatToFloat16(2f), q.get(Quant.S16LE, 0));
        for (int j = 0; j < 16; j++) {
            int lo = Math.min(15, (int) ((j - 16) * 0.5f + 8.5f));
            int hi = Math.min(15, (int) ((j + 16 - 16) * 0.5f + 8.5f));
            int b = q.get(ValueLayout.JAVA_BYTE, 2 + j) & 0xFF;
            assertEquals(lo, b & 0xF, "low nibble " + j);
            assertEquals(hi, b >> 4, "high nibble " + j);
        }
        // explicit values: j=0 → 0, j=15 → trunc(-0.5+8.5)=8, j=16 → 8, j=31 → trunc(7.5+8.5)=16 → 15
        assertEquals(0x80, q.get(ValueLayout.JAVA_BYTE, 2) & 0xFF);
        assertEquals(0xF8, q.get(ValueLayout.JAVA_BYTE, 2 + 15) & 0xFF);
    }

    @Test
    void quantizersMatchGgufPy() {
        float[] x = floats(resource("x_3x96.f32"));
        assertArrayEquals(resource("x_3x96.q8_0"), Quant.quantize(x, 3, 96, DType.Q8_0).toArray(ValueLayout.JAVA_BYTE));
        assertArrayEquals(resource("x_3x96.q4_0"), Quant.quantize(x, 3, 96, DType.Q4_0).toArray(ValueLayout.JAVA_BYTE));
        // Q5_0: what convert --type q4_k_m writes where a row is not a whole number of 256-blocks (make_quant_ref_more.py)
        assertArrayEquals(resource("x_3x96.q5_0"), Quant.quantize(x, 3, 96, DType.Q5_0).toArray(ValueLayout.JAVA_BYTE));
    }

    /**
     * gguf-py's dequantization of random blocks (make_quant_ref.py: random bytes, small finite f16 scales) for every
     * read-only block type; name, type, rows, cols.
     */
    static final Object[][] DEQUANT_REFS = {
            {"k_2x512.q4_k", DType.Q4_K, 2, 512}, {"k_2x512.q6_k", DType.Q6_K, 2, 512}, {"k_2x512.q5_k", DType.Q5_K, 2, 512},
            {"b_2x64.q4_1", DType.Q4_1, 2, 64}, {"b_2x64.q5_0", DType.Q5_0, 2, 64}, {"b_2x64.q5_1", DType.Q5_1, 2, 64},
            // issue 15 item 4 (make_quant_ref_more.py)
            {"k_2x512.q2_k", DType.Q2_K, 2, 512}, {"k_2x512.q3_k", DType.Q3_K, 2, 512},
            {"k_2x512.iq4_xs", DType.IQ4_XS, 2, 512}, {"b_2x64.iq4_nl", DType.IQ4_NL, 2, 64},
    };

    @Test
    void dequantizersMatchGgufPy() {
        for (Object[] ref : DEQUANT_REFS) {
            String name = (String) ref[0];
            DType type = (DType) ref[1];
            int rows = (int) ref[2], cols = (int) ref[3];
            byte[] bytes = resource(name);
            float[] expect = floats(resource(name + ".f32"));
            assertEquals(type.bytesFor((long) rows * cols), bytes.length, name);
            assertEquals(rows * cols, expect.length, name);
            MemorySegment data = MemorySegment.ofArray(bytes);
            // the scalar dequantizer over the whole matrix and row by row from a nonzero offset (the row's byte start)
            float[] got = new float[rows * cols + 3];
            Quant.dequantize(type, data, 0, got, 3, rows * cols);
            assertArrayEquals(expect, Arrays.copyOfRange(got, 3, got.length), 0f, name + " Quant.dequantize");
            long rowBytes = type.bytesFor(cols);
            for (int r = 0; r < rows; r++) {
                float[] row = new float[cols];
                Quant.dequantize(type, data, r * rowBytes, row, 0, cols);
                assertArrayEquals(Arrays.copyOfRange(expect, r * cols, (r + 1) * cols), row, 0f, name + " Quant.dequantize row " + r);
            }
            // the matrix as the model uses it: row(), toFloatArray(), a tile starting mid-row, and matvec
            QuantMatrix m = new QuantMatrix(data, type, rows, cols);
            for (int r = 0; r < rows; r++) {
                float[] row = new float[cols + 5];
                m.row(r, row, 5);
                assertArrayEquals(Arrays.copyOfRange(expect, r * cols, (r + 1) * cols), Arrays.copyOfRange(row, 5, row.length), 0f, name + " row " + r);
            }
            assertArrayEquals(expect, m.toFloatArray(), 0f, name + " toFloatArray");
            int half = cols / 2;   // a whole number of blocks for every type here
            float[] tile = new float[rows * half];
            m.decodeTile(0, rows, half, half, tile, 0, half);
            for (int r = 0; r < rows; r++) {
                assertArrayEquals(Arrays.copyOfRange(expect, r * cols + half, (r + 1) * cols), Arrays.copyOfRange(tile, r * half, (r + 1) * half), 0f, name + " tile row " + r);
            }
            float[] x = random(new Random(3), cols, 1f);
            float[] y = new float[rows];
            m.matvec(x, 0, y, 0);
            for (int r = 0; r < rows; r++) assertEquals(refDot(expect, r * cols, x, 0, cols), y[r], 1e-4 * (1 + Math.abs(y[r])), name + " matvec row " + r);
        }
    }

    /**
     * One Q5_0 block by hand, with fifth bits set in each byte of qh (little-endian word 0x80010202: bits 1, 9, 16
     * and 31), so a wrong byte order or a wrong pairing of qh bits with the high nibbles shows. d = 0.5;
     * qs[j] = j | (15 − j) << 4, so element j < 16 has low bits j and element 16 + j has low bits 15 − j.
     */
    @Test
    void q5_0HandComputedBlock() {
        byte[] b = new byte[22];
        ByteBuffer bb = ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN);
        bb.putShort(0, Float.floatToFloat16(0.5f));
        bb.putInt(2, 0x80010202);
        for (int j = 0; j < 16; j++) b[6 + j] = (byte) (j | (15 - j) << 4);
        float[] y = new float[32];
        Quant.dequantize(DType.Q5_0, MemorySegment.ofArray(b), 0, y, 0, 32);
        assertEquals((0 - 16) * 0.5f, y[0]);      // q = 0
        assertEquals((17 - 16) * 0.5f, y[1]);     // q = 1 | 16 (bit 1, qh[0])
        assertEquals((8 - 16) * 0.5f, y[8]);      // q = 8
        assertEquals((25 - 16) * 0.5f, y[9]);     // q = 9 | 16 (bit 9, qh[1])
        assertEquals((15 - 16) * 0.5f, y[15]);    // q = 15
        assertEquals((31 - 16) * 0.5f, y[16]);    // high nibble of qs[0] = 15 | 16 (bit 16, qh[2])
        assertEquals((14 - 16) * 0.5f, y[17]);    // high nibble of qs[1] = 14
        assertEquals((16 - 16) * 0.5f, y[31]);    // high nibble of qs[15] = 0 | 16 (bit 31, the sign bit of the word)
        for (int j = 0; j < 32; j++) {
            int low = j < 16 ? j : 31 - j, bit = (0x80010202 >>> j) & 1;
            assertEquals(((low | bit << 4) - 16) * 0.5f, y[j], "element " + j);
        }
        // the same bits as Q5_1 (d = 0.5, m = -8: unsigned q) give the same values
        byte[] b1 = new byte[24];
        ByteBuffer.wrap(b1).order(ByteOrder.LITTLE_ENDIAN).putShort(0, Float.floatToFloat16(0.5f)).putShort(2, Float.floatToFloat16(-8f));
        System.arraycopy(b, 2, b1, 4, 20);
        float[] y1 = new float[32];
        Quant.dequantize(DType.Q5_1, MemorySegment.ofArray(b1), 0, y1, 0, 32);
        assertArrayEquals(y, y1, 0f);
    }

    @Test
    void quantizeDequantizeErrorBounds() {
        Random rnd = new Random(7);
        float[] x = random(rnd, 64 * 256, 1f);
        for (DType t : new DType[]{DType.Q8_0, DType.Q4_0}) {
            QuantMatrix m = QuantMatrix.quantize(x, 64, 256, t);
            float[] back = m.toFloatArray();
            float[] scalar = new float[back.length];
            for (int r = 0; r < 64; r++) Quant.dequantize(t, m.segment(), r * t.bytesFor(256), scalar, r * 256, 256);
            assertArrayEquals(scalar, back, 0f, "vector and scalar dequantizers agree");
            for (int b = 0; b < x.length / 32; b++) {
                float amax = 0;
                for (int j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b * 32 + j]));
                // Q8_0: |err| ≤ d/2 (+ fp16 rounding of d: ≤ 2^-11 relative on 127·d); Q4_0: ≤ d/2 with d = amax/8,
                // except the clipped +8 level: ≤ d
                double bound = t == DType.Q8_0 ? amax / 127 * 0.5 + amax * 1e-3 : amax / 8 * 1.0 + amax * 1e-3;
                for (int j = 0; j < 32; j++) {
                    int i = b * 32 + j;
                    assertTrue(Math.abs(x[i] - back[i]) <= bound, t + " element " + i + ": " + x[i] + " → " + back[i]);
                }
            }
        }
    }

    static double refDot(float[] w, int wo, float[] x, int xo, int n) {
        double s = 0;
        for (int i = 0; i < n; i++) s += (double) w[wo + i] * x[xo + i];
        return s;
    }

    static void checkMatrix(Matrix m, float[] dense, Random rnd) {
        int rows = m.rows(), cols = m.cols();
        float[] x = random(rnd, cols + 3, 1f);
        float[] y = new float[rows + 5];
        exactMatvec(m, x, 3, y, 5);
        for (int r = 0; r < rows; r++) {
            double ref = refDot(dense, r * cols, x, 3, cols);
            double mag = 0;
            for (int c = 0; c < cols; c++) mag += Math.abs(dense[r * cols + c] * x[3 + c]);
            assertEquals(ref, y[5 + r], 1e-5 * mag + 1e-6, m.dtype() + " matvec row " + r + " of [" + rows + ", " + cols + "]");
        }
        // n ≥ Gemm.PACKED_MIN_N takes PackedGemm: 9 (one 16-panel, 7 zero inputs), 17 and 33 (a last panel of 1
        // input: the 8-wide kernel), 40 (a last panel of exactly 8), 48 (whole panels)
        for (int n : new int[]{2, 5, 8, 9, 17, 33, 40, 48}) {
            float[] xs = random(rnd, n * cols, 1f);
            float[] ys = new float[n * rows];
            m.matmul(xs, ys, n);
            for (int t = 0; t < n; t++) {
                for (int r = 0; r < rows; r++) {
                    double ref = refDot(dense, r * cols, xs, t * cols, cols);
                    double mag = 0;
                    for (int c = 0; c < cols; c++) mag += Math.abs(dense[r * cols + c] * xs[t * cols + c]);
                    assertEquals(ref, ys[t * rows + r], 1e-5 * mag + 1e-6, m.dtype() + " matmul n=" + n + " t=" + t + " r=" + r);
                }
            }
        }
    }

    /** A Matrix that is neither QuantMatrix nor SegmentMatrix: PackedGemm's whole-row decode path. */
    static Matrix wrapped(Matrix m) {
        return new Matrix() {
            @Override public int rows() { return m.rows(); }
            @Override public int cols() { return m.cols(); }
            @Override public DType dtype() { return m.dtype(); }
            @Override public void matvec(float[] x, int xo, float[] y, int yo) { m.matvec(x, xo, y, yo); }
            @Override public void row(int r, float[] dst, int off) { m.row(r, dst, off); }
        };
    }

    @Test
    void packedGemmOtherMatrixKinds() {
        Random rnd = new Random(17);
        int rows = 67, cols = 320, n = 21;
        QuantMatrix q = QuantMatrix.quantize(random(rnd, rows * cols, 0.1f), rows, cols, DType.Q4_0);
        float[] x = random(rnd, n * cols, 1f), y1 = new float[n * rows], y2 = new float[n * rows];
        q.matmul(x, y1, n);
        wrapped(q).matmul(x, y2, n);
        assertArrayEquals(y1, y2, 0f, "same decoded weights, same kernel: identical results");
        float[] y3 = new float[n * rows];
        Gemm.matmulRows(q, x, y3, n);
        assertArrayEquals(y1, y3, 1e-4f, "packed vs row-decoding path");
    }

    /**
     * The AVX-512 kernel (MicroKernel.rows12x16, 12 weight rows a call) gives the 8-lane kernels' floats bit for bit:
     * row counts that leave a lone 6-row group (67 rows: 24 + 24 + 19) and none (48), several k-blocks (cols 600 with
     * k-blocks of 256, the second and third added to C), panels full, short (n = 21: 16 + 5) and of ≤ 8 inputs (n = 3).
     * On a machine without AVX-512 the 512-bit species is emulated: slow, but the same floats.
     */
    @Test
    void wideKernelMatchesNarrowBitForBit() {
        Random rnd = new Random(29);
        for (int rows : new int[]{67, 48}) {
            for (int n : new int[]{3, 21, 48}) {
                int cols = 600;
                SegmentMatrix m = SegmentMatrix.ofFloats(random(rnd, rows * cols, 0.1f), rows, cols);
                float[] x = random(rnd, n * cols, 1f), narrow = new float[n * rows], wide = new float[n * rows];
                PackedGemm.run(m, x, false, n, narrow, false, false, false, false);      // the Java tiles of both widths
                PackedGemm.run(m, x, false, n, wide, false, true, false, false);
                assertArrayEquals(narrow, wide, 0f, "rows " + rows + ", n " + n);
            }
        }
    }

    /** An input large enough to be packed over the pool (n·cols ≥ 2^18), 5 panels, the last of 6 inputs. */
    @Test
    void packedGemmLargeInput() {
        Random rnd = new Random(19);
        int rows = 13, cols = 4096, n = 70;
        float[] w = random(rnd, rows * cols, 0.1f);
        QuantMatrix q = QuantMatrix.quantize(w, rows, cols, DType.Q8_0);
        float[] dense = q.toFloatArray();
        float[] x = random(rnd, n * cols, 1f), y = new float[n * rows];
        q.matmul(x, y, n);
        for (int t = 0; t < n; t++) {
            for (int r = 0; r < rows; r++) {
                double ref = refDot(dense, r * cols, x, t * cols, cols), mag = 0;
                for (int c = 0; c < cols; c++) mag += Math.abs(dense[r * cols + c] * x[t * cols + c]);
                assertEquals(ref, y[t * rows + r], 1e-5 * mag + 1e-6, "t=" + t + " r=" + r);
            }
        }
    }

    /** decodeTile (PackedGemm's opt-in tile decoding) against the whole-row decoder, every dtype. */
    @Test
    void decodeTileMatchesRows() {
        Random rnd = new Random(23);
        int rows = 9, cols = 320;
        float[] w = random(rnd, rows * cols, 0.1f);
        for (DType t : new DType[]{DType.Q8_0, DType.Q4_0, DType.F32, DType.BF16, DType.F16}) {
            float[] dense, tile = new float[5 * 100];
            if (t.isQuantized()) {
                QuantMatrix q = QuantMatrix.quantize(w, rows, cols, t);
                dense = q.toFloatArray();
                q.decodeTile(2, 5, 64, 96, tile, 3, 100);
            } else {
                SegmentMatrix m = new SegmentMatrix(Quant.quantize(w, rows, cols, t), t, rows, cols);
                dense = m.toFloatArray();
                m.decodeTile(2, 5, 64, 96, tile, 3, 100);
            }
            for (int i = 0; i < 5; i++) {
                for (int c = 0; c < 96; c++) assertEquals(dense[(2 + i) * cols + 64 + c], tile[3 + i * 100 + c], 0f, t + " row " + i + " col " + c);
            }
        }
    }

    /** The float-activation kernels (the integer ones round the activations: see integerKernels*). */
    static void exactMatvec(Matrix m, float[] x, int xo, float[] y, int yo) {
        if (m instanceof QuantMatrix q) q.matvecExact(x, xo, y, yo);
        else m.matvec(x, xo, y, yo);
    }

    /**
     * Checks an integer-kernel result y[yo + r] for the quantized input xq of x[xo..]: (1) it is the exact product of W
     * with the rounded activations xq.value(c) (float summation error only, 1e-5 of Σ|w·x'|), and (2) it is within the
     * activation-rounding bound of the exact product with x: each x[c] moved by at most half its block's step
     * d = amax/127, so |Δy_r| ≤ Σ_b d_b/2 · Σ_{c∈b} |W[r, c]| (plus the same summation slack). Returns the worst
     * |y − exact| / bound seen (how much of the bound the rounding used).
     */
    static double checkIntegerResult(float[] dense, int rows, int cols, float[] x, int xo, QuantizedInput xq, float[] y, int yo, String what) {
        return checkIntegerResult(dense, rows, cols, x, xo, xq::value, 32, y, yo, what);
    }

    /** As above for an activation rounded in blocks of {@code block} values (256: the k-quants' form, xq::kValue). */
    static double checkIntegerResult(float[] dense, int rows, int cols, float[] x, int xo, java.util.function.IntToDoubleFunction xv, int block,
                                     float[] y, int yo, String what) {
        double used = 0;
        for (int r = 0; r < rows; r++) {
            double ref = 0, refq = 0, magq = 0, mag = 0, bound = 0;
            for (int b = 0; b < cols / block; b++) {
                double amax = 0, wsum = 0;
                for (int j = 0; j < block; j++) {
                    int c = block * b + j;
                    double w = dense[r * cols + c];
                    amax = Math.max(amax, Math.abs(x[xo + c]));
                    wsum += Math.abs(w);
                    ref += w * x[xo + c];
                    refq += w * xv.applyAsDouble(c);
                    mag += Math.abs(w * x[xo + c]);
                    magq += Math.abs(w * xv.applyAsDouble(c));
                }
                bound += amax / 127 / 2 * wsum * (1 + 1e-5);
            }
            float got = y[yo + r];
            assertEquals(refq, got, 1e-5 * magq + 1e-6, what + " row " + r + ": W·x' with the rounded activations");
            assertEquals(ref, got, bound + 1e-5 * mag + 1e-6, what + " row " + r + ": within the activation-rounding bound of W·x");
            if (bound > 0) used = Math.max(used, Math.abs(got - ref) / bound);
        }
        return used;
    }

    @Test
    void integerKernelsWithinActivationRoundingBound() {
        Random rnd = new Random(17);
        int[][] shapes = {{1, 32}, {3, 64}, {67, 96}, {130, 320}, {257, 2048}, {5, 1408}, {2, 11264}};
        double used = 0;
        for (int[] s : shapes) {
            int rows = s[0], cols = s[1];
            float[] w = random(rnd, rows * cols, 0.1f);
            float[] x = random(rnd, cols + 7, 1f);
            for (int i = 0; i < cols; i += 97) x[7 + i] *= 30;                 // outliers set a block's step
            if (cols >= 64) Arrays.fill(x, 7 + 32, 7 + 64, 0f);              // an all-zero block (scale 0)
            QuantizedInput xq = QuantizedInput.of(x, 7, cols);
            for (DType t : new DType[]{DType.Q8_0, DType.Q4_0}) {
                QuantMatrix m = QuantMatrix.quantize(w, rows, cols, t);
                float[] dense = m.toFloatArray();
                float[] y = new float[rows + 2];
                m.matvec(xq, y, 2);
                used = Math.max(used, checkIntegerResult(dense, rows, cols, x, 7, xq, y, 2, t + " [" + rows + ", " + cols + "]"));
                float[] yd = new float[rows + 2];
                m.matvec(x, 7, yd, 2);
                if (QuantMatrix.INT_MATVEC) assertArrayEquals(y, yd, 0f, "matvec(float[]) is the integer kernel with -Dkimivl.intMatvec=true");
            }
        }
        // the bound is not vacuous: the rounding uses a visible share of it
        assertTrue(used > 0.05 && used <= 1, "worst |y - exact| / bound = " + used);
    }

    /** A single activation off by a few steps must be caught by the W·x' check (the tolerance is not loose). */
    @Test
    void integerCheckCatchesAOneElementError() {
        Random rnd = new Random(19);
        int rows = 16, cols = 256;
        float[] w = random(rnd, rows * cols, 0.1f), x = random(rnd, cols, 1f);
        QuantMatrix m = QuantMatrix.quantize(w, rows, cols, DType.Q8_0);
        QuantizedInput xq = QuantizedInput.of(x, 0, cols);
        float[] bad = x.clone();
        bad[40] = x[40] + 0.05f;                                          // ~ 2 steps of its block for N(0,1) data
        float[] y = new float[rows];
        m.matvec(QuantizedInput.of(bad, 0, cols), y, 0);
        assertThrows(AssertionError.class, () -> checkIntegerResult(m.toFloatArray(), rows, cols, x, 0, xq, y, 0, "perturbed"));
    }

    /** The per-thread cache of the last quantized input must notice an input changed in place. */
    @Test
    void quantizedInputCacheSeesInPlaceChanges() {
        Random rnd = new Random(23);
        int cols = 512;
        float[] x = random(rnd, cols + 4, 1f);
        QuantizedInput a = QuantizedInput.cached(x, 4, cols);
        assertSame(a, QuantizedInput.cached(x.clone(), 4, cols), "equal floats reuse the quantized input");
        float before = a.value(300);
        x[4 + 300] = -x[4 + 300] + 1;
        QuantizedInput b = QuantizedInput.cached(x, 4, cols);
        QuantizedInput fresh = QuantizedInput.of(x, 4, cols);
        for (int c = 0; c < cols; c++) assertEquals(fresh.value(c), b.value(c), 0f);
        assertNotEquals(before, b.value(300));
    }

    @Test
    void kernelsMatchDequantizedF32() {
        Random rnd = new Random(11);
        int[][] shapes = {{1, 32}, {3, 64}, {67, 96}, {130, 320}, {257, 2048}, {5, 1408}};
        for (int[] s : shapes) {
            float[] w = random(rnd, s[0] * s[1], 0.1f);
            for (DType t : new DType[]{DType.Q8_0, DType.Q4_0}) {
                QuantMatrix m = QuantMatrix.quantize(w, s[0], s[1], t);
                checkMatrix(m, m.toFloatArray(), rnd);
            }
        }
    }

    @Test
    void denseKernelsMatchF32() {
        Random rnd = new Random(13);
        int[][] shapes = {{1, 16}, {3, 37}, {67, 96}, {130, 333}, {257, 2048}};
        for (int[] s : shapes) {
            float[] w = random(rnd, s[0] * s[1], 0.1f);
            for (DType t : new DType[]{DType.F32, DType.BF16, DType.F16}) {
                MemorySegment seg = Quant.quantize(w, s[0], s[1], t);
                SegmentMatrix m = new SegmentMatrix(seg, t, s[0], s[1]);
                float[] dense = new float[w.length];
                Quant.dequantize(t, seg, 0, dense, 0, w.length);
                assertArrayEquals(dense, m.toFloatArray(), 0f);
                checkMatrix(m, dense, rnd);
            }
        }
    }

    /** The 8- and 16-lane kernels are different code: run both widths (a width the CPU lacks is slow but exact). */
    @Test
    void kernelsAtBothVectorWidths() throws Exception {
        for (int bits : new int[]{256, 512}) {
            Process p = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                    "-Dkimivl.vectorBits=" + bits, "-Dkimivl.intMatvec=false",      // the float kernels; integer ones via QuantizedInput
                    "--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED",
                    "-cp", System.getProperty("java.class.path"), VectorWidthCheck.class.getName())
                    .redirectErrorStream(true).start();
            String out = new String(p.getInputStream().readAllBytes());
            assertEquals(0, p.waitFor(), out);
            assertTrue(out.contains("all kernels agree"), out);
        }
    }

    @Test
    void rejectsBadShapes() {
        assertThrows(IllegalArgumentException.class, () -> new QuantMatrix(MemorySegment.ofArray(new byte[34]), DType.Q8_0, 1, 16));
        assertThrows(IllegalArgumentException.class, () -> new QuantMatrix(MemorySegment.ofArray(new byte[33]), DType.Q8_0, 1, 32));
    }
}
