package dev.kimivl.train.probe;

import dev.kimivl.train.recipe.ModelSpec;
import dev.kimivl.train.recipe.Recipe;
import dev.kimivl.train.tokenizer.SpecialIds;
import dev.kimivl.train.tokenizer.TokenizerFiles;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Stream;

/**
 * A tiny random checkpoint in a trained run's layout (the shipped nano model's tokenizer and chat template, a tiny
 * model spec initialised by {@link ModelSpec#writeInitial}) and a recipe file with the same spec: what the probes
 * load, at a size that runs in seconds.
 */
final class ProbeFixtures {
    static final Path NANO = Path.of("../models/kimivl-nano-instruct");

    static final String RECIPE = """
            {
              "name": "probe-tiny", "seed": 3,
              "model": { "hidden": 32, "layers": 2, "heads": 2, "kvLora": 16, "nopeDim": 8, "ropeDim": 8, "vDim": 8,
                         "denseInter": 64, "moeInter": 16, "experts": 4, "topK": 2, "sharedExperts": 1, "firstDense": 1,
                         "ropeTheta": 10000.0, "maxPositions": 512,
                         "visionHidden": 16, "visionLayers": 1, "visionHeads": 2, "visionInter": 32, "posEmb": 4,
                         "inTokenLimit": 64, "initStd": 0.0 },
              "tokenizer": { "ranks": 2048, "corpusExamples": 10 },
              "stages": [
                { "name": "joint", "kind": "joint", "steps": 1, "batch": 2, "lr": 0.002, "adamLr": 0.002, "visionLr": 0.001,
                  "warmup": 0, "schedule": "constant", "minLrRatio": 1, "train": ["text"], "mix": { "ground": 1.0 } }
              ]
            }
            """;

    private ProbeFixtures() {}

    /** Writes recipe.json and a checkpoint folder ckpt/ into dir; returns the recipe file. */
    static Path write(Path dir) throws Exception {
        Path recipe = dir.resolve("recipe.json");
        Files.writeString(recipe, RECIPE);
        Path ck = checkpoint(dir);
        Files.createDirectories(ck);
        Files.copy(NANO.resolve("tiktoken.model"), ck.resolve("tiktoken.model"));
        Files.copy(NANO.resolve("tokenizer_config.json"), ck.resolve("tokenizer_config.json"));
        int ranks;
        try (Stream<String> lines = Files.lines(ck.resolve("tiktoken.model"))) { ranks = (int) lines.count(); }
        SpecialIds ids = TokenizerFiles.layout(ranks, TokenizerFiles.defaultVocabSize(ranks));
        ModelSpec spec = Recipe.load(recipe).model();
        spec.writeInitial(ck, ids, 99);
        return recipe;
    }

    static Path checkpoint(Path dir) { return dir.resolve("ckpt"); }
}
