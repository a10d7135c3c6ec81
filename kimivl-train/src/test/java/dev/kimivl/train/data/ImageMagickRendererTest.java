package dev.kimivl.train.data;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.awt.image.BufferedImage;
import java.util.HashSet;
import java.util.Locale;
import java.util.Set;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

class ImageMagickRendererTest {
    private final ImageMagickRenderer im = new ImageMagickRenderer(VisualWorld.Options.defaults());

    @BeforeAll
    static void needsImageMagick() {
        // CI installs it (.ci/run); only a machine without it skips
        assumeTrue(ImageMagickRenderer.available(), "ImageMagick's convert is not installed");
    }

    @Test
    void everyTypeGivesValidDeterministicExamples() {
        VisualWorld.Options o = VisualWorld.Options.defaults();
        for (String type : ImageMagickRenderer.types()) {
            Set<String> answers = new HashSet<>();
            for (long seed = 0; seed < 6; seed++) {
                Example e = im.vqa(seed, type);
                String where = type + " " + seed + ": " + e.question() + " -> " + e.answer();
                assertEquals(type, e.type());
                assertEquals(1, e.images().size());
                BufferedImage img = e.images().getFirst();
                assertTrue(img.getWidth() >= o.minSide() && img.getWidth() <= o.maxSide() && img.getHeight() >= o.minSide() && img.getHeight() <= o.maxSide(), where);
                assertTrue(VisualWorld.correct(e, e.answer()), where);
                answers.add(e.answer());
                if (seed == 0) VisualWorldTest.assertSame(e, im.vqa(seed, type));
            }
            assertTrue(answers.size() >= 2, type + ": " + answers);
        }
        assertThrows(IllegalArgumentException.class, () -> im.vqa(0, "chart"));
    }

    @Test
    void theNamedColourIsReallyDrawn() {
        // a colour question's object must show as pixels of that colour (proves the -draw primitives took effect)
        for (long seed = 0; seed < 8; seed++) {
            Example e = im.vqa(seed, "color");
            String color = e.answer().substring(0, e.answer().length() - 1).toLowerCase(Locale.ROOT);
            BufferedImage img = e.images().getFirst();
            int rgb = Palette.rgb(color).getRGB(), near = 0;
            for (int y = 0; y < img.getHeight(); y++)
                for (int x = 0; x < img.getWidth(); x++) if (Palette.distance(img.getRGB(x, y), rgb) < 45) near++;
            double minArea = 0.3 * Math.pow(Math.max(0.12 * Math.min(img.getWidth(), img.getHeight()), 10), 2);
            assertTrue(near >= minArea, "seed " + seed + " " + color + ": " + near + " px");
        }
    }

    @Test
    void objectLessonOnEasyGroundsDrawsOneLargeObjectOfTheNamedColour() {
        ImageMagickRenderer easy = new ImageMagickRenderer(new VisualWorld.Options(64, 512, true));
        Set<String> types = new HashSet<>();
        for (long seed = 0; seed < 9; seed++) {
            Example e = easy.object(seed);
            types.add(e.type());
            assertTrue(VisualWorld.correct(e, e.answer()), e.answer());
            BufferedImage img = e.images().getFirst();
            int c = img.getRGB(0, 0);
            assertTrue((c >> 16 & 255) == (c >> 8 & 255) && (c >> 8 & 255) == (c & 255), "seed " + seed + ": the ground is not grey");
            // the object covers at least a fraction of (a third of the side)²; a ring covers least
            int off = 0;
            for (int y = 0; y < img.getHeight(); y++) for (int x = 0; x < img.getWidth(); x++) if (img.getRGB(x, y) != c) off++;
            double third = Math.min(img.getWidth(), img.getHeight()) / 3.0;
            assertTrue(off >= 0.08 * third * third, "seed " + seed + ": " + off + " px");
            if (seed == 0) VisualWorldTest.assertSame(e, easy.object(seed));
        }
        assertEquals(Set.of("color", "shape", "what"), types);
    }

    @Test
    void wordsAreDrawn() {
        for (long seed = 0; seed < 4; seed++) {
            BufferedImage img = im.vqa(seed, "read").images().getFirst();
            Set<Integer> colours = new HashSet<>();
            for (int y = 0; y < img.getHeight(); y += 2) for (int x = 0; x < img.getWidth(); x += 2) colours.add(img.getRGB(x, y));
            assertTrue(colours.size() > 2, "seed " + seed);
        }
    }
}
