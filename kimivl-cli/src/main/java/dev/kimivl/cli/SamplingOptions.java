package dev.kimivl.cli;

import dev.kimivl.config.GenerationConfig;
import dev.kimivl.generate.SamplingParams;
import picocli.CommandLine.Option;

import java.util.List;

/**
 * The sampling options shared by {@code run} and {@code chat}. Unset ones take the checkpoint's
 * generation_config.json, then the defaults named in each description (the seed and the token cap's built-in
 * default stay with each command: one answer, or a conversation's turns).
 */
final class SamplingOptions {
    @Option(names = {"-n", "--max-tokens"}, description = "Maximum new tokens per answer (default: generation_config.json's max_new_tokens, else 512 for run, 1024 per chat turn).")
    Integer maxTokens;

    @Option(names = {"-t", "--temperature"}, description = "Sampling temperature; 0 = greedy (default: generation_config.json, else 0.2, Kimi-VL-Instruct's recommendation).")
    Double temperature;

    @Option(names = "--top-k", description = "Keep the k most likely tokens (default: generation_config.json, else 0 = off).")
    Integer topK;

    @Option(names = "--top-p", description = "Nucleus sampling mass (default: generation_config.json, else 1 = off).")
    Double topP;

    @Option(names = "--min-p", defaultValue = "0.0", description = "Drop tokens below min-p × the top probability (0 = off).")
    double minP;

    @Option(names = "--repeat-penalty", description = "Repetition penalty (default: generation_config.json, else 1 = off).")
    Double repeatPenalty;

    /** The parameters of one answer: these options, else the checkpoint's, else the built-in defaults. */
    SamplingParams params(GenerationConfig g, long seed, int defaultMaxTokens, List<String> stops) {
        return new SamplingParams(or(temperature, g.temperature(), 0.2), or(topK, g.topK(), 0), or(topP, g.topP(), 1.0), minP,
                or(repeatPenalty, g.repetitionPenalty(), 1.0), seed, or(maxTokens, g.maxNewTokens(), defaultMaxTokens), stops);
    }

    private static <T> T or(T option, T fromCheckpoint, T builtIn) {
        return option != null ? option : fromCheckpoint != null ? fromCheckpoint : builtIn;
    }
}
