package dev.kimivl.model;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Wall-clock time per phase of the language model's forward pass (attention projections, attention, o_proj,
 * router, experts, lm_head...), for profiling. Off by default; when off each probe costs one volatile read.
 * Single-threaded use only (the phases are timed on the thread that runs the forward pass).
 */
public final class PhaseTimer {
    public enum Phase { NORM, QKV, ATTENTION, O_PROJ, ROUTER, SHARED_EXPERT, FFN_UP, FFN_DOWN, DENSE_FFN, LM_HEAD, OTHER }

    private static volatile boolean enabled;
    private static final long[] NANOS = new long[Phase.values().length];
    private static final long[] CALLS = new long[Phase.values().length];

    private PhaseTimer() {}

    public static void enable(boolean on) { enabled = on; }

    public static void reset() {
        java.util.Arrays.fill(NANOS, 0);
        java.util.Arrays.fill(CALLS, 0);
    }

    /** A start timestamp, or 0 when disabled. */
    static long start() { return enabled ? System.nanoTime() : 0; }

    /** Adds the time since {@code t0} to the phase and returns the current time (for chaining), or 0 when disabled. */
    static long stop(Phase p, long t0) {
        if (t0 == 0) return 0;
        long now = System.nanoTime();
        NANOS[p.ordinal()] += now - t0;
        CALLS[p.ordinal()]++;
        return now;
    }

    /** Seconds per phase since the last reset, in phase order, phases never hit left out. */
    public static Map<String, Double> seconds() {
        Map<String, Double> m = new LinkedHashMap<>();
        for (Phase p : Phase.values()) if (CALLS[p.ordinal()] > 0) m.put(p.name().toLowerCase(java.util.Locale.ROOT), NANOS[p.ordinal()] / 1e9);
        return m;
    }
}
