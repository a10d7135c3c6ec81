package dev.kimivl.vision;

import dev.kimivl.tensor.DType;
import dev.kimivl.tensor.Matrix;
import dev.kimivl.tensor.Parallel;
import dev.kimivl.tensor.SegmentMatrix;
import dev.kimivl.tensor.VectorMath;

import java.lang.foreign.MemorySegment;
import java.util.SplittableRandom;

/**
 * Benchmark (not a test): the vision kernels against their baselines in the same run, so machine load cancels in the
 * ratio. GEMM: {@link PackedLinear} (packed f32, 6×16 micro-kernel) vs {@link Matrix#matmul} (dev.kimivl.tensor.Gemm on
 * BF16); attention: {@link VisionAttention} vs the original {@link VisionKernels#blockDiagonalAttention}.
 * <pre>java ... dev.kimivl.vision.VisionKernelBench [M=4096] [K=1152] [N=4304] [reps=3] [attnTokens=4096]</pre>
 */
public final class VisionKernelBench {
    /** Process CPU time, or this thread's (exact, ns resolution) when the pool has one thread and kernels run inline. */
    static long cpu() {
        return Parallel.THREADS == 1 ? java.lang.management.ManagementFactory.getThreadMXBean().getCurrentThreadCpuTime() : VisionBench.processCpuNanos();
    }

