package dev.kimivl.train.data;

import dev.kimivl.config.PreprocessorConfig;
import dev.kimivl.vision.PreprocessedImage;


/**
 * The colour under each merged image token, read from the preprocessed pixels themselves: the palette colour that
 * covers at least {@link #MIN_COVER} of the token's 28 × 28 pixels, or {@link #NONE} (the ground, or no colour
 * covering enough). Labels for the pre-training stage's token-colour loss.
 *
 * <p>Why: a language model fed ideal image tokens (one fixed vector per colour) learns to find a named object and read
 * its place; fed the trained tower's tokens it memorises the training images instead (TRAINING.md, session 11). A
 * per-token loss asks the tower to say, in every token, what colour lies under it, the same way in every image.
 */
public final class TokenColours {
    /** The label of a token with no palette colour (over {@link #MIN_COVER} of it) but the ground. */
    public static final int NONE = Palette.COLORS.size();
    /** Labels: the palette's colours in {@code Palette.COLORS} order, then {@link #NONE}. */
    public static final int CLASSES = NONE + 1;
    /** The share of a token's pixels a colour must cover to name the token. */
    static final double MIN_COVER = 0.3;
    /** How far (RGB distance) a pixel may be from a palette colour, or from the ground, to count as it. */
    static final double NEAR = 60;

    private TokenColours() {}

    /** The colours' names: label k names {@code names().get(k)} (k &lt; {@link #NONE}). */
    public static java.util.List<String> names() {
        return Palette.COLORS;
    }

    /**
     * [merged tokens] labels in the vision tower's merged order (row-major over the (gridH/2) × (gridW/2) merged grid,
     * token (R, C) holding patches (2R + a, 2C + b)). The ground is the most common colour of the image (in 16-level
     * bins); pixels of the padding (right of and below the resized image) count as ground.
     */
    public static int[] of(PreprocessedImage im, PreprocessorConfig cfg) {
        int p = im.paddedWidth() / im.gridW(), gh = im.gridH(), gw = im.gridW(), pp = p * p;
        int[] rgb = new int[gh * gw * pp];                                 // per patch, per pixel: 0xRRGGBB
        float[] px = im.pixelValues();
        for (int patch = 0; patch < gh * gw; patch++) {
            for (int i = 0; i < pp; i++) {
                int v = 0;
                for (int c = 0; c < 3; c++) {
                    double u = (px[patch * 3 * pp + c * pp + i] * cfg.imageStd()[c] + cfg.imageMean()[c]) * 255.0;
                    v = (v << 8) | (int) Math.max(0, Math.min(255, Math.round(u)));
                }
                rgb[patch * pp + i] = v;
            }
        }
        // the padding right of and below the image (black after un-normalising) is ground, not the palette's black
        for (int patch = 0; patch < gh * gw; patch++) {
            int x0 = patch % gw * p, y0 = patch / gw * p;
            if (x0 + p <= im.resizedWidth() && y0 + p <= im.resizedHeight()) continue;
            for (int i = 0; i < pp; i++) if (x0 + i % p >= im.resizedWidth() || y0 + i / p >= im.resizedHeight()) rgb[patch * pp + i] = PADDING;
        }
        int ground = ground(rgb);
        int mh = gh / 2, mw = gw / 2;
        int[] labels = new int[mh * mw];
        for (int r = 0; r < mh; r++) {
            for (int c = 0; c < mw; c++) {
                int[] count = new int[NONE];
                for (int a = 0; a < 2; a++) {
                    for (int b = 0; b < 2; b++) {
                        int patch = (2 * r + a) * gw + (2 * c + b);
                        for (int i = 0; i < pp; i++) {
                            if (rgb[patch * pp + i] == PADDING) continue;
                            int k = nearest(rgb[patch * pp + i], ground);
                            if (k >= 0) count[k]++;
                        }
                    }
                }
                int best = NONE, most = 0;
                for (int k = 0; k < NONE; k++) if (count[k] > most) { most = count[k]; best = k; }
                labels[r * mw + c] = most >= MIN_COVER * 4 * pp ? best : NONE;
            }
        }
        return labels;
    }

    /** The palette colour a pixel is, or −1 (the ground, or between colours). */
    static int nearest(int rgb, int ground) {
        // squared integer distances: the same order as Palette.distance's square roots (exact for these integers)
        if (distance2(rgb, ground) < NEAR * NEAR) return -1;
        int best = -1;
        double d = NEAR * NEAR;
        for (int k = 0; k < NONE; k++) {
            int e = distance2(rgb, PALETTE_RGB[k]);
            if (e < d) { d = e; best = k; }
        }
        return best;
    }

    /** The palette's colours as 0xRRGGBB, in label order. */
    private static final int[] PALETTE_RGB = Palette.COLORS.stream().mapToInt(c -> Palette.rgb(c).getRGB() & 0xFFFFFF).toArray();

    /** The squared RGB distance ({@link Palette#distance} squared). */
    private static int distance2(int rgb1, int rgb2) {
        int dr = ((rgb1 >> 16) & 255) - ((rgb2 >> 16) & 255), dg = ((rgb1 >> 8) & 255) - ((rgb2 >> 8) & 255), db = (rgb1 & 255) - (rgb2 & 255);
        return dr * dr + dg * dg + db * db;
    }

    /** A pixel of the padding: no colour (outside 0xRRGGBB). */
    static final int PADDING = -1;

    /** The most common colour of the image's own pixels, in 16-level bins, as the bin's centre. */
    static int ground(int[] rgb) {
        int[] bins = new int[1 << 12];                  // bin (r >> 4, g >> 4, b >> 4), in increasing order of v & 0xF0F0F0
        for (int v : rgb) if (v != PADDING) bins[(v >> 12 & 0xF00) | (v >> 8 & 0xF0) | (v >> 4 & 0xF)]++;
        int best = 0, most = 0;
        for (int i = 0; i < bins.length; i++) if (bins[i] > most) { most = bins[i]; best = i; }   // the first (smallest) of ties
        int key = (best & 0xF00) << 12 | (best & 0xF0) << 8 | (best & 0xF) << 4;
        return key | 0x080808;
    }
}
