package dev.kimivl.vision;

/**
 * The learnable position table resized to an image's patch grid with PyTorch's
 * {@code F.interpolate(mode="bicubic", align_corners=False)}: A = −0.75, source index
 * {@code scale·(o + 0.5) − 0.5} (not clamped), taps clamped to the table, no antialias, float32.
 */
final class PosEmbedding {
    private static final float A = -0.75f;

    private PosEmbedding() {}

    /**
     * @param table [inH, inW, D] (row, col, channel)
     * @return [outH·outW, D] row-major; the table itself (copied) when the size is unchanged, which is what
     * PyTorch's bicubic gives at scale 1 anyway (weights 0, 1, 0, 0)
     */
    static float[] resize(float[] table, int inH, int inW, int dim, int outH, int outW) {
        if (inH == outH && inW == outW) return table.clone();
        int[] yi = new int[outH * 4], xi = new int[outW * 4];
        float[] wy = new float[outH * 4], wx = new float[outW * 4];
        taps(inH, outH, yi, wy);
        taps(inW, outW, xi, wx);
        float[] out = new float[outH * outW * dim];
        float[] rowAcc = new float[4 * dim];
        for (int oy = 0; oy < outH; oy++) {
            for (int ox = 0; ox < outW; ox++) {
                // interpolate the 4 source rows along x, then those 4 results along y (PyTorch's order)
                for (int r = 0; r < 4; r++) {
                    int rowBase = yi[oy * 4 + r] * inW;
                    for (int c = 0; c < dim; c++) {
                        float s = 0f;
                        for (int k = 0; k < 4; k++) s += table[(rowBase + xi[ox * 4 + k]) * dim + c] * wx[ox * 4 + k];
                        rowAcc[r * dim + c] = s;
                    }
                }
                int o = (oy * outW + ox) * dim;
                for (int c = 0; c < dim; c++) {
                    float s = 0f;
                    for (int r = 0; r < 4; r++) s += rowAcc[r * dim + c] * wy[oy * 4 + r];
                    out[o + c] = s;
                }
            }
        }
        return out;
    }

    private static void taps(int in, int out, int[] idx, float[] w) {
        float scale = (float) in / out;
        for (int o = 0; o < out; o++) {
            float src = scale * (o + 0.5f) - 0.5f;
            int i0 = (int) Math.floor(src);
            float t = src - i0;
            w[o * 4] = cc2(t + 1f);
            w[o * 4 + 1] = cc1(t);
            w[o * 4 + 2] = cc1(1f - t);
            w[o * 4 + 3] = cc2((1f - t) + 1f);   // PyTorch: x2 = 1 − t, then x2 + 1
            for (int k = 0; k < 4; k++) idx[o * 4 + k] = Math.min(Math.max(i0 - 1 + k, 0), in - 1);
        }
    }

    private static float cc1(float x) { return ((A + 2) * x - (A + 3)) * x * x + 1; }

    private static float cc2(float x) { return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A; }
}
