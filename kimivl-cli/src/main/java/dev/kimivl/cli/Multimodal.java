package dev.kimivl.cli;

import com.fasterxml.jackson.databind.JsonNode;
import dev.kimivl.model.KimiVL;
import dev.kimivl.model.StageSink;
import dev.kimivl.text.PromptEncoder;

import java.nio.file.Path;
import java.util.List;

/** Image inputs for the CLI commands (the vision encoder is wired here). */
final class Multimodal {
    private Multimodal() {}

    /** Prompt ids with image placeholders expanded, and their input embeddings with image features merged. */
    record Prompt(int[] ids, float[] embeddings) {}

    static Prompt prepare(KimiVL m, String rendered, List<Path> images) {
        if (!images.isEmpty()) throw new UnsupportedOperationException("images are not supported yet in this build");
        int[] ids = new PromptEncoder(m.tokenizer()).encode(rendered).ids();
        return new Prompt(ids, m.languageModel().embed(ids));
    }

    static float[] embedWithImages(KimiVL m, int[] ids, float[] embeddings, JsonNode images, Path base, StageSink sink) {
        throw new UnsupportedOperationException("images are not supported yet in this build");
    }
}
