package dev.kimivl.spark;

import javax.imageio.ImageIO;
import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.Graphics2D;
import java.awt.RenderingHints;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;

/** Small generated pictures (shapes of random colours, sizes and aspect ratios) as PNG and JPEG files, plus bad ones. */
final class TestImages {
    private TestImages() {}

    /** Writes {@code n} images img_000.png, img_001.jpg, … into dir and returns their paths. */
    static List<Path> write(Path dir, int n, long seed) throws IOException {
        Random rnd = new Random(seed);
        List<Path> out = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            int w = 28 + rnd.nextInt(100), h = 28 + rnd.nextInt(100);
            BufferedImage img = new BufferedImage(w, h, BufferedImage.TYPE_INT_RGB);
            Graphics2D g = img.createGraphics();
            g.setRenderingHint(RenderingHints.KEY_ANTIALIASING, RenderingHints.VALUE_ANTIALIAS_ON);
            g.setColor(new Color(rnd.nextInt(0x1000000)));
            g.fillRect(0, 0, w, h);
            for (int k = 0; k < 1 + rnd.nextInt(4); k++) {
                g.setColor(new Color(rnd.nextInt(0x1000000)));
                int x = rnd.nextInt(w), y = rnd.nextInt(h), s = 5 + rnd.nextInt(Math.min(w, h));
                switch (rnd.nextInt(3)) {
                    case 0 -> g.fillOval(x - s / 2, y - s / 2, s, s);
                    case 1 -> g.fillRect(x - s / 2, y - s / 2, s, s / 2 + 1);
                    default -> { g.setStroke(new BasicStroke(3)); g.drawLine(0, y, w, x % h); }
                }
            }
            g.dispose();
            String ext = i % 3 == 2 ? "jpg" : "png";
            Path f = dir.resolve(String.format("img_%03d.%s", i, ext));
            if (!ImageIO.write(img, ext.equals("jpg") ? "jpeg" : "png", f.toFile())) throw new IOException("no writer for " + ext);
            out.add(f);
        }
        return out;
    }

    /** A generated picture of one shape and what it shows (for questions the default model was trained on). */
    record Shape(Path file, String colour, String shape) {}

    // the default model's visual world: these colours on a plain light ground (kimivl-train's Palette; white and grey
    // left out, they hardly stand out from the ground)
    private static final String[] COLOURS = {"red", "green", "blue", "yellow", "orange", "purple", "black", "pink", "brown"};
    private static final Color[] RGB = {new Color(220, 30, 30), new Color(30, 160, 50), new Color(30, 60, 220), new Color(250, 225, 20),
        new Color(245, 125, 10), new Color(130, 40, 180), new Color(15, 15, 15), new Color(250, 130, 200), new Color(125, 70, 25)};
    private static final String[] SHAPES = {"circle", "square", "triangle", "rectangle"};

    /**
     * Writes {@code n} pictures shape_000.png, shape_001.png, shape_002.jpg, …: one large shape of one colour, 64-160 px,
     * on a plain light ground (the kind of picture the default model kimivl-nano-instruct answers about).
     */
    static List<Shape> shapes(Path dir, int n, long seed) throws IOException {
        Random rnd = new Random(seed);
        List<Shape> out = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            int w = 64 + rnd.nextInt(97), h = 64 + rnd.nextInt(97);
            int c = rnd.nextInt(COLOURS.length);
            String shape = SHAPES[rnd.nextInt(SHAPES.length)];
            BufferedImage img = new BufferedImage(w, h, BufferedImage.TYPE_INT_RGB);
            Graphics2D g = img.createGraphics();
            g.setRenderingHint(RenderingHints.KEY_ANTIALIASING, RenderingHints.VALUE_ANTIALIAS_ON);
            int ground = 232 + rnd.nextInt(24);
            g.setColor(new Color(ground, ground, ground));
            g.fillRect(0, 0, w, h);
            g.setColor(RGB[c]);
            int side = (int) (Math.min(w, h) * (0.55 + 0.3 * rnd.nextDouble()));
            int x = (w - side) / 2, y = (h - side) / 2;
            switch (shape) {
                case "circle" -> g.fillOval(x, y, side, side);
                case "square" -> g.fillRect(x, y, side, side);
                case "triangle" -> g.fillPolygon(new int[]{x, x + side / 2, x + side}, new int[]{y + side, y, y + side}, 3);
                default -> g.fillRect(x, y + side / 4, side, side / 2);       // rectangle: twice as wide as high
            }
            g.dispose();
            String ext = i % 3 == 2 ? "jpg" : "png";
            Path f = dir.resolve(String.format("shape_%03d.%s", i, ext));
            if (!ImageIO.write(img, ext.equals("jpg") ? "jpeg" : "png", f.toFile())) throw new IOException("no writer for " + ext);
            out.add(new Shape(f, COLOURS[c], shape));
        }
        return out;
    }

    /** A PNG cut in the middle of its pixel data: decoders fail on it. */
    static Path corrupt(Path dir, Path goodPng) throws IOException {
        return truncated(dir, goodPng, "corrupt.png");
    }

    /** The first half of an image file, under another name: its header is right, its data ends early. */
    static Path truncated(Path dir, Path good, String name) throws IOException {
        byte[] b = Files.readAllBytes(good);
        Path f = dir.resolve(name);
        Files.write(f, Arrays.copyOf(b, Math.max(60, b.length / 2)));
        return f;
    }

    /** A plain image of w×h pixels (to go over a pixel limit). */
    static Path plain(Path dir, String name, int w, int h) throws IOException {
        BufferedImage img = new BufferedImage(w, h, BufferedImage.TYPE_INT_RGB);
        Path f = dir.resolve(name);
        ImageIO.write(img, "png", f.toFile());
        return f;
    }
}
