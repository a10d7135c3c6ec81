package dev.kimivl.train;

import java.awt.Color;
import java.awt.Graphics2D;
import java.awt.RenderingHints;
import java.awt.image.BufferedImage;
import java.util.Locale;
import java.util.Random;

/**
 * The synthetic task for training a small model end to end (kimivl train-shapes): one filled shape (circle, square or triangle) of one
 * colour (red, green, blue or yellow) on a light grey background, 36-76 px at a random place, and a question about it
 * with its one right answer. Deterministic for a seed, so a training run can be reproduced and an evaluation can draw
 * fresh images the model never saw.
 */
public final class ShapesData {
    public static final String[] SHAPES = {"circle", "square", "triangle"};
    public static final String[] COLORS = {"red", "green", "blue", "yellow"};
    private static final Color[] RGB = {new Color(220, 40, 40), new Color(40, 170, 60), new Color(40, 70, 220), new Color(235, 200, 30)};
    public static final String[] QUESTIONS = {"What is in this picture?", "What shape is it?", "What color is it?"};

    /** Side of the images in pixels: 8×8 patches of 14, 16 image tokens after the 2×2 merge. */
    public static final int SIZE = 112;

    public record Example(BufferedImage image, String shape, String color, String question, String answer) {}

    private ShapesData() {}

    /** An image of the given shape and colour, placed and sized by rnd. */
    public static BufferedImage draw(String shape, String color, Random rnd) {
        BufferedImage im = new BufferedImage(SIZE, SIZE, BufferedImage.TYPE_INT_RGB);
        Graphics2D g = im.createGraphics();
        g.setRenderingHint(RenderingHints.KEY_ANTIALIASING, RenderingHints.VALUE_ANTIALIAS_ON);
        int shade = 225 + rnd.nextInt(31);
        g.setColor(new Color(shade, shade, shade));
        g.fillRect(0, 0, SIZE, SIZE);
        int s = 36 + rnd.nextInt(41), x = 4 + rnd.nextInt(SIZE - s - 7), y = 4 + rnd.nextInt(SIZE - s - 7);
        g.setColor(RGB[indexOf(COLORS, color)]);
        switch (shape) {
            case "circle" -> g.fillOval(x, y, s, s);
            case "square" -> g.fillRect(x, y, s, s);
            case "triangle" -> g.fillPolygon(new int[]{x, x + s / 2, x + s}, new int[]{y + s, y, y + s}, 3);
            default -> throw new IllegalArgumentException("unknown shape " + shape);
        }
        g.dispose();
        return im;
    }

    /** A random example: shape, colour, question and its answer ("A red circle.", "A circle.", "Red."). */
    public static Example next(Random rnd) {
        String shape = SHAPES[rnd.nextInt(SHAPES.length)], color = COLORS[rnd.nextInt(COLORS.length)];
        String question = QUESTIONS[rnd.nextInt(QUESTIONS.length)];
        return new Example(draw(shape, color, rnd), shape, color, question, answer(question, shape, color));
    }

    /** The answer the model is taught for a question about a shape of a colour. */
    public static String answer(String question, String shape, String color) {
        return switch (indexOf(QUESTIONS, question)) {
            case 0 -> "A " + color + " " + shape + ".";
            case 1 -> "A " + shape + ".";
            default -> color.substring(0, 1).toUpperCase(Locale.ROOT) + color.substring(1) + ".";
        };
    }

    private static int indexOf(String[] a, String s) {
        for (int i = 0; i < a.length; i++) if (a[i].equals(s)) return i;
        throw new IllegalArgumentException("'" + s + "' is not one of " + String.join(", ", a));
    }
}
