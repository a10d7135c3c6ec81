package dev.kimivl.train.data;

import dev.kimivl.vision.PreprocessedImage;

import java.awt.Color;
import java.awt.Graphics2D;
import java.awt.RenderingHints;
import java.awt.Shape;
import java.awt.image.BufferedImage;
import java.util.Arrays;
import java.util.Hashtable;
import java.util.List;

/**
 * The shape under each merged image token: the shape of the drawn object that covers at least {@link #MIN_COVER} of
 * the token's 28 × 28 pixels, or {@link #NONE}. Unlike a token's colour, its shape cannot be read back from the pixels,
 * so the {@link Painter} records where it drew each object: a map of the image holding each pixel's shape
 * ({@link ShapeMap}), attached to the finished image as a property ({@link #PROPERTY}). Images drawn without one
 * (charts, words, two images side by side) give {@link #IGNORE} for every token, which the head does not score.
 *
 * <p>Why: colour questions reach ~100% and shape questions stay near 60% (TRAINING.md, session 12): the tower learns a
 * token's colour from its own pixels but an object's shape only from the whole image's caption. A per-token label asks
 * every token of an object to carry the object's shape, the same way in every image, as the colour head does for
 * colours.
 */
public final class TokenShapes {
    /** The label of a token no object covers enough. */
    public static final int NONE = Palette.SHAPES.size();
    /** Labels: the palette's shapes in {@code Palette.SHAPES} order, then {@link #NONE}. */
    public static final int CLASSES = NONE + 1;
    /** Every token of an image with no shape map: not scored. */
    public static final int IGNORE = -1;
    /** The share of a token's pixels an object must cover to name the token (as {@link TokenColours#MIN_COVER}). */
    static final double MIN_COVER = TokenColours.MIN_COVER;
    /** The image property that holds the {@link ShapeMap}. */
    public static final String PROPERTY = "kimivl.shapeMap";

    private TokenShapes() {}

    /**
     * Where each shape was drawn: [height · width] pixels, each 0 (no object) or 1 + the shape's index in
     * {@code Palette.SHAPES}. The painter attaches one to every image it finishes, but only the token-label heads'
     * stages read it, so the pixels are rendered from the outlines on first use, not when the image is drawn.
     */
    public static final class ShapeMap {
        private final int width, height;
        private final List<Shape> outlines;
        private final int[] shapeIndex;
        private byte[] shapes;                             // rendered on first use, under the lock

        private ShapeMap(int width, int height, List<Shape> outlines, int[] shapeIndex) {
            this.width = width;
            this.height = height;
            this.outlines = outlines;
            this.shapeIndex = shapeIndex;
        }

        /**
         * The map of the given filled outlines (no anti-aliasing: a pixel is in or out), shape names alongside; the
         * names are checked now, the pixels drawn when first asked for.
         */
        static ShapeMap of(int width, int height, List<Shape> outlines, List<String> names) {
            if (outlines.size() != names.size()) throw new IllegalArgumentException(outlines.size() + " outlines for " + names.size() + " shape names");
            int[] k = new int[names.size()];
            for (int i = 0; i < k.length; i++) {
                k[i] = Palette.SHAPES.indexOf(names.get(i));
                if (k[i] < 0) throw new IllegalArgumentException("'" + names.get(i) + "' is not one of " + Palette.SHAPES);
            }
            return new ShapeMap(width, height, List.copyOf(outlines), k);
        }

        public int width() { return width; }

        /** The objects' centres, {x, y} in image pixels: the middle of each outline's bounding box, in drawing order. */
        public List<double[]> centres() {
            return outlines.stream().map(o -> new double[]{o.getBounds2D().getCenterX(), o.getBounds2D().getCenterY()}).toList();
        }

        public int height() { return height; }

        /** [height · width] the shape of each pixel (the array itself: do not change it). */
        public synchronized byte[] shapes() {
            if (shapes == null) shapes = render();
            return shapes;
        }

