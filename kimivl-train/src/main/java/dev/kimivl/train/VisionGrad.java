package dev.kimivl.train;

import dev.kimivl.config.ModelConfig;
import dev.kimivl.config.VisionConfig;
import dev.kimivl.io.SafetensorsCheckpoint;
import dev.kimivl.io.WeightSource;
import dev.kimivl.vision.PreprocessedImage;

import java.nio.file.Path;
import dev.kimivl.tensor.NativeKernels;
import dev.kimivl.tensor.Parallel;
import dev.kimivl.tensor.VectorMath;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorSpecies;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Backpropagation through the vision side of Kimi-VL: MoonViT (patch embedding, bicubic-resized position table,
 * 2-D RoPE, per-image attention, pre-norm blocks with GELU-tanh MLP, final LayerNorm), the 2×2 merge and the
 * multi-modal projector (per-slot LayerNorm, linear_1, erf GELU, linear_2).
 *
 * <p>float32 activations and gradients, the training side's precision convention ({@link LinearOps}): products on
 * the packed GEMM, attention per (image, head) pair on the pool, row reductions of the norms in double. Every pass is
 * split over the pool in fixed ranges that never share an accumulator (or sums each accumulator in one fixed order),
 * so the floats do not depend on the number of threads or on timing (docs/training-speed.md).
 * Gradients are returned as float32 arrays, keyed and shaped like the checkpoint tensors.
 *
 * <p>Use: {@link #forward} on one or more preprocessed images (it keeps the activations the backward needs), then
 * {@link #backward} with d loss / d image features. Memory: the tape holds every block's activations ([L, I] for the
 * MLP, [L, 3D] for q/k/v) but not the attention probabilities, which the backward recomputes per head; this is sized
 * for the test checkpoints, not for the real 400M-parameter tower at full resolution.
 *
 * <p>Notation: L = patches of all images, D = vision hidden, H heads of d = D/H, I = MLP width, P2 = 3·14·14 values
 * per patch, S = 4 merge slots, M = L/S merged tokens, Dt = text hidden (projector output).
 */
public final class VisionGrad {
    private static final String VT = "vision_tower.";
    private static final String PR = "multi_modal_projector.";
    private static final double EPS = VisionConfig.LAYER_NORM_EPS;   // every LayerNorm here: vision blocks, final, pre_norm
    private static final double GELU_TANH_C = Math.sqrt(2 / Math.PI);

    private final VisionConfig cfg;
    private final int dim, heads, headDim, inter, patchLen, slots, textHidden;
    /** Every trainable tensor by checkpoint name, as double (row-major, checkpoint shape), in a fixed order. */
    private final Map<String, float[]> params = new LinkedHashMap<>();
    private final Map<String, long[]> shapes = new LinkedHashMap<>();
    /** RoPE frequencies f_i = 1/θ^(4i/d), [d/4], computed in float32 exactly as the reference (and MoonViT) do. */
    private final float[] ropeFreq;

    private Tape tape;   // activations of the last forward

    public VisionGrad(WeightSource w, VisionConfig cfg, int textHidden) {
        this.cfg = cfg;
        dim = cfg.hiddenSize();
        heads = cfg.numHeads();
        headDim = cfg.headDim();
        nativeAttention = NativeKernels.vitAttention(headDim);
        inter = cfg.intermediateSize();
        int p = cfg.patchSize();
        patchLen = 3 * p * p;
        slots = cfg.mergeH() * cfg.mergeW();
        this.textHidden = textHidden;
        load(w, VT + "patch_embed.proj.weight", dim, 3, p, p);          // conv = Linear [D, P2], (c, y, x) order
        load(w, VT + "patch_embed.proj.bias", dim);
        load(w, VT + "patch_embed.pos_emb.weight", cfg.posEmbHeight(), cfg.posEmbWidth(), dim);
        for (int b = 0; b < cfg.numLayers(); b++) {
            String bp = block(b);
            load(w, bp + "norm0.weight", dim);
            load(w, bp + "norm0.bias", dim);
            load(w, bp + "wqkv.weight", 3 * dim, dim);
            load(w, bp + "wqkv.bias", 3 * dim);
            load(w, bp + "wo.weight", dim, dim);
            load(w, bp + "wo.bias", dim);
            load(w, bp + "norm1.weight", dim);
            load(w, bp + "norm1.bias", dim);
            load(w, bp + "mlp.fc0.weight", inter, dim);
            load(w, bp + "mlp.fc0.bias", inter);
            load(w, bp + "mlp.fc1.weight", dim, inter);
            load(w, bp + "mlp.fc1.bias", dim);
        }
        load(w, VT + "encoder.final_layernorm.weight", dim);
        load(w, VT + "encoder.final_layernorm.bias", dim);
        load(w, PR + "pre_norm.weight", dim);
        load(w, PR + "pre_norm.bias", dim);
        load(w, PR + "linear_1.weight", slots * dim, slots * dim);
        load(w, PR + "linear_1.bias", slots * dim);
        load(w, PR + "linear_2.weight", textHidden, slots * dim);
        load(w, PR + "linear_2.bias", textHidden);
        ropeFreq = dev.kimivl.vision.MoonViT.ropeFrequencies(headDim);
    }

    /** Loads the vision tower and projector of a safetensors checkpoint directory (config.json next to it). */
    public static VisionGrad load(Path checkpointDir) {
        ModelConfig mc = ModelConfig.load(checkpointDir);
        try (SafetensorsCheckpoint ckpt = SafetensorsCheckpoint.open(checkpointDir)) {
            return new VisionGrad(ckpt, mc.vision(), mc.text().hiddenSize());
        }
    }

    private void load(WeightSource w, String name, long... shape) {
        params.put(name, w.tensor(name).requireShape(shape).toFloats());
        shapes.put(name, shape);
    }

    private static String block(int b) { return VT + "encoder.blocks." + b + "."; }

    private float[] p(String name) { return params.get(name); }

    /** Names of every tensor this class gives a gradient for, in checkpoint order. */
    public List<String> parameterNames() { return List.copyOf(params.keySet()); }

    /** The checkpoint shape of a parameter. */
    public long[] shape(String name) { return shapes.get(name).clone(); }

    /** The live parameter array (an optimizer updates it in place; tests perturb it for finite differences). */
    public float[] parameter(String name) {
        float[] a = params.get(name);
        if (a == null) throw new IllegalArgumentException("no parameter " + name);
        return a;
    }

    public int textHidden() { return textHidden; }

    /** Merged tokens M of the last forward. */
    public int mergedTokens() { return tape.merged; }

    /** The last forward's linear_2 input [M, S·D] (the erf-GELU output): lets a test invert linear_2's weight gradient. */
    float[] projectorHidden() { return tape.g1.clone(); }

    // =================================================================================================================
    // Forward
    // =================================================================================================================

    /** LayerNorm activations the backward needs: the normalised input x̂ and 1/σ per row. */
    private record LnCache(float[] xhat, float[] rstd, int rows, int width) {}

    /** One encoder block's saved activations (all row-major). */
    private record BlockTape(
            LnCache ln0, float[] y0,      // y0 [L, D] = LN0(x_in): input of wqkv
            float[] qkv,                  // [L, 3D] q | k | v after RoPE on q and k: attention input
            float[] att,                  // [L, D] attention output (heads concatenated): input of wo
            LnCache ln1, float[] z,       // z [L, D] = LN1(x_mid): input of fc0
            float[] u, float[] h) {}     // u [L, I] = z·W0ᵀ + b0 (pre-GELU); h = gelu_tanh(u): input of fc1

    /** Everything the last forward saved. */
    private record Tape(
            float[] pixels, int[][] grids, int[] starts, int[] counts, int patches,
            float[] cos, float[] sin,   // [L, d/2] RoPE rotation per token and complex pair
            BlockTape[] blocks,
            LnCache lnFinal,
            int merged,                   // M
            int[] mergeSource,            // [M·S] patch index of each merged slot (the merge is a pure gather)
            LnCache lnPre,
            float[] xn,                  // [M, S·D] projector LayerNorm output, slots concatenated: input of linear_1
            float[] a1,                  // [M, S·D] linear_1 output (pre-GELU)
            float[] g1,                  // [M, S·D] erf-GELU output: input of linear_2
            float[] features) {}         // [M, Dt]

    /** Forward over preprocessed images (packed in order, attention within each image); returns [M, Dt] as float. */
    public float[] forward(List<PreprocessedImage> images) {
        if (images.isEmpty()) throw new IllegalArgumentException("no images");
        int n = images.size();
        int[][] grids = new int[n][];
        int[] starts = new int[n], counts = new int[n];
        int L = 0;
        for (int m = 0; m < n; m++) {
            PreprocessedImage im = images.get(m);
            if (im.gridH() % cfg.mergeH() != 0 || im.gridW() % cfg.mergeW() != 0) {
                throw new IllegalArgumentException("grid " + im.gridH() + "x" + im.gridW() + " not divisible by the merge");
            }
            grids[m] = new int[]{im.gridH(), im.gridW()};
            starts[m] = L;
            counts[m] = im.patches();
            L += counts[m];
        }
        float[] pixels = new float[L * patchLen];                    // [L, P2]
        for (int m = 0; m < n; m++) {
            float[] pv = images.get(m).pixelValues();
            for (int i = 0; i < pv.length; i++) pixels[starts[m] * patchLen + i] = pv[i];
        }

        // 1. patch embedding (conv k = s = 14 = Linear over flattened patches) + position table resized per image
        float[] x = linear(pixels, L, p(VT + "patch_embed.proj.weight"), p(VT + "patch_embed.proj.bias"), patchLen, dim);
        float[] table = p(VT + "patch_embed.pos_emb.weight");          // [ph, pw, D]
        final float[] xPatch = x;
        Parallel.forRange(n, 1, (m0, m1) -> { for (int m = m0; m < m1; m++) {    // images write disjoint rows
            Bicubic by = new Bicubic(cfg.posEmbHeight(), grids[m][0]), bx = new Bicubic(cfg.posEmbWidth(), grids[m][1]);
            for (int oy = 0; oy < grids[m][0]; oy++) {
                for (int ox = 0; ox < grids[m][1]; ox++) {
                    int row = (starts[m] + oy * grids[m][1] + ox) * dim;
                    // pos(oy, ox) = Σ_r Σ_k wy[r]·wx[k]·T[iy[r], ix[k]]  (separable 4×4 taps)
                    for (int r = 0; r < 4; r++) {
                        for (int k = 0; k < 4; k++) {
                            double wgt = by.weight(oy, r) * bx.weight(ox, k);
                            int src = (by.index(oy, r) * cfg.posEmbWidth() + bx.index(ox, k)) * dim;
                            for (int c = 0; c < dim; c++) xPatch[row + c] += wgt * table[src + c];
                        }
                    }
                }
            }
        } });

        // 2. RoPE table: the inference path's (pair 2i of a head turns by column·f_i, pair 2i+1 by row·f_i; float32
        // angles as the reference), widened to double
        int pairs = headDim / 2;
        float[] cosF = new float[L * pairs], sinF = new float[L * pairs];
        dev.kimivl.vision.MoonViT.ropeTable(ropeFreq, grids, counts, starts, n, cosF, sinF);
        float[] cos = new float[L * pairs], sin = new float[L * pairs];
        for (int i = 0; i < cos.length; i++) { cos[i] = cosF[i]; sin[i] = sinF[i]; }

        // 3. encoder blocks: x += wo(attn(rope(wqkv(LN0(x))))); x += fc1(gelu_tanh(fc0(LN1(x))))
        BlockTape[] bt = new BlockTape[cfg.numLayers()];
        for (int b = 0; b < bt.length; b++) {
            String bp = block(b);
            LnCache ln0 = layerNormStats(x, L, dim);
            float[] y0 = affine(ln0, p(bp + "norm0.weight"), p(bp + "norm0.bias"));
            float[] qkv = linear(y0, L, p(bp + "wqkv.weight"), p(bp + "wqkv.bias"), dim, 3 * dim);
            rope(qkv, cos, sin, L, false);
            float[] att = attention(qkv, starts, counts, L);
            float[] o = linear(att, L, p(bp + "wo.weight"), p(bp + "wo.bias"), dim, dim);
            float[] xMid = add(x, o);
            LnCache ln1 = layerNormStats(xMid, L, dim);
            float[] z = affine(ln1, p(bp + "norm1.weight"), p(bp + "norm1.bias"));
            float[] u = linear(z, L, p(bp + "mlp.fc0.weight"), p(bp + "mlp.fc0.bias"), dim, inter);
            float[] h = new float[u.length];
            elementwise(u.length, (i0, i1) -> geluTanhInto(u, h, null, i0, i1));            // inference's vector GELU
            x = add(xMid, linear(h, L, p(bp + "mlp.fc1.weight"), p(bp + "mlp.fc1.bias"), inter, dim));
            bt[b] = new BlockTape(ln0, y0, qkv, att, ln1, z, u, h);
        }

        // 4. final LayerNorm → tower output [L, D]
        LnCache lnF = layerNormStats(x, L, dim);
        float[] tower = affine(lnF, p(VT + "encoder.final_layernorm.weight"), p(VT + "encoder.final_layernorm.bias"));

        // 5. 2×2 merge: merged token (R, C) of an image gathers patches (2R+a, 2C+b) into slot a·2+b
        int M = L / slots;
        int[] src = new int[M * slots];
        int q = 0;
        for (int m = 0; m < n; m++) {
            int gh = grids[m][0], gw = grids[m][1], mh = cfg.mergeH(), mw = cfg.mergeW();
            for (int r = 0; r < gh / mh; r++)
                for (int c = 0; c < gw / mw; c++)
                    for (int a = 0; a < mh; a++)
                        for (int bb = 0; bb < mw; bb++) src[q++] = starts[m] + (r * mh + a) * gw + (c * mw + bb);
        }
        float[] merged = new float[M * slots * dim];                  // [M·S, D]
        for (int s = 0; s < M * slots; s++) System.arraycopy(tower, src[s] * dim, merged, s * dim, dim);

        // 6. projector: LayerNorm per slot row, view [M, S·D], linear_1, erf GELU, linear_2
        LnCache lnP = layerNormStats(merged, M * slots, dim);
        float[] xn = affine(lnP, p(PR + "pre_norm.weight"), p(PR + "pre_norm.bias"));   // [M·S, D] = [M, S·D]
        float[] a1 = linear(xn, M, p(PR + "linear_1.weight"), p(PR + "linear_1.bias"), slots * dim, slots * dim);
        float[] g1 = new float[a1.length];
        elementwise(a1.length, (i0, i1) -> { for (int i = i0; i < i1; i++) g1[i] = (float) geluErf(a1[i]); });
        float[] features = linear(g1, M, p(PR + "linear_2.weight"), p(PR + "linear_2.bias"), slots * dim, textHidden);

        tape = new Tape(pixels, grids, starts, counts, L, cos, sin, bt, lnF, M, src, lnP, xn, a1, g1, features);
        return features;
    }

    // =================================================================================================================
    // Backward
    // =================================================================================================================

    /**
     * Gradients of every vision_tower.* and multi_modal_projector.* tensor given d loss / d image features of the
     * last {@link #forward}: [M, Dt] row-major. Returned arrays are float32 with the checkpoint shapes (row-major).
     */
    public Map<String, float[]> backward(float[] dFeatures) {
        return backward(dFeatures, true);
    }

    /**
     * As {@link #backward(float[])}; with {@code throughTower} false it stops after the projector and leaves the
     * vision tower's gradients zero, for stages that train the projector on a frozen tower (the tower's backward is
     * most of the vision side's cost, and its result would be thrown away).
     */
    public Map<String, float[]> backward(float[] dFeatures, boolean throughTower) {
        Tape t = tape;
        if (t == null) throw new IllegalStateException("backward before forward");
        if (dFeatures.length != t.merged * textHidden) {
            throw new IllegalArgumentException("d image features has " + dFeatures.length + " values, expected "
                    + t.merged + " × " + textHidden);
        }
        Map<String, float[]> g = new LinkedHashMap<>();
        for (Map.Entry<String, float[]> e : params.entrySet()) g.put(e.getKey(), new float[e.getValue().length]);
        int L = t.patches, M = t.merged, SD = slots * dim;

        // 6'. projector
        float[] dG1 = linearBackward(dFeatures, t.g1, M, p(PR + "linear_2.weight"), SD, textHidden,
                g.get(PR + "linear_2.weight"), g.get(PR + "linear_2.bias"));                 // [M, S·D]
        float[] dA1 = new float[dG1.length];
        elementwise(dA1.length, (i0, i1) -> { for (int i = i0; i < i1; i++) dA1[i] = (float) (dG1[i] * geluErfGrad(t.a1[i])); });
        float[] dXn = linearBackward(dA1, t.xn, M, p(PR + "linear_1.weight"), SD, SD,
                g.get(PR + "linear_1.weight"), g.get(PR + "linear_1.bias"));                 // [M, S·D] = [M·S, D]
        float[] dMerged = layerNormBackward(t.lnPre, dXn, p(PR + "pre_norm.weight"),
                g.get(PR + "pre_norm.weight"), g.get(PR + "pre_norm.bias"));                 // [M·S, D]
        if (!throughTower) return g;

        // 5'. merge is a permutation of rows: scatter each slot's gradient back to its patch
        float[] dTower = new float[L * dim];
        for (int s = 0; s < M * slots; s++) {
            for (int c = 0; c < dim; c++) dTower[t.mergeSource[s] * dim + c] += dMerged[s * dim + c];
        }

        // 4'. final LayerNorm
        float[] dx = layerNormBackward(t.lnFinal, dTower, p(VT + "encoder.final_layernorm.weight"),
                g.get(VT + "encoder.final_layernorm.weight"), g.get(VT + "encoder.final_layernorm.bias"));

        // 3'. blocks in reverse; dx is d loss / d residual stream after the block
        for (int b = t.blocks.length - 1; b >= 0; b--) {
            BlockTape bt = t.blocks[b];
            String bp = block(b);
            // x_out = x_mid + fc1(h): the residual passes dx through unchanged to x_mid
            float[] dH = linearBackward(dx, bt.h, L, p(bp + "mlp.fc1.weight"), inter, dim,
                    g.get(bp + "mlp.fc1.weight"), g.get(bp + "mlp.fc1.bias"));               // [L, I]
            float[] dU = new float[dH.length];
            float[] u = bt.u;
            elementwise(dU.length, (i0, i1) -> geluTanhInto(u, dU, dH, i0, i1));
            float[] dZ = linearBackward(dU, bt.z, L, p(bp + "mlp.fc0.weight"), dim, inter,
                    g.get(bp + "mlp.fc0.weight"), g.get(bp + "mlp.fc0.bias"));               // [L, D]
            float[] dMid = add(dx, layerNormBackward(bt.ln1, dZ, p(bp + "norm1.weight"),
                    g.get(bp + "norm1.weight"), g.get(bp + "norm1.bias")));
            // x_mid = x_in + wo(att)
            float[] dAtt = linearBackward(dMid, bt.att, L, p(bp + "wo.weight"), dim, dim,
                    g.get(bp + "wo.weight"), g.get(bp + "wo.bias"));                         // [L, D]
            float[] dQkv = attentionBackward(bt.qkv, dAtt, t.starts, t.counts, L);        // [L, 3D], post-RoPE
            rope(dQkv, t.cos, t.sin, L, true);                                               // → pre-RoPE
            float[] dY0 = linearBackward(dQkv, bt.y0, L, p(bp + "wqkv.weight"), dim, 3 * dim,
                    g.get(bp + "wqkv.weight"), g.get(bp + "wqkv.bias"));                     // [L, D]
            dx = add(dMid, layerNormBackward(bt.ln0, dY0, p(bp + "norm0.weight"),
                    g.get(bp + "norm0.weight"), g.get(bp + "norm0.bias")));
        }

        // 1'. dx = d loss / d (patch embedding + position embedding), [L, D]
        // conv as Linear: dW [D, P2] = dxᵀ·pixels, db = column sums (the pixels need no gradient)
        accumulateWeightGrad(dx, t.pixels, L, patchLen, dim, g.get(VT + "patch_embed.proj.weight"), g.get(VT + "patch_embed.proj.bias"));
        // position table: the transpose of the bicubic resize, i.e. each grid position's gradient scattered back
        // onto its 4×4 source taps with the same weights (clamped taps at the border simply accumulate)
        float[] dTable = g.get(VT + "patch_embed.pos_emb.weight");
        final float[] dPatch = dx;
        // columns split over the pool: every column's scatter keeps the serial order (images, positions, taps)
        Parallel.forRange(dim, 16, (c0, c1) -> { for (int m = 0; m < t.grids.length; m++) {
            int gh = t.grids[m][0], gw = t.grids[m][1];
            Bicubic by = new Bicubic(cfg.posEmbHeight(), gh), bx = new Bicubic(cfg.posEmbWidth(), gw);
            for (int oy = 0; oy < gh; oy++) {
                for (int ox = 0; ox < gw; ox++) {
                    int row = (t.starts[m] + oy * gw + ox) * dim;
                    for (int r = 0; r < 4; r++) {
                        for (int k = 0; k < 4; k++) {
                            double wgt = by.weight(oy, r) * bx.weight(ox, k);
                            int dst = (by.index(oy, r) * cfg.posEmbWidth() + bx.index(ox, k)) * dim;
                            for (int c = c0; c < c1; c++) dTable[dst + c] += wgt * dPatch[row + c];
                        }
                    }
                }
            }
        } });
        return g;
    }

    // =================================================================================================================
    // Building blocks (forward and backward)
    // =================================================================================================================

    /** y [n, out] = x [n, in] · Wᵀ + b, W [out, in] row-major as in the checkpoint (the packed GEMM). */
    private static float[] linear(float[] x, int n, float[] w, float[] b, int in, int out) {
        return LinearOps.forward(x, n, in, w, b, out);
    }

    /**
     * Backward of {@link #linear}: adds dW [out, in] += dyᵀ·x and db [out] += Σ_rows dy; returns dx [n, in] = dy·W.
     */
    private static float[] linearBackward(float[] dy, float[] x, int n, float[] w, int in, int out, float[] dW, float[] db) {
        float[] dx = new float[n * in];
        LinearOps.backward(dy, n, out, x, in, w, dx, dW, db);
        return dx;
    }

    private static void accumulateWeightGrad(float[] dy, float[] x, int n, int in, int out, float[] dW, float[] db) {
        LinearOps.backward(dy, n, out, x, in, null, null, dW, db);
    }

    /**
     * Element-wise passes split over the kernel pool in fixed ranges: each element is computed by exactly the same
     * expression as serially, so the result does not depend on the split or on timing.
     */
    static void elementwise(int n, Parallel.RangeBody body) {
        if (n >= 1 << 14) Parallel.forRange(n, 1 << 13, body);
        else body.run(0, n);
    }

    /** Rows of a [rows, width] pass split over the pool (rows are independent: the same floats as serially). */
    private static void byRows(int rows, int width, Parallel.RangeBody body) {
        if ((long) rows * width >= 1 << 14) Parallel.forRange(rows, Math.max(1, (1 << 13) / Math.max(1, width)), body);
        else body.run(0, rows);
    }

    /** Per-row mean/variance (biased) of x [rows, width]: x̂ = (x − μ)/σ, σ = sqrt(var + eps). */
    private static LnCache layerNormStats(float[] x, int rows, int width) {
        float[] xhat = new float[rows * width], rstd = new float[rows];
        byRows(rows, width, (r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                double mean = 0;
                for (int c = 0; c < width; c++) mean += x[r * width + c];
                mean /= width;
                double var = 0;
                for (int c = 0; c < width; c++) { double d = x[r * width + c] - mean; var += d * d; }
                var /= width;
                rstd[r] = (float) (1 / Math.sqrt(var + EPS));
                for (int c = 0; c < width; c++) xhat[r * width + c] = (float) ((x[r * width + c] - mean) * rstd[r]);
            }
        });
        return new LnCache(xhat, rstd, rows, width);
    }

    /** y = x̂·γ + β. */
    private static float[] affine(LnCache ln, float[] gamma, float[] beta) {
        float[] y = new float[ln.xhat.length];
        int w = ln.width;
        byRows(ln.rows, w, (r0, r1) -> {
            for (int r = r0; r < r1; r++)
                for (int c = 0; c < w; c++) y[r * w + c] = ln.xhat[r * w + c] * gamma[c] + beta[c];
        });
        return y;
    }

    /**
     * LayerNorm backward: dγ += Σ dy·x̂, dβ += Σ dy; with g = dy·γ per row,
     * dx = (1/σ)·(g − mean(g) − x̂·mean(g·x̂)) (the two mean terms are the gradients through μ and σ).
     * dx is computed per row (rows split over the pool); dγ and dβ per column, each column summing its rows in row
     * order (columns split over the pool), so every float is the same as in one serial pass.
     */
    private static float[] layerNormBackward(LnCache ln, float[] dy, float[] gamma, float[] dGamma, float[] dBeta) {
        int w = ln.width, rows = ln.rows;
        float[] dx = new float[dy.length];
        byRows(rows, w, (r0, r1) -> {
            float[] gr = new float[w];
            for (int r = r0; r < r1; r++) {
                double meanG = 0, meanGx = 0;
                for (int c = 0; c < w; c++) {
                    int i = r * w + c;
                    gr[c] = dy[i] * gamma[c];
                    meanG += gr[c];
                    meanGx += gr[c] * ln.xhat[i];
                }
                meanG /= w;
                meanGx /= w;
                for (int c = 0; c < w; c++) {
                    int i = r * w + c;
                    dx[i] = (float) (ln.rstd[r] * (gr[c] - meanG - ln.xhat[i] * meanGx));
                }
            }
        });
        Parallel.RangeBody columns = (c0, c1) -> {
            for (int r = 0; r < rows; r++) {
                for (int c = c0; c < c1; c++) {
                    int i = r * w + c;
                    dGamma[c] += dy[i] * ln.xhat[i];
                    dBeta[c] += dy[i];
                }
            }
        };
        if ((long) rows * w >= 1 << 14 && w >= 32) Parallel.forRange(w, 16, columns);
        else columns.run(0, w);
        return dx;
    }

    private static float[] add(float[] a, float[] b) {
        float[] y = new float[a.length];
        elementwise(a.length, (i0, i1) -> { for (int i = i0; i < i1; i++) y[i] = a[i] + b[i]; });
        return y;
    }

    /**
     * RoPE in place on the q and k column blocks of qkv [L, 3D]: complex pair k of each head (dims 2k, 2k+1) is
     * multiplied by e^{iθ}. {@code inverse} multiplies by e^{−iθ}: a rotation's transpose is its inverse, so this
     * maps d loss/d(rotated) to d loss/d(unrotated). v is left alone.
     */
    private void rope(float[] qkv, float[] cos, float[] sin, int L, boolean inverse) {
        int pairs = headDim / 2, stride = 3 * dim;
        byRows(L, stride, (t0, t1) -> { for (int t = t0; t < t1; t++) {
            for (int part = 0; part < 2; part++) {                      // q, then k
                for (int hh = 0; hh < heads; hh++) {
                    int o = t * stride + part * dim + hh * headDim;
                    for (int k = 0; k < pairs; k++) {
                        double c = cos[t * pairs + k], s = inverse ? -sin[t * pairs + k] : sin[t * pairs + k];
                        double re = qkv[o + 2 * k], im = qkv[o + 2 * k + 1];
                        qkv[o + 2 * k] = (float) (re * c - im * s);
                        qkv[o + 2 * k + 1] = (float) (re * s + im * c);
                    }
                }
            }
        } });
    }

    /**
     * Softmax probabilities P [n, n] of one head of one image: P = softmax(q·kᵀ/√d) row by row (non-causal). q and k
     * of the head are gathered into contiguous [n, d] rows and kᵀ [d, n], so that a row of scores is computed eight keys
     * at a time ({@link LinearOps#dotsT}: the same floats as one {@link VectorMath#dot} per key).
     */
    private float[] probabilities(float[] q, float[] k, float[] kt, int n) {
        float scale = (float) (1 / Math.sqrt(headDim));
        float[] pr = new float[n * n];
        for (int i = 0; i < n; i++) {
            LinearOps.dotsT(q, i * headDim, kt, n, headDim, pr, i * n);
            float max = Float.NEGATIVE_INFINITY;
            for (int j = 0; j < n; j++) {
                float s = pr[i * n + j] * scale;
                pr[i * n + j] = s;
                max = Math.max(max, s);
            }
            double sum = LinearOps.expShifted(pr, i * n, n, max, pr, i * n);
            float inv = (float) (1 / sum);
            for (int j = 0; j < n; j++) pr[i * n + j] *= inv;
        }
        return pr;
    }

    /**
     * Whether attention runs in the native kernels (kimivl_train.c, NativeKernels#vitAttention: an AVX-512 CPU and a
     * head width that is a multiple of 16; the wide tower's f32 `vit` step 1.1-1.2× faster with them, docs/training-speed.md,
     * session 32); false keeps the Java form (tests compare
     * the two). Their floats differ in the last bits (other summation order), both held to the goldens' tolerances.
     */
    boolean nativeAttention;

    private static final ThreadLocal<float[][]> ATTENTION_SCRATCH = ThreadLocal.withInitial(() -> new float[3][0]);

    /** Per-thread scratch for one head of n positions: p [n][np], ds [n][np] (backward only) and t [headDim][np]. */
    private float[][] attentionScratch(int n, boolean backward) {
        float[][] sc = ATTENTION_SCRATCH.get();
        int np = (n + 15) & ~15;
        if (sc[0].length < n * np) sc[0] = new float[n * np];
        if (backward && sc[1].length < n * np) sc[1] = new float[n * np];
        if (sc[2].length < headDim * np) sc[2] = new float[headDim * np];
        return sc;
    }

    /** q, k and v of head h over rows [s0, s0 + n) of qkv [L, 3D], each a contiguous [n, headDim] block. */
    private float[][] headQkv(float[] qkv, int s0, int n, int h) {
        return new float[][]{gather(qkv, s0, n, h * headDim), gather(qkv, s0, n, dim + h * headDim), gather(qkv, s0, n, 2 * dim + h * headDim)};
    }

    /** Columns [off, off + headDim) of rows [s0, s0 + n) of qkv [L, 3D] as a contiguous [n, headDim] block. */
    private float[] gather(float[] qkv, int s0, int n, int off) {
        float[] b = new float[n * headDim];
        for (int i = 0; i < n; i++) System.arraycopy(qkv, (s0 + i) * 3 * dim + off, b, i * headDim, headDim);
        return b;
    }

    /**
     * out [L, D]: per image and head, O = P·V (keys and values of the same image only); (image, head) pairs in parallel.
     * Each output row accumulates p_ij·v_j over j in order in registers (the floats of an axpy per key).
     */
    private float[] attention(float[] qkv, int[] starts, int[] counts, int L) {
        float[] out = new float[L * dim];
        int pairs = starts.length * heads;
        float scale = (float) (1 / Math.sqrt(headDim));
        Parallel.forRange(pairs, 1, (p0, p1) -> {
            for (int p = p0; p < p1; p++) {
                int m = p / heads, h = p % heads, s0 = starts[m], n = counts[m];
                float[][] qkvH = headQkv(qkv, s0, n, h);
                float[] q = qkvH[0], k = qkvH[1], v = qkvH[2];
                if (nativeAttention) {
                    // kimivl_train.c: register-tiled products, P in a per-thread scratch; writes this head's columns
                    float[][] sc = attentionScratch(n, false);
                    NativeKernels.vitAttention(q, k, v, n, headDim, scale, sc[0], sc[2], out, s0 * dim + h * headDim, dim);
                    continue;
                }
                float[] pr = probabilities(q, k, LinearOps.transpose(k, n, headDim), n);
                for (int i = 0; i < n; i++) LinearOps.rowTimes(pr, i * n, 1, n, v, headDim, out, (s0 + i) * dim + h * headDim);
            }
        });
        return out;
    }

    /**
     * Attention backward, P recomputed from the saved q, k: dV = Pᵀ·dO, dP = dO·Vᵀ,
     * dS = P ∘ (dP − rowsum(dP ∘ P)) (softmax), dq = dS·k/√d, dk = dSᵀ·q/√d. Returns d qkv [L, 3D].
     * Each (image, head) pair writes its own columns of d qkv, so the pairs run in parallel. Every sum runs over the
     * same terms in the same order as one axpy / dot per (i, j) would (i outer, j inner), held in registers.
     */
    private float[] attentionBackward(float[] qkv, float[] dOut, int[] starts, int[] counts, int L) {
        int stride = 3 * dim;
        float scale = (float) (1 / Math.sqrt(headDim));
        float[] dQkv = new float[L * stride];
        int pairs = starts.length * heads;
        Parallel.forRange(pairs, 1, (p0, p1) -> {
            for (int p = p0; p < p1; p++) {
                int m = p / heads, h = p % heads, s0 = starts[m], n = counts[m];
                float[][] qkvH = headQkv(qkv, s0, n, h);
                float[] q = qkvH[0], k = qkvH[1], v = qkvH[2];
                float[] dO = new float[n * headDim];
                for (int i = 0; i < n; i++) System.arraycopy(dOut, (s0 + i) * dim + h * headDim, dO, i * headDim, headDim);
                if (nativeAttention) {
                    float[][] sc = attentionScratch(n, true);
                    int row = s0 * stride + h * headDim;
                    NativeKernels.vitAttentionBackward(q, k, v, dO, n, headDim, scale, sc[0], sc[1], sc[2], dQkv, row, row + dim, row + 2 * dim, stride);
                    continue;
                }
                float[] pr = probabilities(q, k, LinearOps.transpose(k, n, headDim), n);
                float[] vt = LinearOps.transpose(v, n, headDim);
                float[] dS = new float[n * n], dP = new float[n];
                for (int i = 0; i < n; i++) {
                    LinearOps.dotsT(dO, i * headDim, vt, n, headDim, dP, 0);   // dP[j] = dO_i · v_j
                    double rowDot = 0;                                  // Σ_j dP[i, j]·P[i, j]
                    for (int j = 0; j < n; j++) rowDot += (double) dP[j] * pr[i * n + j];
                    for (int j = 0; j < n; j++) dS[i * n + j] = (float) (pr[i * n + j] * (dP[j] - rowDot)) * scale;   // scale folded in
                }
                int row = s0 * stride;
                for (int i = 0; i < n; i++) {
                    // dq_i = Σ_j dS_ij·k_j;  dk_i = Σ_r dS_ri·q_r;  dv_i = Σ_r P_ri·dO_r
                    LinearOps.rowTimes(dS, i * n, 1, n, k, headDim, dQkv, row + i * stride + h * headDim);
                    LinearOps.rowTimes(dS, i, n, n, q, headDim, dQkv, row + i * stride + dim + h * headDim);
                    LinearOps.rowTimes(pr, i, n, n, dO, headDim, dQkv, row + i * stride + 2 * dim + h * headDim);
                }
            }
        });
        return dQkv;
    }

    /**
     * out[i] = gelu_tanh(u[i]) for i in [i0, i1) ({@code dOut} null: the forward), or out[i] = dOut[i]·gelu_tanh'(u[i])
     * (the backward), on float lanes ({@link VectorMath#geluTanh(FloatVector)}, the MoonViT MLP's own GELU in inference;
     * its derivative {@link VectorMath#geluTanhGrad}); the last lanes through a mask, with the same operations.
     */
    static void geluTanhInto(float[] u, float[] out, float[] dOut, int i0, int i1) {
        VectorSpecies<Float> f = dev.kimivl.tensor.Vectors.F;
        // whole vectors unmasked: on AVX2 a mask per vector (indexInRange) is built lane by lane and keeps C2 from
        // intrinsifying the GELU's derivative (JFR: lanewiseTemplate); only the last partial vector takes a mask
        int i = i0;
        for (int bound = i0 + f.loopBound(i1 - i0); i < bound; i += f.length()) {
            FloatVector v = FloatVector.fromArray(f, u, i);
            FloatVector r = dOut == null ? VectorMath.geluTanh(v) : VectorMath.geluTanhGrad(v).mul(FloatVector.fromArray(f, dOut, i));
            r.intoArray(out, i);
        }
        if (i < i1) {
            VectorMask<Float> m = f.indexInRange(i, i1);
            FloatVector v = FloatVector.fromArray(f, u, i, m);
            FloatVector r = dOut == null ? VectorMath.geluTanh(v) : VectorMath.geluTanhGrad(v).mul(FloatVector.fromArray(f, dOut, i, m));
            r.intoArray(out, i, m);
        }
    }

    /** GELU with the tanh approximation in double: 0.5·u·(1 + tanh(√(2/π)·(u + 0.044715u³))); the tests' reference for {@link #geluTanhInto}. */
    static double geluTanh(double u) {
        return 0.5 * u * (1 + Math.tanh(GELU_TANH_C * (u + 0.044715 * u * u * u)));
    }

    /** d/du of {@link #geluTanh}: 0.5(1 + t) + 0.5u(1 − t²)·√(2/π)(1 + 3·0.044715u²), t = tanh(…). */
    static double geluTanhGrad(double u) {
        double t = Math.tanh(GELU_TANH_C * (u + 0.044715 * u * u * u));
        return 0.5 * (1 + t) + 0.5 * u * (1 - t * t) * GELU_TANH_C * (1 + 3 * 0.044715 * u * u);
    }

    /** Exact GELU: 0.5·x·(1 + erf(x/√2)). */
    static double geluErf(double x) { return 0.5 * x * (1 + erf(x / Math.sqrt(2))); }

    /** d/dx of {@link #geluErf}: Φ(x) + x·φ(x). */
    static double geluErfGrad(double x) {
        return 0.5 * (1 + erf(x / Math.sqrt(2))) + x * Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI);
    }

    /**
     * erf in double (Java has none): erf(x) = 2/√π · e^{−x²} · Σ_n 2ⁿx^{2n+1}/(1·3·…·(2n+1)). Every term is positive,
     * so there is no cancellation; relative accuracy ~1e-15. Beyond |x| = 6, erf = ±1 to double precision.
     */
    static double erf(double x) {
        double ax = Math.abs(x);
        if (ax >= 6) return Math.signum(x);
        double term = ax, sum = ax;
        for (int n = 1; term > 1e-17 * sum; n++) {
            term *= 2 * ax * ax / (2 * n + 1);
            sum += term;
        }
        return Math.signum(x) * 2 / Math.sqrt(Math.PI) * Math.exp(-ax * ax) * sum;
    }

    /**
     * PyTorch's bicubic {@code F.interpolate(align_corners=False, antialias=False)} along one axis, in→out:
     * 4 taps per output (clamped to the input) and their weights (A = −0.75), computed in float32 as PyTorch does.
     * At in = out the weights are exactly (0, 1, 0, 0), an identity, as the inference path relies on.
     */
    private static final class Bicubic {
        private static final float A = -0.75f;
        private final int[] idx;     // [out, 4]
        private final float[] w;     // [out, 4]

        Bicubic(int in, int out) {
            idx = new int[out * 4];
            w = new float[out * 4];
            float scale = (float) in / out;
            for (int o = 0; o < out; o++) {
                float src = scale * (o + 0.5f) - 0.5f;                  // not clamped (PyTorch's cubic path)
                int i0 = (int) Math.floor(src);
                float t = src - i0;
                w[o * 4] = cc2(t + 1f);
                w[o * 4 + 1] = cc1(t);
                w[o * 4 + 2] = cc1(1f - t);
                w[o * 4 + 3] = cc2((1f - t) + 1f);
                for (int k = 0; k < 4; k++) idx[o * 4 + k] = Math.min(Math.max(i0 - 1 + k, 0), in - 1);
            }
        }

        int index(int o, int k) { return idx[o * 4 + k]; }

        double weight(int o, int k) { return w[o * 4 + k]; }

        private static float cc1(float x) { return ((A + 2) * x - (A + 3)) * x * x + 1; }

        private static float cc2(float x) { return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A; }
    }

}
