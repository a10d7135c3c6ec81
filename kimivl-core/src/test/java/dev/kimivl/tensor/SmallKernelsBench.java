package dev.kimivl.tensor;

import java.lang.foreign.MemorySegment;
import java.util.SplittableRandom;

/**
 * Benchmark (not a test) of the small Java kernels on one thread, in thread CPU time: SwiGLU's {@link VectorMath#siluMul}
 * (the vector exp) on 11264 floats, the Java latent attention (16 heads × 1024 cached positions, 576/512 wide), and
 * the Java Q8_0/Q4_0 matvecs on [2048×2048]: exact (float activations) and int8. Best µs per call of reps rounds and
 * a checksum. Run with -Dkimivl.native=false; to compare two builds, alternately on both class directories
 * (docs/tuning.md, "One kernel of each kind"):
 * <pre>java --add-modules jdk.incubator.vector -Dkimivl.threads=1 -Dkimivl.native=false -cp test-classes:classes dev.kimivl.tensor.SmallKernelsBench 6 label</pre>
 */
public final class SmallKernelsBench {
    static long cpu() { return java.lang.management.ManagementFactory.getThreadMXBean().getCurrentThreadCpuTime(); }
    public static void main(String[] a) {
        int reps = Integer.parseInt(a[0]);
        SplittableRandom r = new SplittableRandom(5);
        int n = 11264; float[] g = new float[n], u = new float[n], g0 = new float[n];
        for (int i = 0; i < n; i++) { g0[i] = (float) (r.nextDouble() * 8 - 4); u[i] = (float) r.nextDouble(); }
        int W = 576, R = 512, H = 16, S = 1024;
        float[] q = new float[H * W], lat = new float[S * W], m = new float[H], l = new float[H], o = new float[H * R];
        for (int i = 0; i < q.length; i++) q[i] = (float) (r.nextDouble() - 0.5);
        for (int i = 0; i < lat.length; i++) lat[i] = (float) (r.nextDouble() - 0.5);
        Kernels jk = Kernels.java();
        int rows = 2048, cols = 2048;
        float[] w = new float[rows * cols]; for (int i = 0; i < w.length; i++) w[i] = (float) (r.nextDouble() - 0.5) * 0.1f;
        QuantMatrix q8 = new QuantMatrix(Quant.quantize(w, rows, cols, DType.Q8_0), DType.Q8_0, rows, cols).withKernels(jk);
        QuantMatrix q4 = new QuantMatrix(Quant.quantize(w, rows, cols, DType.Q4_0), DType.Q4_0, rows, cols).withKernels(jk);
        float[] x = new float[cols]; for (int i = 0; i < cols; i++) x[i] = (float) (r.nextDouble() - 0.5);
        float[] y = new float[rows];
        String[] names = {"siluMul 11264 (us)", "java latent attn 16x1024 (us)", "Q8_0 exact matvec (us)", "Q4_0 exact matvec (us)", "Q4_0 int8 matvec (us)"};
        double[] best = new double[5]; java.util.Arrays.fill(best, 1e18);
        double h = 0;
        for (int rep = 0; rep < reps; rep++) {
            for (int k = 0; k < 5; k++) {
                int inner = switch (k) { case 0 -> 2000; case 1 -> 20; default -> 50; };
                long t0 = cpu();
                for (int it = 0; it < inner; it++) {
                    switch (k) {
                        case 0 -> { System.arraycopy(g0, 0, g, 0, n); VectorMath.siluMul(g, u, n); h += g[it % n]; }
                        case 1 -> { java.util.Arrays.fill(m, Float.NEGATIVE_INFINITY); java.util.Arrays.fill(l, 0); java.util.Arrays.fill(o, 0);
                                    jk.latentAttention(q, 0, lat, W, R, H, 0, S, 0.05f, m, l, o); h += o[it]; }
                        case 2 -> { q8.matvecExact(x, 0, y, 0); h += y[it]; }
                        case 3 -> { q4.matvecExact(x, 0, y, 0); h += y[it]; }
                        default -> { q4.matvec(x, 0, y, 0); h += y[it]; }
                    }
                }
                best[k] = Math.min(best[k], (cpu() - t0) / 1e3 / inner);
            }
        }
        StringBuilder sb = new StringBuilder(a.length > 1 ? a[1] : "");
        for (int k = 0; k < 5; k++) sb.append(String.format(" | %s %.2f", names[k], best[k]));
        System.out.println(sb + " | checksum " + String.format("%.6e", h));
    }
}
