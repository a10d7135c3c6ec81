package dev.kimivl.train.data;

import dev.kimivl.vision.PreprocessedImage;

/**
 * Where each merged image token lies in its image, as one of {@link #SIDE} × {@link #SIDE} cells of the image
 * itself: token (R, C), whose centre is at ((C + ½)·28, (R + ½)·28) px of the resized image, is in cell
 * (⌊y / resizedHeight · SIDE⌋, ⌊x / resizedWidth · SIDE⌋), clamped into the grid (tokens over the padding take the last
 * cell). Labels for the pre-training stage's token-place loss.
 *
 * <p>Why relative cells and not the token's (R, C): the questions name places relative to the image ("at the top
 * left"), and images vary from 64 to 512 px, so the same (R, C) is the top left of a large image and the bottom right of
 * a small one. A 4-layer language model learns to look up a named object's place when each token's place is sharp and
 * relative to its image, and not when it is absolute or blurred (TRAINING.md, session 11: O9-O11). The 6 × 6 cells
 * also name the 3 × 3 regions the questions use (cell ÷ 2).
 */
public final class TokenPlaces {
    /** Cells per side. */
    public static final int SIDE = 6;
    /** Labels: cell row · SIDE + cell column. */
    public static final int CLASSES = SIDE * SIDE;

    private TokenPlaces() {}

    /** [merged tokens] labels in the vision tower's merged order (row-major over the (gridH/2) × (gridW/2) merged grid). */
    public static int[] of(PreprocessedImage im) {
        int mh = im.gridH() / 2, mw = im.gridW() / 2;
        double mergedPx = 2.0 * im.paddedWidth() / im.gridW();             // 28 for 14-px patches
        int[] labels = new int[mh * mw];
        for (int r = 0; r < mh; r++) {
            int row = cell((r + 0.5) * mergedPx / im.resizedHeight());
            for (int c = 0; c < mw; c++) labels[r * mw + c] = row * SIDE + cell((c + 0.5) * mergedPx / im.resizedWidth());
        }
        return labels;
    }

    /** The cell of a relative coordinate u ∈ [0, 1), clamped into [0, SIDE). */
    static int cell(double u) {
        return Math.max(0, Math.min(SIDE - 1, (int) Math.floor(u * SIDE)));
    }
}
