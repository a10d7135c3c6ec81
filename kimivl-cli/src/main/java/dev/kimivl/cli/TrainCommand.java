package dev.kimivl.cli;

import dev.kimivl.train.recipe.RecipeTrainer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.concurrent.Callable;

/** kimivl train: runs a training recipe (tokenizer, initial weights, every stage), resumable. */
@Command(name = "train", mixinStandardHelpOptions = true,
        description = "Train a Kimi-VL model from random initialisation by a recipe (recipes/*.json): the tokenizer, then each stage "
                + "(alignment, joint pre-training, cool-down, long context, SFT, long-CoT SFT, RL) on the synthetic visual world. "
                + "Checkpoints in the published layout; a killed run continues with --resume to exactly the same weights.")
final class TrainCommand implements Callable<Integer> {
    @Option(names = "--recipe", paramLabel = "FILE", required = true, description = "The recipe (e.g. recipes/nano.json).")
    Path recipe;

    @Option(names = "--out", paramLabel = "DIR", required = true, description = "The run's folder (checkpoints, stage outputs, log).")
    Path out;

    @Option(names = "--resume", description = "Continue the run in --out from its last checkpoint.")
    boolean resume;

    @Option(names = "--checkpoint-every", paramLabel = "STEPS", description = "Steps between checkpoints (default ${DEFAULT-VALUE}).", defaultValue = "50")
    int checkpointEvery;

    @Option(names = "--log-every", paramLabel = "STEPS", description = "Steps between progress lines (default ${DEFAULT-VALUE}).", defaultValue = "10")
    int logEvery;

    @Option(names = "--stop-after", paramLabel = "STEPS", hidden = true, description = "Stop after this many steps (testing resume).", defaultValue = "-1")
    long stopAfter;

    @Override
    public Integer call() throws Exception {
        if (checkpointEvery < 0) throw new IllegalArgumentException("--checkpoint-every must be ≥ 0");
        boolean done = new RecipeTrainer(recipe, out, System.err, checkpointEvery, logEvery, stopAfter).run(resume);
        return done ? 0 : 3;
    }
}
