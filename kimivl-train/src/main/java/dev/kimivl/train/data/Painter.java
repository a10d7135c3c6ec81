package dev.kimivl.train.data;

import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.Font;
import java.awt.GradientPaint;
import java.awt.Graphics2D;
import java.awt.RenderingHints;
import java.awt.Shape;
import java.awt.font.FontRenderContext;
import java.awt.font.GlyphVector;
import java.awt.geom.AffineTransform;
import java.awt.geom.Ellipse2D;
import java.awt.geom.Line2D;
import java.awt.geom.Path2D;
import java.awt.geom.Rectangle2D;
import java.awt.geom.RoundRectangle2D;
import java.awt.image.BufferedImage;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import javax.imageio.IIOImage;
import javax.imageio.ImageIO;
import javax.imageio.ImageWriteParam;
import javax.imageio.ImageWriter;
import javax.imageio.stream.MemoryCacheImageOutputStream;

/**
 * One image being drawn: a random size and background, then objects placed one by one so that they neither overlap nor
 * vanish into the background. Every choice comes from the SplittableRandom it is given, so an image is a function of
 * its seed.
 */
final class Painter {
    /** An object as drawn: its names, where it is, and the area it covers (used for "size" and "position" answers). */
    record Obj(String shape, String color, double cx, double cy, double size, double area, Rectangle2D bounds) {}

    /** A word as drawn: its text, colour and outline (tests check that the outline really holds ink). */
    record Text(String word, Color color, Shape outline) {}

    static final String[] BACKGROUNDS = {"plain", "noisy", "gradient", "rainbow"};
    /** A background pixel nearer than this (RGB distance) to an object's colour counts as "no contrast". */
    static final double NEAR = 90;
    /** The share of near pixels under an object (and its 2 px halo) above which the placement is refused. */
    static final double MAX_NEAR_SHARE = 0.02;

    /** The least brightness difference between a word and what it is written on. */
    static final double TEXT_LUMA = 60;

    final SplittableRandom rnd;
    final BufferedImage image;
    final int width, height, shortSide;
    final String background;
    private final boolean named;
    /** The palette name of a plain or noisy background when the painter was asked for a named one, else null. */
    String bgName;
    private final Graphics2D g;
    private final List<Rectangle2D> taken = new ArrayList<>();
    final List<Obj> objects = new ArrayList<>();
    /** Each object's filled outline, in {@link #objects} order: the shape map of the finished image ({@link TokenShapes}). */
    private final List<Shape> outlines = new ArrayList<>();
    Text text;

    Painter(SplittableRandom rnd, int width, int height, String background, boolean antialias) {
        this(rnd, width, height, background, antialias, false);
    }

    /** named: plain and noisy backgrounds take a palette colour, whose name bgName then holds (captions mention it). */
    Painter(SplittableRandom rnd, int width, int height, String background, boolean antialias, boolean named) {
        this.rnd = rnd;
        this.named = named;
        this.width = width;
        this.height = height;
        this.shortSide = Math.min(width, height);
        this.background = background;
        image = new BufferedImage(width, height, BufferedImage.TYPE_INT_RGB);
        g = image.createGraphics();
        Object aa = antialias ? RenderingHints.VALUE_ANTIALIAS_ON : RenderingHints.VALUE_ANTIALIAS_OFF;
        g.setRenderingHint(RenderingHints.KEY_ANTIALIASING, aa);
        g.setRenderingHint(RenderingHints.KEY_TEXT_ANTIALIASING, antialias ? RenderingHints.VALUE_TEXT_ANTIALIAS_ON : RenderingHints.VALUE_TEXT_ANTIALIAS_OFF);
        g.setRenderingHint(RenderingHints.KEY_STROKE_CONTROL, RenderingHints.VALUE_STROKE_PURE);
        paintBackground();
    }

    /** Paints the whole image one colour (tests use it to set up a background they know). */
    void fill(Color c) {
        g.setColor(c);
        g.fillRect(0, 0, width, height);
    }

    /** A painter with a random size (sides in [minSide, maxSide], aspect 1:2..2:1), background and anti-aliasing. */
    static Painter random(SplittableRandom rnd, VisualWorld.Options o) {
        return random(rnd, o, false);
    }

