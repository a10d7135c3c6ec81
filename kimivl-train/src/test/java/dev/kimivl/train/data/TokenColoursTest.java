package dev.kimivl.train.data;

import dev.kimivl.config.PreprocessorConfig;
import dev.kimivl.train.recipe.ExampleEncoder;
import dev.kimivl.vision.ImagePreprocessor;
import dev.kimivl.vision.PreprocessedImage;
import org.junit.jupiter.api.Test;

import java.awt.Graphics2D;
import java.awt.image.BufferedImage;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/** The colour under each merged token, read back from the preprocessed pixels. */
class TokenColoursTest {
    static final PreprocessorConfig PRE = load();

    static PreprocessorConfig load() {
        try {
            return PreprocessorConfig.load(Path.of("../models/kimivl-nano-instruct"));
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }

    record Rect(String colour, int x, int y, int w, int h) {}

    /** A side × side image of the ground colour with the rectangles filled in order, preprocessed. */
    static PreprocessedImage draw(int side, String ground, Rect... rects) {
        BufferedImage b = new BufferedImage(side, side, BufferedImage.TYPE_INT_RGB);
        Graphics2D g = b.createGraphics();
        g.setColor(Palette.rgb(ground));
        g.fillRect(0, 0, side, side);
        for (Rect r : rects) {
            g.setColor(Palette.rgb(r.colour()));
            g.fillRect(r.x(), r.y(), r.w(), r.h());
        }
        g.dispose();
        return new ImagePreprocessor(PRE).process(ExampleEncoder.toLoaded(b));
    }

    @Test
    void eachTokenIsNamedByTheColourCoveringItOrTheGround() {
        // 112 × 112 px = 8 × 8 patches = 4 × 4 merged tokens of 28 px; a grey ground
        PreprocessedImage im = draw(112, "grey",
                new Rect("red", 0, 0, 56, 56),        // tokens (0,0) (0,1) (1,0) (1,1)
                new Rect("blue", 84, 84, 28, 10),     // 10/28 = 36% of token (3,3): named
                new Rect("yellow", 84, 0, 28, 5),     // 5/28 = 18% of token (0,3): too little, the ground
                new Rect("white", 56, 28, 28, 28));   // token (1,2) all white: a palette colour on a grey ground
        assertEquals(16, im.tokens());
        int red = Palette.COLORS.indexOf("red"), blue = Palette.COLORS.indexOf("blue"), white = Palette.COLORS.indexOf("white"), n = TokenColours.NONE;
        assertArrayEquals(new int[]{
                red, red, n, n,
                red, red, white, n,
                n, n, n, n,
                n, n, n, blue}, TokenColours.of(im, PRE));
    }

    @Test
    void theGroundIsTheCommonestColourWhateverItIs() {
        // a red ground: red pixels are ground, the green square is the object
        PreprocessedImage im = draw(56, "red", new Rect("green", 28, 28, 28, 28));
        int n = TokenColours.NONE, green = Palette.COLORS.indexOf("green");
        assertArrayEquals(new int[]{n, n, n, green}, TokenColours.of(im, PRE));
    }

    @Test
    void thePaddingIsGroundNotBlack() {
        // 70 px pads to 84 (3 × 3 tokens): the last column and row are 14/28 padding, black before normalisation; a
        // white ground, so black would be a palette colour if the padding counted
        PreprocessedImage im = draw(70, "white", new Rect("blue", 0, 0, 28, 28));
        assertEquals(84, im.paddedWidth());
        int n = TokenColours.NONE, blue = Palette.COLORS.indexOf("blue");
        assertArrayEquals(new int[]{blue, n, n, n, n, n, n, n, n}, TokenColours.of(im, PRE));
    }
}
