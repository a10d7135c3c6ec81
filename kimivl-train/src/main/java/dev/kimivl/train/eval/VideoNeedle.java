package dev.kimivl.train.eval;

import dev.kimivl.text.ChatMessage;
import dev.kimivl.train.data.Example;
import dev.kimivl.train.data.VisualWorld;
import dev.kimivl.train.data.Videos;
import dev.kimivl.train.recipe.ExampleEncoder;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * The video form of the needle in a haystack: a synthetic video of {@code frames} frames (one a second) in which one
 * frame, the needle, shows one large coloured shape and every other frame shows only the same plain ground; the
 * question asks the colour of that shape. The needle frame is the curriculum's first lesson
 * ({@link VisualWorld#object}, a colour question on the easy plain ground, what the default model answers best), so a
 * wrong answer says the model did not find the frame among the others, not that it cannot name the colour.
 *
 * <p>The user turn is laid out as {@code kimivl run --video} lays out a video (dev.kimivl.media.MediaMessages): each
 * frame an image block after its label "Frame at mm:ss:", in order, then the question. Depth is where the needle
 * frame sits: 100 · index / (frames − 1) percent, bucketed as the text needle's ({@link Evaluator#depthBucket}).
 */
public final class VideoNeedle {
    /** Fewer frames cannot put a needle in each of the four depth buckets. */
    public static final int MIN_FRAMES = 4;
    /** The default frame side: 112 px is 16 image tokens a frame (8x8 patches of 14 px, merged 2x2). */
    public static final int DEFAULT_SIDE = 112;
    static final String QUESTION_PREFIX = Videos.QUESTION_PREFIX;

    private final int side;

    /**
     * One video question.
     *
     * @param example the frames (all {@code side}x{@code side}), the question and the answer; its type is "color", so
     *                {@link VisualWorld#correct} checks it
     * @param needle  the index of the marked frame (0-based)
     */
    public record Case(Example example, int needle) {
        public int frames() { return example.images().size(); }

        /** Where the needle frame sits, 0 (first frame) to 100 (last). */
        public int depthPercent() { return (int) Math.round(100.0 * needle / (frames() - 1)); }

        /** The report's bucket: frame count and depth, e.g. "16 frames, depth 25-49%". */
        public String bucket() { return frames() + " frames, " + Evaluator.depthBucket(depthPercent()); }

        /** The user turn, as a video reaches the model: "Frame at mm:ss:" and an image block per frame, then the question. */
        public List<ChatMessage> userTurn() { return ExampleEncoder.userTurn(example); }
    }

    public VideoNeedle(int side) {
        Videos.checkSide(side);
        this.side = side;
    }

    public int side() { return side; }

    /**
     * A video of {@code frames} frames whose needle lies in depth bucket {@code bucket} (0: 0-24%, 1: 25-49%,
     * 2: 50-74%, 3: 75-100%), at a frame drawn from {@code seed} among those of the bucket.
     */
    public Case make(long seed, int frames, int bucket) {
        if (frames < MIN_FRAMES) throw new IllegalArgumentException("a video needle needs at least " + MIN_FRAMES + " frames (one per depth bucket), got " + frames);
        if (bucket < 0 || bucket > 3) throw new IllegalArgumentException("the depth bucket must be 0..3, got " + bucket);
        List<Integer> in = new ArrayList<>();
        for (int i = 0; i < frames; i++) if (bucketOf(i, frames) == bucket) in.add(i);
        SplittableRandom r = new SplittableRandom(seed ^ 0x5EEDF4A3E5L);
        int needle = in.get(r.nextInt(in.size()));
        return new Case(Videos.needle(seed, side, frames, needle, true, QUESTION_PREFIX), needle);
    }

    static int bucketOf(int index, int frames) {
        return Math.min(3, (int) Math.round(100.0 * index / (frames - 1)) / 25);
    }
}