    /** As random(rnd, o), and with named: a background that can be named in a caption and no distractor lines. */
    static Painter random(SplittableRandom rnd, VisualWorld.Options o, boolean named) {
        // log-uniform sides, so that small images are as common as large ones relative to their size
        double side = Math.exp(rnd.nextDouble(Math.log(o.minSide()), Math.log(o.maxSide()) + 1e-9));
        double aspect = Math.exp(rnd.nextDouble(Math.log(0.5), Math.log(2.0)));
        int w = (int) Math.round(side * Math.sqrt(aspect)), h = (int) Math.round(side / Math.sqrt(aspect));
        w = Math.max(o.minSide(), Math.min(o.maxSide(), w));
        h = Math.max(o.minSide(), Math.min(o.maxSide(), h));
        String bg = BACKGROUNDS[rnd.nextInt(BACKGROUNDS.length)];
        boolean aa = rnd.nextInt(4) != 0;
        if (o.easy()) { bg = "plain"; aa = true; }
        Painter p = new Painter(rnd, w, h, bg, aa, named);
        if (o.easy()) {
            // a neutral grey ground, as a first lesson: the object is whatever is not grey (on a random plain colour
            // a model from scratch must first learn figure and ground, and did not within 2,000 examples)
            // light or dark, so that white and black objects both have a ground they can be placed on
            int grey = rnd.nextInt(3) != 0 ? 205 + rnd.nextInt(45) : 15 + rnd.nextInt(45);   // (white and black together: VisualWorld.scene)
            p.fill(new Color(grey, grey, grey));
        }
        if (!named && rnd.nextInt(4) == 0 && !o.easy()) p.distractorLines(1 + rnd.nextInt(2));
        return p;
    }

    private Color randomColor() {
        return new Color(rnd.nextInt(256), rnd.nextInt(256), rnd.nextInt(256));
    }

    private Color baseColor() {
        if (!named) return randomColor();
        bgName = Palette.COLORS.get(rnd.nextInt(Palette.COLORS.size()));
        return Palette.jitter(Palette.rgb(bgName), rnd);
    }

    private void paintBackground() {
        switch (background) {
            case "plain" -> {
                g.setColor(baseColor());
                g.fillRect(0, 0, width, height);
            }
            case "noisy" -> {
                Color base = baseColor();
                int amp = 8 + rnd.nextInt(28);
                for (int y = 0; y < height; y++)
                    for (int x = 0; x < width; x++) {
                        int n = rnd.nextInt(-amp, amp + 1); // luminance noise plus a little chroma noise, like a camera
                        int r = Palette.clamp(base.getRed() + n + rnd.nextInt(-4, 5)), gr = Palette.clamp(base.getGreen() + n + rnd.nextInt(-4, 5));
                        int b = Palette.clamp(base.getBlue() + n + rnd.nextInt(-4, 5));
                        image.setRGB(x, y, (r << 16) | (gr << 8) | b);
                    }
            }
            case "gradient" -> {
                double a = rnd.nextDouble(2 * Math.PI), cx = width / 2.0, cy = height / 2.0, rx = Math.cos(a) * width / 2, ry = Math.sin(a) * height / 2;
                g.setPaint(new GradientPaint((float) (cx - rx), (float) (cy - ry), randomColor(), (float) (cx + rx), (float) (cy + ry), randomColor()));
                g.fillRect(0, 0, width, height);
            }
            case "rainbow" -> {
                // hue runs along one direction (like examples/shapes.png), saturation and brightness along the other
                double a = rnd.nextDouble(2 * Math.PI), ca = Math.cos(a), sa = Math.sin(a);
                float h0 = (float) rnd.nextDouble(), span = (float) rnd.nextDouble(0.5, 1.2);
                float s0 = (float) rnd.nextDouble(0.5, 1.0), s1 = (float) rnd.nextDouble(0.3, 1.0);
                float b0 = (float) rnd.nextDouble(0.7, 1.0), b1 = (float) rnd.nextDouble(0.6, 1.0);
                double diag = Math.hypot(width, height);
                for (int y = 0; y < height; y++)
                    for (int x = 0; x < width; x++) {
                        double dx = x - width / 2.0, dy = y - height / 2.0;
                        float t = (float) ((dx * ca + dy * sa) / diag + 0.5), u = (float) ((-dx * sa + dy * ca) / diag + 0.5);
                        image.setRGB(x, y, Color.HSBtoRGB(h0 + span * t, s0 + (s1 - s0) * u, b0 + (b1 - b0) * u) & 0xFFFFFF);
                    }
            }
            default -> throw new IllegalArgumentException("unknown background " + background);
        }
    }

