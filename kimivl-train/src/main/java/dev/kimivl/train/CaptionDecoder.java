package dev.kimivl.train;

import dev.kimivl.tensor.Parallel;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * The caption half of the ViT pre-training stage (CoCa: L = L_contrastive + 2·L_caption): a small autoregressive text
 * decoder that predicts each caption token from the image and the token before it, forward and backward side by side.
 * Like CoCa's decoder it exists only to train the vision side and is dropped afterwards; like CoCa's, it attends to
 * the image's tokens, not only to their mean.
 *
 * <p>Per image i (merged projected tokens F_i [M, Dt], their mean p_i [Dt], see {@link ImagePooling}) and caption
 * token t with previous token y_(t-1) (the start row V for t = 0):
 * <pre>
 * c_i  = W_c · p_i + b_c                   [H]     the image as a whole
 * K_i  = F_i · W_kᵀ   [M, A],  V_i = F_i · W_vᵀ  [M, H]
 * q_t  = Q[y_(t-1)]                        [A]     Q [V+1, A]: what to look for after that token
 * α_t  = softmax(K_i · q_t / √A)           [M]
 * a_t  = c_i + P[y_(t-1)] + α_tᵀ · V_i     [H]     P [V+1, H]: the previous token's embedding
 * h_t  = tanh(a_t)                          [H]
 * z_t  = O · h_t + b_o                      [V]     O [V, H]
 * L    = mean over every caption token of the batch of −log softmax(z_t)[y_t]
 * </pre>
 * Why a decoder this small: the nano language model as the caption decoder passes the caption's gradient to the image
 * through four layers of attention that start uniform, and 500 steps of it taught the ViT no shapes (TRAINING.md,
 * session 7); here every caption word's gradient reaches the image directly. Why the attention: with the mean alone
 * the decoder can say what is there but not where or how many, so nothing asked the ViT to keep its tokens apart;
 * after "left" or "three" the query looks for the tokens that say which.
 */
public final class CaptionDecoder {
    public static final String CONTEXT = "caption.context", CONTEXT_BIAS = "caption.context_bias", PREVIOUS = "caption.previous",
            OUT = "caption.out", OUT_BIAS = "caption.out_bias", QUERY = "caption.query", KEY = "caption.key", VALUE = "caption.value";
    /** Attention width of the decoder's look at the image tokens. */
    static final int ATTENTION = 32;

    private final int dt, h, vocab, att = ATTENTION;
    private final boolean attends;
    private final Map<String, float[]> params = new LinkedHashMap<>();

    /** The decoder as CoCa has it, attending to the image's tokens. */
    public CaptionDecoder(int featureDim, int hidden, int vocab, long seed) { this(featureDim, hidden, vocab, seed, true); }

    /**
     * @param attends whether the decoder looks at the image's tokens (the α·V term); without it, it sees their mean
     *                only, exactly as the decoder that trained the shipped nano model (the same initial draws, the same
     *                numbers), so recipes written before the attention still reproduce their runs
     */
    public CaptionDecoder(int featureDim, int hidden, int vocab, long seed, boolean attends) {
        this.dt = featureDim;
        this.h = hidden;
        this.vocab = vocab;
        this.attends = attends;
        SplittableRandom r = new SplittableRandom(seed);
        params.put(CONTEXT, Init.normal(r, h * dt, 1 / Math.sqrt(dt)));
        params.put(CONTEXT_BIAS, new float[h]);
        params.put(PREVIOUS, Init.normal(r, (vocab + 1) * h, 1));
        params.put(OUT, Init.normal(r, vocab * h, 1 / Math.sqrt(h)));
        params.put(OUT_BIAS, new float[vocab]);
        if (attends) {
            params.put(QUERY, Init.normal(r, (vocab + 1) * att, 1));
            params.put(KEY, Init.normal(r, att * dt, 1 / Math.sqrt(dt)));
            params.put(VALUE, Init.normal(r, h * dt, 1 / Math.sqrt(dt)));
        }
    }

    public Map<String, float[]> parameters() { return params; }

