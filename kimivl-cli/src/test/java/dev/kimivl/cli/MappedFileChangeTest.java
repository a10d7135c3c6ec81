package dev.kimivl.cli;

import dev.kimivl.io.CheckpointException;
import dev.kimivl.io.SafetensorsCheckpoint;
import dev.kimivl.io.gguf.GgufModel;
import dev.kimivl.model.KimiVL;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.FileTime;

import static org.junit.jupiter.api.Assertions.*;

/** Issue 12 item 4: a weight file truncated, rewritten or replaced after it was mapped is a one-line error, not a crash. */
class MappedFileChangeTest {

    static void truncate(Path f, long size) throws Exception {
        try (FileChannel ch = FileChannel.open(f, StandardOpenOption.WRITE)) {
            ch.truncate(size);
        }
    }

    static String changed(dev.kimivl.io.WeightSource w) {
        return assertThrows(CheckpointException.class, w::checkUnchanged).getMessage();
    }

    @Test
    void aSafetensorsFileTruncatedRewrittenReplacedOrDeletedIsNamed(@TempDir Path tmp) throws Exception {
        Path m = CliErrorsTest.copyOfTiny(tmp);
        Path st = m.resolve("model.safetensors");
        long size = Files.size(st);
        try (SafetensorsCheckpoint c = SafetensorsCheckpoint.open(m)) {
            c.checkUnchanged();                                     // untouched: no error
            Files.setLastModifiedTime(st, FileTime.fromMillis(Files.getLastModifiedTime(st).toMillis() + 5000));
            assertTrue(changed(c).matches(".*model\\.safetensors: modified since it was loaded \\(" + size + " bytes at .*, now " + size + " bytes at .*"), changed(c));
        }
        try (SafetensorsCheckpoint c = SafetensorsCheckpoint.open(m)) {
            truncate(st, 1000);
            assertEquals(st + ": truncated to 1000 bytes since it was loaded (" + size
                    + " bytes mapped), so its weights can no longer be read; restart kimivl with a complete file", changed(c));
        }
        Files.copy(CliTest.TINY.resolve("model.safetensors"), st, StandardCopyOption.REPLACE_EXISTING);
        try (SafetensorsCheckpoint c = SafetensorsCheckpoint.open(m)) {
            Path other = Files.copy(st, tmp.resolve("other.safetensors"));
            Files.move(other, st, StandardCopyOption.REPLACE_EXISTING);   // a new inode under the same name
            assertTrue(changed(c).startsWith(st + ": replaced by another file since it was loaded"), changed(c));
            Files.delete(st);
            assertTrue(changed(c).startsWith(st + ": deleted or moved since it was loaded"), changed(c));
        }
    }

    @Test
    void aTruncatedGgufIsNamed(@TempDir Path tmp) throws Exception {
        Path text = Files.copy(CliErrorsTest.GGUF.resolve("text-f32.gguf"), tmp.resolve("text.gguf"));
        Path mmproj = Files.copy(CliErrorsTest.GGUF.resolve("mmproj-f32.gguf"), tmp.resolve("mmproj.gguf"));
        try (GgufModel g = GgufModel.open(text, mmproj)) {
            g.checkUnchanged();
            truncate(mmproj, 100);
            assertTrue(changed(g).startsWith(mmproj + ": truncated to 100 bytes since it was loaded"), changed(g));
        }
    }

    @Test
    void aFaultFromATruncatedCheckpointIsReportedAsTheFile(@TempDir Path tmp) throws Exception {
        Path m = CliErrorsTest.copyOfTiny(tmp);
        Path st = m.resolve("model.safetensors");
        // the JVM's own report of a lost mapped page; it is not provoked here: where the read is C2-compiled vector
        // code or a native kernel, the same SIGBUS ends the JVM instead (it did end this test's JVM when it tried)
        Throwable fault = new RuntimeException("forward failed", new InternalError("a fault occurred in an unsafe memory access operation"));
        try (KimiVL model = KimiVL.open(m)) {
            ModelOption.explainFault(model, fault);                 // nothing changed: the caller rethrows the fault
            ModelOption.explainFault(model, new IllegalStateException("no fault"));
            truncate(st, 4096);
            ModelOption.explainFault(model, new IllegalStateException("no fault"));   // only a fault asks the files
            CheckpointException e = assertThrows(CheckpointException.class, () -> ModelOption.explainFault(model, fault));
            assertTrue(e.getMessage().startsWith(st + ": truncated to 4096 bytes"), e.getMessage());
            assertSame(fault, e.getSuppressed()[0]);
        }
    }
}
