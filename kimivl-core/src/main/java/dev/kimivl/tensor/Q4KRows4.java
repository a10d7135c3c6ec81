package dev.kimivl.tensor;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Q4_K rows regrouped 4 at a time ("R4"), the layout of the AVX-512 decode matvec kv_matvec_q4k_r4 (kimivl_avx512.c,
 * where the byte layout is drawn): per group of 4 rows and super-block of 256 columns, {@link #GROUP_SB_BYTES} = 592
 * bytes holding the 4 rows' 576 (their f16 scales side by side, their 6-bit sub-block scales and mins unpacked to
 * bytes, their nibbles interleaved 16 bytes a row). One 512-bit load then carries the same 16 columns of 4 rows, so
 * the per-super-block scale work that the row kernel pays per row is paid once per 4 rows: on one core 17 → 35 GB/s
 * in cache, and from memory (with every line prefetched) 7 → 13 GB/s on one core and 13 → 24 on two, same results bit
 * for bit (Intel VM of session 29; C harness over 1.5 GB of [1.3M, 2048] rows). docs/benchmarks.md has the numbers.
 *
 * <p>A matrix is repacked once, at load ({@link QuantMatrix#repackedQ4K}), into memory of its own; the batched
 * products read each row back in the Q4_K layout (kimivl_avx512.c's gemm512 and gemm_kq512, row by row) and the Java
 * paths through {@link #unpackRow}, so every product gives the plain matrix's floats.
 */
final class Q4KRows4 {
    private Q4KRows4() {}

    /** Bytes of one group of 4 rows per super-block (the 4 rows' 576 plus 16 for the unpacked scales). */
    static final int GROUP_SB_BYTES = 592;

    /** Widest row the R4 kernels take (kimivl_avx512.c's KQ512_MAX_COLS). */
    static final int MAX_COLS = 16384;

    /** True when a Q4_K matrix of this shape can be repacked and multiplied in the R4 layout on this machine. */
    static boolean eligible(DType type, int rows, int cols) {
        return type == DType.Q4_K && rows > 0 && rows % 4 == 0 && cols % 256 == 0 && cols <= MAX_COLS && NativeKernels.hasQ4KRows4();
    }

    /** Bytes of a group of 4 rows of {@code cols} columns. */
    static long groupBytes(int cols) { return (long) (cols / 256) * GROUP_SB_BYTES; }

    /** Bytes of the whole groups holding {@code rows} rows (counted from a group's first row) of {@code cols} columns. */
    static long bytes(long rows, int cols) { return groupBytes(cols) * ((rows + 3) / 4); }

    /** The rows [rows, cols] of a plain Q4_K segment repacked into new memory (freed when no longer reachable). */
    static MemorySegment pack(MemorySegment plain, int rows, int cols) {
        MemorySegment dst = Segments.allocateWeights(bytes(rows, cols));
        Parallel.forRange(rows / 4, 64, (g0, g1) -> NativeKernels.packQ4KRows4(plain, g0, g1, cols, dst));
        return dst;
    }

    /**
     * Physical row {@code r} of an R4 segment (counted from its first group) back in the Q4_K layout: cols/256 blocks
     * of 144 bytes into dst from byte {@code at}. The inverse of the packing, byte for byte (kv_q4k_r4_unpack in Java).
     */
    static void unpackRow(MemorySegment w4, int r, int cols, MemorySegment dst, long at) {
        int nsb = cols / 256, i = r & 3;
        long g = (long) (r >> 2) * nsb * GROUP_SB_BYTES;
        for (int s = 0; s < nsb; s++) {
            long o = g + (long) s * GROUP_SB_BYTES, p = at + 144L * s, sc = o + 16 + 16 * i, mn = sc + 8;
            MemorySegment.copy(w4, o + 2 * i, dst, p, 2);
            MemorySegment.copy(w4, o + 8 + 2 * i, dst, p + 2, 2);
            // the 12 bytes of 6-bit scales and mins, as Q4_K packs them (kimivl_common.h's k_scales, inverted)
            for (int k = 0; k < 4; k++) {
                int sLo = b(w4, sc + k), sHi = b(w4, sc + k + 4), mLo = b(w4, mn + k), mHi = b(w4, mn + k + 4);
                dst.set(ValueLayout.JAVA_BYTE, p + 4 + k, (byte) ((sLo & 63) | (sHi >> 4) << 6));
                dst.set(ValueLayout.JAVA_BYTE, p + 8 + k, (byte) ((mLo & 63) | (mHi >> 4) << 6));
                dst.set(ValueLayout.JAVA_BYTE, p + 12 + k, (byte) ((sHi & 15) | (mHi & 15) << 4));
            }
            for (int j = 0; j < 4; j++) {
                MemorySegment.copy(w4, o + 80 + 128 * j + 16 * i, dst, p + 16 + 32 * j, 16);
                MemorySegment.copy(w4, o + 80 + 128 * j + 64 + 16 * i, dst, p + 16 + 32 * j + 16, 16);
            }
        }
    }

    private static int b(MemorySegment s, long at) { return s.get(ValueLayout.JAVA_BYTE, at) & 0xFF; }
}
