package dev.kimivl.model;

import dev.kimivl.tensor.QuantizedInput;
import dev.kimivl.tensor.DType;
import dev.kimivl.tensor.Matrix;
import dev.kimivl.tensor.Parallel;
import dev.kimivl.tensor.QuantMatrix;
import dev.kimivl.tensor.SegmentMatrix;
import dev.kimivl.tensor.VectorMath;

/**
 * A weight matrix cut into blocks of consecutive rows, each a {@link Matrix} over its own slice of the stored bytes
 * (no copy). Several matrices' blocks can then be computed in one parallel dispatch (gate and up of the shared
 * expert and of every routed expert of a token; q_proj with kv_a_proj), instead of one dispatch per matrix.
 *
 * <p>A block's {@code matvec} runs on the calling thread when called from inside a {@link Parallel} task (the pool
 * never nests), so the per-row kernels (and their numerics) are exactly those of the whole matrix.
 */
final class RowBlocks {
    /**
     * Rows per block (-Dkimivl.blockRows to experiment): 352 = an expert's 1408 gate/up rows in 4 pieces of 0.2-0.4 MB,
     * long enough contiguous streams for the hardware prefetcher, and still enough pieces to balance 2 threads.
     * Measured on the Q4_0 bench (same session, 48 tokens): 64 rows 8.9 tok/s, 352 rows 10.9 tok/s.
     */
    static final int BLOCK_ROWS = dev.kimivl.tensor.KernelSettings.SYSTEM.blockRows();

    final Matrix matrix;
    final Matrix[] blocks;
    final int[] start;           // first row of each block

    RowBlocks(Matrix m, int blockRows) {
        this.matrix = m;
        int n = (m.rows() + blockRows - 1) / blockRows;
        blocks = new Matrix[n];
        start = new int[n];
        for (int b = 0; b < n; b++) {
            int r0 = b * blockRows, rows = Math.min(blockRows, m.rows() - r0);
            start[b] = r0;
            blocks[b] = slice(m, r0, rows);
        }
    }

    RowBlocks(Matrix m) { this(m, BLOCK_ROWS); }

    int count() { return blocks.length; }

    int rows() { return matrix.rows(); }

    /**
     * y[yo + r] = W[r]·x[xo..] for the rows of block b (on the calling thread when inside a pool task), with x already
     * quantized for the integer kernels (xq from {@link #quantized}; null when they do not apply): a dispatch over many
     * blocks quantizes its input once instead of once per block.
     */
    void block(int b, QuantizedInput xq, float[] x, int xo, float[] y, int yo) {
        if (xq != null && blocks[b] instanceof QuantMatrix q && q.usesIntegerMatvec()) q.matvec(xq, y, yo + start[b]);
        else blocks[b].matvec(x, xo, y, yo + start[b]);
    }

    /** x[xo..] quantized the way this matrix's integer matvec would (same numerics), or null when it uses floats. */
    QuantizedInput quantized(float[] x, int xo) {
        return matrix instanceof QuantMatrix q && q.usesIntegerMatvec() ? QuantizedInput.of(x, xo, q.cols()) : null;
    }

    /** Rows [r0, r0 + n) of m as a matrix over the same bytes. */
    static Matrix slice(Matrix m, int r0, int n) {
        if (r0 == 0 && n == m.rows()) return m;
        if (m instanceof QuantMatrix q) return q.rowSlice(r0, n);
        if (m instanceof SegmentMatrix s) {
            long rb = (long) s.cols() * s.dtype().blockBytes;
            return new SegmentMatrix(s.segment().asSlice(r0 * rb, n * rb), s.dtype(), n, s.cols());
        }
        return new Slice(m, r0, n);
    }

    /** Fallback view for other Matrix kinds: decodes each row and takes a dot product. */
    private record Slice(Matrix m, int r0, int n) implements Matrix {
        @Override public int rows() { return n; }
        @Override public int cols() { return m.cols(); }
        @Override public DType dtype() { return m.dtype(); }
        @Override public void row(int r, float[] dst, int off) { m.row(r0 + r, dst, off); }
        @Override public void matvec(float[] x, int xo, float[] y, int yo) {
            float[] w = new float[m.cols()];
            for (int r = 0; r < n; r++) {
                m.row(r0 + r, w, 0);
                y[yo + r] = VectorMath.dot(w, 0, x, xo, m.cols());
            }
        }
    }

    /** Work items of one dispatch: block b of some matrix against an input, into an output. */
    interface Items { void run(int i); }

    /** Runs items [0, n) on the pool in one dispatch. */
    static void run(int n, Items items) {
        Parallel.forRange(n, 1, (from, to) -> {
            for (int i = from; i < to; i++) items.run(i);
        });
    }
}