    /** Straight lines across the image, drawn before the objects: clutter that is not an object and must not be counted. */
    void distractorLines(int n) {
        for (int i = 0; i < n; i++) {
            Color c = switch (rnd.nextInt(4)) {
                case 0 -> Color.WHITE;
                case 1 -> Color.BLACK;
                case 2 -> new Color(160, 160, 160);
                default -> randomColor();
            };
            g.setColor(c);
            g.setStroke(new BasicStroke((float) Math.max(1, shortSide * rnd.nextDouble(0.01, 0.04))));
            double[] p = edgePoint(), q = edgePoint();
            g.draw(new Line2D.Double(p[0], p[1], q[0], q[1]));
        }
    }

    private double[] edgePoint() {
        return switch (rnd.nextInt(4)) {
            case 0 -> new double[]{rnd.nextDouble(width), 0};
            case 1 -> new double[]{rnd.nextDouble(width), height};
            case 2 -> new double[]{0, rnd.nextDouble(height)};
            default -> new double[]{width, rnd.nextDouble(height)};
        };
    }

    /** The outline of a shape of nominal size s (the side of its square box) centred at (cx, cy), turned by rot radians. */
    static Shape outline(String shape, double cx, double cy, double s, double rot, boolean vertical, double ringWidth) {
        double h = s / 2;
        Shape base = switch (shape) {
            case "circle" -> new Ellipse2D.Double(-h, -h, s, s);
            case "square" -> new Rectangle2D.Double(-h * 0.9, -h * 0.9, s * 0.9, s * 0.9);
            case "rectangle" -> vertical ? new Rectangle2D.Double(-s * 0.25, -h, s * 0.5, s) : new Rectangle2D.Double(-h, -s * 0.25, s, s * 0.5); // 2:1, never mistaken for a square
            case "triangle" -> polygon(3, h, -Math.PI / 2);
            case "hexagon" -> polygon(6, h, 0);
            case "star" -> star(h);
            case "ring" -> new BasicStroke((float) ringWidth).createStrokedShape(new Ellipse2D.Double(-h + ringWidth / 2, -h + ringWidth / 2, s - ringWidth, s - ringWidth));
            default -> throw new IllegalArgumentException("unknown shape " + shape);
        };
        AffineTransform t = AffineTransform.getTranslateInstance(cx, cy);
        t.rotate(rot);
        return t.createTransformedShape(base);
    }

    private static Shape polygon(int n, double r, double start) {
        Path2D.Double p = new Path2D.Double();
        for (int i = 0; i < n; i++) {
            double a = start + 2 * Math.PI * i / n;
            if (i == 0) p.moveTo(r * Math.cos(a), r * Math.sin(a));
            else p.lineTo(r * Math.cos(a), r * Math.sin(a));
        }
        p.closePath();
        return p;
    }

    private static Shape star(double r) {
        Path2D.Double p = new Path2D.Double();
        for (int i = 0; i < 10; i++) {
            double a = -Math.PI / 2 + Math.PI * i / 5, rr = i % 2 == 0 ? r : r * 0.45;
            if (i == 0) p.moveTo(rr * Math.cos(a), rr * Math.sin(a));
            else p.lineTo(rr * Math.cos(a), rr * Math.sin(a));
        }
        p.closePath();
        return p;
    }

    /** The area of a shape, measured on its outline (ring: only the band). */
    static double area(Shape s) {
        Rectangle2D b = s.getBounds2D();
        int n = 0, total = 0;
        double step = Math.max(b.getWidth(), b.getHeight()) / 40;
        for (double y = b.getMinY() + step / 2; y < b.getMaxY(); y += step)
            for (double x = b.getMinX() + step / 2; x < b.getMaxX(); x += step) {
                total++;
                if (s.contains(x, y)) n++;
            }
        return total == 0 ? 0 : b.getWidth() * b.getHeight() * n / total;
    }

