package dev.kimivl.media;

import dev.kimivl.config.PreprocessorConfig;
import dev.kimivl.vision.ImagePreprocessor;
import dev.kimivl.vision.LoadedImage;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** Frame plans, timestamps and token budgets: the arithmetic that decides what a long video costs. */
class SamplingTest {
    @Test
    void aCountSpreadsFramesOverTheWholeVideo() {
        FrameSampling.Plan p = FrameSampling.frames(3, 64).plan(300, 10.0);       // 30 fps, 10 s
        assertArrayEquals(new int[]{50, 150, 250}, p.frames());
        assertArrayEquals(new double[]{50 / 30.0, 5.0, 250 / 30.0}, p.seconds(), 1e-9);
        assertEquals(5, FrameSampling.frames(8, 64).plan(5, 0.2).size(), "more frames asked than the video has: every frame once");
    }

    @Test
    void aRateAboveTheMaximumSpreadsTheMaximumInsteadOfCuttingTheVideo() {
        FrameSampling.Plan p = FrameSampling.perSecond(2, 64).plan(300, 10.0);
        assertEquals(20, p.size());
        assertArrayEquals(new double[]{0, 0.5, 1.0}, java.util.Arrays.copyOf(p.seconds(), 3), 1e-9);
        assertFalse(p.capped());
        FrameSampling.Plan capped = FrameSampling.perSecond(1, 8).plan(30 * 3600, 3600.0);   // an hour at 1 fps, at most 8
        assertTrue(capped.capped());
        assertEquals(3600, capped.requested());
        assertEquals(8, capped.size());
        assertTrue(capped.seconds()[7] > 3300, "the last frame comes from the end of the video, not minute 8: " + capped.seconds()[7]);
    }

    @Test
    void badSamplingIsRefused() {
        assertThrows(IllegalArgumentException.class, () -> FrameSampling.frames(65, 64));
        assertThrows(IllegalArgumentException.class, () -> FrameSampling.perSecond(0, 64));
        assertThrows(IllegalArgumentException.class, () -> FrameSampling.perSecond(Double.NaN, 64));
        assertThrows(IllegalArgumentException.class, () -> FrameSampling.frames(1, 0));
    }

    @Test
    void timestamps() {
        assertEquals("00:00", Timestamps.format(0));
        assertEquals("00:03", Timestamps.format(3.9));
        assertEquals("12:05", Timestamps.format(725));
        assertEquals("1:00:01", Timestamps.format(3601));
    }

    @Test
    void theTokenBudgetShrinksToFitAndNeverGrows() {
        PreprocessorConfig cfg = new PreprocessorConfig(new double[]{.5, .5, .5}, new double[]{.5, .5, .5}, 4096, true, 14, 2, 2);
        for (int budget : new int[]{1, 4, 16, 64, 100, 256, 1024}) {
            for (int[] size : new int[][]{{1920, 1080}, {1080, 1920}, {640, 480}, {3000, 200}, {100, 60}}) {
                int[] s = TokenBudget.fittedSize(size[0], size[1], budget, cfg);
                int tokens = ImagePreprocessor.tokensFor(s[0], s[1], cfg);
                assertTrue(tokens <= budget, size[0] + "x" + size[1] + " fitted to " + budget + " costs " + tokens);
                assertTrue(s[0] <= size[0] && s[1] <= size[1]);
                if (ImagePreprocessor.tokensFor(size[0], size[1], cfg) > budget && budget >= 16) {
                    // not needlessly small: at least half the budget is used, the aspect ratio kept
                    assertTrue(tokens >= budget / 2, size[0] + "x" + size[1] + " fitted to " + budget + " uses only " + tokens);
                    assertEquals(size[0] / (double) size[1], s[0] / (double) s[1], 0.05 * size[0] / size[1]);
                }
            }
        }
        LoadedImage small = LoadedImage.ofRgb("small", 56, 56, new int[56 * 56]);
        assertSame(small, TokenBudget.fit(small, 4, cfg), "an image within the budget is kept as it is");
        assertEquals(28, TokenBudget.fit(small, 1, cfg).width());
    }
}
