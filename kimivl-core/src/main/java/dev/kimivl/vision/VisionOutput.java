package dev.kimivl.vision;

import java.util.Map;

/**
 * What {@link VisionEncoder#encode} returns.
 *
 * @param features    [M, Dt] image features, row-major, all images in order (M = Σ tokens)
 * @param textHidden  Dt
 * @param tokens      image tokens per image ((gh/2)·(gw/2)): the length of each image's placeholder run
 * @param grids       (gh, gw) per image
 * @param images      the preprocessed inputs (sizes before/after resize and pad)
 * @param stages      when requested: every intermediate under the golden names ("pixel_values", "image_grid_hws"
 *                    (as floats), "vision.patch_embed", "vision.block{b}", "vision_tower_out", "merged",
 *                    "image_features"); otherwise empty
 * @param shapes      the shape of each stage
 */
public record VisionOutput(float[] features, int textHidden, int[] tokens, int[][] grids,
                           java.util.List<PreprocessedImage> images, Map<String, float[]> stages, Map<String, int[]> shapes) {
    public int totalTokens() {
        int n = 0;
        for (int t : tokens) n += t;
        return n;
    }

    /** First feature row of image m. */
    public int tokenOffset(int m) {
        int n = 0;
        for (int i = 0; i < m; i++) n += tokens[i];
        return n;
    }
}
