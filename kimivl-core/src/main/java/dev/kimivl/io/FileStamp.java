package dev.kimivl.io;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.nio.file.attribute.FileTime;

/**
 * What a memory-mapped weight file was when it was mapped: its size, modification time and identity (inode). Weights
 * are read straight from the mapping, so a file truncated under a running process makes the next read of a page past
 * the new end fault (SIGBUS: a crash of the whole JVM inside a native kernel or C2-compiled vector code, an
 * InternalError only in interpreted code), and a file rewritten in place shows its new bytes under offsets parsed
 * from the old header. Nothing can stop another
 * process from doing that (Linux has no mandatory locks, and truncation unmaps even resident pages), but one stat
 * per file tells it cheaply: {@link #check()} before each use turns a changed file into a one-line error instead of
 * a fault. What it cannot catch is a change during a pass that has already started.
 */
public record FileStamp(Path path, long size, FileTime modified, Object fileKey) {

    /** The stamp of the file {@code ch} has open at {@code path}, taken when it is mapped. */
    public static FileStamp of(Path path, FileChannel ch) throws IOException {
        BasicFileAttributes a = Files.readAttributes(path, BasicFileAttributes.class);
        return new FileStamp(path, ch.size(), a.lastModifiedTime(), a.fileKey());
    }

    /** Throws a {@link CheckpointException} naming the file when it is no longer the file that was mapped. */
    public void check() {
        BasicFileAttributes now;
        try {
            now = Files.readAttributes(path, BasicFileAttributes.class);
        } catch (NoSuchFileException e) {
            throw new CheckpointException(path + ": deleted or moved since it was loaded; restart kimivl to load the model again", e);
        } catch (IOException e) {
            throw new CheckpointException(path + ": cannot be checked since it was loaded (" + e.getMessage() + ")", e);
        }
        if (fileKey != null && !fileKey.equals(now.fileKey())) {
            throw new CheckpointException(path + ": replaced by another file since it was loaded (the weights in memory are the old file's); restart kimivl to load the new one");
        }
        if (now.size() < size) {
            throw new CheckpointException(path + ": truncated to " + now.size() + " bytes since it was loaded (" + size
                    + " bytes mapped), so its weights can no longer be read; restart kimivl with a complete file");
        }
        if (now.size() != size || !now.lastModifiedTime().equals(modified)) {
            throw new CheckpointException(path + ": modified since it was loaded (" + size + " bytes at " + modified + ", now " + now.size()
                    + " bytes at " + now.lastModifiedTime() + "), so the weights in memory may be part old, part new; restart kimivl to load it again");
        }
    }
}