    /** The share of the image's pixels under shape (grown by a halo of `halo` px) within NEAR of colour c. */
    static double nearShare(BufferedImage im, Shape shape, double halo, Color c) {
        return nearShare(im, shape, halo, c, NEAR, 0);
    }

    /** Perceived brightness 0..255 (Rec. 601 weights). */
    static double luma(int rgb) {
        return 0.299 * ((rgb >> 16) & 255) + 0.587 * ((rgb >> 8) & 255) + 0.114 * (rgb & 255);
    }

    /**
     * The share of pixels under shape (grown by halo px) that are within near (RGB distance) of c or within lumaNear of
     * its brightness: thin glyph strokes need brightness contrast too, which the RGB distance alone does not promise.
     */
    static double nearShare(BufferedImage im, Shape shape, double halo, Color c, double nearRgb, double lumaNear) {
        // rasterise the shape and its halo into a mask rather than asking Area.contains per pixel: glyph outlines and
        // stroked halos make Area slow, and this runs for every placement try
        Rectangle2D b = shape.getBounds2D();
        int x0 = Math.max(0, (int) Math.floor(b.getMinX() - halo)), x1 = Math.min(im.getWidth() - 1, (int) Math.ceil(b.getMaxX() + halo));
        int y0 = Math.max(0, (int) Math.floor(b.getMinY() - halo)), y1 = Math.min(im.getHeight() - 1, (int) Math.ceil(b.getMaxY() + halo));
        if (x1 < x0 || y1 < y0) return 1;
        BufferedImage mask = new BufferedImage(x1 - x0 + 1, y1 - y0 + 1, BufferedImage.TYPE_BYTE_GRAY);
        Graphics2D m = mask.createGraphics();
        m.translate(-x0, -y0);
        m.setColor(Color.WHITE);
        m.fill(shape);
        if (halo > 0) {
            m.setStroke(new BasicStroke((float) (2 * halo)));
            m.draw(shape);
        }
        m.dispose();
        // the mask's bytes and the image's pixels copied out as stored (a per-pixel getSample / getRGB went through the
        // colour model each time: a fifth of the data thread's time in a busy stage); the same pixels, the same counts
        int w = x1 - x0 + 1, h = y1 - y0 + 1;
        byte[] inside = (byte[]) mask.getRaster().getDataElements(0, 0, w, h, null);
        int[] pixels = im.getType() == BufferedImage.TYPE_INT_RGB
                ? (int[]) im.getRaster().getDataElements(x0, y0, w, h, null)        // 0x00RRGGBB, as getRGB without alpha
                : im.getRGB(x0, y0, w, h, null, 0, w);
        int under = 0, nearCount = 0, rgb = c.getRGB();
        double cl = luma(rgb);
        for (int y = 0; y < h; y++) {
            for (int x = 0; x < w; x++) {
                if (inside[y * w + x] == 0) continue;
                under++;
                int px = pixels[y * w + x];
                if (Palette.distance(px, rgb) < nearRgb || Math.abs(luma(px) - cl) < lumaNear) nearCount++;
            }
        }
        return under == 0 ? 1 : (double) nearCount / under;
    }

    /** The smallest object side in pixels: 12% of the shorter side, and never under 10 px. */
    double minSize() {
        return Math.max(0.12 * shortSide, 10);
    }

    /**
     * Places an object of a named shape and colour with nominal size in [lo, hi] (fractions of the shorter side), not
     * overlapping any placed object and on a background that contrasts with its colour. Returns null when 300 tries
     * fail or 25 clash with the background (the caller then starts the whole image again).
     */
    Obj place(String shape, String color, double lo, double hi) {
        return placeIn(shape, color, lo, hi, new Rectangle2D.Double(0, 0, width, height));
    }

