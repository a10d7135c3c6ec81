package dev.kimivl.train.data;

import java.awt.Color;
import java.awt.Shape;
import java.awt.geom.Ellipse2D;
import java.awt.geom.Path2D;
import java.awt.geom.Rectangle2D;
import java.awt.image.BufferedImage;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import javax.imageio.ImageIO;

/**
 * An independent renderer for out-of-distribution evaluation: the same kinds of scene and the same question types as
 * {@link VisualWorld}, but every pixel is drawn by ImageMagick's {@code convert} ({@code -draw} primitives, its own
 * anti-aliasing, gradients, noise and fonts: the URW PostScript fonts it ships with, or DejaVu at other sizes). A
 * model that learned Java2D's rasteriser rather than shapes scores worse here than on {@link VisualWorld}.
 *
 * <p>Java plans each scene (what goes where, from the seed); ImageMagick draws it in two calls: the background, which
 * Java reads back to keep objects off regions of their own colour, then the objects and words on it.
 */
public final class ImageMagickRenderer {
    private static volatile Boolean available;
    /** Fonts by ImageMagick name (resolved through its type map) or by file; a missing one makes ImageMagick use its default. */
    static final List<String> FONTS = List.of("", "Helvetica", "Helvetica-Bold", "Times-Roman", "Times-Bold", "Courier-Bold",
        "AvantGarde-Book", "Bookman-Demi", "NewCenturySchlbk-Roman", "Palatino-Roman", "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
        "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf");
    private static final long TIMEOUT_S = 60;

    private final VisualWorld.Options options;

    public ImageMagickRenderer(VisualWorld.Options o) {
        this.options = o;
    }

    /** Whether a real ImageMagick convert is on the PATH (a stand-in that only converts files does not count). */
    public static boolean available() {
        Boolean a = available;
        if (a == null) {
            try {
                a = new String(run(List.of("convert", "-version"), new byte[0]), java.nio.charset.StandardCharsets.UTF_8).contains("Version: ImageMagick");
            } catch (RuntimeException e) {
                a = false;
            }
            available = a;
        }
        return a;
    }

    /** The question types this renderer draws: the same as {@link VisualWorld#vqaTypes()}. */
    public static List<String> types() {
        return VisualWorld.vqaTypes();
    }

    public Example vqa(long seed) {
        return vqa(seed, types().get(new SplittableRandom(seed ^ 0x5DEECE66DL).nextInt(types().size())));
    }

    /**
     * One large object (a third to 0.6 of the shorter side), asked its colour, its shape or both, as
     * {@link VisualWorld#object}: the lesson's questions on images drawn by another program.
     */
    public Example object(long seed) {
        SplittableRandom r = new SplittableRandom(seed * 0xD1B54A32D192ED03L ^ "object".hashCode());
        String s = pick(r, Palette.SHAPES), col = pick(r, Palette.COLORS);
        Canvas c = null;
        for (int attempt = 0; attempt < 200 && c == null; attempt++) {
            Canvas cv = new Canvas(r);
            if (cv.place(s, col, 0.33, 0.6)) c = cv;
        }
        if (c == null) throw new IllegalStateException("ImageMagickRenderer could not place one " + col + " " + s + " in 200 images");
        String type = pick(r, List.of("color", "shape", "what")), q, answer;
        switch (type) {
            case "color" -> { q = pick(r, List.of("What color is the shape?", "What colour is the object?")); answer = Palette.capitalise(col) + "."; }
            case "shape" -> { q = pick(r, List.of("What shape is this?", "What shape is shown?")); answer = Palette.capitalise(Palette.article(s)) + " " + s + "."; }
            default -> { q = pick(r, List.of("What is in this picture?", "What do you see?")); answer = VisualWorld.list(List.of(VisualWorld.named(col, s))); }
        }
        return new Example(type, List.of(c.render()), q, answer, null);
    }

    public Example vqa(long seed, String type) {
        if (!types().contains(type)) throw new IllegalArgumentException("unknown type '" + type + "'; one of " + types());
        SplittableRandom r = new SplittableRandom(seed * 0xD1B54A32D192ED03L ^ type.hashCode());
        return switch (type) {
            case "read" -> read(r);
            default -> shapes(r, type);
        };
    }

