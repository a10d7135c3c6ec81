package dev.kimivl.train.eval;

import dev.kimivl.generate.Generator;
import dev.kimivl.generate.SamplingParams;
import dev.kimivl.model.KimiVL;
import dev.kimivl.text.ThinkingSplit;
import dev.kimivl.train.data.Example;
import dev.kimivl.train.data.VisualWorld;
import dev.kimivl.train.recipe.ExampleEncoder;
import dev.kimivl.train.recipe.ExampleSource;
import dev.kimivl.vision.LoadedImage;

import java.awt.image.BufferedImage;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.function.IntFunction;

/**
 * Scores a model on fresh synthetic examples through the inference path a user gets ({@link KimiVL#prompt}, greedy
 * {@link Generator}): each example's seed is drawn from {@link ExampleSource#EVAL_SEED_BASE} up, where training never
 * draws. The question types are dealt round-robin so that every type gets n / types examples; an answer is right
 * when {@link VisualWorld#correct} accepts the text after a Thinking model's reasoning block.
 */
public final class Evaluator {
    /** One question type's tally. */
    public record TypeScore(String type, int right, int total) {
        public double accuracy() { return total == 0 ? 0 : (double) right / total; }
    }

    /**
     * The whole evaluation: overall and per type, and the first few wrong answers for a look. {@code countWithinOne}:
     * of the count questions, those answered within one of the truth (null when there were none); not part of
     * {@code right}, which is exact.
     */
    public record Report(String task, int right, int total, Map<String, TypeScore> byType, List<String> wrong, TypeScore countWithinOne) {
        public double overall() { return total == 0 ? 0 : (double) right / total; }
    }

    public interface Progress { void done(int finished, int total); }

    /**
     * The token budget of a short-answer question: the answer itself needs under 20 tokens, but a Thinking model may
     * reason first (an answer cut off inside its reasoning block counts as wrong).
     */
    static final int ANSWER_TOKENS = 160;

    private Evaluator() {}

    /** The synthetic-vqa task: {@code n} single-image questions, every VQA type equally often. */
    public static Report syntheticVqa(KimiVL model, VisualWorld world, int n, long seed, Progress progress) {
        List<String> types = VisualWorld.vqaTypes();
        return run("synthetic-vqa", model, n, i -> world.vqa(evalSeed(seed, i), types.get(i % types.size())), ANSWER_TOKENS, progress);
    }

    /** The first lesson's questions: one large object, its colour, shape or both ({@link VisualWorld#object}). */
    public static Report objects(KimiVL model, VisualWorld world, int n, long seed, Progress progress) {
        return run("objects", model, n, i -> world.object(evalSeed(seed, i)), ANSWER_TOKENS, progress);
    }

    /** One large object drawn by ImageMagick ({@link dev.kimivl.train.data.ImageMagickRenderer#object}). */
    public static Report imageMagickObjects(KimiVL model, dev.kimivl.train.data.ImageMagickRenderer im, int n, long seed, Progress progress) {
        return run("objects (ImageMagick)", model, n, i -> im.object(evalSeed(seed, i)), ANSWER_TOKENS, progress);
    }

    /**
     * Grounding ({@link VisualWorld#grounding}): a scene of 2-4 objects and its conversation's first question, asked
     * alone; the rows are the question's form: "where (colour + shape)" ("Where is the red circle?" → "At the top
     * left."), "where (colour)" ("Where is the red shape?") and "what is there" ("What is at the top left?"). Places
     * are the 3 × 3 regions of the image, so a model that cannot find a named object is right about one time in nine.
     */
    public static Report grounding(KimiVL model, VisualWorld world, int n, long seed, Progress progress) {
        return run("grounding", model, n, i -> {
            Example ex = world.grounding(evalSeed(seed, i));
            Example first = new Example(ex.type(), ex.images(), ex.question(), ex.answer(), null);
            return new Case(first, ExampleEncoder.userTurn(first), groundingForm(ex.question()));
        }, ANSWER_TOKENS, progress, rows(GROUNDING_FORMS));
    }

    static final List<String> GROUNDING_FORMS = List.of("where (colour + shape)", "where (colour)", "what is there");

    /** A tally with these rows, in this order, empty ones included. */
    static Map<String, int[]> rows(List<String> keys) {
        Map<String, int[]> tally = new java.util.LinkedHashMap<>();
        for (String k : keys) tally.put(k, new int[2]);
        return tally;
    }

    /** The row of a grounding question: its form ({@link VisualWorld.GroundingForm}). */
    static String groundingForm(String question) {
        return switch (VisualWorld.GroundingForm.of(question)) {
            case WHAT_IS_THERE -> "what is there";
            case WHERE_BY_COLOUR -> "where (colour)";
            case WHERE_NAMED -> "where (colour + shape)";
        };
    }

    /** Multi-step questions (counting across two images, comparing, arithmetic on what is read): the Thinking task. */
    public static Report reasoning(KimiVL model, VisualWorld world, int n, long seed, Progress progress) {
        return run("reasoning", model, n, i -> world.reasoning(evalSeed(seed, i)), 160, progress);
    }

    /**
     * Needle in a haystack: a secret word at a random depth of about {@code chars} characters of filler; the report's
     * types are depth buckets (0-24%, 25-49%, 50-74%, 75-100%), as the paper's NIAH table reads recall by depth.
     */
    public static Report niah(KimiVL model, VisualWorld world, int n, long seed, int chars, Progress progress) {
        return run("niah " + chars + " chars", model, n, i -> world.longContext(evalSeed(seed, i), chars), 16, progress);
    }

