package dev.kimivl.train.data;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.awt.image.BufferedImage;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

class VisualWorldTest {
    private final VisualWorld world = new VisualWorld(VisualWorld.Options.defaults());

    static int[] pixels(BufferedImage im) {
        return im.getRGB(0, 0, im.getWidth(), im.getHeight(), null, 0, im.getWidth());
    }

    static void assertSame(Example a, Example b) {
        assertEquals(a.type(), b.type());
        assertEquals(a.question(), b.question());
        assertEquals(a.answer(), b.answer());
        assertEquals(a.reasoning(), b.reasoning());
        assertEquals(a.images().size(), b.images().size());
        for (int i = 0; i < a.images().size(); i++) assertArrayEquals(pixels(a.images().get(i)), pixels(b.images().get(i)), "image " + i);
    }

    @Test
    void sameSeedSameExample() {
        for (String type : VisualWorld.vqaTypes())
            for (long seed = 0; seed < 5; seed++) assertSame(world.vqa(seed, type), new VisualWorld(VisualWorld.Options.defaults()).vqa(seed, type));
        assertSame(world.vqa(42), world.vqa(42));
    }

    @Test
    void vqaOfSeedIsVqaOfItsType() {
        for (long seed = 0; seed < 10; seed++) {
            Example e = world.vqa(seed);
            assertSame(e, world.vqa(seed, e.type()));
        }
    }

    @Test
    void differentSeedsDiffer() {
        Set<String> answers = new HashSet<>();
        for (long seed = 0; seed < 30; seed++) answers.add(world.vqa(seed, "what").answer());
        assertTrue(answers.size() > 20, "30 seeds gave only " + answers.size() + " distinct scenes");
    }

    private static final Map<String, Pattern> ANSWER = Map.of(
        "what", Pattern.compile("An? [a-z]+ [a-z]+((, an? [a-z]+ [a-z]+)* and an? [a-z]+ [a-z]+)?\\."),
        "color", Pattern.compile("(" + String.join("|", Palette.COLORS.stream().map(Palette::capitalise).toList()) + ")\\."),
        "shape", Pattern.compile("An? (" + String.join("|", Palette.SHAPES) + ")\\."),
        "count", Pattern.compile("(One|Two|Three|Four|Five|Six|Seven|Eight|Nine)\\."),
        "position", Pattern.compile("(Left|Right|Above|Below|Higher|Lower|The [a-z]+ [a-z]+)\\."),
        "size", Pattern.compile("The ([a-z]+ )?[a-z]+\\."),
        "read", Pattern.compile("[A-Za-z]+\\."));

    @Test
    void everyTypeGivesValidExamplesOver200Seeds() {
        VisualWorld.Options o = VisualWorld.Options.defaults();
        for (String type : VisualWorld.vqaTypes()) {
            Map<String, Integer> answers = new HashMap<>();
            for (long seed = 0; seed < 200; seed++) {
                Example e = world.vqa(seed, type);
                String where = type + " seed " + seed + ": " + e.question() + " -> " + e.answer();
                assertEquals(type, e.type());
                assertEquals(1, e.images().size(), where);
                BufferedImage im = e.images().getFirst();
                assertTrue(im.getWidth() >= o.minSide() && im.getWidth() <= o.maxSide() && im.getHeight() >= o.minSide() && im.getHeight() <= o.maxSide(), where);
                double aspect = (double) im.getWidth() / im.getHeight();
                assertTrue(aspect >= 0.5 - 1e-2 && aspect <= 2 + 1e-2, where + " aspect " + aspect);
                assertTrue(e.question().endsWith("?") || e.question().endsWith("."), where);
                assertTrue(ANSWER.get(type).matcher(e.answer()).matches(), where);
                assertTrue(VisualWorld.correct(e, e.answer()), where);
                assertEquals(null, e.reasoning());
                answers.merge(e.answer(), 1, Integer::sum);
            }
            // no type may collapse to one answer (a model could then score without looking)
            int most = answers.values().stream().max(Integer::compare).orElseThrow();
            assertTrue(most < 120, type + ": one answer in " + most + " of 200");
        }
    }

