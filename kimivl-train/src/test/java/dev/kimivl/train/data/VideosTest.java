package dev.kimivl.train.data;

import dev.kimivl.text.ChatMessage;
import dev.kimivl.train.recipe.ExampleEncoder;
import dev.kimivl.train.recipe.ExampleSource;
import org.junit.jupiter.api.Test;

import java.awt.image.BufferedImage;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The training videos: frames, labels and questions as a video reaches the model, and the recipe kind that draws them. */
class VideosTest {
    /** Whether two images have the same pixels. */
    static boolean same(BufferedImage a, BufferedImage b) {
        if (a.getWidth() != b.getWidth() || a.getHeight() != b.getHeight()) return false;
        for (int y = 0; y < a.getHeight(); y++) for (int x = 0; x < a.getWidth(); x++) if (a.getRGB(x, y) != b.getRGB(x, y)) return false;
        return true;
    }

    @Test
    void aTrainingVideoHasOneMarkedFrameAmongPlainOnesEachAfterItsTimeLabel() {
        Set<Integer> sides = new HashSet<>(), counts = new HashSet<>();
        Set<String> types = new HashSet<>(), prefixes = new HashSet<>();
        for (long seed = 0; seed < 60; seed++) {
            Example v = Videos.random(seed);
            int n = v.images().size(), side = v.images().getFirst().getWidth();
            assertTrue(n >= 2 && n <= Videos.MAX_FRAMES, n + " frames");
            assertEquals(n, v.imageLabels().size());
            int marked = 0;
            int ground = -1;
            for (int i = 0; i < n; i++) {
                assertEquals("Frame at " + Videos.timestamp(i) + ":", v.imageLabels().get(i));
                BufferedImage f = v.images().get(i);
                assertEquals(side, f.getWidth());
                assertEquals(side, f.getHeight());
                int g = Videos.ground(f);
                if (ground < 0) ground = g;
                assertEquals(ground, g, "every frame shares the ground");
                boolean plain = same(f, Videos.plain(side, g));
                if (!plain) marked++;
            }
            assertEquals(1, marked, "seed " + seed + ": one frame shows the object");
            assertTrue(v.type().equals("color") || v.type().equals("shape"), v.type());
            prefixes.add(Videos.PREFIXES.stream().filter(v.question()::startsWith).findFirst().orElseThrow());
            sides.add(side);
            counts.add(n);
            types.add(v.type());
            assertTrue(same(v.images().get(0), Videos.random(seed).images().get(0)), "the same seed draws the same video");
        }
        assertEquals(Set.of(84, 112, 140), sides);
        assertEquals(Set.of("color", "shape"), types);
        assertEquals(Set.copyOf(Videos.PREFIXES), prefixes);
        assertTrue(counts.size() > 20, "frame counts drawn: " + counts);
    }

    @Test
    void theUserTurnPutsEachLabelBeforeItsFrameAndTheQuestionLast() {
        Example v = Videos.needle(7, 112, 3, 1, true, Videos.QUESTION_PREFIX);
        List<ChatMessage.Part> parts = ExampleEncoder.userTurn(v).getFirst().parts();
        assertEquals(7, parts.size());
        for (int i = 0; i < 3; i++) {
            assertEquals(new ChatMessage.TextPart("Frame at 00:0" + i + ":"), parts.get(2 * i));
            assertTrue(parts.get(2 * i + 1) instanceof ChatMessage.ImagePart);
        }
        assertTrue(parts.get(6) instanceof ChatMessage.TextPart t && t.text().startsWith(Videos.QUESTION_PREFIX));
        assertThrows(IllegalArgumentException.class, () -> Videos.needle(7, 112, 3, 3, true, ""));
        assertThrows(IllegalArgumentException.class, () -> new Example("color", v.images(), "q", "a.", null, List.of(), List.of("one label")));
    }

    @Test
    void aRecipeMixDrawsVideosByTheirKind() {
        ExampleSource src = new ExampleSource(new VisualWorld(VisualWorld.Options.defaults()), Map.of("video-needle", 1.0), 2000);
        for (long seed = 0; seed < 5; seed++) {
            Example e = src.draw(seed);
            assertTrue(e.images().size() >= 2 && !e.imageLabels().isEmpty(), "seed " + seed);
        }
    }
}
