package dev.kimivl.vision;

import dev.kimivl.tensor.Phases;

import java.util.Map;

/**
 * MoonViT's phases on the one profiling mechanism, {@link Phases}: wall-clock and process CPU nanoseconds per phase
 * and the floating-point operations of its matrix products, accumulated over calls, process-wide. Cheap enough to be
 * always on: one {@link System#nanoTime} and one CPU-time read per phase boundary. {@link #report()} prints the
 * breakdown; {@link #reset()} clears it (benchmarks only; concurrent encodes simply add up).
 */
public final class VisionTimer {
    /**
     * PACK: converting a float linear layer's weights to float32 panels right before its product (see PackedLinear;
     * Q8_0/Q4_0 layers pack nothing).
     */
    public enum Phase { PACK, PATCH_EMBED, LAYERNORM, QKV, ROPE, ATTENTION, WO, FC0_GELU, FC1, MERGE, PROJECTOR }

    private static final Phases<Phase> PHASES = new Phases<>(Phase.class, true, true);

    private VisionTimer() {}

    /** Starts this thread's laps. */
    static void begin() { PHASES.begin(); }

    /** Adds the time since this thread's previous lap (or {@link #begin}) to the phase. */
    static void lap(Phase p) { PHASES.lap(p); }

    /** As {@link #lap(Phase)}, with the phase's floating-point operations. */
    static void lap(Phase p, double flop) { PHASES.lap(p, flop); }

    public static void reset() { PHASES.reset(); }

    /** Wall seconds per phase, in pipeline order. */
    public static Map<String, Double> seconds() { return PHASES.seconds(true); }

    public static String report() { return PHASES.report(); }
}