    // ---------------------------------------------------------------- planning

    /** An object as planned: names, geometry (for Java's checks) and the -draw primitive that draws it. */
    record Obj(String shape, String color, Color rgb, double cx, double cy, double area, Rectangle2D bounds, Shape outline, List<String> args) {}

    /** One image being planned: its size, its background (already drawn by ImageMagick) and the objects so far. */
    private final class Canvas {
        final SplittableRandom r;
        final int w, h, shortSide;
        final byte[] backgroundPng;
        final BufferedImage background;
        final List<Obj> objs = new ArrayList<>();
        final List<String> draw = new ArrayList<>();
        final List<Rectangle2D> taken = new ArrayList<>();

        Canvas(SplittableRandom r) {
            this.r = r;
            double side = Math.exp(r.nextDouble(Math.log(options.minSide()), Math.log(options.maxSide()) + 1e-9));
            double aspect = Math.exp(r.nextDouble(Math.log(0.5), Math.log(2.0)));
            w = Math.max(options.minSide(), Math.min(options.maxSide(), (int) Math.round(side * Math.sqrt(aspect))));
            h = Math.max(options.minSide(), Math.min(options.maxSide(), (int) Math.round(side / Math.sqrt(aspect))));
            shortSide = Math.min(w, h);
            List<String> cmd = new ArrayList<>(List.of("convert", "-size", w + "x" + h));
            // easy images: a plain grey ground, light or dark, as VisualWorld's easy ones (the other rasteriser, sizes
            // and shape geometry stay); otherwise one of four kinds of ground
            int kind = options.easy() ? -1 : r.nextInt(4);
            if (kind < 0) {
                int g = r.nextInt(3) != 0 ? 205 + r.nextInt(45) : 15 + r.nextInt(45);
                cmd.add("xc:" + hex(new Color(g, g, g)));
            }
            switch (kind) {
                case -1 -> { }
                case 0 -> cmd.add("xc:" + hex(randomColor()));
                case 1 -> cmd.addAll(List.of("-define", "gradient:angle=" + r.nextInt(360), "gradient:" + hex(randomColor()) + "-" + hex(randomColor())));
                case 2 -> { // several colours blended between points: ImageMagick's kind of rainbow
                    // Barycentric (3 points, a plane) or Bilinear (4 corners); Shepards would make round blobs that look like objects
                    boolean bilinear = r.nextBoolean();
                    cmd.add("xc:white");
                    StringBuilder pts = new StringBuilder();
                    for (int i = 0; i < (bilinear ? 4 : 3); i++) {
                        int x = bilinear ? (i % 2) * (w - 1) : r.nextInt(w), y = bilinear ? (i / 2) * (h - 1) : r.nextInt(h);
                        pts.append(x).append(',').append(y).append(' ').append(hex(randomColor())).append(' ');
                    }
                    cmd.addAll(List.of("-sparse-color", bilinear ? "Bilinear" : "Barycentric", pts.toString().strip()));
                }
                default -> cmd.addAll(List.of("xc:" + hex(randomColor()), "-seed", Integer.toString(r.nextInt(1 << 30)), "-attenuate",
                    String.format(Locale.ROOT, "%.2f", r.nextDouble(0.2, 0.8)), "+noise", r.nextBoolean() ? "Gaussian" : "Uniform"));
            }
            if (kind >= 0 && r.nextInt(4) == 0) { // a distractor line
                cmd.addAll(List.of("-stroke", hex(r.nextBoolean() ? Color.WHITE : Color.BLACK), "-strokewidth", Integer.toString(1 + r.nextInt(Math.max(1, shortSide / 40))),
                    "-draw", "line " + r.nextInt(w) + ",0 " + r.nextInt(w) + "," + (h - 1), "-stroke", "none"));
            }
            cmd.addAll(List.of("-depth", "8", "png24:-"));
            backgroundPng = run(cmd, new byte[0]);
            background = read(backgroundPng);
        }

        private Color randomColor() {
            return new Color(r.nextInt(256), r.nextInt(256), r.nextInt(256));
        }

