package dev.kimivl.media;

import dev.kimivl.vision.ImageException;

/**
 * A video or document that cannot be read, sampled or made to fit; the message names the file and what was wrong.
 * An {@link ImageException}, so every caller that reports bad images reports these the same way.
 */
public class MediaException extends ImageException {
    public MediaException(String message) { super(message); }
    public MediaException(String message, Throwable cause) { super(message, cause); }
}
