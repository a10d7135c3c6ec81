package dev.kimivl.cli;

import com.fasterxml.jackson.databind.JsonNode;
import dev.kimivl.model.ImageMerge;
import dev.kimivl.model.KimiVL;
import dev.kimivl.text.PromptEncoder;
import dev.kimivl.vision.ImageLoader;
import dev.kimivl.vision.LoadedImage;
import dev.kimivl.vision.VisionOutput;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/** Prompts with images for the CLI commands: load, encode, expand the placeholders, merge the features. */
final class Multimodal {
    private Multimodal() {}

    /** Prompt ids with image placeholders expanded, and their input embeddings with image features merged. */
    record Prompt(int[] ids, float[] embeddings) {}

    static Prompt prepare(KimiVL m, String rendered, List<Path> images) {
        PromptEncoder encoder = new PromptEncoder(m.tokenizer());
        if (images.isEmpty()) {
            int[] ids = encoder.encode(rendered).ids();
            return new Prompt(ids, m.languageModel().embed(ids));
        }
        VisionOutput v = encode(m, images, false);
        int[] ids = encoder.encode(rendered, v.tokens()).ids();
        float[] emb = m.languageModel().embed(ids);
        ImageMerge.merge(emb, ids, m.config().mediaPlaceholderTokenId(), v.features(), v.textHidden());
        return new Prompt(ids, emb);
    }

    static List<Path> files(JsonNode images, Path base) {
        List<Path> files = new ArrayList<>();
        for (JsonNode n : images) files.add(base.resolve(n.asText()));
        return files;
    }

    static VisionOutput encode(KimiVL m, List<Path> files, boolean keepStages) {
        ImageLoader loader = new ImageLoader();
        List<LoadedImage> loaded = new ArrayList<>();
        for (Path f : files) loaded.add(loader.load(f));
        return m.vision().encode(loaded, keepStages);
    }
}
