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

    @Option(names = "--start-at", paramLabel = "STAGE", description = "Begin a new run at this stage of the recipe, from the checkpoint --from "
            + "(its weights, config and tokenizer) instead of the recipe's tokenizer and initial weights; the stages before it do not run.")
    String startAt;

    @Option(names = "--from", paramLabel = "DIR", description = "With --start-at: the checkpoint to begin from, e.g. another run's stages/01-vit, or its current/ (then a stage with continueHeads goes on from the scaffold heads in its optimizer state).")
    Path from;

    @Option(names = "--stop-after", paramLabel = "STEPS", hidden = true, description = "Stop after this many steps (testing resume).", defaultValue = "-1")
    long stopAfter;

    @Override
    public Integer call() throws Exception {
        if (checkpointEvery < 0) throw new IllegalArgumentException("--checkpoint-every must be ≥ 0");
        if ((startAt == null) != (from == null)) throw new IllegalArgumentException("--start-at STAGE and --from DIR go together");
        RecipeTrainer trainer = new RecipeTrainer(recipe, out, System.err, checkpointEvery, logEvery, stopAfter);
        if (startAt != null) trainer.startingAt(startAt, from);
        boolean done = trainer.run(resume);
        return done ? 0 : 3;
    }
}