        /** Plans an object of a shape and colour with size in [lo, hi] of the shorter side; false when no place contrasts. */
        boolean place(String shape, String color, double lo, double hi) {
            Color c = Palette.jitter(Palette.rgb(color), r);
            double min = Math.max(0.12 * shortSide, 10), max = Math.max(min, hi * shortSide), low = Math.max(min, lo * shortSide);
            double margin = Math.max(2, 0.03 * shortSide), rot = shape.equals("circle") || shape.equals("ring") ? 0 : r.nextDouble(-0.2, 0.2);
            boolean vertical = r.nextBoolean();
            int clashes = 0;
            for (int attempt = 0; attempt < 300; attempt++) {
                double s = low + (max - low) * r.nextDouble() * (1 - attempt / 330.0), half = s / 2;
                if (w - 2 * margin - s <= 0 || h - 2 * margin - s <= 0) continue;
                double cx = r.nextDouble(margin + half, w - margin - half), cy = r.nextDouble(margin + half, h - margin - half);
                Obj o = plan(shape, color, c, cx, cy, s, rot, vertical);
                Rectangle2D b = o.bounds(), box = new Rectangle2D.Double(b.getX() - margin, b.getY() - margin, b.getWidth() + 2 * margin, b.getHeight() + 2 * margin);
                if (taken.stream().anyMatch(box::intersects)) continue;
                if (Painter.nearShare(background, o.outline(), 2, c) > Painter.MAX_NEAR_SHARE) {
                    if (++clashes == 25) return false; // this background will keep clashing: a new one is cheaper
                    continue;
                }
                taken.add(box);
                objs.add(o);
                draw.addAll(o.args());
                return true;
            }
            return false;
        }

        /** Plans a word in a font at a cap height of 12-30% of the shorter side; false when it does not fit legibly. */
        boolean word(String word) {
            String font = FONTS.get(r.nextInt(FONTS.size()));
            Color ink = Palette.jitter(Palette.rgb(Palette.COLORS.get(r.nextInt(Palette.COLORS.size()))), r);
            // a cap height is about 0.7 of the point size for these fonts (at ImageMagick's 72 dpi a point is a pixel)
            double point = shortSide * r.nextDouble(0.12, 0.30) / 0.7;
            for (int attempt = 0; attempt < 20; attempt++) {
                List<String> fontArgs = font.isEmpty() ? List.of() : List.of("-font", font);
                List<String> measure = new ArrayList<>(List.of("convert"));
                measure.addAll(fontArgs);
                measure.addAll(List.of("-pointsize", fmt(point), "label:" + word, "-format", "%w %h", "info:"));
                String[] wh = new String(run(measure, new byte[0]), java.nio.charset.StandardCharsets.UTF_8).strip().split(" ");
                int tw = Integer.parseInt(wh[0]), th = Integer.parseInt(wh[1]);
                double margin = Math.max(2, 0.03 * shortSide);
                if (tw > w - 2 * margin || th > h - 2 * margin) {
                    if (point * 0.9 * 0.7 < 0.10 * shortSide) return false;
                    point *= 0.9;
                    continue;
                }
                int x = (int) r.nextDouble(margin, w - margin - tw + 1), y = (int) r.nextDouble(margin, h - margin - th + 1);
                Rectangle2D box = new Rectangle2D.Double(x, y, tw, th);
                if (taken.stream().anyMatch(box::intersects)) continue;
                // the box, not just the glyphs: a conservative test that the ink stands out wherever a stroke may fall
                if (Painter.nearShare(background, box, 0, ink, Painter.NEAR, Painter.TEXT_LUMA) > Painter.MAX_NEAR_SHARE) {
                    ink = Palette.jitter(Palette.rgb(Palette.COLORS.get(r.nextInt(Palette.COLORS.size()))), r);
                    continue;
                }
                taken.add(new Rectangle2D.Double(x - margin, y - margin, tw + 2 * margin, th + 2 * margin));
                draw.addAll(fontArgs);
                draw.addAll(List.of("-pointsize", fmt(point), "-fill", hex(ink), "-stroke", "none", "-gravity", "NorthWest",
                    "-annotate", "+" + x + "+" + y, word, "-gravity", "None"));
                return true;
            }
            return false;
        }

