package dev.kimivl.train.eval;

import dev.kimivl.model.KimiVL;
import dev.kimivl.text.ChatMessage;
import dev.kimivl.train.data.VisualWorld;
import dev.kimivl.train.recipe.ExampleEncoder;
import dev.kimivl.vision.ImagePreprocessor;
import dev.kimivl.vision.LoadedImage;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.awt.image.BufferedImage;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The video needle's construction on tiny-random: the marked frame sits at the stated depth and is the only one that
 * differs from the plain ground, the prompt holds one image block per frame after its "Frame at mm:ss:" label, the
 * checker takes the colour and nothing else, and the evaluation tallies every frame count and depth.
 */
class VideoNeedleTest {
    static KimiVL model;

    @BeforeAll
    static void open() { model = KimiVL.open(Path.of("../models/tiny-random")); }

    @AfterAll
    static void close() { model.close(); }

    static boolean same(BufferedImage a, BufferedImage b) {
        if (a.getWidth() != b.getWidth() || a.getHeight() != b.getHeight()) return false;
        for (int y = 0; y < a.getHeight(); y++) for (int x = 0; x < a.getWidth(); x++) if (a.getRGB(x, y) != b.getRGB(x, y)) return false;
        return true;
    }

    /** Pixels of {@code im} that are not {@code rgb}. */
    static int otherThan(BufferedImage im, int rgb) {
        int n = 0;
        for (int y = 0; y < im.getHeight(); y++) for (int x = 0; x < im.getWidth(); x++) if ((im.getRGB(x, y) & 0xFFFFFF) != rgb) n++;
        return n;
    }

    @Test
    void theMarkedFrameIsAtItsDepthAndTheOnlyOneThatDiffers() {
        VideoNeedle videos = new VideoNeedle(112);
        for (int frames : new int[] {4, 7, 16, 48}) {
            for (int bucket = 0; bucket < 4; bucket++) {
                for (long seed = 0; seed < 3; seed++) {
                    VideoNeedle.Case c = videos.make(1000 * frames + 10 * bucket + seed, frames, bucket);
                    String where = frames + " frames, bucket " + bucket + ", seed " + seed;
                    assertEquals(frames, c.frames(), where);
                    assertEquals(Math.round(100.0 * c.needle() / (frames - 1)), c.depthPercent(), where);
                    int lo = 25 * bucket, hi = bucket == 3 ? 100 : 25 * bucket + 24;
                    assertTrue(c.depthPercent() >= lo && c.depthPercent() <= hi, where + ": depth " + c.depthPercent());
                    assertEquals(frames + " frames, " + Evaluator.depthBucket(c.depthPercent()), c.bucket());
                    assertEquals("color", c.example().type());
                    assertTrue(c.example().question().startsWith(VideoNeedle.QUESTION_PREFIX), c.example().question());

                    List<BufferedImage> im = c.example().images();
                    BufferedImage marked = im.get(c.needle());
                    int ground = dev.kimivl.train.data.Videos.ground(marked);
                    // the marked frame shows a large object (the lesson's: a third to two thirds of the side) on the ground
                    assertTrue(otherThan(marked, ground) > 112 * 112 / 20, where + ": the marked frame shows a shape");
                    for (int i = 0; i < frames; i++) {
                        assertEquals(112, im.get(i).getWidth(), where);
                        assertEquals(112, im.get(i).getHeight(), where);
                        if (i != c.needle()) {
                            assertEquals(0, otherThan(im.get(i), ground), where + ": frame " + i + " is the plain ground");
                            assertFalse(same(im.get(i), marked), where);
                        }
                    }
                }
            }
        }
        // every frame index of a 16-frame video lands in exactly the bucket of its depth
        for (int i = 0; i < 16; i++) assertEquals(Evaluator.depthBucket((int) Math.round(100.0 * i / 15)), Evaluator.depthBucket(25 * VideoNeedle.bucketOf(i, 16)));
        assertThrows(IllegalArgumentException.class, () -> videos.make(1, 3, 0));
        assertThrows(IllegalArgumentException.class, () -> videos.make(1, 8, 4));
    }

