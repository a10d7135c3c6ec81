package dev.kimivl.vision;

import dev.kimivl.config.PreprocessorConfig;
import dev.kimivl.config.VisionConfig;

/**
 * KimiVLImageProcessor (spec §3): token-limit downscale with PIL bicubic, right/bottom zero padding to multiples
 * of merge·patch (28), normalisation {@code (u8/255f − mean)/std} in float32, patchify in (c, y, x) order.
 */
public final class ImagePreprocessor {
    private final PreprocessorConfig cfg;
    private final float[] mean = new float[3], std = new float[3];

    public ImagePreprocessor(PreprocessorConfig cfg) {
        this.cfg = cfg;
        if (cfg.imageMean().length != 3 || cfg.imageStd().length != 3) {
            throw new IllegalArgumentException("preprocessor_config.json: image_mean/image_std need 3 values, got "
                    + cfg.imageMean().length + "/" + cfg.imageStd().length);
        }
        for (int c = 0; c < 3; c++) { mean[c] = (float) cfg.imageMean()[c]; std[c] = (float) cfg.imageStd()[c]; }
    }

    public PreprocessorConfig config() { return cfg; }

    /** Size after the token-limit downscale: unchanged unless (W div P)·(H div P) > in_token_limit. Never upscales. */
    public static int[] resizedSize(int width, int height, PreprocessorConfig cfg) {
        int p = cfg.patchSize();
        long patches = (long) (width / p) * (height / p);
        if (patches <= cfg.inTokenLimit()) return new int[]{width, height};
        double s = Math.sqrt(cfg.inTokenLimit() / (double) patches);
        return new int[]{Math.max(1, (int) (width * s)), Math.max(1, (int) (height * s))};
    }

    /** Final (width, height) after the resize and the pad (or the centre crop when pad_input is false). */
    public static int[] paddedSize(int width, int height, PreprocessorConfig cfg) {
        int[] r = resizedSize(width, height, cfg);
        if (!cfg.padInput()) {
            int p = cfg.patchSize();
            return new int[]{r[0] / p * p, r[1] / p * p};
        }
        int qw = cfg.mergeW() * cfg.patchSize(), qh = cfg.mergeH() * cfg.patchSize();
        return new int[]{r[0] + (qw - r[0] % qw) % qw, r[1] + (qh - r[1] % qh) % qh};
    }

    /** Patch grid (gh, gw) an image of this size gets. */
    public static int[] gridFor(int width, int height, PreprocessorConfig cfg) {
        int[] s = paddedSize(width, height, cfg);
        return new int[]{s[1] / cfg.patchSize(), s[0] / cfg.patchSize()};
    }

    /** Number of image tokens (placeholders in the prompt) an image of this size produces: (gh/mh)·(gw/mw). */
    public static int tokensFor(int width, int height, PreprocessorConfig cfg) {
        int[] g = gridFor(width, height, cfg);
        return (g[0] / cfg.mergeH()) * (g[1] / cfg.mergeW());
    }

    public PreprocessedImage process(LoadedImage im) {
        int p = cfg.patchSize();
        int[] rs = resizedSize(im.width(), im.height(), cfg);
        LoadedImage r = PilResize.resize(im, rs[0], rs[1]);
        int[] ps = paddedSize(im.width(), im.height(), cfg);
        int pw = ps[0], ph = ps[1];
        int gh = ph / p, gw = pw / p;
        if (gh == 0 || gw == 0) {
            throw new ImageException(im.source() + ": image " + im.width() + "x" + im.height() + " is smaller than one " + p + "x" + p + " patch");
        }
        if (gh >= VisionConfig.ROPE_GRID || gw >= VisionConfig.ROPE_GRID) {
            throw new ImageException(im.source() + ": image " + im.width() + "x" + im.height() + " gives a patch grid of "
                    + gh + "x" + gw + "; the vision encoder's position grid allows at most " + (VisionConfig.ROPE_GRID - 1)
                    + " patches per side (lower in_token_limit or resize the image)");
        }
        if (gh % cfg.mergeH() != 0 || gw % cfg.mergeW() != 0) {
            throw new ImageException(im.source() + ": patch grid " + gh + "x" + gw + " is not divisible by the "
                    + cfg.mergeH() + "x" + cfg.mergeW() + " merge (pad_input is false)");
        }
        byte[] rgb = r.toRgb();
        int rw = r.width(), rh = r.height();
        // centre-crop offsets (torchvision center_crop: round half to even) when pad_input is false; 0 when padding
        int ox = cfg.padInput() ? 0 : (int) Math.rint((rw - pw) / 2.0);
        int oy = cfg.padInput() ? 0 : (int) Math.rint((rh - ph) / 2.0);
        // channel planes of the padded image, normalised in float32 exactly as to_tensor + normalize
        float[][] norm = new float[3][256];
        for (int c = 0; c < 3; c++) for (int v = 0; v < 256; v++) norm[c][v] = ((float) v / 255f - mean[c]) / std[c];
        int pp = p * p, rowLen = 3 * pp;
        float[] out = new float[Math.multiplyExact(gh * gw, rowLen)];
        for (int gy = 0; gy < gh; gy++) {
            for (int gx = 0; gx < gw; gx++) {
                int base = (gy * gw + gx) * rowLen;
                for (int y = 0; y < p; y++) {
                    int sy = gy * p + y + oy;
                    for (int x = 0; x < p; x++) {
                        int sx = gx * p + x + ox;
                        boolean inside = sy < rh && sx < rw;   // the pad region is black (0) before normalisation
                        int o = (sy * rw + sx) * 3;
                        for (int c = 0; c < 3; c++) {
                            int v = inside ? rgb[o + c] & 0xFF : 0;
                            out[base + c * pp + y * p + x] = norm[c][v];
                        }
                    }
                }
            }
        }
        return new PreprocessedImage(im.source(), im.width(), im.height(), rw, rh, pw, ph, gh, gw, out);
    }
}
