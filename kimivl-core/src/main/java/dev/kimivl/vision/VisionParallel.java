package dev.kimivl.vision;

import dev.kimivl.tensor.Parallel;

import java.util.concurrent.atomic.AtomicInteger;

/**
 * Dynamic work distribution for the vision kernels on the shared compute pool: one worker per pool thread, each
 * taking the next task index from a shared counter, so a thread slowed by other load on the machine simply takes
 * fewer tasks. Each worker has its own reusable {@link Scratch} buffers.
 */
final class VisionParallel {
    private VisionParallel() {}

    /** Per-thread scratch, reused across calls on the same thread. */
    static final class Scratch {
        final float[] packA = new float[PackedLinear.MC * 2 * PackedLinear.KC];
        final float[] tile = new float[PackedLinear.MR * PackedLinear.NR];
        final float[] biasTile = new float[PackedLinear.NR];
        /** The integer form's last partial vector of a row: tile, output and bias, 8 floats each. */
        final float[] tail = new float[24];
        float[] f0 = new float[0], f1 = new float[0], f2 = new float[0], f3 = new float[0];

        float[] f0(int n) { if (f0.length < n) f0 = new float[n]; return f0; }
        float[] f1(int n) { if (f1.length < n) f1 = new float[n]; return f1; }
        float[] f2(int n) { if (f2.length < n) f2 = new float[n]; return f2; }
        float[] f3(int n) { if (f3.length < n) f3 = new float[n]; return f3; }
    }

    private static final ThreadLocal<Scratch> SCRATCH = ThreadLocal.withInitial(Scratch::new);

    @FunctionalInterface
    interface Task { void run(int task, Scratch scratch); }

    static int threads() { return Parallel.THREADS; }

    /** Runs task(i) for i in [0, n), distributed dynamically over the pool threads. */
    static void forTasks(int n, Task body) {
        if (n <= 0) return;
        int workers = Math.min(n, threads());
        if (workers <= 1) {
            Scratch s = SCRATCH.get();
            for (int i = 0; i < n; i++) body.run(i, s);
            return;
        }
        AtomicInteger next = new AtomicInteger();
        Parallel.forRange(workers, 1, (from, to) -> {
            Scratch s = SCRATCH.get();
            for (int w = from; w < to; w++) {
                for (int i; (i = next.getAndIncrement()) < n; ) body.run(i, s);
            }
        });
    }
}
