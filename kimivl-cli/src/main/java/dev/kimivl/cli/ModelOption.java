package dev.kimivl.cli;

import dev.kimivl.io.gguf.GgufFile;
import dev.kimivl.model.KimiVL;
import dev.kimivl.model.KvCache;
import picocli.CommandLine.Option;

import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;

/** The --model option shared by commands: a checkpoint directory; defaults to the model shipped in the repo. */
final class ModelOption {
    static final String DEFAULT_RELATIVE = "models/kimivl-nano-instruct";

    @Option(names = {"-m", "--model"}, paramLabel = "PATH",
            description = "Checkpoint directory (Hugging Face layout) or a GGUF text model file (llama.cpp layout). "
                    + "Default: $KIMIVL_MODEL, else the repo's " + DEFAULT_RELATIVE + ".")
    Path model;

    @Option(names = "--mmproj", paramLabel = "FILE", description = "With a GGUF --model: the vision tower + projector GGUF (projector type kimivl).")
    Path mmproj;

    @Option(names = "--kv-cache", paramLabel = "f16|bf16|f32",
            description = "How the KV cache stores each position's latent: f16 (half the memory and faster long-context decode, "
                    + "as llama.cpp), bf16 (the same memory; the model's own format, and attention in vdpbf16ps on CPUs with "
                    + "AVX512-BF16) or f32. Default for quantized weights: bf16 on such CPUs, else f16; f32 for float ones (the reference's numerics).")
    String kvCache;

    /** Opens the model (the caller closes it). */
    KimiVL open() {
        KvCache.Precision p = kvCache != null ? KvCache.Precision.parse(kvCache) : null;   // a bad value fails before loading
        Path path = resolve();
        checkMmproj();
        KimiVL m = KimiVL.open(path, mmproj);
        if (p != null) m.languageModel().kvCachePrecision(p);
        return m;
    }

    Path resolve() { return resolve(model); }

    /**
     * The model path: {@code given} (--model), else $KIMIVL_MODEL, else the repo's default model. A path that does
     * not exist is reported here, naming where it came from: otherwise the loader's "no config.json" hides both
     * that the directory is missing and that the path was never typed on this command line.
     */
    static Path resolve(Path given) { return resolve(given, System.getenv("KIMIVL_MODEL"), System.getProperty("kimivl.home")); }

    /** {@link #resolve(Path)} with $KIMIVL_MODEL and the kimivl.home property given (tests cannot set the environment). */
    static Path resolve(Path given, String env, String home) {
        if (given != null) {
            if (!Files.exists(given)) throw new IllegalArgumentException("--model " + given + ": no such file or directory");
            return given;
        }
        if (env != null && !env.isBlank()) {
            Path p = Path.of(env);
            if (!Files.exists(p)) throw new IllegalArgumentException("$KIMIVL_MODEL " + env + " (the model when no --model is given): no such file or directory");
            return p;
        }
        Path p = home != null ? Path.of(home).resolve(DEFAULT_RELATIVE) : Path.of(DEFAULT_RELATIVE);
        if (!Files.isDirectory(p)) throw new IllegalArgumentException("no --model given and the default model " + p + " does not exist");
        return p;
    }

    /**
     * Images need a vision tower: a GGUF text model has none of its own (llama.cpp keeps it in the mmproj file),
     * so say which flag is missing before the model loads rather than "a text-only model" after.
     */
    void checkImagesPossible(boolean hasImages) {
        if (!hasImages || mmproj != null) return;
        Path p = resolve();
        if (Files.isRegularFile(p)) {
            throw new IllegalArgumentException("--model " + p + " is a GGUF text model: images need its vision tower too, "
                    + "given with --mmproj FILE (the mmproj GGUF, e.g. mmproj-Kimi-VL-A3B-Instruct-Q8_0.gguf)");
        }
    }

    /**
     * Weights are read from memory-mapped files: one truncated or rewritten under the process makes the next read of
     * a lost page fault, which interpreted Java code sees as InternalError ("a fault occurred in an unsafe memory
     * access operation"; native kernels and C2-compiled vector code end the JVM, see {@link dev.kimivl.io.FileStamp}). When {@code e} is
     * or wraps such a fault and a weight file has changed since it was loaded, this throws the one-line
     * CheckpointException naming that file instead; otherwise it returns and the caller rethrows {@code e}.
     */
    static void explainFault(KimiVL m, Throwable e) {
        for (Throwable t = e; t != null; t = t.getCause()) {
            if (t instanceof InternalError) {
                try {
                    m.weights().checkUnchanged();
                } catch (dev.kimivl.io.CheckpointException changed) {
                    changed.addSuppressed(e);
                    throw changed;
                }
                return;
            }
        }
    }

    /** The text GGUF given as --mmproj (easily done: both end in .gguf) is named as such, before anything loads. */
    private void checkMmproj() {
        if (mmproj == null) return;
        if (!Files.exists(mmproj)) throw new IllegalArgumentException("--mmproj " + mmproj + ": no such file");
        if (!Files.isRegularFile(mmproj)) throw new IllegalArgumentException("--mmproj " + mmproj + ": not a file (the mmproj GGUF)");
        String arch;
        try (Arena arena = Arena.ofConfined()) {
            arch = GgufFile.open(mmproj, arena).string("general.architecture", "");
        }
        if (!arch.equals("clip")) {
            throw new IllegalArgumentException("--mmproj " + mmproj + " is a " + (arch.equals("deepseek2") ? "text model GGUF" : "GGUF")
                    + " (general.architecture '" + arch + "'), not a vision tower: --mmproj takes the mmproj GGUF (general.architecture 'clip')");
        }
    }
}
