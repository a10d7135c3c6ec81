package dev.kimivl.model;

import dev.kimivl.tensor.Kernels;
import dev.kimivl.tensor.VectorMath;

/**
 * The core of weight-absorbed MLA (spec §6.8; decode and short prompts): H query rows of width W (q̃_h = W_UKᵀ
 * q_h^nope followed by q_h^pe) against the latent cache rows [ĉ_j ; k^pe_j] (width W, f32 or f16), softmax over
 * positions, and the weighted sum of the first R (kv_lora_rank) latent columns. This is multi-query attention over a
 * 576-wide key, so all heads share each cache row: the kernels load a row once for several heads (scores) and
 * accumulate several positions per output vector (values), streaming the cache once per call. The kernels are the
 * {@link Kernels} passed in ({@link Kernels#latentAttention}: native, or Java in tensor.LatentAttentionKernels;
 * LatentAttentionTest runs both); this class holds the per-thread states and merges them.
 *
 * <p>Softmax is computed online (flash-decoding): a {@link State} holds, per head, the running maximum m, the
 * running sum l of exp(s − m) and the unnormalised output o; partial states over disjoint position ranges (one per
 * thread) are merged exactly.
 */
final class LatentAttention {
    private LatentAttention() {}

    /** Per-head partial softmax state over some positions. */
    static final class State {
        final int h0, heads, r;
        final float[] m, l, o;         // [H], [H], [H·R] for heads h0..h0+H-1

        State(int h0, int heads, int r) {
            this.h0 = h0;
            this.heads = heads;
            this.r = r;
            m = new float[heads];
            l = new float[heads];
            o = new float[heads * r];
            java.util.Arrays.fill(m, Float.NEGATIVE_INFINITY);
        }
    }

    /**
     * Accumulates positions [j0, j1) for heads [h0, h1) into st.
     * q [H·W] (row h at h·W), lat [S·W] (row j at j·W); scores are scaled by {@code scale}.
     */
    static void accumulate(Kernels k, float[] q, float[] lat, int W, int R, int j0, int j1, float scale, State st) {
        accumulate(k, q, lat, W, R, j0, j1, scale, st, 0);
    }

    /** As below over layer {@code layer} of the cache, f32, f16 or bf16. */
    static void accumulate(Kernels k, float[] q, KvCache cache, int layer, int W, int R, int j0, int j1, float scale, State st, int qBase) {
        switch (cache.precision()) {
            case F32 -> accumulate(k, q, cache.layer(layer), W, R, j0, j1, scale, st, qBase);
            case F16 -> accumulate(k, q, cache.bits16(layer), W, R, j0, j1, scale, st, qBase);
            case BF16 -> k.latentAttentionBf16(q, qBase + st.h0 * W, cache.bits16(layer), W, R, st.heads, j0, j1, scale, st.m, st.l, st.o);
        }
    }

    /**
     * As below over f16 latents (IEEE half bits, same layout): the native kernel widens them as it goes, the Java one
     * HALF_CHUNK positions at a time (online softmax: the chunks accumulate into the same state).
     */
    static void accumulate(Kernels k, float[] q, short[] lat, int W, int R, int j0, int j1, float scale, State st, int qBase) {
        k.latentAttentionF16(q, qBase + st.h0 * W, lat, W, R, st.heads, j0, j1, scale, st.m, st.l, st.o);
    }

    /** Positions [j0, j1) of f32 latents, with the query rows at q[qBase + h·W ..] (one token's rows inside a batch). */
    static void accumulate(Kernels k, float[] q, float[] lat, int W, int R, int j0, int j1, float scale, State st, int qBase) {
        k.latentAttention(q, qBase + st.h0 * W, lat, W, R, st.heads, j0, j1, scale, st.m, st.l, st.o);
    }

    /**
     * Merges the partial states of head h (one per position range) into out[oo..oo+R) = softmax-weighted values.
     */
    static void finish(State[] parts, int h, float[] out, int oo) {
        int R = parts[0].r;
        float M = Float.NEGATIVE_INFINITY;
        for (State p : parts) M = Math.max(M, p.m[h - p.h0]);
        java.util.Arrays.fill(out, oo, oo + R, 0f);
        float l = 0;
        for (State p : parts) {
            int i = h - p.h0;
            if (p.l[i] == 0f) continue;
            float c = (float) Math.exp(p.m[i] - M);
            l += p.l[i] * c;
            VectorMath.axpy(c, p.o, i * R, out, oo, R);
        }
        VectorMath.scale(out, oo, R, 1f / l);
    }
}
