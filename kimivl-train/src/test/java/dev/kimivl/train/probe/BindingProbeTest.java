package dev.kimivl.train.probe;

import dev.kimivl.train.TextGrad;

import dev.kimivl.train.data.Example;
import dev.kimivl.train.data.VisualWorld;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The binding probe end to end on a tiny random checkpoint: the right questions, finite numbers, the same on a rerun. */
class BindingProbeTest {
    static final VisualWorld.Options IMAGES = new VisualWorld.Options(64, 112, true);

    @Test
    void everyGroundingQuestionIsAskedInTheFormsItFits() {
        VisualWorld w = new VisualWorld(IMAGES);
        int[] seen = new int[3];
        for (long s : BindingProbe.seeds(1, 0, 40)) {
            Example ex = w.grounding(s);
            List<Example.Turn> turns = new ArrayList<>(ex.followUps());
            turns.add(new Example.Turn(ex.question(), ex.answer()));
            for (Example.Turn t : turns) {
                String q = t.question();
                String byColour = BindingProbe.Question.WHERE_COLOUR.ask(q), byName = BindingProbe.Question.WHERE.ask(q),
                        what = BindingProbe.Question.WHAT.ask(q);
                if (q.startsWith("Where is the ")) {
                    // asked by its colour alone: "Where is the red circle?" and "Where is the red shape?" both become the latter
                    String colour = q.split(" ")[3];
                    assertEquals("Where is the " + colour + " shape?", byColour, q);
                    assertTrue(t.answer().startsWith("At the ") || t.answer().startsWith("On the ") || t.answer().equals("In the centre."), t.answer());
                    assertEquals(q.endsWith(" shape?") ? null : q, byName, q);
                    assertEquals(null, what, q);
                } else {
                    assertEquals(null, byColour, q);
                    assertEquals(null, byName, q);
                    assertEquals(q, what, q);
                }
                if (byColour != null && q.endsWith(" shape?")) seen[0]++;
                if (byName != null) seen[1]++;
                if (what != null) seen[2]++;
            }
        }
        for (int c : seen) assertTrue(c > 0, "every form occurs in 40 scenes: " + java.util.Arrays.toString(seen));
        assertEquals(BindingProbe.Question.WHERE_COLOUR, BindingProbe.Question.parse("where-colour"));
        assertThrows(IllegalArgumentException.class, () -> BindingProbe.Question.parse("when"));
    }

    @Test
    void echoAndAllFormsPutEachPlaceRightAfterItsColour() {
        BindingProbe.Question echo = BindingProbe.Question.WHERE_ECHO;
        assertEquals("Where is the red shape?", echo.ask("Where is the red circle?"));
        assertEquals("Red at the top left.", echo.answer("Where is the red circle?", "At the top left."));
        assertEquals("Blue in the centre.", echo.answer("Where is the blue shape?", "In the centre."));
        assertEquals(null, echo.ask("What is at the top left?"));
        assertEquals("At the top left.", BindingProbe.Question.WHERE_COLOUR.answer("Where is the red circle?", "At the top left."));

        List<Example.Turn> turns = List.of(new Example.Turn("Where is the red circle?", "At the top left."),
                new Example.Turn("What is in the centre?", "A green star."),
                new Example.Turn("Where is the blue shape?", "In the centre."),
                new Example.Turn("Where is the green star?", "On the right."));
        assertEquals(List.of("Where are the red, blue and green shapes?", "Red at the top left, blue in the centre and green on the right."),
                List.of(BindingProbe.Question.sceneQuestion(turns)));
        assertEquals(List.of("Where is the red shape?", "Red at the top left."), List.of(BindingProbe.Question.sceneQuestion(turns.subList(0, 2))));
        assertEquals(null, BindingProbe.Question.sceneQuestion(turns.subList(1, 2)));
        assertEquals(BindingProbe.Question.WHERE_ALL, BindingProbe.Question.parse("where-all"));
    }

