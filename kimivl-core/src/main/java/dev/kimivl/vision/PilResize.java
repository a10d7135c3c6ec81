package dev.kimivl.vision;

/**
 * Pillow 9.4's {@code Image.resize(size, BICUBIC)}, bit for bit (spec §3.1), including its mode rules:
 * P and 1 are resized with NEAREST, RGBA and LA in premultiplied form (RGBa / La), I (16-bit grey) with the
 * 32-bit integer path, everything else with the 8-bit fixed-point path.
 *
 * <p>8-bit path ({@code Resample.c}): Keys cubic a = −0.5, support widened by the scale when downscaling
 * (antialias), weights normalised in double then turned into 22-bit fixed point; horizontal pass first, then
 * vertical, each skipped when that size does not change.
 */
public final class PilResize {
    private static final int PRECISION_BITS = 32 - 8 - 2;
    private static final double SUPPORT = 2.0;

    private PilResize() {}

    /** Resizes in the image's own mode, as PIL does. */
    public static LoadedImage resize(LoadedImage im, int outW, int outH) {
        if (outW <= 0 || outH <= 0) throw new ImageException(im.source() + ": cannot resize to " + outW + "x" + outH);
        if (outW == im.width() && outH == im.height()) return im;
        ImageMode mode = im.mode();
        if (mode.nearestOnly()) {
            return LoadedImage.of(im.source(), outW, outH, mode, nearest(im.pixels(), im.width(), im.height(), mode.channels, outW, outH));
        }
        if (mode == ImageMode.I) {
            return new LoadedImage(im.source(), outW, outH, mode, null, resample32(im.wide(), im.width(), im.height(), outW, outH));
        }
        byte[] src = im.pixels();
        if (mode.premultipliedResize()) src = premultiply(src, mode.channels);
        byte[] out = resample8(src, im.width(), im.height(), mode.channels, outW, outH);
        if (mode.premultipliedResize()) unpremultiply(out, mode.channels);
        return LoadedImage.of(im.source(), outW, outH, mode, out);
    }

    /** Keys bicubic, a = −0.5 (Pillow's bicubic_filter). */
    static double bicubic(double x) {
        final double a = -0.5;
        if (x < 0.0) x = -x;
        if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
        if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
        return 0.0;
    }

    /** Pillow's precompute_coeffs: per output index, first tap (bounds[2i]), tap count (bounds[2i+1]) and normalised weights [out][ksize]. */
    private record Coeffs(int ksize, int[] bounds, double[] k) {}

    private static Coeffs precompute(int inSize, int outSize) {
        double scale = (double) ((float) inSize - 0f) / outSize;   // in1 − in0 are floats in Pillow (the box)
        double filterscale = Math.max(scale, 1.0);
        double support = SUPPORT * filterscale;
        int ksize = (int) Math.ceil(support) * 2 + 1;
        int[] bounds = new int[outSize * 2];
        double[] kk = new double[outSize * ksize];
        for (int xx = 0; xx < outSize; xx++) {
            double center = (xx + 0.5) * scale;
            double ww = 0.0, ss = 1.0 / filterscale;
            int xmin = (int) (center - support + 0.5);
            if (xmin < 0) xmin = 0;
            int xmax = (int) (center + support + 0.5);
            if (xmax > inSize) xmax = inSize;
            xmax -= xmin;
            int o = xx * ksize;
            for (int x = 0; x < xmax; x++) {
                double w = bicubic((x + xmin - center + 0.5) * ss);
                kk[o + x] = w;
                ww += w;
            }
            for (int x = 0; x < xmax; x++) if (ww != 0.0) kk[o + x] /= ww;
            bounds[2 * xx] = xmin;
            bounds[2 * xx + 1] = xmax;
        }
        return new Coeffs(ksize, bounds, kk);
    }

    /** normalize_coeffs_8bpc: round half away from zero to 22-bit fixed point. */
    private static int[] fixed(double[] k) {
        int[] out = new int[k.length];
        for (int i = 0; i < k.length; i++) {
            out[i] = k[i] < 0 ? (int) (-0.5 + k[i] * (1 << PRECISION_BITS)) : (int) (0.5 + k[i] * (1 << PRECISION_BITS));
        }
        return out;
    }

    private static int clip8(int acc) {
        int v = acc >> PRECISION_BITS;
        return v < 0 ? 0 : Math.min(v, 255);
    }

