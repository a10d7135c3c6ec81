package dev.kimivl.train.data;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.awt.Color;
import java.awt.Font;
import java.awt.Shape;
import java.awt.geom.Rectangle2D;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class PainterTest {
    @Test
    void paletteColoursAreWellSeparated() {
        for (int i = 0; i < Palette.COLORS.size(); i++)
            for (int j = i + 1; j < Palette.COLORS.size(); j++) {
                double d = Palette.distance(Palette.rgb(Palette.COLORS.get(i)).getRGB(), Palette.rgb(Palette.COLORS.get(j)).getRGB());
                assertTrue(d >= 100, Palette.COLORS.get(i) + " vs " + Palette.COLORS.get(j) + ": " + d);
            }
    }

    @Test
    void contrastGuardRefusesAnObjectOfTheBackgroundColour() {
        for (String color : Palette.COLORS) {
            Painter p = new Painter(new SplittableRandom(7), 200, 150, "plain", true);
            p.fill(Palette.rgb(color));
            assertNull(p.place("circle", color, 0.2, 0.4), color + " on " + color);
            // any well-separated colour goes on it
            String other = color.equals("blue") ? "yellow" : "blue";
            if (color.equals("purple") || color.equals("black")) other = "white";
            assertNotNull(p.place("square", other, 0.2, 0.4), other + " on " + color);
        }
    }

    @Test
    void contrastGuardSeesWhatIsUnderTheObject() {
        Painter p = new Painter(new SplittableRandom(1), 100, 100, "plain", false);
        p.fill(Color.WHITE);
        Shape s = new Rectangle2D.Double(10, 10, 20, 20);
        assertEquals(0, Painter.nearShare(p.image, s, 0, Palette.rgb("yellow")), 1e-9);
        assertEquals(1, Painter.nearShare(p.image, s, 0, new Color(240, 240, 240)), 1e-9);
        // a yellow half under the square: half the pixels are near yellow
        for (int y = 0; y < 100; y++) for (int x = 0; x < 20; x++) p.image.setRGB(x, y, Palette.rgb("yellow").getRGB());
        assertEquals(0.5, Painter.nearShare(p.image, s, 0, Palette.rgb("yellow")), 1e-9);
    }

    @Test
    void placedObjectsDoNotOverlapAndKeepTheirMinimumSize() {
        for (long seed = 0; seed < 30; seed++) {
            SplittableRandom r = new SplittableRandom(seed);
            Painter p = Painter.random(r, VisualWorld.Options.defaults());
            for (int i = 0; i < 9; i++) p.place(Palette.SHAPES.get(i % 7), Palette.COLORS.get(i), 0.12, VisualWorld.maxRel(9));
            for (int i = 0; i < p.objects.size(); i++) {
                Painter.Obj a = p.objects.get(i);
                assertTrue(a.size() >= 0.12 * p.shortSide - 1e-9, "size " + a.size() + " of " + p.shortSide);
                assertTrue(a.bounds().getMinX() >= 0 && a.bounds().getMaxX() <= p.width && a.bounds().getMinY() >= 0 && a.bounds().getMaxY() <= p.height);
                for (int j = i + 1; j < p.objects.size(); j++) assertTrue(!a.bounds().intersects(p.objects.get(j).bounds()), "seed " + seed + ": " + i + " and " + j);
            }
        }
    }

    @Test
    void renderedWordsHoldInkInsideTheirOutline() {
        int words = 0;
        for (long seed = 0; seed < 60; seed++) {
            SplittableRandom r = new SplittableRandom(seed);
            Painter p = new Painter(r, 80 + r.nextInt(400), 80 + r.nextInt(400), Painter.BACKGROUNDS[(int) (seed % 4)], true);
            if (!p.word("Apple", 0.12, 0.3, seed % 3 == 0)) continue;
            words++;
            Painter.Text t = p.text;
            Rectangle2D b = t.outline().getBounds2D();
            // cap height >= 10% of the shorter side: the "A" alone is that tall
            assertTrue(b.getHeight() >= 0.10 * p.shortSide, "text height " + b.getHeight() + " of " + p.shortSide);
            int inside = 0, inked = 0;
            for (int y = (int) b.getMinY(); y < b.getMaxY(); y++)
                for (int x = (int) b.getMinX(); x < b.getMaxX(); x++)
                    // pixels well inside a stroke: edge pixels are a blend with the background when anti-aliased
                    if (t.outline().contains(x + 0.5, y + 0.5) && t.outline().contains(x - 0.5, y + 0.5) && t.outline().contains(x + 1.5, y + 0.5)
                        && t.outline().contains(x + 0.5, y - 0.5) && t.outline().contains(x + 0.5, y + 1.5)) {
                        inside++;
                        if (Palette.distance(p.image.getRGB(x, y), t.color().getRGB()) < 30) inked++;
                    }
            assertTrue(inside > 10 && inked > 0.9 * inside, "seed " + seed + ": " + inked + " of " + inside);
            // and the ink stands out from what is around it
            if (seed % 3 != 0) assertTrue(Painter.nearShare(p.image, new java.awt.BasicStroke(3).createStrokedShape(t.outline()), 0, t.color()) < 0.7);
        }
        assertTrue(words > 50, words + " of 60 words placed");
    }

    @Test
    void wordListIsLargeAndClean() {
        assertTrue(Words.COMMON.size() >= 500, Words.COMMON.size() + " words");
        assertEquals(Words.COMMON.size(), new HashSet<>(Words.COMMON).size(), "duplicates");
        for (String w : Words.COMMON) assertTrue(w.matches("[a-z]{3,9}"), w);
    }

    @Test
    void fontsLoadFromFilesAndFallBack(@TempDir Path dir) throws Exception {
        List<Font> fonts = Fonts.all();
        assertEquals(Fonts.FILES.size(), fonts.size());
        assertTrue(new HashSet<>(fonts.stream().map(Font::getFontName).toList()).size() >= 6, "distinct fonts: " + fonts);
        assertThrows(IllegalStateException.class, () -> Fonts.loadFrom(dir));
        Files.copy(Fonts.dir().resolve("DejaVuSerif.ttf"), dir.resolve("DejaVuSerif.ttf"));
        List<Font> one = Fonts.loadFrom(dir);
        assertEquals(Fonts.FILES.size(), one.size());
        for (Font f : one) assertEquals("DejaVu Serif", f.getFontName());
    }

    @Test
    void jpegKeepsSizeAndChangesPixels() {
        Painter p = new Painter(new SplittableRandom(3), 120, 90, "rainbow", true);
        var j = Painter.jpeg(p.image, 0.5f);
        assertEquals(120, j.getWidth());
        assertEquals(90, j.getHeight());
        assertTrue(!java.util.Arrays.equals(VisualWorldTest.pixels(p.image), VisualWorldTest.pixels(j)));
    }
}
