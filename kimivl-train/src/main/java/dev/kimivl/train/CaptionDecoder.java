package dev.kimivl.train;

import dev.kimivl.tensor.Parallel;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * The caption half of the ViT pre-training stage (CoCa: L = L_contrastive + 2·L_caption): a small autoregressive text
 * decoder that predicts each caption token from the image and the token before it, forward and backward side by side.
 * Like CoCa's decoder it exists only to train the vision side and is dropped afterwards.
 *
 * <p>Per image i (pooled projected features p_i [Dt], see {@link ImagePooling}) and caption token t:
 * <pre>
 * c_i  = W_c · p_i + b_c                   [H]     the image context
 * a_t  = c_i + P[y_(t-1)]                  [H]     P [V+1, H]: the previous token's embedding (row V: start)
 * h_t  = tanh(a_t)                          [H]
 * z_t  = O · h_t + b_o                      [V]     O [V, H]
 * L    = mean over every caption token of the batch of −log softmax(z_t)[y_t]
 * </pre>
 * Why a decoder this small: the nano language model as the caption decoder passes the caption's gradient to the image
 * through four layers of attention that start uniform, and 500 steps of it taught the ViT no shapes (TRAINING.md,
 * session 7); here every caption word's gradient reaches the pooled image directly.
 */
public final class CaptionDecoder {
    public static final String CONTEXT = "caption.context", CONTEXT_BIAS = "caption.context_bias", PREVIOUS = "caption.previous",
            OUT = "caption.out", OUT_BIAS = "caption.out_bias";

    private final int dt, h, vocab;
    private final Map<String, float[]> params = new LinkedHashMap<>();

    public CaptionDecoder(int featureDim, int hidden, int vocab, long seed) {
        this.dt = featureDim;
        this.h = hidden;
        this.vocab = vocab;
        SplittableRandom r = new SplittableRandom(seed);
        params.put(CONTEXT, Init.normal(r, h * dt, 1 / Math.sqrt(dt)));
        params.put(CONTEXT_BIAS, new float[h]);
        params.put(PREVIOUS, Init.normal(r, (vocab + 1) * h, 1));
        params.put(OUT, Init.normal(r, vocab * h, 1 / Math.sqrt(h)));
        params.put(OUT_BIAS, new float[vocab]);
    }

    public Map<String, float[]> parameters() { return params; }

    /**
     * @param pooled   [B][Dt] each image's pooled features
     * @param captions each image's caption token ids (the targets, in order)
     * @param dPooled  [B][Dt] d L / d pooled is added here
     * @return the loss and token accuracy; the decoder's gradients in {@link Result#grads}
     */
    public Result lossAndGrads(double[][] pooled, List<int[]> captions, double[][] dPooled) {
        int b = pooled.length;
        if (captions.size() != b) throw new IllegalArgumentException(b + " images but " + captions.size() + " captions");
        float[] wc = params.get(CONTEXT), bc = params.get(CONTEXT_BIAS), pe = params.get(PREVIOUS), o = params.get(OUT), ob = params.get(OUT_BIAS);
        int tokens = 0;
        for (int[] c : captions) tokens += c.length;
        if (tokens == 0) throw new IllegalArgumentException("every caption is empty");
        Map<String, float[]> g = new LinkedHashMap<>();
        float[] gwc = new float[wc.length], gbc = new float[h], gpe = new float[pe.length], go = new float[o.length], gob = new float[vocab];
        // the batch's caption tokens in order: image and previous token of each
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
        // c_i per image
        double[][] ctx = new double[b][h];
        for (int i = 0; i < b; i++) {
            double[] p = pooled[i];
            for (int k = 0; k < h; k++) {
                double s = bc[k];
                for (int d = 0; d < dt; d++) s += wc[k * dt + d] * p[d];
                ctx[i][k] = s;
            }
        }
        // per token, independent of the others (tokens split over the pool): h_t, the logits, −log p, d L / d z and
        // d L / d h_t. Every value is computed by the same expressions in the same order as one token at a time.
        final int n = tokens;
        double[] hs = new double[n * h], dhs = new double[n * h], dzs = new double[n * vocab], lossTerm = new double[n];
        boolean[] hit = new boolean[n];
        Parallel.forRange(n, 4, (q0, q1) -> {
            double[] z = new double[vocab];
            for (int q = q0; q < q1; q++) {
                double[] c = ctx[img[q]];
                int y = target[q], prev = prevOf[q], ho = q * h, zo = q * vocab;
                for (int k = 0; k < h; k++) hs[ho + k] = Math.tanh(c[k] + pe[prev * h + k]);
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
        for (int i = 0, q = 0; i < b; i++) {
            double[] p = pooled[i], dc = new double[h];
            for (int t = 0; t < captions.get(i).length; t++, q++) {
                int prev = prevOf[q], ho = q * h;
                for (int k = 0; k < h; k++) {
                    double da = dhs[ho + k] * (1 - hs[ho + k] * hs[ho + k]);
                    gpe[prev * h + k] += (float) da;
                    dc[k] += da;
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
        g.put(CONTEXT, gwc);
        g.put(CONTEXT_BIAS, gbc);
        g.put(PREVIOUS, gpe);
        g.put(OUT, go);
        g.put(OUT_BIAS, gob);
        return new Result(loss, (double) right / tokens, g);
    }

    /** The batch's mean caption cross-entropy, the share of caption tokens predicted right (greedy), the gradients. */
    public record Result(double loss, double tokenAccuracy, Map<String, float[]> grads) {}
}
