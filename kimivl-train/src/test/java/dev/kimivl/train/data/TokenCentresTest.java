package dev.kimivl.train.data;

import dev.kimivl.vision.PreprocessedImage;
import org.junit.jupiter.api.Test;

import java.awt.Shape;
import java.awt.geom.Ellipse2D;
import java.awt.geom.Rectangle2D;
import java.awt.image.BufferedImage;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

import static dev.kimivl.train.data.TokenColoursTest.PRE;
import static dev.kimivl.train.data.TokenShapesTest.mapped;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The token under each drawn object's centre, from the painter's map. */
class TokenCentresTest {
    @Test
    void eachObjectMarksTheTokenUnderTheMiddleOfItsBounds() {
        // 112 × 112 px = 4 × 4 merged tokens of 28 px
        BufferedImage[] src = new BufferedImage[1];
        PreprocessedImage im = mapped(112, List.<Shape>of(
                new Rectangle2D.Double(0, 0, 56, 56),        // centre (28, 28): token (1, 1)
                new Ellipse2D.Double(60, 70, 40, 30),        // centre (80, 85): token (3, 2)
                new Rectangle2D.Double(85, 0, 20, 20)),      // centre (95, 10): token (0, 3)
                List.of("square", "circle", "square"), src);
        int o = TokenCentres.OTHER, c = TokenCentres.CENTRE;
        assertArrayEquals(new int[]{
                o, o, o, c,
                o, c, o, o,
                o, o, o, o,
                o, o, c, o}, TokenCentres.of(im, src[0]));
    }

    @Test
    void aDownscaledImageMarksTheResizedPlace() {
        // 392 px is resized to 196 px (7 × 7 tokens): a centre at (300, 100) px lands at (150, 50): token (1, 5)
        BufferedImage[] src = new BufferedImage[1];
        PreprocessedImage im = mapped(392, List.<Shape>of(new Rectangle2D.Double(250, 50, 100, 100)), List.of("square"), src);
        int[] labels = TokenCentres.of(im, src[0]);
        assertEquals(49, labels.length);
        for (int t = 0; t < 49; t++) assertEquals(t == 7 + 5 ? TokenCentres.CENTRE : TokenCentres.OTHER, labels[t], "token " + t);
    }

    @Test
    void aPaintedCountSceneHasOneCentrePerObjectAndAnUnmappedImageIsNotScored() {
        // objects whose colour is too near the drawn ground are not placed: take the first seed that places three
        BufferedImage image = null;
        int placed = 0;
        for (int seed = 1; placed < 3 && seed < 50; seed++) {
            Painter p = new Painter(new SplittableRandom(seed), 224, 224, "plain", true);
            placed = 0;
            for (String s : List.of("star", "circle", "square")) if (p.place(s, "red", 0.15, 0.2) != null) placed++;
            image = p.finish(0);
        }
        PreprocessedImage im = new dev.kimivl.vision.ImagePreprocessor(PRE).process(dev.kimivl.train.recipe.ExampleEncoder.toLoaded(image));
        int[] labels = TokenCentres.of(im, image);
        long centres = Arrays.stream(labels).filter(l -> l == TokenCentres.CENTRE).count();
        assertTrue(placed == 3 && centres >= 2 && centres <= 3, placed + " objects placed, " + centres + " centre tokens");
        BufferedImage plain = new BufferedImage(56, 56, BufferedImage.TYPE_INT_RGB);
        PreprocessedImage pim = new dev.kimivl.vision.ImagePreprocessor(PRE).process(dev.kimivl.train.recipe.ExampleEncoder.toLoaded(plain));
        assertTrue(Arrays.stream(TokenCentres.of(pim, plain)).allMatch(l -> l == TokenCentres.IGNORE));
    }
}