        BufferedImage render() {
            List<String> cmd = new ArrayList<>(List.of("convert", "png:-"));
            if (r.nextInt(4) == 0) cmd.add("+antialias");
            cmd.addAll(draw);
            boolean jpeg = r.nextDouble() < VisualWorld.JPEG_CHANCE;
            if (jpeg) cmd.addAll(List.of("-quality", Integer.toString(r.nextInt(50, 96))));
            cmd.addAll(List.of("-depth", "8", jpeg ? "jpg:-" : "png24:-"));
            return read(run(cmd, backgroundPng));
        }
    }

    private static String fmt(double v) {
        return String.format(Locale.ROOT, "%.1f", v);
    }

    static String hex(Color c) {
        return String.format(Locale.ROOT, "#%02x%02x%02x", c.getRed(), c.getGreen(), c.getBlue());
    }

    /** The geometry of a shape and the ImageMagick arguments that draw it. */
    private Obj plan(String shape, String color, Color c, double cx, double cy, double s, double rot, boolean vertical) {
        double h = s / 2;
        List<String> args = new ArrayList<>(List.of("-fill", hex(c), "-stroke", "none"));
        Shape outline;
        double area;
        switch (shape) {
            case "circle" -> {
                outline = new Ellipse2D.Double(cx - h, cy - h, s, s);
                args.addAll(List.of("-draw", "circle " + fmt(cx) + "," + fmt(cy) + " " + fmt(cx + h) + "," + fmt(cy)));
                area = Math.PI * h * h;
            }
            case "ring" -> {
                double sw = Math.max(2, s * 0.16), rr = h - sw / 2;
                outline = new java.awt.BasicStroke((float) sw).createStrokedShape(new Ellipse2D.Double(cx - rr, cy - rr, 2 * rr, 2 * rr));
                args = new ArrayList<>(List.of("-fill", "none", "-stroke", hex(c), "-strokewidth", fmt(sw),
                    "-draw", "circle " + fmt(cx) + "," + fmt(cy) + " " + fmt(cx + rr) + "," + fmt(cy), "-stroke", "none"));
                area = Math.PI * h * h;
            }
            default -> {
                double[][] pts = switch (shape) {
                    case "square" -> box(0.45 * s, 0.45 * s);
                    case "rectangle" -> vertical ? box(0.25 * s, 0.5 * s) : box(0.5 * s, 0.25 * s);
                    case "triangle" -> regular(3, h, -Math.PI / 2, 1);
                    case "hexagon" -> regular(6, h, 0, 1);
                    case "star" -> regular(10, h, -Math.PI / 2, 0.45);
                    default -> throw new IllegalArgumentException("unknown shape " + shape);
                };
                Path2D.Double p = new Path2D.Double();
                StringBuilder poly = new StringBuilder("polygon");
                double cos = Math.cos(rot), sin = Math.sin(rot);
                for (int i = 0; i < pts.length; i++) {
                    double x = cx + pts[i][0] * cos - pts[i][1] * sin, y = cy + pts[i][0] * sin + pts[i][1] * cos;
                    if (i == 0) p.moveTo(x, y);
                    else p.lineTo(x, y);
                    poly.append(' ').append(fmt(x)).append(',').append(fmt(y));
                }
                p.closePath();
                outline = p;
                args.addAll(List.of("-draw", poly.toString()));
                area = Painter.area(p);
            }
        }
        return new Obj(shape, color, c, cx, cy, area, outline.getBounds2D(), outline, args);
    }

    private static double[][] box(double hw, double hh) {
        return new double[][]{{-hw, -hh}, {hw, -hh}, {hw, hh}, {-hw, hh}};
    }

    /** n vertices around the centre; with inner < 1 every other vertex is pulled in (a star). */
    private static double[][] regular(int n, double r, double start, double inner) {
        double[][] p = new double[n][];
        for (int i = 0; i < n; i++) {
            double a = start + 2 * Math.PI * i / n, rr = i % 2 == 1 ? r * inner : r;
            p[i] = new double[]{rr * Math.cos(a), rr * Math.sin(a)};
        }
        return p;
    }

    // ---------------------------------------------------------------- examples

    private static <T> T pick(SplittableRandom r, List<T> xs) {
        return xs.get(r.nextInt(xs.size()));
    }

