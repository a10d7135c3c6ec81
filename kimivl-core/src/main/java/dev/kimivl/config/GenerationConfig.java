package dev.kimivl.config;

import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Sampling defaults a checkpoint ships in generation_config.json (HF). Every field is null when the file or the
 * key is absent; callers fall back to their own defaults.
 */
public record GenerationConfig(Double temperature, Double topP, Integer topK, Double repetitionPenalty, Integer maxNewTokens) {
    public static final GenerationConfig NONE = new GenerationConfig(null, null, null, null, null);

    /** Reads {@code dir/generation_config.json}; {@link #NONE} when {@code dir} is not a directory or has none. */
    public static GenerationConfig load(Path dir) {
        Path f = dir.resolve("generation_config.json");
        if (!Files.isDirectory(dir) || !Files.isRegularFile(f)) return NONE;
        Json j = Json.read(f);
        return new GenerationConfig(
                j.has("temperature") ? j.number("temperature") : null,
                j.has("top_p") ? j.number("top_p") : null,
                j.has("top_k") ? j.integer("top_k") : null,
                j.has("repetition_penalty") ? j.number("repetition_penalty") : null,
                j.has("max_new_tokens") ? j.integer("max_new_tokens") : null);
    }
}
