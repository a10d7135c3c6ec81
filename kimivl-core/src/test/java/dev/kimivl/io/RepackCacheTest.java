package dev.kimivl.io;

import dev.kimivl.tensor.DType;
import dev.kimivl.tensor.QuantMatrix;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * {@link RepackCache}: the first load repacks and writes the rows; the next maps them; a cached file serves only the
 * bytes it was made from (changed bytes, a truncated file: repacked again); an unwritable directory costs nothing but
 * the cache. Every result multiplies like the plain matrix, bit for bit.
 */
class RepackCacheTest {
    private static final int ROWS = 16, COLS = 512;

    /** A random Q4_K file [ROWS, COLS] (finite f16 scales) mapped read-only, as a GGUF tensor is. */
    private static MemorySegment q4kFile(Path f, long seed, Arena arena) throws Exception {
        byte[] b = new byte[(int) DType.Q4_K.bytesFor((long) ROWS * COLS)];
        Random rnd = new Random(seed);
        rnd.nextBytes(b);
        MemorySegment h = MemorySegment.ofArray(b);
        for (int o = 0; o < b.length; o += 144) {
            h.set(ValueLayout.JAVA_SHORT_UNALIGNED, o, Float.floatToFloat16((rnd.nextFloat() - 0.5f) * 0.02f));
            h.set(ValueLayout.JAVA_SHORT_UNALIGNED, o + 2, Float.floatToFloat16((rnd.nextFloat() - 0.5f) * 0.02f));
        }
        Files.write(f, b);
        try (FileChannel ch = FileChannel.open(f, StandardOpenOption.READ)) {
            return ch.map(FileChannel.MapMode.READ_ONLY, 0, b.length, arena);
        }
    }

    private static void assertSameProducts(QuantMatrix want, QuantMatrix got) {
        float[] x = new float[COLS];
        for (int i = 0; i < COLS; i++) x[i] = (float) Math.cos(0.37 * i) * (i % 41 == 0 ? 9 : 1);
        float[] a = new float[ROWS], b = new float[ROWS];
        want.matvec(x, 0, a, 0);
        got.matvec(x, 0, b, 0);
        for (int r = 0; r < ROWS; r++) assertEquals(Float.floatToRawIntBits(a[r]), Float.floatToRawIntBits(b[r]), "row " + r);
    }

    private static List<Path> files(Path dir) throws Exception {
        try (Stream<Path> s = Files.list(dir)) { return s.sorted().toList(); }
    }

    @Test
    void firstLoadWritesTheNextMapsAndChangedBytesMiss(@TempDir Path tmp) throws Exception {
        Path cache = tmp.resolve("cache");
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment stored = q4kFile(tmp.resolve("a.bin"), 1, arena);
            QuantMatrix plain = new QuantMatrix(stored, DType.Q4_K, ROWS, COLS);
            assumeTrue(plain.repackedQ4K() != plain, "no R4 layout on this machine (AVX-512 native kernels)");

            QuantMatrix first = RepackCache.repacked(plain, stored, cache);
            assertTrue(first.isRepacked());
            assertSameProducts(plain, first);
            List<Path> written = files(cache);
            assertEquals(1, written.size(), written.toString());
            Path file = written.getFirst();
            assertEquals(QuantMatrix.repackedBytes(ROWS, COLS), Files.size(file));
            assertTrue(file.getFileName().toString().startsWith("q4k-16x512-"), file.toString());
            long stamp = Files.getLastModifiedTime(file).toMillis();

            QuantMatrix second = RepackCache.repacked(plain, stored, cache);
            assertTrue(second.isRepacked());
            assertSameProducts(plain, second);
            assertEquals(List.of(file), files(cache), "mapped, not written again");
            assertEquals(stamp, Files.getLastModifiedTime(file).toMillis());
            assertEquals(-1, second.segment().mismatch(first.segment()), "the mapped rows are the repacked ones");

            // other bytes of the same shape: another file
            MemorySegment other = q4kFile(tmp.resolve("b.bin"), 2, arena);
            QuantMatrix plainB = new QuantMatrix(other, DType.Q4_K, ROWS, COLS);
            assertSameProducts(plainB, RepackCache.repacked(plainB, other, cache));
            assertEquals(2, files(cache).size());

            // a truncated cache file is not read: repacked and written again
            try (FileChannel ch = FileChannel.open(file, StandardOpenOption.WRITE)) { ch.truncate(100); }
            assertSameProducts(plain, RepackCache.repacked(plain, stored, cache));
            assertEquals(QuantMatrix.repackedBytes(ROWS, COLS), Files.size(file));
        }
    }

    @Test
    void anUnwritableDirectoryOnlyLosesTheCache(@TempDir Path tmp) throws Exception {
        Path notADir = tmp.resolve("file");
        Files.writeString(notADir, "x");
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment stored = q4kFile(tmp.resolve("a.bin"), 3, arena);
            QuantMatrix plain = new QuantMatrix(stored, DType.Q4_K, ROWS, COLS);
            assumeTrue(plain.repackedQ4K() != plain, "no R4 layout on this machine (AVX-512 native kernels)");
            QuantMatrix r = RepackCache.repacked(plain, stored, notADir.resolve("r4"));
            assertTrue(r.isRepacked());
            assertSameProducts(plain, r);
            QuantMatrix none = RepackCache.repacked(plain, stored, null);
            assertTrue(none.isRepacked());
            assertSameProducts(plain, none);
        }
    }
}
