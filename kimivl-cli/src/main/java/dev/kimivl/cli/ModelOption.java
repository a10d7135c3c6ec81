package dev.kimivl.cli;

import dev.kimivl.model.KimiVL;
import dev.kimivl.model.KvCache;
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

    @Option(names = "--kv-cache", paramLabel = "f16|f32",
            description = "How the KV cache stores each position's latent: f16 (half the memory and faster long-context decode, "
                    + "as llama.cpp) or f32. Default: f16 for quantized weights, f32 for float ones (the reference's numerics).")
    String kvCache;

    /** Opens the model (the caller closes it). */
    KimiVL open() {
        KvCache.Precision p = kvCache != null ? KvCache.Precision.parse(kvCache) : null;   // a bad value fails before loading
        KimiVL m = KimiVL.open(resolve(), mmproj);
        if (p != null) m.languageModel().kvCachePrecision(p);
        return m;
    }

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
