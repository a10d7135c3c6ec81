package dev.kimivl.fuzz;

import dev.kimivl.generate.SamplingParams;
import dev.kimivl.model.KimiVL;
import dev.kimivl.text.ChatMessage;
import dev.kimivl.vision.LoadedImage;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * What every fuzz target shares: where the repository's fixtures are, a scratch directory for the files a target
 * writes, the contract on errors, and "a first forward" on a model that opened.
 *
 * <p>The contract (docs/fuzzing.md): a target catches only the project's documented exception types; each caught
 * message must be one line and name the file (or field) at fault. Anything else escapes, and Jazzer reports it as a
 * finding: another exception type, an {@link OutOfMemoryError} (the fuzz JVM has a 1 GB heap, so an allocation sized
 * from an unchecked header fails), an input slower than the method's {@code @Timeout}, or a JVM crash.
 */
final class FuzzSupport {
    private FuzzSupport() {}

    /** The repository root: the first parent of the working directory (the module when surefire runs) with models/tiny-random. */
    static final Path ROOT = findRoot();

    static final Path TINY = ROOT.resolve("models/tiny-random");
    static final Path GOLDEN = ROOT.resolve("kimivl-core/src/test/resources/golden");

    private static Path findRoot() {
        for (Path p = Path.of("").toAbsolutePath(); p != null; p = p.getParent()) {
            if (Files.isDirectory(p.resolve("models/tiny-random"))) return p;
        }
        throw new IllegalStateException("run from inside the kimivl checkout: no models/tiny-random above " + Path.of("").toAbsolutePath());
    }

    /** A fresh, empty directory for one target's files (reused between inputs; the JVM's temp dir, per process). */
    static Path scratch(String name) {
        try {
            Path base = Path.of(System.getProperty("java.io.tmpdir"), "kimivl-fuzz-" + ProcessHandle.current().pid());
            Path d = base.resolve(name);
            Files.createDirectories(d);
            return d;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static void write(Path p, byte[] bytes) {
        try {
            Files.write(p, bytes);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static byte[] read(Path p) {
        try {
            return Files.readAllBytes(p);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Copies the files of {@code from} (not sub-directories) into {@code to}, replacing what is there. */
    static void copyDir(Path from, Path to) {
        try (var s = Files.list(from)) {
            for (Path f : s.toList()) {
                if (Files.isRegularFile(f)) Files.copy(f, to.resolve(f.getFileName()), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /**
     * The error contract: {@code e}'s message is present, one line, and names one of {@code names} (a file name, a
     * field). A violation is an {@link AssertionError} carrying {@code e}, so the finding shows both.
     */
    static void requireNamed(Throwable e, String... names) {
        String m = e.getMessage();
        if (m == null || m.isBlank()) throw new AssertionError("an error without a message: " + e, e);
        if (m.indexOf('\n') >= 0 || m.indexOf('\r') >= 0) throw new AssertionError("an error message of several lines: " + m, e);
        for (String n : names) if (m.contains(n)) return;
        throw new AssertionError("an error message that names none of " + List.of(names) + ": " + m, e);
    }

    /** A small image for the forwards: 56×56, two colours (4 image tokens with the 2×2 merge). */
    static final LoadedImage IMAGE = image();

    private static LoadedImage image() {
        int[] rgb = new int[56 * 56];
        for (int i = 0; i < rgb.length; i++) rgb[i] = (i % 56) < 28 ? 0x2040E0 : 0xE04020;
        return LoadedImage.ofRgb("fuzz-image", 56, 56, rgb);
    }

    /**
     * A first forward through everything the checkpoint feeds: the chat template, the tokenizer, the vision tower and
     * projector when the model has them and the image merge, the prompt pass and two greedy decode steps.
     */
    static void firstForward(KimiVL model) {
        boolean image = model.hasVision();
        ChatMessage user = image ? ChatMessage.of("user", ChatMessage.imagePart(), ChatMessage.textPart("What colour?"))
                : ChatMessage.user("What colour?");
        KimiVL.Prompt p = model.prompt(List.of(user), image ? List.of(IMAGE) : List.of());
        model.generator(128).generate(p.embeddings(), p.ids(), SamplingParams.greedy(2), s -> {});
    }
}
