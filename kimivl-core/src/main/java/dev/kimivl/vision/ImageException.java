package dev.kimivl.vision;

/** An image that cannot be decoded or preprocessed; the message names the file and what was wrong. */
public class ImageException extends RuntimeException {
    public ImageException(String message) { super(message); }
    public ImageException(String message, Throwable cause) { super(message, cause); }
}
