package dev.kimivl.media;

import dev.kimivl.vision.LoadedImage;
import org.apache.pdfbox.Loader;
import org.apache.pdfbox.pdmodel.PDDocument;
import org.apache.pdfbox.pdmodel.PDPage;
import org.apache.pdfbox.pdmodel.common.PDRectangle;
import org.apache.pdfbox.pdmodel.encryption.InvalidPasswordException;
import org.apache.pdfbox.rendering.ImageType;
import org.apache.pdfbox.rendering.PDFRenderer;

import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * A PDF whose pages become images, rendered with PDFBox 3 (RGB on white, text antialiased). Page numbers are
 * 1-based, as people count them. Not thread-safe; close it to release the file.
 */
public final class PdfDocument implements AutoCloseable {
    /** PDF user space: 72 units per inch. */
    private static final float POINTS_PER_INCH = 72f;

    private final String name;          // the file, or what the caller calls the bytes: in every message
    private final String shortName;     // the file name alone: in page names
    private final PDDocument doc;
    private final PDFRenderer renderer;

    private PdfDocument(String name, String shortName, PDDocument doc) {
        this.name = name;
        this.shortName = shortName;
        this.doc = doc;
        this.renderer = new PDFRenderer(doc);
    }

    public static PdfDocument open(Path file) {
        if (!Files.isRegularFile(file)) throw new MediaException(file + ": no such PDF file");
        try {
            return new PdfDocument(file.toString(), file.getFileName().toString(), Loader.loadPDF(file.toFile()));
        } catch (InvalidPasswordException e) {
            throw new MediaException(file + ": the PDF is encrypted with a password", e);
        } catch (IOException | RuntimeException e) {
            throw new MediaException(file + ": not a PDF PDFBox can read: " + e.getMessage(), e);
        }
    }

    /** A PDF held in memory (e.g. a data: URL's bytes); {@code name} stands for it in messages. */
    public static PdfDocument open(byte[] data, String name) {
        try {
            return new PdfDocument(name, name, Loader.loadPDF(data));
        } catch (InvalidPasswordException e) {
            throw new MediaException(name + ": the PDF is encrypted with a password", e);
        } catch (IOException | RuntimeException e) {
            throw new MediaException(name + ": not a PDF PDFBox can read: " + e.getMessage(), e);
        }
    }

    /** The file, or the name given to in-memory bytes. */
    public String name() { return name; }

    public int pageCount() { return doc.getNumberOfPages(); }

    /**
     * The pixel size page {@code page} renders to at {@code dpi}, as PDFBox computes it: the crop box (turned by the
     * page's /Rotate) times dpi/72, rounded down, at least 1.
     */
    public int[] pixelSize(int page, float dpi) {
        PDPage p = page(page);
        PDRectangle box = p.getCropBox();
        float w = box.getWidth(), h = box.getHeight();
        if (p.getRotation() % 180 != 0) { float t = w; w = h; h = t; }
        float scale = dpi / POINTS_PER_INCH;
        return new int[]{Math.max(1, (int) (w * scale)), Math.max(1, (int) (h * scale))};
    }

    /**
     * Renders one page at {@code dpi}.
     *
     * @param maxPixels refuse (before rendering) a page that would be larger than this
     */
    public LoadedImage render(int page, float dpi, long maxPixels) {
        int[] s = pixelSize(page, dpi);
        if ((long) s[0] * s[1] > maxPixels) {
            throw new MediaException(name + ": page " + page + " at " + fmt(dpi) + " dpi would be " + s[0] + "x" + s[1] + " = "
                    + (long) s[0] * s[1] + " pixels, more than the limit of " + maxPixels + " (lower the dpi)");
        }
        try {
            BufferedImage img = renderer.renderImageWithDPI(page - 1, dpi, ImageType.RGB);
            int w = img.getWidth(), h = img.getHeight();
            int[] rgb = img.getRGB(0, 0, w, h, null, 0, w);
            return LoadedImage.ofRgb(shortName + " page " + page, w, h, rgb);
        } catch (IOException | RuntimeException e) {
            throw new MediaException(name + ": cannot render page " + page + ": " + e.getMessage(), e);
        }
    }

    private PDPage page(int page) {
        if (page < 1 || page > pageCount()) throw new MediaException(name + ": no page " + page + " (the PDF has " + pageCount() + ")");
        return doc.getPage(page - 1);
    }

    static String fmt(float dpi) { return dpi == Math.rint(dpi) ? String.valueOf((int) dpi) : String.valueOf(dpi); }

    @Override
    public void close() {
        try { doc.close(); } catch (IOException ignored) { /* read-only: nothing is lost */ }
    }
}
