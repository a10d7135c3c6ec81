package dev.kimivl.train.recipe;

import dev.kimivl.config.ModelConfig;
import dev.kimivl.config.PreprocessorConfig;
import dev.kimivl.text.ChatTemplate;
import dev.kimivl.text.Tokenizer;
import dev.kimivl.train.data.Example;
import dev.kimivl.train.data.VisualWorld;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The multi-turn scene conversations: what they ask, and that every answer (and only the answers) is scored. */
class ConversationEncodingTest {
    static final Path MODEL = Path.of("../models/kimivl-nano-instruct");
    private final VisualWorld world = new VisualWorld(new VisualWorld.Options(64, 256, true));

    @Test
    void everyAnswerOfAConversationIsScoredAndNothingElse() throws Exception {
        Tokenizer tok = Tokenizer.load(MODEL);
        ModelConfig cfg = ModelConfig.load(MODEL);
        ExampleEncoder enc = new ExampleEncoder(tok, ChatTemplate.load(MODEL), PreprocessorConfig.load(MODEL), cfg.mediaPlaceholderTokenId());
        int imEnd = tok.tokenId("<|im_end|>").orElseThrow();
        for (long seed = 0; seed < 20; seed++) {
            Example ex = world.conversation(seed);
            ExampleEncoder.Encoded e = enc.encode(ex, false);
            // the scored spans, read back as text, are the answers in order, each closed by <|im_end|>
            List<String> spans = new ArrayList<>();
            List<Integer> span = new ArrayList<>();
            int scored = 0;
            for (int t = 0; t < e.ids().length; t++) {
                if (e.targets()[t] == -100) continue;
                scored++;
                int next = e.targets()[t];
                assertEquals(e.ids()[t + 1], next, "the target of position " + t + " is the next token");
                if (next == imEnd) {
                    spans.add(tok.decode(span.stream().mapToInt(Integer::intValue).toArray()));
                    span.clear();
                } else span.add(next);
            }
            List<String> answers = new ArrayList<>(List.of(ex.answer()));
            ex.followUps().forEach(f -> answers.add(f.answer()));
            assertEquals(answers, spans, "seed " + seed);
            assertEquals(scored, e.scored());
            assertEquals(imEnd, e.ids()[e.ids().length - 1], "the sequence ends with the last answer's <|im_end|>");
            // the questions are in the prompt, unscored
            String all = tok.decode(e.ids());
            assertTrue(all.contains(ex.question()) && ex.followUps().stream().allMatch(f -> all.contains(f.question())), all);
        }
    }

    @Test
    void conversationsAskSeveralKindsOfQuestionAboutOneImageWithoutRepeatingAPair() {
        Pattern named = Pattern.compile("the (\\w+) (\\w+)");
        Set<String> kinds = new HashSet<>();
        int turns = 0, n = 80;
        for (long seed = 0; seed < n; seed++) {
            Example ex = world.conversation(seed);
            assertEquals("scene", ex.type());
            assertEquals(1, ex.images().size());
            List<Example.Turn> all = new ArrayList<>(List.of(new Example.Turn(ex.question(), ex.answer())));
            all.addAll(ex.followUps());
            assertTrue(all.size() >= 2 && all.size() <= 6, "turns: " + all.size());
            turns += all.size();
            Set<String> pairs = new HashSet<>();
            for (Example.Turn t : all) {
                String q = t.question();
                kinds.add(q.startsWith("Where") || q.startsWith("What is at") || q.startsWith("What is in the") && !q.contains("shape") || q.startsWith("What is on") ? "grounding"
                        : q.startsWith("Is ") || q.contains("further") || q.contains("higher") || q.contains("lower") ? "position"
                        : q.contains("bigger") || q.contains("larger") || q.contains("smaller") ? "size"
                        : q.startsWith("How many") ? "count" : q.contains("colo") ? "color" : "shape");
                Matcher m = named.matcher(q);
                List<String> names = new ArrayList<>();
                while (m.find()) names.add(m.group(1) + " " + m.group(2));
                if (names.size() == 2) assertTrue(pairs.add(String.join("|", names.stream().sorted().toList())), "pair asked twice: " + all);
                assertTrue(t.answer().endsWith("."), t.answer());
            }
            assertEquals(all.size(), new HashSet<>(all.stream().map(Example.Turn::question).toList()).size(), "a question asked twice: " + all);
        }
        assertEquals(Set.of("position", "size", "grounding", "count", "color", "shape"), kinds);
        assertTrue(turns >= 4 * n, "on average at least 4 questions per image, got " + turns + " in " + n);
        Example a = world.conversation(7), b = world.conversation(7);
        assertEquals(a.question() + a.answer() + a.followUps(), b.question() + b.answer() + b.followUps(), "the same seed, the same conversation");
    }

