package dev.kimivl.train.data;

import dev.kimivl.train.recipe.ExampleEncoder;
import dev.kimivl.vision.ImagePreprocessor;
import dev.kimivl.vision.PreprocessedImage;
import org.junit.jupiter.api.Test;

import java.awt.Shape;
import java.awt.geom.Rectangle2D;
import java.awt.image.BufferedImage;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

import static dev.kimivl.train.data.TokenColoursTest.PRE;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The shape under each merged token, from the map of where the painter drew each object. */
class TokenShapesTest {
    static int shape(String name) {
        return Palette.SHAPES.indexOf(name);
    }

    /** A side × side grey image carrying the map of the given outlines, and the image preprocessed. */
    static PreprocessedImage mapped(int side, List<Shape> outlines, List<String> names, BufferedImage[] source) {
        BufferedImage b = new BufferedImage(side, side, BufferedImage.TYPE_INT_RGB);
        source[0] = TokenShapes.attach(b, TokenShapes.ShapeMap.of(side, side, outlines, names));
        return new ImagePreprocessor(PRE).process(ExampleEncoder.toLoaded(source[0]));
    }

    @Test
    void eachTokenIsNamedByTheShapeCoveringEnoughOfIt() {
        // 112 × 112 px = 4 × 4 merged tokens of 28 px
        BufferedImage[] src = new BufferedImage[1];
        PreprocessedImage im = mapped(112, List.of(
                new Rectangle2D.Double(0, 0, 56, 56),        // tokens (0,0) (0,1) (1,0) (1,1)
                new Rectangle2D.Double(84, 84, 28, 10),      // 10/28 = 36% of token (3,3): named
                new Rectangle2D.Double(84, 0, 28, 5)),       // 5/28 = 18% of token (0,3): too little
                List.of("square", "star", "circle"), src);
        int sq = shape("square"), st = shape("star"), n = TokenShapes.NONE;
        assertArrayEquals(new int[]{
                sq, sq, n, n,
                sq, sq, n, n,
                n, n, n, n,
                n, n, n, st}, TokenShapes.of(im, src[0]));
    }

    @Test
    void aDownscaledImageLooksUpThePixelsItCameFrom() {
        // 392 px is over the nano preprocessor's 196-patch limit: resized to 196 px, 7 × 7 tokens; a hexagon over the
        // left half of the original covers resized columns 0-97: tokens 0-2 wholly, token 3 (84-111) half
        BufferedImage[] src = new BufferedImage[1];
        PreprocessedImage im = mapped(392, List.of(new Rectangle2D.Double(0, 0, 196, 392)), List.of("hexagon"), src);
        assertEquals(196, im.resizedWidth());
        assertEquals(49, im.tokens());
        int[] labels = TokenShapes.of(im, src[0]);
        for (int r = 0; r < 7; r++)
            for (int c = 0; c < 7; c++) assertEquals(c <= 3 ? shape("hexagon") : TokenShapes.NONE, labels[r * 7 + c], "token (" + r + ", " + c + ")");
    }

    @Test
    void anImageWithoutAMapIsNotScoredAndAWrongMapIsRefused() {
        BufferedImage plain = new BufferedImage(56, 56, BufferedImage.TYPE_INT_RGB);
        PreprocessedImage im = new ImagePreprocessor(PRE).process(ExampleEncoder.toLoaded(plain));
        assertNull(TokenShapes.mapOf(plain));
        assertTrue(Arrays.stream(TokenShapes.of(im, plain)).allMatch(l -> l == TokenShapes.IGNORE));
        var map = TokenShapes.ShapeMap.of(28, 28, List.of(), List.of());
        assertThrows(IllegalArgumentException.class, () -> TokenShapes.attach(plain, map));
        var e = assertThrows(IllegalArgumentException.class, () -> TokenShapes.ShapeMap.of(56, 56, List.of(new Rectangle2D.Double(0, 0, 5, 5)), List.of("blob")));
        assertTrue(e.getMessage().contains("blob"), e.getMessage());
    }

    @Test
    void thePainterMapsWhatItDrewAlsoThroughJpeg() {
        for (double jpeg : new double[]{0, 1}) {
            Painter p = new Painter(new SplittableRandom(5), 200, 160, "plain", true);
            Painter.Obj star = p.place("star", "red", 0.3, 0.4), ring = p.place("ring", "blue", 0.3, 0.4);
            assertNotNull(star);
            assertNotNull(ring);
            BufferedImage im = p.finish(jpeg);
            TokenShapes.ShapeMap map = TokenShapes.mapOf(im);
            assertNotNull(map, "jpeg " + jpeg);
            assertEquals(shape("star") + 1, map.shapes()[(int) star.cy() * 200 + (int) star.cx()]);
            assertEquals(0, map.shapes()[(int) ring.cy() * 200 + (int) ring.cx()], "the hole of the ring is not the ring");
            int starPixels = 0;
            for (byte b : map.shapes()) if (b == shape("star") + 1) starPixels++;
            assertEquals(star.area(), starPixels, 0.08 * star.area(), "the star's pixels in the map against its area");
        }
    }
}
