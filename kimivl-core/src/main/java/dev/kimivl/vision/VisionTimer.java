package dev.kimivl.vision;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLongArray;

/**
 * Time per phase of the vision forward pass (accumulated over calls, process-wide): wall-clock nanoseconds, process
 * CPU nanoseconds (on a machine shared with other work the CPU time shows what the phase costs on free cores) and
 * the floating-point operations of its matrix products. Cheap enough to be always on: one {@link System#nanoTime}
 * and one CPU-time read per phase boundary. {@link #report()} prints the breakdown; {@link #reset()} clears it
 * (benchmarks only; concurrent encodes simply add up).
 */
public final class VisionTimer {
    /** PACK: converting each linear layer's weights to float32 panels right before its product (see PackedLinear). */
    public enum Phase { PACK, PATCH_EMBED, LAYERNORM, QKV, ROPE, ATTENTION, WO, FC0_GELU, FC1, MERGE, PROJECTOR }

    private static final int N = Phase.values().length;
    private static final AtomicLongArray WALL = new AtomicLongArray(N), CPU = new AtomicLongArray(N), FLOP = new AtomicLongArray(N);
    private static final com.sun.management.OperatingSystemMXBean OS = osBean();
    private static volatile long lastCpu = cpuNow();

    private VisionTimer() {}

    private static com.sun.management.OperatingSystemMXBean osBean() {
        return java.lang.management.ManagementFactory.getOperatingSystemMXBean() instanceof com.sun.management.OperatingSystemMXBean b ? b : null;
    }

    private static long cpuNow() { return OS == null ? 0 : OS.getProcessCpuTime(); }

    /** Starts timing (the CPU clock is process-wide, so phase CPU times are exact only for one encode at a time). */
    static long start() {
        lastCpu = cpuNow();
        return System.nanoTime();
    }

    /** Adds the time since {@code start} (and flop operations) to the phase; returns the next phase's start. */
    static long lap(Phase p, long start, double flop) {
        long now = System.nanoTime(), cpu = cpuNow();
        WALL.addAndGet(p.ordinal(), now - start);
        CPU.addAndGet(p.ordinal(), cpu - lastCpu);
        FLOP.addAndGet(p.ordinal(), (long) flop);
        lastCpu = cpu;
        return now;
    }

    static long lap(Phase p, long start) { return lap(p, start, 0); }

    public static void reset() {
        for (int i = 0; i < N; i++) { WALL.set(i, 0); CPU.set(i, 0); FLOP.set(i, 0); }
    }

    /** Wall seconds per phase, in pipeline order. */
    public static Map<String, Double> seconds() {
        Map<String, Double> m = new LinkedHashMap<>();
        for (Phase p : Phase.values()) m.put(p.name().toLowerCase(), WALL.get(p.ordinal()) / 1e9);
        return m;
    }

    public static String report() {
        StringBuilder sb = new StringBuilder(String.format("  %-12s %9s %6s %9s %8s %13s%n", "phase", "wall s", "%", "CPU s", "GFLOP", "GFLOP/CPU-s"));
        long tw = 0, tc = 0, tf = 0;
        for (int i = 0; i < N; i++) { tw += WALL.get(i); tc += CPU.get(i); tf += FLOP.get(i); }
        for (Phase p : Phase.values()) {
            int i = p.ordinal();
            sb.append(row(p.name().toLowerCase(), WALL.get(i), tw, CPU.get(i), FLOP.get(i)));
        }
        sb.append(row("total", tw, tw, tc, tf));
        return sb.toString();
    }

    private static String row(String name, long wall, long totalWall, long cpu, long flop) {
        return String.format("  %-12s %9.2f %5.1f%% %9.2f %8.1f %13s%n", name, wall / 1e9, totalWall > 0 ? 100.0 * wall / totalWall : 0,
                cpu / 1e9, flop / 1e9, flop > 0 && cpu > 0 ? String.format("%.1f", (double) flop / cpu) : "");
    }
}
