package dev.kimivl.io;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.file.Path;

/**
 * Drops a freshly written weight file from the page cache (Linux {@code posix_fadvise(POSIX_FADV_DONTNEED)}), so that
 * the first run reads it back from disk instead of using the pages the writer left behind.
 *
 * <p>Why: a GGUF written through a mapping (convert, the bench's generator) stays cached as the writer's 4 KiB pages,
 * and decode streaming those was much slower than streaming the same file read back: the full-size Q4_K_M bench file
 * decoded at 9.4-11.6 tok/s right after it was written and at 16.4-18.7 tok/s once its cached pages were dropped
 * (same binary, one after the other, 2026-12-06; readahead caches a file read from disk in large folios). The cost
 * is one read of the file from disk on the next load.
 */
public final class PageCache {
    private PageCache() {}

    private static final int O_RDONLY = 0, POSIX_FADV_DONTNEED = 4;
    private static final MethodHandle OPEN, FADVISE, CLOSE;

    static {
        MethodHandle o = null, f = null, c = null;
        try {
            Linker l = Linker.nativeLinker();
            var libc = l.defaultLookup();
            o = l.downcallHandle(libc.find("open").orElseThrow(),
                    FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.JAVA_INT), Linker.Option.firstVariadicArg(2));
            f = l.downcallHandle(libc.find("posix_fadvise").orElseThrow(),
                    FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG, ValueLayout.JAVA_INT));
            c = l.downcallHandle(libc.find("close").orElseThrow(), FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT));
        } catch (Throwable e) {
            o = f = c = null;                       // not Linux / no libc: nothing to drop
        }
        OPEN = o;
        FADVISE = f;
        CLOSE = c;
    }

    /**
     * Unmaps this process's pages of a file mapping's whole pages inside {@code s} ({@code madvise(MADV_DONTNEED)}), so
     * they leave its resident set: for weights copied elsewhere (a repacked matrix) and not read through the mapping
     * again ({@link dev.kimivl.tensor.Segments#releaseMappedPages}, which holds the mmap family of libc calls): only a
     * read-only file mapping; heap and anonymous memory are left alone. Returns whether the advice was given.
     */
    public static boolean release(java.lang.foreign.MemorySegment s) { return dev.kimivl.tensor.Segments.releaseMappedPages(s); }

    /**
     * Asks the kernel to drop {@code file}'s cached pages (they must be written back already, e.g. after
     * {@code force()}). Returns true when the advice was given; false where it cannot be (no libc, the file cannot be
     * opened): the file is fine either way, only the next load may be slower.
     */
    public static boolean drop(Path file) {
        if (OPEN == null) return false;
        try (Arena arena = Arena.ofConfined()) {
            int fd = (int) OPEN.invokeExact(arena.allocateFrom(file.toAbsolutePath().toString()), O_RDONLY);
            if (fd < 0) return false;
            try {
                return (int) FADVISE.invokeExact(fd, 0L, 0L, POSIX_FADV_DONTNEED) == 0;
            } finally {
                int ignored = (int) CLOSE.invokeExact(fd);
            }
        } catch (Throwable e) {
            return false;
        }
    }
}
