package dev.kimivl.tensor;

import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLongArray;

/**
 * The one profiling mechanism of the forward passes: time per phase (an enum), accumulated over calls, process-wide.
 * The language model's phases ({@code dev.kimivl.model.PhaseTimer}) and MoonViT's ({@code dev.kimivl.vision.VisionTimer})
 * are two instances. A pass calls {@link #begin()} once, then {@link #lap} after each step: the time since the
 * previous lap (or the begin) is added to the named phase, so the code reads step, lap, step, lap with no timestamps
 * threaded through it. The lap start is per thread, so passes on different threads do not mix their intervals (their
 * sums simply add up).
 *
 * <p>Per phase: wall nanoseconds, calls, the floating-point operations the caller declares, and, when the instance
 * keeps a CPU clock, process CPU nanoseconds (on a machine shared with other work the CPU time shows what a phase costs
 * on free cores; exact only for one pass at a time, as the clock is process-wide). When disabled, {@link #begin} and
 * {@link #lap} cost one volatile read.
 */
public final class Phases<E extends Enum<E>> {
    private final E[] phases;
    private final boolean cpuClock;
    private volatile boolean enabled;
    private final AtomicLongArray wall, cpu, flop, calls;
    /** This thread's lap start: [wall ns, process CPU ns]. */
    private final ThreadLocal<long[]> last = ThreadLocal.withInitial(() -> new long[2]);
    private static final com.sun.management.OperatingSystemMXBean OS =
            java.lang.management.ManagementFactory.getOperatingSystemMXBean() instanceof com.sun.management.OperatingSystemMXBean b ? b : null;

    /** @param cpuClock also read the process CPU clock at each lap (one system call) */
    public Phases(Class<E> type, boolean enabled, boolean cpuClock) {
        this.phases = type.getEnumConstants();
        this.enabled = enabled;
        this.cpuClock = cpuClock;
        int n = phases.length;
        wall = new AtomicLongArray(n);
        cpu = new AtomicLongArray(n);
        flop = new AtomicLongArray(n);
        calls = new AtomicLongArray(n);
    }

    /** Turns the laps on or off; a thread's first lap after turning on only starts its interval if it did not begin. */
    public void enable(boolean on) { enabled = on; }

    public boolean enabled() { return enabled; }

    /** Starts this thread's laps. */
    public void begin() {
        if (!enabled) return;
        long[] t = last.get();
        t[0] = System.nanoTime();
        t[1] = cpuNow();
    }

    /** Adds the time since this thread's previous lap (or {@link #begin}) to phase p. */
    public void lap(E p) { lap(p, 0); }

    /** Adds the time since this thread's previous lap (or {@link #begin}) and {@code ops} operations to phase p. */
    public void lap(E p, double ops) {
        if (!enabled) return;
        long[] t = last.get();
        long now = System.nanoTime(), c = cpuNow();
        if (t[0] != 0) {                                    // 0: no begin on this thread since enabled; only start
            int i = p.ordinal();
            wall.addAndGet(i, now - t[0]);
            if (cpuClock) cpu.addAndGet(i, c - t[1]);
            flop.addAndGet(i, (long) ops);
            calls.incrementAndGet(i);
        }
        t[0] = now;
        t[1] = c;
    }

    private long cpuNow() { return cpuClock && OS != null ? OS.getProcessCpuTime() : 0; }

    public void reset() {
        for (int i = 0; i < phases.length; i++) { wall.set(i, 0); cpu.set(i, 0); flop.set(i, 0); calls.set(i, 0); }
    }

    /** Wall seconds per phase in declaration order, lower-case names; {@code all}: also the phases never lapped. */
    public Map<String, Double> seconds(boolean all) {
        Map<String, Double> m = new LinkedHashMap<>();
        for (E p : phases) if (all || calls.get(p.ordinal()) > 0) m.put(name(p), wall.get(p.ordinal()) / 1e9);
        return m;
    }

    /** A table: wall seconds, share, CPU seconds, GFLOP and GFLOP per CPU-second per phase, and the total. */
    public String report() {
        StringBuilder sb = new StringBuilder(String.format("  %-12s %9s %6s %9s %8s %13s%n", "phase", "wall s", "%", "CPU s", "GFLOP", "GFLOP/CPU-s"));
        long tw = 0, tc = 0, tf = 0;
        for (int i = 0; i < phases.length; i++) { tw += wall.get(i); tc += cpu.get(i); tf += flop.get(i); }
        for (E p : phases) {
            int i = p.ordinal();
            sb.append(row(name(p), wall.get(i), tw, cpu.get(i), flop.get(i)));
        }
        sb.append(row("total", tw, tw, tc, tf));
        return sb.toString();
    }

    private static String name(Enum<?> p) { return p.name().toLowerCase(Locale.ROOT); }

    private static String row(String name, long wall, long totalWall, long cpu, long flop) {
        return String.format("  %-12s %9.2f %5.1f%% %9.2f %8.1f %13s%n", name, wall / 1e9, totalWall > 0 ? 100.0 * wall / totalWall : 0,
                cpu / 1e9, flop / 1e9, flop > 0 && cpu > 0 ? String.format("%.1f", (double) flop / cpu) : "");
    }
}
