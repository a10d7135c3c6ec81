package dev.kimivl.vision;

import dev.kimivl.config.PreprocessorConfig;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import static org.junit.jupiter.api.Assertions.*;

class ImagePreprocessorTest {
    static PreprocessorConfig cfg(int limit) {
        return new PreprocessorConfig(new double[]{0.5, 0.5, 0.5}, new double[]{0.5, 0.5, 0.5}, limit, true, 14, 2, 2);
    }

    /** The table of spec §3. */
    @ParameterizedTest
    @CsvSource({
            "196, 196, 4096, 196, 196, 14, 14, 49",
            "1000, 750, 4096, 1000, 750, 54, 72, 972",
            "640, 480, 4096, 640, 480, 36, 46, 414",
            "1920, 1080, 4096, 1196, 672, 48, 86, 1032",
            "1920, 1080, 16384, 1920, 1080, 78, 138, 2691",
            "4000, 3000, 4096, 1036, 777, 56, 74, 1036",
            "4000, 3000, 16384, 2073, 1554, 112, 150, 4200",
            "10, 10, 4096, 10, 10, 2, 2, 1",
            "333, 250, 64, 134, 101, 8, 10, 20"})
    void sizesGridsAndTokens(int w, int h, int limit, int rw, int rh, int gh, int gw, int tokens) {
        PreprocessorConfig c = cfg(limit);
        assertArrayEquals(new int[]{rw, rh}, ImagePreprocessor.resizedSize(w, h, c));
        assertArrayEquals(new int[]{gh, gw}, ImagePreprocessor.gridFor(w, h, c));
        assertEquals(tokens, ImagePreprocessor.tokensFor(w, h, c));
        assertEquals(tokens, VisionEncoder.tokensFor(w, h, c));
    }

    @Test
    void padsRightAndBottomWithBlackAndPatchifiesChannelYX() {
        // 15×3 image, pixel value = x + 10·y in every channel except blue = 200
        int w = 15, h = 3;
        byte[] px = new byte[w * h * 3];
        for (int y = 0; y < h; y++) for (int x = 0; x < w; x++) {
            int o = (y * w + x) * 3;
            px[o] = px[o + 1] = (byte) (x + 10 * y);
            px[o + 2] = (byte) 200;
        }
        PreprocessedImage p = new ImagePreprocessor(cfg(4096)).process(LoadedImage.of("t", w, h, ImageMode.RGB, px));
        assertEquals(2, p.gridH());
        assertEquals(2, p.gridW());
        assertEquals(28, p.paddedWidth());
        float[] v = p.pixelValues();
        assertEquals(4 * 588, v.length);
        // patch 0, channel 0, y 2, x 5  → value 25
        assertEquals((25 / 255f - 0.5f) / 0.5f, v[0 * 588 + 0 * 196 + 2 * 14 + 5]);
        // patch 0, channel 2, y 1, x 3  → blue 200
        assertEquals((200 / 255f - 0.5f) / 0.5f, v[2 * 196 + 14 + 3]);
        // patch 1 (row 0, col 1), x 0 is image column 14; x 1 is padding → −1
        assertEquals((14 / 255f - 0.5f) / 0.5f, v[588 + 0]);
        assertEquals(-1f, v[588 + 1]);
        // patch 2 (row 1) is all padding
        for (int i = 0; i < 588; i++) assertEquals(-1f, v[2 * 588 + i]);
    }

    @Test
    void tooLargeGridIsRejected() {
        // 7168 / 14 = 512 columns: over the 512×512 RoPE grid (the reference raises "Exceed pos emb")
        LoadedImage wide = LoadedImage.of("wide.png", 7168, 28, ImageMode.RGB, new byte[7168 * 28 * 3]);
        ImageException e = assertThrows(ImageException.class, () -> new ImagePreprocessor(cfg(4096)).process(wide));
        assertTrue(e.getMessage().contains("wide.png") && e.getMessage().contains("2x512"), e.getMessage());
        // one patch fewer is fine
        LoadedImage ok = LoadedImage.of("ok.png", 7140, 28, ImageMode.RGB, new byte[7140 * 28 * 3]);
        assertEquals(510, new ImagePreprocessor(cfg(4096)).process(ok).gridW());
    }
}
