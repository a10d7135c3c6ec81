package dev.kimivl.tensor;

import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Map;
import java.util.concurrent.locks.LockSupport;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class PhasesTest {
    enum P { A, B, C }

    private static void sleepMs(long ms) {
        long end = System.nanoTime() + ms * 1_000_000;
        while (System.nanoTime() < end) LockSupport.parkNanos(end - System.nanoTime());
    }

    @Test
    void lapsGoToTheNamedPhaseInOrder() {
        Phases<P> ph = new Phases<>(P.class, true, true);
        ph.begin();
        sleepMs(30);
        ph.lap(P.B, 1e9);
        sleepMs(5);
        ph.lap(P.A);
        Map<String, Double> s = ph.seconds(false);
        assertEquals(List.of("a", "b"), List.copyOf(s.keySet()), "declaration order, phases never lapped left out");
        assertTrue(s.get("b") >= 0.029 && s.get("b") < 5, "b: " + s.get("b"));
        assertTrue(s.get("a") >= 0.004 && s.get("a") < s.get("b"), "a: " + s.get("a") + " (only the time since b's lap)");
        assertEquals(3, ph.seconds(true).size());
        String report = ph.report();
        assertTrue(report.contains("total") && report.lines().anyMatch(l -> l.trim().startsWith("b ") && l.contains("1.0")), report);
        ph.reset();
        assertEquals(0.0, ph.seconds(true).get("b"));
    }

    @Test
    void disabledAddsNothingAndALapWithoutBeginOnlyStarts() {
        Phases<P> ph = new Phases<>(P.class, false, false);
        ph.begin();
        sleepMs(5);
        ph.lap(P.A);
        assertTrue(ph.seconds(false).isEmpty(), "disabled: " + ph.seconds(false));
        ph.enable(true);
        Thread t = new Thread(() -> {                     // a thread that never began: its first lap starts the interval
            ph.lap(P.C);
            sleepMs(5);
            ph.lap(P.A);
        });
        t.start();
        try { t.join(); } catch (InterruptedException e) { throw new AssertionError(e); }
        Map<String, Double> s = ph.seconds(false);
        assertEquals(List.of("a"), List.copyOf(s.keySet()), "the lap without a begin added nothing: " + s);
        assertTrue(s.get("a") >= 0.004 && s.get("a") < 5, "a: " + s.get("a"));
    }
}
