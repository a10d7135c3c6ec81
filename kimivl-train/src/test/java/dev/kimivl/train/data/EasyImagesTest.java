package dev.kimivl.train.data;

import org.junit.jupiter.api.Test;

import java.awt.image.BufferedImage;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The curriculum's easy images: a neutral grey ground (no gradients, noise, lines or JPEG), the same questions. */
class EasyImagesTest {
    @Test
    void easyImagesHaveAGreyGroundAndTheSameQuestionTypes() {
        VisualWorld easy = new VisualWorld(new VisualWorld.Options(64, 512, true));
        int grey = 0, n = 60;
        for (int i = 0; i < n; i++) {
            Example e = easy.vqa(1000 + i, VisualWorld.vqaTypes().get(i % VisualWorld.vqaTypes().size()));
            BufferedImage im = e.images().get(0);
            int c = im.getRGB(0, 0), r = c >> 16 & 255, g = c >> 8 & 255, b = c & 255;
            // the corners are ground: objects keep a margin (Painter.place) and easy images draw no lines
            if (r == g && g == b) grey++;
            assertTrue(VisualWorld.correct(e, e.answer()));
        }
        // all but scenes that no grey ground can carry (white and black objects together fall back to an ordinary one)
        assertTrue(grey >= n * 9 / 10, grey + " of " + n + " easy images on a grey ground");
        assertEquals(easy.vqa(7, "color").answer(), easy.vqa(7, "color").answer());
    }

    @Test
    void theObjectLessonShowsOneLargeObjectAndAsksAboutIt() {
        VisualWorld w = new VisualWorld(new VisualWorld.Options(96, 160, true));
        java.util.Set<String> types = new java.util.TreeSet<>();
        for (int i = 0; i < 60; i++) {
            Example e = w.object(500 + i);
            types.add(e.type());
            assertEquals(1, e.images().size());
            BufferedImage im = e.images().get(0);
            assertTrue(im.getWidth() >= 96 && im.getWidth() <= 160 && im.getHeight() >= 96 && im.getHeight() <= 160);
            // one object of at least a third of the shorter side: count the pixels that differ from the ground
            int ground = im.getRGB(0, 0), off = 0;
            for (int y = 0; y < im.getHeight(); y++) for (int x = 0; x < im.getWidth(); x++) if (im.getRGB(x, y) != ground) off++;
            double side = Math.min(im.getWidth(), im.getHeight());
            // a ring of a third of the side covers the least: about 0.1 of its bounding square
            assertTrue(off >= 0.1 * (side / 3) * (side / 3) * 0.8, "object too small in example " + i + ": " + off + " px");
            assertTrue(VisualWorld.correct(e, e.answer()), e.answer());
            if (e.type().equals("what")) assertEquals(1, VisualWorld.items(VisualWorld.normalise(e.answer(), false)).size(), e.answer());
        }
        assertEquals(java.util.Set.of("color", "shape", "what"), types);
        assertEquals(w.object(3).answer(), w.object(3).answer());
    }
}
