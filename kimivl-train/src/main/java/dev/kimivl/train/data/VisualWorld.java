package dev.kimivl.train.data;

import java.awt.image.BufferedImage;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import java.util.function.Predicate;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.LongStream;
import java.util.stream.Stream;

/**
 * A deterministic synthetic visual world for training and evaluating a small Kimi-VL: Java2D scenes of coloured shapes
 * and words on varied backgrounds, and questions about them with one exact short answer each. Every example is a
 * function of its seed (and the type, where given), so a run can be reproduced and an evaluation can draw images the
 * model never saw by using seeds outside the training range.
 *
 * <p>The images vary the way images drawn by other programs do (size 64-512 px, aspect 1:2..2:1, anti-aliasing on or
 * off, plain/noisy/gradient/rainbow backgrounds, distractor lines, JPEG re-compression), because the model is checked on
 * such images and would otherwise learn the renderer rather than the shapes.
 */
public final class VisualWorld {
    /** Image sides in pixels, inclusive. */
    /**
     * @param easy a curriculum's first images: plain backgrounds, anti-aliased, no distractor lines, no JPEG, objects at
     *             least a fifth of the shorter side. A model trained from scratch learns what an object is here
     *             first; on the full variety (rainbow gradients around small objects) it did not start to (0 of 11
     *             colours after 2,000 examples; the same recipe on easy images: see recipes/nano-session5.json)
     */
    public record Options(int minSide, int maxSide, boolean easy) {
        public Options {
            // below 48 px nine objects of at least 10 px no longer fit, and nothing there could be read anyway
            if (minSide < 48 || maxSide < minSide) throw new IllegalArgumentException("need 48 <= minSide <= maxSide, got " + minSide + ", " + maxSide);
        }

        public Options(int minSide, int maxSide) { this(minSide, maxSide, false); }

        public static Options defaults() {
            return new Options(64, 512);
        }
    }

    private static final List<String> VQA_TYPES = List.of("what", "color", "shape", "count", "position", "size", "read");
    private static final List<String> ALL_TYPES = List.of("what", "color", "shape", "count", "position", "size", "read",
        "caption", "compare", "chart", "reasoning", "text", "needle");
    /** The filler length of a "needle" example made by example(seed, "needle"). */
    static final int DEFAULT_NEEDLE_CHARS = 2000;
    /** The share of images re-compressed as JPEG. */
    static final double JPEG_CHANCE = 0.3;
    static final String NEEDLE_PREFIX = "The secret word is ";

    private final Options options;

    public VisualWorld(Options o) {
        this.options = o;
    }

    public Options options() {
        return options;
    }

    /** The single-image VQA types, in a fixed order. */
    public static List<String> vqaTypes() {
        return VQA_TYPES;
    }

    /**
     * Every type, in a fixed order: the VQA types, then "caption", "compare" (two images), "chart", "reasoning" (with a
     * trace), "text" (no image) and "needle" (long context).
     */
    public static List<String> allTypes() {
        return ALL_TYPES;
    }

    /** An example of any type of allTypes() ("needle" with about 2000 characters of filler). */
    public Example example(long seed, String type) {
        return switch (type) {
            case "caption" -> caption(seed);
            case "compare" -> compare(seed);
            case "chart" -> chart(seed);
            case "reasoning" -> reasoning(seed);
            case "text" -> text(seed);
            case "needle" -> longContext(seed, DEFAULT_NEEDLE_CHARS);
            default -> vqa(seed, type);
        };
    }

    /** An example of a random VQA type; equal to {@code vqa(seed, t)} for the type t it picks. */
    public Example vqa(long seed) {
        return vqa(seed, VQA_TYPES.get(new SplittableRandom(seed).nextInt(VQA_TYPES.size())));
    }

    public Example vqa(long seed, String type) {
        SplittableRandom r = random(seed, type);
        return switch (type) {
            case "what" -> what(r);
            case "color" -> color(r);
            case "shape" -> shape(r);
            case "count" -> count(r);
            case "position" -> position(r);
            case "size" -> size(r);
            case "read" -> read(r);
            default -> throw new IllegalArgumentException("unknown VQA type '" + type + "'; one of " + VQA_TYPES);
        };
    }

    /** A generator for one example: the seed and the type mixed, so that two types of one seed do not share their draws. */
    static SplittableRandom random(long seed, String type) {
        return new SplittableRandom(seed * 0x9E3779B97F4A7C15L ^ (long) type.hashCode() * 0xC2B2AE3D27D4EB4FL);
    }

    // ---------------------------------------------------------------- scenes

    /** What to place: a shape of a colour with a size range (fractions of the shorter side). */
    record Spec(String shape, String color, double lo, double hi) {}

    /** The largest nominal size for an object among n, so that n objects of this size still fit without overlapping. */
    static double maxRel(int n) {
        return n == 1 ? 0.65 : Math.min(0.45, 0.85 / Math.sqrt(n));
    }

    /**
     * Draws the specs into a fresh random image, and starts again (new size, background) until every object could be
     * placed and the scene satisfies ok, e.g. objects far enough apart for "left of" to be clear.
     */
    Painter scene(SplittableRandom r, List<Spec> specs, Predicate<Painter> ok) {
        return scene(r, specs, ok, false);
    }

    /** As scene(r, specs, ok), on a background a caption can name when named is set. */
    Painter scene(SplittableRandom r, List<Spec> specs, Predicate<Painter> ok, boolean named) {
        for (int attempt = 0; attempt < 200; attempt++) {
            // an easy scene whose colours no grey ground can carry (white and black together) gets an ordinary one
            Options o = options.easy() && attempt >= 100 ? new Options(options.minSide(), options.maxSide()) : options;
            Painter p = Painter.random(r, o, named);
            boolean placed = true;
            for (Spec s : specs) {
                double lo = options.easy() ? Math.min(Math.max(s.lo(), 0.2), 0.8 * s.hi()) : s.lo();
                if (p.place(s.shape(), s.color(), lo, s.hi()) == null) {
                    placed = false;
                    break;
                }
            }
            if (placed && ok.test(p)) return p;
        }
        throw new IllegalStateException("could not draw " + specs + " in 200 images of " + options);
    }

    private double jpegChance() { return options.easy() ? 0 : JPEG_CHANCE; }

    private static <T> T pick(SplittableRandom r, List<T> xs) {
        return xs.get(r.nextInt(xs.size()));
    }

    private static String colorName(SplittableRandom r) {
        return pick(r, Palette.COLORS);
    }

    private static String shapeName(SplittableRandom r) {
        return pick(r, Palette.SHAPES);
    }

    /** n distinct values drawn from xs (n <= xs.size()), in random order. */
    private static <T> List<T> distinct(SplittableRandom r, List<T> xs, int n) {
        List<T> pool = new ArrayList<>(xs), out = new ArrayList<>();
        for (int i = 0; i < n; i++) out.add(pool.remove(r.nextInt(pool.size())));
        return out;
    }

