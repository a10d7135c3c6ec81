package dev.kimivl.cli;

import dev.kimivl.model.KimiVL;
import dev.kimivl.train.ShapesEval;
import dev.kimivl.train.ShapesTrainer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;

/** kimivl train-shapes: the training side end to end on a synthetic task (experimental; see ShapesTrainer for where it stands). */
@Command(name = "train-shapes", mixinStandardHelpOptions = true,
        description = "Train a small checkpoint end to end on the synthetic shapes task (one coloured shape per image; \"What is in this picture?\", "
                + "\"What shape is it?\", \"What color is it?\") and write it in the published layout, then report its accuracy on fresh images. "
                + "Experimental: from tiny-random it learns the colours but not yet the shapes.")
final class TrainShapesCommand implements Callable<Integer> {
    @Option(names = "--from", paramLabel = "DIR", description = "Checkpoint to start from (default ${DEFAULT-VALUE}).", defaultValue = "models/tiny-random")
    Path from;

    @Option(names = "--out", paramLabel = "DIR", required = true, description = "Where to write the trained checkpoint.")
    Path out;

    @Option(names = "--steps", description = "Optimizer steps (default ${DEFAULT-VALUE}).", defaultValue = "300")
    int steps;

    @Option(names = "--batch", description = "Examples per step (default ${DEFAULT-VALUE}).", defaultValue = "8")
    int batch;

    @Option(names = "--seed", description = "Seed of the training data (default ${DEFAULT-VALUE}).", defaultValue = "7")
    long seed;

    @Option(names = "--eval", description = "Fresh examples to score after training (default ${DEFAULT-VALUE}; 0: none).", defaultValue = "60")
    int eval;

    @Override
    public Integer call() throws Exception {
        Path src = resolve(from);
        if (!Files.isRegularFile(src.resolve("config.json"))) throw new IllegalArgumentException("--from " + src + ": no config.json (not a checkpoint directory)");
        if (steps < 1 || batch < 1) throw new IllegalArgumentException("--steps and --batch must be at least 1");
        ShapesTrainer.Options d = ShapesTrainer.Options.defaults();
        ShapesTrainer.train(src, resolve(out), new ShapesTrainer.Options(steps, batch, d.muonLr(), d.adamLr(), d.visionLr(), d.weightDecay(), seed), System.err);
        if (eval > 0) {
            try (KimiVL m = KimiVL.open(resolve(out))) {
                ShapesEval.Score s = ShapesEval.evaluate(m, eval, seed + 1_000_003);
                System.out.printf(Locale.ROOT, "accuracy on %d fresh examples: %d/%d (%.0f%%)%n", s.total(), s.right(), s.total(), 100 * s.accuracy());
                for (String w : s.wrong()) System.out.println("  wrong: " + w);
            }
        }
        return 0;
    }

    /** A relative path against the repo (the launcher's kimivl.home), as the default model is found. */
    private static Path resolve(Path p) {
        String home = System.getProperty("kimivl.home");
        return p.isAbsolute() || home == null ? p : Path.of(home).resolve(p);
    }
}