    private static <T> List<T> distinct(SplittableRandom r, List<T> xs, int n) {
        List<T> pool = new ArrayList<>(xs), out = new ArrayList<>();
        for (int i = 0; i < n; i++) out.add(pool.remove(r.nextInt(pool.size())));
        return out;
    }

    /** A planned scene of (shape, colour) pairs that satisfies ok; new canvases until one does. */
    private Canvas scene(SplittableRandom r, List<String[]> specs, double hi, java.util.function.Predicate<Canvas> ok) {
        for (int attempt = 0; attempt < 200; attempt++) {
            Canvas c = new Canvas(r);
            boolean placed = true;
            for (String[] s : specs) placed = placed && c.place(s[0], s[1], 0.12, hi);
            if (placed && ok.test(c)) return c;
        }
        throw new IllegalStateException("ImageMagickRenderer could not plan " + specs.size() + " objects in 200 images");
    }

    private Example shapes(SplittableRandom r, String type) {
        List<String[]> specs = new ArrayList<>();
        String q, answer;
        Canvas c;
        switch (type) {
            case "what" -> {
                int n = 1 + r.nextInt(3);
                List<String> shapes = distinct(r, Palette.SHAPES, n);
                for (String s : shapes) specs.add(new String[]{s, pick(r, Palette.COLORS)});
                c = scene(r, specs, VisualWorld.maxRel(n), cv -> VisualWorld.minGap(cv.objs.stream().map(Obj::cx).toList()) >= 0.06 * cv.w);
                q = pick(r, List.of("What is in this picture?", "What do you see?", "Describe the objects."));
                answer = VisualWorld.list(c.objs.stream().sorted(Comparator.comparingDouble(Obj::cx)).map(o -> VisualWorld.named(o.color(), o.shape())).toList());
            }
            case "color" -> {
                String s = pick(r, Palette.SHAPES), col = pick(r, Palette.COLORS);
                specs.add(new String[]{s, col});
                c = scene(r, specs, 0.6, cv -> true);
                q = pick(r, List.of("What color is the shape?", "What colour is the " + s + "?"));
                answer = Palette.capitalise(col) + ".";
            }
            case "shape" -> {
                String s = pick(r, Palette.SHAPES), col = pick(r, Palette.COLORS);
                specs.add(new String[]{s, col});
                c = scene(r, specs, 0.6, cv -> true);
                q = pick(r, List.of("What shape is this?", "What shape is shown?"));
                answer = Palette.capitalise(Palette.article(s)) + " " + s + ".";
            }
            case "count" -> {
                int k = 1 + r.nextInt(9);
                boolean all = r.nextBoolean();
                String s = pick(r, Palette.SHAPES);
                int others = all ? 0 : r.nextInt(Math.min(3, 9 - k) + 1);
                for (int i = 0; i < k; i++) specs.add(new String[]{all ? pick(r, Palette.SHAPES) : s, pick(r, Palette.COLORS)});
                for (int i = 0; i < others; i++) {
                    String o;
                    do o = pick(r, Palette.SHAPES); while (o.equals(s) || Palette.confusable(s, o));
                    specs.add(new String[]{o, pick(r, Palette.COLORS)});
                }
                c = scene(r, specs, VisualWorld.maxRel(k + others), cv -> true);
                q = all ? "How many shapes are there?" : "How many " + Palette.plural(s) + " are there?";
                answer = Palette.numberAnswer(k);
            }
            case "position" -> {
                List<String> shapes = distinct(r, Palette.SHAPES, 2), colors = distinct(r, Palette.COLORS, 2);
                for (int i = 0; i < 2; i++) specs.add(new String[]{shapes.get(i), colors.get(i)});
                boolean horizontal = r.nextBoolean();
                c = scene(r, specs, 0.4, cv -> horizontal ? Math.abs(cv.objs.get(0).cx() - cv.objs.get(1).cx()) >= 0.25 * cv.w
                    : Math.abs(cv.objs.get(0).cy() - cv.objs.get(1).cy()) >= 0.25 * cv.h);
                Obj a = c.objs.get(0), b = c.objs.get(1);
                String na = "the " + a.color() + " " + a.shape(), nb = "the " + b.color() + " " + b.shape();
                q = horizontal ? "Is " + na + " left or right of " + nb + "?" : "Is " + na + " above or below " + nb + "?";
                answer = horizontal ? (a.cx() < b.cx() ? "Left." : "Right.") : (a.cy() < b.cy() ? "Above." : "Below.");
            }
            default -> { // size
                List<String> shapes = distinct(r, Palette.SHAPES, 2), colors = distinct(r, Palette.COLORS, 2);
                Canvas got = null;
                for (int attempt = 0; attempt < 100 && got == null; attempt++) {
                    Canvas cv = new Canvas(r);
                    if (cv.place(shapes.get(0), colors.get(0), 0.30, 0.45) && cv.place(shapes.get(1), colors.get(1), 0.12, 0.2)
                        && cv.objs.get(0).area() >= 2 * cv.objs.get(1).area()) got = cv;
                }
                if (got == null) throw new IllegalStateException("ImageMagickRenderer could not plan a size scene");
                c = got;
                boolean askBig = r.nextBoolean(), bigFirst = r.nextBoolean();
                String big = "the " + shapes.get(0), small = "the " + shapes.get(1);
                q = "Which is " + (askBig ? "bigger" : "smaller") + ", " + (bigFirst ? big + " or " + small : small + " or " + big) + "?";
                answer = Palette.capitalise(askBig ? big : small) + ".";
            }
        }
        return new Example(type, List.of(c.render()), q, answer, null);
    }

