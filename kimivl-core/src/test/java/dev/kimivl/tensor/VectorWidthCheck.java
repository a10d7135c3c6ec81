package dev.kimivl.tensor;

/** Run in a child JVM by QuantTest with -Dkimivl.vectorBits=256|512: every kernel against the dequantized f32 product. */
public class VectorWidthCheck {
    public static void main(String[] a) {
        java.util.Random rnd = new java.util.Random(5);
        int[][] shapes = {{3, 32}, {67, 96}, {130, 320}, {33, 2048}};
        double worst = 0;
        for (int[] s : shapes) for (DType t : new DType[]{DType.Q8_0, DType.Q4_0, DType.BF16, DType.F32}) {
            int rows = s[0], cols = s[1];
            float[] w = new float[rows * cols]; for (int i = 0; i < w.length; i++) w[i] = (float) rnd.nextGaussian();
            var seg = Quant.quantize(w, rows, cols, t);
            Matrix m = t.isQuantized() ? new QuantMatrix(seg, t, rows, cols) : new SegmentMatrix(seg, t, rows, cols);
            float[] dense = new float[rows * cols]; Quant.dequantize(t, seg, 0, dense, 0, dense.length);
            float[] row = m.toFloatArray();
            for (int i = 0; i < dense.length; i++) if (row[i] != dense[i]) throw new AssertionError(t + " row() " + i);
            int n = 5; float[] x = new float[n * cols]; for (int i = 0; i < x.length; i++) x[i] = (float) rnd.nextGaussian();
            float[] y1 = new float[rows], yn = new float[n * rows];
            QuantTest.exactMatvec(m, x, 0, y1, 0); m.matmul(x, yn, n);
            if (m instanceof QuantMatrix q && (t == DType.Q8_0 || t == DType.Q4_0)) {   // the integer kernels (fixed 256-bit)
                float[] yi = new float[rows];
                QuantizedInput xq = QuantizedInput.of(x, 0, cols);
                q.matvec(xq, yi, 0);
                QuantTest.checkIntegerResult(dense, rows, cols, x, 0, xq, yi, 0, t + " integer");
            }
            for (int tt = 0; tt < n; tt++) for (int r = 0; r < rows; r++) {
                double ref = 0, mag = 0; for (int c = 0; c < cols; c++) { ref += (double) dense[r * cols + c] * x[tt * cols + c]; mag += Math.abs(dense[r * cols + c] * x[tt * cols + c]); }
                double e = Math.abs((tt == 0 ? y1[r] : yn[tt * rows + r]) - ref) / (mag + 1e-6);
                double e2 = Math.abs(yn[tt * rows + r] - ref) / (mag + 1e-6);
                worst = Math.max(worst, Math.max(e, e2));
                if (e > 1e-5 || e2 > 1e-5) throw new AssertionError(t + " " + rows + "x" + cols + " t=" + tt + " r=" + r + " err " + e + " " + e2);
            }
        }
        // the vectorized decoders of the k-quant files' formats (KQuantRows) against the scalar reference, bit for bit
        for (DType t : new DType[]{DType.Q4_K, DType.Q6_K, DType.Q5_0}) {
            int rows = 3, cols = t.blockSize == 256 ? 512 : 96;
            QuantMatrix m = OtherFormatKernelsTest.randomMatrix(rnd, t, rows, cols);
            float[] dense = new float[rows * cols];
            Quant.dequantize(t, m.segment(), 0, dense, 0, dense.length);
            float[] row = m.toFloatArray();
            for (int i = 0; i < dense.length; i++) if (Float.compare(row[i], dense[i]) != 0) throw new AssertionError(t + " row() " + i);
        }
        System.out.println("vector bits " + System.getProperty("kimivl.vectorBits") + ": all kernels agree, worst relative error " + worst);
    }
}
