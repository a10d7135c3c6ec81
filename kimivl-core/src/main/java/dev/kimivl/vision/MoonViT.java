package dev.kimivl.vision;

import dev.kimivl.config.VisionConfig;
import dev.kimivl.io.TensorData;
import dev.kimivl.io.WeightSource;
import dev.kimivl.model.StageSink;
import dev.kimivl.tensor.Kernels;
import dev.kimivl.tensor.Matrix;
import dev.kimivl.tensor.Parallel;
import dev.kimivl.tensor.VectorMath;


/**
 * MoonViT (spec §4): patch embedding + bicubic-resized learnable position table, 2-D RoPE, pre-norm encoder
 * blocks over all images packed into one sequence with block-diagonal attention, final LayerNorm.
 * Notation: L = total patches of all images, D = hidden size, d = head dim.
 *
 * <p>Linear layers are {@link PackedLinear}, attention is {@link VisionAttention} (per-head float GEMMs on the 6×16
 * micro-kernel). {@link VisionTimer} accumulates the time of each phase. The weights stay in their checkpoint form
 * (quantized and memory-mapped for GGUF). Q8_0 and Q4_0 layers run on their blocks through the native integer GEMM
 * (int8 activations, as llama.cpp); no float copy of them exists. Float layers (F32, BF16, F16: in a Q8_0 mmproj
 * fc1, whose rows of 4304 are not whole Q8_0 blocks, and the patch embedding) are packed to float32 right before
 * their product, into one buffer that every layer of a forward pass reuses ({@link #floatBufferBytes}), so the
 * tower never holds more than one layer's float32 weights.
 */
public final class MoonViT {
    private static final String P = "vision_tower.";

    private final VisionConfig cfg;
    private final int dim, heads, headDim, inter, patchLen;
    private final float eps = (float) VisionConfig.LAYER_NORM_EPS;
    private final PackedLinear patch;     // [D, 3·P·P] conv weight [D, 3, P, P] flattened in (c, y, x) order, + bias
    private final float[] posTable;       // [ph, pw, D] (row, col, channel)
    private final Block[] blocks;
    private final float[] finalG, finalB; // [D]
    private final float[] ropeFreq;       // [d/4] f_i = 1/10000^(4i/d), float32 as the reference
    private final int maxPacked;          // floats of the largest packed linear layer (the shared weight buffer)

    private record Block(float[] norm0G, float[] norm0B, PackedLinear wqkv, PackedLinear wo,
                         float[] norm1G, float[] norm1B, PackedLinear fc0, PackedLinear fc1) {}

    public MoonViT(WeightSource w, VisionConfig cfg) { this(w, cfg, Kernels.DEFAULT); }

    /**
     * With the given kernels for the quantized layers: {@link Kernels#java()} runs every layer through the float path
     * (the old path, kept for comparisons: tests and VisionBench measure one against the other).
     */
    public MoonViT(WeightSource w, VisionConfig cfg, Kernels kernels) {
        this.cfg = cfg;
        dim = cfg.hiddenSize();
        heads = cfg.numHeads();
        headDim = cfg.headDim();
        inter = cfg.intermediateSize();
        int p = cfg.patchSize();
        patchLen = 3 * p * p;
        TensorData conv = w.tensor(P + "patch_embed.proj.weight").requireShape(dim, 3, p, p);
        // the conv weight seen as a Linear [D, 3·P·P]: same bytes, (c, y, x) order matches the patch layout
        patch = new PackedLinear(kernels.bind(new TensorData(conv.name(), conv.dtype(), new long[]{dim, patchLen}, conv.data(), conv.origin()).matrix()),
                vec(w, P + "patch_embed.proj.bias", dim));
        posTable = w.tensor(P + "patch_embed.pos_emb.weight").requireShape(cfg.posEmbHeight(), cfg.posEmbWidth(), dim).toFloats();
        blocks = new Block[cfg.numLayers()];
        for (int b = 0; b < blocks.length; b++) {
            String bp = P + "encoder.blocks." + b + ".";
            blocks[b] = new Block(
                    vec(w, bp + "norm0.weight", dim), vec(w, bp + "norm0.bias", dim),
                    linear(w, bp + "wqkv", 3 * dim, dim, kernels), linear(w, bp + "wo", dim, dim, kernels),
                    vec(w, bp + "norm1.weight", dim), vec(w, bp + "norm1.bias", dim),
                    linear(w, bp + "mlp.fc0", inter, dim, kernels), linear(w, bp + "mlp.fc1", dim, inter, kernels));
        }
        finalG = vec(w, P + "encoder.final_layernorm.weight", dim);
        finalB = vec(w, P + "encoder.final_layernorm.bias", dim);
        int mp = patch.packedSize();
        for (Block blk : blocks) {
            for (PackedLinear l : new PackedLinear[]{blk.wqkv, blk.wo, blk.fc0, blk.fc1}) mp = Math.max(mp, l.packedSize());
        }
        maxPacked = mp;
        ropeFreq = ropeFrequencies(headDim);
    }

