package dev.kimivl.train.data;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/** The types beyond single-image VQA: captions, two images, charts, reasoning, text only, long context, the corpus. */
class MoreTypesTest {
    private final VisualWorld world = new VisualWorld(VisualWorld.Options.defaults());

    @Test
    void allTypesExtendTheVqaTypes() {
        assertTrue(VisualWorld.allTypes().containsAll(VisualWorld.vqaTypes()));
        assertTrue(VisualWorld.allTypes().containsAll(List.of("caption", "compare", "chart", "reasoning", "text", "needle")));
        assertThrows(IllegalArgumentException.class, () -> world.example(1, "poetry"));
    }

    private static final Map<String, List<Integer>> IMAGES = Map.of("caption", List.of(1), "compare", List.of(2), "chart", List.of(1),
        "reasoning", List.of(1, 2), "text", List.of(0), "needle", List.of(0));

    @Test
    void everyTypeIsDeterministicAndValid() {
        for (String type : IMAGES.keySet()) {
            Set<String> answers = new HashSet<>();
            for (long seed = 0; seed < 40; seed++) {
                Example e = world.example(seed, type);
                String where = type + " " + seed + ": " + e.question() + " -> " + e.answer();
                assertEquals(type, e.type());
                assertTrue(IMAGES.get(type).contains(e.images().size()), where);
                assertTrue(e.answer().matches(".*[.!?]"), where);
                assertTrue(VisualWorld.correct(e, e.answer()), where);
                assertEquals(type.equals("reasoning"), e.reasoning() != null, where);
                answers.add(e.answer());
                if (seed < 3) VisualWorldTest.assertSame(e, world.example(seed, type));
            }
            assertTrue(answers.size() >= 3, type + " answers " + answers);
        }
    }

    private static final Pattern CAPTION = Pattern.compile("An? [a-z]+ [a-z]+ (at the (top|bottom)( left| right)?|on the (left|right)|in the centre)"
        + "((, an? [a-z]+ [a-z]+ [a-z ]+?)* and an? [a-z]+ [a-z]+ [a-z ]+?)?, on (a|an) (noisy )?[a-z]+ background\\.");

    @Test
    void captionsNameObjectsPlacesAndBackground() {
        for (long seed = 0; seed < 30; seed++) {
            Example e = world.caption(seed);
            assertTrue(CAPTION.matcher(e.answer()).matches(), e.answer());
            assertFalse(VisualWorld.correct(e, e.answer().replace("background", "wall")));
        }
    }

    @Test
    void regionsAreThirdsAndRefuseBorders() {
        Painter.Obj o = new Painter.Obj("circle", "red", 10, 10, 10, 1, null);
        assertEquals("at the top left", VisualWorld.region(o, 300, 300));
        assertEquals("in the centre", VisualWorld.region(new Painter.Obj("circle", "red", 150, 150, 10, 1, null), 300, 300));
        assertEquals("on the right", VisualWorld.region(new Painter.Obj("circle", "red", 290, 150, 10, 1, null), 300, 300));
        assertEquals("at the bottom", VisualWorld.region(new Painter.Obj("circle", "red", 150, 290, 10, 1, null), 300, 300));
        assertNull(VisualWorld.region(new Painter.Obj("circle", "red", 101, 150, 10, 1, null), 300, 300));
    }

