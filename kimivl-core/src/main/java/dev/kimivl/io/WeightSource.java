package dev.kimivl.io;

import dev.kimivl.tensor.Matrix;

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

    /**
     * Layer {@code layer}'s kv_b_proj as stored per head when the source keeps it split (llama.cpp's attn_k_b = W_UKᵀ
     * [kvLora, nope] and attn_v_b = W_UV [v, kvLora] per head, in the file's type), or null. The absorbed MLA decode
     * reads these directly instead of the rebuilt kv_b_proj, which such a source can only offer as F32.
     */
    default KvBHeads kvBHeads(int layer, int heads) { return null; }

    /** Per-head W_UKᵀ [kvLora, nope] and W_UV [v, kvLora] matrices of one layer. */
    record KvBHeads(Matrix[] ukT, Matrix[] uv) {}

    /**
     * Drops the process's resident pages of weights used only by the vision tower, when they live in a file of their
     * own (a GGUF mmproj): they stay in the OS page cache, so the next image maps them back in a fraction of a second,
     * while the memory of a long text generation after an image no longer holds them (~0.6 GB for Kimi-VL's Q8_0
     * mmproj). No-op otherwise.
     */
    default void releaseVisionPages() {}

    /**
     * A {@link CheckpointException} naming the file when a mapped weight file was truncated, rewritten or replaced
     * since it was opened; one stat per file, cheap enough before every request (see {@link FileStamp} for what it
     * cannot catch). No-op for sources that hold no mapped files.
     */
    default void checkUnchanged() {}

    /** Where the weights come from, for messages. */
    String description();

    @Override void close();
}
