package dev.kimivl.train.eval;

import dev.kimivl.text.ChatMessage;
import dev.kimivl.train.data.Example;
import dev.kimivl.train.data.VisualWorld;

import java.awt.Color;
import java.awt.Graphics2D;
import java.awt.image.BufferedImage;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
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
    static final String QUESTION_PREFIX = "One frame of this video shows a shape. ";

    private final VisualWorld world;
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
        public List<ChatMessage> userTurn() {
            List<ChatMessage.Part> parts = new ArrayList<>();
            for (int i = 0; i < frames(); i++) {
                parts.add(ChatMessage.textPart("Frame at " + timestamp(i) + ":"));
                parts.add(ChatMessage.imagePart());
            }
            parts.add(ChatMessage.textPart(example.question()));
            return List.of(ChatMessage.of("user", parts.toArray(ChatMessage.Part[]::new)));
        }
    }

    public VideoNeedle(int side) {
        // VisualWorld's easy images: a plain ground, one large object; square frames of one size, as a video's are
        this.world = new VisualWorld(new VisualWorld.Options(side, side, true));
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
        Example object = colourQuestion(seed);
        BufferedImage marked = object.images().getFirst();
        if (marked.getWidth() != side || marked.getHeight() != side) {
            throw new IllegalStateException("VisualWorld drew a " + marked.getWidth() + "x" + marked.getHeight() + " image for a " + side + " px frame");
        }
        BufferedImage empty = plain(side, ground(marked));
        List<BufferedImage> video = new ArrayList<>();
        for (int i = 0; i < frames; i++) video.add(i == needle ? marked : empty);
        String question = QUESTION_PREFIX + object.question();
        return new Case(new Example(object.type(), video, question, object.answer(), null), needle);
    }

    static int bucketOf(int index, int frames) {
        return Math.min(3, (int) Math.round(100.0 * index / (frames - 1)) / 25);
    }

    /**
     * The first {@link VisualWorld#object} colour question from {@code seed} on (the lesson asks colour, shape or both
     * at random; only colour is asked here, so the chance level is one over the palette's colours).
     */
    private Example colourQuestion(long seed) {
        for (long k = 0; k < 1000; k++) {
            Example e = world.object(seed * 31 + k);
            if (e.type().equals("color")) return e;
        }
        throw new IllegalStateException("no colour question in 1000 objects from seed " + seed);
    }

    /** The ground colour of an easy image: its most common pixel (the object covers at most two thirds of a side). */
    static int ground(BufferedImage im) {
        Map<Integer, Integer> counts = new HashMap<>();
        int best = 0, bestCount = -1;
        for (int y = 0; y < im.getHeight(); y++) {
            for (int x = 0; x < im.getWidth(); x++) {
                int c = im.getRGB(x, y) & 0xFFFFFF, n = counts.merge(c, 1, Integer::sum);
                if (n > bestCount) {
                    best = c;
                    bestCount = n;
                }
            }
        }
        return best;
    }

    static BufferedImage plain(int side, int rgb) {
        BufferedImage b = new BufferedImage(side, side, BufferedImage.TYPE_INT_RGB);
        Graphics2D g = b.createGraphics();
        g.setColor(new Color(rgb));
        g.fillRect(0, 0, side, side);
        g.dispose();
        return b;
    }

    /** As dev.kimivl.media.Timestamps writes a frame's time (one frame a second): mm:ss, h:mm:ss from one hour on. */
    static String timestamp(int seconds) {
        int h = seconds / 3600, m = seconds / 60 % 60, s = seconds % 60;
        return h > 0 ? String.format(Locale.ROOT, "%d:%02d:%02d", h, m, s) : String.format(Locale.ROOT, "%02d:%02d", m, s);
    }
}