    /** Two-pass 8-bit resample of interleaved samples [h, w, ch]. */
    static byte[] resample8(byte[] src, int w, int h, int ch, int outW, int outH) {
        byte[] cur = src;
        int curW = w;
        if (outW != w) {
            Coeffs c = precompute(w, outW);
            int[] k = fixed(c.k);
            byte[] out = new byte[outW * h * ch];
            for (int y = 0; y < h; y++) {
                int rowIn = y * w * ch, rowOut = y * outW * ch;
                for (int xx = 0; xx < outW; xx++) {
                    int xmin = c.bounds[2 * xx], xmax = c.bounds[2 * xx + 1], ko = xx * c.ksize;
                    for (int b = 0; b < ch; b++) {
                        int ss = 1 << (PRECISION_BITS - 1);
                        for (int x = 0; x < xmax; x++) ss += (cur[rowIn + (x + xmin) * ch + b] & 0xFF) * k[ko + x];
                        out[rowOut + xx * ch + b] = (byte) clip8(ss);
                    }
                }
            }
            cur = out;
            curW = outW;
        }
        if (outH != h) {
            Coeffs c = precompute(h, outH);
            int[] k = fixed(c.k);
            int stride = curW * ch;
            byte[] out = new byte[outH * stride];
            for (int yy = 0; yy < outH; yy++) {
                int ymin = c.bounds[2 * yy], ymax = c.bounds[2 * yy + 1], ko = yy * c.ksize;
                for (int i = 0; i < stride; i++) {
                    int ss = 1 << (PRECISION_BITS - 1);
                    for (int y = 0; y < ymax; y++) ss += (cur[(y + ymin) * stride + i] & 0xFF) * k[ko + y];
                    out[yy * stride + i] = (byte) clip8(ss);
                }
            }
            cur = out;
        }
        return cur == src ? src.clone() : cur;
    }

    /** Pillow's 32-bit integer path (mode I): double weights, ROUND_UP (half away from zero), no clipping. */
    static int[] resample32(int[] src, int w, int h, int outW, int outH) {
        int[] cur = src;
        int curW = w;
        if (outW != w) {
            Coeffs c = precompute(w, outW);
            int[] out = new int[outW * h];
            for (int y = 0; y < h; y++) {
                for (int xx = 0; xx < outW; xx++) {
                    int xmin = c.bounds[2 * xx], xmax = c.bounds[2 * xx + 1], ko = xx * c.ksize;
                    double ss = 0.0;
                    for (int x = 0; x < xmax; x++) ss += cur[y * w + x + xmin] * c.k[ko + x];
                    out[y * outW + xx] = roundUp(ss);
                }
            }
            cur = out;
            curW = outW;
        }
        if (outH != h) {
            Coeffs c = precompute(h, outH);
            int[] out = new int[outH * curW];
            for (int yy = 0; yy < outH; yy++) {
                int ymin = c.bounds[2 * yy], ymax = c.bounds[2 * yy + 1], ko = yy * c.ksize;
                for (int x = 0; x < curW; x++) {
                    double ss = 0.0;
                    for (int y = 0; y < ymax; y++) ss += cur[(y + ymin) * curW + x] * c.k[ko + y];
                    out[yy * curW + x] = roundUp(ss);
                }
            }
            cur = out;
        }
        return cur == src ? src.clone() : cur;
    }

    private static int roundUp(double f) { return (int) (f >= 0.0 ? f + 0.5f : f - 0.5f); }

    /**
     * PIL NEAREST resize (ImagingScaleAffine): source x = int(x0 + i·a) with a = in/out accumulated by repeated
     * addition in double, starting at half a step (pixel centres).
     */
    static byte[] nearest(byte[] src, int w, int h, int ch, int outW, int outH) {
        int[] xin = nearestTable(w, outW), yin = nearestTable(h, outH);
        byte[] out = new byte[outW * outH * ch];
        for (int y = 0; y < outH; y++) {
            for (int x = 0; x < outW; x++) {
                System.arraycopy(src, (yin[y] * w + xin[x]) * ch, out, (y * outW + x) * ch, ch);
            }
        }
        return out;
    }

    private static int[] nearestTable(int in, int out) {
        double a = (double) in / out;
        double xo = a * 0.5;
        int[] t = new int[out];
        for (int i = 0; i < out; i++) {
            int v = xo < 0 ? -1 : (int) xo;
            t[i] = Math.min(Math.max(v, 0), in - 1);
            xo += a;
        }
        return t;
    }

    /** RGBA → RGBa (Pillow rgbA2rgba / LA → La): c·a/255 with MULDIV255 rounding. Alpha is the last channel. */
    static byte[] premultiply(byte[] p, int ch) {
        byte[] out = new byte[p.length];
        for (int i = 0; i < p.length; i += ch) {
            int a = p[i + ch - 1] & 0xFF;
            for (int c = 0; c < ch - 1; c++) {
                int t = (p[i + c] & 0xFF) * a + 128;
                out[i + c] = (byte) (((t >> 8) + t) >> 8);
            }
            out[i + ch - 1] = (byte) a;
        }
        return out;
    }

    /** RGBa → RGBA (Pillow rgba2rgbA): c·255/a (integer division, clipped) unless a is 0 or 255. In place. */
    static void unpremultiply(byte[] p, int ch) {
        for (int i = 0; i < p.length; i += ch) {
            int a = p[i + ch - 1] & 0xFF;
            if (a == 0 || a == 255) continue;
            for (int c = 0; c < ch - 1; c++) p[i + c] = (byte) Math.min(255, (255 * (p[i + c] & 0xFF)) / a);
        }
    }
}