    @Test
    void theBindingHeadIsAskedAtEachColourWordForItsObjectsRegion(@TempDir Path tmp) throws Exception {
        Path recipe = ProbeFixtures.write(tmp);
        FrozenVision v = FrozenVision.load(ProbeFixtures.checkpoint(tmp));
        VisualWorld w = new VisualWorld(IMAGES);
        int checked = 0;
        for (long seed : BindingProbe.seeds(2, 0, 6)) {
            Example ex = w.grounding(seed);
            List<Example.Turn> turns = new ArrayList<>(ex.followUps());
            turns.add(0, new Example.Turn(ex.question(), ex.answer()));
            String[] qa = BindingProbe.Question.sceneQuestion(turns);
            if (qa == null) continue;
            var e = v.encoder.encode(new Example(ex.type(), ex.images(), qa[0], qa[1], null), false);
            int[][] bind = BindingProbe.colourWordPlaces(v, e.ids(), turns, null);
            for (int k = 0; k < bind[0].length; k++, checked++) {
                String word = v.tokenizer.decode(new int[]{e.ids()[bind[0][k]]}).strip();
                String region = VisualWorld.REGIONS.get(bind[1][k]);
                // the answer says "<colour> <region>" for that word, in the question's order
                assertTrue(qa[1].toLowerCase(java.util.Locale.ROOT).contains(word + " " + region), qa[1] + " / " + word + " " + region);
                if (k > 0) assertTrue(bind[0][k] > bind[0][k - 1], "colour words in the question's order");
            }
        }
        assertTrue(checked >= 6, checked + " colour words checked");

        BindingProbe.Settings s = new BindingProbe.Settings(recipe, 2, 8, 3, IMAGES, BindingProbe.Question.WHERE_COLOUR, 2, 4, 4, 2e-3, 2e-3, "ground",
                false, false, null, new dev.kimivl.train.BindingHead.Spec(1, 0.5));
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        BindingProbe.Summary a = BindingProbe.run(v, s, new PrintStream(log, true));
        double bind = a.reports().getLast().bindAccuracy();
        assertTrue(bind >= 0 && bind <= 1, "held-out binding-head accuracy " + bind);
        assertTrue(log.toString().contains(" bind "), log.toString());
        assertEquals(1, a.toJson().get("binding_head_layer").asInt());
        assertTrue(Double.isNaN(BindingProbe.run(v, new BindingProbe.Settings(recipe, 2, 8, 3, IMAGES, BindingProbe.Question.WHERE_COLOUR, 2, 4, 4, 2e-3,
                2e-3, "ground", false, false), new PrintStream(new ByteArrayOutputStream())).reports().getLast().bindAccuracy()));
        assertThrows(IllegalArgumentException.class, () -> new dev.kimivl.train.BindingHead.Spec(0, 1));
        assertThrows(IllegalArgumentException.class, () -> new BindingProbe.Settings(recipe, 2, 8, 3, IMAGES, BindingProbe.Question.WHAT, 2, 4, 4,
                2e-3, 2e-3, "ground", false, false, null, new dev.kimivl.train.BindingHead.Spec(1, 1)));
    }

    @Test
    void trainingAndHeldOutScenesAreDisjoint() {
        long[] a = BindingProbe.seeds(3, 0, 1000), b = BindingProbe.seeds(3, 1, 1000);
        java.util.Set<Long> s = new java.util.HashSet<>();
        for (long x : a) s.add(x);
        for (long x : b) assertTrue(s.add(x), "seed " + x + " in both sets");
    }

    @Test
    void runsEndToEndWithFiniteNumbersAndTheRightCountsDeterministically(@TempDir Path tmp) throws Exception {
        Path recipe = ProbeFixtures.write(tmp);
        FrozenVision v = FrozenVision.load(ProbeFixtures.checkpoint(tmp));
        BindingProbe.Settings s = new BindingProbe.Settings(recipe, 5, 12, 5, IMAGES, BindingProbe.Question.WHERE, 2, 4, 4, 2e-3, 2e-3, "ground", false, false);
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        BindingProbe.Summary a = BindingProbe.run(v, s, new PrintStream(log, true));
        // the questions are exactly the scenes' "where is the <colour> <shape>?" turns
        VisualWorld w = new VisualWorld(IMAGES);
        assertEquals(countWhere(w::grounding, BindingProbe.seeds(4, 0, 12)), a.trainQuestions());
        assertEquals(countWhere(w::grounding, BindingProbe.seeds(4, 1, 5)), a.heldoutQuestions());
        assertEquals(List.of(2, 4, 5), a.reports().stream().map(BindingProbe.Report::step).toList());
        assertEquals(List.of(8, 8, 4), a.reports().stream().map(BindingProbe.Report::trainAnswers).toList());
        for (BindingProbe.Report r : a.reports()) {
            assertTrue(Double.isFinite(r.trainLoss()) && r.trainLoss() > 0 && Double.isFinite(r.heldoutLoss()) && r.heldoutLoss() > 0, r.toString());
            assertTrue(r.trainAccuracy() >= 0 && r.trainAccuracy() <= 1 && r.heldoutAccuracy() >= 0 && r.heldoutAccuracy() <= 1, r.toString());
        }
        assertTrue(a.answers() >= 2 && a.answers() <= 9, "regions: " + a.answers());
        assertTrue(a.chanceLoss() > 0 && Double.isFinite(a.chanceLoss()));
        String text = log.toString();
        System.out.print(text);
        assertTrue(text.contains("p > 0.5") && text.contains("chance") && text.contains("step     4"), text);
        assertEquals(a.reports().size(), a.toJson().get("reports").size());
        // the same seed gives the same numbers (scenes, initial weights, order, multithreaded passes)
        BindingProbe.Summary b = BindingProbe.run(v, s, new PrintStream(new ByteArrayOutputStream()));
        for (int i = 0; i < a.reports().size(); i++) {
            BindingProbe.Report x = a.reports().get(i), y = b.reports().get(i);
            assertEquals(x.trainLoss(), y.trainLoss(), 0.0);
            assertEquals(x.heldoutLoss(), y.heldoutLoss(), 0.0);
            assertEquals(x.heldoutAccuracy(), y.heldoutAccuracy(), 0.0);
        }
    }

