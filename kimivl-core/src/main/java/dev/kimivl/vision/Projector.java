package dev.kimivl.vision;

import dev.kimivl.io.WeightSource;
import dev.kimivl.tensor.Matrix;

/**
 * KimiVLMultiModalProjector (spec §5): LayerNorm (eps 1e-5) on each of the 4 merged slots separately,
 * concatenation to 4·D, linear_1, exact erf GELU, linear_2 → text hidden size.
 */
public final class Projector {
    private static final String P = "multi_modal_projector.";
    private final int dim, slots, textHidden;
    private final float[] normG, normB;   // [D]
    private final Matrix w1, w2;          // [4D, 4D], [Dt, 4D]
    private final float[] b1, b2;         // [4D], [Dt]

    public Projector(WeightSource w, int visionHidden, int mergeSlots, int textHidden) {
        this.dim = visionHidden;
        this.slots = mergeSlots;
        this.textHidden = textHidden;
        int in = slots * dim;
        normG = MoonViT.vec(w, P + "pre_norm.weight", dim);
        normB = MoonViT.vec(w, P + "pre_norm.bias", dim);
        w1 = MoonViT.mat(w, P + "linear_1.weight", in, in);
        b1 = MoonViT.vec(w, P + "linear_1.bias", in);
        w2 = MoonViT.mat(w, P + "linear_2.weight", textHidden, in);
        b2 = MoonViT.vec(w, P + "linear_2.bias", textHidden);
    }

    public int textHidden() { return textHidden; }

    /** merged [M, slots, D] → [M, Dt]. */
    public float[] forward(float[] merged, int m) {
        int in = slots * dim;
        float[] x = new float[m * in];                                   // [M·slots, D] = [M, 4D]
        VisionKernels.layerNorm(merged, normG, normB, 1e-5f, x, m * slots);
        float[] h = new float[m * in];                                   // [M, 4D]
        w1.matmul(x, h, m);
        VisionKernels.biasGeluErf(h, b1, m);
        float[] out = new float[m * textHidden];                         // [M, Dt]
        w2.matmul(h, out, m);
        VisionKernels.addBias(out, b2, m);
        return out;
    }
}