    @Test
    void chartAnswersFollowTheValuesDrawn() {
        int checked = 0;
        for (long seed = 0; seed < 40; seed++) {
            Charts.Chart c = Charts.draw(VisualWorld.random(seed, "chart"), world.options());
            Example e = world.chart(seed);
            int n = c.labels().size();
            assertTrue(n >= 3 && n <= 5);
            assertEquals(n, c.values().length);
            int max = 0, min = 0;
            for (int i = 0; i < n; i++) {
                assertTrue(c.values()[i] >= 1 && c.values()[i] <= 9);
                if (c.values()[i] > c.values()[max]) max = i;
                if (c.values()[i] < c.values()[min]) min = i;
            }
            String q = e.question();
            if (q.contains("tallest") || q.contains("highest") || q.contains("largest")) assertEquals(c.labels().get(max) + ".", e.answer(), q);
            else if (q.contains("shortest") || q.contains("lowest") || q.contains("smallest")) assertEquals(c.labels().get(min) + ".", e.answer(), q);
            else if (q.startsWith("How many bars")) assertEquals(Palette.numberAnswer(n), e.answer());
            else {
                String label = c.labels().stream().filter(l -> Pattern.compile("\\b" + l + "\\b").matcher(q).find()).findFirst().orElseThrow();
                assertEquals(Palette.numberAnswer(c.values()[c.labels().indexOf(label)]), e.answer(), q);
            }
            checked++;
        }
        assertEquals(40, checked);
    }

    @Test
    void chartBarsAreAsTallAsTheirValues() {
        // measured on the image: the run of bar-coloured pixels above the baseline, up the bar's centre line
        for (long seed = 0; seed < 30; seed++) {
            Charts.Chart c = Charts.draw(new SplittableRandom(seed), world.options());
            var im = c.image();
            for (int i = 0; i < c.values().length; i++) {
                int x = (int) Math.round(c.barX()[i]), want = (int) Math.round(c.values()[i] * c.unit());
                int bar = im.getRGB(x, (int) Math.round(c.baseY() - want / 2.0));
                int y = (int) Math.floor(c.baseY()) - 2, run = 2;
                while (y >= 0 && Palette.distance(im.getRGB(x, y), bar) < 60) {
                    y--;
                    run++;
                }
                assertTrue(Math.abs(run - want) <= 4, "seed " + seed + " bar " + i + ": " + run + " px for value " + c.values()[i] + " (" + want + " px)");
            }
        }
    }

    @Test
    void squareAndSmallImagesWorkForEveryType() {
        // a trainer may fix the image size; charts then fall back to letter labels rather than fail
        for (VisualWorld.Options o : List.of(new VisualWorld.Options(64, 64), new VisualWorld.Options(224, 224), new VisualWorld.Options(48, 64))) {
            VisualWorld w = new VisualWorld(o);
            for (String type : VisualWorld.allTypes())
                for (long seed = 0; seed < 8; seed++)
                    for (var im : w.example(seed, type).images()) {
                        assertTrue(im.getWidth() >= o.minSide() && im.getWidth() <= o.maxSide(), type + " " + seed + " " + o);
                        assertTrue(im.getHeight() >= o.minSide() && im.getHeight() <= o.maxSide(), type + " " + seed + " " + o);
                    }
        }
        assertThrows(IllegalArgumentException.class, () -> new VisualWorld.Options(32, 64));
    }

    private static final Pattern STEP = Pattern.compile("(\\d+) ([-+*]) (\\d+) = (\\d+)\\.$");

    @Test
    void reasoningTracesAddUp() {
        int arithmetic = 0;
        for (long seed = 0; seed < 60; seed++) {
            Example e = world.reasoning(seed);
            assertNotNull(e.reasoning());
            Matcher m = STEP.matcher(e.reasoning());
            if (m.find()) {
                int a = Integer.parseInt(m.group(1)), b = Integer.parseInt(m.group(3)), c = Integer.parseInt(m.group(4));
                int want = switch (m.group(2)) {
                    case "+" -> a + b;
                    case "-" -> a - b;
                    default -> a * b;
                };
                assertEquals(want, c, e.reasoning());
                assertEquals(Palette.numberAnswer(c), e.answer(), e.reasoning());
                arithmetic++;
            } else {
                assertTrue(e.answer().equals("The first image.") || e.answer().equals("The second image."), e.reasoning() + " -> " + e.answer());
                assertTrue(e.reasoning().contains(e.answer().substring(4, e.answer().length() - 7)), e.reasoning());
            }
        }
        assertTrue(arithmetic > 20 && arithmetic < 60, arithmetic + " of 60");
    }