    @Test
    void aTrainedLanguageModelCanBeTheStartAndAMismatchedOneIsRefused(@TempDir Path tmp) throws Exception {
        Path recipe = ProbeFixtures.write(tmp);
        Path ck = ProbeFixtures.checkpoint(tmp);
        FrozenVision v = FrozenVision.load(ck);
        BindingProbe.Settings fresh = new BindingProbe.Settings(recipe, 2, 8, 3, IMAGES, BindingProbe.Question.WHERE, 2, 4, 4, 2e-3, 2e-3, "ground", false, false);
        BindingProbe.Settings trained = new BindingProbe.Settings(recipe, 2, 8, 3, IMAGES, BindingProbe.Question.WHERE, 2, 4, 4, 2e-3, 2e-3, "ground",
                false, false, null, null, ck);
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        BindingProbe.Summary a = BindingProbe.run(v, trained, new PrintStream(log, true)), b = BindingProbe.run(v, fresh, new PrintStream(new ByteArrayOutputStream()));
        assertTrue(log.toString().contains("the trained language model of " + ck), log.toString());
        assertEquals(ck.toString(), a.toJson().get("language_model").asText());
        // the checkpoint's weights (its own seed) are not the fresh model's (the probe's seed): other losses
        assertTrue(a.reports().getFirst().trainLoss() != b.reports().getFirst().trainLoss(), a.reports() + " / " + b.reports());
        // the shipped nano model's language model (hidden 256) cannot read this tower's 32-wide tokens
        BindingProbe.Settings nano = new BindingProbe.Settings(recipe, 2, 8, 3, IMAGES, BindingProbe.Question.WHERE, 2, 4, 4, 2e-3, 2e-3, "ground",
                false, false, null, null, ProbeFixtures.NANO);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> BindingProbe.run(v, nano, new PrintStream(new ByteArrayOutputStream())));
        assertTrue(e.getMessage().contains("hidden 256") && e.getMessage().contains("hidden 32"), e.getMessage());
    }

    @Test
    void onTheGridItAsksAboutTheGridScenes(@TempDir Path tmp) throws Exception {
        Path recipe = ProbeFixtures.write(tmp);
        FrozenVision v = FrozenVision.load(ProbeFixtures.checkpoint(tmp));
        BindingProbe.Settings s = new BindingProbe.Settings(recipe, 2, 10, 4, IMAGES, BindingProbe.Question.WHERE, 2, 4, 4, 2e-3, 2e-3, "ground-grid", false, false);
        BindingProbe.Summary a = BindingProbe.run(v, s, new PrintStream(new ByteArrayOutputStream()));
        VisualWorld w = new VisualWorld(IMAGES);
        assertEquals(countWhere(w::groundingOnGrid, BindingProbe.seeds(4, 0, 10)), a.trainQuestions());
        assertEquals(countWhere(w::groundingOnGrid, BindingProbe.seeds(4, 1, 4)), a.heldoutQuestions());
        assertEquals("ground-grid", a.toJson().get("scenes").asText());
        var e = assertThrows(IllegalArgumentException.class, () -> new BindingProbe.Settings(recipe, 2, 10, 4, IMAGES, BindingProbe.Question.WHERE, 2, 4, 4,
                2e-3, 2e-3, "ground-two", false, false));
        assertTrue(e.getMessage().contains("ground-two") && e.getMessage().contains("ground-one"), e.getMessage());
    }

    @Test
    void aFirstLessonTrainsOnItsOwnScenesBeforeTheMainOnes(@TempDir Path tmp) throws Exception {
        Path recipe = ProbeFixtures.write(tmp);
        FrozenVision v = FrozenVision.load(ProbeFixtures.checkpoint(tmp));
        BindingProbe.Settings s = new BindingProbe.Settings(recipe, 3, 8, 3, IMAGES, BindingProbe.Question.WHERE, 3, 4, 4, 2e-3, 2e-3, "ground", false, false, new BindingProbe.FirstLesson("ground-one", 2), null);
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        BindingProbe.Summary a = BindingProbe.run(v, s, new PrintStream(log, true));
        int first = 0, scenes = 0;
        VisualWorld w = new VisualWorld(IMAGES);
        for (long seed : BindingProbe.seeds(4, 2, 8)) {      // the first lesson's own seeds, apart from the training and held-out ones
            int n = countWhere(w.groundingAlone(seed));
            first += n;
            if (n > 0) scenes++;
        }
        assertTrue(log.toString().contains("first lesson: steps 1-2 on " + first + " 'where' questions from " + scenes + " ground-one scenes"), log.toString());
        assertEquals("ground-one", a.toJson().get("first_lesson_scenes").asText());
        assertEquals(List.of(3), a.reports().stream().map(BindingProbe.Report::step).toList());
        // a first lesson needs its scenes and ≥ 1 step; a question form or images without a first lesson cannot be said
        assertThrows(IllegalArgumentException.class, () -> new BindingProbe.FirstLesson(null, 2));
        assertThrows(IllegalArgumentException.class, () -> new BindingProbe.FirstLesson("ground", 0, BindingProbe.Question.WHERE_ALL, null));

        // a first lesson with its own question form: one where-all question per scene that has a "where" turn
        // ... and its own images: every one 80 px square
        VisualWorld.Options square = new VisualWorld.Options(80, 80, true);
        BindingProbe.Settings all = new BindingProbe.Settings(recipe, 3, 8, 3, IMAGES, BindingProbe.Question.WHERE, 3, 4, 4, 2e-3, 2e-3, "ground",
                false, false, new BindingProbe.FirstLesson("ground", 2, BindingProbe.Question.WHERE_ALL, square), null);
        log.reset();
        BindingProbe.Summary b = BindingProbe.run(v, all, new PrintStream(log, true));
        assertEquals(80, b.toJson().get("first_lesson_max_side").asInt());
        assertTrue(log.toString().contains("images 80 px"), log.toString());
        VisualWorld firstWorld = new VisualWorld(square);
        int withWhere = 0;
        for (long seed : BindingProbe.seeds(4, 2, 8)) {
            Example ex = firstWorld.grounding(seed);
            if (ex.question().startsWith("Where is the ") || ex.followUps().stream().anyMatch(t -> t.question().startsWith("Where is the "))) withWhere++;
        }
        assertTrue(log.toString().contains("first lesson: steps 1-2 on " + withWhere + " 'where-all' questions from " + withWhere + " ground scenes"), log.toString());
        assertEquals("where-all", b.toJson().get("first_lesson_question").asText());
    }

    @Test
    void idealTokensAreTheSameVectorForTheSameLabelsInEveryImage(@TempDir Path tmp) throws Exception {
        Path recipe = ProbeFixtures.write(tmp);
        FrozenVision v = FrozenVision.load(ProbeFixtures.checkpoint(tmp));
        VisualWorld w = new VisualWorld(IMAGES);
        java.util.Map<String, float[]> byLabels = new java.util.HashMap<>();
        int D = v.hidden(), tokens = 0;
        double sq = 0;
        for (long seed : BindingProbe.seeds(2, 0, 6)) {
            Example ex = w.grounding(seed);
            var im = v.preprocess(ex.images().getFirst());
            float[] f = BindingProbe.idealTokens(im, ex.images().getFirst(), v.preprocessorConfig, D, 9, null);
            int[] c = dev.kimivl.train.data.TokenColours.of(im, v.preprocessorConfig), sh = dev.kimivl.train.data.TokenShapes.of(im, ex.images().getFirst()),
                    p = dev.kimivl.train.data.TokenPlaces.of(im);
            assertEquals(c.length * D, f.length);
            for (int t = 0; t < c.length; t++, tokens++) {
                float[] vec = java.util.Arrays.copyOfRange(f, t * D, (t + 1) * D);
                for (float x : vec) sq += x * x;
                float[] before = byLabels.putIfAbsent(c[t] + "/" + sh[t] + "/" + p[t], vec);
                if (before != null) org.junit.jupiter.api.Assertions.assertArrayEquals(before, vec, "labels " + c[t] + "/" + sh[t] + "/" + p[t]);
            }
        }
        assertTrue(byLabels.size() > 10, byLabels.size() + " label combinations");
        assertEquals(1.0, Math.sqrt(sq / tokens / D), 0.25, "RMS of a token");
        BindingProbe.Settings s = new BindingProbe.Settings(recipe, 2, 8, 3, IMAGES, BindingProbe.Question.WHERE, 2, 4, 4, 2e-3, 2e-3, "ground", true, false);
        BindingProbe.Summary a = BindingProbe.run(v, s, new PrintStream(new ByteArrayOutputStream()));
        assertTrue(a.toJson().get("ideal_tokens").asBoolean() && Double.isFinite(a.reports().getLast().heldoutLoss()));
        // aligned: a colour's vector points the way of its word's input embedding in the fresh language model
        TextGrad tg = BindingProbe.freshLanguageModel(v, dev.kimivl.train.recipe.Recipe.load(recipe).model(), 4);
        float[][] colours = BindingProbe.colourWords(tg, v);
        float[] embed = tg.parameters().entrySet().stream().filter(e -> e.getKey().endsWith("model.embed_tokens.weight")).findFirst().orElseThrow().getValue();
        int red = v.tokenizer.encode(" red")[0];
        double dot = 0, a2 = 0, b2 = 0;
        for (int d = 0; d < D; d++) {
            float x = colours[0][d], y = embed[red * D + d];
            dot += x * y;
            a2 += x * x;
            b2 += y * y;
        }
        assertEquals(1.0, dot / Math.sqrt(a2 * b2), 1e-5, "cosine of red's row and the embedding of ' red'");
        BindingProbe.Settings aligned = new BindingProbe.Settings(recipe, 2, 8, 3, IMAGES, BindingProbe.Question.WHERE, 2, 4, 4, 2e-3, 2e-3, "ground", true, true);
        assertTrue(BindingProbe.run(v, aligned, new PrintStream(new ByteArrayOutputStream())).toJson().get("aligned_colours").asBoolean());
        assertThrows(IllegalArgumentException.class, () -> new BindingProbe.Settings(recipe, 2, 8, 3, IMAGES, BindingProbe.Question.WHERE, 2, 4, 4,
                2e-3, 2e-3, "ground", false, true));
    }

    @Test
    void aRecipeOfAnotherWidthIsRefusedByName(@TempDir Path tmp) throws Exception {
        Path recipe = ProbeFixtures.write(tmp);
        java.nio.file.Files.writeString(recipe, ProbeFixtures.RECIPE.replace("\"hidden\": 32", "\"hidden\": 48"));
        FrozenVision v = FrozenVision.load(ProbeFixtures.checkpoint(tmp));
        BindingProbe.Settings s = new BindingProbe.Settings(recipe, 1, 2, 1, IMAGES, BindingProbe.Question.WHERE, 1, 1, 2, 2e-3, 2e-3, "ground", false, false);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> BindingProbe.run(v, s, new PrintStream(new ByteArrayOutputStream())));
        assertTrue(e.getMessage().contains("48") && e.getMessage().contains("32"), e.getMessage());
    }

    /** The "where is the <colour> <shape>?" turns of the scenes of the seeds. */
    private static int countWhere(java.util.function.LongFunction<Example> scenes, long[] seeds) {
        int n = 0;
        for (long seed : seeds) n += countWhere(scenes.apply(seed));
        return n;
    }

    private static int countWhere(Example ex) {
        int n = ex.question().startsWith("Where is the ") && !ex.question().endsWith(" shape?") ? 1 : 0;
        for (Example.Turn t : ex.followUps()) if (t.question().startsWith("Where is the ") && !t.question().endsWith(" shape?")) n++;
        return n;
    }
}
