package dev.kimivl.train.data;

import java.awt.Color;
import java.awt.Graphics2D;
import java.awt.image.BufferedImage;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Synthetic videos with a needle: every frame shows the same plain ground except one, which shows one large object
 * (the curriculum's first lesson, {@link VisualWorld#object}); the question asks that object's colour or shape. Laid
 * out as {@code kimivl run --video} lays out a video (dev.kimivl.media.MediaMessages): each frame an image after its
 * label "Frame at mm:ss:" (one frame a second), then the question. The evaluation's video needle
 * (dev.kimivl.train.eval.VideoNeedle) draws its videos here, and the long-context lessons draw theirs
 * ({@link #random}): the paper's long-context stage trains on "many images" as well as long text.
 */
public final class Videos {
    /** What the evaluation's questions begin with. */
    public static final String QUESTION_PREFIX = "One frame of this video shows a shape. ";
    /** The ways training questions begin (the evaluation's first), so the model does not learn one sentence. */
    static final List<String> PREFIXES = List.of(QUESTION_PREFIX, "A shape appears in one frame of this video. ",
            "One of these frames shows a shape. ", "Somewhere in this video there is a shape. ");
    /** Frame sides the training videos take: 9, 16 and 25 image tokens a frame. */
    static final int[] SIDES = {84, 112, 140};
    /** Frame counts of the training videos: 2 to this many. */
    public static final int MAX_FRAMES = 48;

    /** One easy-image world per frame side (square frames of one size, as a video's are). */
    private static final Map<Integer, VisualWorld> WORLDS = new ConcurrentHashMap<>();

    private Videos() {}

    /** Refuses a frame side the world cannot draw (below 48 px), naming it. */
    public static void checkSide(int side) {
        new VisualWorld.Options(side, side, true);
    }

    static VisualWorld world(int side) {
        return WORLDS.computeIfAbsent(side, s -> new VisualWorld(new VisualWorld.Options(s, s, true)));
    }

    /**
     * A needle video of {@code frames} frames of {@code side} px with the marked frame at index {@code needle}: the
     * first object lesson from {@code seed} on that asks a colour (when {@code colourOnly}) or a colour or a shape,
     * its question after {@code prefix}. The answer and type are the lesson's ("color" or "shape").
     */
    public static Example needle(long seed, int side, int frames, int needle, boolean colourOnly, String prefix) {
        if (frames < 1 || needle < 0 || needle >= frames) throw new IllegalArgumentException("needle frame " + needle + " of " + frames);
        Example object = question(seed, side, colourOnly);
        BufferedImage marked = object.images().getFirst();
        if (marked.getWidth() != side || marked.getHeight() != side) {
            throw new IllegalStateException("VisualWorld drew a " + marked.getWidth() + "x" + marked.getHeight() + " image for a " + side + " px frame");
        }
        BufferedImage empty = plain(side, ground(marked));
        List<BufferedImage> video = new ArrayList<>();
        List<String> labels = new ArrayList<>();
        for (int i = 0; i < frames; i++) {
            video.add(i == needle ? marked : empty);
            labels.add("Frame at " + timestamp(i) + ":");
        }
        return new Example(object.type(), video, prefix + object.question(), object.answer(), null, List.of(), labels);
    }

    /**
     * A training video from {@code seed}: 2 to {@link #MAX_FRAMES} frames of one of {@link #SIDES}, the needle anywhere,
     * asked its colour (two in three) or its shape, after one of {@link #PREFIXES}.
     */
    public static Example random(long seed) {
        SplittableRandom r = new SplittableRandom(seed ^ 0x71DE05EEDL);
        int side = SIDES[r.nextInt(SIDES.length)], frames = 2 + r.nextInt(MAX_FRAMES - 1);
        return needle(seed, side, frames, r.nextInt(frames), r.nextInt(3) < 2, PREFIXES.get(r.nextInt(PREFIXES.size())));
    }

    /** The first object lesson from {@code seed} on that asks a colour (or, unless colourOnly, a shape). */
    private static Example question(long seed, int side, boolean colourOnly) {
        VisualWorld world = world(side);
        for (long k = 0; k < 1000; k++) {
            Example e = world.object(seed * 31 + k);
            if (e.type().equals("color") || !colourOnly && e.type().equals("shape")) return e;
        }
        throw new IllegalStateException("no " + (colourOnly ? "colour" : "colour or shape") + " question in 1000 objects from seed " + seed);
    }

    /** The ground colour of an easy image: its most common pixel (the object covers at most two thirds of a side). */
    public static int ground(BufferedImage im) {
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
    public static String timestamp(int seconds) {
        int h = seconds / 3600, m = seconds / 60 % 60, s = seconds % 60;
        return h > 0 ? String.format(Locale.ROOT, "%d:%02d:%02d", h, m, s) : String.format(Locale.ROOT, "%02d:%02d", m, s);
    }
}