    /**
     * As {@link #place}, with the whole object (and its margin) inside {@code box}: a grounding lesson puts each object
     * in one cell of the image's 3 × 3 grid ({@link VisualWorld#groundingOnGrid}).
     */
    Obj placeIn(String shape, String color, double lo, double hi, Rectangle2D box) {
        Color c = Palette.jitter(Palette.rgb(color), rnd);
        double min = minSize(), max = Math.max(min, hi * shortSide), low = Math.max(min, lo * shortSide);
        double rot = switch (shape) {
            case "circle", "ring" -> 0;
            case "star", "triangle", "hexagon" -> rnd.nextDouble(-0.25, 0.25);
            default -> rnd.nextDouble(-0.15, 0.15); // square and rectangle stay upright enough to tell apart
        };
        boolean vertical = rnd.nextInt(3) == 0;
        boolean edged = !shape.equals("ring") && rnd.nextInt(4) == 0;
        float edge = (float) Math.max(1, shortSide * rnd.nextDouble(0.005, 0.02));
        double ringShare = rnd.nextDouble(0.12, 0.22);
        double margin = Math.max(2, 0.03 * shortSide);
        int clashes = 0;
        for (int attempt = 0; attempt < 300; attempt++) {
            // shrink the choice of size as tries fail, so that crowded images still fill
            double s = low + (max - low) * rnd.nextDouble() * (1 - attempt / 330.0);
            Shape probe = outline(shape, 0, 0, s, rot, vertical, Math.max(2, s * ringShare));
            Rectangle2D pb = probe.getBounds2D();
            double xlo = box.getMinX() + margin - pb.getMinX(), xhi = box.getMaxX() - margin - pb.getMaxX();
            double ylo = box.getMinY() + margin - pb.getMinY(), yhi = box.getMaxY() - margin - pb.getMaxY();
            if (xhi <= xlo || yhi <= ylo) continue;
            double cx = rnd.nextDouble(xlo, xhi), cy = rnd.nextDouble(ylo, yhi);
            Shape sh = outline(shape, cx, cy, s, rot, vertical, Math.max(2, s * ringShare));
            Rectangle2D b = sh.getBounds2D();
            Rectangle2D grown = new Rectangle2D.Double(b.getX() - margin, b.getY() - margin, b.getWidth() + 2 * margin, b.getHeight() + 2 * margin);
            if (taken.stream().anyMatch(grown::intersects)) continue;
            if (nearShare(image, sh, 2, c) > MAX_NEAR_SHARE) {
                // a colour that clashes with the background in 25 places will keep clashing: a new image is cheaper
                if (++clashes == 25) return null;
                continue;
            }
            g.setColor(c);
            g.fill(sh);
            if (edged) {
                g.setColor(c.darker());
                g.setStroke(new BasicStroke(edge));
                g.draw(sh);
            }
            taken.add(grown);
            // a ring is as big as the disc it encloses, as a person would judge it
            double area = area(shape.equals("ring") ? outline("circle", cx, cy, s, 0, false, 0) : sh);
            Obj o = new Obj(shape, color, cx, cy, s, area, b);
            objects.add(o);
            outlines.add(sh);
            return o;
        }
        return null;
    }

