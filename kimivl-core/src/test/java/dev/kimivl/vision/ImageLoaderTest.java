package dev.kimivl.vision;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.io.ByteArrayOutputStream;
import java.io.DataOutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.zip.CRC32;
import java.util.zip.Deflater;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Decoding and PIL-mode resize against pixels recorded with Pillow 9.4 (src/test/python/make_image_fixtures.py):
 * each fixture's convert("RGB"), and its resize((26, 19), BICUBIC).convert("RGB") in the image's own mode.
 */
class ImageLoaderTest {
    static Path images() throws Exception {
        return Path.of(ImageLoaderTest.class.getResource("/images/manifest.json").toURI()).getParent();
    }

    static List<JsonNode> fixtures() throws Exception {
        List<JsonNode> out = new ArrayList<>();
        new ObjectMapper().readTree(images().resolve("manifest.json").toFile()).get("images").forEach(out::add);
        return out;
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("fixtures")
    void decodesAndResizesLikePil(JsonNode f) throws Exception {
        Path dir = images();
        String file = f.get("file").asText();
        LoadedImage im = new ImageLoader().load(dir.resolve(file));
        assertEquals(f.get("mode").asText(), im.mode().pilName, file + " mode");
        assertEquals(f.get("width").asInt(), im.width());
        assertEquals(f.get("height").asInt(), im.height());
        boolean exact = f.get("exact").asBoolean();
        // lossy WebP: TwelveMonkeys' VP8 decoder is not libwebp (chroma upsampling differs, so sharp colour
        // edges differ by up to ~100 levels, mean ~4.9 on this noisy fixture); only the mean is bounded. Every other format is exact.
        double meanTol = exact ? 0 : 6.0;
        compare(file, Files.readAllBytes(dir.resolve(file + ".rgb")), im.toRgb(), exact, meanTol);
        LoadedImage r = PilResize.resize(im, f.get("rw").asInt(), f.get("rh").asInt());
        assertEquals(im.mode(), r.mode());
        compare(file + " resized", Files.readAllBytes(dir.resolve(file + ".resized.rgb")), r.toRgb(), exact, meanTol);
    }

    static void compare(String what, byte[] want, byte[] got, boolean exact, double meanTol) {
        assertEquals(want.length, got.length, what + " size");
        int max = 0, at = -1;
        long sum = 0;
        for (int i = 0; i < want.length; i++) {
            int d = Math.abs((want[i] & 0xFF) - (got[i] & 0xFF));
            sum += d;
            if (d > max) { max = d; at = i; }
        }
        double mean = (double) sum / want.length;
        if (!exact) System.out.printf("%s: lossy decode vs libwebp: max |Δ| %d, mean |Δ| %.2f%n", what, max, mean);
        if (exact ? max > 0 : mean > meanTol) {
            fail(what + ": max |Δ| " + max + " at sample " + at + " (pixel " + at / 3 + "), mean |Δ| " + mean);
        }
    }

    // ---- rejected inputs ----------------------------------------------------------------------------------------

    @Test
    void emptyFileIsRejected(@TempDir Path tmp) throws Exception {
        Path p = Files.write(tmp.resolve("empty.png"), new byte[0]);
        ImageException e = assertThrows(ImageException.class, () -> new ImageLoader().load(p));
        assertTrue(e.getMessage().contains("empty.png") && e.getMessage().contains("empty"), e.getMessage());
    }

    @Test
    void garbageIsRejected(@TempDir Path tmp) throws Exception {
        Path p = Files.write(tmp.resolve("garbage.jpg"), "this is not an image at all".getBytes());
        ImageException e = assertThrows(ImageException.class, () -> new ImageLoader().load(p));
        assertTrue(e.getMessage().contains("garbage.jpg") && e.getMessage().contains("not a recognised image"), e.getMessage());
    }

    @Test
    void truncatedFilesAreRejected(@TempDir Path tmp) throws Exception {
        for (String name : List.of("rgb.png", "rgb420.jpg", "lossless.webp", "anim.gif", "rgb.bmp")) {
            byte[] full = Files.readAllBytes(images().resolve(name));
            // a quarter: inside the first frame of the GIF too (PIL reads a GIF cut after its first frame, and so do we)
            Path p = Files.write(tmp.resolve("cut-" + name), Arrays.copyOf(full, full.length / 4));
            ImageException e = assertThrows(ImageException.class, () -> new ImageLoader().load(p), name);
            assertTrue(e.getMessage().contains("cut-" + name), e.getMessage());
        }
    }

    @Test
    void corruptPngDataIsRejected(@TempDir Path tmp) throws Exception {
        byte[] png = Files.readAllBytes(images().resolve("rgb.png"));
        for (int i = 60; i < png.length - 20; i += 7) png[i] ^= 0x5A;   // scramble the compressed data, keep the header
        Path p = Files.write(tmp.resolve("scrambled.png"), png);
        ImageException e = assertThrows(ImageException.class, () -> new ImageLoader().load(p));
        assertTrue(e.getMessage().contains("scrambled.png"), e.getMessage());
    }

    @Test
    void decompressionBombIsRefusedFromTheHeader(@TempDir Path tmp) throws Exception {
        // a valid-looking PNG declaring 100000 × 100000 pixels with a tiny IDAT: refused before decoding
        Path p = Files.write(tmp.resolve("bomb.png"), pngHeaderOnly(100_000, 100_000));
        long t0 = System.nanoTime();
        ImageException e = assertThrows(ImageException.class, () -> new ImageLoader().load(p));
        assertTrue(e.getMessage().contains("bomb.png") && e.getMessage().contains("100000x100000")
                && e.getMessage().contains("over the limit"), e.getMessage());
        assertTrue(System.nanoTime() - t0 < 2_000_000_000L, "refused without decoding");
        // the limit is configurable: a 48x36 image is refused under a 1000-pixel limit
        assertThrows(ImageException.class, () -> new ImageLoader(1000).load(images().resolve("rgb.png")));
    }

    @Test
    void zeroSizeHeaderIsRejected(@TempDir Path tmp) throws Exception {
        Path p = Files.write(tmp.resolve("zero.png"), pngHeaderOnly(0, 16));
        ImageException e = assertThrows(ImageException.class, () -> new ImageLoader().load(p));
        assertTrue(e.getMessage().contains("zero.png"), e.getMessage());
    }

    /** An 8-bit RGB PNG with the given IHDR size and one small zlib stream of zero rows (not enough for the size). */
    static byte[] pngHeaderOnly(int w, int h) throws Exception {
        ByteArrayOutputStream bos = new ByteArrayOutputStream();
        DataOutputStream out = new DataOutputStream(bos);
        out.write(new byte[]{(byte) 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'});
        ByteArrayOutputStream ihdr = new ByteArrayOutputStream();
        DataOutputStream d = new DataOutputStream(ihdr);
        d.writeInt(w); d.writeInt(h); d.write(new byte[]{8, 2, 0, 0, 0});
        chunk(out, "IHDR", ihdr.toByteArray());
        Deflater def = new Deflater();
        def.setInput(new byte[1024]);
        def.finish();
        byte[] buf = new byte[256];
        int n = def.deflate(buf);
        chunk(out, "IDAT", Arrays.copyOf(buf, n));
        chunk(out, "IEND", new byte[0]);
        return bos.toByteArray();
    }

    static void chunk(DataOutputStream out, String type, byte[] data) throws Exception {
        out.writeInt(data.length);
        byte[] t = type.getBytes();
        out.write(t);
        out.write(data);
        CRC32 crc = new CRC32();
        crc.update(t);
        crc.update(data);
        out.writeInt((int) crc.getValue());
    }
}
