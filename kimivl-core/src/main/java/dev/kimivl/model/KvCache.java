package dev.kimivl.model;

import java.util.Arrays;

/**
 * The MLA cache: per layer and position only the 576-float latent (kv_lora_rank normalised ĉ followed by the
 * rope key k_pe after RoPE), shared by all heads (spec §6.8). Grows on demand up to {@code maxTokens}.
 */
public final class KvCache {
    private final int layers, width, kvLoraRank, maxTokens;
    private final float[][] data;   // [layer][pos·width + i]
    private int length;             // positions filled in every layer

    public KvCache(int layers, int kvLoraRank, int ropeDim, int maxTokens) {
        this.layers = layers;
        this.kvLoraRank = kvLoraRank;
        this.width = kvLoraRank + ropeDim;
        this.maxTokens = maxTokens;
        this.data = new float[layers][];
        int initial = Math.min(maxTokens, 256);
        for (int l = 0; l < layers; l++) data[l] = new float[initial * width];
    }

    public int length() { return length; }

    public int maxTokens() { return maxTokens; }

    public int width() { return width; }

    public int kvLoraRank() { return kvLoraRank; }

    /** Layer l's latent rows [0, capacity) × width. */
    float[] layer(int l) { return data[l]; }

    /** Makes room for positions up to {@code tokens} in layer l. */
    void ensure(int l, int tokens) {
        if (tokens > maxTokens) throw new IllegalStateException("KV cache holds at most " + maxTokens + " tokens, asked for " + tokens);
        if ((long) tokens * width > data[l].length) {
            int cap = (int) Math.min(maxTokens, Math.max(tokens, 2L * data[l].length / width));
            data[l] = Arrays.copyOf(data[l], cap * width);
        }
    }

    /** Called once a forward pass has written positions [length, newLength) in every layer. */
    void advance(int newLength) { length = newLength; }

    /** Drops positions ≥ n (to reuse a shared prompt prefix). */
    public void truncate(int n) {
        if (n < 0 || n > length) throw new IllegalArgumentException("cannot truncate a cache of " + length + " to " + n);
        length = n;
    }

    public int layers() { return layers; }

    /**
     * Fills positions [0, n) of every layer with random latents of the right scale (unit-RMS ĉ and k_pe) and sets
     * the length to n: a stand-in for a long prefill in benchmarks (speed does not depend on the values).
     */
    public void fillRandom(int n, long seed) {
        if (n > maxTokens) throw new IllegalArgumentException("cannot fill " + n + " positions of a cache of " + maxTokens);
        java.util.SplittableRandom rnd = new java.util.SplittableRandom(seed);
        for (int l = 0; l < layers; l++) {
            ensure(l, n);
            float[] d = data[l];
            for (int i = 0; i < n * width; i++) d[i] = (float) ((rnd.nextDouble() - 0.5) * 3.4641016);
        }
        length = n;
    }
}