    /**
     * Draws a word in one of the fonts with a cap height of capLo..capHi of the shorter side (shrunk down to 10% when the
     * word would not fit across), optionally on a sign plate; false when it cannot be placed legibly.
     */
    boolean word(String word, double capLo, double capHi, boolean sign) {
        List<Font> fonts = Fonts.all();
        Font base = fonts.get(rnd.nextInt(fonts.size()));
        FontRenderContext frc = new FontRenderContext(null, true, true);
        double capPerPoint = base.deriveFont(100f).createGlyphVector(frc, "H").getVisualBounds().getHeight() / 100;
        double cap = shortSide * rnd.nextDouble(capLo, capHi);
        double rot = rnd.nextInt(3) == 0 ? rnd.nextDouble(-0.15, 0.15) : 0;
        for (int attempt = 0; attempt < 60; attempt++) {
            Font f = base.deriveFont((float) (cap / capPerPoint));
            GlyphVector gv = f.createGlyphVector(frc, word);
            Rectangle2D vb = gv.getVisualBounds();
            double pad = sign ? cap * 0.5 : 0, margin = Math.max(2, 0.03 * shortSide);
            double w = vb.getWidth() + 2 * pad, h = vb.getHeight() + 2 * pad;
            if (w > width - 2 * margin || h > height - 2 * margin) {
                if (cap * 0.92 < 0.10 * shortSide) return false;
                cap *= 0.92;
                continue;
            }
            double x = rnd.nextDouble(margin, width - margin - w + 1e-9), y = rnd.nextDouble(margin, height - margin - h + 1e-9);
            AffineTransform t = AffineTransform.getRotateInstance(rot, x + w / 2, y + h / 2);
            // the glyphs' visual box starts at (vb.x, vb.y) relative to the baseline origin
            double ox = x + pad - vb.getX(), oy = y + pad - vb.getY();
            Shape glyphs = t.createTransformedShape(gv.getOutline((float) ox, (float) oy));
            Shape plate = t.createTransformedShape(new RoundRectangle2D.Double(x, y, w, h, cap * 0.4, cap * 0.4));
            Rectangle2D box = (sign ? plate : glyphs).getBounds2D();
            if (box.getMinX() < 0 || box.getMinY() < 0 || box.getMaxX() > width || box.getMaxY() > height) continue;
            Rectangle2D grown = new Rectangle2D.Double(box.getX() - margin, box.getY() - margin, box.getWidth() + 2 * margin, box.getHeight() + 2 * margin);
            if (taken.stream().anyMatch(grown::intersects)) continue;
            Color ink = Palette.jitter(Palette.rgb(Palette.COLORS.get(rnd.nextInt(Palette.COLORS.size()))), rnd);
            if (sign) {
                Color plateColor = Palette.jitter(Palette.rgb(Palette.COLORS.get(rnd.nextInt(Palette.COLORS.size()))), rnd);
                if (Palette.distance(plateColor.getRGB(), ink.getRGB()) < 2 * NEAR || Math.abs(luma(plateColor.getRGB()) - luma(ink.getRGB())) < TEXT_LUMA) continue;
                if (nearShare(image, plate, 1, plateColor) > 0.25) continue; // the plate may blend a little: the ink is what matters
                g.setColor(plateColor);
                g.fill(plate);
            } else if (nearShare(image, glyphs, 2, ink, NEAR, TEXT_LUMA) > MAX_NEAR_SHARE) continue;
            g.setColor(ink);
            g.fill(glyphs);
            taken.add(grown);
            text = new Text(word, ink, glyphs);
            return true;
        }
        return false;
    }

    /**
     * The finished image: with probability jpegChance re-compressed as a JPEG of quality 50..95, as photos and web images
     * are; it carries the map of where each shape was drawn ({@link TokenShapes#mapOf}).
     */
    BufferedImage finish(double jpegChance) {
        g.dispose();
        BufferedImage out = rnd.nextDouble() >= jpegChance ? image : jpeg(image, (float) rnd.nextDouble(0.50, 0.95));
        return TokenShapes.attach(out, TokenShapes.ShapeMap.of(width, height, outlines, objects.stream().map(Obj::shape).toList()));
    }

    static BufferedImage jpeg(BufferedImage im, float quality) {
        try {
            ImageWriter w = ImageIO.getImageWritersByFormatName("jpeg").next();
            ImageWriteParam p = w.getDefaultWriteParam();
            p.setCompressionMode(ImageWriteParam.MODE_EXPLICIT);
            p.setCompressionQuality(quality);
            ByteArrayOutputStream bytes = new ByteArrayOutputStream();
            try (MemoryCacheImageOutputStream out = new MemoryCacheImageOutputStream(bytes)) {
                w.setOutput(out);
                w.write(null, new IIOImage(im, null, null), p);
            } finally {
                w.dispose();
            }
            BufferedImage back = ImageIO.read(new ByteArrayInputStream(bytes.toByteArray()));
            BufferedImage rgb = new BufferedImage(back.getWidth(), back.getHeight(), BufferedImage.TYPE_INT_RGB);
            Graphics2D g = rgb.createGraphics();
            g.drawImage(back, 0, 0, null);
            g.dispose();
            return rgb;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
