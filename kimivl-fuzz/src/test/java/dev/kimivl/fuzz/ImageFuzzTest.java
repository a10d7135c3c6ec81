package dev.kimivl.fuzz;

import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.kimivl.config.PreprocessorConfig;
import dev.kimivl.vision.ImageException;
import dev.kimivl.vision.ImageLoader;
import dev.kimivl.vision.ImagePreprocessor;
import dev.kimivl.vision.LoadedImage;
import org.junit.jupiter.api.Timeout;

import static dev.kimivl.fuzz.FuzzSupport.TINY;
import static dev.kimivl.fuzz.FuzzSupport.requireNamed;

/**
 * Image bytes as a server receives them (PNG, JPEG, GIF, WebP, BMP; seeds: the decoder tests' images) through
 * {@link ImageLoader} with its pixel-count guard, then the preprocessor (token-limit resize, pad, normalise, patchify)
 * with tiny-random's settings. The guard is 4 megapixels here, so an image declaring more is refused from its header
 * and one under it stays within the per-input time limit.
 */
class ImageFuzzTest {
    private static final ImageLoader LOADER = new ImageLoader(4L << 20, "--max-image-pixels");
    private static final ImagePreprocessor PRE = new ImagePreprocessor(PreprocessorConfig.load(TINY));

    @FuzzTest
    @Timeout(10)
    void image(byte[] data) {
        try {
            LoadedImage im = LOADER.load(data, "fuzz-image");
            if ((long) im.width() * im.height() > LOADER.maxPixels()) throw new AssertionError("the guard let " + im.width() + "x" + im.height() + " through");
            PRE.process(im);
        } catch (ImageException e) {
            requireNamed(e, "fuzz-image");
        }
    }
}
