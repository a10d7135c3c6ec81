package dev.kimivl.io;

/** A checkpoint that cannot be used: the message names the file, the tensor and what is wrong with it. */
public class CheckpointException extends RuntimeException {
    public CheckpointException(String message) { super(message); }
    public CheckpointException(String message, Throwable cause) { super(message, cause); }
}
