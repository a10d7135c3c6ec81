package dev.kimivl.train;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * A linear classifier on each image token (the projector's output) that names a label of the pixels under it (its
 * colour, its place in the image, the shape it is part of, whether an object's centre is there): logits = W·f + b, softmax cross-entropy averaged over the
 * scored tokens (label ≥ 0; a negative label is not scored). Scaffolding like the SigLIP towers and the caption decoder:
 * trained with the tower, in the ViT pre-training stage and in any later stage that trains the vision side, never
 * published.
 */
public final class TokenLabelHead {
    /** The labels a head can learn, and the prefix of its parameters' names ("colour.weight", "place.bias"). */
    public static final java.util.List<String> KINDS = java.util.List.of("colour", "place", "shape", "centre");
    final String W, B;
    private final int dim, classes;
    /** The class of "nothing here" (the ground, no shape), or −1 (every token has a place). */
    private final int background;
    private final Map<String, float[]> params = new LinkedHashMap<>();

    /** W [classes, dim] ~ N(0, 1/dim) from the seed, b [classes] 0; parameters named {@code kind.weight}, {@code kind.bias}. */
    public TokenLabelHead(String kind, int dim, int classes, long seed) {
        this(checked(kind), dim, classes, switch (kind) {
            case "place" -> -1;                                                  // every token has a place
            case "centre" -> dev.kimivl.train.data.TokenCentres.OTHER;           // the objects are the centres
            default -> classes - 1;                                              // the last class is "none"
        }, seed);
    }

    /**
     * A head of the same form on other rows than image tokens (a language model's hidden states), every class an
     * object class (no "none"); parameters named {@code name.weight}, {@code name.bias}.
     */
    public static TokenLabelHead onRows(String name, int dim, int classes, long seed) {
        return new TokenLabelHead(name, dim, classes, -1, seed);
    }

    private static String checked(String kind) {
        if (!KINDS.contains(kind)) throw new IllegalArgumentException("token label '" + kind + "' is not one of " + KINDS);
        return kind;
    }

    private TokenLabelHead(String kind, int dim, int classes, int background, long seed) {
        this.W = kind + ".weight";
        this.B = kind + ".bias";
        this.dim = dim;
        this.classes = classes;
        this.background = background;
        float[] w = new float[classes * dim];
        SplittableRandom r = new SplittableRandom(seed);
        for (int i = 0; i < w.length; i++) w[i] = (float) (Init.standardNormal(r) / Math.sqrt(dim));
        params.put(W, w);
        params.put(B, new float[classes]);
    }

    /** The live parameter arrays by name ("colour.weight", "colour.bias"), for an optimizer to update in place. */
    public Map<String, float[]> parameters() { return params; }

    /** The number of classes of a kind's labels; for colour and shape the last is "none" (the ground, no object). */
    public static int classes(String kind) {
        return switch (kind) {
            case "colour" -> dev.kimivl.train.data.TokenColours.CLASSES;
            case "place" -> dev.kimivl.train.data.TokenPlaces.CLASSES;
            case "shape" -> dev.kimivl.train.data.TokenShapes.CLASSES;
            case "centre" -> dev.kimivl.train.data.TokenCentres.CLASSES;
            default -> throw new IllegalArgumentException("token label '" + kind + "' is not one of " + KINDS);
        };
    }

    /**
     * loss (0 when no token is scored), grads by parameter name, the share of scored tokens whose most likely class is
     * the label (NaN when none is), the number scored, and the accuracy on the scored tokens of an object alone (label
     * not the "none" class; NaN when there are none): most tokens are ground, so the overall accuracy flatters.
     */
    public record Result(double loss, Map<String, float[]> grads, double accuracy, int scored, double objectAccuracy) {}

    /**
     * @param features [M, dim] the image tokens of a batch
     * @param labels   [M] each token's class, or &lt; 0: not scored
     * @param dFeatures [M, dim] out: d loss / d features is added here
     */
    public Result lossAndGrads(float[] features, int[] labels, float[] dFeatures) {
        int M = labels.length;
        if (features.length != M * dim || dFeatures.length != features.length) {
            throw new IllegalArgumentException(features.length + " feature values for " + M + " labels of width " + dim);
        }
        float[] w = params.get(W), b = params.get(B);
        float[] gw = new float[w.length], gb = new float[b.length];
        double loss = 0;
        int right = 0, scored = 0, objects = 0, objectsRight = 0;
        for (int y : labels) if (y >= 0) scored++;
        double[] z = new double[classes];
        for (int m = 0; m < M; m++) {
            int y = labels[m];
            if (y < 0) continue;
            if (y >= classes) throw new IllegalArgumentException("label " + y + " of token " + m + " is not in [0, " + classes + ")");
            double max = Double.NEGATIVE_INFINITY;
            int arg = 0;
            for (int c = 0; c < classes; c++) {
                double s = b[c];
                for (int d = 0; d < dim; d++) s += (double) w[c * dim + d] * features[m * dim + d];
                z[c] = s;
                if (s > max) { max = s; arg = c; }
            }
            if (arg == y) right++;
            if (background >= 0 && y != background) {
                objects++;
                if (arg == y) objectsRight++;
            }
            double sum = 0;
            for (int c = 0; c < classes; c++) sum += Math.exp(z[c] - max);
            loss += Math.log(sum) + max - z[y];
            for (int c = 0; c < classes; c++) {
                double g = (Math.exp(z[c] - max) / sum - (c == y ? 1 : 0)) / scored;     // d loss / d z[c]
                gb[c] += (float) g;
                for (int d = 0; d < dim; d++) {
                    gw[c * dim + d] += (float) (g * features[m * dim + d]);
                    dFeatures[m * dim + d] += (float) (g * w[c * dim + d]);
                }
            }
        }
        Map<String, float[]> grads = new LinkedHashMap<>();
        grads.put(W, gw);
        grads.put(B, gb);
        return new Result(scored == 0 ? 0 : loss / scored, grads, scored == 0 ? Double.NaN : right / (double) scored, scored,
                objects == 0 ? Double.NaN : objectsRight / (double) objects);
    }

    /** True for the parameters of a token-label head (of any kind). */
    public static boolean isHeadParameter(String name) {
        for (String k : KINDS) if (name.startsWith(k + ".")) return true;
        return false;
    }
}
