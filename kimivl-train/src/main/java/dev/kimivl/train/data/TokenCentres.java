package dev.kimivl.train.data;

import dev.kimivl.vision.PreprocessedImage;

import java.awt.image.BufferedImage;
import java.util.Arrays;

/**
 * Whether each merged image token holds the centre of a drawn object: {@link #CENTRE} for the token under the middle of
 * an object's bounding box, {@link #OTHER} for every other token, from the painter's {@link TokenShapes.ShapeMap}.
 * Images drawn without a map give {@link #IGNORE} for every token, which the head does not score.
 *
 * <p>Why: the colour and shape heads make every token of an object say what the object is, so an object is a patch
 * of alike tokens, and two alike objects side by side are one wider patch. Counting them, or listing the objects one
 * by one, needs one token per object that says "an object is here". A language model fed the D2 tower's tokens learnt
 * grounding but not counting (3-7 of 40 after 6,400 count and list questions, TRAINING.md, session 25).
 */
public final class TokenCentres {
    /** Labels: no object's centre here, and an object's centre here. */
    public static final int OTHER = 0, CENTRE = 1, CLASSES = 2;
    /** Every token of an image with no shape map: not scored. */
    public static final int IGNORE = -1;

    private TokenCentres() {}

    /**
     * [merged tokens] labels in the vision tower's merged order (row-major over the (gridH/2) × (gridW/2) merged grid)
     * for {@code source} preprocessed as {@code im}. All {@link #IGNORE} when the source has no map.
     */
    public static int[] of(PreprocessedImage im, BufferedImage source) {
        int mh = im.gridH() / 2, mw = im.gridW() / 2;
        int[] labels = new int[mh * mw];
        TokenShapes.ShapeMap map = TokenShapes.mapFor(im, source);
        if (map == null) {
            Arrays.fill(labels, IGNORE);
            return labels;
        }
        double merged = 2.0 * im.paddedWidth() / im.gridW();               // 28 for 14-px patches
        double sx = (double) im.resizedWidth() / im.width(), sy = (double) im.resizedHeight() / im.height();
        for (double[] c : map.centres()) {
            int col = Math.min(mw - 1, (int) (c[0] * sx / merged)), row = Math.min(mh - 1, (int) (c[1] * sy / merged));
            labels[row * mw + col] = CENTRE;
        }
        return labels;
    }
}
