package dev.kimivl.model;

import dev.kimivl.tensor.Phases;

import java.util.Map;

/**
 * The language model's phases (attention projections, attention, o_proj, router, experts, lm_head...) on the one
 * profiling mechanism, {@link Phases}: wall-clock time per phase, for profiling. Off by default; when off each probe
 * costs one volatile read. A timed step is {@link #begin()} … step … {@link #lap}(phase) … step … lap(phase).
 */
public final class PhaseTimer {
    public enum Phase { NORM, QKV, ATTENTION, O_PROJ, ROUTER, SHARED_EXPERT, FFN_UP, FFN_DOWN, DENSE_FFN, LM_HEAD, OTHER }

    private static final Phases<Phase> PHASES = new Phases<>(Phase.class, false, false);

    private PhaseTimer() {}

    public static void enable(boolean on) { PHASES.enable(on); }

    public static void reset() { PHASES.reset(); }

    static void begin() { PHASES.begin(); }

    /** Adds the time since the previous lap (or {@link #begin}) on this thread to the phase. */
    static void lap(Phase p) { PHASES.lap(p); }

    /** Seconds per phase since the last reset, in phase order, phases never hit left out. */
    public static Map<String, Double> seconds() { return PHASES.seconds(false); }
}
