package dev.kimivl.model;

/**
 * Receives named intermediate tensors (golden stage names: "embeddings", "hidden.layer3", "final_norm", "logits", ...)
 * so that any stage can be dumped and compared with a reference. {@link #NONE} skips the copies.
 */
@FunctionalInterface
public interface StageSink {
    StageSink NONE = (name, data, shape) -> {};

    /** {@code data} is row-major with the given shape; the sink must copy it if it keeps it. */
    void accept(String name, float[] data, int... shape);

    default boolean enabled() { return this != NONE; }
}