    /** The 2D RoPE frequencies f_i = 1/θ^(4i/d), [d/4] for head width d, in float32 as the reference computes them. */
    public static float[] ropeFrequencies(int headDim) {
        float[] f = new float[headDim / 4];
        for (int i = 0; i < f.length; i++) {
            float expo = (float) (4 * i) / (float) headDim;
            f[i] = 1.0f / (float) Math.pow(VisionConfig.ROPE_THETA, expo);
        }
        return f;
    }

    static float[] vec(WeightSource w, String name, int n) { return w.tensor(name).requireShape(n).toFloats(); }

    static Matrix mat(WeightSource w, String name, int rows, int cols) { return w.tensor(name).requireShape(rows, cols).matrix(); }

    /** name.weight [rows, cols] and name.bias [rows] as a linear layer, its quantized weights run by kernels. */
    static PackedLinear linear(WeightSource w, String name, int rows, int cols, Kernels kernels) {
        return new PackedLinear(kernels.bind(mat(w, name + ".weight", rows, cols)), vec(w, name + ".bias", rows));
    }

    public VisionConfig config() { return cfg; }

    /**
     * Bytes of float32 weights a forward pass allocates: the one buffer its float layers are packed into in turn
     * (the largest such layer; 0 when every linear layer runs on its quantized blocks). Nothing of it outlives the pass.
     */
    public long floatBufferBytes() { return 4L * maxPacked; }

    /** Linear layers (patch embedding, then wqkv, wo, fc0, fc1 of each block) that run on their quantized blocks. */
    public int integerLayers() {
        int c = patch.isInteger() ? 1 : 0;
        for (Block b : blocks) {
            for (PackedLinear l : new PackedLinear[]{b.wqkv, b.wo, b.fc0, b.fc1}) if (l.isInteger()) c++;
        }
        return c;
    }

    /**
     * @param pixels [L, 3·P·P] all images' patches, concatenated
     * @param grids  (gh, gw) per image; Σ gh·gw = L
     * @param stages receives "vision.patch_embed", "vision.block{b}" ([L, D]; {@link StageSink#NONE} for none)
     * @return [L, D] after the final LayerNorm (before the merge)
     */
    public float[] forward(float[] pixels, int[][] grids, StageSink stages) {
        int images = grids.length;
        int[] starts = new int[images], counts = new int[images];
        int total = 0;
        for (int m = 0; m < images; m++) {
            starts[m] = total;
            counts[m] = grids[m][0] * grids[m][1];
            total += counts[m];
        }
        final int L = total;
        if (pixels.length != (long) L * patchLen) {
            throw new IllegalArgumentException("pixel_values has " + pixels.length + " floats, grids need " + L + " × " + patchLen);
        }
        // 4.1 + 4.2: x = W_pe·patch + b_pe + pos(gh, gw)
        VisionTimer.begin();
        // one weight buffer for every float linear layer of this pass: [⌈N/16⌉][K][16] of the layer being computed
        // (empty when all run on their quantized blocks)
        float[] wbuf = new float[maxPacked];
        PackedLinear.InputBuffer ibuf = new PackedLinear.InputBuffer();   // the integer layers' int8 activations
        float[] x = new float[L * dim];                              // [L, D]
        linear(patch, wbuf, ibuf, pixels, L, x, PackedLinear.Act.NONE, false, VisionTimer.Phase.PATCH_EMBED);
        for (int m = 0; m < images; m++) {
            float[] pos = PosEmbedding.resize(posTable, cfg.posEmbHeight(), cfg.posEmbWidth(), dim, grids[m][0], grids[m][1]);
            VectorMath.add(x, starts[m] * dim, pos, 0, counts[m] * dim);
        }
        stages.accept("vision.patch_embed", x, L, dim);
        VisionTimer.lap(VisionTimer.Phase.PATCH_EMBED);

        // RoPE cos/sin per token and pair: [L, d/2]
        int pairs = headDim / 2;
        float[] cos = new float[L * pairs], sin = new float[L * pairs];
        ropeTable(ropeFreq, grids, counts, starts, images, cos, sin);

        float[] y = new float[L * dim];                              // [L, D] normed input / attention output
        float[] qkv = new float[L * 3 * dim];                        // [L, 3D]
        // the attention output [L, D] goes into y: the normed input is dead once qkv is computed
        float[] att = y;
        float[] h = new float[L * inter];                            // [L, I]
        VisionAttention.Buffers attnBuf = new VisionAttention.Buffers();  // K/V packs, reused by every layer
        double attnFlop = 0;                                         // q·k and p·v multiply-adds ×2
        for (int c : counts) attnFlop += 4.0 * c * c * dim;
        for (int b = 0; b < blocks.length; b++) {
            Block blk = blocks[b];
            layerNorm(x, blk.norm0G, blk.norm0B, y, L);                                    // y = LN0(x)
            linear(blk.wqkv, wbuf, ibuf, y, L, qkv, PackedLinear.Act.NONE, false, VisionTimer.Phase.QKV);   // qkv = y·Wqkvᵀ + bqkv
            applyRope(qkv, cos, sin, L);                                                   // q, k rotated (2-D RoPE)
            VisionTimer.lap(VisionTimer.Phase.ROPE);
            VisionAttention.blockDiagonal(qkv, dim, heads, starts, counts, att, attnBuf);  // att = softmax(q·kᵀ/√d)·v per image
            VisionTimer.lap(VisionTimer.Phase.ATTENTION, attnFlop);
            linear(blk.wo, wbuf, ibuf, att, L, x, PackedLinear.Act.NONE, true, VisionTimer.Phase.WO);      // x += att·Woᵀ + bo
            layerNorm(x, blk.norm1G, blk.norm1B, y, L);                                    // y = LN1(x)
            linear(blk.fc0, wbuf, ibuf, y, L, h, PackedLinear.Act.GELU_TANH, false, VisionTimer.Phase.FC0_GELU);  // h = gelu_tanh(y·W0ᵀ + b0)
            linear(blk.fc1, wbuf, ibuf, h, L, x, PackedLinear.Act.NONE, true, VisionTimer.Phase.FC1);      // x += h·W1ᵀ + b1
            stages.accept("vision.block" + b, x, L, dim);
        }
        layerNorm(x, finalG, finalB, y, L);
        return y;
    }

