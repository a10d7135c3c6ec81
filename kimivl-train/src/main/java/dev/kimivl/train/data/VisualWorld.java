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
    public record Options(int minSide, int maxSide) {
        public Options {
            if (minSide < 32 || maxSide < minSide) throw new IllegalArgumentException("need 32 <= minSide <= maxSide, got " + minSide + ", " + maxSide);
        }

        public static Options defaults() {
            return new Options(64, 512);
        }
    }

    private static final List<String> VQA_TYPES = List.of("what", "color", "shape", "count", "position", "size", "read");
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
        for (int attempt = 0; attempt < 200; attempt++) {
            Painter p = Painter.random(r, options);
            boolean placed = true;
            for (Spec s : specs) {
                if (p.place(s.shape(), s.color(), s.lo(), s.hi()) == null) {
                    placed = false;
                    break;
                }
            }
            if (placed && ok.test(p)) return p;
        }
        throw new IllegalStateException("could not draw " + specs + " in 200 images of " + options);
    }

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
        return new Example(type, List.of(p.finish(JPEG_CHANCE)), question, answer, null);
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
        List<String> shapes = distinct(r, Palette.SHAPES, n);
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
                    do o = shapeName(r); while (o.equals(s));
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
        Painter.Obj a = p.objects.get(0), b = p.objects.get(1);
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
        return single("position", p, q, answer);
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
        return want.equals(got);
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
