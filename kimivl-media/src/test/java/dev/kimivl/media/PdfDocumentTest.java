package dev.kimivl.media;

import dev.kimivl.vision.LoadedImage;
import org.apache.pdfbox.pdmodel.PDDocument;
import org.apache.pdfbox.pdmodel.PDPage;
import org.apache.pdfbox.pdmodel.PDPageContentStream;
import org.apache.pdfbox.pdmodel.common.PDRectangle;
import org.apache.pdfbox.pdmodel.font.PDType1Font;
import org.apache.pdfbox.pdmodel.font.Standard14Fonts;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.awt.Color;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.*;

/** PDF pages as images: a three-page document made here with PDFBox, rendered back and looked at. */
class PdfDocumentTest {
    /** Page sizes in points: A4 portrait, A4 landscape, and a small 144x72 page (2x1 inches). */
    static final float[][] SIZES = {{595, 842}, {842, 595}, {144, 72}};
    /** The coloured square on each page: (x, y) of its lower-left corner in points, 36 pt wide. */
    static final Color[] COLOURS = {Color.RED, new Color(0, 160, 0), Color.BLUE};

    /** Writes the test document: on page i a square of COLOURS[i] at (18, 18) from the top-left, and "Page i+1" in black. */
    static Path makePdf(Path dir) throws IOException {
        Path f = dir.resolve("three-pages.pdf");
        try (PDDocument doc = new PDDocument()) {
            for (int i = 0; i < 3; i++) {
                PDPage page = new PDPage(new PDRectangle(SIZES[i][0], SIZES[i][1]));
                doc.addPage(page);
                try (PDPageContentStream cs = new PDPageContentStream(doc, page)) {
                    cs.setNonStrokingColor(COLOURS[i]);
                    cs.addRect(18, SIZES[i][1] - 18 - 36, 36, 36);        // PDF y runs up from the bottom
                    cs.fill();
                    cs.setNonStrokingColor(Color.BLACK);
                    cs.beginText();
                    cs.setFont(new PDType1Font(Standard14Fonts.FontName.HELVETICA_BOLD), 24);
                    cs.newLineAtOffset(66, SIZES[i][1] - 48);
                    cs.showText("Page " + (i + 1));
                    cs.endText();
                }
            }
            doc.save(f.toFile());
        }
        return f;
    }

    static int[] rgbAt(LoadedImage im, int x, int y) {
        byte[] p = im.pixels();
        int o = (y * im.width() + x) * 3;
        return new int[]{p[o] & 0xFF, p[o + 1] & 0xFF, p[o + 2] & 0xFF};
    }

    @Test
    void rendersEveryPageAtItsSizeWithItsContent(@TempDir Path tmp) throws IOException {
        try (PdfDocument pdf = PdfDocument.open(makePdf(tmp))) {
            assertEquals(3, pdf.pageCount());
            for (int page = 1; page <= 3; page++) {
                float[] pt = SIZES[page - 1];
                assertArrayEquals(new int[]{(int) pt[0], (int) pt[1]}, pdf.pixelSize(page, 72), "page " + page + " at 72 dpi");
                LoadedImage im = pdf.render(page, 144, Long.MAX_VALUE);
                assertEquals((int) (pt[0] * 2), im.width(), "page " + page + " width at 144 dpi");
                assertEquals((int) (pt[1] * 2), im.height(), "page " + page + " height at 144 dpi");
                assertArrayEquals(pdf.pixelSize(page, 144), new int[]{im.width(), im.height()});
                // the square spans (18..54, 18..54) pt from the top-left = (36..108) px at 144 dpi: its centre is 72, 72
                Color c = COLOURS[page - 1];
                assertArrayEquals(new int[]{c.getRed(), c.getGreen(), c.getBlue()}, rgbAt(im, 72, 72), "square of page " + page);
                assertArrayEquals(new int[]{255, 255, 255}, rgbAt(im, 20, im.height() - 20), "blank corner of page " + page);
                // the text "Page n" from x = 66 pt, baseline 48 pt from the top, 24 pt high: dark pixels in that band
                int dark = 0;
                for (int y = 2 * 30; y < 2 * 48; y++) {
                    for (int x = 2 * 66; x < Math.min(im.width(), 2 * 140); x++) if (rgbAt(im, x, y)[0] < 80) dark++;
                }
                assertTrue(dark > 200, "page " + page + ": the text band has only " + dark + " dark pixels");
            }
        }
    }

    @Test
    void readsAPdfFromBytesInMemory(@TempDir Path tmp) throws IOException {
        try (PdfDocument pdf = PdfDocument.open(Files.readAllBytes(makePdf(tmp)), "upload.pdf")) {
            assertEquals(3, pdf.pageCount());
            LoadedImage im = pdf.render(3, 72, Long.MAX_VALUE);
            assertEquals(144, im.width());
            assertEquals("upload.pdf page 3", im.source());
        }
        MediaException e = assertThrows(MediaException.class, () -> PdfDocument.open("%PDF-1.4 nothing".getBytes(), "upload.pdf"));
        assertTrue(e.getMessage().startsWith("upload.pdf: not a PDF"), e.getMessage());
    }

    @Test
    void refusesPagesOverThePixelLimitBeforeRendering(@TempDir Path tmp) throws IOException {
        try (PdfDocument pdf = PdfDocument.open(makePdf(tmp))) {
            MediaException e = assertThrows(MediaException.class, () -> pdf.render(1, 600, 10_000_000));
            assertTrue(e.getMessage().contains("page 1 at 600 dpi would be 4958x7016"), e.getMessage());
            assertThrows(MediaException.class, () -> pdf.render(4, 72, Long.MAX_VALUE));
        }
    }

    @Test
    void namesTheFileThatIsNoPdf(@TempDir Path tmp) throws IOException {
        Path junk = Files.writeString(tmp.resolve("notes.pdf"), "hello");
        MediaException e = assertThrows(MediaException.class, () -> PdfDocument.open(junk));
        assertTrue(e.getMessage().startsWith(junk + ": not a PDF"), e.getMessage());
        e = assertThrows(MediaException.class, () -> PdfDocument.open(tmp.resolve("none.pdf")));
        assertTrue(e.getMessage().contains("no such PDF"), e.getMessage());
    }

    @Test
    void pageRanges() {
        assertArrayEquals(new int[]{1, 2, 3, 4, 5}, PageRange.parse(null, 5));
        assertArrayEquals(new int[]{2, 3, 4, 5}, PageRange.parse("2-5", 5));
        assertArrayEquals(new int[]{1, 4, 3, 4, 5}, PageRange.parse("1, 4,3-", 5));
        assertArrayEquals(new int[]{3}, PageRange.parse("3", 5));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> PageRange.parse("2-9", 5));
        assertTrue(e.getMessage().contains("has 5 pages"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> PageRange.parse("0-2", 5));
        assertThrows(IllegalArgumentException.class, () -> PageRange.parse("4-2", 5));
        assertThrows(IllegalArgumentException.class, () -> PageRange.parse("two", 5));
    }
}
