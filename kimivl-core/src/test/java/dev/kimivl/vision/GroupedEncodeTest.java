package dev.kimivl.vision;

import dev.kimivl.config.ModelConfig;
import dev.kimivl.config.PreprocessorConfig;
import dev.kimivl.io.SafetensorsCheckpoint;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Many images per prompt (issue 16: at least 64) are encoded a group at a time so memory stays bounded; the
 * features must be those of one pass over all of them (MoonViT's attention is per image).
 */
class GroupedEncodeTest {
    @Test
    void seventyImagesInGroupsGiveTheFeaturesOfOnePass() throws Exception {
        Path dir = VisionGoldenTest.golden("c_two_images");
        ModelConfig cfg = ModelConfig.load(dir);
        PreprocessorConfig pre = PreprocessorConfig.load(dir);
        Random rnd = new Random(16);
        List<LoadedImage> images = new ArrayList<>();
        for (int i = 0; i < 70; i++) {                 // noise images of varied sizes, a few bigger than a group
            int w = 20 + rnd.nextInt(i % 10 == 9 ? 280 : 60), h = 20 + rnd.nextInt(i % 10 == 9 ? 280 : 60);
            int[] rgb = new int[w * h];
            for (int k = 0; k < rgb.length; k++) rgb[k] = rnd.nextInt(1 << 24);
            images.add(LoadedImage.ofRgb("noise" + i, w, h, rgb));
        }
        try (SafetensorsCheckpoint ckpt = SafetensorsCheckpoint.open(dir)) {
            VisionEncoder enc = new VisionEncoder(ckpt, cfg, pre);
            ImagePreprocessor p = new ImagePreprocessor(pre);
            List<PreprocessedImage> all = new ArrayList<>();
            int patches = 0, biggest = 0;
            for (LoadedImage im : images) {
                PreprocessedImage x = p.process(im);
                all.add(x);
                patches += x.patches();
                biggest = Math.max(biggest, x.patches());
            }
            VisionOutput once = enc.encodePreprocessed(all, false);
            int groupPatches = 200;                     // smaller than some images: those go alone
            assertTrue(biggest > groupPatches && patches > 8 * groupPatches, "the test needs lone images and many groups");
            VisionOutput grouped = enc.encodeInGroups(images, groupPatches);
            assertArrayEquals(once.tokens(), grouped.tokens());
            assertArrayEquals(once.grids(), grouped.grids());
            assertEquals(once.features().length, grouped.features().length);
            for (int i = 0; i < once.features().length; i++) {
                assertEquals(once.features()[i], grouped.features()[i], 1e-5f, "feature " + i + " (token " + i / once.textHidden() + ")");
            }
            assertEquals(70, grouped.images().size());
            assertNull(grouped.images().get(0).pixelValues(), "pixels are dropped after each group's pass");
            // the default entry point groups too and agrees
            // (GEMM blocking follows the row count, so passes of other sizes round differently in the last bits)
            float[] viaEncode = enc.encode(images).features();
            assertEquals(grouped.features().length, viaEncode.length);
            for (int i = 0; i < viaEncode.length; i++) assertEquals(grouped.features()[i], viaEncode[i], 1e-5f, "feature " + i + " via encode()");
        }
    }
}
