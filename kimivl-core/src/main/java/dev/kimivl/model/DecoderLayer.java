package dev.kimivl.model;

import dev.kimivl.tensor.VectorMath;

/** h = x + MLA(RMSNorm_in(x)); out = h + FFN(RMSNorm_post(h)), with FFN dense SwiGLU or MoE (spec §6.2). */
final class DecoderLayer {
    final int index, hidden;
    final float eps;
    final float[] inputNorm, postNorm;     // [D]
    final MlaAttention attention;
    final SwiGlu dense;                     // null on MoE layers
    final MoeBlock moe;                     // null on dense layers

    DecoderLayer(int index, int hidden, float eps, float[] inputNorm, float[] postNorm, MlaAttention attention, SwiGlu dense, MoeBlock moe) {
        this.index = index;
        this.hidden = hidden;
        this.eps = eps;
        this.inputNorm = inputNorm;
        this.postNorm = postNorm;
        this.attention = attention;
        this.dense = dense;
        this.moe = moe;
    }

    /** x [T, D] updated in place for positions pos0..pos0+T-1. */
    void forward(float[] x, int T, int pos0, KvCache cache, MoeBlock.Routing[] routing) {
        VectorMath.add(x, attention(norm(x, T, inputNorm), T, pos0, cache));      // h = x + MLA(RMSNorm_in(x))
        VectorMath.add(x, ffn(norm(x, T, postNorm), T, routing));                 // out = h + FFN(RMSNorm_post(h))
    }

    /** One batched decode step: x [B, D] updated in place, row b at position positions[b] of caches[b]. */
    void forwardBatch(float[] x, int B, int[] positions, KvCache[] caches) {
        float[] normed = norm(x, B, inputNorm);
        VectorMath.add(x, attention.decodeBatch(normed, B, positions, caches, index));
        normed = norm(x, B, postNorm);
        VectorMath.add(x, moe != null ? moe.forwardRows(normed, B) : dense.forwardRows(normed, B));
    }

    void forEachRowProduct(java.util.function.Consumer<dev.kimivl.tensor.Matrix> f) {
        attention.forEachRowProduct(f);
        if (moe != null) moe.forEachRowProduct(f); else dense.forEachRowProduct(f);
    }

    double decodeBytes() { return attention.bytes() + (moe != null ? moe.decodeBytes() : dense.bytes()); }

    /** The prompt form for several tokens or a first one, else the decode form (spec §6.8). */
    private float[] attention(float[] normed, int T, int pos0, KvCache cache) {
        return T == 1 && pos0 > 0 ? attention.decode(normed, pos0, cache, index) : attention.prefill(normed, T, pos0, cache, index);
    }

    /** The MoE block (it times its own phases) or the dense SwiGLU. */
    private float[] ffn(float[] normed, int T, MoeBlock.Routing[] routing) {
        if (moe != null) return moe.forward(normed, T, routing);
        PhaseTimer.begin();
        float[] f = dense.forward(normed, T);
        PhaseTimer.lap(PhaseTimer.Phase.DENSE_FFN);
        return f;
    }

    /** RMSNorm of each of the T rows of x [T, D] into a new array. */
    private float[] norm(float[] x, int T, float[] w) {
        PhaseTimer.begin();
        float[] out = new float[x.length];
        for (int t = 0; t < T; t++) VectorMath.rmsNorm(x, t * hidden, w, eps, out, t * hidden, hidden);
        PhaseTimer.lap(PhaseTimer.Phase.NORM);
        return out;
    }
}