    private Example read(SplittableRandom r) {
        for (int attempt = 0; attempt < 100; attempt++) {
            String w = pick(r, Words.COMMON);
            w = switch (r.nextInt(3)) {
                case 0 -> w;
                case 1 -> w.toUpperCase(Locale.ROOT);
                default -> Palette.capitalise(w);
            };
            Canvas c = new Canvas(r);
            if (!c.word(w)) continue;
            String q = pick(r, List.of("What word is written in the image?", "Read the text.", "What is written here?"));
            return new Example("read", List.of(c.render()), q, w + ".", null);
        }
        throw new IllegalStateException("ImageMagickRenderer could not place a word in 100 images");
    }

    // ---------------------------------------------------------------- running convert

    private static BufferedImage read(byte[] encoded) {
        try {
            BufferedImage im = ImageIO.read(new ByteArrayInputStream(encoded));
            if (im == null) throw new IllegalStateException("convert wrote no image ImageIO can read (" + encoded.length + " bytes)");
            BufferedImage rgb = new BufferedImage(im.getWidth(), im.getHeight(), BufferedImage.TYPE_INT_RGB);
            var g = rgb.createGraphics();
            g.drawImage(im, 0, 0, null);
            g.dispose();
            return rgb;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Runs a command with stdin, returns its stdout; a non-zero exit or a timeout is an IllegalStateException with its stderr. */
    static byte[] run(List<String> cmd, byte[] stdin) {
        try {
            Process p = new ProcessBuilder(cmd).start();
            ByteArrayOutputStream err = new ByteArrayOutputStream();
            Thread drain = Thread.ofVirtual().start(() -> copy(p.getErrorStream(), err));
            Thread feed = Thread.ofVirtual().start(() -> {
                try (OutputStream in = p.getOutputStream()) {
                    in.write(stdin);
                } catch (IOException ignored) {
                    // convert may exit before reading all of stdin (e.g. -version); its exit status tells what went wrong
                }
            });
            byte[] out = p.getInputStream().readAllBytes();
            if (!p.waitFor(TIMEOUT_S, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                throw new IllegalStateException("timed out after " + TIMEOUT_S + " s: " + cmd);
            }
            feed.join();
            drain.join();
            if (p.exitValue() != 0) throw new IllegalStateException("exit " + p.exitValue() + " from " + cmd + ": " + err.toString().strip());
            return out;
        } catch (IOException e) {
            throw new IllegalStateException("cannot run " + cmd.getFirst() + ": " + e.getMessage(), e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted running " + cmd, e);
        }
    }

    private static void copy(InputStream in, ByteArrayOutputStream out) {
        try {
            in.transferTo(out);
        } catch (IOException ignored) {
            // the process ended; what was read is kept
        }
    }
}
