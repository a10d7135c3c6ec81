package dev.kimivl.train.data;

import java.awt.Color;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;

/**
 * The names of the visual world: shapes, colours with their RGB values, and number words; and the two case helpers
 * the worded answers use (public for the probes that reword them).
 */
public final class Palette {
    static final List<String> SHAPES = List.of("circle", "square", "rectangle", "triangle", "star", "hexagon", "ring");
    static final List<String> COLORS = List.of("red", "green", "blue", "yellow", "orange", "purple", "black", "white", "pink", "brown", "grey");
    // Chosen so that every pair is at least 100 apart in RGB (checked by PaletteTest): a model must be able to name
    // the colour from a JPEG-compressed, slightly jittered pixel.
    private static final Color[] RGB = {
        new Color(220, 30, 30), new Color(30, 160, 50), new Color(30, 60, 220), new Color(250, 225, 20),
        new Color(245, 125, 10), new Color(130, 40, 180), new Color(15, 15, 15), new Color(250, 250, 250),
        new Color(250, 130, 200), new Color(125, 70, 25), new Color(128, 128, 128)};
    /** The largest per-channel jitter of an object colour: small enough that a colour never drifts towards another name. */
    static final int JITTER = 12;

    private static final String[] ONES = {"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
        "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"};
    private static final String[] TENS = {"", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"};

    private Palette() {}

    static Color rgb(String color) {
        int i = COLORS.indexOf(color);
        if (i < 0) throw new IllegalArgumentException("unknown colour " + color);
        return RGB[i];
    }

    static Color jitter(Color c, SplittableRandom r) {
        return new Color(clamp(c.getRed() + r.nextInt(-JITTER, JITTER + 1)), clamp(c.getGreen() + r.nextInt(-JITTER, JITTER + 1)),
            clamp(c.getBlue() + r.nextInt(-JITTER, JITTER + 1)));
    }

    static int clamp(int v) {
        return Math.max(0, Math.min(255, v));
    }

    /** Euclidean distance in RGB. */
    static double distance(int rgb1, int rgb2) {
        int dr = ((rgb1 >> 16) & 255) - ((rgb2 >> 16) & 255), dg = ((rgb1 >> 8) & 255) - ((rgb2 >> 8) & 255), db = (rgb1 & 255) - (rgb2 & 255);
        return Math.sqrt(dr * dr + dg * dg + db * db);
    }

    /**
     * Whether a question naming target becomes unclear when other is also in the image: a ring is an outlined circle,
     * and a square is a rectangle too ("How many rectangles?" with a square present has two defensible answers).
     */
    static boolean confusable(String target, String other) {
        return target.equals("circle") && other.equals("ring") || target.equals("rectangle") && other.equals("square");
    }

    static String plural(String noun) {
        return noun + "s"; // every shape name takes a plain -s
    }

    /** "a" or "an" for the word that follows. */
    static String article(String next) {
        return "aeiou".indexOf(next.charAt(0)) >= 0 ? "an" : "a";
    }

    /** The English word for 0..99, e.g. "twenty-one". */
    static String number(int n) {
        if (n < 0 || n > 99) throw new IllegalArgumentException("no word for " + n);
        if (n < 20) return ONES[n];
        return TENS[n / 10] + (n % 10 == 0 ? "" : "-" + ONES[n % 10]);
    }

    /** The number word with a capital and a period, the form of a counting answer: "Three." */
    static String numberAnswer(int n) {
        return capitalise(number(n)) + ".";
    }

    /** The value of a number word 0..99 ("three", "twenty-one"), or -1. */
    static int parseNumber(String word) {
        for (int i = 0; i < ONES.length; i++) if (ONES[i].equals(word)) return i;
        for (int t = 2; t < TENS.length; t++) {
            if (TENS[t].equals(word)) return t * 10;
            if (word.startsWith(TENS[t] + "-")) {
                String rest = word.substring(TENS[t].length() + 1);
                for (int i = 1; i < 10; i++) if (ONES[i].equals(rest)) return t * 10 + i;
            }
        }
        return -1;
    }

    /** "at the top left" → "At the top left". */
    public static String capitalise(String s) {
        return s.isEmpty() ? s : s.substring(0, 1).toUpperCase(Locale.ROOT) + s.substring(1);
    }

    /** "At the top left" → "at the top left". */
    public static String lowerFirst(String s) {
        return s.isEmpty() ? s : s.substring(0, 1).toLowerCase(Locale.ROOT) + s.substring(1);
    }
}
