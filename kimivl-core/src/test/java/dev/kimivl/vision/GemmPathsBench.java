package dev.kimivl.vision;

import dev.kimivl.tensor.DType;
import dev.kimivl.tensor.Matrix;
import dev.kimivl.tensor.SegmentMatrix;
import java.lang.foreign.MemorySegment;
import java.util.SplittableRandom;

/**
 * Benchmark (not a test) of the three users of the 6×16 GEMM micro-kernels ({@link dev.kimivl.tensor.MicroKernel}) on one
 * thread, in thread CPU time (load-independent on a shared machine): the prefill GEMM ({@link Matrix#matmul}, F32
 * [2048×2048] × 128 inputs → PackedGemm), a MoonViT linear layer with GELU ({@link PackedLinear#forward},
 * 1024 × 1152 → 4304) and MoonViT attention ({@link VisionAttention#blockDiagonal}, 1024 tokens, 16 heads of 72).
 * Prints the best GFLOP per CPU-second of reps − 1 runs and a checksum (equal checksums: same results).
 * To compare two builds, run it alternately on both class directories (docs/tuning.md, "One kernel of each kind"):
 * <pre>java --add-modules jdk.incubator.vector -Dkimivl.threads=1 -cp test-classes:classes dev.kimivl.vision.GemmPathsBench 5 label</pre>
 */
public final class GemmPathsBench {
    static long cpu() { return java.lang.management.ManagementFactory.getThreadMXBean().getCurrentThreadCpuTime(); }
    public static void main(String[] args) {
        int reps = Integer.parseInt(args[0]);
        SplittableRandom rnd = new SplittableRandom(1);
        // prefill GEMM: [2048 x 2048] F32 weights x 128 inputs
        int R = 2048, C = 2048, N = 128;
        float[] w = new float[R * C]; for (int i = 0; i < w.length; i++) w[i] = (float) (rnd.nextDouble() - 0.5);
        Matrix m = new SegmentMatrix(MemorySegment.ofArray(w), DType.F32, R, C);
        float[] x = new float[N * C]; for (int i = 0; i < x.length; i++) x[i] = (float) (rnd.nextDouble() - 0.5);
        float[] y = new float[N * R];
        // MoonViT linear: 1024 patches x 1152 -> 4304
        int M = 1024, K = 1152, O = 4304;
        float[] vw = new float[O * K]; for (int i = 0; i < vw.length; i++) vw[i] = (float) (rnd.nextDouble() - 0.5) * 0.1f;
        PackedLinear pl = new PackedLinear(new SegmentMatrix(MemorySegment.ofArray(vw), DType.F32, O, K), null);
        float[] pw = pl.pack(null);
        float[] vx = new float[M * K]; for (int i = 0; i < vx.length; i++) vx[i] = (float) (rnd.nextDouble() - 0.5);
        float[] vy = new float[M * O];
        // attention: 1024 tokens, 16 heads of 72
        int at = 1024, dim = 1152, heads = 16;
        float[] qkv = new float[at * 3 * dim]; for (int i = 0; i < qkv.length; i++) qkv[i] = (float) (rnd.nextDouble() - 0.5) * 4f;
        float[] ao = new float[at * dim];
        VisionAttention.Buffers buf = new VisionAttention.Buffers();
        double[] g = new double[3];
        double gf = 2.0 * R * C * N, lf = 2.0 * M * K * O, af = 4.0 * at * at * dim;
        for (int r = 0; r < reps; r++) {
            long t0 = cpu(); m.matmul(x, y, N); long t1 = cpu();
            pl.forward(pw, vx, M, vy, PackedLinear.Act.GELU_TANH); long t2 = cpu();
            VisionAttention.blockDiagonal(qkv, dim, heads, new int[]{0}, new int[]{at}, ao, buf); long t3 = cpu();
            if (r >= 1) { g[0] = Math.max(g[0], gf / (t1 - t0)); g[1] = Math.max(g[1], lf / (t2 - t1)); g[2] = Math.max(g[2], af / (t3 - t2)); }
        }
        double h = 0; for (float v : y) h += v; for (float v : vy) h += v; for (float v : ao) h += v;
        System.out.printf("%s prefillGemm %.1f vitLinear %.1f vitAttention %.1f GFLOP/CPU-s (best of %d) checksum %.6e%n",
                args.length > 1 ? args[1] : "", g[0], g[1], g[2], reps - 1, h);
    }
}
