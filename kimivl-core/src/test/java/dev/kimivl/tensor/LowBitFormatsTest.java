package dev.kimivl.tensor;

import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Issue 15 item 4: the integer kernels of Q2_K, Q3_K, IQ4_NL and IQ4_XS ({@link LowBitKernels}) against their
 * dequantized weights (the dequantizers equal gguf-py's: QuantTest.dequantizersMatchGgufPy), and the quantizers of
 * {@link KQuantizers} (Q2_K, Q3_K, Q4_K, Q6_K, Q5_0) by round trip.
 *
 * <p>Kernel tolerance (QuantTest.checkIntegerResult): each row equals W·x' with the rounded activation x' within
 * 1e-5 of Σ|w·x'| (float summation order only), and W·x within the activation-rounding bound Σ_blocks amax/254·Σ|w|
 * (blocks of 256 for the k-quants, llama.cpp's Q8_K; of 32 for IQ4_*).
 */
class LowBitFormatsTest {
    private static final ValueLayout.OfShort S16 = ValueLayout.JAVA_SHORT_UNALIGNED;
    private static final DType[] KERNEL_TYPES = {DType.Q2_K, DType.Q3_K, DType.IQ4_NL, DType.IQ4_XS};

    private static int[] scaleOffsets(DType t) {
        return switch (t) {
            case Q2_K -> new int[]{80, 82};
            case Q3_K -> new int[]{108};
            case IQ4_NL, IQ4_XS -> new int[]{0};
            default -> throw new IllegalArgumentException(t.toString());
        };
    }

    /** rows × cols of random blocks (every bit pattern of the quants and packed scales; f16 scales small and finite). */
    static QuantMatrix randomMatrix(Random rnd, DType t, int rows, int cols) {
        long bytes = t.bytesFor((long) rows * cols);
        byte[] b = new byte[(int) bytes];
        rnd.nextBytes(b);
        MemorySegment seg = MemorySegment.ofArray(b);
        for (long o = 0; o < bytes; o += t.blockBytes) {
            for (int so : scaleOffsets(t)) seg.set(S16, o + so, Float.floatToFloat16((rnd.nextFloat() - 0.5f) * 0.02f));
        }
        return new QuantMatrix(seg, t, rows, cols);
    }

    @Test
    void integerKernelsMatchTheDequantizedWeights() {
        Random rnd = new Random(43);
        for (DType t : KERNEL_TYPES) {
            int[][] shapes = t.blockSize == 256 ? new int[][]{{1, 256}, {37, 2048}, {5, 2816}, {3, 11264}}
                    : new int[][]{{1, 32}, {3, 224}, {37, 128}, {64, 1408}, {9, 2048}};
            for (int[] s : shapes) {
                int rows = s[0], cols = s[1];
                QuantMatrix m = randomMatrix(rnd, t, rows, cols);
                assertEquals(QuantMatrix.INT_MATVEC, m.usesIntegerMatvec(), t + " takes the integer kernels unless -Dkimivl.intMatvec=false");
                float[] dense = m.toFloatArray();
                float[] x = QuantTest.random(rnd, cols + 3, 1f);
                for (int i = 0; i < cols; i += 61) x[3 + i] *= 25;               // outliers: blocks of unequal scales
                if (cols >= 512) Arrays.fill(x, 3 + 256, 3 + 512, 0f);           // an all-zero activation block
                QuantizedInput xq = QuantizedInput.of(x, 3, cols);
                float[] y = new float[rows + 5];
                m.matvec(xq, y, 5);
                String what = t + " [" + rows + ", " + cols + "]";
                if (t.blockSize == 256 && t != DType.IQ4_XS) QuantTest.checkIntegerResult(dense, rows, cols, x, 3, xq::kValue, 256, y, 5, what);
                else QuantTest.checkIntegerResult(dense, rows, cols, x, 3, xq, y, 5, what);
                for (int i = 0; i < 5; i++) assertEquals(0f, y[i], what + ": wrote outside its rows");
                // a batch of inputs: each token's row equals its own matvec
                int n = 3;
                float[] xs = QuantTest.random(rnd, n * cols, 1f);
                QuantizedInput batch = QuantizedInput.ofRows(xs, n, cols);
                float[] yb = new float[n * rows];
                m.matmul(batch, yb);
                for (int tok = 0; tok < n; tok++) {
                    float[] y1 = new float[rows];
                    m.matvec(QuantizedInput.of(xs, tok * cols, cols), y1, 0);
                    assertArrayEquals(y1, Arrays.copyOfRange(yb, tok * rows, (tok + 1) * rows), 0f, what + " batch token " + tok);
                }
            }
        }
    }

    /** A kernel that read one weight wrong would be caught: flip one quant bit and the W·x' check fails. */
    @Test
    void kernelCheckCatchesOneFlippedBit() {
        Random rnd = new Random(47);
        for (DType t : KERNEL_TYPES) {
            int rows = 4, cols = 512;
            QuantMatrix m = randomMatrix(rnd, t, rows, cols);
            float[] dense = m.toFloatArray();
            // make row 0's scale large so one quant matters, then flip a quant bit of row 0 (not a scale byte)
            long qByte = switch (t) { case Q2_K -> 20; case Q3_K -> 40; case IQ4_NL -> 5; default -> 20; };
            for (int so : scaleOffsets(t)) m.segment().set(S16, so, Float.floatToFloat16(0.5f));
            dense = m.toFloatArray();
            float[] x = QuantTest.random(rnd, cols, 1f);
            for (int i = 0; i < cols; i++) x[i] += Math.copySign(0.5f, x[i]);     // no activation rounds to 0
            QuantizedInput xq = QuantizedInput.of(x, 0, cols);
            float[] y = new float[rows];
            byte orig = m.segment().get(ValueLayout.JAVA_BYTE, qByte);
            m.segment().set(ValueLayout.JAVA_BYTE, qByte, (byte) (orig ^ 0x04));
            m.matvec(xq, y, 0);
            boolean k = t == DType.Q2_K || t == DType.Q3_K;
            float[] d0 = dense;
            assertThrows(AssertionError.class, () -> {
                if (k) QuantTest.checkIntegerResult(d0, rows, cols, x, 0, xq::kValue, 256, y, 0, t + " flipped");
                else QuantTest.checkIntegerResult(d0, rows, cols, x, 0, xq, y, 0, t + " flipped");
            }, t + ": a flipped quant bit must show");
        }
    }

    // ---------------------------------------------------------------- quantizers

    /**
     * Relative RMS error ‖x − deq(q(x))‖ / ‖x‖ on Gaussian rows with outliers: the bound is 1.25× what was measured
     * (Q6_K 0.021, Q5_0 0.054, Q4_K 0.079, Q3_K 0.165, Q2_K 0.311), and a result under a quarter of it is suspicious.
     */
    private static final Object[][] ROUND_TRIP = {
            {DType.Q6_K, 0.027}, {DType.Q5_0, 0.068}, {DType.Q4_K, 0.1}, {DType.Q3_K, 0.2}, {DType.Q2_K, 0.39},
    };

    @Test
    void quantizersRoundTrip() {
        Random rnd = new Random(53);
        int rows = 16, cols = 1024;
        float[] x = QuantTest.random(rnd, rows * cols, 0.02f);
        for (int i = 0; i < x.length; i += 389) x[i] *= 8;                   // outliers
        Arrays.fill(x, 3 * cols, 3 * cols + 256, 0f);                        // an all-zero super-block
        Arrays.fill(x, 5 * cols, 5 * cols + 256, 0.01f);                     // a constant one
        for (Object[] rt : ROUND_TRIP) {
            DType t = (DType) rt[0];
            double bound = (double) rt[1];
            QuantMatrix m = QuantMatrix.quantize(x, rows, cols, t);
            float[] back = m.toFloatArray();
            double err = 0, norm = 0;
            for (int i = 0; i < x.length; i++) {
                assertTrue(Float.isFinite(back[i]), t + " element " + i + " not finite");
                err += (x[i] - back[i]) * (double) (x[i] - back[i]);
                norm += (double) x[i] * x[i];
            }
            double rel = Math.sqrt(err / norm);
            assertTrue(rel < bound, t + ": relative RMS error " + rel + " ≥ " + bound);
            assertTrue(rel > bound / 4, t + ": relative RMS error " + rel + " implausibly small for the format (bound " + bound + ")");
            for (int i = 3 * cols; i < 3 * cols + 256; i++) assertEquals(0f, back[i], 0f, t + " all-zero block");
            for (int i = 5 * cols; i < 5 * cols + 256; i++) assertEquals(0.01f, back[i], 0.01f * bound * 2, t + " constant block");
        }
    }

    /**
     * Every value is coded as the level nearest to it under the scales stored (the quantizer's last pass re-rounds
     * against the coded scales): |x − x̂| ≤ step/2 wherever x lies within the representable range. Checks the
     * packing of values and scales, not just the error.
     */
    @Test
    void quantizersPickTheNearestLevelUnderTheStoredScales() {
        Random rnd = new Random(59);
        int cols = 2048;
        float[] x = QuantTest.random(rnd, cols, 1f);
        for (DType t : new DType[]{DType.Q4_K, DType.Q6_K, DType.Q2_K, DType.Q3_K}) {
            MemorySegment q = Quant.quantize(x, 1, cols, t);
            float[] back = new float[cols];
            Quant.dequantize(t, q, 0, back, 0, cols);
            int clipped = 0;
            for (int i = 0; i < cols; i++) {
                long o = (long) (i / 256) * t.blockBytes;
                int v = i % 256;
                float step, lo, hi;       // the level spacing and the representable range of x[i]'s sub-block
                switch (t) {
                    case Q4_K -> {
                        int[] sm = new int[2];
                        Quant.scaleMinK4(v / 32, q, o + 4, sm);
                        step = Quant.f16(q, o) * sm[0];
                        float mn = Quant.f16(q, o + 2) * sm[1];
                        lo = -mn; hi = 15 * step - mn;
                    }
                    case Q6_K -> {
                        step = Quant.f16(q, o + 208) * q.get(ValueLayout.JAVA_BYTE, o + 192 + v / 16);
                        lo = Math.min(-32 * step, 31 * step); hi = Math.max(-32 * step, 31 * step);
                        step = Math.abs(step);
                    }
                    case Q2_K -> {
                        int sc = q.get(ValueLayout.JAVA_BYTE, o + v / 16) & 0xFF;
                        step = Quant.f16(q, o + 80) * (sc & 0xF);
                        float mn = Quant.f16(q, o + 82) * (sc >> 4);
                        lo = -mn; hi = 3 * step - mn;
                    }
                    default -> {
                        step = Quant.f16(q, o + 108) * Quant.q3kScale(q, o + 96, v / 16);
                        lo = Math.min(-4 * step, 3 * step); hi = Math.max(-4 * step, 3 * step);
                        step = Math.abs(step);
                    }
                }
                if (step == 0) continue;
                if (x[i] < lo || x[i] > hi) { clipped++; continue; }
                assertTrue(Math.abs(x[i] - back[i]) <= step / 2 * (1 + 1e-4) + 1e-6,
                        t + " element " + i + ": " + x[i] + " → " + back[i] + " (step " + step + ")");
            }
            assertTrue(clipped < cols / (t == DType.Q2_K ? 4 : 10), t + ": " + clipped + " of " + cols + " values outside their sub-block's range");
        }
    }
}
