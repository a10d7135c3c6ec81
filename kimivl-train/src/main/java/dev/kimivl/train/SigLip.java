package dev.kimivl.train;

import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * SigLIP's pairwise sigmoid contrastive loss with the two small towers the ViT pre-training stage puts around the
 * vision side (Kimi-VL §2.3, stage 1: "SigLIP loss + caption loss", CoCa-style), forward and backward side by side.
 *
 * <ul>
 *   <li>image tower: the image's pooled projected features ({@link ImagePooling}) through {@code imageProj}:
 *       x_i = W · p_i  [E], u_i = x_i / |x_i|;</li>
 *   <li>text tower: a bag of words over the caption's token ids in its own embedding table:
 *       y_j = mean_t T[c_j[t]]  [E], v_j = y_j / |y_j|;</li>
 *   <li>logits z_ij = exp(logScale)·u_i·v_j + bias, labels s_ij = +1 when caption i and caption j are the same text
 *       (synthetic captions repeat: "A red star." twice in a batch is a positive pair, not a negative), else −1;</li>
 *   <li>L = −(1/B) Σ_ij log σ(s_ij·z_ij), SigLIP's normalisation (per image, summed over the batch's texts).</li>
 * </ul>
 * The towers are scaffolding: they live in the optimizer state while the stage runs (so a resumed run continues them
 * exactly) and are not part of the published checkpoint, as CoCa's text tower is not part of MoonViT.
 *
 * <p>Init as SigLIP: logScale = ln 10, bias = −10 (the loss starts near the all-negative optimum instead of being
 * swamped by the B² − B negatives), the matrices with fan-in scaling.
 */
public final class SigLip {
    /** Parameter names (with the prefix an optimizer-state file stores them under). */
    public static final String IMAGE_PROJ = "siglip.image_proj", TEXT_EMBED = "siglip.text_embed", LOG_SCALE = "siglip.log_scale", BIAS = "siglip.bias";

    private final int dt, e, vocab;
    private final Map<String, float[]> params = new LinkedHashMap<>();

    /**
     * @param featureDim Dt, the projector's output width
     * @param embedDim   E, the shared embedding width
     * @param vocab      the text tower's vocabulary (the tokenizer's)
     */
    public SigLip(int featureDim, int embedDim, int vocab, long seed) {
        this.dt = featureDim;
        this.e = embedDim;
        this.vocab = vocab;
        SplittableRandom r = new SplittableRandom(seed);
        params.put(IMAGE_PROJ, Init.normal(r, e * dt, 1 / Math.sqrt(dt)));
        params.put(TEXT_EMBED, Init.normal(r, vocab * e, 1));
        params.put(LOG_SCALE, new float[] {(float) Math.log(10)});
        params.put(BIAS, new float[] {-10f});
    }

    /** The live parameters by name (an optimizer updates them in place; a checkpoint saves them). */
    public Map<String, float[]> parameters() { return params; }

    /** Loss and gradients of one batch. */
    public record Result(double loss, double retrievalAccuracy, Map<String, float[]> grads) {}

