package dev.kimivl.vision;

import org.w3c.dom.Node;

import javax.imageio.ImageIO;
import javax.imageio.ImageReader;
import javax.imageio.metadata.IIOMetadata;
import javax.imageio.stream.FileImageInputStream;
import javax.imageio.stream.ImageInputStream;
import javax.imageio.stream.MemoryCacheImageInputStream;
import java.awt.image.BufferedImage;
import java.awt.image.ColorModel;
import java.awt.image.IndexColorModel;
import java.awt.image.Raster;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Iterator;
import java.util.Locale;

/**
 * Decodes PNG, JPEG (grey, colour, CMYK), WebP (TwelveMonkeys plugin), GIF (first frame) and BMP into the
 * uint8 samples and mode PIL 9.4 gives for the same file, so that preprocessing matches the reference.
 *
 * <p>Samples are always read from the decoded raster, never through {@code BufferedImage.getRGB}: for grey images
 * Java's colour model applies a gamma conversion (off by up to 73 levels) that PIL does not.
 *
 * <p>Decompression-bomb guard: the declared size is read from the header first and images over
 * {@link #maxPixels()} are refused before any pixel is decoded.
 */
public final class ImageLoader {
    /** 64 megapixels: a 8192×8192 image; above this an image is refused unless the limit is raised. */
    public static final long DEFAULT_MAX_PIXELS = 64L * 1024 * 1024;

    private final long maxPixels;
    private final String limitName;

    public ImageLoader() { this(DEFAULT_MAX_PIXELS); }

    public ImageLoader(long maxPixels) { this(maxPixels, "ImageLoader's maxPixels"); }

    /** {@code limitName} is what the over-the-limit error tells the user to raise (a CLI flag, a setting). */
    public ImageLoader(long maxPixels, String limitName) {
        if (maxPixels <= 0) throw new IllegalArgumentException(limitName + " must be positive: " + maxPixels);
        this.maxPixels = maxPixels;
        this.limitName = limitName;
    }

    public long maxPixels() { return maxPixels; }

    /** Decodes one image file. Errors ({@link ImageException}) name the file. */
    public LoadedImage load(Path file) {
        String name = file.toString();
        long size;
        try {
            size = Files.size(file);
        } catch (java.nio.file.NoSuchFileException e) {
            throw new ImageException(name + ": image file not found", e);
        } catch (IOException e) {
            throw new ImageException(name + ": cannot read image file (" + e.getMessage() + ")", e);
        }
        if (size == 0) throw new ImageException(name + ": image file is empty (0 bytes)");
        try (ImageInputStream in = new FileImageInputStream(file.toFile())) {
            return decode(in, name, size);
        } catch (IOException e) {
            throw new ImageException(name + ": cannot read image file (" + e.getMessage() + ")", e);
        }
    }

    /** Decodes an image held in memory; {@code name} is used in messages. */
    public LoadedImage load(byte[] bytes, String name) {
        if (bytes.length == 0) throw new ImageException(name + ": image data is empty (0 bytes)");
        try (ImageInputStream in = new MemoryCacheImageInputStream(new ByteArrayInputStream(bytes))) {
            return decode(in, name, bytes.length);
        } catch (IOException e) {
            throw new ImageException(name + ": cannot read image data (" + e.getMessage() + ")", e);
        }
    }

    private LoadedImage decode(ImageInputStream in, String name, long length) throws IOException {
        Iterator<ImageReader> readers = ImageIO.getImageReaders(in);
        if (!readers.hasNext()) {
            throw new ImageException(name + ": not a recognised image (supported: PNG, JPEG, WebP, GIF, BMP)");
        }
        ImageReader reader = readers.next();
        String format = reader.getFormatName().toLowerCase(Locale.ROOT);
        try {
            if (format.equals("webp")) checkRiffLength(in, name, length);
            if (format.equals("gif")) checkGifFirstFrame(in, name);
            reader.setInput(in, true, false);
            // Java's JPEG reader only warns on a truncated stream and fills the rest with grey; PIL raises
            // "image file is truncated". Treat every decoder warning as an error so a bad file is never half-used.
            reader.addIIOReadWarningListener((src, warning) -> {
                throw new ImageException(name + ": corrupt or truncated " + format + " data (" + warning + ")");
            });
            int w, h;
            try {
                w = reader.getWidth(0);
                h = reader.getHeight(0);
            } catch (IOException | RuntimeException e) {
                if (e instanceof ImageException ie) throw ie;
                throw new ImageException(name + ": corrupt " + format + " header (" + e.getMessage() + ")", e);
            }
            if (w <= 0 || h <= 0) throw new ImageException(name + ": image has zero size " + w + "x" + h);
            if ((long) w * h > maxPixels) {
                throw new ImageException(name + ": image is " + w + "x" + h + " = " + ((long) w * h)
                        + " pixels, over the limit of " + maxPixels + " (possible decompression bomb; raise " + limitName + " to allow it)");
            }
            try {
                return switch (format) {
                    case "png" -> decodePng(reader, name, w, h);
                    case "jpeg", "jpg" -> decodeJpeg(reader, name, w, h);
                    case "bmp" -> decodeGeneric(reader.read(0), name, true);
                    default -> decodeGeneric(reader.read(0), name, false); // gif (first frame), webp
                };
            } catch (ImageException e) {
                throw e;
            } catch (IOException | RuntimeException e) {
                throw new ImageException(name + ": corrupt or truncated " + format + " image " + w + "x" + h
                        + " (" + e.getClass().getSimpleName() + ": " + e.getMessage() + ")", e);
            }
        } finally {
            reader.dispose();
        }
    }