    private static final Pattern SUM = Pattern.compile("(?:What is|How much is|Calculate) ([a-z0-9-]+) (plus|minus|times) ([a-z0-9-]+)[?.]");

    @Test
    void textArithmeticIsRightAndImageQuestionsWithoutImageAreDeclined() {
        int sums = 0, declined = 0;
        for (long seed = 0; seed < 200; seed++) {
            Example e = world.text(seed);
            assertTrue(e.images().isEmpty());
            Matcher m = SUM.matcher(e.question());
            if (m.matches()) {
                int a = value(m.group(1)), b = value(m.group(3));
                int want = switch (m.group(2)) {
                    case "plus" -> a + b;
                    case "minus" -> a - b;
                    default -> a * b;
                };
                assertTrue(VisualWorld.correct(e, Integer.toString(want)), e.question() + " -> " + e.answer());
                sums++;
            }
            if (e.answer().equals(Conversations.NO_IMAGE)) declined++;
        }
        assertTrue(sums > 40 && declined > 15, sums + " sums, " + declined + " declined");
        assertFalse(VisualWorld.correct(world.text(3), "Purple elephants."));
    }

    private static int value(String s) {
        return s.matches("\\d+") ? Integer.parseInt(s) : Palette.parseNumber(s);
    }

    @Test
    void needleSitsAtItsDepthInFillerOfTheAskedLength() {
        Set<Integer> depthTenths = new HashSet<>();
        for (long seed = 0; seed < 60; seed++) {
            int target = 500 + (int) seed * 100;
            Example e = world.longContext(seed, target);
            String secret = e.answer().substring(0, e.answer().length() - 1).toLowerCase(Locale.ROOT);
            assertTrue(e.question().contains("The secret word is " + secret + "."), e.question());
            assertEquals(1, e.question().split("secret word is", -1).length - 1, "one needle");
            int filler = e.question().lastIndexOf("\n\n");
            assertTrue(Math.abs(filler - target) < 200, filler + " chars for " + target);
            int d = e.depthPercent();
            assertTrue(d >= 0 && d <= 100, "depth " + d);
            int at = e.question().indexOf("The secret word is");
            assertEquals(Math.round(100.0 * at / filler), d);
            depthTenths.add(d / 10);
            assertTrue(VisualWorld.correct(e, secret), secret);
            assertFalse(VisualWorld.correct(e, secret + "s"));
        }
        assertTrue(depthTenths.size() >= 8, "depths " + depthTenths);
        assertEquals(-1, world.vqa(1, "color").depthPercent());
    }

    @Test
    void passkeyIsTheNeedleAnsweredByItsOwnSentence() {
        for (long seed = 0; seed < 20; seed++) {
            Example n = world.longContext(seed, 800), p = world.passkey(seed, 800);
            assertEquals(n.question(), p.question(), "the same haystack and question");
            String secret = n.answer().substring(0, n.answer().length() - 1).toLowerCase(Locale.ROOT);
            assertEquals("The secret word is " + secret + ".", p.answer());
            assertTrue(p.question().contains(p.answer()), "the answer copies the needle sentence");
            assertEquals(n.depthPercent(), p.depthPercent());
            // the checker takes the word or the repeated sentence for either form, and nothing else
            for (Example e : List.of(n, p)) {
                assertTrue(VisualWorld.correct(e, secret) && VisualWorld.correct(e, "The secret word is " + secret + "."), e.answer());
                assertFalse(VisualWorld.correct(e, "The secret word is " + secret + "s."));
                assertFalse(VisualWorld.correct(e, "The secret word is"));
            }
        }
    }

