package dev.kimivl.vision;

/**
 * One image after KimiVLImageProcessor: its patches and grid.
 *
 * @param pixelValues [gridH·gridW, 3·P·P] float32; patch n = r·gridW + c, element order (channel, y, x); null in the
 *                    images a grouped encode returns ({@link VisionEncoder#encodeInGroups}), which drops them after each pass
 * @param resizedWidth size after the token-limit downscale (= width when none happened)
 */
public record PreprocessedImage(String source, int width, int height, int resizedWidth, int resizedHeight,
                                int paddedWidth, int paddedHeight, int gridH, int gridW, float[] pixelValues) {
    public int patches() { return gridH * gridW; }

    /** Image tokens after the 2×2 merge: (gh/2)·(gw/2). */
    public int tokens() { return (gridH / 2) * (gridW / 2); }

    public boolean resized() { return resizedWidth != width || resizedHeight != height; }
}