    /**
     * @param pooled   [B][Dt] each image's pooled projected features
     * @param captions the caption token ids of each example, same order
     * @param dPooled  [B][Dt] d L / d pooled is added here
     * @return the loss, the share of images whose best-scoring caption is a positive one, and the towers' gradients
     */
    public Result lossAndGrads(double[][] pooled, List<int[]> captions, double[][] dPooled) {
        int b = pooled.length;
        if (captions.size() != b) throw new IllegalArgumentException(b + " images but " + captions.size() + " captions");
        float[] w = params.get(IMAGE_PROJ), t = params.get(TEXT_EMBED);
        double scale = Math.exp(params.get(LOG_SCALE)[0]), bias = params.get(BIAS)[0];
        // ---- forward
        double[][] x = new double[b][e], u = new double[b][e], y = new double[b][e], v = new double[b][e];
        double[] xn = new double[b], yn = new double[b];
        for (int i = 0; i < b; i++) {
            for (int o = 0; o < e; o++) {
                double s = 0;
                for (int d = 0; d < dt; d++) s += w[o * dt + d] * pooled[i][d];
                x[i][o] = s;
            }
            xn[i] = norm(x[i]);
            for (int o = 0; o < e; o++) u[i][o] = x[i][o] / xn[i];
            int[] c = captions.get(i);
            if (c.length == 0) throw new IllegalArgumentException("caption " + i + " is empty");
            for (int id : c) {
                if (id < 0 || id >= vocab) throw new IllegalArgumentException("caption " + i + " has token " + id + " outside the vocabulary of " + vocab);
                for (int o = 0; o < e; o++) y[i][o] += t[id * e + o];
            }
            for (int o = 0; o < e; o++) y[i][o] /= c.length;
            yn[i] = norm(y[i]);
            for (int o = 0; o < e; o++) v[i][o] = y[i][o] / yn[i];
        }
        // s_ij = +1 where captions i and j are the same text; compared once, used by the loss and the retrieval count
        boolean[][] same = new boolean[b][b];
        for (int i = 0; i < b; i++) for (int j = 0; j < b; j++) same[i][j] = Arrays.equals(captions.get(i), captions.get(j));
        double loss = 0, dScale = 0, dBias = 0;
        int hits = 0;
        double[][] du = new double[b][e], dv = new double[b][e];
        for (int i = 0; i < b; i++) {
            int best = -1;
            double bestZ = Double.NEGATIVE_INFINITY;
            for (int j = 0; j < b; j++) {
                double dot = 0;
                for (int o = 0; o < e; o++) dot += u[i][o] * v[j][o];
                double z = scale * dot + bias;
                if (z > bestZ) { bestZ = z; best = j; }
                double s = same[i][j] ? 1 : -1;
                // −log σ(s·z) = softplus(−s·z), computed without overflow
                double a = -s * z;
                loss += (a > 0 ? a + Math.log1p(Math.exp(-a)) : Math.log1p(Math.exp(a))) / b;
                double dz = -s * sigmoid(-s * z) / b;       // d L / d z_ij
                dScale += dz * scale * dot;                 // z depends on logScale through scale = exp(logScale)
                dBias += dz;
                for (int o = 0; o < e; o++) {
                    du[i][o] += dz * scale * v[j][o];
                    dv[j][o] += dz * scale * u[i][o];
                }
            }
            if (same[i][best]) hits++;
        }
        // ---- backward through the normalisations, the projection, the pooling and the bag of words
        float[] gw = new float[w.length], gt = new float[t.length];
        for (int i = 0; i < b; i++) {
            double[] dx = normBackward(u[i], du[i], xn[i]);
            for (int o = 0; o < e; o++) {
                for (int d = 0; d < dt; d++) {
                    gw[o * dt + d] += (float) (dx[o] * pooled[i][d]);
                    dPooled[i][d] += dx[o] * w[o * dt + d];
                }
            }
            double[] dy = normBackward(v[i], dv[i], yn[i]);
            int[] c = captions.get(i);
            for (int id : c) for (int o = 0; o < e; o++) gt[id * e + o] += (float) (dy[o] / c.length);
        }
        Map<String, float[]> grads = new LinkedHashMap<>();
        grads.put(IMAGE_PROJ, gw);
        grads.put(TEXT_EMBED, gt);
        grads.put(LOG_SCALE, new float[] {(float) dScale});
        grads.put(BIAS, new float[] {(float) dBias});
        return new Result(loss, (double) hits / b, grads);
    }

    private static double norm(double[] a) {
        double s = 0;
        for (double q : a) s += q * q;
        return Math.sqrt(Math.max(s, 1e-24));
    }

    /** u = x/|x|: d L/d x = (d L/d u − u·(u · d L/d u)) / |x|. */
    private static double[] normBackward(double[] u, double[] du, double n) {
        double dot = 0;
        for (int o = 0; o < u.length; o++) dot += u[o] * du[o];
        double[] dx = new double[u.length];
        for (int o = 0; o < u.length; o++) dx[o] = (du[o] - u[o] * dot) / n;
        return dx;
    }

    private static double sigmoid(double a) {
        return a >= 0 ? 1 / (1 + Math.exp(-a)) : Math.exp(a) / (1 + Math.exp(a));
    }
}
