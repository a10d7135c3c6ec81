package dev.kimivl.vision;

/**
 * An image that cannot be decoded or preprocessed; the message names the file and what was wrong, on one line
 * (a decoder's own text, a file name: control characters become escapes, as in CheckpointException).
 */
public class ImageException extends RuntimeException {
    public ImageException(String message) { super(dev.kimivl.io.CheckpointException.printable(message)); }
    public ImageException(String message, Throwable cause) { super(dev.kimivl.io.CheckpointException.printable(message), cause); }
}