        private byte[] render() {
            // an RGB canvas stores the index exactly (a grey one would pass it through a colour conversion)
            BufferedImage canvas = new BufferedImage(width, height, BufferedImage.TYPE_INT_RGB);
            Graphics2D g = canvas.createGraphics();
            g.setRenderingHint(RenderingHints.KEY_ANTIALIASING, RenderingHints.VALUE_ANTIALIAS_OFF);
            for (int i = 0; i < outlines.size(); i++) {
                g.setColor(new Color(shapeIndex[i] + 1));
                g.fill(outlines.get(i));
            }
            g.dispose();
            int[] rgb = canvas.getRGB(0, 0, width, height, null, 0, width);
            byte[] out = new byte[rgb.length];
            for (int i = 0; i < rgb.length; i++) out[i] = (byte) (rgb[i] & 0xFF);
            return out;
        }
    }

    /** The same pixels (shared, not copied) with the map attached as {@link #PROPERTY}. */
    static BufferedImage attach(BufferedImage image, ShapeMap map) {
        if (map.width() != image.getWidth() || map.height() != image.getHeight()) {
            throw new IllegalArgumentException("a " + map.width() + " × " + map.height() + " shape map for a " + image.getWidth() + " × " + image.getHeight() + " image");
        }
        Hashtable<String, Object> props = new Hashtable<>();
        props.put(PROPERTY, map);
        return new BufferedImage(image.getColorModel(), image.getRaster(), image.isAlphaPremultiplied(), props);
    }

    /** The map attached to an image by its painter, or null. */
    public static ShapeMap mapOf(BufferedImage image) {
        return image.getProperty(PROPERTY) instanceof ShapeMap m ? m : null;
    }

    /** The map of {@code source} (null when it has none), checked to be of the image {@code im} was preprocessed from. */
    static ShapeMap mapFor(PreprocessedImage im, BufferedImage source) {
        ShapeMap map = mapOf(source);
        if (map != null && (map.width() != im.width() || map.height() != im.height())) {
            throw new IllegalArgumentException("a " + map.width() + " × " + map.height() + " shape map for an image preprocessed from " + im.width() + " × " + im.height());
        }
        return map;
    }

    /**
     * [merged tokens] labels in the vision tower's merged order (row-major over the (gridH/2) × (gridW/2) merged grid)
     * for {@code source} preprocessed as {@code im}: each resized pixel of a token looks up the source pixel it came
     * from; the padding right of and below the image holds no object. All {@link #IGNORE} when the source has no map.
     */
    public static int[] of(PreprocessedImage im, BufferedImage source) {
        int mh = im.gridH() / 2, mw = im.gridW() / 2;
        int[] labels = new int[mh * mw];
        ShapeMap map = mapFor(im, source);
        if (map == null) {
            Arrays.fill(labels, IGNORE);
            return labels;
        }
        int merged = 2 * im.paddedWidth() / im.gridW();                    // 28 for 14-px patches
        double sx = (double) im.width() / im.resizedWidth(), sy = (double) im.height() / im.resizedHeight();
        int[] count = new int[NONE + 1];
        byte[] pixels = map.shapes();
        for (int r = 0; r < mh; r++) {
            for (int c = 0; c < mw; c++) {
                Arrays.fill(count, 0);
                for (int y = r * merged; y < Math.min((r + 1) * merged, im.resizedHeight()); y++) {
                    int oy = Math.min(im.height() - 1, (int) ((y + 0.5) * sy));
                    for (int x = c * merged; x < Math.min((c + 1) * merged, im.resizedWidth()); x++) {
                        int ox = Math.min(im.width() - 1, (int) ((x + 0.5) * sx));
                        count[pixels[oy * im.width() + ox]]++;
                    }
                }
                int best = NONE, most = 0;
                for (int k = 1; k <= NONE; k++) if (count[k] > most) { most = count[k]; best = k - 1; }
                labels[r * mw + c] = most >= MIN_COVER * merged * merged ? best : NONE;
            }
        }
        return labels;
    }
}
