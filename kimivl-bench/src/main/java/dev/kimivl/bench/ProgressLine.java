package dev.kimivl.bench;

import java.io.PrintStream;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.ValueLayout;

/**
 * The progress of generating a random benchmark model: on a terminal one line redrawn with \r (at most every
 * {@code periodNanos}, and at the end); on anything else (a log file, a pipe, CI) a plain line at every 10% and at
 * the end, since \r frames pile up there as one unreadable line (issue 12). As the CLI's {@code convert} does.
 */
final class ProgressLine {
    private final PrintStream out;
    private final boolean redraw;
    private final long periodNanos;
    private long lastDraw;
    private int lastTenth = -1;
    private boolean drawn;

    /** Redraws only when {@code out} is the process's stderr and that is a terminal. */
    ProgressLine(PrintStream out, long periodNanos) {
        this(out, out == System.err && stderrIsTerminal(), periodNanos);
    }

    ProgressLine(PrintStream out, boolean redraw, long periodNanos) {
        this.out = out;
        this.redraw = redraw;
        this.periodNanos = periodNanos;
    }

    /** Shows {@code text}, the progress at {@code done} of {@code total}; {@code last} forces the final state out. */
    void show(String text, long done, long total, boolean last) {
        long now = System.nanoTime();
        if (redraw) {
            if (!last && drawn && now - lastDraw < periodNanos) return;
            lastDraw = now;
            out.print("\r" + text);
        } else {
            int tenth = last || done >= total ? 10 : (int) Math.min(9, 10 * done / Math.max(1, total));
            if (tenth == lastTenth) return;
            lastTenth = tenth;
            out.println(text.strip());
        }
        drawn = true;
        out.flush();
    }

    /** Ends the redrawn line (a plain-line log has nothing to end). */
    void end() {
        if (redraw && drawn) out.println();
        out.flush();
    }

    /** Whether file descriptor 2 is a terminal (Java cannot ask: {@code System.console()} looks at stdin/stdout). */
    static boolean stderrIsTerminal() {
        try {
            Linker linker = Linker.nativeLinker();
            var isatty = linker.downcallHandle(linker.defaultLookup().find("isatty").orElseThrow(),
                    FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT));
            return (int) isatty.invokeExact(2) == 1;
        } catch (Throwable e) {
            return false;                                   // no libc to ask: plain lines are the safe choice
        }
    }
}