    /**
     * The WebP decoder silently decodes a truncated file (missing data comes out as garbage); libwebp, and so PIL,
     * refuses it. The RIFF header declares the file length: compare.
     */
    private static void checkRiffLength(ImageInputStream in, String name, long length) throws IOException {
        in.mark();
        byte[] head = new byte[8];
        in.readFully(head);
        in.reset();
        long declared = ((head[4] & 0xFFL) | (head[5] & 0xFFL) << 8 | (head[6] & 0xFFL) << 16 | (head[7] & 0xFFL) << 24) + 8;
        if (length < declared) {
            throw new ImageException(name + ": truncated WebP file: " + length + " bytes, the RIFF header declares " + declared);
        }
    }

    /**
     * Java's GIF reader decodes a truncated first frame without complaint (the rest stays index 0); PIL raises.
     * Walk the block structure up to the end of the first image's LZW data and fail if the file ends before.
     */
    private static void checkGifFirstFrame(ImageInputStream in, String name) throws IOException {
        in.mark();
        try {
            in.skipBytes(6 + 4);                                   // "GIF89a", logical screen width/height
            int flags = in.readUnsignedByte();
            in.skipBytes(2);
            if ((flags & 0x80) != 0) in.skipBytes(3 << ((flags & 7) + 1));   // global colour table
            while (true) {
                int b = in.readUnsignedByte();
                if (b == 0x21) {                                   // extension: label, then sub-blocks
                    in.readUnsignedByte();
                    skipSubBlocks(in);
                } else if (b == 0x2C) {                            // image descriptor
                    in.skipBytes(8);
                    int f = in.readUnsignedByte();
                    if ((f & 0x80) != 0) in.skipBytes(3 << ((f & 7) + 1));
                    in.readUnsignedByte();                         // LZW minimum code size
                    skipSubBlocks(in);
                    return;
                } else {
                    throw new ImageException(name + ": corrupt GIF: unexpected block 0x" + Integer.toHexString(b) + " before the first image");
                }
            }
        } catch (java.io.EOFException e) {
            throw new ImageException(name + ": truncated GIF: the file ends inside the first frame", e);
        } finally {
            in.reset();
        }
    }

    private static void skipSubBlocks(ImageInputStream in) throws IOException {
        for (int n = in.readUnsignedByte(); n != 0; n = in.readUnsignedByte()) {
            if (in.skipBytes(n) < n) throw new java.io.EOFException();
            in.readUnsignedByte();                                 // peek is not possible: step back one byte
            in.seek(in.getStreamPosition() - 1);
        }
    }

    // ---- PNG: the IHDR colour type and bit depth decide PIL's mode -------------------------------------------

