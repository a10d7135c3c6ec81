package dev.kimivl.cli;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;

/**
 * The process's standard error as the CLI needs it: whether it is a terminal (progress redraws a line with \r only
 * there; a log file or a pipe gets plain lines), and taking back the real stderr from the launcher.
 *
 * <p>Java has no way to ask whether file descriptor 2 is a terminal ({@code System.console()} looks at stdin and
 * stdout), so libc's {@code isatty} is called through FFM, which the launcher already enables.
 */
final class Terminal {
    private Terminal() {}

    /** Whether stderr is a terminal; false where libc cannot be called (then plain lines are the safe choice). */
    static boolean stderrIsTerminal() {
        try {
            return (int) libc("isatty", FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT)).invokeExact(2) == 1;
        } catch (Throwable e) {
            return false;
        }
    }

    /**
     * The launcher starts the JVM with stderr piped through a filter that drops the JVM's "WARNING: Using incubator
     * modules" line (printed before main and impossible to switch off while the Vector API incubates) and passes the
     * real stderr as the descriptor named by {@code -Dkimivl.stderrFd}. Putting that descriptor back on 2 ends the
     * filter: from here on everything (Java's System.err, the JVM's own messages, native code) reaches the real
     * stderr directly, unbuffered and in order, and progress sees the real terminal. Without the property (java run
     * by hand, tests) nothing happens.
     */
    static void restoreStderr() {
        String fd = System.getProperty("kimivl.stderrFd");
        if (fd == null || fd.isBlank()) return;
        try {
            int saved = Integer.parseInt(fd.strip());
            System.err.flush();
            FunctionDescriptor intInt = FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_INT);
            if ((int) libc("dup2", intInt).invokeExact(saved, 2) == 2) {
                int ignored = (int) libc("close", FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT)).invokeExact(saved);
            }
        } catch (Throwable e) {
            // the filter keeps forwarding stderr: nothing is lost, and stderr (a pipe now) gets plain progress lines
        }
    }

    private static MethodHandle libc(String name, FunctionDescriptor fd) {
        Linker linker = Linker.nativeLinker();
        return linker.downcallHandle(linker.defaultLookup().find(name).orElseThrow(), fd);
    }
}
