package dev.kimivl.media.testing;

import dev.kimivl.vision.LoadedImage;
import org.apache.pdfbox.pdmodel.PDDocument;
import org.apache.pdfbox.pdmodel.PDPage;
import org.apache.pdfbox.pdmodel.PDPageContentStream;
import org.apache.pdfbox.pdmodel.common.PDRectangle;
import org.jcodec.api.SequenceEncoder;
import org.jcodec.common.io.NIOUtils;
import org.jcodec.common.model.ColorSpace;
import org.jcodec.common.model.Picture;
import org.jcodec.common.model.Rational;

import javax.imageio.ImageIO;
import java.awt.Color;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Test inputs and comparisons shared by every module that takes video and PDF (kimivl-media's test-jar): the CLI,
 * the LangChain4j models and kimivl-media's own tests compare decoded frames with ffmpeg's pictures the same way.
 */
public final class MediaFixtures {
    private MediaFixtures() {}

    /** kimivl-media's committed test clip and ffmpeg's frameN.png pictures of it, from a sibling module's folder. */
    public static final Path VIDEO = Path.of("../kimivl-media/src/test/resources/video").toAbsolutePath().normalize();

    /** Mean absolute difference per sample (0-255) of two images of the same size. */
    public static double meanDiff(LoadedImage a, LoadedImage b) {
        assertEquals(a.width(), b.width(), "width");
        assertEquals(a.height(), b.height(), "height");
        byte[] x = a.toRgb(), y = b.toRgb();
        long s = 0;
        for (int i = 0; i < x.length; i++) s += Math.abs((x[i] & 0xFF) - (y[i] & 0xFF));
        return s / (double) x.length;
    }

    /** Mean absolute difference per sample (0-255) between an image and a PNG of the same size. */
    public static double meanDiff(LoadedImage a, Path png) throws IOException {
        return meanDiff(a, read(png));
    }

    /** A PNG (or any ImageIO format) as an RGB image. */
    public static LoadedImage read(Path file) throws IOException {
        BufferedImage b = ImageIO.read(file.toFile());
        if (b == null) throw new IOException(file + " is not an image ImageIO reads");
        return LoadedImage.ofRgb(file.getFileName().toString(), b.getWidth(), b.getHeight(), b.getRGB(0, 0, b.getWidth(), b.getHeight(), null, 0, b.getWidth()));
    }

    /** Three pages: 300x300 pt green, 600x300 pt red, 300x600 pt blue (each a full-page fill). */
    public static Path makePdf(Path f) throws IOException {
        float[][] sizes = {{300, 300}, {600, 300}, {300, 600}};
        Color[] colours = {Color.GREEN, Color.RED, Color.BLUE};
        try (PDDocument doc = new PDDocument()) {
            for (int i = 0; i < 3; i++) {
                PDPage page = new PDPage(new PDRectangle(sizes[i][0], sizes[i][1]));
                doc.addPage(page);
                try (PDPageContentStream cs = new PDPageContentStream(doc, page)) {
                    cs.setNonStrokingColor(colours[i]);
                    cs.addRect(0, 0, sizes[i][0], sizes[i][1]);
                    cs.fill();
                }
            }
            doc.save(f.toFile());
        }
        return f;
    }

    /** An H.264 MP4 written by jcodec: frame k is a flat colour of hue 30k degrees with a white square moving right. */
    public static Path makeVideo(Path f, int w, int h, int frames, int fps) throws IOException {
        var ch = NIOUtils.writableChannel(f.toFile());
        try {
            SequenceEncoder enc = SequenceEncoder.createWithFps(ch, Rational.R(fps, 1));
            for (int k = 0; k < frames; k++) {
                Picture pic = Picture.create(w, h, ColorSpace.RGB);
                byte[] d = pic.getPlaneData(0);
                int c = Color.HSBtoRGB((k * 30 % 360) / 360f, 0.8f, 0.8f);
                int sx = k * 4 % Math.max(1, w - 8);
                for (int y = 0; y < h; y++) {
                    for (int x = 0; x < w; x++) {
                        boolean square = x >= sx && x < sx + 8 && y >= h / 2 - 4 && y < h / 2 + 4;
                        int o = (y * w + x) * 3;
                        d[o] = (byte) ((square ? 255 : c >> 16 & 0xFF) - 128);
                        d[o + 1] = (byte) ((square ? 255 : c >> 8 & 0xFF) - 128);
                        d[o + 2] = (byte) ((square ? 255 : c & 0xFF) - 128);
                    }
                }
                enc.encodeNativeFrame(pic);
            }
            enc.finish();
        } finally {
            NIOUtils.closeQuietly(ch);
        }
        return f;
    }
}
