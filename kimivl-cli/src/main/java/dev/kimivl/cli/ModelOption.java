package dev.kimivl.cli;

import picocli.CommandLine.Option;

import java.nio.file.Files;
import java.nio.file.Path;

/** The --model option shared by commands: a checkpoint directory; defaults to the model shipped in the repo. */
final class ModelOption {
    static final String DEFAULT_RELATIVE = "models/tiny-random";

    @Option(names = {"-m", "--model"}, paramLabel = "DIR",
            description = "Checkpoint directory (Hugging Face layout). Default: $KIMIVL_MODEL, else the repo's " + DEFAULT_RELATIVE + ".")
    Path model;

    Path resolve() {
        if (model != null) return model;
        String env = System.getenv("KIMIVL_MODEL");
        if (env != null && !env.isBlank()) return Path.of(env);
        String home = System.getProperty("kimivl.home");
        Path p = home != null ? Path.of(home).resolve(DEFAULT_RELATIVE) : Path.of(DEFAULT_RELATIVE);
        if (!Files.isDirectory(p)) throw new IllegalArgumentException("no --model given and the default model " + p + " does not exist");
        return p;
    }
}
