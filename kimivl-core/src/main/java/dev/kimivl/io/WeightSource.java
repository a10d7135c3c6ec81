package dev.kimivl.io;

import java.util.Set;

/**
 * Named tensors of a checkpoint, addressed by their Hugging Face names whatever the file format
 * (safetensors directories, GGUF files mapped back to HF names).
 */
public interface WeightSource extends AutoCloseable {
    Set<String> names();

    boolean has(String name);

    /** The tensor, or a {@link CheckpointException} naming the checkpoint and the missing tensor. */
    TensorData tensor(String name);

    /** Where the weights come from, for messages. */
    String description();

    @Override void close();
}