    @Test
    void groundingConversationsAskWhereEachObjectIsBothWaysRound() {
        Set<String> places = Set.of("At the top left.", "At the top.", "At the top right.", "On the left.", "In the centre.",
                "On the right.", "At the bottom left.", "At the bottom.", "At the bottom right.");
        Pattern where = Pattern.compile("Where is the (\\w+) (\\w+)\\?"), what = Pattern.compile("What is (at the .+|on the .+|in the centre)\\?");
        Set<String> forms = new HashSet<>();
        for (long seed = 0; seed < 60; seed++) {
            Example ex = world.grounding(seed);
            assertEquals("ground", ex.type());
            assertEquals(1, ex.images().size());
            List<Example.Turn> all = new ArrayList<>(List.of(new Example.Turn(ex.question(), ex.answer())));
            all.addAll(ex.followUps());
            assertTrue(all.size() >= 1 && all.size() <= 4, "one turn per object at most: " + all);
            Set<String> answers = new HashSet<>();
            for (Example.Turn t : all) {
                Matcher w = where.matcher(t.question()), q = what.matcher(t.question());
                if (w.matches()) {
                    forms.add(w.group(2).equals("shape") ? "by colour" : "by name");
                    assertTrue(places.contains(t.answer()), t.answer());
                } else {
                    assertTrue(q.matches(), "neither form: " + t.question());
                    forms.add("what is there");
                    assertTrue(places.contains(Character.toUpperCase(q.group(1).charAt(0)) + q.group(1).substring(1) + "."), q.group(1));
                    assertTrue(answers.add(Character.toUpperCase(q.group(1).charAt(0)) + q.group(1).substring(1) + "."), "a place asked twice: " + all);
                    assertTrue(t.answer().matches("An? \\w+ \\w+\\."), t.answer());
                }
            }
        }
        assertEquals(Set.of("by colour", "by name", "what is there"), forms);
        Example a = world.grounding(7), b = world.grounding(7);
        assertEquals(a.question() + a.answer() + a.followUps(), b.question() + b.answer() + b.followUps(), "the same seed, the same conversation");
    }
    @Test
    void gridGroundingPutsEachObjectInItsOwnCellWhereTheAnswerSaysItIs() {
        int asked = answersMatchTheShapeMap(world::groundingOnGrid, "ground-grid", true);
        assertTrue(asked > 40, asked + " questions by name");
        Example a = world.groundingOnGrid(3), b = world.groundingOnGrid(3);
        assertEquals(a.question() + a.answer() + a.followUps(), b.question() + b.answer() + b.followUps(), "the same seed, the same conversation");
    }

    @Test
    void theOneObjectLessonAsksAboutItsOnlyObject() {
        int asked = answersMatchTheShapeMap(world::groundingAlone, "ground-one", false);
        assertTrue(asked > 15, asked + " questions by name");
        for (long seed = 0; seed < 40; seed++) assertEquals(List.of(), world.groundingAlone(seed).followUps(), "one object, one question");
    }

    /**
     * Over 40 scenes of a generator: every "Where is the red circle?" answer names the region of the circle's pixels
     * in the painter's map, no two objects share a region, and (on the grid) each object fills much of its cell.
     * Returns the questions checked.
     */
    private static int answersMatchTheShapeMap(java.util.function.LongFunction<Example> scenes, String type, boolean onGrid) {
        String[] rows = {"top", "middle", "bottom"}, cols = {"left", "centre", "right"};
        Pattern where = Pattern.compile("Where is the (\\w+) (\\w+)\\?");
        int asked = 0;
        for (long seed = 0; seed < 40; seed++) {
            Example ex = scenes.apply(seed);
            assertEquals(type, ex.type());
            List<Example.Turn> all = new ArrayList<>(List.of(new Example.Turn(ex.question(), ex.answer())));
            all.addAll(ex.followUps());
            var map = dev.kimivl.train.data.TokenShapes.mapOf(ex.images().getFirst());
            Set<String> answers = new HashSet<>();
            for (Example.Turn t : all) {
                Matcher w = where.matcher(t.question());
                if (!w.matches() || w.group(2).equals("shape")) continue;
                // the named shape's pixels in the painter's map: their centre must lie in the region the answer names
                int k = java.util.List.of("circle", "square", "rectangle", "triangle", "star", "hexagon", "ring").indexOf(w.group(2)) + 1;
                double sx = 0, sy = 0;
                int count = 0, x0 = map.width(), x1 = -1, y0 = map.height(), y1 = -1;
                for (int i = 0; i < map.shapes().length; i++) {
                    if (map.shapes()[i] != k) continue;
                    int x = i % map.width(), y = i / map.width();
                    sx += x;
                    sy += y;
                    count++;
                    x0 = Math.min(x0, x);
                    x1 = Math.max(x1, x);
                    y0 = Math.min(y0, y);
                    y1 = Math.max(y1, y);
                }
                // it fills much of its cell: its box spans at least 40% of the cell's shorter side (a nominal size ≥ 60%, less a star's or a turned shape's slack)
                double cellSide = Math.min(map.width(), map.height()) / 3.0;
                assertTrue(count > 0 && (!onGrid || Math.max(x1 - x0, y1 - y0) + 1 >= 0.4 * cellSide),
                        "a large object: " + (x1 - x0 + 1) + " × " + (y1 - y0 + 1) + " px in a cell of side " + cellSide);
                int col = (int) (3 * sx / count / map.width()), row = (int) (3 * sy / count / map.height());
                String expected = row == 1 ? (col == 1 ? "In the centre." : "On the " + cols[col] + ".")
                        : "At the " + rows[row] + (col == 1 ? "" : " " + cols[col]) + ".";
                assertEquals(expected, t.answer(), t.question() + " (seed " + seed + ")");
                assertTrue(answers.add(t.answer()), "two objects in one cell: " + all);
                asked++;
            }
        }
        return asked;
    }
}
