package dev.kimivl.tensor;

import org.junit.jupiter.api.Test;

import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicLongArray;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;

/** The spinning compute pool: every index exactly once, nesting inline, errors to the caller, concurrent callers. */
class ParallelTest {

    @Test
    void everyIndexOnceAcrossManyDispatches() {
        for (int n : new int[]{1, 2, 7, 64, 1000, 100_003}) {
            AtomicLongArray hits = new AtomicLongArray(n);
            for (int rep = 0; rep < 50; rep++) Parallel.forRange(n, 1, (from, to) -> { for (int i = from; i < to; i++) hits.incrementAndGet(i); });
            for (int i = 0; i < n; i++) assertEquals(50, hits.get(i), "n " + n + " index " + i);
        }
    }

    @Test
    void nestedCallsRunInlineAndCoverTheRange() {
        AtomicLong sum = new AtomicLong();
        Parallel.forRange(16, 1, (from, to) -> {
            for (int i = from; i < to; i++) {
                Thread outer = Thread.currentThread();
                Parallel.forRange(100, 1, (a, b) -> {
                    assertSame(outer, Thread.currentThread(), "a nested dispatch runs on the calling thread");
                    for (int j = a; j < b; j++) sum.addAndGet(j);
                });
            }
        });
        assertEquals(16L * 4950, sum.get());
    }

    @Test
    void exceptionsReachTheCaller() {
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> Parallel.forRange(1000, 1, (from, to) -> {
            if (from > 500) throw new IllegalStateException("chunk at " + from);
        }));
        assertEquals(true, e.getMessage().startsWith("chunk at "));
        // the pool still works afterwards
        AtomicLong count = new AtomicLong();
        Parallel.forRange(1000, 1, (from, to) -> count.addAndGet(to - from));
        assertEquals(1000, count.get());
    }

    /** Several threads dispatching at once (a server's requests): one takes the spinning pool, the others the fallback. */
    @Test
    void concurrentCallers() throws Exception {
        ExecutorService ex = Executors.newFixedThreadPool(4);
        try {
            Future<?>[] f = new Future<?>[4];
            for (int c = 0; c < 4; c++) {
                f[c] = ex.submit(() -> {
                    for (int rep = 0; rep < 200; rep++) {
                        AtomicLong sum = new AtomicLong();
                        Parallel.forRange(5000, 1, (from, to) -> { long s = 0; for (int i = from; i < to; i++) s += i; sum.addAndGet(s); });
                        assertEquals(5000L * 4999 / 2, sum.get());
                    }
                    return null;
                });
            }
            for (Future<?> x : f) x.get();
        } finally {
            ex.shutdownNow();
        }
    }

    /**
     * Many tiny back-to-back dispatches from two threads (a training step's data thread beside its compute thread):
     * workers waking late must never pair one dispatch's chunk with another's body (once an NPE in a training run).
     */
    @Test
    void tinyDispatchesFromTwoThreadsStayConsistent() throws Exception {
        ExecutorService ex = Executors.newFixedThreadPool(2);
        try {
            Future<?>[] f = new Future<?>[2];
            for (int c = 0; c < 2; c++) {
                final int n = 48 + 16 * c;
                f[c] = ex.submit(() -> {
                    for (int rep = 0; rep < 20000; rep++) {
                        AtomicLong sum = new AtomicLong();
                        Parallel.forRange(n, 1, (from, to) -> { long s = 0; for (int i = from; i < to; i++) s += i; sum.addAndGet(s); });
                        assertEquals((long) n * (n - 1) / 2, sum.get());
                    }
                    return null;
                });
            }
            for (Future<?> x : f) x.get();
        } finally {
            ex.shutdownNow();
        }
    }
}
