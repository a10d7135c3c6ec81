package dev.kimivl.config;

import java.nio.file.Files;
import java.nio.file.Path;

/**
 * KimiVLImageProcessor settings from preprocessor_config.json. Defaults (used only for absent keys) are the
 * class defaults of the reference: CLIP mean/std, in_token_limit 4096, pad_input false, merge 2×2.
 */
public record PreprocessorConfig(double[] imageMean, double[] imageStd, int inTokenLimit, boolean padInput,
                                 int patchSize, int mergeH, int mergeW) {
    public static final PreprocessorConfig DEFAULT = new PreprocessorConfig(
            new double[]{0.48145466, 0.4578275, 0.40821073}, new double[]{0.26862954, 0.26130258, 0.27577711}, 4096, false, 14, 2, 2);

    public static PreprocessorConfig load(Path dir) {
        Path f = dir.resolve("preprocessor_config.json");
        if (!Files.isRegularFile(f)) return DEFAULT;
        Json j = Json.read(f);
        double[] merge = j.numbers("merge_kernel_size", new double[]{DEFAULT.mergeH, DEFAULT.mergeW});
        if (merge.length != 2 || !(merge[0] >= 1 && merge[0] <= 64 && merge[1] >= 1 && merge[1] <= 64)) {
            throw new dev.kimivl.io.CheckpointException(f + ": merge_kernel_size " + java.util.Arrays.toString(merge) + " must be two sizes in 1..64");
        }
        j.positive("patch_size", j.integer("patch_size", DEFAULT.patchSize));
        j.positive("in_token_limit", j.integer("in_token_limit", DEFAULT.inTokenLimit));
        return new PreprocessorConfig(
                j.numbers("image_mean", DEFAULT.imageMean), j.numbers("image_std", DEFAULT.imageStd),
                j.integer("in_token_limit", DEFAULT.inTokenLimit), j.bool("pad_input", DEFAULT.padInput),
                j.integer("patch_size", DEFAULT.patchSize), (int) merge[0], (int) merge[1]);
    }
}
