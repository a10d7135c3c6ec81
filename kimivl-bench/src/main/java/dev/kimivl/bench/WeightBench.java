package dev.kimivl.bench;

import dev.kimivl.tensor.DType;
import dev.kimivl.tensor.Matrix;
import dev.kimivl.tensor.QuantMatrix;
import dev.kimivl.tensor.SegmentMatrix;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.TearDown;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Random;

/**
 * What the weight-kernel benchmarks share ({@link KernelBench}, {@link KQuantBench}): copies of one matrix totalling
 * ≥ 256 MB, so that matvec (decode), rotating over them, reads its weights from memory as a real decode step does
 * (bytesPerOp / time = GB/s); matmul multiplies a batch of inputs (prefill).
 */
public abstract class WeightBench {
    private Arena arena;
    private Matrix[] copies;
    private int next;
    private float[] x, y, xs, ys;
    public long bytesPerOp;

    /** Sets up the copies of {@code one} (type t, [rows, cols]) and random inputs: one for matvec, batch for matmul. */
    protected void init(MemorySegment one, DType t, int rows, int cols, int batch, Random rnd) {
        bytesPerOp = one.byteSize();
        int n = (int) Math.max(2, Math.min(256, (256L << 20) / bytesPerOp + 1));
        arena = Arena.ofShared();
        copies = new Matrix[n];
        for (int k = 0; k < n; k++) {
            MemorySegment s = arena.allocate(one.byteSize(), 64);
            s.copyFrom(one);
            copies[k] = t.isQuantized() ? new QuantMatrix(s, t, rows, cols) : new SegmentMatrix(s, t, rows, cols);
        }
        x = new float[cols];
        y = new float[rows];
        for (int i = 0; i < cols; i++) x[i] = (float) rnd.nextGaussian();
        xs = new float[batch * cols];
        ys = new float[batch * rows];
        for (int i = 0; i < xs.length; i++) xs[i] = (float) rnd.nextGaussian();
    }

    @TearDown(Level.Trial)
    public void tearDown() { arena.close(); }

    /** One decode product on weights that are not in cache. */
    @Benchmark
    public float matvec() {
        Matrix m = copies[next];
        next = next + 1 == copies.length ? 0 : next + 1;
        m.matvec(x, 0, y, 0);
        return y[0];
    }

    /** One prefill product of the batch. */
    @Benchmark
    @Measurement(iterations = 3, time = 2)
    public float matmul() {
        copies[0].matmul(xs, ys, ys.length / y.length);
        return ys[0];
    }
}