    private Example single(String type, Painter p, String question, String answer) {
        return new Example(type, List.of(p.finish(jpegChance())), question, answer, null);
    }

    /** "a red circle", "an orange star". */
    static String named(String color, String shape) {
        return Palette.article(color) + " " + color + " " + shape;
    }

    /** "A x.", "A x and a y.", "A x, a y and a z." */
    static String list(List<String> items) {
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < items.size(); i++) {
            if (i > 0) b.append(i == items.size() - 1 ? " and " : ", ");
            b.append(items.get(i));
        }
        return Palette.capitalise(b.toString()) + ".";
    }

    // ---------------------------------------------------------------- VQA types

    private Example what(SplittableRandom r) {
        int n = 1 + r.nextInt(4);
        List<Spec> specs = new ArrayList<>();
        List<String> seen = new ArrayList<>();
        while (specs.size() < n) {
            String c = colorName(r), s = shapeName(r);
            if (seen.contains(c + " " + s)) continue; // "a red circle and a red circle" would need a plural answer
            seen.add(c + " " + s);
            specs.add(new Spec(s, c, 0.12, maxRel(n)));
        }
        // objects listed left to right need centres clearly apart in x, or the taught order would be a coin toss
        Painter p = scene(r, specs, pt -> minGap(pt.objects.stream().map(Painter.Obj::cx).toList()) >= 0.06 * pt.width);
        List<String> items = p.objects.stream().sorted(Comparator.comparingDouble(Painter.Obj::cx)).map(o -> named(o.color(), o.shape())).toList();
        String q = pick(r, List.of("What is in this picture?", "What do you see?", "Describe the objects.", "What is in the image?",
            "What objects are in the image?", "What shapes can you see?", "What is shown here?"));
        return single("what", p, q, list(items));
    }

    private Example color(SplittableRandom r) {
        if (r.nextBoolean()) {
            String c = colorName(r), s = shapeName(r);
            Painter p = scene(r, List.of(new Spec(s, c, 0.15, maxRel(1))), p0 -> true);
            String q = pick(r, List.of("What color is the shape?", "What colour is the shape?", "What color is it?", "What color is this " + s + "?",
                "What colour is the " + s + "?", "What color is the object?", "Which colour is shown?"));
            return single("color", p, q, Palette.capitalise(c) + ".");
        }
        int n = 2 + r.nextInt(3);
        List<String> shapes;
        do shapes = distinct(r, Palette.SHAPES, n); while (confusing(shapes));
        List<Spec> specs = new ArrayList<>();
        for (String s : shapes) specs.add(new Spec(s, colorName(r), 0.12, maxRel(n)));
        Painter p = scene(r, specs, p0 -> true);
        String target = shapes.getFirst(), c = specs.getFirst().color();
        String q = pick(r, List.of("What color is the " + target + "?", "What colour is the " + target + "?", "Which color does the " + target + " have?",
            "What is the color of the " + target + "?"));
        return single("color", p, q, Palette.capitalise(c) + ".");
    }

    private Example shape(SplittableRandom r) {
        if (r.nextBoolean()) {
            String c = colorName(r), s = shapeName(r);
            Painter p = scene(r, List.of(new Spec(s, c, 0.15, maxRel(1))), p0 -> true);
            String q = pick(r, List.of("What shape is this?", "What shape is shown?", "What shape is in the image?", "What is the shape?",
                "Which shape do you see?", "What shape is the " + c + " object?"));
            return single("shape", p, q, article(s));
        }
        int n = 2 + r.nextInt(3);
        List<String> colors = distinct(r, Palette.COLORS, n);
        List<Spec> specs = new ArrayList<>();
        for (String c : colors) specs.add(new Spec(shapeName(r), c, 0.12, maxRel(n)));
        Painter p = scene(r, specs, p0 -> true);
        String c = colors.getFirst(), s = specs.getFirst().shape();
        String q = pick(r, List.of("What shape is the " + c + " object?", "What is the " + c + " shape?", "Which shape is " + c + "?",
            "What shape is " + c + "?"));
        return single("shape", p, q, article(s));
    }

    /** Whether "the " + shapes[0] could also mean one of the others (a circle among rings, a rectangle among squares). */
    static boolean confusing(List<String> shapes) {
        return shapes.stream().skip(1).anyMatch(o -> Palette.confusable(shapes.getFirst(), o));
    }

    /** "A triangle." */
    private static String article(String shape) {
        return Palette.capitalise(Palette.article(shape)) + " " + shape + ".";
    }

    private Example count(SplittableRandom r) {
        int mode = r.nextInt(3), k = 1 + r.nextInt(9);
        List<Spec> specs = new ArrayList<>();
        String q;
        switch (mode) {
            case 0 -> { // one shape among others
                String s = shapeName(r);
                int others = r.nextInt(Math.min(3, 9 - k) + 1), total = k + others;
                for (int i = 0; i < k; i++) specs.add(new Spec(s, colorName(r), 0.12, maxRel(total)));
                for (int i = 0; i < others; i++) {
                    String o;
                    do o = shapeName(r); while (o.equals(s) || Palette.confusable(s, o));
                    specs.add(new Spec(o, colorName(r), 0.12, maxRel(total)));
                }
                String pl = Palette.plural(s);
                q = pick(r, List.of("How many " + pl + " are there?", "How many " + pl + " do you see?", "Count the " + pl + ".",
                    "How many " + pl + " are in the image?"));
            }
            case 1 -> { // all objects
                for (int i = 0; i < k; i++) specs.add(new Spec(shapeName(r), colorName(r), 0.12, maxRel(k)));
                q = pick(r, List.of("How many shapes are there?", "How many objects are in the image?", "Count the shapes.",
                    "How many shapes do you see?", "How many objects are there?"));
            }
            default -> { // one colour among others
                String c = colorName(r);
                int others = r.nextInt(Math.min(3, 9 - k) + 1), total = k + others;
                for (int i = 0; i < k; i++) specs.add(new Spec(shapeName(r), c, 0.12, maxRel(total)));
                for (int i = 0; i < others; i++) {
                    String o;
                    do o = colorName(r); while (o.equals(c));
                    specs.add(new Spec(shapeName(r), o, 0.12, maxRel(total)));
                }
                q = pick(r, List.of("How many " + c + " shapes are there?", "How many " + c + " objects are there?",
                    "Count the " + c + " shapes."));
            }
        }
        Painter p = scene(r, specs, p0 -> true);
        return single("count", p, q, Palette.numberAnswer(k));
    }

    /** The smallest difference between any two of xs. */
    static double minGap(List<Double> xs) {
        List<Double> sorted = xs.stream().sorted().toList();
        double gap = Double.MAX_VALUE;
        for (int i = 1; i < sorted.size(); i++) gap = Math.min(gap, sorted.get(i) - sorted.get(i - 1));
        return gap;
    }

    private Example position(SplittableRandom r) {
        int n = 2 + (r.nextInt(3) == 0 ? 1 : 0); // sometimes a third object, so that the two named ones must be found
        List<String> shapes = distinct(r, Palette.SHAPES, n), colors = distinct(r, Palette.COLORS, n);
        List<Spec> specs = new ArrayList<>();
        for (int i = 0; i < n; i++) specs.add(new Spec(shapes.get(i), colors.get(i), 0.12, maxRel(n)));
        boolean horizontal = r.nextBoolean();
        // a quarter of the side between the centres: "left of" must be obvious, not a matter of a few pixels
        Painter p = scene(r, specs, pt -> {
            Painter.Obj a = pt.objects.get(0), b = pt.objects.get(1);
            return horizontal ? Math.abs(a.cx() - b.cx()) >= 0.25 * pt.width : Math.abs(a.cy() - b.cy()) >= 0.25 * pt.height;
        });
        String[] qa = positionQuestion(r, p.objects.get(0), p.objects.get(1), horizontal);
        return single("position", p, qa[0], qa[1]);
    }

    /**
     * A question about where a is against b, along the axis their centres are clearly apart on, and its answer:
     * "Is the red circle left or right of the blue square?" "Left.", or a name ("Which is higher, ...?").
     */
    private static String[] positionQuestion(SplittableRandom r, Painter.Obj a, Painter.Obj b, boolean horizontal) {
        String na = "the " + a.color() + " " + a.shape(), nb = "the " + b.color() + " " + b.shape();
        String q, answer;
        if (r.nextInt(4) == 0) { // "which is further left" asks for a name rather than a direction
            boolean first = horizontal ? a.cx() < b.cx() : a.cy() < b.cy();
            boolean askFirstSide = r.nextBoolean(); // left/top, or right/bottom
            String side = horizontal ? (askFirstSide ? "further left" : "further right") : (askFirstSide ? "higher" : "lower");
            boolean swap = r.nextBoolean();
            q = "Which is " + side + ", " + (swap ? nb + " or " + na : na + " or " + nb) + "?";
            answer = Palette.capitalise(first == askFirstSide ? na : nb) + ".";
        } else if (horizontal) {
            q = pick(r, List.of("Is " + na + " left or right of " + nb + "?", "Is " + na + " to the left or to the right of " + nb + "?",
                "Is " + na + " on the left or the right of " + nb + "?"));
            answer = a.cx() < b.cx() ? "Left." : "Right.";
        } else {
            q = pick(r, List.of("Is " + na + " above or below " + nb + "?", "Is " + na + " higher or lower than " + nb + "?"));
            boolean above = a.cy() < b.cy();
            answer = q.contains("higher") ? (above ? "Higher." : "Lower.") : (above ? "Above." : "Below.");
        }
        return new String[]{q, answer};
    }

    /** The most questions a scene conversation asks about its one image. */
    static final int SCENE_TURNS = 6;

    /**
     * One scene of 2-4 objects (distinct colours, distinct shapes that cannot be taken for one another, sizes from small
     * to a third of the side) and a conversation of up to {@link #SCENE_TURNS} questions about it, each in its own user
     * turn: where one object is against another (only along an axis where their centres are a quarter of the side
     * apart), which of two is bigger (only where one has twice the other's area), where one is in the image's 3 × 3
     * grid or what is at a place of it (grounding), the colour of a named shape, the shape of a named colour, how many
     * shapes there are. Each pair of objects is asked about once at most, so no
     * answer follows from an earlier one.
     *
     * <p>Why: position and size questions need the model to find a named object among the image tokens and read where
     * it is, a binding that one question per image (one decisive answer token per example) did not teach in 16,000
     * examples (TRAINING.md, session 9, P2). A conversation gives several such answers per image for the price of one
     * image's tokens, as the multi-turn SFT data of real VLMs does. Type "scene": training data, not an eval type.
     */
    public Example conversation(long seed) {
        SplittableRandom r = random(seed, "scene");
        Cast cast = cast(r);
        int n = cast.size();
        List<String> colors = cast.colors(), shapes = cast.shapes();
        List<Spec> specs = new ArrayList<>();
        double hi = maxRel(n);
        for (int i = 0; i < n; i++) {
            boolean big = r.nextBoolean();
            specs.add(new Spec(shapes.get(i), colors.get(i), big ? 0.6 * hi : 0.12, big ? hi : 0.5 * hi));
        }
        Painter p = scene(r, specs, pt -> true);
        List<Painter.Obj> objs = p.objects;
        List<Example.Turn> turns = new ArrayList<>();
        List<Integer> pairs = new ArrayList<>();
        for (int i = 0; i < n; i++) for (int j = i + 1; j < n; j++) pairs.add(i * n + j);
        shuffle(r, pairs);
        for (int code : pairs) {
            Painter.Obj a = objs.get(code / n), b = objs.get(code % n);
            if (r.nextBoolean()) { Painter.Obj t = a; a = b; b = t; }
            boolean apartX = Math.abs(a.cx() - b.cx()) >= 0.25 * p.width, apartY = Math.abs(a.cy() - b.cy()) >= 0.25 * p.height;
            double ratio = Math.max(a.area(), b.area()) / Math.min(a.area(), b.area());
            boolean sizeOk = ratio >= 2;
            if ((apartX || apartY) && (!sizeOk || r.nextInt(3) != 0)) {
                boolean horizontal = apartX && apartY ? r.nextBoolean() : apartX;
                String[] qa = positionQuestion(r, a, b, horizontal);
                turns.add(new Example.Turn(qa[0], qa[1]));
            } else if (sizeOk) {
                Painter.Obj big = a.area() > b.area() ? a : b, small = big == a ? b : a;
                String nBig = "the " + big.color() + " " + big.shape(), nSmall = "the " + small.color() + " " + small.shape();
                boolean askBig = r.nextInt(3) != 0;
                String adjective = askBig ? pick(r, List.of("bigger", "larger")) : "smaller";
                String q = "Which is " + adjective + ", the " + a.color() + " " + a.shape() + " or the " + b.color() + " " + b.shape() + "?";
                turns.add(new Example.Turn(q, Palette.capitalise(askBig ? nBig : nSmall) + "."));
            }
        }
        for (Painter.Obj o : objs) {
            String where = region(o, p.width, p.height);
            if (where != null && r.nextBoolean()) {        // grounding: the one-object form of "where", both ways round
                if (r.nextBoolean()) turns.add(new Example.Turn("Where is the " + o.color() + " " + o.shape() + "?", Palette.capitalise(where) + "."));
                else turns.add(new Example.Turn("What is " + where + "?", Palette.capitalise(named(o.color(), o.shape())) + "."));
            }
            if (r.nextBoolean()) turns.add(new Example.Turn(pick(r, List.of("What color is the " + o.shape() + "?", "What colour is the " + o.shape() + "?")),
                    Palette.capitalise(o.color()) + "."));
            else turns.add(new Example.Turn(pick(r, List.of("What shape is the " + o.color() + " object?", "What is the " + o.color() + " shape?")),
                    article(o.shape())));
        }
        turns.add(new Example.Turn(pick(r, List.of("How many shapes are there?", "How many objects are in the image?")), Palette.numberAnswer(n)));
        shuffle(r, turns);
        turns = turns.subList(0, Math.min(SCENE_TURNS, turns.size()));
        Example.Turn first = turns.getFirst();
        return new Example("scene", List.of(p.finish(jpegChance())), first.question(), first.answer(), null, turns.subList(1, turns.size()));
    }

    /**
     * One scene of 2-4 objects (distinct colours and shapes) and a conversation that asks where each object is in the
     * image's 3 × 3 grid ("Where is the red circle?" "At the top left."), a third of the time by its colour alone
     * ("Where is the red shape?"), and a quarter of the time the other way round ("What is at the top left?"). Objects
     * too close to a grid line to have one clear place are not asked about.
     *
     * <p>Why: the lesson under every question about several objects is to find a named object among the image tokens
     * and read what it carries. A language model fed ideal image tokens (one vector per object: colour + shape +
     * place) learns this only from focused data, and then suddenly, after a few hundred steps (TRAINING.md, session
     * 11); mixed with six other kinds of question, as in {@link #conversation}, it did not learn it in 2,000 steps.
     * Type "ground": training data, not an eval type.
     */
    public Example grounding(long seed) {
        SplittableRandom r = random(seed, "ground");
        for (int attempt = 0; ; attempt++) {
            Cast cast = cast(r);
            int n = cast.size();
            List<String> colors = cast.colors(), shapes = cast.shapes();
            List<Spec> specs = new ArrayList<>();
            for (int i = 0; i < n; i++) specs.add(new Spec(shapes.get(i), colors.get(i), 0.12, maxRel(n)));
            Painter p = scene(r, specs, pt -> true);
            List<Example.Turn> turns = groundingTurns(r, p);
            if (turns.isEmpty() && attempt < 20) continue;   // every object on a grid line: draw another scene
            if (turns.isEmpty()) throw new IllegalStateException("no scene with an object off the grid lines in 20 draws (seed " + seed + ")");
            return groundingExample("ground", p, turns);
        }
    }

    /**
     * The {@link #grounding} lesson made plain: each of the 2-4 objects (distinct colours and shapes) fills much of its
     * own cell of the image's 3 × 3 grid (a fifth to nearly a third of the shorter side), so its place is never in
     * doubt and the tokens of its cell are mostly its own. The same questions as {@link #grounding}. Type "ground-grid".
     *
     * <p>Why: on {@link #grounding}'s free scenes an object covers one to four tokens, partly, and sits anywhere in its
     * region; a language model learns the look-up there slowly (19-23% after 1,500 steps, TRAINING.md session 12),
     * while on ideal tokens it learns it suddenly (session 11). This is the bridge between the two, as the one large
     * object of {@link #object} was the bridge to naming colours.
     */
    public Example groundingOnGrid(long seed) {
        SplittableRandom r = random(seed, "ground-grid");
        for (int attempt = 0; attempt < 200; attempt++) {
            Cast cast = cast(r);
            int n = cast.size();
            List<Integer> cells = distinct(r, List.of(0, 1, 2, 3, 4, 5, 6, 7, 8), n);
            Painter p = Painter.random(r, options);
            boolean placed = true;
            for (int i = 0; i < n && placed; i++) {
                int cell = cells.get(i);
                var box = new java.awt.geom.Rectangle2D.Double(cell % 3 * p.width / 3.0, cell / 3 * p.height / 3.0, p.width / 3.0, p.height / 3.0);
                placed = p.placeIn(cast.shapes().get(i), cast.colors().get(i), 0.2, 0.32, box) != null;
            }
            if (!placed) continue;
            List<Example.Turn> turns = groundingTurns(r, p);
            if (turns.isEmpty()) continue;
            return groundingExample("ground-grid", p, turns);
        }
        throw new IllegalStateException("could not draw a grid grounding scene in 200 images of " + options + " (seed " + seed + ")");
    }

    /**
     * The first grounding lesson: one object (of {@link #grounding}'s sizes) and where it is, by its colour and shape
     * or by its colour alone, or what is at its place. Nothing to bind, only a place to read: type "ground-one".
     */
    public Example groundingAlone(long seed) {
        SplittableRandom r = random(seed, "ground-one");
        for (int attempt = 0; attempt < 200; attempt++) {
            Painter p = scene(r, List.of(new Spec(shapeName(r), colorName(r), 0.12, maxRel(2))), pt -> true);
            List<Example.Turn> turns = groundingTurns(r, p);
            if (!turns.isEmpty()) return groundingExample("ground-one", p, turns);
        }
        throw new IllegalStateException("no object off the grid lines in 200 one-object scenes (seed " + seed + ")");
    }

    /** The grounding questions about each object of a scene with a clear place, in random order (see {@link #grounding}). */
    private static List<Example.Turn> groundingTurns(SplittableRandom r, Painter p) {
        List<Example.Turn> turns = new ArrayList<>();
        List<String> places = p.objects.stream().map(o -> region(o, p.width, p.height)).toList();
        for (Painter.Obj o : p.objects) {
            String where = region(o, p.width, p.height);
            if (where == null) continue;
            boolean alone = places.stream().filter(where::equals).count() == 1;   // "What is at ...?" has one answer
            if (alone && r.nextInt(4) == 0) turns.add(new Example.Turn("What is " + where + "?", Palette.capitalise(named(o.color(), o.shape())) + "."));
            else if (r.nextInt(3) == 0) turns.add(new Example.Turn("Where is the " + o.color() + " shape?", Palette.capitalise(where) + "."));
            else turns.add(new Example.Turn("Where is the " + o.color() + " " + o.shape() + "?", Palette.capitalise(where) + "."));
        }
        shuffle(r, turns);
        return turns;
    }

    private Example groundingExample(String type, Painter p, List<Example.Turn> turns) {
        Example.Turn first = turns.getFirst();
        return new Example(type, List.of(p.finish(jpegChance())), first.question(), first.answer(), null, turns.subList(1, turns.size()));
    }

    /** The three forms of a {@link #grounding} question, told apart by the fixed wording that method gives them. */
    public enum GroundingForm {
        /** "Where is the red circle?" */
        WHERE_NAMED,
        /** "Where is the red shape?" */
        WHERE_BY_COLOUR,
        /** "What is at the top left?" */
        WHAT_IS_THERE;

        public static GroundingForm of(String question) {
            if (question.startsWith("What is ")) return WHAT_IS_THERE;
            return question.endsWith(" shape?") ? WHERE_BY_COLOUR : WHERE_NAMED;
        }
    }

    /** The example types of the grounding lessons ({@link #grounding}, {@link #groundingOnGrid}, {@link #groundingAlone}). */
    public static final List<String> GROUNDING_TYPES = List.of("ground", "ground-grid", "ground-one");

    /**
     * colour → 3 × 3 region ({@link #REGIONS} index) of each object a grounding conversation places, read back from
     * its turns' fixed wording ("Where is the red circle?" → "At the top left.", "What is at the top left?" → "A red
     * circle."); empty for every other example. A scene's colours are distinct, so a colour names one object.
     */
    public static java.util.Map<String, Integer> groundingPlaces(Example ex) {
        java.util.Map<String, Integer> places = new java.util.LinkedHashMap<>();
        if (!GROUNDING_TYPES.contains(ex.type())) return places;
        List<Example.Turn> turns = new ArrayList<>();
        turns.add(new Example.Turn(ex.question(), ex.answer()));
        turns.addAll(ex.followUps());
        for (Example.Turn t : turns) {
            String colour, phrase;
            if (GroundingForm.of(t.question()) == GroundingForm.WHAT_IS_THERE) {
                phrase = t.question().substring("What is ".length(), t.question().length() - 1);
                colour = t.answer().split(" ")[1];                      // "A red circle."
            } else {
                colour = t.question().substring("Where is the ".length()).split(" ")[0];
                phrase = Palette.lowerFirst(t.answer().substring(0, t.answer().length() - 1));
            }
            int region = REGIONS.indexOf(phrase);
            if (region < 0 || !Palette.COLORS.contains(colour)) {
                throw new IllegalStateException("grounding turn '" + t.question() + "' → '" + t.answer() + "' does not name a colour and one of " + REGIONS);
            }
            places.put(colour, region);
        }
        return places;
    }

    /** The objects of a scene conversation: their colours and shapes, pairwise distinct, i-th colour with i-th shape. */
    private record Cast(List<String> colors, List<String> shapes) {
        int size() { return colors.size(); }
    }

    /** 2-4 objects of distinct colours and of distinct shapes no two of which could be taken for one another. */
    private static Cast cast(SplittableRandom r) {
        int n = 2 + r.nextInt(3);
        List<String> colors = distinct(r, Palette.COLORS, n), shapes;
        do shapes = distinct(r, Palette.SHAPES, n); while (anyConfusable(shapes));
        return new Cast(colors, shapes);
    }

    /** Whether any two of the shapes could be taken for one another (a circle and a ring, a square and a rectangle). */
    private static boolean anyConfusable(List<String> shapes) {
        for (int i = 0; i < shapes.size(); i++)
            for (int j = i + 1; j < shapes.size(); j++)
                if (Palette.confusable(shapes.get(i), shapes.get(j))) return true;
        return false;
    }

    /** Fisher-Yates with the example's own generator (Collections.shuffle would need a java.util.Random). */
    private static <T> void shuffle(SplittableRandom r, List<T> xs) {
        for (int i = xs.size() - 1; i > 0; i--) {
            int j = r.nextInt(i + 1);
            T t = xs.get(i);
            xs.set(i, xs.get(j));
            xs.set(j, t);
        }
    }

    private Example size(SplittableRandom r) {
        List<String> shapes = distinct(r, Palette.SHAPES, 2), colors = distinct(r, Palette.COLORS, 2);
        List<Spec> specs = List.of(new Spec(shapes.get(0), colors.get(0), 0.30, 0.45), new Spec(shapes.get(1), colors.get(1), 0.12, 0.20));
        // twice the area: a difference anyone sees at a glance, also when a ring is compared with a star
        Painter p = scene(r, specs, pt -> pt.objects.get(0).area() >= 2 * pt.objects.get(1).area());
        Painter.Obj big = p.objects.get(0), small = p.objects.get(1);
        boolean withColor = r.nextInt(3) == 0, askBig = r.nextInt(3) != 0, bigFirst = r.nextBoolean();
        String nBig = "the " + (withColor ? big.color() + " " : "") + big.shape(), nSmall = "the " + (withColor ? small.color() + " " : "") + small.shape();
        String adjective = askBig ? pick(r, List.of("bigger", "larger")) : "smaller";
        String q = pick(r, List.of("Which is " + adjective + ", ", "Which shape is " + adjective + ", ")) + (bigFirst ? nBig + " or " + nSmall : nSmall + " or " + nBig) + "?";
        return single("size", p, q, Palette.capitalise(askBig ? nBig : nSmall) + ".");
    }

    private Example read(SplittableRandom r) {
        for (int attempt = 0; attempt < 200; attempt++) {
            String w = pick(r, Words.COMMON);
            w = switch (r.nextInt(3)) {
                case 0 -> w;
                case 1 -> w.toUpperCase(Locale.ROOT);
                default -> Palette.capitalise(w);
            };
            boolean sign = r.nextInt(5) < 2;
            Painter p = Painter.random(r, options);
            if (!p.word(w, 0.12, 0.30, sign)) continue;
            // a few shapes as clutter around the word, so that reading is not "the only thing there"
            int clutter = r.nextInt(4) == 0 ? 1 + r.nextInt(2) : 0;
            for (int i = 0; i < clutter; i++) p.place(shapeName(r), colorName(r), 0.12, 0.2);
            List<String> qs = new ArrayList<>(List.of("What word is written in the image?", "Read the text.", "What is written here?",
                "What text is shown in the image?", "What does it say?"));
            if (sign) qs.add("What does the sign say?");
            return single("read", p, pick(r, qs), w + ".");
        }
        throw new IllegalStateException("could not place a word in 200 images of " + options);
    }

    /**
     * The first lesson: one large object (a third to two thirds of the shorter side), asked its colour, its shape or
     * both; the type is "color", "shape" or "what", so the evaluation's checker applies. A model from scratch attends
     * nearly uniformly over the image at first, so an object's colour reaches the answer in proportion to its area:
     * with one large object the signal is strong enough to start on (on the VQA scenes, where half the questions bind
     * a named shape among several, a nano model stayed at chance for 300 steps; here it learns; TRAINING.md).
     */
    public Example object(long seed) {
        SplittableRandom r = random(seed, "object");
        String c = colorName(r), s = shapeName(r);
        Painter p = scene(r, List.of(new Spec(s, c, 0.33, maxRel(1))), p0 -> true);
        return switch (r.nextInt(3)) {
            case 0 -> single("color", p, pick(r, List.of("What color is the shape?", "What colour is the shape?", "What color is it?",
                "What color is the object?", "Which colour is shown?")), Palette.capitalise(c) + ".");
            case 1 -> single("shape", p, pick(r, List.of("What shape is this?", "What shape is shown?", "What shape is in the image?",
                "What is the shape?", "Which shape do you see?")), article(s));
            default -> single("what", p, pick(r, List.of("What is in this picture?", "What do you see?", "What is in the image?",
                "What is shown here?")), list(List.of(named(c, s))));
        };
    }

    /**
     * A label for the ViT pre-training stage's contrastive loss: one object as in {@link #object}, always described in
     * full ("A red star."), so that two images with the same label text are the same kind of picture.
     */
    public Example label(long seed) {
        SplittableRandom r = random(seed, "label");
        String c = colorName(r), s = shapeName(r);
        Painter p = scene(r, List.of(new Spec(s, c, 0.33, maxRel(1))), p0 -> true);
        return single("what", p, pick(r, List.of("What is in this picture?", "What do you see?", "What is in the image?",
            "What is shown here?")), list(List.of(named(c, s))));
    }

    // ---------------------------------------------------------------- captions, two images, charts, reasoning

    /**
     * Where an object is, in thirds of the image ("at the top left", "in the centre", "on the right"), or null when its
     * centre is within 4% of a third's border, where a person could say either.
     */
    static String region(Painter.Obj o, int width, int height) {
        int col = third(o.cx() / width), row = third(o.cy() / height);
        if (col < 0 || row < 0) return null;
        return REGIONS.get(row * 3 + col);
    }

    /** The nine phrases {@link #region} gives, row by row from the top left; a phrase's index is its 3 × 3 cell. */
    public static final List<String> REGIONS = java.util.stream.IntStream.range(0, 9).mapToObj(k -> {
        String[] cols = {"left", "centre", "right"}, rows = {"top", "middle", "bottom"};
        int row = k / 3, col = k % 3;
        return row == 1 ? (col == 1 ? "in the centre" : "on the " + cols[col]) : "at the " + rows[row] + (col == 1 ? "" : " " + cols[col]);
    }).toList();

    private static int third(double t) {
        for (int k = 1; k <= 2; k++) if (Math.abs(t - k / 3.0) < 0.04) return -1;
        return (int) Math.min(2, Math.floor(t * 3));
    }

    /** "Describe the image." with a one-sentence answer naming the objects (left to right), where they are, and the background. */
    public Example caption(long seed) {
        SplittableRandom r = random(seed, "caption");
        int n = 1 + r.nextInt(3);
        List<Spec> specs = new ArrayList<>();
        List<String> seen = new ArrayList<>();
        while (specs.size() < n) {
            String c = colorName(r), s = shapeName(r);
            if (seen.contains(c + " " + s)) continue;
            seen.add(c + " " + s);
            specs.add(new Spec(s, c, 0.12, Math.min(0.3, maxRel(n))));
        }
        Painter p = scene(r, specs, pt -> {
            List<String> regions = pt.objects.stream().map(o -> region(o, pt.width, pt.height)).toList();
            // each object in its own, clear third, so that the sentence says where each one is without doubt
            return !regions.contains(null) && regions.stream().distinct().count() == regions.size()
                && minGap(pt.objects.stream().map(Painter.Obj::cx).toList()) >= 0.06 * pt.width;
        }, true);
        List<String> parts = p.objects.stream().sorted(Comparator.comparingDouble(Painter.Obj::cx))
            .map(o -> named(o.color(), o.shape()) + " " + region(o, p.width, p.height)).toList();
        String bg = switch (p.background) {
            case "plain" -> named(p.bgName, "background");
            case "noisy" -> "a noisy " + p.bgName + " background";
            case "gradient" -> "a gradient background";
            default -> "a rainbow background";
        };
        String sentence = list(parts);
        sentence = sentence.substring(0, sentence.length() - 1) + ", on " + bg + ".";
        String q = pick(r, List.of("Describe the image.", "Describe this picture.", "Write a caption for this image.",
            "Give a short description of the image.", "What does this image show?"));
        return new Example("caption", List.of(p.finish(jpegChance())), q, sentence, null);
    }

    /**
     * An inventory of a scene, for the vision side's pre-training: 1-9 objects of one to three kinds (a colour and a
     * shape), captioned with the total and each kind's count, kinds in the order of their leftmost object: "Six shapes:
     * three red circles, a blue star and two green squares." A tower whose caption decoder can write this keeps the
     * objects of a busy scene apart in its tokens, which counting and listing need.
     */
    public Example inventory(long seed) {
        SplittableRandom r = random(seed, "inventory");
        int total = 1 + r.nextInt(9), kindCount = Math.min(total, 1 + r.nextInt(3));
        double hi = maxRel(total);
        List<Spec> kinds = new ArrayList<>();                               // distinct colour-and-shape kinds
        while (kinds.size() < kindCount) {
            String c = colorName(r), s = shapeName(r);
            Spec kind = new Spec(s, c, 0.12, hi);
            if (!kinds.contains(kind)) kinds.add(kind);
        }
        int[] counts = new int[kindCount];
        java.util.Arrays.fill(counts, 1);                                   // every kind at least once, the rest at random
        for (int i = kindCount; i < total; i++) counts[r.nextInt(kindCount)]++;
        List<Spec> specs = new ArrayList<>();
        for (int i = 0; i < kindCount; i++) specs.addAll(java.util.Collections.nCopies(counts[i], kinds.get(i)));
        Painter p = scene(r, specs, p0 -> true);
        double[] leftmost = new double[kindCount];
        for (int i = 0; i < kindCount; i++) {
            Spec k = kinds.get(i);
            leftmost[i] = p.objects.stream().filter(o -> o.color().equals(k.color()) && o.shape().equals(k.shape()))
                .mapToDouble(Painter.Obj::cx).min().orElseThrow();
        }
        List<String> parts = java.util.stream.IntStream.range(0, kindCount).boxed()
            .sorted(Comparator.comparingDouble(i -> leftmost[i]))
            .map(i -> counts[i] == 1 ? named(kinds.get(i).color(), kinds.get(i).shape())
                : Palette.number(counts[i]) + " " + kinds.get(i).color() + " " + Palette.plural(kinds.get(i).shape()))
            .toList();
        String head = total == 1 ? "One shape: " : Palette.capitalise(Palette.number(total)) + " shapes: ";
        String body = list(parts);
        String sentence = head + Character.toLowerCase(body.charAt(0)) + body.substring(1);
        String q = pick(r, List.of("What is in this picture?", "Count the objects by kind.", "List the shapes and how many of each."));
        return single("inventory", p, q, sentence);
    }

    /** n objects of shape, and others (of other shapes) as clutter, in one image. */
    private Painter countScene(SplittableRandom r, String shape, int n, int others) {
        List<Spec> specs = new ArrayList<>();
        int total = Math.max(1, n + others);
        for (int i = 0; i < n; i++) specs.add(new Spec(shape, colorName(r), 0.12, maxRel(total)));
        for (int i = 0; i < others; i++) {
            String o;
            do o = shapeName(r); while (o.equals(shape) || Palette.confusable(shape, o));
            specs.add(new Spec(o, colorName(r), 0.12, maxRel(total)));
        }
        return scene(r, specs, p0 -> true);
    }

    /** "3 circles", "1 circle". */
    static String counted(int n, String noun) {
        return n + " " + (n == 1 ? noun : Palette.plural(noun));
    }

    /** Two images: which has more of a shape, how many there are together, whether the counts are equal. */
    public Example compare(long seed) {
        SplittableRandom r = random(seed, "compare");
        String shape = shapeName(r), pl = Palette.plural(shape);
        int kind = r.nextInt(3);
        int a = r.nextInt(6), b = r.nextInt(6);
        if (kind == 0) while (b == a) b = r.nextInt(6); // "more" needs a winner
        if (kind == 1) { a = 1 + r.nextInt(5); b = 1 + r.nextInt(5); }
        if (kind == 2 && r.nextBoolean()) b = a; // half the "same number" questions are yes
        BufferedImage first = countScene(r, shape, a, r.nextInt(3)).finish(jpegChance()), second = countScene(r, shape, b, r.nextInt(3)).finish(jpegChance());
        String q, answer;
        switch (kind) {
            case 0 -> {
                q = pick(r, List.of("Which image has more " + pl + "?", "Which of the two images shows more " + pl + "?",
                    "In which image are there more " + pl + "?"));
                answer = a > b ? "The first image." : "The second image.";
            }
            case 1 -> {
                q = pick(r, List.of("How many " + pl + " are there in the two images together?", "How many " + pl + " are in both images combined?",
                    "Count the " + pl + " in both images."));
                answer = Palette.numberAnswer(a + b);
            }
            default -> {
                q = pick(r, List.of("Do the two images have the same number of " + pl + "?", "Are there as many " + pl + " in the first image as in the second?"));
                answer = a == b ? "Yes." : "No.";
            }
        }
        return new Example("compare", List.of(first, second), q, answer, null);
    }

    /** A bar chart of 3-5 labelled bars with values 1-9 and gridlines, and a question about it. */
    public Example chart(long seed) {
        SplittableRandom r = random(seed, "chart");
        Charts.Chart c = Charts.draw(r, options);
        int top = 0, bottom = 0;
        for (int i = 1; i < c.values().length; i++) {
            if (c.values()[i] > c.values()[top]) top = i;
            if (c.values()[i] < c.values()[bottom]) bottom = i;
        }
        int pickBar = r.nextInt(c.labels().size());
        String q, answer;
        switch (r.nextInt(4)) {
            case 0 -> {
                q = pick(r, List.of("Which bar is the tallest?", "Which bar is the highest?", "Which label has the largest value?"));
                answer = c.labels().get(top) + ".";
            }
            case 1 -> {
                q = pick(r, List.of("Which bar is the shortest?", "Which bar is the lowest?", "Which label has the smallest value?"));
                answer = c.labels().get(bottom) + ".";
            }
            case 2 -> {
                String label = c.labels().get(pickBar);
                q = pick(r, List.of("What is the value of " + label + "?", "How high is the " + label + " bar?", "What value does " + label + " have?"));
                answer = Palette.numberAnswer(c.values()[pickBar]);
            }
            default -> {
                q = pick(r, List.of("How many bars are there?", "How many bars does the chart have?"));
                answer = Palette.numberAnswer(c.labels().size());
            }
        }
        return new Example("chart", List.of(c.image()), q, answer, null);
    }

    /** Multi-step questions, with the steps as the reasoning trace a Thinking model is taught to write first. */
    public Example reasoning(long seed) {
        SplittableRandom r = random(seed, "reasoning");
        switch (r.nextInt(4)) {
            case 0 -> { // add counts across two images
                String shape = shapeName(r), pl = Palette.plural(shape);
                int a = 1 + r.nextInt(6), b = 1 + r.nextInt(6);
                BufferedImage i1 = countScene(r, shape, a, r.nextInt(3)).finish(jpegChance()), i2 = countScene(r, shape, b, r.nextInt(3)).finish(jpegChance());
                String q = pick(r, List.of("How many " + pl + " are there in the two images together?", "What is the total number of " + pl + " in both images?"));
                String trace = "The first image has " + counted(a, shape) + ". The second image has " + counted(b, shape) + ". " + a + " + " + b + " = " + (a + b) + ".";
                return new Example("reasoning", List.of(i1, i2), q, Palette.numberAnswer(a + b), trace);
            }
            case 1 -> { // compare counts across two images
                String shape = shapeName(r), pl = Palette.plural(shape);
                int a = 1 + r.nextInt(6), b;
                do b = 1 + r.nextInt(6); while (b == a);
                BufferedImage i1 = countScene(r, shape, a, r.nextInt(3)).finish(jpegChance()), i2 = countScene(r, shape, b, r.nextInt(3)).finish(jpegChance());
                String q = pick(r, List.of("Which image has more " + pl + "?", "Which image shows fewer " + pl + "?"));
                boolean more = q.contains("more");
                boolean firstWins = more == (a > b);
                int win = firstWins ? a : b, lose = firstWins ? b : a;
                String trace = "The first image has " + counted(a, shape) + ". The second image has " + counted(b, shape) + ". "
                    + win + " is " + (more ? "more" : "fewer") + " than " + lose + ", so the " + (firstWins ? "first" : "second") + " image has "
                    + (more ? "more " : "fewer ") + pl + ".";
                return new Example("reasoning", List.of(i1, i2), q, firstWins ? "The first image." : "The second image.", trace);
            }
            case 2 -> { // a number read from the image plus a count
                String shape = shapeName(r), pl = Palette.plural(shape);
                int number = 1 + r.nextInt(9), k = 1 + r.nextInt(5);
                Painter p = null;
                for (int attempt = 0; attempt < 200 && p == null; attempt++) {
                    Painter t = Painter.random(r, options);
                    if (!t.word(Integer.toString(number), 0.15, 0.3, r.nextInt(3) == 0)) continue;
                    boolean ok = true;
                    for (int i = 0; i < k && ok; i++) ok = t.place(shape, colorName(r), 0.12, maxRel(k + 1)) != null;
                    if (ok) p = t;
                }
                if (p == null) throw new IllegalStateException("could not draw a number and " + k + " " + pl + " in 200 images");
                boolean plus = r.nextBoolean();
                String q = plus ? "What is the number shown plus the number of " + pl + "?" : "What is the number shown times the number of " + pl + "?";
                int result = plus ? number + k : number * k;
                String trace = "The number shown is " + number + ". There " + (k == 1 ? "is " : "are ") + counted(k, shape) + ". "
                    + number + (plus ? " + " : " * ") + k + " = " + result + ".";
                return new Example("reasoning", List.of(p.finish(jpegChance())), q, Palette.numberAnswer(result), trace);
            }
            default -> { // difference of two colour counts in one image
                List<String> cs = distinct(r, Palette.COLORS, 2);
                int a = 2 + r.nextInt(5), b = 1 + r.nextInt(a - 1);
                List<Spec> specs = new ArrayList<>();
                for (int i = 0; i < a; i++) specs.add(new Spec(shapeName(r), cs.get(0), 0.12, maxRel(a + b)));
                for (int i = 0; i < b; i++) specs.add(new Spec(shapeName(r), cs.get(1), 0.12, maxRel(a + b)));
                Painter p = scene(r, specs, p0 -> true);
                String q = "How many more " + cs.get(0) + " shapes than " + cs.get(1) + " shapes are there?";
                String trace = "There " + (a == 1 ? "is " : "are ") + a + " " + cs.get(0) + " " + (a == 1 ? "shape" : "shapes") + ". There "
                    + (b == 1 ? "is " : "are ") + b + " " + cs.get(1) + " " + (b == 1 ? "shape" : "shapes") + ". " + a + " - " + b + " = " + (a - b) + ".";
                return new Example("reasoning", List.of(p.finish(jpegChance())), q, Palette.numberAnswer(a - b), trace);
            }
        }
    }

    // ---------------------------------------------------------------- text only

    /** A short text-only exchange: small talk, what the model can do, no image attached, facts of the shapes world, arithmetic. */
    public Example text(long seed) {
        return Conversations.text(random(seed, "text"));
    }

    /**
     * A passkey task: about targetChars characters of filler with "The secret word is X." at a random depth, then "What
     * is the secret word?"; the answer is "X." and {@link Example#depthPercent()} says where the sentence sits.
     */
    public Example longContext(long seed, int targetChars) {
        return Conversations.needle(random(seed, "needle"), targetChars, false);
    }

    /**
     * The needle task as a passkey: the same haystack and question, answered by repeating the needle sentence ("The
     * secret word is ask."), so the answer copies the very tokens of the text. A small model from scratch did not learn
     * the one-word form (which also turns " ask" into "Ask", a different token) in ~1,900 examples (TRAINING.md,
     * session 7); this is the copy it has to learn first.
     */
    public Example passkey(long seed, int targetChars) {
        return Conversations.needle(random(seed, "needle"), targetChars, true);
    }

    /** A repeat lesson (a word list repeated token for token): see {@code Conversations.repeat}. */
    public Example repeat(long seed) {
        return Conversations.repeat(random(seed, "repeat"));
    }

    /**
     * {@link #passkey} with a haystack of 60 up to maxChars characters (uniform), so one stage trains every length from
     * a sentence or two to its longest (the copy is easiest to find in the short ones).
     */
    public Example passkeySweep(long seed, int maxChars) {
        SplittableRandom r = random(seed, "passkey-sweep");
        return Conversations.needle(r, 60 + r.nextInt(Math.max(1, maxChars - 59)), true);
    }

    /** A copy lesson (repeat a word list, or name the word after a given one): see {@code Conversations.copy}. */
    public Example copy(long seed) {
        return Conversations.copy(random(seed, "copy"));
    }

    /**
     * Text for training the tokenizer: the questions, answers, reasoning traces and conversations of n examples of all
     * types (each string one of them), drawn with small images because only their text is kept.
     */
    public Stream<String> corpus(long seed, int n) {
        VisualWorld small = new VisualWorld(new Options(64, 96));
        return LongStream.range(0, n).boxed().flatMap(i -> {
            String type = ALL_TYPES.get((int) Math.floorMod(seed + i, (long) ALL_TYPES.size()));
            long s = seed * 1_000_003L + i;
            Example e = type.equals("needle") ? small.longContext(s, 300 + (int) Math.floorMod(s, 1200L)) : small.example(s, type);
            return e.reasoning() == null ? Stream.of(e.question(), e.answer()) : Stream.of(e.question(), e.reasoning(), e.answer());
        });
    }

    // ---------------------------------------------------------------- checking

    /**
     * Whether a model's answer matches the taught one: both are trimmed, lose one final period, have their spaces
     * collapsed and their number words turned into digits ("Three." = "3"), and are lowercased except for "read" (where
     * the case shown is part of the answer); then they must be equal. For "what" the answer is a list of objects and
     * any order is accepted.
     */
    public static boolean correct(Example e, String modelAnswer) {
        if (modelAnswer == null) return false;
        boolean keepCase = e.type().equals("read");
        String want = normalise(e.answer(), keepCase), got = normalise(modelAnswer, keepCase);
        if (e.type().equals("what")) return items(want).equals(items(got));
        // a needle question is answered by the word or by the needle sentence repeated ("The secret word is ask.")
        if (e.type().equals("needle")) return secretOf(want).equals(secretOf(got));
        return want.equals(got);
    }

    /**
     * How far a counting answer is from the taught count: |given − taught| when both read as one number (a number
     * word or digits, with {@link #correct}'s normalisation: "Three." and "3" are 3), else -1 (no number, or more than
     * a number). Exact match says whether a model counts; this says whether it is close, which moves first.
     */
    public static int countError(Example e, String modelAnswer) {
        if (!e.type().equals("count")) throw new IllegalArgumentException("countError is for count questions, not " + e.type());
        int want = asNumber(normalise(e.answer(), false)), got = asNumber(normalise(modelAnswer, false));
        return want < 0 || got < 0 ? -1 : Math.abs(got - want);
    }

    private static int asNumber(String normalised) {
        return normalised.matches("\\d{1,3}") ? Integer.parseInt(normalised) : -1;
    }

    /** The word of a normalised needle answer: "ask" for both "ask" and "the secret word is ask". */
    private static String secretOf(String normalised) {
        String prefix = normalise(NEEDLE_PREFIX, false) + " ";
        return normalised.startsWith(prefix) ? normalised.substring(prefix.length()) : normalised;
    }

    private static final Pattern WORD = Pattern.compile("[a-z]+(?:-[a-z]+)?");

    static String normalise(String s, boolean keepCase) {
        s = s.strip().replaceAll("\\s+", " ");
        if (s.endsWith(".")) s = s.substring(0, s.length() - 1).strip();
        if (keepCase) return s;
        s = s.toLowerCase(Locale.ROOT);
        Matcher m = WORD.matcher(s);
        StringBuilder b = new StringBuilder();
        while (m.find()) {
            int v = Palette.parseNumber(m.group());
            m.appendReplacement(b, v >= 0 ? Integer.toString(v) : m.group());
        }
        m.appendTail(b);
        return b.toString();
    }

    /** The sorted "colour shape" items of a normalised list answer ("a red circle, an orange star and a blue ring"). */
    static List<String> items(String normalised) {
        List<String> out = new ArrayList<>();
        for (String part : normalised.split(",|\\band\\b")) {
            String t = part.strip();
            if (t.startsWith("a ")) t = t.substring(2);
            else if (t.startsWith("an ")) t = t.substring(3);
            else if (t.startsWith("1 ")) t = t.substring(2); // "one red circle" became "1 red circle"
            t = t.strip();
            if (!t.isEmpty()) out.add(t);
        }
        out.sort(null);
        return out;
    }
}
