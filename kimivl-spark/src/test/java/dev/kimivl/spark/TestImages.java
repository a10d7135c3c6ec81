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

    /** A PNG cut in the middle of its pixel data: decoders fail on it. */
    static Path corrupt(Path dir, Path goodPng) throws IOException {
        byte[] b = Files.readAllBytes(goodPng);
        Path f = dir.resolve("corrupt.png");
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