    @Test
    void countsCoverOneToNine() {
        Set<String> seen = new HashSet<>();
        for (long seed = 0; seed < 200; seed++) seen.add(world.vqa(seed, "count").answer());
        assertEquals(9, seen.size(), seen.toString());
    }

    @Test
    void inventoriesCountEveryKindAndTheTotal() {
        Set<Integer> totals = new HashSet<>();
        java.util.regex.Pattern group = java.util.regex.Pattern.compile("(a|an|[a-z]+) ([a-z]+) ([a-z]+?)s?$");
        for (long seed = 0; seed < 200; seed++) {
            Example e = world.inventory(seed);
            assertEquals("inventory", e.type());
            assertEquals(1, e.images().size());
            String[] headBody = e.answer().substring(0, e.answer().length() - 1).split(": ");
            assertEquals(2, headBody.length, e.answer());
            int total = Palette.parseNumber(headBody[0].split(" ")[0].toLowerCase(java.util.Locale.ROOT));
            assertEquals(headBody[0], total == 1 ? "One shape" : Palette.capitalise(Palette.number(total)) + " shapes");
            int sum = 0;
            Set<String> kinds = new HashSet<>();
            for (String part : headBody[1].split(", | and ")) {
                var m = group.matcher(part);
                assertTrue(m.matches(), part + " in " + e.answer());
                int n = m.group(1).startsWith("a") && m.group(1).length() <= 2 ? 1 : Palette.parseNumber(m.group(1));
                assertTrue(n >= 1, part);
                assertEquals(n == 1, !part.endsWith("s") || part.endsWith("ss"), "plural only for more than one: " + part);
                assertTrue(Palette.COLORS.contains(m.group(2)), part);
                assertTrue(kinds.add(m.group(2) + " " + m.group(3)), "a kind named twice in " + e.answer());
                sum += n;
            }
            assertTrue(kinds.size() <= 3, e.answer());
            assertEquals(total, sum, e.answer());
            assertEquals(total, TokenShapes.mapOf(e.images().get(0)).centres().size(), "objects drawn for " + e.answer());
            totals.add(total);
        }
        assertEquals(9, totals.size(), "totals 1-9: " + totals);
    }

    @Test
    void imagesVary() {
        Set<String> sizes = new HashSet<>();
        for (long seed = 0; seed < 40; seed++) {
            BufferedImage im = world.vqa(seed, "shape").images().getFirst();
            sizes.add(im.getWidth() + "x" + im.getHeight());
        }
        assertTrue(sizes.size() > 30, sizes.toString());
    }

    @Test
    void smallOptionsAreRespected() {
        VisualWorld small = new VisualWorld(new VisualWorld.Options(64, 96));
        for (String type : VisualWorld.vqaTypes())
            for (long seed = 0; seed < 20; seed++) {
                BufferedImage im = small.vqa(seed, type).images().getFirst();
                assertTrue(Math.max(im.getWidth(), im.getHeight()) <= 96 && Math.min(im.getWidth(), im.getHeight()) >= 64, type + " " + seed);
            }
        assertThrows(IllegalArgumentException.class, () -> new VisualWorld.Options(100, 50));
        assertThrows(IllegalArgumentException.class, () -> world.vqa(1, "smell"));
    }

    private static Example ex(String type, String answer) {
        return new Example(type, List.of(), "q", answer, null);
    }

