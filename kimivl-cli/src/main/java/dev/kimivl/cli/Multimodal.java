package dev.kimivl.cli;

import com.fasterxml.jackson.databind.JsonNode;
import dev.kimivl.model.KimiVL;
import dev.kimivl.vision.ImageLoader;
import dev.kimivl.vision.LoadedImage;
import dev.kimivl.vision.VisionOutput;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/** Image inputs of `kimivl forward`: the files named in inputs.json, encoded with every stage kept. */
final class Multimodal {
    private Multimodal() {}

    static List<Path> files(JsonNode images, Path base) {
        List<Path> files = new ArrayList<>();
        for (JsonNode n : images) files.add(base.resolve(n.asText()));
        return files;
    }

    static VisionOutput encode(KimiVL m, List<Path> files, ImageLoader loader, boolean keepStages) {
        List<LoadedImage> loaded = new ArrayList<>();
        for (Path f : files) loaded.add(loader.load(f));
        return m.vision().encode(loaded, keepStages);
    }
}
