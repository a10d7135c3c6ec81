package dev.kimivl.model;

import dev.kimivl.config.TextConfig;

/**
 * The language model's RoPE on the qk_rope_head_dim slice. inv_freq is recomputed in float32 as HF does
 * ({@code 1 / base^(arange(0, d, 2) / d)}); the checkpoint's rotary_emb.inv_freq buffers are ignored.
 * Pairing: adjacent elements (x[2i], x[2i+1]) rotate by t·θ_i. HF reaches the same scores by de-interleaving
 * both q_pe and k_pe, so keeping the interleaved layout is exact as long as q and k agree (spec §6.4).
 * With YaRN rope_scaling the frequencies are blended and cos/sin carry the mscale factor.
 */
public final class RotaryEmbedding {
    private final int dim;
    private final float[] invFreq;     // [dim/2]
    private final float mscale;        // multiplies cos and sin (1 without YaRN)

    public RotaryEmbedding(TextConfig c) {
        this.dim = c.qkRopeHeadDim();
        int half = dim / 2;
        invFreq = new float[half];
        float base = (float) c.ropeTheta();
        for (int i = 0; i < half; i++) {
            float exponent = (float) (2 * i) / dim;                       // float32 arange / d
            invFreq[i] = 1.0f / (float) Math.pow(base, exponent);          // float32 pow, as torch does
        }
        TextConfig.RopeScaling rs = c.ropeScaling();
        if (rs == null) {
            mscale = 1f;
        } else {
            double low = Math.floor(correctionDim(rs.betaFast(), dim, c.ropeTheta(), rs.originalMaxPositionEmbeddings()));
            double high = Math.ceil(correctionDim(rs.betaSlow(), dim, c.ropeTheta(), rs.originalMaxPositionEmbeddings()));
            low = Math.max(low, 0);
            high = Math.min(high, dim - 1);
            if (low == high) high += 0.001;
            for (int i = 0; i < half; i++) {
                float extra = invFreq[i];
                float inter = extra / (float) rs.factor();
                float ramp = (float) Math.min(1, Math.max(0, (i - low) / (high - low)));
                float mask = 1f - ramp;                                   // 1 keeps the original frequency
                invFreq[i] = inter * (1 - mask) + extra * mask;
            }
            mscale = (float) (yarnMscale(rs.factor(), rs.mscale()) / yarnMscale(rs.factor(), rs.mscaleAllDim()));
        }
    }

    static double correctionDim(double numRotations, int dim, double base, int maxPos) {
        return dim * Math.log(maxPos / (numRotations * 2 * Math.PI)) / (2 * Math.log(base));
    }

    /** DeepSeek's yarn_get_mscale. */
    public static double yarnMscale(double scale, double mscale) {
        return scale <= 1 ? 1.0 : 0.1 * mscale * Math.log(scale) + 1.0;
    }

    /** Rotates x[off .. off+dim) in place for position t. */
    public void apply(float[] x, int off, int t) {
        float ft = t;
        for (int i = 0; i < dim / 2; i++) {
            float angle = ft * invFreq[i];
            float cos = (float) Math.cos(angle) * mscale, sin = (float) Math.sin(angle) * mscale;
            float a = x[off + 2 * i], b = x[off + 2 * i + 1];
            x[off + 2 * i] = a * cos - b * sin;
            x[off + 2 * i + 1] = a * sin + b * cos;
        }
    }
}
