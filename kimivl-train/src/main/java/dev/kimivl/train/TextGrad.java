package dev.kimivl.train;

import dev.kimivl.config.TextConfig;
import dev.kimivl.io.WeightSource;
import dev.kimivl.tensor.Parallel;
import dev.kimivl.tensor.VectorMath;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Loss and gradients of the language model (DeepSeek-V3 / Moonlight: MLA attention, dense and MoE SwiGLU layers)
 * for one sequence: a plain float32 reference implementation of the forward pass that keeps what the backward pass
 * needs, then the backward pass by hand. Speed is not the point: it is the reference the training side is built and
 * checked on (golden/train/loss_grad_case_b: PyTorch's gradients of Kimi-VL config A).
 *
 * <p>The forward computes what the inference path computes (dev.kimivl.model), in the decompressed MLA form of the
 * reference: per head k = [W_UK·ĉ ; RoPE(k_pe)], v = W_UV·ĉ, ĉ = RMSNorm(kv_a(x)[:kvLora]) with eps 1e-6, RoPE on
 * interleaved pairs, causal softmax scaled by 1/sqrt(nope + rope). Routing: sigmoid scores, top-k on scores + bias,
 * weights = top-k scores normalised × routed_scaling_factor; the top-k choice is piecewise constant (no gradient), so
 * the router's gradient flows through the chosen scores only, and e_score_correction_bias has none (as in PyTorch).
 *
 * <p>Loss: mean cross-entropy over the positions whose target is not −100 (targets already shifted: position t is
 * scored against targets[t]). Products accumulate in double; everything stored is float32.
 */
public final class TextGrad {
    private final TextConfig c;
    private final String pre;           // tensor-name prefix, e.g. "language_model."
    private final int D, H, nope, rope, vDim, kvLora, qHead, V;
    private final float eps, scale;
    private final float[] invFreq;
    private final Map<String, float[]> w = new LinkedHashMap<>();
    private final Map<String, long[]> shapes = new LinkedHashMap<>();
    // the current call's packing: segment start per token, and per query row t the offset of its key range
    // [seg[t], t] in the compact per-head probability arrays (rowOff[T] entries a head); segEnd[t]: one past the last
    // token of t's sequence
    private int[] seg, rowOff, segEnd;

    public TextGrad(WeightSource src, TextConfig c, String prefix) {
        if (c.qLoraRank() != 0) throw new UnsupportedOperationException("TextGrad: q LoRA (q_a_proj/q_b_proj) not implemented yet");
        if (c.ropeScaling() != null) throw new UnsupportedOperationException("TextGrad: YaRN rope scaling not implemented yet");
        if (c.nGroup() > 1) throw new UnsupportedOperationException("TextGrad: group-limited routing not implemented yet");
        if (!c.scoringFunc().equals("sigmoid")) throw new UnsupportedOperationException("TextGrad: " + c.scoringFunc() + " router scoring not implemented yet");
        this.c = c;
        this.pre = prefix;
        D = c.hiddenSize();
        H = c.numHeads();
        nope = c.qkNopeHeadDim();
        rope = c.qkRopeHeadDim();
        vDim = c.vHeadDim();
        kvLora = c.kvLoraRank();
        qHead = nope + rope;
        V = c.vocabSize();
        eps = (float) c.rmsNormEps();
        scale = (float) (1.0 / Math.sqrt(qHead));
        invFreq = new float[rope / 2];
        for (int i = 0; i < rope / 2; i++) invFreq[i] = 1.0f / (float) Math.pow((float) c.ropeTheta(), (float) (2 * i) / rope);
        for (String n : src.names()) {
            if (n.startsWith(pre) && !n.endsWith("rotary_emb.inv_freq")) {
                w.put(n.substring(pre.length()), src.tensor(n).toFloats());
                shapes.put(n.substring(pre.length()), src.tensor(n).shape());
            }
        }
    }

    /** The parameters by full checkpoint name: the live float32 arrays the passes read, for an optimizer to update in place. */
    public Map<String, float[]> parameters() {
        Map<String, float[]> m = new LinkedHashMap<>();
        for (var e : w.entrySet()) m.put(pre + e.getKey(), e.getValue());
        return m;
    }

    /** A parameter's shape (full checkpoint name). */
    public long[] shape(String name) {
        long[] s = shapes.get(name.startsWith(pre) ? name.substring(pre.length()) : name);
        if (s == null) throw new IllegalArgumentException("no parameter " + name);
        return s.clone();
    }

    /**
     * Input embeddings [T, D] from this model's (current) embedding table: the rows of ids at text positions, and the
     * image features (rows in order, [image tokens, D]) at the others, as the model merges them.
     */
    public float[] embed(int[] ids, boolean[] isText, float[] imageFeatures) {
        float[] table = w.get("model.embed_tokens.weight"), emb = new float[ids.length * D];
        int img = 0;
        for (int t = 0; t < ids.length; t++) {
            if (isText[t]) System.arraycopy(table, ids[t] * D, emb, t * D, D);
            else System.arraycopy(imageFeatures, img++ * D, emb, t * D, D);
        }
        if (img * D != imageFeatures.length) throw new IllegalArgumentException(img + " image positions, " + imageFeatures.length / D + " feature rows");
        return emb;
    }

    /** The loss, d loss / d parameter (full checkpoint names, same shapes, row-major) and d loss / d input embeddings. */
    /**
     * @param tokenLoss  [T] −log p(target) at each scored position (0 elsewhere): per-sequence log-likelihoods for RL
     * @param expertLoad [layer][expert] tokens routed to each expert (null for dense layers): the load the
     *                   aux-loss-free bias update balances
     * @param correct    scored positions whose most likely token is the target (token accuracy)
     */
    public record Result(double loss, Map<String, float[]> grads, float[] dEmbeddings, double[] tokenLoss, int[][] expertLoad,
                         int correct) {}

    /**
     * emb [T, D]: the input embeddings (token rows, with image features already placed at the placeholder positions);
     * ids [T] the token ids (the embedding table's gradient goes to the rows of the tokens at positions where
     * {@code isText[t]}); targets [T] (−100: not scored).
     */
    public Result lossAndGrads(float[] emb, int[] ids, boolean[] isText, int[] targets) {
        return lossAndGrads(emb, ids, isText, targets, new int[ids.length]);
    }

    /**
     * As {@link #lossAndGrads(float[], int[], boolean[], int[])} for several sequences packed into one row of T tokens
     * without padding: segStart[t] is the index where token t's sequence begins. Attention stays within a sequence
     * (block-diagonal causal mask) and RoPE positions restart at each sequence's first token, so the result equals
     * the sequences run one by one, with the loss averaged over all their scored tokens.
     */
    public Result lossAndGrads(float[] emb, int[] ids, boolean[] isText, int[] targets, int[] segStart) {
        return lossAndGrads(emb, ids, isText, targets, segStart, Objective.MEAN_CROSS_ENTROPY);
    }

    /**
     * What the scored tokens' −log p become: the loss, and its derivative with respect to each token's −log p. The
     * gradient then flows as d loss / d logits[t] = scale[t] · (softmax[t] − onehot(target[t])), since
     * d(−log p_t) / d logits[t] = softmax[t] − onehot. Cross-entropy is the mean; RL objectives weigh whole sequences
     * (see {@code dev.kimivl.train.recipe.PolicyMirrorDescent}).
     */
    public interface Objective {
        /**
         * @param tokenLoss [T] −log p(target) at scored positions, 0 elsewhere
         * @param segStart  [T] where each token's sequence begins
         * @param scale     [T] out: d loss / d tokenLoss[t] (left 0 at unscored positions)
         * @return the loss
         */
        double apply(double[] tokenLoss, int[] targets, int[] segStart, double[] scale);

        /** The mean −log p over all scored tokens (SFT). */
        Objective MEAN_CROSS_ENTROPY = (tokenLoss, targets, segStart, scale) -> {
            int scored = 0;
            double loss = 0;
            for (int t = 0; t < targets.length; t++) if (targets[t] != -100) { scored++; loss += tokenLoss[t]; }
            for (int t = 0; t < targets.length; t++) if (targets[t] != -100) scale[t] = 1.0 / scored;
            return loss / scored;
        };
    }

    /**
     * A second loss on the residual stream after one layer (a scaffold head that asks the hidden state at some
     * positions for a label, as the token-label heads ask the image tokens): its gradient joins the main loss's on
     * the way down. Its loss is its own (kept by the implementation), not part of {@link Result#loss()}.
     */
    public interface HiddenLoss {
        /** After which layer, 1..L (L: the last layer's output, before the final norm). */
        int layer();

        /**
         * @param hidden  [T, D] the residual stream after {@link #layer()}
         * @param dHidden [T, D] d main loss / d hidden so far: this loss's gradient is added here
         */
        void apply(float[] hidden, int T, float[] dHidden);
    }

    /** As {@link #lossAndGrads(float[], int[], boolean[], int[], int[])} with another objective than mean cross-entropy. */
    public Result lossAndGrads(float[] emb, int[] ids, boolean[] isText, int[] targets, int[] segStart, Objective objective) {
        return lossAndGrads(emb, ids, isText, targets, segStart, objective, null);
    }

    /** As {@link #lossAndGrads(float[], int[], boolean[], int[], int[], Objective)} plus a loss on a layer's output (null: none). */
    public Result lossAndGrads(float[] emb, int[] ids, boolean[] isText, int[] targets, int[] segStart, Objective objective, HiddenLoss hiddenLoss) {
        int T = ids.length;
        if (segStart.length != T) throw new IllegalArgumentException(segStart.length + " segment starts for " + T + " tokens");
        this.seg = segStart;
        this.rowOff = new int[T + 1];
        for (int t = 0; t < T; t++) {
            if (segStart[t] < 0 || segStart[t] > t || (t > 0 && segStart[t] != segStart[t - 1] && segStart[t] != t)) {
                throw new IllegalArgumentException("segStart[" + t + "] = " + segStart[t] + " does not start a sequence at or before " + t);
            }
            rowOff[t + 1] = rowOff[t] + (t - segStart[t] + 1);
        }
        this.segEnd = new int[T];
        for (int t = T - 1; t >= 0; t--) segEnd[t] = t + 1 < T && segStart[t + 1] == segStart[t] ? segEnd[t + 1] : t + 1;
        Map<String, float[]> g = new LinkedHashMap<>();
        for (var e : w.entrySet()) g.put(e.getKey(), new float[e.getValue().length]);

        // ---------------------------------------------------------------- forward
        int L = c.numLayers();
        if (hiddenLoss != null && (hiddenLoss.layer() < 1 || hiddenLoss.layer() > L)) {
            throw new IllegalArgumentException("a hidden-state loss after layer " + hiddenLoss.layer() + " of a " + L + "-layer model");
        }
        float[][] xIn = new float[L][];                 // [T, D] residual stream into each layer
        LayerCache[] lc = new LayerCache[L];
        float[] x = emb.clone();
        for (int l = 0; l < L; l++) {
            xIn[l] = x.clone();
            lc[l] = new LayerCache();
            x = layerForward(l, x, T, lc[l]);
        }
        float[] xFinal = x;                              // [T, D]
        float[] normed = new float[T * D];
        float[] normW = w.get("model.norm.weight");
        for (int t = 0; t < T; t++) rmsNorm(xFinal, t * D, normW, eps, normed, t * D, D);
        float[] head = w.get("lm_head.weight");          // [V, D]
        float[] logits = linear(normed, T, D, head, V);  // [T, V]
        int scored = 0;
        for (int tg : targets) if (tg != -100) scored++;
        if (scored == 0) throw new IllegalArgumentException("no position has a target");
        float[] dLogits = new float[T * V];
        double[] tokenLoss = new double[T], lse = new double[T], scale = new double[T];
        boolean[] hit = new boolean[T];
        Parallel.forRange(T, 16, (t0, t1) -> {
            float[] e = new float[V];
            for (int t = t0; t < t1; t++) {
                if (targets[t] == -100) continue;
                float m = Float.NEGATIVE_INFINITY;
                int best = 0;
                for (int v = 0; v < V; v++) {
                    if (logits[t * V + v] > m) { m = logits[t * V + v]; best = v; }
                }
                hit[t] = best == targets[t];
                double s = LinearOps.expShifted(logits, t * V, V, m, e, 0);
                lse[t] = m + Math.log(s);
                tokenLoss[t] = lse[t] - logits[t * V + targets[t]];
            }
        });
        double loss = objective.apply(tokenLoss, targets, segStart, scale);
        Parallel.forRange(T, 16, (t0, t1) -> {
            for (int t = t0; t < t1; t++) {
                if (targets[t] == -100 || scale[t] == 0) continue;
                // softmax·scale on float lanes (lse rounded to float: ~1e-7 of the exponent)
                LinearOps.expShifted(logits, t * V, V, (float) lse[t], dLogits, t * V);
                VectorMath.scale(dLogits, t * V, V, (float) scale[t]);
                dLogits[t * V + targets[t]] -= (float) scale[t];
            }
        });

        // ---------------------------------------------------------------- backward
        float[] dNormed = new float[T * D];
        linearBackward(dLogits, T, V, normed, D, head, dNormed, g.get("lm_head.weight"));
        float[] dx = new float[T * D];
        for (int t = 0; t < T; t++) rmsNormBackward(xFinal, t * D, normW, eps, dNormed, t * D, dx, t * D, g.get("model.norm.weight"), D);
        for (int l = L - 1; l >= 0; l--) {
            if (hiddenLoss != null && hiddenLoss.layer() == l + 1) hiddenLoss.apply(l + 1 < L ? xIn[l + 1] : xFinal, T, dx);   // dx = d / d(layer l's output)
            dx = layerBackward(l, xIn[l], dx, T, lc[l], g);
        }
        float[] dEmb = dx;
        float[] dTable = g.get("model.embed_tokens.weight");
        for (int t = 0; t < T; t++) {
            if (!isText[t]) continue;
            for (int i = 0; i < D; i++) dTable[ids[t] * D + i] += dEmb[t * D + i];
        }
        Map<String, float[]> named = new LinkedHashMap<>();
        for (var e : g.entrySet()) named.put(pre + e.getKey(), e.getValue());
        int[][] load = new int[L][];
        for (int l = 0; l < L; l++) {
            if (lc[l].moe == null) continue;
            load[l] = new int[c.nRoutedExperts()];
            for (int e = 0; e < load[l].length; e++) load[l][e] = lc[l].moe.tokensOf[e].length;
        }
        int correct = 0;
        for (boolean h : hit) if (h) correct++;
        return new Result(loss, named, dEmb, tokenLoss, load, correct);
    }

    // ==================================================================== one decoder layer

    /** What a layer's backward pass needs from its forward pass. */
    private static final class LayerCache {
        float[] attnIn;        // [T, D] RMSNorm(x) into attention
        float[] q;             // [T, H, qHead] after RoPE
        float[] kva;           // [T, kvLora + rope] kv_a output (before norm / RoPE)
        float[] cHat;          // [T, kvLora] normalised latent
        float[] kpe;           // [T, rope] k_pe after RoPE
        float[] keys, vals;    // [H][T, qHead], [H][T, vDim]
        float[] probs;         // [H, rowOff[T]] causal softmax, per query row t its keys [seg[t], t]
        float[] attnOut;       // [T, H·vDim] before o_proj
        float[] xMid;          // [T, D] residual after attention
        float[] mlpIn;         // [T, D] RMSNorm(xMid)
        Ffn dense;             // dense layers
        MoeCache moe;          // MoE layers
    }

    private float[] layerForward(int l, float[] x, int T, LayerCache lc) {
        String p = "model.layers." + l + ".";
        lc.attnIn = new float[T * D];
        for (int t = 0; t < T; t++) rmsNorm(x, t * D, w.get(p + "input_layernorm.weight"), eps, lc.attnIn, t * D, D);
        float[] att = attentionForward(p + "self_attn.", lc.attnIn, T, lc);
        lc.xMid = new float[T * D];
        for (int i = 0; i < T * D; i++) lc.xMid[i] = x[i] + att[i];
        lc.mlpIn = new float[T * D];
        for (int t = 0; t < T; t++) rmsNorm(lc.xMid, t * D, w.get(p + "post_attention_layernorm.weight"), eps, lc.mlpIn, t * D, D);
        float[] f;
        if (c.isMoeLayer(l)) {
            lc.moe = new MoeCache();
            f = moeForward(p + "mlp.", lc.mlpIn, T, lc.moe);
        } else {
            lc.dense = new Ffn(p + "mlp.", lc.mlpIn, T);
            f = lc.dense.out;
        }
        float[] out = new float[T * D];
        for (int i = 0; i < T * D; i++) out[i] = lc.xMid[i] + f[i];
        return out;
    }

    /** dOut [T, D] → d x [T, D] (into the layer), accumulating the layer's parameter gradients. */
    private float[] layerBackward(int l, float[] x, float[] dOut, int T, LayerCache lc, Map<String, float[]> g) {
        String p = "model.layers." + l + ".";
        float[] dMlpIn = c.isMoeLayer(l) ? moeBackward(p + "mlp.", lc.mlpIn, dOut, T, lc.moe, g) : lc.dense.backward(dOut, g);
        float[] dMid = dOut.clone();
        for (int t = 0; t < T; t++) {
            rmsNormBackward(lc.xMid, t * D, w.get(p + "post_attention_layernorm.weight"), eps, dMlpIn, t * D, dMid, t * D,
                    g.get(p + "post_attention_layernorm.weight"), D);
        }
        float[] dAttnIn = attentionBackward(p + "self_attn.", dMid, T, lc, g);
        float[] dx = dMid.clone();
        for (int t = 0; t < T; t++) {
            rmsNormBackward(x, t * D, w.get(p + "input_layernorm.weight"), eps, dAttnIn, t * D, dx, t * D, g.get(p + "input_layernorm.weight"), D);
        }
        return dx;
    }

    // ==================================================================== MLA attention (decompressed form)

    private float[] attentionForward(String p, float[] xn, int T, LayerCache lc) {
        int kw = kvLora + rope;
        lc.q = linear(xn, T, D, w.get(p + "q_proj.weight"), H * qHead);
        lc.kva = linear(xn, T, D, w.get(p + "kv_a_proj_with_mqa.weight"), kw);
        lc.cHat = new float[T * kvLora];
        lc.kpe = new float[T * rope];
        for (int t = 0; t < T; t++) {
            int pos = t - seg[t];
            rmsNorm(lc.kva, t * kw, w.get(p + "kv_a_layernorm.weight"), 1e-6f, lc.cHat, t * kvLora, kvLora);
            System.arraycopy(lc.kva, t * kw + kvLora, lc.kpe, t * rope, rope);
            rotate(lc.kpe, t * rope, pos, 1);
            for (int h = 0; h < H; h++) rotate(lc.q, (t * H + h) * qHead + nope, pos, 1);
        }
        float[] kvb = linear(lc.cHat, T, kvLora, w.get(p + "kv_b_proj.weight"), H * (nope + vDim));   // [T, H·(nope+v)]
        lc.keys = new float[H * T * qHead];
        lc.vals = new float[H * T * vDim];
        lc.probs = new float[H * rowOff[T]];
        lc.attnOut = new float[T * H * vDim];
        Parallel.forRange(H, 1, (h0, h1) -> {
            for (int h = h0; h < h1; h++) {
                for (int t = 0; t < T; t++) {
                    int src = t * H * (nope + vDim) + h * (nope + vDim);
                    System.arraycopy(kvb, src, lc.keys, (h * T + t) * qHead, nope);
                    System.arraycopy(lc.kpe, t * rope, lc.keys, (h * T + t) * qHead + nope, rope);
                    System.arraycopy(kvb, src + nope, lc.vals, (h * T + t) * vDim, vDim);
                }
                // scores of query row i against keys [s0, i] from kᵀ [qHead, T] of the head, a vector of keys at a
                // time (LinearOps.dotsT: the floats of one VectorMath.dot per key)
                float[] kt = LinearOps.transpose(lc.keys, h * T * qHead, T, qHead);
                for (int i = 0; i < T; i++) {
                    int qo = (i * H + h) * qHead, s0 = seg[i], po = h * rowOff[T] + rowOff[i], n = i - s0 + 1;
                    LinearOps.dotsT(lc.q, qo, kt, T, s0, n, qHead, lc.probs, po);
                    float m = Float.NEGATIVE_INFINITY;
                    for (int j = 0; j < n; j++) {
                        float d = lc.probs[po + j] * scale;
                        lc.probs[po + j] = d;
                        m = Math.max(m, d);
                    }
                    double z = LinearOps.expShifted(lc.probs, po, n, m, lc.probs, po);
                    float inv = (float) (1 / z);
                    for (int j = 0; j < n; j++) lc.probs[po + j] *= inv;
                    // out_i = Σ_j p_ij·v_j, j in order, in registers (the floats of one axpy per key into the zeroed row)
                    LinearOps.rowTimes(lc.probs, po, 1, n, lc.vals, (h * T + s0) * vDim, vDim, vDim, lc.attnOut, i * H * vDim + h * vDim);
                }
            }
        });
        return linear(lc.attnOut, T, H * vDim, w.get(p + "o_proj.weight"), D);
    }

    /** d attention output [T, D] → d normed input [T, D]. */
    private float[] attentionBackward(String p, float[] dOut, int T, LayerCache lc, Map<String, float[]> g) {
        int kw = kvLora + rope;
        float[] dAttn = new float[T * H * vDim];
        linearBackward(dOut, T, D, lc.attnOut, H * vDim, w.get(p + "o_proj.weight"), dAttn, g.get(p + "o_proj.weight"));
        float[] dq = new float[T * H * qHead];
        float[] dkvb = new float[T * H * (nope + vDim)];
        float[][] dkpeHead = new float[H][T * rope];          // per head, summed after: heads run in parallel
        int hv = H * vDim, kvStride = H * (nope + vDim);
        Parallel.forRange(H, 1, (h0, h1) -> {
            float[] dp = new float[T], col = new float[T];
            float[] dS = new float[rowOff[T]];                   // d scores of the head (before the scale), as probs
            for (int h = h0; h < h1; h++) {
                float[] dkpe = dkpeHead[h];
                int ph = h * rowOff[T];
                float[] vt = LinearOps.transpose(lc.vals, h * T * vDim, T, vDim);
                for (int i = 0; i < T; i++) {
                    int s0 = seg[i], po = ph + rowOff[i], ao = i * hv + h * vDim, n = i - s0 + 1;
                    LinearOps.dotsT(dAttn, ao, vt, T, s0, n, vDim, dp, 0);          // dp_j = dO_i · v_j
                    double dot = 0;
                    for (int j = 0; j < n; j++) dot += (double) dp[j] * lc.probs[po + j];
                    for (int j = 0; j < n; j++) dS[rowOff[i] + j] = (float) (lc.probs[po + j] * (dp[j] - dot)) * scale;
                    // dq_i = Σ_j ds_ij·k_j (the only writer of dq's row: the floats of one axpy per key into zeros)
                    LinearOps.rowTimes(dS, rowOff[i], 1, n, lc.keys, (h * T + s0) * qHead, qHead, qHead, dq, (i * H + h) * qHead);
                }
                // per key j, over the queries i ≥ j of its segment in increasing order (as the i-outer loop of one
                // axpy per (i, j) accumulates them): d value_j = Σ_i p_ij·dO_i, d key_j = Σ_i ds_ij·q_i (nope part
                // into kv_b's gradient, rope part into k_pe's)
                for (int j = 0; j < T; j++) {
                    int end = segEnd[j], cnt = end - j, sj = j - seg[j];
                    for (int i = j, r = 0; i < end; i++, r++) col[r] = lc.probs[ph + rowOff[i] + sj];
                    int vd = j * kvStride + h * (nope + vDim);
                    LinearOps.rowTimes(col, 0, 1, cnt, dAttn, j * hv + h * vDim, hv, vDim, dkvb, vd + nope);
                    for (int i = j, r = 0; i < end; i++, r++) col[r] = dS[rowOff[i] + sj];
                    int qj = (j * H + h) * qHead, qs = H * qHead;
                    LinearOps.rowTimes(col, 0, 1, cnt, lc.q, qj, qs, nope, dkvb, vd);
                    LinearOps.rowTimes(col, 0, 1, cnt, lc.q, qj + nope, qs, rope, dkpe, j * rope);
                }
            }
        });
        float[] dkpe = dkpeHead[0];
        for (int h = 1; h < H; h++) LinearOps.addInto(dkpe, 0, dkpeHead[h], 0, T * rope);
        float[] dcHat = new float[T * kvLora];
        linearBackward(dkvb, T, H * (nope + vDim), lc.cHat, kvLora, w.get(p + "kv_b_proj.weight"), dcHat, g.get(p + "kv_b_proj.weight"));
        float[] dkva = new float[T * kw];
        for (int t = 0; t < T; t++) {
            int pos = t - seg[t];
            rotate(dkpe, t * rope, pos, -1);                                       // RoPE⁻¹ = RoPEᵀ
            System.arraycopy(dkpe, t * rope, dkva, t * kw + kvLora, rope);
            rmsNormBackward(lc.kva, t * kw, w.get(p + "kv_a_layernorm.weight"), 1e-6f, dcHat, t * kvLora, dkva, t * kw,
                    g.get(p + "kv_a_layernorm.weight"), kvLora);
            for (int h = 0; h < H; h++) rotate(dq, (t * H + h) * qHead + nope, pos, -1);
        }
        float[] dx = new float[T * D];
        linearBackward(dq, T, H * qHead, lc.attnIn, D, w.get(p + "q_proj.weight"), dx, g.get(p + "q_proj.weight"));
        linearBackward(dkva, T, kw, lc.attnIn, D, w.get(p + "kv_a_proj_with_mqa.weight"), dx, g.get(p + "kv_a_proj_with_mqa.weight"));
        return dx;
    }

    /** RoPE on interleaved pairs (x[2i], x[2i+1]) at position t, by +θ (dir 1) or −θ (dir −1, the transpose). */
    private void rotate(float[] x, int off, int t, int dir) {
        float ft = t;
        for (int i = 0; i < rope / 2; i++) {
            float angle = ft * invFreq[i];
            float cos = (float) Math.cos(angle), sin = dir * (float) Math.sin(angle);
            float a = x[off + 2 * i], b = x[off + 2 * i + 1];
            x[off + 2 * i] = a * cos - b * sin;
            x[off + 2 * i + 1] = a * sin + b * cos;
        }
    }

    // ==================================================================== feed-forward

    /** SwiGLU y = down(silu(gate·x) ⊙ up·x) over rows x [n, D], keeping what its backward needs. */
    private final class Ffn {
        final String p;
        final float[] x, gate, up, act, out;
        final int n, I;

        Ffn(String p, float[] x, int n) {
            this.p = p;
            this.x = x;
            this.n = n;
            float[] wg = w.get(p + "gate_proj.weight");
            I = wg.length / D;
            gate = linear(x, n, D, wg, I);
            up = linear(x, n, D, w.get(p + "up_proj.weight"), I);
            act = new float[n * I];
            float[] g = gate, u = up, a = act;
            VisionGrad.elementwise(act.length, (i0, i1) -> siluTimes(g, u, a, i0, i1));
            out = linear(act, n, I, w.get(p + "down_proj.weight"), D);
        }

        /** dOut [n, D] (already weighted) → dx [n, D]. */
        float[] backward(float[] dOut, Map<String, float[]> g) {
            float[] dAct = new float[n * I];
            linearBackward(dOut, n, D, act, I, w.get(p + "down_proj.weight"), dAct, g.get(p + "down_proj.weight"));
            float[] dGate = new float[n * I], dUp = new float[n * I];
            VisionGrad.elementwise(n * I, (i0, i1) -> siluTimesBackward(gate, up, dAct, dGate, dUp, i0, i1));
            float[] dx = new float[n * D];
            linearBackward(dGate, n, I, x, D, w.get(p + "gate_proj.weight"), dx, g.get(p + "gate_proj.weight"));
            linearBackward(dUp, n, I, x, D, w.get(p + "up_proj.weight"), dx, g.get(p + "up_proj.weight"));
            return dx;
        }
    }

    /** What the MoE backward needs: per token the chosen experts, their scores and weights; per expert its rows. */
    private static final class MoeCache {
        float[] scores;        // [T, E] sigmoid(router logits)
        int[][] chosen;        // [T][k]
        float[][] weight;      // [T][k] final weights
        Ffn[] experts;         // per expert over the tokens routed to it (null: none)
        int[][] tokensOf;      // [E][n_e]
        float[][] expertOut;   // [E][n_e, D] unweighted expert outputs
        Ffn shared;
    }

    private float[] moeForward(String p, float[] x, int T, MoeCache mc) {
        int E = c.nRoutedExperts(), k = c.numExpertsPerTok();
        float[] logits = linear(x, T, D, w.get(p + "gate.weight"), E);
        float[] bias = w.get(p + "gate.e_score_correction_bias");
        mc.scores = new float[T * E];
        mc.chosen = new int[T][];
        mc.weight = new float[T][];
        for (int t = 0; t < T; t++) {
            float[] choice = new float[E];
            for (int e = 0; e < E; e++) {
                mc.scores[t * E + e] = sigmoid(logits[t * E + e]);
                choice[e] = mc.scores[t * E + e] + (bias != null ? bias[e] : 0f);
            }
            int[] idx = topK(choice, k);
            float sum = 0;
            float[] wt = new float[k];
            for (int i = 0; i < k; i++) { wt[i] = mc.scores[t * E + idx[i]]; sum += wt[i]; }
            for (int i = 0; i < k; i++) {
                if (c.normTopkProb()) wt[i] = wt[i] / (sum + 1e-20f);
                wt[i] *= (float) c.routedScalingFactor();
            }
            mc.chosen[t] = idx;
            mc.weight[t] = wt;
        }
        mc.tokensOf = new int[E][];
        mc.experts = new Ffn[E];
        mc.expertOut = new float[E][];
        float[] y = new float[T * D];
        for (int e = 0; e < E; e++) {
            int n = 0;
            for (int t = 0; t < T; t++) for (int i : mc.chosen[t]) if (i == e) n++;
            int[] toks = new int[n];
            n = 0;
            for (int t = 0; t < T; t++) for (int i : mc.chosen[t]) if (i == e) toks[n++] = t;
            mc.tokensOf[e] = toks;
            if (n == 0) continue;
            float[] xe = new float[n * D];
            for (int j = 0; j < n; j++) System.arraycopy(x, toks[j] * D, xe, j * D, D);
            mc.experts[e] = new Ffn(p + "experts." + e + ".", xe, n);
            mc.expertOut[e] = mc.experts[e].out;
            for (int j = 0; j < n; j++) {
                float wgt = weightOf(mc, toks[j], e);
                for (int i = 0; i < D; i++) y[toks[j] * D + i] += wgt * mc.expertOut[e][j * D + i];
            }
        }
        if (c.nSharedExperts() > 0) {
            mc.shared = new Ffn(p + "shared_experts.", x, T);
            for (int i = 0; i < T * D; i++) y[i] += mc.shared.out[i];
        }
        return y;
    }

    private float[] moeBackward(String p, float[] x, float[] dy, int T, MoeCache mc, Map<String, float[]> g) {
        int E = c.nRoutedExperts(), k = c.numExpertsPerTok();
        float[] dx = mc.shared != null ? mc.shared.backward(dy, g) : new float[T * D];
        float[][] dWeight = new float[T][k];                    // d loss / d final routing weight
        for (int e = 0; e < E; e++) {
            if (mc.experts[e] == null) continue;
            int[] toks = mc.tokensOf[e];
            int n = toks.length;
            float[] dOut = new float[n * D];
            for (int j = 0; j < n; j++) {
                int t = toks[j], slot = slotOf(mc, t, e);
                float wgt = mc.weight[t][slot];
                double dw = 0;
                for (int i = 0; i < D; i++) {
                    dOut[j * D + i] = wgt * dy[t * D + i];
                    dw += (double) dy[t * D + i] * mc.expertOut[e][j * D + i];
                }
                dWeight[t][slot] = (float) dw;
            }
            float[] dxe = mc.experts[e].backward(dOut, g);
            for (int j = 0; j < n; j++) for (int i = 0; i < D; i++) dx[toks[j] * D + i] += dxe[j * D + i];
        }
        // weights w_i = α·s_i / (Σ s + 1e-20) (normalised) or α·s_i: back to the chosen scores, then through the sigmoid
        float[] dLogits = new float[T * E];
        float alpha = (float) c.routedScalingFactor();
        for (int t = 0; t < T; t++) {
            int[] idx = mc.chosen[t];
            double sum = 0, weighted = 0;
            for (int i = 0; i < k; i++) sum += mc.scores[t * E + idx[i]];
            sum += 1e-20;
            for (int i = 0; i < k; i++) weighted += (double) dWeight[t][i] * mc.scores[t * E + idx[i]];
            for (int i = 0; i < k; i++) {
                double ds = c.normTopkProb() ? alpha * (dWeight[t][i] / sum - weighted / (sum * sum)) : alpha * dWeight[t][i];
                float s = mc.scores[t * E + idx[i]];
                dLogits[t * E + idx[i]] = (float) (ds * s * (1 - s));
            }
        }
        linearBackward(dLogits, T, E, x, D, w.get(p + "gate.weight"), dx, g.get(p + "gate.weight"));
        return dx;
    }

    private static int slotOf(MoeCache mc, int t, int e) {
        for (int i = 0; i < mc.chosen[t].length; i++) if (mc.chosen[t][i] == e) return i;
        throw new IllegalStateException("expert " + e + " not chosen for token " + t);
    }

    private static float weightOf(MoeCache mc, int t, int e) { return mc.weight[t][slotOf(mc, t, e)]; }

    /** Indices of the k largest values, largest first, ties to the lower index (as dev.kimivl.model.MoeBlock). */
    private static int[] topK(float[] v, int k) {
        int[] idx = new int[k];
        boolean[] used = new boolean[v.length];
        for (int i = 0; i < k; i++) {
            int best = -1;
            for (int j = 0; j < v.length; j++) if (!used[j] && (best < 0 || v[j] > v[best])) best = j;
            used[best] = true;
            idx[i] = best;
        }
        return idx;
    }

    // ==================================================================== primitives

    /** y [n, out] = x [n, in] · Wᵀ, W [out, in] (the packed GEMM, {@link LinearOps}). */
    static float[] linear(float[] x, int n, int in, float[] wt, int out) { return LinearOps.forward(x, n, in, wt, out); }

    /** For y = x·Wᵀ: dx [n, in] += dy·W, dW [out, in] += dyᵀ·x. */
    static void linearBackward(float[] dy, int n, int out, float[] x, int in, float[] wt, float[] dx, float[] dW) {
        LinearOps.backward(dy, n, out, x, in, wt, dx, dW);
    }

    /** out = w ⊙ x / sqrt(mean(x²) + eps) over x[xo .. xo + n). */
    static void rmsNorm(float[] x, int xo, float[] wt, float eps, float[] out, int oo, int n) {
        double ss = 0;
        for (int i = 0; i < n; i++) ss += (double) x[xo + i] * x[xo + i];
        float r = (float) (1.0 / Math.sqrt(ss / n + eps));
        for (int i = 0; i < n; i++) out[oo + i] = wt[i] * (x[xo + i] * r);
    }

    /**
     * Backward of {@link #rmsNorm}: with r = (mean(x²) + eps)^−½ and g = w ⊙ dy, dx_j += r·g_j − (r³/n)·x_j·Σ g_i x_i;
     * dw_i += dy_i·x_i·r.
     */
    static void rmsNormBackward(float[] x, int xo, float[] wt, float eps, float[] dy, int dyo, float[] dx, int dxo, float[] dw, int n) {
        double ss = 0;
        for (int i = 0; i < n; i++) ss += (double) x[xo + i] * x[xo + i];
        double r = 1.0 / Math.sqrt(ss / n + eps), gx = 0;
        for (int i = 0; i < n; i++) gx += (double) wt[i] * dy[dyo + i] * x[xo + i];
        for (int i = 0; i < n; i++) {
            dx[dxo + i] += (float) (r * wt[i] * dy[dyo + i] - r * r * r / n * x[xo + i] * gx);
            dw[i] += (float) (dy[dyo + i] * x[xo + i] * r);
        }
    }

    static float sigmoid(float x) { return 1f / (1f + (float) Math.exp(-x)); }

    static float silu(float x) { return x / (1f + (float) Math.exp(-x)); }

    private static final VectorSpecies<Float> VF = dev.kimivl.tensor.Vectors.F;

    /** σ(x) on float lanes: with e = e^−|x| (one exp of a non-positive argument for both signs), 1/(1 + e) or e/(1 + e). */
    private static FloatVector sigmoid(FloatVector x) {
        var e = VectorMath.exp(x.abs().neg());
        var r = e.add(1f);
        return x.broadcast(1f).blend(e, x.compare(VectorOperators.LT, 0f)).div(r);
    }

    /** a[i] = silu(g[i])·u[i] for i in [i0, i1): whole vectors on float lanes, the last partial one scalar. */
    static void siluTimes(float[] g, float[] u, float[] a, int i0, int i1) {
        int i = i0;
        for (int bound = i0 + VF.loopBound(i1 - i0); i < bound; i += VF.length()) {
            var x = FloatVector.fromArray(VF, g, i);
            x.mul(sigmoid(x)).mul(FloatVector.fromArray(VF, u, i)).intoArray(a, i);
        }
        for (; i < i1; i++) a[i] = silu(g[i]) * u[i];
    }

    /**
     * The backward of {@link #siluTimes} for i in [i0, i1), with s = σ(g): dUp = dA·g·s, dGate = dA·u·s·(1 + g·(1 − s)).
     */
    static void siluTimesBackward(float[] g, float[] u, float[] dA, float[] dGate, float[] dUp, int i0, int i1) {
        int i = i0;
        for (int bound = i0 + VF.loopBound(i1 - i0); i < bound; i += VF.length()) {
            var x = FloatVector.fromArray(VF, g, i);
            var s = sigmoid(x);
            var da = FloatVector.fromArray(VF, dA, i);
            da.mul(x).mul(s).intoArray(dUp, i);
            var oneMinus = s.neg().add(1f);
            da.mul(FloatVector.fromArray(VF, u, i)).mul(s).mul(x.mul(oneMinus).add(1f)).intoArray(dGate, i);
        }
        for (; i < i1; i++) {
            float s = sigmoid(g[i]);
            dUp[i] = dA[i] * g[i] * s;
            dGate[i] = dA[i] * u[i] * s * (1 + g[i] * (1 - s));
        }
    }
}