    private LoadedImage decodePng(ImageReader reader, String name, int w, int h) throws IOException {
        IIOMetadata meta = reader.getImageMetadata(0);
        Node ihdr = child(meta.getAsTree("javax_imageio_png_1.0"), "IHDR");
        String colorType = attr(ihdr, "colorType");
        int bitDepth = Integer.parseInt(attr(ihdr, "bitDepth"));
        BufferedImage img = reader.read(0);
        Raster r = img.getRaster();
        return switch (colorType) {
            case "Palette" -> palette(img, name, ImageMode.P);
            case "Grayscale" -> {
                if (bitDepth == 16) yield wideGrey(r, name);
                // PIL: 1-bit grey is mode "1"; 2- and 4-bit grey are "L" scaled to 0..255 (×85, ×17)
                int scale = switch (bitDepth) { case 1 -> 255; case 2 -> 85; case 4 -> 17; default -> 1; };
                yield bands(r, name, bitDepth == 1 ? ImageMode.ONE : ImageMode.L, new int[]{0}, scale, 0);
            }
            // Java adds an alpha band for RGB/grey images with a tRNS chunk; PIL keeps the mode and ignores it in convert("RGB")
            case "GrayAlpha" -> bands(r, name, ImageMode.LA, new int[]{0, 1}, 1, bitDepth == 16 ? 8 : 0);
            case "RGB" -> bands(r, name, ImageMode.RGB, new int[]{0, 1, 2}, 1, bitDepth == 16 ? 8 : 0);
            case "RGBAlpha" -> bands(r, name, ImageMode.RGBA, new int[]{0, 1, 2, 3}, 1, bitDepth == 16 ? 8 : 0);
            default -> throw new ImageException(name + ": unsupported PNG colour type " + colorType);
        };
    }

    // ---- JPEG: grey, YCbCr (decoded by Java exactly as libjpeg does for PIL) and CMYK ------------------------

    private LoadedImage decodeJpeg(ImageReader reader, String name, int w, int h) throws IOException {
        IIOMetadata meta = reader.getImageMetadata(0);
        Node root = meta.getAsTree("javax_imageio_jpeg_image_1.0");
        int components = 3;
        Integer adobeTransform = null;
        Node seq = child(root, "markerSequence");
        if (seq != null) {
            for (Node n = seq.getFirstChild(); n != null; n = n.getNextSibling()) {
                if (n.getNodeName().equals("sof")) components = Integer.parseInt(attr(n, "numFrameComponents"));
            }
        }
        for (Node n = seq == null ? null : seq.getFirstChild(); n != null; n = n.getNextSibling()) {
            if (n.getNodeName().equals("app14Adobe")) adobeTransform = Integer.parseInt(attr(n, "transform"));
        }
        if (components == 4) {
            // Java's reader cannot build a CMYK BufferedImage; read the raw raster. Adobe files (PIL writes them so)
            // store inverted CMYK; PIL reads them with rawmode "CMYK;I". YCCK (transform 2) is converted as libjpeg does.
            Raster r = reader.readRaster(0, null);
            LoadedImage raw = bands(r, name, ImageMode.CMYK, new int[]{0, 1, 2, 3}, 1, 0);
            byte[] p = raw.pixels();
            if (adobeTransform != null && adobeTransform == 2) yccToCmyk(p);
            if (adobeTransform != null) for (int i = 0; i < p.length; i++) p[i] = (byte) (255 - (p[i] & 0xFF));
            return raw;
        }
        if (components != 1 && components != 3) {
            throw new ImageException(name + ": unsupported JPEG with " + components + " components");
        }
        BufferedImage img = reader.read(0);
        Raster r = img.getRaster();
        if (r.getNumBands() == 1) return bands(r, name, ImageMode.L, new int[]{0}, 1, 0);
        return bands(r, name, ImageMode.RGB, new int[]{0, 1, 2}, 1, 0);
    }

    /** libjpeg's YCCK → CMYK (jdcolor.c ycck_cmyk_convert, BITS 16 fixed point), in place on the first 3 channels. */
    private static void yccToCmyk(byte[] p) {
        for (int i = 0; i < p.length; i += 4) {
            int y = p[i] & 0xFF, cb = (p[i + 1] & 0xFF) - 128, cr = (p[i + 2] & 0xFF) - 128;
            int r = y + ((91881 * cr + 32768) >> 16);
            int g = y + ((-22554 * cb - 46802 * cr + 32768) >> 16);
            int b = y + ((116130 * cb + 32768) >> 16);
            p[i] = (byte) (255 - clamp(r)); p[i + 1] = (byte) (255 - clamp(g)); p[i + 2] = (byte) (255 - clamp(b));
        }
    }

    private static int clamp(int v) { return v < 0 ? 0 : Math.min(255, v); }

    // ---- GIF, WebP, BMP and anything else ImageIO reads ---------------------------------------------------------