    /**
     * Needle in a video ({@link VideoNeedle}): one marked frame among {@code frameCounts[k]} plain ones, asked its
     * shape's colour. Example i has frameCounts[i % C] frames and its needle in depth bucket (i / C) % 4, so every
     * frame count and depth gets n / (4C) examples; the report's types are "F frames, depth a-b%", in that order.
     */
    public static Report videoNiah(KimiVL model, VideoNeedle videos, int n, long seed, int[] frameCounts, Progress progress) {
        if (frameCounts.length == 0) throw new IllegalArgumentException("no frame counts for the video needle");
        int C = frameCounts.length;
        Map<String, int[]> tally = new java.util.LinkedHashMap<>();
        for (int f : frameCounts) {
            if (f < VideoNeedle.MIN_FRAMES) throw new IllegalArgumentException("a video needle needs at least " + VideoNeedle.MIN_FRAMES + " frames, got " + f);
            for (int b = 0; b < 4; b++) tally.put(f + " frames, " + depthBucket(25 * b), new int[2]);
        }
        String counts = java.util.Arrays.stream(frameCounts).mapToObj(Integer::toString).collect(java.util.stream.Collectors.joining(","));
        return run("niah-video " + counts + " frames of " + videos.side() + " px", model, n, i -> {
            VideoNeedle.Case c = videos.make(evalSeed(seed, i), frameCounts[i % C], (i / C) % 4);
            return new Case(c.example(), c.userTurn(), c.bucket());
        }, 16, progress, tally);
    }

    /** The same task drawn by ImageMagick instead of Java2D (other fonts, rasteriser and sizes): out of distribution. */
    public static Report imageMagickVqa(KimiVL model, dev.kimivl.train.data.ImageMagickRenderer im, int n, long seed, Progress progress) {
        List<String> types = dev.kimivl.train.data.ImageMagickRenderer.types();
        return run("synthetic-vqa (ImageMagick)", model, n, i -> im.vqa(evalSeed(seed, i), types.get(i % types.size())), ANSWER_TOKENS, progress);
    }

    public static long evalSeed(long seed, int i) { return ExampleSource.EVAL_SEED_BASE + seed * 1_000_003L + i; }

    /** One example as asked: its user turn (the images' parts among the text) and the report row it counts in. */
    record Case(Example example, List<dev.kimivl.text.ChatMessage> userTurn, String key) {}

    /** Runs {@code n} examples made by {@code make} and tallies them by type. */
    public static Report run(String task, KimiVL model, int n, IntFunction<Example> make, int maxTokens, Progress progress) {
        return run(task, model, n, i -> {
            Example ex = make.apply(i);
            return new Case(ex, ExampleEncoder.userTurn(ex), ex.type().equals("needle") ? depthBucket(ex.depthPercent()) : ex.type());
        }, maxTokens, progress, new TreeMap<>());
    }

    /**
     * Runs {@code n} cases and tallies them by key into {@code tally} (key → {right, total}); the report lists the
     * keys in the tally's order (sorted for a TreeMap; a LinkedHashMap given its rows beforehand keeps them, empty
     * rows included).
     */
    static Report run(String task, KimiVL model, int n, IntFunction<Case> make, int maxTokens, Progress progress, Map<String, int[]> tally) {
        List<String> wrong = new ArrayList<>();
        int right = 0, counts = 0, countsNear = 0;
        Generator gen = model.generator(0);
        for (int i = 0; i < n; i++) {
            Case c = make.apply(i);
            Example ex = c.example();
            List<LoadedImage> ims = new ArrayList<>();
            for (BufferedImage b : ex.images()) ims.add(ExampleEncoder.toLoaded(b));
            KimiVL.Prompt p = model.prompt(c.userTurn(), ims);
            String text;
            try {
                text = gen.generate(p.embeddings(), p.ids(), SamplingParams.greedy(maxTokens), t -> {}).text();
            } catch (dev.kimivl.generate.ContextOverflowException e) {
                // never cut: say which example did not fit, with its images, so the options can be changed
                throw new IllegalArgumentException(task + ": example " + i + " (" + c.key() + ", " + ex.images().size() + " images) has "
                        + e.promptTokens + " prompt tokens but " + model.dir().getFileName() + "'s context holds " + e.contextTokens
                        + " (and room to answer is needed): ask for fewer or smaller images", e);
            }
            String answer = ThinkingSplit.answerOf(text).strip();
            boolean ok = VisualWorld.correct(ex, answer);
            if (ex.type().equals("count")) {
                counts++;
                int err = VisualWorld.countError(ex, answer);
                if (err >= 0 && err <= 1) countsNear++;
            }
            String key = c.key();
            int[] t = tally.computeIfAbsent(key, k -> new int[2]);
            t[1]++;
            if (ok) { t[0]++; right++; }
            // the row's key where it says more than the type (a video needle's frames and depth)
            else if (wrong.size() < 20) wrong.add((ex.type().equals("needle") || key.equals(ex.type()) ? ex.type() : key) + ": \"" + ex.question() + "\" → \"" + answer + "\" (expected \"" + ex.answer() + "\")");
            if (progress != null) progress.done(i + 1, n);
        }
        Map<String, TypeScore> by = new java.util.LinkedHashMap<>();
        for (var e : tally.entrySet()) by.put(e.getKey(), new TypeScore(e.getKey(), e.getValue()[0], e.getValue()[1]));
        return new Report(task, right, n, by, wrong, counts == 0 ? null : new TypeScore("count within one", countsNear, counts));
    }

    static String depthBucket(int percent) {
        int b = Math.min(3, Math.max(0, percent) / 25);
        return "depth " + (25 * b) + "-" + (b == 3 ? 100 : 25 * b + 24) + "%";
    }
}
