package dev.kimivl.vision;

import dev.kimivl.tensor.DType;
import dev.kimivl.tensor.Kernels;
import dev.kimivl.tensor.QuantMatrix;

import java.util.SplittableRandom;

/**
 * Benchmark (not a test): MoonViT's Q8_0 linear layers at full width, one thread, thread CPU time (so another job on
 * the machine changes the numbers less), the integer path (native int8 GEMM tiles on the Q8_0 blocks) against the
 * float path (dequantize + pack to f32 panels, then the 6×16 f32 GEMM: what every layer ran before), alternating
 * within each repetition. Prints GFLOP per CPU-second, best and median of reps − 1 (the first is warm-up), and the
 * int/float ratio of the medians.
 * <pre>
 * java --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED -Dkimivl.threads=1 \
 *      -cp kimivl-core/target-vit/classes:kimivl-core/target-vit/test-classes dev.kimivl.vision.VisionLinearBench [patches=1024] [reps=5]
 * </pre>
 */
public final class VisionLinearBench {
    static long cpu() { return java.lang.management.ManagementFactory.getThreadMXBean().getCurrentThreadCpuTime(); }

    public static void main(String[] args) {
        int L = args.length > 0 ? Integer.parseInt(args[0]) : 1024;
        int reps = args.length > 1 ? Integer.parseInt(args[1]) : 5;
        // name, outputs N, inputs K, activation, residual add, rows (patches, or merged tokens for the projector)
        Object[][] layers = {
                {"wqkv", 3456, 1152, PackedLinear.Act.NONE, false, L},
                {"wo", 1152, 1152, PackedLinear.Act.NONE, true, L},
                {"fc0+gelu", 4304, 1152, PackedLinear.Act.GELU_TANH, false, L},
                {"proj.linear_1+gelu", 4608, 4608, PackedLinear.Act.GELU_ERF, false, L / 4},
                {"proj.linear_2", 2048, 4608, PackedLinear.Act.NONE, false, L / 4}};
        SplittableRandom rnd = new SplittableRandom(3);
        double sumInt = 0, sumFloat = 0;
        for (Object[] l : layers) {
            int n = (int) l[1], k = (int) l[2], m = (int) l[5];
            PackedLinear.Act act = (PackedLinear.Act) l[3];
            boolean add = (boolean) l[4];
            float[] w = new float[n * k], b = new float[n], x = new float[m * k];
            for (int i = 0; i < w.length; i++) w[i] = (float) (rnd.nextDouble() - 0.5) * 0.06f;
            for (int i = 0; i < n; i++) b[i] = (float) (rnd.nextDouble() - 0.5) * 0.1f;
            for (int i = 0; i < x.length; i++) x[i] = (float) rnd.nextGaussian();
            QuantMatrix q = QuantMatrix.quantize(w, n, k, DType.Q8_0);
            PackedLinear il = new PackedLinear(q, b), fl = new PackedLinear(q.withKernels(Kernels.java()), b);
            if (!il.isInteger()) throw new IllegalStateException("no integer path here: " + Kernels.DEFAULT.describe());
            float[] buf = new float[fl.packedSize()], yi = new float[m * n], yf = new float[m * n];
            double flop = 2.0 * m * n * k;
            double[] gi = new double[reps - 1], gf = new double[reps - 1];
            for (int r = 0; r < reps; r++) {
                boolean intFirst = r % 2 == 0;
                for (int pass = 0; pass < 2; pass++) {
                    boolean integer = (pass == 0) == intFirst;
                    long t0 = cpu();
                    if (integer) {
                        if (add) il.forwardAdd(null, x, m, yi); else il.forward(null, x, m, yi, act);
                    } else {
                        float[] pw = fl.pack(buf);
                        if (add) fl.forwardAdd(pw, x, m, yf); else fl.forward(pw, x, m, yf, act);
                    }
                    double g = flop / (cpu() - t0);
                    if (r > 0) (integer ? gi : gf)[r - 1] = g;
                }
            }
            java.util.Arrays.sort(gi);
            java.util.Arrays.sort(gf);
            double mi = gi[gi.length / 2], mf = gf[gf.length / 2];
            sumInt += flop / mi;
            sumFloat += flop / mf;
            System.out.printf("%-20s [%d x %d] x %d: int8 %.1f (best %.1f), float %.1f (best %.1f) GFLOP/CPU-s; int/float %.2f%n",
                    l[0], n, k, m, mi, gi[gi.length - 1], mf, gf[gf.length - 1], mi / mf);
        }
        System.out.printf("all five layers, medians: int8 %.3f s, float %.3f s of CPU per pass; float/int %.2f%n", sumInt / 1e9, sumFloat / 1e9, sumFloat / sumInt);
    }
}
