package dev.kimivl.vision;

import dev.kimivl.io.WeightSource;
import dev.kimivl.tensor.Kernels;

/**
 * KimiVLMultiModalProjector (spec §5): LayerNorm (eps 1e-5) on each of the 4 merged slots separately,
 * concatenation to 4·D, linear_1, exact erf GELU, linear_2 → text hidden size.
 */
public final class Projector {
    private static final String P = "multi_modal_projector.";
    private final int dim, slots, textHidden;
    private final float[] normG, normB;   // [D]
    private final PackedLinear w1, w2;    // [4D, 4D], [Dt, 4D] with biases

    public Projector(WeightSource w, int visionHidden, int mergeSlots, int textHidden) {
        this(w, visionHidden, mergeSlots, textHidden, Kernels.DEFAULT);
    }

    /** With the given kernels for quantized weights (see {@link MoonViT#MoonViT(WeightSource, dev.kimivl.config.VisionConfig, Kernels)}). */
    public Projector(WeightSource w, int visionHidden, int mergeSlots, int textHidden, Kernels kernels) {
        this.dim = visionHidden;
        this.slots = mergeSlots;
        this.textHidden = textHidden;
        int in = slots * dim;
        normG = MoonViT.vec(w, P + "pre_norm.weight", dim);
        normB = MoonViT.vec(w, P + "pre_norm.bias", dim);
        w1 = MoonViT.linear(w, P + "linear_1", in, in, kernels);
        w2 = MoonViT.linear(w, P + "linear_2", textHidden, in, kernels);
    }

    public int textHidden() { return textHidden; }

    /** merged [M, slots, D] → [M, Dt]. */
    public float[] forward(float[] merged, int m) {
        int in = slots * dim;
        float[] x = new float[m * in];                                   // [M·slots, D] = [M, 4D]
        VisionKernels.layerNorm(merged, normG, normB, 1e-5f, x, m * slots);
        float[] h = new float[m * in];                                   // [M, 4D]
        // linear_1's packed weights [4D/16][4D][16], then linear_2's [Dt/16][4D][16] in the same buffer (none for
        // layers that run on their quantized blocks)
        float[] wbuf = new float[Math.max(w1.packedSize(), w2.packedSize())];
        PackedLinear.InputBuffer ibuf = new PackedLinear.InputBuffer();  // int8 activations [M, 4D], both layers
        w1.forward(w1.pack(wbuf), x, m, h, PackedLinear.Act.GELU_ERF, ibuf);   // h = gelu_erf(x·W1ᵀ + b1)
        float[] out = new float[m * textHidden];                         // [M, Dt]
        w2.forward(w2.pack(wbuf), h, m, out, PackedLinear.Act.NONE, ibuf);     // out = h·W2ᵀ + b2
        return out;
    }

    /** Bytes of float32 weights a forward pass allocates (0 when both layers run on their quantized blocks). */
    public long floatBufferBytes() { return 4L * Math.max(w1.packedSize(), w2.packedSize()); }
}
