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
        long t0 = PhaseTimer.start();
        float[] normed = norm(x, T, inputNorm);
        t0 = PhaseTimer.stop(PhaseTimer.Phase.NORM, t0);
        float[] a = T == 1 && pos0 > 0 ? attention.decode(normed, pos0, cache, index) : attention.prefill(normed, T, pos0, cache, index);
        t0 = PhaseTimer.start();
        VectorMath.add(x, a);
        normed = norm(x, T, postNorm);
        t0 = PhaseTimer.stop(PhaseTimer.Phase.NORM, t0);
        float[] f = moe != null ? moe.forward(normed, T, routing) : dense.forward(normed, T);
        if (moe == null) t0 = PhaseTimer.stop(PhaseTimer.Phase.DENSE_FFN, t0);
        VectorMath.add(x, f);
    }

    /** One batched decode step: x [B, D] updated in place, row b at position positions[b] of caches[b]. */
    void forwardBatch(float[] x, int B, int[] positions, KvCache[] caches) {
        float[] normed = norm(x, B, inputNorm);
        VectorMath.add(x, attention.decodeBatch(normed, B, positions, caches, index));
        normed = norm(x, B, postNorm);
        VectorMath.add(x, moe != null ? moe.forwardRows(normed, B) : dense.forwardRows(normed, B));
    }

    double decodeBytes() { return attention.bytes() + (moe != null ? moe.decodeBytes() : dense.bytes()); }

    private float[] norm(float[] x, int T, float[] w) {
        float[] out = new float[x.length];
        for (int t = 0; t < T; t++) VectorMath.rmsNorm(x, t * hidden, w, eps, out, t * hidden, hidden);
        return out;
    }
}