    @Test
    void checkerAcceptsTheTaughtAnswerAndItsVariants() {
        assertTrue(VisualWorld.correct(ex("color", "Red."), "Red."));
        assertTrue(VisualWorld.correct(ex("color", "Red."), " red "));
        assertTrue(VisualWorld.correct(ex("count", "Three."), "3"));
        assertTrue(VisualWorld.correct(ex("count", "Three."), "three."));
        assertTrue(VisualWorld.correct(ex("count", "3."), "Three."));
        assertTrue(VisualWorld.correct(ex("shape", "A triangle."), "a  triangle"));
        assertTrue(VisualWorld.correct(ex("read", "Apple."), "Apple"));
        assertTrue(VisualWorld.correct(ex("what", "A yellow circle, a red ring and a blue rectangle."), "A blue rectangle, a yellow circle and a red ring."));
        assertTrue(VisualWorld.correct(ex("what", "An orange star and a red ring."), "a red ring, and an orange star"));
    }

    @Test
    void countErrorIsTheDistanceBetweenTwoNumbers() {
        Example three = ex("count", "Three.");
        assertEquals(0, VisualWorld.countError(three, "Three."));
        assertEquals(0, VisualWorld.countError(three, " 3 "));
        assertEquals(1, VisualWorld.countError(three, "Four."));
        assertEquals(1, VisualWorld.countError(three, "two"));
        assertEquals(5, VisualWorld.countError(three, "Eight."));
        assertEquals(-1, VisualWorld.countError(three, "A red circle."), "no number");
        assertEquals(-1, VisualWorld.countError(three, "Three or four."), "more than a number");
        assertEquals(-1, VisualWorld.countError(three, ""));
        assertThrows(IllegalArgumentException.class, () -> VisualWorld.countError(ex("color", "Red."), "Red."));
    }

    @Test
    void checkerRejectsWrongAnswers() {
        assertFalse(VisualWorld.correct(ex("color", "Red."), "Blue."));
        assertFalse(VisualWorld.correct(ex("color", "Red."), "Reddish."));
        assertFalse(VisualWorld.correct(ex("count", "Three."), "4"));
        assertFalse(VisualWorld.correct(ex("count", "Three."), "Thirteen."));
        assertFalse(VisualWorld.correct(ex("shape", "A triangle."), "A square."));
        assertFalse(VisualWorld.correct(ex("read", "Apple."), "apple."));
        assertFalse(VisualWorld.correct(ex("read", "Apple."), "APPLE"));
        assertFalse(VisualWorld.correct(ex("what", "A yellow circle, a red ring and a blue rectangle."), "A yellow circle and a red ring."));
        assertFalse(VisualWorld.correct(ex("what", "A yellow circle and a red ring."), "A yellow circle, a red ring and a red ring."));
        assertFalse(VisualWorld.correct(ex("what", "A yellow circle and a red ring."), "A red circle and a yellow ring."));
        assertFalse(VisualWorld.correct(ex("color", "Red."), null));
    }

    @Test
    void aCircleIsNotAskedAboutAmongRingsNorARectangleAmongSquares() {
        assertTrue(VisualWorld.confusing(List.of("circle", "star", "ring")));
        assertTrue(VisualWorld.confusing(List.of("rectangle", "square")));
        assertFalse(VisualWorld.confusing(List.of("square", "rectangle")));
        assertFalse(VisualWorld.confusing(List.of("ring", "circle")));
        assertFalse(VisualWorld.confusing(List.of("circle", "star")));
    }

    @Test
    void numberWordsRoundTrip() {
        for (int n = 0; n < 100; n++) assertEquals(n, Palette.parseNumber(Palette.number(n)), Palette.number(n));
        assertEquals("twenty-one", Palette.number(21));
        assertEquals(-1, Palette.parseNumber("twenty-"));
    }

    @Test
    void answerListsUseArticles() {
        assertEquals("An orange star, a red ring and a blue square.", VisualWorld.list(List.of(VisualWorld.named("orange", "star"),
            VisualWorld.named("red", "ring"), VisualWorld.named("blue", "square"))));
        assertEquals("A red ring.", VisualWorld.list(List.of(VisualWorld.named("red", "ring"))));
    }
}
