package dev.kimivl.tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;

/**
 * Segments as the kernels want them. Vector loads from heap segments backed by byte[] run ~15× slower than from
 * native memory (measured: F32 matvec 2 vs 27 GB/s), and a kernel that has seen both mapped and plain native
 * segments loses its intrinsics to a polluted type profile. So kernels read one kind only: plain native segments.
 */
public final class Segments {
    private Segments() {}

    /**
     * A plain native view of {@code s}: mapped segments are re-viewed as plain native segments over the same
     * memory (same scope, no copy); heap segments are copied into native memory freed by the GC.
     */
    public static MemorySegment kernelView(MemorySegment s) {
        if (s.isNative()) return s.isMapped() ? s.reinterpret(s.byteSize()) : s;
        MemorySegment n = Arena.ofAuto().allocate(Math.max(1, s.byteSize()), 64).asSlice(0, s.byteSize());
        n.copyFrom(s);
        return n;
    }

    /** A new zeroed native segment (GC-managed). */
    public static MemorySegment allocate(long bytes) {
        return Arena.ofAuto().allocate(Math.max(1, bytes), 64).asSlice(0, bytes);
    }

    private static final MethodHandle MMAP, MADVISE, MUNMAP;
    private static final int PROT_RW = 0x3, MAP_PRIVATE_ANONYMOUS = 0x22, MADV_HUGEPAGE = 14, MADV_DONTNEED = 4;
    private static final long PAGE = 4096;

    static {
        MethodHandle m = null, a = null, u = null;
        try {
            Linker l = Linker.nativeLinker();
            var libc = l.defaultLookup();
            m = l.downcallHandle(libc.find("mmap").orElseThrow(), FunctionDescriptor.of(ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG,
                    ValueLayout.JAVA_LONG, ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_LONG));
            a = l.downcallHandle(libc.find("madvise").orElseThrow(),
                    FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG, ValueLayout.JAVA_INT));
            u = l.downcallHandle(libc.find("munmap").orElseThrow(),
                    FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG));
        } catch (Throwable e) {
            m = a = u = null;                       // no libc mmap: allocate() instead
        }
        MMAP = m;
        MADVISE = a;
        MUNMAP = u;
    }

    /** Bytes of each huge-page region that weights smaller than it are carved from (an expert's repacked matrix is 1.7 MB). */
    private static final long REGION = 256L << 20;
    private static MemorySegment region;
    private static long regionUsed;

    /**
     * A new zeroed native segment for long-lived weights (GC-managed), 64-byte aligned, in transparent huge pages where
     * the OS gives them: anonymous mappings advised MADV_HUGEPAGE (which THP's "madvise" mode needs), 512× fewer page
     * faults to fill and TLB entries to stream. Requests under {@link #REGION} share regions (a region is unmapped when
     * no segment carved from it is reachable). Without libc's mmap, {@link #allocate}.
     */
    public static synchronized MemorySegment allocateWeights(long bytes) {
        if (MMAP == null) return allocate(bytes);
        long need = (Math.max(1, bytes) + 63) & -64L;
        if (need >= REGION) {
            MemorySegment own = hugeMapping(need);
            return own == null ? allocate(bytes) : own.asSlice(0, bytes);
        }
        if (region == null || regionUsed + need > region.byteSize()) {
            region = hugeMapping(REGION);
            regionUsed = 0;
            if (region == null) return allocate(bytes);
        }
        MemorySegment slice = region.asSlice(regionUsed, bytes);
        regionUsed += need;
        return slice;
    }

    /** An anonymous mapping of len bytes rounded up to 2 MB, advised MADV_HUGEPAGE, unmapped by the GC; null if refused. */
    private static MemorySegment hugeMapping(long len) {
        try {
            long size = (len + (2 << 20) - 1) & -(2L << 20);
            long addr = (long) MMAP.invokeExact(0L, size, PROT_RW, MAP_PRIVATE_ANONYMOUS, -1, 0L);
            if (addr == -1L || addr == 0L) return null;
            int ignored = (int) MADVISE.invokeExact(addr, size, MADV_HUGEPAGE);     // a hint: 4 KB pages if refused
            return MemorySegment.ofAddress(addr).reinterpret(size, Arena.ofAuto(), seg -> {
                try {
                    int rc = (int) MUNMAP.invokeExact(seg.address(), seg.byteSize());
                } catch (Throwable t) {
                    // the mapping is leaked, not corrupted
                }
            });
        } catch (Throwable t) {
            return null;
        }
    }

    /**
     * Unmaps this process's pages of a file mapping's whole pages inside {@code s} ({@code madvise(MADV_DONTNEED)}), so
     * they leave its resident set. Only for a read-only file mapping ({@link MemorySegment#isMapped}), where a later read
     * faults the file's bytes back in; anything else (heap, anonymous memory, which the advice would zero) is left alone.
     * Returns whether the advice was given.
     */
    public static boolean releaseMappedPages(MemorySegment s) {
        if (MADVISE == null || !s.isNative() || !s.isMapped()) return false;
        long a = s.address(), from = (a + PAGE - 1) & -PAGE, to = (a + s.byteSize()) & -PAGE;
        if (to <= from) return false;
        try {
            return (int) MADVISE.invokeExact(from, to - from, MADV_DONTNEED) == 0;
        } catch (Throwable e) {
            return false;
        }
    }
}
