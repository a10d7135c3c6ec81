package dev.kimivl.vision;

import java.util.Objects;

/**
 * A decoded image as PIL would hold it: size, PIL mode and uint8 samples, interleaved, row-major
 * ({@code pixels[(y·width + x)·channels + c]}, unsigned). Mode {@link ImageMode#I} keeps its 16-bit
 * values in {@link #wide} instead (pixels is then null).
 *
 * @param source where it came from, for error messages (a file name)
 */
public record LoadedImage(String source, int width, int height, ImageMode mode, byte[] pixels, int[] wide) {
    public LoadedImage {
        Objects.requireNonNull(mode, "mode");
        if (width <= 0 || height <= 0) throw new ImageException(source + ": image has zero size " + width + "x" + height);
        long n = (long) width * height * mode.channels;
        long have = mode == ImageMode.I ? (wide == null ? -1 : wide.length) : (pixels == null ? -1 : pixels.length);
        if (have != n) {
            throw new IllegalArgumentException(source + ": " + mode.pilName + " image " + width + "x" + height
                    + " needs " + n + " samples, got " + have);
        }
    }

    /** An 8-bit image (any mode but I). */
    public static LoadedImage of(String source, int width, int height, ImageMode mode, byte[] pixels) {
        return new LoadedImage(source, width, height, mode, pixels, null);
    }

    /** An RGB image from packed 0xRRGGBB ints (e.g. for tests and callers holding their own pixels). */
    public static LoadedImage ofRgb(String source, int width, int height, int[] rgb) {
        byte[] px = new byte[Math.multiplyExact(width * height, 3)];
        for (int i = 0; i < width * height; i++) {
            px[3 * i] = (byte) (rgb[i] >> 16); px[3 * i + 1] = (byte) (rgb[i] >> 8); px[3 * i + 2] = (byte) rgb[i];
        }
        return of(source, width, height, ImageMode.RGB, px);
    }

    /**
     * PIL's {@code convert("RGB")}: grey replicated, alpha dropped without compositing, palette already expanded,
     * CMYK by PIL's cmyk2rgb, mode I clipped to 0..255. Returns [height, width, 3] uint8.
     */
    public byte[] toRgb() {
        int n = width * height;
        byte[] out = new byte[Math.multiplyExact(n, 3)];
        switch (mode) {
            case RGB, P -> System.arraycopy(pixels, 0, out, 0, out.length);
            case RGBA -> { for (int i = 0; i < n; i++) { out[3 * i] = pixels[4 * i]; out[3 * i + 1] = pixels[4 * i + 1]; out[3 * i + 2] = pixels[4 * i + 2]; } }
            case L, ONE -> { for (int i = 0; i < n; i++) out[3 * i] = out[3 * i + 1] = out[3 * i + 2] = pixels[i]; }
            case LA -> { for (int i = 0; i < n; i++) out[3 * i] = out[3 * i + 1] = out[3 * i + 2] = pixels[2 * i]; }
            case I -> {
                for (int i = 0; i < n; i++) {
                    byte v = (byte) Math.max(0, Math.min(255, wide[i]));
                    out[3 * i] = out[3 * i + 1] = out[3 * i + 2] = v;
                }
            }
            case CMYK -> {
                // Pillow's cmyk2rgb: nk = 255 − K; channel = clip(nk − MULDIV255(C, nk))
                for (int i = 0; i < n; i++) {
                    int nk = 255 - (pixels[4 * i + 3] & 0xFF);
                    for (int c = 0; c < 3; c++) {
                        int t = (pixels[4 * i + c] & 0xFF) * nk + 128;
                        int m = ((t >> 8) + t) >> 8;
                        out[3 * i + c] = (byte) Math.max(0, Math.min(255, nk - m));
                    }
                }
            }
        }
        return out;
    }
}
