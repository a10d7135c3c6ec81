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
}
