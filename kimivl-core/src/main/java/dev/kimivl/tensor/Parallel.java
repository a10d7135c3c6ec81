package dev.kimivl.tensor;

import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.RecursiveAction;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;
import java.util.concurrent.locks.ReentrantLock;

/**
 * The one thread pool of the compute kernels. Its size defaults to the number of cores (never more: the kernels
 * are memory-bound and oversubscribing 2 cores only adds switches); {@code -Dkimivl.threads=N} overrides it.
 *
 * <p>Decoding one token makes ~190 dispatches of 20-200 µs each, so the cost of a dispatch matters: waking a parked
 * ForkJoinPool worker took 30-80 µs here (futex wake-up plus scheduling), 5-10% of a token. So the pool is the
 * calling thread plus THREADS - 1 workers that spin between dispatches and park only after
 * {@code kimivl.spinMicros} (default 200 µs) without work: a dispatch then costs a few hundred nanoseconds, and the
 * caller computes too instead of blocking. Chunks are claimed from a shared counter, so a descheduled thread delays
 * only its own chunk. One dispatch runs at a time; a second caller thread meanwhile (a server serving two requests)
 * uses a ForkJoinPool, and calls from inside a chunk run inline (the pool never nests).
 */
public final class Parallel {
    public static final int THREADS = KernelSettings.SYSTEM.threads();
    private static final long SPIN_NANOS = 1000L * KernelSettings.SYSTEM.spinMicros();

    private static final Worker[] WORKERS;
    private static final ReentrantLock DISPATCH = new ReentrantLock();
    private static final ForkJoinPool FALLBACK;

    /**
     * One dispatch: its body, size and counters in one immutable-by-reference object published through the volatile
     * {@link #job}. A worker works only on the job it read, so it can never pair one dispatch's chunk claim with
     * another's body (the earlier design kept body, size and claim counter in separate statics; a worker that read
     * them across two dispatches once ran a claimed chunk with a null body: an NPE in a 2-core training run).
     */
    private static final class Job {
        final RangeBody body;
        final int total, chunks;
        final AtomicInteger claim = new AtomicInteger(), done = new AtomicInteger();
        volatile Throwable failure;
        Job(RangeBody body, int total, int chunks) { this.body = body; this.total = total; this.chunks = chunks; }
    }

    private static volatile Job job;
    private static volatile long epoch;
    private static volatile Thread caller;

    static {
        if (THREADS <= 1) {
            WORKERS = new Worker[0];
            FALLBACK = null;
        } else {
            WORKERS = new Worker[THREADS - 1];
            for (int i = 0; i < WORKERS.length; i++) {
                WORKERS[i] = new Worker(i);
                WORKERS[i].start();
            }
            FALLBACK = new ForkJoinPool(THREADS);
        }
    }

    private Parallel() {}

    @FunctionalInterface
    public interface RangeBody { void run(int from, int to); }

    /**
     * Runs body over [0, n) split into about {@code THREADS * 4} chunks of at least {@code minChunk} items.
     * Runs inline when the work is small, there is one thread, or it is called from inside a chunk.
     */
    public static void forRange(int n, int minChunk, RangeBody body) {
        if (n <= 0) return;
        int chunks = Math.min(THREADS * 4, Math.max(1, n / Math.max(1, minChunk)));
        if (THREADS <= 1 || chunks <= 1 || insideChunk()) {
            body.run(0, n);
            return;
        }
        if (!DISPATCH.tryLock()) {            // another thread is dispatching: use the ForkJoinPool meanwhile
            FALLBACK.invoke(new Chunk(body, n, chunks, 0, chunks));
            return;
        }
        try {
            dispatch(n, chunks, body);
        } finally {
            DISPATCH.unlock();
        }
    }

    private static boolean insideChunk() {
        Thread t = Thread.currentThread();
        return t instanceof Worker || t == caller
                || t instanceof java.util.concurrent.ForkJoinWorkerThread w && w.getPool() == FALLBACK;
    }

    private static void dispatch(int n, int chunkCount, RangeBody b) {
        Job jb = new Job(b, n, chunkCount);
        caller = Thread.currentThread();
        job = jb;
        epoch = epoch + 1;                    // wakes the spinning workers; they read job after it
        for (Worker w : WORKERS) if (w.parked) LockSupport.unpark(w);
        try {
            runChunks(jb);
            while (jb.done.get() < chunkCount) Thread.onSpinWait();
        } finally {
            caller = null;
        }
        Throwable t = jb.failure;
        if (t instanceof RuntimeException r) throw r;
        if (t instanceof Error e) throw e;
        if (t != null) throw new IllegalStateException(t);
    }

    /** Claims and runs chunks of one job until none is left. */
    private static void runChunks(Job jb) {
        if (jb == null) return;
        int n = jb.total, c = jb.chunks;
        while (true) {
            int i = jb.claim.getAndIncrement();
            if (i >= c) return;
            try {
                if (jb.failure == null) jb.body.run((int) ((long) n * i / c), (int) ((long) n * (i + 1) / c));
            } catch (Throwable t) {
                jb.failure = t;
            } finally {
                jb.done.incrementAndGet();
            }
        }
    }

    private static final class Worker extends Thread {
        volatile boolean parked;

        Worker(int i) {
            super("kimivl-compute-" + (i + 1));
            setDaemon(true);
        }

        @Override public void run() {
            long seen = epoch;
            while (true) {
                long spinStart = System.nanoTime();
                while (epoch == seen) {
                    if (System.nanoTime() - spinStart > SPIN_NANOS) {
                        parked = true;
                        if (epoch == seen) LockSupport.park(this);
                        parked = false;
                        spinStart = System.nanoTime();
                    } else {
                        Thread.onSpinWait();
                    }
                }
                seen = epoch;
                runChunks(job);               // finds nothing when faster threads already claimed every chunk
            }
        }
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
