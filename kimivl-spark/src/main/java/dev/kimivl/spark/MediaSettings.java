package dev.kimivl.spark;

import java.io.Serializable;

/**
 * How a row's PDF or video becomes images (kimivl-media), as {@code kimivl run --pdf/--video} does: each page or
 * frame one image block of the user message, labelled "Page 3:" or "Frame at 00:03:", before the prompt's text.
 * A row whose file starts with {@code %PDF-} is a document, one with an MP4/MOV {@code ftyp} box a video; anything
 * else is an image.
 *
 * @param videoFrames frames taken from a video, spread evenly over it
 * @param frameTokens image tokens per frame at most (frames are shrunk to fit)
 * @param timestamps  label each frame with its time
 * @param pages       pages of a PDF to take ("1-3", "2,5"; null: all); pages past a document's end are an error row
 * @param dpi         resolution pages are rendered at
 * @param pageTokens  shrink each page to at most this many image tokens (null: as rendered, up to in_token_limit)
 */
public record MediaSettings(int videoFrames, int frameTokens, boolean timestamps, String pages, float dpi, Integer pageTokens)
        implements Serializable {
    /** Below this many image tokens (a 112×112 picture) a frame shows too little (as in kimivl run). */
    public static final int MIN_FRAME_TOKENS = 16;

    public static final MediaSettings DEFAULT = new MediaSettings(8, 256, true, null, 144f, null);

    public MediaSettings {
        if (videoFrames < 1) throw new IllegalArgumentException("videoFrames must be at least 1, not " + videoFrames);
        if (frameTokens < MIN_FRAME_TOKENS) throw new IllegalArgumentException("frameTokens must be at least " + MIN_FRAME_TOKENS + ", not " + frameTokens);
        if (!(dpi >= 1 && dpi <= 1200)) throw new IllegalArgumentException("dpi must be between 1 and 1200, not " + dpi);
        if (pageTokens != null && pageTokens < 1) throw new IllegalArgumentException("pageTokens must be at least 1, not " + pageTokens);
    }
}
