package dev.kimivl.config;

import dev.kimivl.io.CheckpointException;

import java.nio.file.Files;
import java.nio.file.Path;

/**
 * A checkpoint's config.json: the nested Kimi-VL form (text_config + vision_config, model_type kimi_vl) or a
 * plain DeepSeek-V2/V3 text model (Moonlight-16B-A3B, DeepSeek-V2-Lite).
 *
 * @param vision           null for text-only checkpoints
 * @param textPrefix       tensor-name prefix of the language model ("language_model." for Kimi-VL, "" otherwise)
 * @param mediaPlaceholderTokenId -1 when the model has no vision part
 */
public record ModelConfig(String modelType, TextConfig text, VisionConfig vision, String textPrefix, int mediaPlaceholderTokenId) {

    public static ModelConfig load(Path dir) {
        if (!Files.exists(dir)) throw new CheckpointException(dir + ": no such file or directory");
        if (!Files.isDirectory(dir)) throw new CheckpointException(dir + ": not a checkpoint directory");
        Path f = dir.resolve("config.json");
        if (!Files.isRegularFile(f)) throw new CheckpointException(dir + ": no config.json (not a Hugging Face checkpoint directory)");
        return parse(Json.read(f));
    }

    public static ModelConfig parse(String json, String where) {
        try {
            return parse(new Json(Json.MAPPER.readTree(json), where));
        } catch (java.io.IOException e) {
            throw new CheckpointException(where + ": cannot parse JSON: " + dev.kimivl.io.JsonErrors.describe(e), e);
        }
    }

    static ModelConfig parse(Json j) {
        String type = j.text("model_type", "");
        if (j.has("text_config")) {
            TextConfig text = TextConfig.parse(j.child("text_config"), true);
            VisionConfig vision = j.has("vision_config") ? VisionConfig.parse(j.child("vision_config")) : null;
            return new ModelConfig(type.isEmpty() ? "kimi_vl" : type, text, vision, "language_model.", j.integer("media_placeholder_token_id", 163605));
        }
        // a kimi_vl config keeps the language model's settings in text_config; without it nothing can be built
        if (type.equals("kimi_vl")) throw new CheckpointException(j.where() + ": model_type 'kimi_vl' needs the object 'text_config' (the language model's settings), which is missing");
        if (type.equals("deepseek_v3") || type.equals("deepseek_v2") || type.isEmpty()) {
            return new ModelConfig(type, TextConfig.parse(j, !type.equals("deepseek_v2")), null, "", -1);
        }
        throw new CheckpointException(j.where() + ": model_type '" + type + "' is not supported (kimi_vl, deepseek_v3, deepseek_v2)");
    }

    public boolean hasVision() { return vision != null; }
}
