package dev.kimivl.tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

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
}