    @Test
    void thePromptHoldsOneLabelledImageBlockPerFrameInOrder() {
        VideoNeedle.Case c = new VideoNeedle(112).make(42, 12, 2);
        List<ChatMessage> turn = c.userTurn();
        assertEquals(1, turn.size());
        List<ChatMessage.Part> parts = turn.getFirst().parts();
        assertEquals(2 * 12 + 1, parts.size(), "a label and an image per frame, then the question");
        for (int i = 0; i < 12; i++) {
            assertEquals(ChatMessage.textPart("Frame at 00:" + String.format("%02d", i) + ":"), parts.get(2 * i), "frame " + i + "'s label");
            assertEquals(ChatMessage.imagePart(), parts.get(2 * i + 1));
        }
        assertEquals(ChatMessage.textPart(c.example().question()), parts.getLast());
        assertEquals("01:05", dev.kimivl.train.data.Videos.timestamp(65));
        assertEquals("1:00:07", dev.kimivl.train.data.Videos.timestamp(3607));

        // through the model's prompt: 12 runs of image placeholders, each the tokens of one 112 px frame
        List<LoadedImage> ims = new ArrayList<>();
        for (BufferedImage b : c.example().images()) ims.add(ExampleEncoder.toLoaded(b));
        KimiVL.Prompt p = model.prompt(turn, ims);
        List<Integer> runs = model.imageTokenCounts(p);
        int perFrame = ImagePreprocessor.tokensFor(112, 112, model.preprocessor());
        assertEquals(java.util.Collections.nCopies(12, perFrame), runs);
        // the labels are in the text, in order, before their frames
        String text = model.tokenizer().decode(p.ids());
        int at = -1;
        for (int i = 0; i < 12; i++) {
            int next = text.indexOf("Frame at 00:" + String.format("%02d", i) + ":", at + 1);
            assertTrue(next > at, "label " + i + " after label " + (i - 1) + " in: " + text);
            at = next;
        }
        assertTrue(text.indexOf(c.example().question()) > at, "the question after the frames");
    }

    @Test
    void theCheckerTakesTheColourOnly() {
        VideoNeedle.Case c = new VideoNeedle(112).make(7, 8, 1);
        String want = c.example().answer();                         // "Red." and the like
        String colour = want.substring(0, want.length() - 1);
        assertTrue(VisualWorld.correct(c.example(), want));
        assertTrue(VisualWorld.correct(c.example(), colour.toLowerCase()));
        assertTrue(VisualWorld.correct(c.example(), " " + colour + ". "));
        assertFalse(VisualWorld.correct(c.example(), colour.equalsIgnoreCase("blue") ? "Green." : "Blue."));
        assertFalse(VisualWorld.correct(c.example(), ""));
        assertFalse(VisualWorld.correct(c.example(), "A " + colour.toLowerCase() + " square."));
    }

    @Test
    void theEvaluationTalliesEveryFrameCountAndDepth() {
        Evaluator.Report r = Evaluator.videoNiah(model, new VideoNeedle(112), 16, 3, new int[] {4, 8}, null);
        assertEquals(16, r.total());
        List<String> keys = new ArrayList<>(r.byType().keySet());
        List<String> want = new ArrayList<>();
        for (int f : new int[] {4, 8}) for (String d : List.of("0-24", "25-49", "50-74", "75-100")) want.add(f + " frames, depth " + d + "%");
        assertEquals(want, keys, "frame counts, then depths, in order");
        for (var t : r.byType().values()) assertEquals(2, t.total(), t.type());
        assertEquals(r.right(), r.byType().values().stream().mapToInt(Evaluator.TypeScore::right).sum());
        assertEquals(16 - r.right(), r.wrong().size());
        for (String w : r.wrong()) assertTrue(w.matches("(?s)\\d+ frames, depth .*expected \".*\"\\)"), w);
        assertThrows(IllegalArgumentException.class, () -> Evaluator.videoNiah(model, new VideoNeedle(112), 4, 3, new int[] {2}, null));
    }
}
