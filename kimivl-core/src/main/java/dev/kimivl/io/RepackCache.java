package dev.kimivl.io;

import dev.kimivl.tensor.QuantMatrix;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.zip.CRC32;
import java.util.zip.CRC32C;

/**
 * Q4_K matrices repacked at load ({@code -Dkimivl.repackQ4K=true}, {@link QuantMatrix#repackedQ4K}) kept on disk, so
 * that only the first load of a model pays for the repacking: on session 29's VM most of that cost was the kernel
 * zeroing 6 GB of fresh anonymous memory (11-23 s for a Q4_K_M file, against 0.7 s for a plain load).
 *
 * <p>Content-addressed: a matrix's file is named by its shape and two checksums of its stored bytes (CRC32C and CRC32,
 * computed at every load), so a cached file can only serve the bytes it was made from, wherever the model file lies
 * or whatever it is called; a changed file misses and is repacked. Files are written whole to a temporary name, then
 * renamed, and are read back only at their exact size. Where the directory cannot be written, the repacked rows stay in
 * memory for this run only and nothing fails.
 *
 * <p>Directory: {@code -Dkimivl.repackCache=DIR}, default {@code $XDG_CACHE_HOME/kimivl/r4} or {@code ~/.cache/kimivl/r4};
 * {@code none} turns the cache off.
 */
public final class RepackCache {
    private RepackCache() {}

    /** The cache directory, or null when turned off. */
    static Path directory() {
        String p = System.getProperty("kimivl.repackCache");
        if (p != null) return p.isBlank() || p.equals("none") ? null : Path.of(p);
        String xdg = System.getenv("XDG_CACHE_HOME");
        Path base = xdg != null && !xdg.isBlank() ? Path.of(xdg) : Path.of(System.getProperty("user.home"), ".cache");
        return base.resolve("kimivl").resolve("r4");
    }

    /**
     * The repacked form of {@code plain} (a Q4_K matrix over {@code stored}, the tensor's bytes): mapped from the cache
     * when a file of these bytes is there, else repacked now and written there for the next load. The file's pages of
     * {@code stored} are released from the resident set either way (their bytes are not read through the mapping again).
     */
    static QuantMatrix repacked(QuantMatrix plain, MemorySegment stored) { return repacked(plain, stored, directory()); }

    /** As {@link #repacked(QuantMatrix, MemorySegment)} with the cache in {@code dir} (null: none). */
    static QuantMatrix repacked(QuantMatrix plain, MemorySegment stored, Path dir) {
        if (dir == null) return repackNow(plain, stored, null);
        Path file = dir.resolve(key(plain, stored));
        long size = QuantMatrix.repackedBytes(plain.rows(), plain.cols());
        try {
            if (Files.size(file) == size) {
                try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
                    MemorySegment m = ch.map(FileChannel.MapMode.READ_ONLY, 0, size, Arena.ofAuto());
                    PageCache.release(stored);
                    return QuantMatrix.ofRepackedQ4K(m, plain.rows(), plain.cols());
                }
            }
        } catch (IOException | RuntimeException e) {
            // absent, unreadable or the wrong size: repacked now
        }
        return repackNow(plain, stored, file);
    }

    /** Whether this process has said that it is repacking (once: the first load of a model repacks thousands of matrices). */
    private static final AtomicBoolean ANNOUNCED = new AtomicBoolean();

    private static QuantMatrix repackNow(QuantMatrix plain, MemorySegment stored, Path file) {
        if (ANNOUNCED.compareAndSet(false, true)) {
            // a load that repacks takes seconds to tens of seconds longer: say why, once, where a user sees it
            System.err.println("kimivl: regrouping the Q4_K weight rows for the AVX-512 decode kernels"
                    + (file != null ? " (once per model: kept in " + file.getParent() + "; -Dkimivl.repackCache=none keeps nothing,"
                    : " (not cached:") + " -Dkimivl.repackQ4K=false turns it off)");
        }
        QuantMatrix r4 = plain.repackedQ4K();
        PageCache.release(stored);
        if (file != null && r4 != plain) write(file, r4.segment());
        return r4;
    }

    /** Writes bytes to file through a temporary name (then renamed), dropping the written pages; false where it could not. */
    static boolean write(Path file, MemorySegment bytes) {
        Path tmp = null;
        try {
            Files.createDirectories(file.getParent());
            tmp = Files.createTempFile(file.getParent(), file.getFileName().toString(), ".tmp");
            try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.WRITE)) {
                ByteBuffer b = bytes.asByteBuffer();
                while (b.hasRemaining()) ch.write(b);
                ch.force(false);
            }
            try {
                Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING);
            }
            // written pages are cached as 4 KiB pages, which stream slower than a later run's readahead (PageCache)
            PageCache.drop(file);
            return true;
        } catch (IOException | RuntimeException e) {
            if (tmp != null) {
                try {
                    Files.deleteIfExists(tmp);
                } catch (IOException ignored) {
                    // a stray temporary file; the next write makes another
                }
            }
            return false;
        }
    }

    /** The file name of a matrix's repacked rows: shape and two checksums of its stored bytes. */
    static String key(QuantMatrix plain, MemorySegment stored) {
        long bytes = plain.dtype().bytesFor((long) plain.rows() * plain.cols());
        CRC32C c = new CRC32C();
        CRC32 d = new CRC32();
        for (long o = 0; o < bytes; o += 1 << 30) {
            ByteBuffer b = stored.asSlice(o, Math.min(1L << 30, bytes - o)).asByteBuffer();
            c.update(b.duplicate());
            d.update(b);
        }
        return String.format("q4k-%dx%d-%08x%08x.r4", plain.rows(), plain.cols(), c.getValue(), d.getValue());
    }
}