    @Test
    void copyLessonsAnswerFromTheirOwnText() {
        int repeats = 0, lookups = 0;
        for (long seed = 0; seed < 200; seed++) {
            Example e = world.copy(seed);
            assertEquals("copy", e.type());
            assertTrue(e.images().isEmpty());
            assertEquals(e, world.copy(seed), "deterministic");
            String want = e.answer().substring(0, e.answer().length() - 1).toLowerCase(Locale.ROOT);
            if (e.question().startsWith("Words: ")) {
                lookups++;
                // the asked word occurs once in the list, and the answer is the word right after it
                String[] words = e.question().substring(7, e.question().indexOf(".\n")).split(" ");
                String asked = e.question().replaceAll("(?s).*(?:after|follows) (\\S+)\\?$", "$1");
                int at = List.of(words).indexOf(asked);
                assertTrue(at >= 0 && at == List.of(words).lastIndexOf(asked) && at + 1 < words.length, e.question());
                assertEquals(words[at + 1], want, e.question());
            } else {
                repeats++;
                assertTrue(e.question().toLowerCase(Locale.ROOT).endsWith(": " + want + "."), e.question() + " / " + e.answer());
            }
            assertTrue(VisualWorld.correct(e, e.answer()));
        }
        assertTrue(repeats > 60 && lookups > 60, repeats + " repeats, " + lookups + " look-ups");
    }

    @Test
    void repeatLessonsAnswerWithTheirOwnListTokenForToken() {
        int withRecurringWords = 0;
        for (long seed = 0; seed < 200; seed++) {
            Example e = world.repeat(seed);
            assertEquals("repeat", e.type());
            assertTrue(e.images().isEmpty());
            assertEquals(e, world.repeat(seed), "deterministic");
            // the answer is the prompt's first line exactly, so every token after the first is a copy
            assertTrue(e.answer().startsWith("Words: ") && e.answer().endsWith("."), e.answer());
            assertEquals(e.answer(), e.question().substring(0, e.question().indexOf('\n')));
            String[] words = e.answer().substring(7, e.answer().length() - 1).split(" ");
            assertTrue(words.length >= 4 && words.length <= 24, e.answer());
            if (new HashSet<>(List.of(words)).size() < words.length) withRecurringWords++;
            assertTrue(VisualWorld.correct(e, e.answer()));
            assertFalse(VisualWorld.correct(e, "Words: " + String.join(" ", java.util.Arrays.copyOf(words, words.length - 1)) + "."));
        }
        // half the lists draw from a pool of 3-6 words, so a word recurs and one token of context does not find its successor
        assertTrue(withRecurringWords > 80, withRecurringWords + " lists with a recurring word");
    }

    @Test
    void passkeySweepDrawsEveryHaystackLengthUpToItsLimit() {
        int shortest = Integer.MAX_VALUE, longest = 0;
        for (long seed = 0; seed < 100; seed++) {
            Example e = world.passkeySweep(seed, 1000);
            assertEquals("needle", e.type());
            assertEquals(e, world.passkeySweep(seed, 1000), "deterministic");
            assertTrue(e.question().contains(e.answer()) && e.answer().startsWith("The secret word is "), e.answer());
            int filler = e.question().indexOf("\n\n");
            shortest = Math.min(shortest, filler);
            longest = Math.max(longest, filler);
            assertTrue(filler <= 1000 + 200, "filler of " + filler + " characters for a limit of 1000");
        }
        assertTrue(shortest < 250 && longest > 800, "filler lengths " + shortest + ".." + longest);
    }

    @Test
    void corpusIsDeterministicAndCoversTheTypes() {
        List<String> a = world.corpus(7, 40).toList(), b = world.corpus(7, 40).toList();
        assertEquals(a, b);
        assertTrue(a.size() >= 80, a.size() + " strings");
        String all = String.join("\n", a);
        for (String marker : List.of("secret word", "How many", "image", "bar", "background", " = "))
            assertTrue(all.contains(marker), "corpus lacks " + marker);
        assertTrue(!world.corpus(8, 40).toList().equals(a));
    }
}