    public static void main(String[] args) {
        int m = args.length > 0 ? Integer.parseInt(args[0]) : 4096;
        int k = args.length > 1 ? Integer.parseInt(args[1]) : 1152;
        int n = args.length > 2 ? Integer.parseInt(args[2]) : 4304;
        int reps = args.length > 3 ? Integer.parseInt(args[3]) : 3;
        int at = args.length > 4 ? Integer.parseInt(args[4]) : 4096;
        SplittableRandom rnd = new SplittableRandom(1);
        short[] wb = new short[n * k];
        for (int i = 0; i < wb.length; i++) wb[i] = VectorMath.floatToBf16((float) (rnd.nextDouble() - 0.5) * 0.1f);
        Matrix w = new SegmentMatrix(MemorySegment.ofArray(wb), DType.BF16, n, k);
        float[] x = new float[m * k];
        for (int i = 0; i < x.length; i++) x[i] = (float) (rnd.nextDouble() - 0.5);
        float[] y0 = new float[m * n], y1 = new float[m * n];
        PackedLinear p = new PackedLinear(w, null);
        float[] pw = p.pack(null);                        // packed once: the GEMM alone is measured
        double flop = 2.0 * m * n * k;
        // the micro-kernel alone on L1-resident operands: its ceiling on this core (per CPU-second: load-independent)
        {
            float[] a = new float[6 * 256], b = new float[16 * 256], c = new float[96];
            for (int i = 0; i < a.length; i++) a[i] = 1e-3f * i;
            for (int i = 0; i < b.length; i++) b[i] = 1e-3f * i;
            var mx = java.lang.management.ManagementFactory.getThreadMXBean();
            for (int r = 0; r < 4; r++) {
                long c0 = mx.getCurrentThreadCpuTime(), t0 = System.nanoTime();
                int calls = 200_000;
                for (int i = 0; i < calls; i++) PackedLinear.kernel(a, 0, b, 0, 256, c, 0, 16, (i & 1) == 0);
                long c1 = mx.getCurrentThreadCpuTime(), t1 = System.nanoTime();
                double f = 2.0 * 96 * 256 * calls;
                System.out.printf("micro-kernel 6x16 kc 256 in L1: %.1f GFLOP/s per CPU-second (%.1f wall)%n", f / (c1 - c0), f / (t1 - t0));
            }
        }
        System.out.printf("GEMM %d x %d x %d, threads %d, kc %d mc %d nc %d%n", m, k, n, Parallel.THREADS, PackedLinear.KC, PackedLinear.MC, PackedLinear.NC);
        // warm-up
        p.forward(pw, x, Math.min(m, 600), y1, PackedLinear.Act.NONE);
        w.matmul(x, y0, Math.min(m, 64));
        if (Boolean.getBoolean("actAB")) {
            // the fused epilogues: the same product with no activation, GELU-tanh and GELU-erf, interleaved
            PackedLinear.Act[] acts = PackedLinear.Act.values();
            double[] best = new double[acts.length];
            for (int r = 0; r < reps; r++) {
                for (PackedLinear.Act a : acts) {
                    long c0 = cpu();
                    p.forward(pw, x, m, y1, a);
                    best[a.ordinal()] = Math.max(best[a.ordinal()], flop / (cpu() - c0));
                }
            }
            for (PackedLinear.Act a : acts) System.out.printf("  %s: best %.1f GFLOP per CPU-s%n", a, best[a.ordinal()]);
            return;
        }
        String ab = System.getProperty("ncAB");
        if (ab != null) {
            // A/B of output column chunk sizes in one JVM, interleaved, so machine load hits both alike
            String[] v = ab.split(",");
            double[] best = new double[v.length], sum = new double[v.length];
            for (int r = 0; r < reps; r++) {
                for (int i = 0; i < v.length; i++) {
                    PackedLinear pi = new PackedLinear(w, null, Integer.parseInt(v[i]));
                    long c0 = cpu();
                    pi.forward(pw, x, m, y1, PackedLinear.Act.NONE);
                    double g = flop / (cpu() - c0);
                    best[i] = Math.max(best[i], g);
                    sum[i] += g;
                }
            }
            for (int i = 0; i < v.length; i++) System.out.printf("  nc %s: best %.1f mean %.1f GFLOP per CPU-s%n", v[i], best[i], sum[i] / reps);
            return;
        }
        for (int r = 0; r < reps; r++) {
            long c0 = cpu();
            long t0 = System.nanoTime();
            p.forward(pw, x, m, y1, PackedLinear.Act.NONE);
            long t1 = System.nanoTime();
            long c1 = cpu();
            if (Boolean.getBoolean("packedOnly")) {
                System.out.printf("  packed %.3f s %.1f GFLOP/s, %.1f GFLOP per CPU-s%n", (t1 - t0) / 1e9, flop / (t1 - t0), flop / (c1 - c0));
                continue;
            }
            w.matmul(x, y0, m);
            long t2 = System.nanoTime();
            long c2 = cpu();
            System.out.printf("  per CPU-s: packed %.1f GFLOP, Gemm %.1f GFLOP%n", flop / (c1 - c0), flop / (c2 - c1));
            double maxd = 0;
            for (int i = 0; i < y0.length; i++) maxd = Math.max(maxd, Math.abs(y0[i] - y1[i]));
            System.out.printf("  packed %.3f s %.1f GFLOP/s | Gemm %.3f s %.1f GFLOP/s | ratio %.2fx | max|Δ| %.2e%n",
                    (t1 - t0) / 1e9, flop / (t1 - t0), (t2 - t1) / 1e9, flop / (t2 - t1), (double) (t2 - t1) / (t1 - t0), maxd);
        }
        if (at <= 0) return;
        int dim = 1152, heads = 16;
        float[] qkv = new float[at * 3 * dim];
        for (int i = 0; i < qkv.length; i++) qkv[i] = (float) (rnd.nextDouble() - 0.5) * 4f;
        float[] o0 = new float[at * dim], o1 = new float[at * dim];
        int[] starts = {0}, counts = {at};
        double aflop = 4.0 * at * at * dim;
        VisionAttention.blockDiagonal(qkv, dim, heads, new int[]{0}, new int[]{256}, o1, new VisionAttention.Buffers());
        VisionKernels.blockDiagonalAttention(qkv, dim, heads, new int[]{0}, new int[]{256}, o0);
        for (int r = 0; r < reps; r++) {
            long t0 = System.nanoTime();
            VisionAttention.blockDiagonal(qkv, dim, heads, starts, counts, o1, new VisionAttention.Buffers());
            long t1 = System.nanoTime();
            VisionKernels.blockDiagonalAttention(qkv, dim, heads, starts, counts, o0);
            long t2 = System.nanoTime();
            double maxd = 0;
            for (int i = 0; i < o0.length; i++) maxd = Math.max(maxd, Math.abs(o0[i] - o1[i]));
            System.out.printf("attention %d tokens: new %.3f s %.1f GFLOP/s | old %.3f s %.1f GFLOP/s | ratio %.2fx | max|Δ| %.2e%n",
                    at, (t1 - t0) / 1e9, aflop / (t1 - t0), (t2 - t1) / 1e9, aflop / (t2 - t1), (double) (t2 - t1) / (t1 - t0), maxd);
        }
    }
}
