package dev.kimivl.io;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/** {@link PageCache#drop}: a written file's cached pages are gone afterwards (mincore, through isLoaded), its bytes intact. */
class PageCacheTest {
    @Test
    void aWrittenFilesPagesLeaveTheCacheAndItsBytesStay(@TempDir Path dir) throws Exception {
        assumeTrue(System.getProperty("os.name").toLowerCase().contains("linux"), "posix_fadvise is Linux's");
        // on tmpfs the cache is the file's only copy: nothing can be dropped there
        assumeTrue(!Files.getFileStore(dir).type().equals("tmpfs"), "the temporary directory is on tmpfs");
        Path f = dir.resolve("w.bin");
        byte[] data = new byte[8 << 20];
        new Random(1).nextBytes(data);
        try (FileChannel ch = FileChannel.open(f, StandardOpenOption.CREATE, StandardOpenOption.WRITE)) {
            ch.write(java.nio.ByteBuffer.wrap(data));
            ch.force(true);                                   // written back: clean pages can be dropped
        }
        assertArrayEquals(data, Files.readAllBytes(f));       // and now surely cached
        assertTrue(resident(f), "cached after the read");
        assertTrue(PageCache.drop(f));
        assertFalse(resident(f), "dropped");
        assertArrayEquals(data, Files.readAllBytes(f), "read back from disk");
        assertFalse(PageCache.drop(dir.resolve("missing.bin")), "a file that cannot be opened: false, no exception");
    }

    /**
     * {@link PageCache#release}: advised on a read-only file mapping (a repacked tensor's), whose bytes read back the
     * same afterwards; refused on heap and anonymous memory, where MADV_DONTNEED would zero them, which keep their bytes.
     */
    @Test
    void releaseIsOnlyForFileMappingsAndLosesNoBytes(@TempDir Path dir) throws Exception {
        assumeTrue(System.getProperty("os.name").toLowerCase().contains("linux"), "madvise is Linux's");
        Path f = dir.resolve("w.bin");
        byte[] data = new byte[3 << 20];
        new Random(2).nextBytes(data);
        Files.write(f, data);
        try (FileChannel ch = FileChannel.open(f, StandardOpenOption.READ); Arena a = Arena.ofConfined()) {
            MemorySegment m = ch.map(FileChannel.MapMode.READ_ONLY, 0, ch.size(), a);
            assertArrayEquals(data, m.toArray(java.lang.foreign.ValueLayout.JAVA_BYTE));
            assertTrue(PageCache.release(m.asSlice(100, data.length - 200)), "whole pages inside a mapped slice");
            assertArrayEquals(data, m.toArray(java.lang.foreign.ValueLayout.JAVA_BYTE), "faulted back from the file");
            MemorySegment anon = a.allocate(1 << 20, 4096);
            anon.fill((byte) 7);
            assertFalse(PageCache.release(anon), "anonymous memory is left alone");
            assertEquals(7, anon.get(java.lang.foreign.ValueLayout.JAVA_BYTE, 12345));
            assertFalse(PageCache.release(MemorySegment.ofArray(new byte[1 << 20])), "heap memory is left alone");
        }
    }

    /** Whether every page of the file is in memory (mincore; a mapping's isLoaded does not fault pages in). */
    private static boolean resident(Path f) throws Exception {
        try (FileChannel ch = FileChannel.open(f, StandardOpenOption.READ); Arena a = Arena.ofConfined()) {
            MemorySegment m = ch.map(FileChannel.MapMode.READ_ONLY, 0, ch.size(), a);
            return m.isLoaded();
        }
    }
}
