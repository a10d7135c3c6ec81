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
        // without attention every image has no rows to look at. Products in double (Doubles: vector lanes, fixed order).
        int[] row0 = new int[b + 1];
        for (int i = 0; i < b; i++) row0[i + 1] = row0[i] + (attends ? mergedPerImage[i] : 0);
        final int rows = row0[b];
        double[] wcD = Doubles.of(wc), oD = Doubles.of(o), wqD = Doubles.of(wq), wkD = Doubles.of(wk), wvD = Doubles.of(wv);
        double[] feat = attends ? Doubles.of(features) : new double[0];            // [rows, Dt]
        double[][] ctx = new double[b][h];
        double[] key = new double[rows * att], val = new double[rows * h];
        Parallel.forRange(b, 1, (i0, i1) -> {
            for (int i = i0; i < i1; i++) {
                for (int k = 0; k < h; k++) ctx[i][k] = bc[k] + Doubles.dot(wcD, k * dt, pooled[i], 0, dt);
                for (int r = row0[i]; r < row0[i + 1]; r++) {
                    for (int j = 0; j < att; j++) key[r * att + j] = Doubles.dot(wkD, j * dt, feat, r * dt, dt);
                    for (int k = 0; k < h; k++) val[r * h + k] = Doubles.dot(wvD, k * dt, feat, r * dt, dt);
                }
            }
        });
        // per token, independent of the others (tokens split over the pool): the attention α_t over its image's
        // tokens, h_t, the logits, −log p, d L / d z and d L / d h_t
        final int n = tokens;
        int[] alphaOff = new int[n + 1];
        for (int q = 0; q < n; q++) alphaOff[q + 1] = alphaOff[q] + (row0[img[q] + 1] - row0[img[q]]);
        double scale = 1 / Math.sqrt(att);
        double[] hs = new double[n * h], dhs = new double[n * h], dzs = new double[n * vocab], lossTerm = new double[n], alpha = new double[alphaOff[n]];
        boolean[] hit = new boolean[n];
        Parallel.forRange(n, 4, (q0, q1) -> {
            double[] z = new double[vocab], look = new double[h];
            for (int q = q0; q < q1; q++) {
                double[] c = ctx[img[q]];
                int y = target[q], prev = prevOf[q], ho = q * h, zo = q * vocab, a0 = alphaOff[q], r0 = row0[img[q]], m = alphaOff[q + 1] - a0;
                double top = Double.NEGATIVE_INFINITY;
                for (int r = 0; r < m; r++) {
                    alpha[a0 + r] = Doubles.dot(wqD, prev * att, key, (r0 + r) * att, att) * scale;
                    top = Math.max(top, alpha[a0 + r]);
                }
                double norm = 0;
                for (int r = 0; r < m; r++) norm += alpha[a0 + r] = Math.exp(alpha[a0 + r] - top);
                java.util.Arrays.fill(look, 0);                   // α_tᵀ · V_i
                for (int r = 0; r < m; r++) {
                    alpha[a0 + r] /= norm;
                    Doubles.axpy(alpha[a0 + r], val, (r0 + r) * h, look, 0, h);
                }
                for (int k = 0; k < h; k++) hs[ho + k] = Math.tanh(c[k] + pe[prev * h + k] + look[k]);
                double max = Double.NEGATIVE_INFINITY;
                int arg = 0;
                for (int v = 0; v < vocab; v++) {
                    double s = ob[v] + Doubles.dot(oD, v * h, hs, ho, h);
                    z[v] = s;
                    if (s > max) { max = s; arg = v; }
                }
                double zy = z[y], sum = 0;
                for (int v = 0; v < vocab; v++) sum += z[v] = Math.exp(z[v] - max);      // z now holds e^(z − max)
                lossTerm[q] = (Math.log(sum) + max - zy) / n;
                hit[q] = arg == y;
                for (int v = 0; v < vocab; v++) {
                    double dz = (z[v] / sum - (v == y ? 1 : 0)) / n;                       // d L / d z_v
                    if (Math.abs(dz) < 1e-30) continue;                                   // dzs stays 0: skipped below too
                    dzs[zo + v] = dz;
                    Doubles.axpy(dz, oD, v * h, dhs, ho, h);
                }
            }
        });
        // the output layer's gradients: vocabulary rows split over the pool, each row summing the tokens in order
        double[] goD = new double[o.length], gobD = new double[vocab];
        Parallel.forRange(vocab, 64, (v0, v1) -> {
            for (int q = 0; q < n; q++) {
                int ho = q * h, zo = q * vocab;
                for (int v = v0; v < v1; v++) {
                    double dz = dzs[zo + v];
                    if (dz == 0) continue;
                    gobD[v] += dz;
                    Doubles.axpy(dz, hs, ho, goD, v * h, h);
                }
            }
        });
        double loss = 0;
        int right = 0;
        for (int q = 0; q < n; q++) { loss += lossTerm[q]; if (hit[q]) right++; }
        // back through tanh, the attention and c_i, token after token in order
        double[] dKey = new double[key.length], dVal = new double[val.length];
        double[] gwcD = new double[wc.length], gbcD = new double[h], gpeD = new double[pe.length], gwqD = new double[wq.length], da = new double[h];
        for (int i = 0, q = 0; i < b; i++) {
            double[] p = pooled[i], dc = new double[h];
            int r0 = row0[i], m = row0[i + 1] - row0[i];
            double[] dAlpha = new double[m];
            for (int t = 0; t < captions.get(i).length; t++, q++) {
                int prev = prevOf[q], ho = q * h, a0 = alphaOff[q];
                for (int k = 0; k < h; k++) da[k] = dhs[ho + k] * (1 - hs[ho + k] * hs[ho + k]);
                Doubles.axpy(1, da, 0, gpeD, prev * h, h);
                Doubles.axpy(1, da, 0, dc, 0, h);
                double dot = 0;                                   // Σ_r α_r · dα_r, for the softmax's backward
                for (int r = 0; r < m; r++) {
                    dAlpha[r] = Doubles.dot(da, 0, val, (r0 + r) * h, h);
                    Doubles.axpy(alpha[a0 + r], da, 0, dVal, (r0 + r) * h, h);
                    dot += alpha[a0 + r] * dAlpha[r];
                }
                for (int r = 0; r < m; r++) {
                    double ds = alpha[a0 + r] * (dAlpha[r] - dot) * scale;    // d L / d (q · k_r)
                    Doubles.axpy(ds, key, (r0 + r) * att, gwqD, prev * att, att);
                    Doubles.axpy(ds, wqD, prev * att, dKey, (r0 + r) * att, att);
                }
            }
            for (int k = 0; k < h; k++) {
                gbcD[k] += dc[k];
                Doubles.axpy(dc[k], p, 0, gwcD, k * dt, dt);
                Doubles.axpy(dc[k], wcD, k * dt, dPooled[i], 0, dt);
            }
        }
        // keys and values back to the features (rows split over the pool) and to W_k, W_v (their rows split)
        double[] gwkD = new double[wk.length], gwvD = new double[wv.length];
        if (rows > 0) {
            Parallel.forRange(rows, 8, (ra, rb) -> {
                double[] dF = new double[dt];
                for (int r = ra; r < rb; r++) {
                    java.util.Arrays.fill(dF, 0);
                    for (int j = 0; j < att; j++) if (dKey[r * att + j] != 0) Doubles.axpy(dKey[r * att + j], wkD, j * dt, dF, 0, dt);
                    for (int k = 0; k < h; k++) if (dVal[r * h + k] != 0) Doubles.axpy(dVal[r * h + k], wvD, k * dt, dF, 0, dt);
                    for (int d = 0; d < dt; d++) dFeatures[r * dt + d] += (float) dF[d];
                }
            });
            Parallel.forRange(att + h, 4, (ja, jb) -> {
                for (int j = ja; j < jb; j++) {
                    boolean isKey = j < att;
                    double[] dOut = isKey ? dKey : dVal, gOut = isKey ? gwkD : gwvD;
                    int width = isKey ? att : h, row = isKey ? j : j - att;
                    for (int r = 0; r < rows; r++) {
                        double dk = dOut[r * width + row];
                        if (dk != 0) Doubles.axpy(dk, feat, r * dt, gOut, row * dt, dt);
                    }
                }
            });
        }
        float[] gwc = Doubles.toFloats(gwcD), gbc = Doubles.toFloats(gbcD), gpe = Doubles.toFloats(gpeD), go = Doubles.toFloats(goD),
                gob = Doubles.toFloats(gobD), gwq = Doubles.toFloats(gwqD), gwk = Doubles.toFloats(gwkD), gwv = Doubles.toFloats(gwvD);
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
