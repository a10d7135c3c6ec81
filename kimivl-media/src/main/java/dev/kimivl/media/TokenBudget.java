package dev.kimivl.media;

import dev.kimivl.config.PreprocessorConfig;
import dev.kimivl.vision.ImagePreprocessor;
import dev.kimivl.vision.LoadedImage;
import dev.kimivl.vision.PilResize;

/**
 * Shrinks an image so that it costs at most a given number of image tokens in the prompt (what
 * {@link ImagePreprocessor#tokensFor} counts after the processor's own in_token_limit downscale and pad).
 * A frame of a long video or a page of a long document gets such a budget so that all of them fit the context.
 * Never upscales; keeps the aspect ratio (to within a pixel); resizes with the same PIL bicubic as the processor.
 */
public final class TokenBudget {
    private TokenBudget() {}

    /** The image unchanged when it already fits, else downscaled until it does. */
    public static LoadedImage fit(LoadedImage im, int maxTokens, PreprocessorConfig cfg) {
        int[] s = fittedSize(im.width(), im.height(), maxTokens, cfg);
        return s[0] == im.width() && s[1] == im.height() ? im : PilResize.resize(im, s[0], s[1]);
    }

    /** The (width, height) {@link #fit} resizes a width×height image to. */
    public static int[] fittedSize(int width, int height, int maxTokens, PreprocessorConfig cfg) {
        if (maxTokens < 1) throw new IllegalArgumentException("a token budget must be at least 1, not " + maxTokens);
        if (ImagePreprocessor.tokensFor(width, height, cfg) <= maxTokens) return new int[]{width, height};
        // one merged token covers (merge·patch)² pixels (28×28 on Kimi-VL): start from the scale that area gives, then
        // step down, since the pad rounds each side up to a whole token
        int q = cfg.mergeW() * cfg.patchSize(), qh = cfg.mergeH() * cfg.patchSize();
        double scale = Math.min(1.0, Math.sqrt(maxTokens * (double) q * qh / ((double) width * height)));
        for (int step = 0; step < 10_000; step++) {
            int w = Math.max(1, (int) (width * scale)), h = Math.max(1, (int) (height * scale));
            if (ImagePreprocessor.tokensFor(w, h, cfg) <= maxTokens) return new int[]{w, h};
            scale *= 0.98;
        }
        throw new IllegalStateException("no size of " + width + "x" + height + " fits " + maxTokens + " image tokens");
    }

    /** Image tokens a width×height image costs after {@link #fit} with this budget (≤ maxTokens). */
    public static int tokensAfterFit(int width, int height, int maxTokens, PreprocessorConfig cfg) {
        int[] s = fittedSize(width, height, maxTokens, cfg);
        return ImagePreprocessor.tokensFor(s[0], s[1], cfg);
    }
}
