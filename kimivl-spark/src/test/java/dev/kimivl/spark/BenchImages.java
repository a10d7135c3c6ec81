package dev.kimivl.spark;

import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Writes the pictures the test on the default model uses (one coloured shape on a plain ground, 64-160 px) for
 * {@code kimivl-spark/bin/bench-batch}: {@code BenchImages DIR N [SEED]}.
 */
public final class BenchImages {
    private BenchImages() {}

    public static void main(String[] args) throws Exception {
        if (args.length < 2) {
            System.err.println("usage: BenchImages DIR N [SEED]");
            System.exit(2);
        }
        Path dir = Files.createDirectories(Path.of(args[0]));
        TestImages.shapes(dir, Integer.parseInt(args[1]), args.length > 2 ? Long.parseLong(args[2]) : 2026);
    }
}
