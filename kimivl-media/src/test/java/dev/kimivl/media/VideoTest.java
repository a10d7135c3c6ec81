package dev.kimivl.media;

import static dev.kimivl.media.testing.MediaFixtures.meanDiff;
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

    /** The decoded frame matches ffmpeg's picture of the same frame, and clearly not its neighbours' pictures. */
    static void assertFrame(int frame, LoadedImage got) { assertFrame(frame, got, true); }

    /**
     * @param sameEncode the picture comes from clip.mp4 itself (then it must be within 3 levels of ffmpeg's and
     *                   twice as close as any other frame); from another encode of the same source, it must only be
     *                   within 3 levels and closer than any other frame (hue repeats every 9 frames, so frames 9
     *                   apart differ only in the moving shapes)
     */
    static void assertFrame(int frame, LoadedImage got, boolean sameEncode) {
        double own = meanDiff(got, png(frame));
        System.out.printf("frame %d: mean |jcodec - ffmpeg| = %.2f%n", frame, own);
        assertTrue(own < 3.0, "frame " + frame + ": mean difference to ffmpeg's frame " + own);
        for (int other : new int[]{0, 4, 5, 6, 10, 15, 20, 25, 30, 35, 39}) {
            if (other == frame) continue;
            double d = meanDiff(got, png(other));
            assertTrue(sameEncode ? d > 2 * own + 1 : d > own, "frame " + frame + " looks like ffmpeg's frame " + other + " (" + d + " vs " + own + ")");
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

    /**
     * vfr.mp4 is the same picture with every frame n where n % 3 == 1 left out (the others keep their times n/10 s):
     * the frame shown at a time in a gap is the one before it.
     */
    @Test
    void aVariableFrameRateTakesThePictureShowingAtEachTime() {
        try (Video v = Video.open(resource("video/vfr.mp4"), Long.MAX_VALUE)) {
            assertEquals(27, v.info().frames());
            // 0.1 s: frame 1 is missing, frame 0 shows from 0 to 0.2; 0.5 s: frame 5; 1.65 s: frame 16 missing, 15 shows
            List<LoadedImage> got = v.frames(new FrameSampling.Plan(new int[]{1, 3, 11}, new double[]{0.1, 0.5, 1.65}, 3, false), im -> im, null);
            assertFrame(0, got.get(0), false);
            assertFrame(5, got.get(1), false);
            assertFrame(15, got.get(2), false);
            // sampled plans over the whole file decode without gaps or errors, in order and backwards
            for (int n : new int[]{4, 16, 27}) assertEquals(n, v.frames(FrameSampling.frames(n, 64).plan(27, 4.0), im -> im, null).size());
            assertFrame(0, v.frames(new FrameSampling.Plan(new int[]{0}, new double[]{0.0}, 1, false), im -> im, null).getFirst(), false);
        }
    }

    @Test
    void parallelDecodingGivesTheSameFramesInOrder() throws IOException {
        for (String clip : new String[]{"video/clip.mp4", "video/vfr.mp4"}) {
            for (boolean bytes : new boolean[]{clip.contains("vfr")}) {          // a file, and bytes in memory
                try (Video v = bytes ? Video.open(Files.readAllBytes(resource(clip)), clip, Long.MAX_VALUE) : Video.open(resource(clip), Long.MAX_VALUE)) {
                    FrameSampling.Plan plan = FrameSampling.perSecond(10, 64).plan(v.info().frames(), v.info().durationSeconds());
                    List<LoadedImage> one = v.frames(plan, im -> im, null);
                    for (int threads : new int[]{3}) {
                        java.util.concurrent.atomic.AtomicInteger calls = new java.util.concurrent.atomic.AtomicInteger();
                        int[] last = {0};
                        List<LoadedImage> many = v.frames(plan, im -> im, (done, total, sec) -> { calls.incrementAndGet(); last[0] = done; assertEquals(plan.size(), total); }, threads);
                        assertEquals(one.size(), many.size());
                        for (int i = 0; i < one.size(); i++) {
                            assertArrayEquals(one.get(i).pixels(), many.get(i).pixels(), clip + " frame " + i + " on " + threads + " threads");
                        }
                        assertEquals(plan.size(), calls.get());
                        assertEquals(plan.size(), last[0]);
                    }
                }
            }
        }
    }

    @Test
    void readsTheSameFramesFromBytesInMemory() throws IOException {
        try (Video v = Video.open(Files.readAllBytes(CLIP), "upload", Long.MAX_VALUE)) {
            assertEquals(40, v.info().frames());
            List<LoadedImage> frames = v.frames(FrameSampling.frames(2, 8).plan(40, 4.0), im -> im, null);
            assertFrame(10, frames.get(0));
            assertFrame(30, frames.get(1));
            assertEquals("upload frame at 00:01", frames.get(0).source());
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