    /**
     * @param features  [rows, Dt] the images' merged tokens, image after image (mergedPerImage[i] rows each)
     * @param captions  each image's caption token ids (the targets, in order)
     * @param dPooled   [B][Dt] d L / d (each image's mean token) is added here: the caller adds its other losses'
     *                  and takes it back through the mean once ({@link ImagePooling#meanBackward}), in double
     * @param dFeatures [rows, Dt] d L / d features through the attention is added here (nothing without it)
     * @return the loss and token accuracy; the decoder's gradients in {@link Result#grads}
     */
    public Result lossAndGrads(float[] features, int[] mergedPerImage, List<int[]> captions, double[][] dPooled, float[] dFeatures) {
        int b = mergedPerImage.length;
        if (captions.size() != b) throw new IllegalArgumentException(b + " images but " + captions.size() + " captions");
        double[][] pooled = ImagePooling.mean(features, mergedPerImage, dt);
        float[] wc = params.get(CONTEXT), bc = params.get(CONTEXT_BIAS), pe = params.get(PREVIOUS), o = params.get(OUT), ob = params.get(OUT_BIAS);
        float[] wq = params.getOrDefault(QUERY, new float[0]), wk = params.getOrDefault(KEY, new float[0]), wv = params.getOrDefault(VALUE, new float[0]);
        int tokens = 0;
        for (int[] c : captions) tokens += c.length;
        if (tokens == 0) throw new IllegalArgumentException("every caption is empty");
        Map<String, float[]> g = new LinkedHashMap<>();
        float[] gwc = new float[wc.length], gbc = new float[h], gpe = new float[pe.length], go = new float[o.length], gob = new float[vocab];
        float[] gwq = new float[wq.length], gwk = new float[wk.length], gwv = new float[wv.length];
        // the batch's caption tokens in order: image, previous token and target of each
        int[] img = new int[tokens], prevOf = new int[tokens], target = new int[tokens];
        for (int i = 0, q = 0; i < b; i++) {
            int[] cap = captions.get(i);
            for (int t = 0; t < cap.length; t++, q++) {
                int y = cap[t];
                if (y < 0 || y >= vocab) throw new IllegalArgumentException("caption " + i + " has token " + y + " outside the vocabulary of " + vocab);
                img[q] = i;
                prevOf[q] = t == 0 ? vocab : cap[t - 1];
                target[q] = y;
            }
        }
        // per image: c_i, and its tokens' keys K_i [M, A] and values V_i [M, H] (rows of key/val from row0[i] on);
        // without attention every image has no rows to look at
        int[] row0 = new int[b + 1];
        for (int i = 0; i < b; i++) row0[i + 1] = row0[i] + (attends ? mergedPerImage[i] : 0);
        double[][] ctx = new double[b][h];
        double[] key = new double[row0[b] * att], val = new double[row0[b] * h];
        Parallel.forRange(b, 1, (i0, i1) -> {
            for (int i = i0; i < i1; i++) {
                double[] p = pooled[i];
                for (int k = 0; k < h; k++) {
                    double s = bc[k];
                    for (int d = 0; d < dt; d++) s += wc[k * dt + d] * p[d];
                    ctx[i][k] = s;
                }
                for (int r = row0[i]; r < row0[i + 1]; r++) {
                    int f0 = r * dt;
                    for (int j = 0; j < att; j++) {
                        double s = 0;
                        for (int d = 0; d < dt; d++) s += wk[j * dt + d] * features[f0 + d];
                        key[r * att + j] = s;
                    }
                    for (int k = 0; k < h; k++) {
                        double s = 0;
                        for (int d = 0; d < dt; d++) s += wv[k * dt + d] * features[f0 + d];
                        val[r * h + k] = s;
                    }
                }
            }
        });
        // per token, independent of the others (tokens split over the pool): the attention α_t over its image's
        // tokens, h_t, the logits, −log p, d L / d z and d L / d h_t. Every value is computed by the same expressions
        // in the same order as one token at a time.
        final int n = tokens;
        int[] alphaOff = new int[n + 1];
        for (int q = 0; q < n; q++) alphaOff[q + 1] = alphaOff[q] + (row0[img[q] + 1] - row0[img[q]]);
        double scale = 1 / Math.sqrt(att);
        double[] hs = new double[n * h], dhs = new double[n * h], dzs = new double[n * vocab], lossTerm = new double[n], alpha = new double[alphaOff[n]];
        boolean[] hit = new boolean[n];
        Parallel.forRange(n, 4, (q0, q1) -> {
            double[] z = new double[vocab];
            for (int q = q0; q < q1; q++) {
                double[] c = ctx[img[q]];
                int y = target[q], prev = prevOf[q], ho = q * h, zo = q * vocab, a0 = alphaOff[q], r0 = row0[img[q]], m = alphaOff[q + 1] - a0;
                double top = Double.NEGATIVE_INFINITY;
                for (int r = 0; r < m; r++) {
                    double s = 0;
                    for (int j = 0; j < att; j++) s += wq[prev * att + j] * key[(r0 + r) * att + j];
                    alpha[a0 + r] = s * scale;
                    top = Math.max(top, alpha[a0 + r]);
                }
                double norm = 0;
                for (int r = 0; r < m; r++) norm += alpha[a0 + r] = Math.exp(alpha[a0 + r] - top);
                for (int r = 0; r < m; r++) alpha[a0 + r] /= norm;
                for (int k = 0; k < h; k++) {
                    double look = 0;                      // α_tᵀ · V_i, component k
                    for (int r = 0; r < m; r++) look += alpha[a0 + r] * val[(r0 + r) * h + k];
                    hs[ho + k] = Math.tanh(c[k] + pe[prev * h + k] + look);
                }
                double max = Double.NEGATIVE_INFINITY;
                int arg = 0;
                for (int v = 0; v < vocab; v++) {
                    double s = ob[v];
                    for (int k = 0; k < h; k++) s += o[v * h + k] * hs[ho + k];
                    z[v] = s;
                    if (s > max) { max = s; arg = v; }
                }
                double sum = 0;
                for (int v = 0; v < vocab; v++) sum += Math.exp(z[v] - max);
                lossTerm[q] = (Math.log(sum) + max - z[y]) / n;
                hit[q] = arg == y;
                for (int v = 0; v < vocab; v++) {
                    double dz = (Math.exp(z[v] - max) / sum - (v == y ? 1 : 0)) / n;     // d L / d z_v
                    if (Math.abs(dz) < 1e-30) continue;                                   // dzs stays 0: skipped below too
                    dzs[zo + v] = dz;
                    for (int k = 0; k < h; k++) dhs[ho + k] += dz * o[v * h + k];
                }
            }
        });
        // the output layer's gradients: vocabulary rows split over the pool, each row summing the tokens in order
        Parallel.forRange(vocab, 64, (v0, v1) -> {
            for (int q = 0; q < n; q++) {
                int ho = q * h, zo = q * vocab;
                for (int v = v0; v < v1; v++) {
                    double dz = dzs[zo + v];
                    if (dz == 0) continue;
                    gob[v] += (float) dz;
                    for (int k = 0; k < h; k++) go[v * h + k] += (float) (dz * hs[ho + k]);
                }
            }
        });
        double loss = 0;
        int right = 0;
        for (int q = 0; q < n; q++) { loss += lossTerm[q]; if (hit[q]) right++; }
        // back through tanh, the attention and c_i, token after token in order
        double[] dKey = new double[key.length], dVal = new double[val.length];
        for (int i = 0, q = 0; i < b; i++) {
            double[] p = pooled[i], dc = new double[h];
            int r0 = row0[i], m = row0[i + 1] - row0[i];
            double[] dAlpha = new double[m];
            for (int t = 0; t < captions.get(i).length; t++, q++) {
                int prev = prevOf[q], ho = q * h, a0 = alphaOff[q];
                java.util.Arrays.fill(dAlpha, 0);
                for (int k = 0; k < h; k++) {
                    double da = dhs[ho + k] * (1 - hs[ho + k] * hs[ho + k]);
                    gpe[prev * h + k] += (float) da;
                    dc[k] += da;
                    for (int r = 0; r < m; r++) {
                        dAlpha[r] += da * val[(r0 + r) * h + k];
                        dVal[(r0 + r) * h + k] += alpha[a0 + r] * da;
                    }
                }
                double dot = 0;                                   // Σ_r α_r · dα_r, for the softmax's backward
                for (int r = 0; r < m; r++) dot += alpha[a0 + r] * dAlpha[r];
                for (int r = 0; r < m; r++) {
                    double ds = alpha[a0 + r] * (dAlpha[r] - dot) * scale;    // d L / d (q · k_r)
                    for (int j = 0; j < att; j++) {
                        gwq[prev * att + j] += (float) (ds * key[(r0 + r) * att + j]);
                        dKey[(r0 + r) * att + j] += ds * wq[prev * att + j];
                    }
                }
            }
            for (int k = 0; k < h; k++) {
                gbc[k] += (float) dc[k];
                for (int d = 0; d < dt; d++) {
                    gwc[k * dt + d] += (float) (dc[k] * p[d]);
                    dPooled[i][d] += dc[k] * wc[k * dt + d];
                }
            }
        }
        // keys and values back to W_k, W_v and the features, row after row in order
        for (int r = 0; r < row0[b]; r++) {
            int f0 = r * dt;
            for (int j = 0; j < att; j++) {
                double dk = dKey[r * att + j];
                if (dk == 0) continue;
                for (int d = 0; d < dt; d++) {
                    gwk[j * dt + d] += (float) (dk * features[f0 + d]);
                    dFeatures[f0 + d] += (float) (dk * wk[j * dt + d]);
                }
            }
            for (int k = 0; k < h; k++) {
                double dv = dVal[r * h + k];
                if (dv == 0) continue;
                for (int d = 0; d < dt; d++) {
                    gwv[k * dt + d] += (float) (dv * features[f0 + d]);
                    dFeatures[f0 + d] += (float) (dv * wv[k * dt + d]);
                }
            }
        }
        g.put(CONTEXT, gwc);
        g.put(CONTEXT_BIAS, gbc);
        g.put(PREVIOUS, gpe);
        g.put(OUT, go);
        g.put(OUT_BIAS, gob);
        if (attends) {
            g.put(QUERY, gwq);
            g.put(KEY, gwk);
            g.put(VALUE, gwv);
        }
        return new Result(loss, (double) right / tokens, g);
    }

    /** The batch's mean caption cross-entropy, the share of caption tokens predicted right (greedy), the gradients. */
    public record Result(double loss, double tokenAccuracy, Map<String, float[]> grads) {}
}
