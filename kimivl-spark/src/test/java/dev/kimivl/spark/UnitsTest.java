package dev.kimivl.spark;

import org.junit.jupiter.api.Test;

import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.*;

/** The pieces that need neither Spark nor a model. */
class UnitsTest {
    @Test
    void localMasterCores() {
        assertEquals(2, ExecutorModels.localCores("local[2]", 16));
        assertEquals(3, ExecutorModels.localCores("local[3,4]", 16));
        assertEquals(16, ExecutorModels.localCores("local[*]", 16));
        assertEquals(1, ExecutorModels.localCores("local", 16));
        assertEquals(16, ExecutorModels.localCores("spark://host:7077", 16));
    }

    @Test
    void theGateKeepsThreadsWithinTheCores() throws Exception {
        // 4 cores, inferences of 2 threads: at most 2 at once, although 6 tasks try
        ExecutorModels.Gate gate = new ExecutorModels.Gate(4);
        ExecutorService pool = Executors.newFixedThreadPool(6);
        CountDownLatch go = new CountDownLatch(1);
        for (int i = 0; i < 6; i++) {
            pool.submit(() -> {
                go.await();
                for (int k = 0; k < 20; k++) gate.run(2, () -> { sleep(2); return null; });
                return null;
            });
        }
        go.countDown();
        pool.shutdown();
        assertTrue(pool.awaitTermination(30, TimeUnit.SECONDS));
        assertEquals(2, gate.mostRunning());
        // an inference asking more threads than the cores takes them all: one at a time
        ExecutorModels.Gate small = new ExecutorModels.Gate(2);
        ExecutorService p2 = Executors.newFixedThreadPool(3);
        for (int i = 0; i < 3; i++) p2.submit(() -> { for (int k = 0; k < 10; k++) small.run(8, () -> { sleep(2); return null; }); });
        p2.shutdown();
        assertTrue(p2.awaitTermination(30, TimeUnit.SECONDS));
        assertEquals(1, small.mostRunning());
    }

    private static void sleep(long ms) {
        try { Thread.sleep(ms); } catch (InterruptedException e) { throw new RuntimeException(e); }
    }

    @Test
    void thinkingOutputIsSplitIntoAnswerAndReasoning() {
        assertArrayEquals(new String[]{"A cat.", null}, RowInference.answerAndReasoning("A cat."));
        assertArrayEquals(new String[]{"A cat.", "fur, whiskers"}, RowInference.answerAndReasoning("◁think▷fur, whiskers◁/think▷A cat."));
        assertArrayEquals(new String[]{"", "still going"}, RowInference.answerAndReasoning("◁think▷still going"));
    }
}