    /** out[L, D] = LayerNorm(x[L, D]) with (gamma, beta), timed as LAYERNORM. */
    private void layerNorm(float[] x, float[] gamma, float[] beta, float[] out, int L) {
        VisionKernels.layerNorm(x, gamma, beta, eps, out, L);
        VisionTimer.lap(VisionTimer.Phase.LAYERNORM);
    }

    /**
     * out[L, N] = in[L, K]·Wᵀ + b then act, or out += in·Wᵀ + b ({@code add}); the layer's weights packed into wbuf
     * first (timed as PACK), the product timed as {@code phase} with its 2·L·N·K operations.
     */
    private static void linear(PackedLinear layer, float[] wbuf, PackedLinear.InputBuffer ibuf, float[] in, int L, float[] out,
                               PackedLinear.Act act, boolean add, VisionTimer.Phase phase) {
        float[] pw = wbuf;
        if (!layer.isInteger()) {
            pw = layer.pack(wbuf);
            VisionTimer.lap(VisionTimer.Phase.PACK);
        }
        if (add) layer.forwardAdd(pw, in, L, out, ibuf); else layer.forward(pw, in, L, out, act, ibuf);
        VisionTimer.lap(phase, 2.0 * L * layer.rows() * layer.cols());
    }

    /** Rotates q and k of every head: complex pair k of a head (dims 2k, 2k+1) times (cos, sin)[token, k]. */
    private void applyRope(float[] qkv, float[] cos, float[] sin, int L) {
        int pairs = headDim / 2, stride = 3 * dim;
        Parallel.forRange(L, 16, (from, to) -> {
            for (int t = from; t < to; t++) {
                int co = t * pairs;
                for (int part = 0; part < 2; part++) {          // q then k
                    int base = t * stride + part * dim;
                    for (int hh = 0; hh < heads; hh++) {
                        int o = base + hh * headDim;
                        for (int k = 0; k < pairs; k++) {
                            float re = qkv[o + 2 * k], im = qkv[o + 2 * k + 1];
                            float c = cos[co + k], s = sin[co + k];
                            qkv[o + 2 * k] = re * c - im * s;
                            qkv[o + 2 * k + 1] = re * s + im * c;
                        }
                    }
                }
            }
        });
    }

    /**
     * The 2D RoPE cos/sin of every packed token and pair, [tokens, d/2] (d the head width; freq: [d/4]): pair 2i of a
     * head turns by the token's column·f_i, pair 2i+1 by its row·f_i (the reference code; its docstring says otherwise),
     * angles in float32 as the reference computes them. Image m's tokens start at starts[m], counts[m] of them, grid
     * grids[m] = {rows, cols}. The training pass (dev.kimivl.train.VisionGrad) uses the same table.
     */
    public static void ropeTable(float[] freq, int[][] grids, int[] counts, int[] starts, int images, float[] cos, float[] sin) {
        int pairs = 2 * freq.length;
        for (int m = 0; m < images; m++) {
            int gw = grids[m][1];
            for (int n = 0; n < counts[m]; n++) {
                int row = n / gw, col = n % gw, o = (starts[m] + n) * pairs;
                for (int i = 0; i < pairs / 2; i++) {
                    float ac = (float) col * freq[i], ar = (float) row * freq[i];
                    cos[o + 2 * i] = (float) Math.cos(ac); sin[o + 2 * i] = (float) Math.sin(ac);
                    cos[o + 2 * i + 1] = (float) Math.cos(ar); sin[o + 2 * i + 1] = (float) Math.sin(ar);
                }
            }
        }
    }
}
