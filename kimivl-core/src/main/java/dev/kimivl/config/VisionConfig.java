package dev.kimivl.config;

/** MoonViT configuration (Kimi-VL vision_config). LayerNorm eps, GELU kind and RoPE θ are fixed by the reference code. */
public record VisionConfig(int patchSize, int hiddenSize, int numLayers, int numHeads, int intermediateSize,
                           int posEmbHeight, int posEmbWidth, int mergeH, int mergeW) {
    public static final double LAYER_NORM_EPS = 1e-5;
    public static final double ROPE_THETA = 10000.0;
    /** The reference precomputes the 2-D RoPE table on this grid: larger patch grids are rejected. */
    public static final int ROPE_GRID = 512;

    public int headDim() { return hiddenSize / numHeads; }

    static VisionConfig parse(Json j) {
        double[] merge = j.numbers("merge_kernel_size", new double[]{2, 2});
        if (merge.length != 2) throw new dev.kimivl.io.CheckpointException(j.where() + ": merge_kernel_size " + java.util.Arrays.toString(merge) + " must be [h, w]");
        VisionConfig c = new VisionConfig(
                j.integer("patch_size", 14),
                j.positive("hidden_size", j.integer("hidden_size")),
                j.positive("num_hidden_layers", j.integer("num_hidden_layers")),
                j.positive("num_attention_heads", j.integer("num_attention_heads")),
                j.positive("intermediate_size", j.integer("intermediate_size")),
                j.integer("init_pos_emb_height", 64),
                j.integer("init_pos_emb_width", 64),
                (int) merge[0], (int) merge[1]);
        if (c.patchSize < 1 || c.patchSize > 1024 || c.mergeH < 1 || c.mergeW < 1 || c.mergeH > 64 || c.mergeW > 64 ) {
            throw new dev.kimivl.io.CheckpointException(j.where() + ": patch_size " + c.patchSize + " / merge_kernel_size "
                    + java.util.Arrays.toString(merge) + " out of range");
        }
        if (c.hiddenSize % c.numHeads != 0 || c.headDim() % 4 != 0) {
            throw new dev.kimivl.io.CheckpointException(j.where() + ": hidden_size " + c.hiddenSize + " / heads " + c.numHeads
                    + " must give a head dim divisible by 4 (2-D RoPE)");
        }
        return c;
    }
}
