package dev.kimivl.bench;

import dev.kimivl.tensor.QuantizedInput;
import dev.kimivl.tensor.DType;
import dev.kimivl.tensor.Matrix;
import dev.kimivl.tensor.Parallel;
import dev.kimivl.tensor.Quant;
import dev.kimivl.tensor.QuantMatrix;
import dev.kimivl.tensor.SegmentMatrix;
import jdk.incubator.vector.LongVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Random;

/**
 * Reports the memory bandwidth each matvec kernel reaches on weights that are not in cache, next to a plain
 * streaming read of the same bytes measured in the same run (the practical ceiling; ~32 GB/s with 2 threads here;
 * measured before and after the kernels, the faster one is reported). Q8_0 and Q4_0 report {@code matvec} (the integer
 * kernel unless -Dkimivl.intMatvec=false) and the integer kernel with int8 activations
 * ({@code QuantizedInput}, quantized per product) side by side; {@code -Dkimivl.threads=1} for one thread.
 * Copies of the matrix are rotated so that the working set (≥ 256 MB) is far larger than the caches.
 *
 * <pre>java --add-modules jdk.incubator.vector -cp "kimivl-bench/target/kimivl-bench.jar:kimivl-bench/target/lib/*" \
 *     dev.kimivl.bench.Bandwidth [rows cols [types...]]</pre>
 * Also {@code --matmul N} to time the batched product (GFLOP/s) instead.
 */
public final class Bandwidth {
    private static final VectorSpecies<Long> L = LongVector.SPECIES_PREFERRED;

    public static void main(String[] args) {
        int rows = 11264, cols = 2048, matmulN = 0;
        List<DType> types = new ArrayList<>();
        List<String> rest = new ArrayList<>(List.of(args));
        int mi = rest.indexOf("--matmul");
        if (mi >= 0) { matmulN = Integer.parseInt(rest.get(mi + 1)); rest.remove(mi); rest.remove(mi); }
        if (rest.size() >= 2) { rows = Integer.parseInt(rest.get(0)); cols = Integer.parseInt(rest.get(1)); }
        for (int i = 2; i < rest.size(); i++) types.add(DType.valueOf(rest.get(i).toUpperCase(Locale.ROOT)));
        if (types.isEmpty()) types = List.of(DType.Q8_0, DType.Q4_0, DType.BF16, DType.F32);
        System.out.printf(Locale.ROOT, "threads %d, matrix [%d, %d]%n", Parallel.THREADS, rows, cols);
        Random rnd = new Random(1);
        float[] w = new float[rows * cols];
        for (int i = 0; i < w.length; i++) w[i] = (float) rnd.nextGaussian() * 0.05f;
        float[] x = new float[cols];
        for (int i = 0; i < cols; i++) x[i] = (float) rnd.nextGaussian();
        try (Arena arena = Arena.ofShared()) {
            for (DType t : types) {
                // the block formats other than Q8_0/Q4_0 as random blocks (KQuantBench's; values do not change speed)
                MemorySegment one = t.isQuantized() && t != DType.Q8_0 && t != DType.Q4_0
                        ? KQuantBench.randomBlocks(t, rows, cols, rnd) : Quant.quantize(w, rows, cols, t);
                long bytes = one.byteSize();
                int copies = (int) Math.max(2, Math.min(64, (256L << 20) / bytes + 1));
                Matrix[] ms = new Matrix[copies];
                MemorySegment[] segs = new MemorySegment[copies];
                for (int k = 0; k < copies; k++) {
                    MemorySegment s = arena.allocate(bytes, 64);
                    s.copyFrom(one);
                    segs[k] = s;
                    ms[k] = t.isQuantized() ? new QuantMatrix(s, t, rows, cols) : new SegmentMatrix(s, t, rows, cols);
                }
                if (matmulN > 0) {
                    runMatmul(t, ms, x, matmulN, rows, cols);
                    continue;
                }
                float[] y = new float[rows];
                boolean both = t == DType.Q8_0 || t == DType.Q4_0;
                for (int rep = 0; rep < 3; rep++) {
                    double total = (double) bytes * copies;
                    double stream = time(() -> { for (MemorySegment s : segs) streamRead(s); }, 5);
                    // Q8_0/Q4_0: the exact float-activation kernel and the integer one (activation quantized per product)
                    double kernel = time(() -> { for (Matrix m : ms) m.matvec(x, 0, y, 0); }, 5);
                    double integer = both ? time(() -> {
                        for (Matrix m : ms) ((QuantMatrix) m).matvec(QuantizedInput.of(x, 0, x.length), y, 0);
                    }, 5) : 0;
                    double stream2 = time(() -> { for (MemorySegment s : segs) streamRead(s); }, 5);
                    double st = Math.min(stream, stream2);
                    System.out.printf(Locale.ROOT, "%-5s %7.2f MB  stream %5.1f GB/s | matvec%s %5.1f GB/s %5.1f%%",
                            t, bytes / 1e6, total / st / 1e9, both ? (QuantMatrix.INT_MATVEC ? " (int)" : " (exact)") : "", total / kernel / 1e9, 100 * st / kernel);
                    if (both) System.out.printf(Locale.ROOT, " | int8-activation %5.1f GB/s %5.1f%%", total / integer / 1e9, 100 * st / integer);
                    System.out.println();
                }
            }
        }
    }

    private static void runMatmul(DType t, Matrix[] ms, float[] x0, int n, int rows, int cols) {
        float[] x = new float[n * cols];
        Random rnd = new Random(2);
        for (int i = 0; i < x.length; i++) x[i] = (float) rnd.nextGaussian();
        float[] y = new float[n * rows];
        for (int rep = 0; rep < 3; rep++) {
            double s = time(() -> ms[0].matmul(x, y, n), 2);
            System.out.printf(Locale.ROOT, "%-5s matmul n=%d  %8.1f ms  %6.1f GFLOP/s%n", t, n, s * 1e3, 2.0 * n * rows * cols / s / 1e9);
        }
    }

    /** Best-of-k seconds of r (after warming up for at least 1 s). */
    static double time(Runnable r, int k) {
        long w0 = System.nanoTime();
        for (int i = 0; i < 3 || System.nanoTime() - w0 < 1_000_000_000L; i++) r.run();
        double best = Double.MAX_VALUE;
        for (int i = 0; i < k; i++) {
            long t0 = System.nanoTime();
            r.run();
            best = Math.min(best, (System.nanoTime() - t0) / 1e9);
        }
        return best;
    }

    static volatile long sink;

    /** Reads every byte of s with the same thread split as the kernels (XOR of 512-bit loads). */
    static void streamRead(MemorySegment s) {
        int vb = L.vectorByteSize();
        long n = s.byteSize() / vb;
        Parallel.forRange((int) Math.min(Integer.MAX_VALUE, n), 256, (from, to) -> {
            LongVector acc = LongVector.zero(L);
            for (long i = from; i < to; i++) acc = acc.lanewise(VectorOperators.XOR, LongVector.fromMemorySegment(L, s, i * vb, ByteOrder.LITTLE_ENDIAN));
            sink += acc.reduceLanes(VectorOperators.XOR);
        });
    }
}
