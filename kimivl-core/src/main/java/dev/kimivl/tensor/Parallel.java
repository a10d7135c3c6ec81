package dev.kimivl.tensor;

import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.RecursiveAction;

/**
 * The one thread pool of the compute kernels. Its size defaults to the number of cores (never more:
 * the kernels are memory-bound and oversubscribing 2 cores only adds switches); {@code -Dkimivl.threads=N} overrides it.
 */
public final class Parallel {
    public static final int THREADS = Integer.getInteger("kimivl.threads", Runtime.getRuntime().availableProcessors());
    private static final ForkJoinPool POOL = THREADS <= 1 ? null : new ForkJoinPool(THREADS);

    private Parallel() {}

    @FunctionalInterface
    public interface RangeBody { void run(int from, int to); }

    /**
     * Runs body over [0, n) split into about {@code THREADS * 4} chunks of at least {@code minChunk} items.
     * Runs inline when the work is small or there is one thread.
     */
    public static void forRange(int n, int minChunk, RangeBody body) {
        if (n <= 0) return;
        int chunks = Math.min(THREADS * 4, Math.max(1, n / Math.max(1, minChunk)));
        if (POOL == null || chunks <= 1 || inPool()) {
            body.run(0, n);
            return;
        }
        POOL.invoke(new Chunk(body, n, chunks, 0, chunks));
    }

    private static boolean inPool() {
        return Thread.currentThread() instanceof java.util.concurrent.ForkJoinWorkerThread w && w.getPool() == POOL;
    }

    private static final class Chunk extends RecursiveAction {
        final RangeBody body; final int n, chunks, lo, hi;
        Chunk(RangeBody body, int n, int chunks, int lo, int hi) {
            this.body = body; this.n = n; this.chunks = chunks; this.lo = lo; this.hi = hi;
        }
        @Override protected void compute() {
            if (hi - lo == 1) {
                int from = (int) ((long) n * lo / chunks), to = (int) ((long) n * (lo + 1) / chunks);
                body.run(from, to);
                return;
            }
            int mid = (lo + hi) >>> 1;
            invokeAll(new Chunk(body, n, chunks, lo, mid), new Chunk(body, n, chunks, mid, hi));
        }
    }
}