    private LoadedImage decodeGeneric(BufferedImage img, String name, boolean bmp) {
        ColorModel cm = img.getColorModel();
        Raster r = img.getRaster();
        if (cm instanceof IndexColorModel icm) {
            if (bmp) {
                // PIL's BmpImagePlugin: a palette that is the grey ramp (or black/white for 2 colours) opens as L ("1")
                int n = icm.getMapSize();
                boolean grey = true;
                for (int i = 0; i < n && grey; i++) {
                    int v = n == 2 ? (i == 0 ? 0 : 255) : i;
                    grey = icm.getRed(i) == v && icm.getGreen(i) == v && icm.getBlue(i) == v;
                }
                if (grey) {
                    return n == 2 ? bands(r, name, ImageMode.ONE, new int[]{0}, 255, 0) : bands(r, name, ImageMode.L, new int[]{0}, 1, 0);
                }
            }
            return palette(img, name, ImageMode.P);
        }
        int nb = r.getNumBands();
        if (cm.getColorSpace().getType() == java.awt.color.ColorSpace.TYPE_GRAY || nb <= 2) {
            return nb == 2 ? bands(r, name, ImageMode.LA, new int[]{0, 1}, 1, 0) : bands(r, name, ImageMode.L, new int[]{0}, 1, 0);
        }
        // raster bands follow the colour model's component order: R, G, B (, A)
        return cm.hasAlpha() && nb >= 4 ? bands(r, name, ImageMode.RGBA, new int[]{0, 1, 2, 3}, 1, 0)
                : bands(r, name, ImageMode.RGB, new int[]{0, 1, 2}, 1, 0);
    }

    // ---- raster helpers ---------------------------------------------------------------------------------------

    /** Copies the given raster bands as uint8: sample·scale >> shift (shift 8 keeps the high byte of 16-bit data, as PIL's ";16B" unpackers do). */
    private static LoadedImage bands(Raster r, String name, ImageMode mode, int[] bandIdx, int scale, int shift) {
        int w = r.getWidth(), h = r.getHeight(), nb = r.getNumBands(), ch = bandIdx.length;
        for (int b : bandIdx) if (b >= nb) throw new ImageException(name + ": decoded raster has " + nb + " bands, expected " + ch + " for mode " + mode.pilName);
        byte[] out = new byte[Math.multiplyExact(Math.multiplyExact(w, h), ch)];
        int[] row = new int[w * nb];
        for (int y = 0; y < h; y++) {
            r.getPixels(r.getMinX(), r.getMinY() + y, w, 1, row);
            int o = y * w * ch;
            for (int x = 0; x < w; x++) {
                for (int c = 0; c < ch; c++) out[o++] = (byte) ((row[x * nb + bandIdx[c]] * scale) >> shift);
            }
        }
        return LoadedImage.of(name, w, h, mode, out);
    }

    private static LoadedImage wideGrey(Raster r, String name) {
        int w = r.getWidth(), h = r.getHeight();
        int[] out = new int[Math.multiplyExact(w, h)];
        int[] row = new int[w * r.getNumBands()];
        for (int y = 0; y < h; y++) {
            r.getPixels(r.getMinX(), r.getMinY() + y, w, 1, row);
            for (int x = 0; x < w; x++) out[y * w + x] = row[x * r.getNumBands()];
        }
        return new LoadedImage(name, w, h, ImageMode.I, null, out);
    }

    /** Palette indices mapped through the palette to RGB (PIL's convert("RGB") ignores palette transparency). */
    private static LoadedImage palette(BufferedImage img, String name, ImageMode mode) {
        IndexColorModel icm = (IndexColorModel) img.getColorModel();
        Raster r = img.getRaster();
        int n = icm.getMapSize();
        byte[] reds = new byte[n], greens = new byte[n], blues = new byte[n];
        icm.getReds(reds); icm.getGreens(greens); icm.getBlues(blues);
        int w = r.getWidth(), h = r.getHeight();
        byte[] out = new byte[Math.multiplyExact(w * h, 3)];
        int[] row = new int[w];
        for (int y = 0; y < h; y++) {
            r.getSamples(r.getMinX(), r.getMinY() + y, w, 1, 0, row);
            for (int x = 0; x < w; x++) {
                int i = row[x], o = 3 * (y * w + x);
                if (i >= n) throw new ImageException(name + ": palette index " + i + " outside the " + n + "-colour palette at (" + x + ", " + y + ")");
                out[o] = reds[i]; out[o + 1] = greens[i]; out[o + 2] = blues[i];
            }
        }
        return LoadedImage.of(name, w, h, mode, out);
    }

    private static Node child(Node n, String name) {
        for (Node c = n == null ? null : n.getFirstChild(); c != null; c = c.getNextSibling()) {
            if (c.getNodeName().equals(name)) return c;
        }
        return null;
    }

    private static String attr(Node n, String a) {
        Node v = n == null ? null : n.getAttributes().getNamedItem(a);
        if (v == null) throw new ImageException("image metadata lacks " + a);
        return v.getNodeValue();
    }
}
