package dev.kimivl.media;

import dev.kimivl.vision.LoadedImage;
import org.junit.jupiter.api.Test;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/**
 * clip.mp4: ffmpeg's testsrc2 pattern with the hue turned 40° a frame, 100x60 (coded 112x64, so the crop matters), 10 fps, 4 s = 40 frames,
 * H.264 with B-frames and a keyframe every 10 frames (made by src/test/resources/video/make.sh). frameN.png are the
 * same frames as ffmpeg decodes them; jcodec must give the same pictures within YUV→RGB rounding.
 */
class VideoTest {
    static final Path CLIP = resource("video/clip.mp4");

    static Path resource(String name) {
        try {
            return Path.of(VideoTest.class.getClassLoader().getResource(name).toURI());
        } catch (Exception e) {
            throw new AssertionError("test resource " + name + " missing", e);
        }
    }

    static LoadedImage png(int frame) {
        try (InputStream in = Files.newInputStream(resource("video/frame" + frame + ".png"))) {
            BufferedImage b = ImageIO.read(in);
            return LoadedImage.ofRgb("frame" + frame + ".png", b.getWidth(), b.getHeight(), b.getRGB(0, 0, b.getWidth(), b.getHeight(), null, 0, b.getWidth()));
        } catch (IOException e) {
            throw new AssertionError(e);
        }
    }

    /** Mean absolute difference per sample (0-255). */
    static double meanDiff(LoadedImage a, LoadedImage b) {
        assertEquals(a.width(), b.width(), "width");
        assertEquals(a.height(), b.height(), "height");
        byte[] x = a.toRgb(), y = b.toRgb();
        long s = 0;
        for (int i = 0; i < x.length; i++) s += Math.abs((x[i] & 0xFF) - (y[i] & 0xFF));
        return s / (double) x.length;
    }

    /** The decoded frame matches ffmpeg's picture of the same frame, and clearly not its neighbours' pictures. */
    static void assertFrame(int frame, LoadedImage got) {
        double own = meanDiff(got, png(frame));
        System.out.printf("frame %d: mean |jcodec - ffmpeg| = %.2f%n", frame, own);
        assertTrue(own < 3.0, "frame " + frame + ": mean difference to ffmpeg's frame " + own);
        for (int other : new int[]{0, 4, 5, 6, 10, 15, 20, 25, 30, 35, 39}) {
            if (other == frame) continue;
            double d = meanDiff(got, png(other));
            assertTrue(d > 2 * own + 1, "frame " + frame + " looks like ffmpeg's frame " + other + " (" + d + " vs " + own + ")");
        }
    }

    @Test
    void readsTheTrackHeader() {
        try (Video v = Video.open(CLIP, Long.MAX_VALUE)) {
            assertEquals(new Video.Info(100, 60, 40, 4.0), v.info());
            assertEquals(10.0, v.info().fps(), 1e-9);
        }
    }

    @Test
    void aFixedCountOfFramesMatchesFfmpeg() {
        try (Video v = Video.open(CLIP, Long.MAX_VALUE)) {
            FrameSampling.Plan plan = FrameSampling.frames(4, 64).plan(v.info().frames(), v.info().durationSeconds());
            assertArrayEquals(new int[]{5, 15, 25, 35}, plan.frames());
            assertArrayEquals(new double[]{0.5, 1.5, 2.5, 3.5}, plan.seconds(), 1e-9);
            int[] progress = {0};
            List<LoadedImage> frames = v.frames(plan, im -> im, (done, total, sec) -> { assertEquals(++progress[0], done); assertEquals(4, total); });
            assertEquals(4, progress[0]);
            for (int i = 0; i < 4; i++) assertFrame(plan.frames()[i], frames.get(i));
        }
    }

    @Test
    void aRateGivesFramesFromTheStart() {
        try (Video v = Video.open(CLIP, Long.MAX_VALUE)) {
            FrameSampling.Plan plan = FrameSampling.perSecond(1, 64).plan(40, 4.0);
            assertArrayEquals(new int[]{0, 10, 20, 30}, plan.frames());
            assertFalse(plan.capped());
            List<LoadedImage> frames = v.frames(plan, im -> im, null);
            for (int i = 0; i < 4; i++) assertFrame(plan.frames()[i], frames.get(i));
        }
    }

    @Test
    void seeksBackwardsAndToTheLastFrame() {
        try (Video v = Video.open(CLIP, Long.MAX_VALUE)) {
            assertFrame(39, v.frame(39));
            assertFrame(5, v.frame(5));
            assertFrame(25, v.frame(25));
            assertFrame(15, v.frame(15));
        }
    }

    @Test
    void readsTheSameFramesFromBytesInMemory() throws IOException {
        try (Video v = Video.open(Files.readAllBytes(CLIP), "upload", Long.MAX_VALUE)) {
            assertEquals(40, v.info().frames());
            List<LoadedImage> frames = v.frames(FrameSampling.frames(2, 8).plan(40, 4.0), im -> im, null);
            assertFrame(10, frames.get(0));
            assertFrame(30, frames.get(1));
            assertEquals("upload frame 10 (00:01)", frames.get(0).source());
        }
        MediaException e = assertThrows(MediaException.class, () -> Video.open(new byte[100], "upload", Long.MAX_VALUE));
        assertTrue(e.getMessage().startsWith("upload: not a video"), e.getMessage());
    }

    @Test
    void framesAreResizedAsTheyAreDecoded() {
        try (Video v = Video.open(CLIP, Long.MAX_VALUE)) {
            var cfg = dev.kimivl.config.PreprocessorConfig.DEFAULT;
            List<LoadedImage> frames = v.frames(FrameSampling.frames(2, 8).plan(40, 4.0), im -> TokenBudget.fit(im, 2, cfg), null);
            for (LoadedImage f : frames) {
                assertTrue(dev.kimivl.vision.ImagePreprocessor.tokensFor(f.width(), f.height(), cfg) <= 2, f.width() + "x" + f.height());
                assertTrue(f.width() < 100 && f.height() < 60);
            }
        }
    }

    @Test
    void refusesFramesOverThePixelLimitAndFilesThatAreNoVideo(@org.junit.jupiter.api.io.TempDir Path tmp) throws IOException {
        MediaException e = assertThrows(MediaException.class, () -> Video.open(CLIP, 100 * 60 - 1));
        assertTrue(e.getMessage().contains("100x60"), e.getMessage());
        Path junk = Files.writeString(tmp.resolve("notes.mp4"), "not a video at all");
        e = assertThrows(MediaException.class, () -> Video.open(junk, Long.MAX_VALUE));
        assertTrue(e.getMessage().startsWith(junk.toString()), e.getMessage());
        e = assertThrows(MediaException.class, () -> Video.open(tmp.resolve("missing.mp4"), Long.MAX_VALUE));
        assertTrue(e.getMessage().contains("no such video"), e.getMessage());
    }
}
