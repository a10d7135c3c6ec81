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

    /** Whether every page of the file is in memory (mincore; a mapping's isLoaded does not fault pages in). */
    private static boolean resident(Path f) throws Exception {
        try (FileChannel ch = FileChannel.open(f, StandardOpenOption.READ); Arena a = Arena.ofConfined()) {
            MemorySegment m = ch.map(FileChannel.MapMode.READ_ONLY, 0, ch.size(), a);
            return m.isLoaded();
        }
    }
}
