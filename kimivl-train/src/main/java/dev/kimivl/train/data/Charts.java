package dev.kimivl.train.data;

import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.Font;
import java.awt.Graphics2D;
import java.awt.RenderingHints;
import java.awt.font.FontRenderContext;
import java.awt.font.GlyphVector;
import java.awt.geom.Line2D;
import java.awt.geom.Rectangle2D;
import java.awt.image.BufferedImage;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/** Simple bar charts: 3-5 labelled bars with distinct values 1-9 on an axis with a gridline at every integer. */
final class Charts {
    /**
     * A drawn chart: its image, the bar labels left to right and their values, and where the bars stand (their centres'
     * x, the baseline's y and the pixels per unit of value) so that tests can measure them.
     */
    record Chart(BufferedImage image, List<String> labels, int[] values, double[] barX, double baseY, double unit) {}

    // short labels (3-5 letters), because five of them must fit side by side at a readable size
    static final List<String> LABELS = List.of("Apple", "Pear", "Plum", "Lime", "Kiwi", "Fig", "Grape", "Peach", "Lemon", "Mango",
        "Tea", "Milk", "Rice", "Corn", "Bean", "Cat", "Dog", "Fox", "Owl", "Bee", "Cow", "Pig", "Duck", "Frog", "Bus", "Car", "Ship",
        "Mon", "Tue", "Wed", "Thu", "Fri", "Rose", "Oak", "Pine", "Tom", "Anna", "Ben", "Eva", "Max");

    static final List<String> LETTERS = List.of("A", "B", "C", "D", "E", "F", "G", "H");

    private Charts() {}

