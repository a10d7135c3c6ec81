package dev.kimivl.cli;

import dev.kimivl.model.KimiVL;
import picocli.CommandLine.Option;

import java.nio.file.Files;
import java.nio.file.Path;

/** The --model option shared by commands: a checkpoint directory; defaults to the model shipped in the repo. */
final class ModelOption {
    static final String DEFAULT_RELATIVE = "models/tiny-random";

    @Option(names = {"-m", "--model"}, paramLabel = "PATH",
            description = "Checkpoint directory (Hugging Face layout) or a GGUF text model file (llama.cpp layout). "
                    + "Default: $KIMIVL_MODEL, else the repo's " + DEFAULT_RELATIVE + ".")
    Path model;

    @Option(names = "--mmproj", paramLabel = "FILE", description = "With a GGUF --model: the vision tower + projector GGUF (projector type kimivl).")
    Path mmproj;

    /** Opens the model (the caller closes it). */
    KimiVL open() { return KimiVL.open(resolve(), mmproj); }

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