    static Chart draw(SplittableRandom r, VisualWorld.Options o) {
        List<Font> fonts = Fonts.all();
        FontRenderContext frc = new FontRenderContext(null, true, true);
        // words as labels in 60% of charts, letters (as many charts have) in the rest; words that do not fit in 100 tries
        // (a narrow or square image) also give way to letters
        boolean words = r.nextInt(5) < 3;
        for (int attempt = 0; ; attempt++) {
            if (attempt == 500) throw new IllegalStateException("could not lay out a chart in 500 tries for " + o);
            // charts are mostly landscape, and never smaller than 128 px across: labels must fit under five bars
            int min = Math.max(o.minSide(), Math.min(o.maxSide(), 128));
            double side = Math.exp(r.nextDouble(Math.log(min), Math.log(o.maxSide()) + 1e-9));
            double aspect = r.nextInt(4) == 0 ? r.nextDouble(0.75, 1.0) : r.nextDouble(1.0, 2.0);
            int w = clampSide((int) Math.round(side * Math.sqrt(aspect)), o), h = clampSide((int) Math.round(side / Math.sqrt(aspect)), o);
            boolean useWords = words && attempt < 100;
            // fewer bars leave room for words: after 30 tries a word chart has three
            int shortSide = Math.min(w, h), n = 3 + r.nextInt(useWords && attempt >= 30 || attempt >= 200 ? 1 : 3);
            List<String> pool = new ArrayList<>(useWords ? LABELS : LETTERS), labels = new ArrayList<>();
            for (int i = 0; i < n; i++) labels.add(pool.remove(r.nextInt(pool.size())));
            List<Integer> vpool = new ArrayList<>(List.of(1, 2, 3, 4, 5, 6, 7, 8, 9));
            int[] values = new int[n];
            for (int i = 0; i < n; i++) values[i] = vpool.remove(r.nextInt(vpool.size())); // distinct: "the tallest" is one bar
            Font base = fonts.get(r.nextInt(fonts.size()));
            double capPerPoint = base.deriveFont(100f).createGlyphVector(frc, "H").getVisualBounds().getHeight() / 100;
            double cap = shortSide * r.nextDouble(0.10, 0.13);
            Font font = base.deriveFont((float) (cap / capPerPoint));
            boolean valueLabels = r.nextBoolean();
            int axisMax = r.nextBoolean() ? 9 : 10, tickStep = axisMax == 9 ? 3 : 5;
            double tickW = width(font, frc, Integer.toString(axisMax));
            double left = tickW + cap * 0.8, right = cap * 0.6, top = cap * (valueLabels ? 2.0 : 0.8), bottom = cap * 2.0;
            double plotW = w - left - right, plotH = h - top - bottom;
            if (plotW <= 0 || plotH < 3 * cap) continue;
            double slot = plotW / n;
            boolean fits = true;
            for (String l : labels) fits &= width(font, frc, l) <= 0.8 * slot; // a gap between neighbours, or they read as one word
            if (!fits) continue;

            BufferedImage im = new BufferedImage(w, h, BufferedImage.TYPE_INT_RGB);
            Graphics2D g = im.createGraphics();
            boolean aa = r.nextInt(4) != 0;
            g.setRenderingHint(RenderingHints.KEY_ANTIALIASING, aa ? RenderingHints.VALUE_ANTIALIAS_ON : RenderingHints.VALUE_ANTIALIAS_OFF);
            g.setRenderingHint(RenderingHints.KEY_TEXT_ANTIALIASING, aa ? RenderingHints.VALUE_TEXT_ANTIALIAS_ON : RenderingHints.VALUE_TEXT_ANTIALIAS_OFF);
            int light = 230 + r.nextInt(26); // white to light grey, sometimes tinted
            g.setColor(r.nextInt(4) == 0 ? new Color(light, light - r.nextInt(15), light - r.nextInt(25)) : new Color(light, light, light));
            g.fillRect(0, 0, w, h);
            double x0 = left, y0 = top + plotH; // the origin
            g.setColor(new Color(195, 195, 195));
            g.setStroke(new BasicStroke(1f));
            for (int v = 1; v <= axisMax; v++) {
                double y = y0 - plotH * v / axisMax;
                g.draw(new Line2D.Double(x0, y, x0 + plotW, y));
            }
            Color ink = r.nextBoolean() ? Color.BLACK : new Color(60, 60, 60);
            List<String> barColors = new ArrayList<>(Palette.COLORS);
            barColors.remove("white"); // on a white chart a white bar would be invisible
            barColors.remove("yellow");
            String one = barColors.get(r.nextInt(barColors.size()));
            boolean perBar = r.nextInt(3) == 0, outlined = r.nextInt(3) == 0;
            double barW = slot * r.nextDouble(0.45, 0.75);
            for (int i = 0; i < n; i++) {
                double cx = x0 + slot * (i + 0.5), bh = plotH * values[i] / axisMax;
                Rectangle2D bar = new Rectangle2D.Double(cx - barW / 2, y0 - bh, barW, bh);
                g.setColor(Palette.jitter(Palette.rgb(perBar ? barColors.get(r.nextInt(barColors.size())) : one), r));
                g.fill(bar);
                if (outlined) {
                    g.setColor(ink);
                    g.draw(bar);
                }
                g.setColor(ink);
                centred(g, font, frc, labels.get(i), cx, y0 + cap * 0.5, false);
                if (valueLabels) centred(g, font, frc, Integer.toString(values[i]), cx, y0 - bh - cap * 0.4, true);
            }
            g.setColor(ink);
            g.setStroke(new BasicStroke((float) Math.max(1, shortSide / 150.0)));
            g.draw(new Line2D.Double(x0, top - cap * 0.3, x0, y0));
            g.draw(new Line2D.Double(x0, y0, x0 + plotW, y0));
            for (int v = 0; v <= axisMax; v += tickStep) {
                String t = Integer.toString(v);
                GlyphVector gv = font.createGlyphVector(frc, t);
                Rectangle2D vb = gv.getVisualBounds();
                double y = y0 - plotH * v / axisMax;
                g.drawGlyphVector(gv, (float) (x0 - cap * 0.4 - vb.getWidth() - vb.getX()), (float) (y + vb.getHeight() / 2));
            }
            g.dispose();
            BufferedImage out = r.nextDouble() < VisualWorld.JPEG_CHANCE ? Painter.jpeg(im, (float) r.nextDouble(0.5, 0.95)) : im;
            double[] barX = new double[n];
            for (int i = 0; i < n; i++) barX[i] = x0 + slot * (i + 0.5);
            return new Chart(out, List.copyOf(labels), values, barX, y0, plotH / axisMax);
        }
    }

    private static int clampSide(int v, VisualWorld.Options o) {
        return Math.max(o.minSide(), Math.min(o.maxSide(), v));
    }

    private static double width(Font f, FontRenderContext frc, String s) {
        return f.createGlyphVector(frc, s).getVisualBounds().getWidth();
    }

    /** Draws s centred on x with its top at y (or, with above, its bottom at y). */
    private static void centred(Graphics2D g, Font f, FontRenderContext frc, String s, double x, double y, boolean above) {
        GlyphVector gv = f.createGlyphVector(frc, s);
        Rectangle2D vb = gv.getVisualBounds();
        double top = above ? y - vb.getHeight() : y;
        g.drawGlyphVector(gv, (float) (x - vb.getWidth() / 2 - vb.getX()), (float) (top - vb.getY()));
    }
}
