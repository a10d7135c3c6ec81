package dev.kimivl.train;

import dev.kimivl.train.data.Example;
import dev.kimivl.train.data.VisualWorld;

import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * A scaffold head on the language model (never published): a linear classifier on the residual stream after one
 * layer that names, at each colour word of a grounding conversation, the 3 × 3 region ({@link VisualWorld#REGIONS}) of
 * the object of that colour. Its loss, weighted, joins the answers' through {@link TextGrad.HiddenLoss}.
 *
 * <p>Why: a language model on a tower's image tokens learns "Where is the red shape?" among 2-4 objects slowly
 * (0.27-0.29 of new scenes after 2,000 steps) because the look-up it needs forms only once the colour word has been
 * matched against the image tokens. This head asks for that match at the colour word itself, with its own gradient;
 * with it and images of one size the look-up forms in 400-500 steps (0.82 held out, TRAINING.md session 14).
 */
public final class BindingHead {
    /** The prefix of the head's parameter names ("binding.weight", "binding.bias"). */
    public static final String NAME = "binding";

    /**
     * @param layer  after which layer of the language model the head reads the residual stream (1..layers)
     * @param weight its loss weight, added to the answers' loss
     */
    public record Spec(int layer, double weight) {
        public Spec {
            if (layer < 1) throw new IllegalArgumentException("the binding head reads the output of a layer ≥ 1, got " + layer);
            if (!(weight > 0) || Double.isInfinite(weight)) throw new IllegalArgumentException("the binding head's weight must be a finite number > 0, got " + weight);
        }
    }

    public final Spec spec;
    private final TokenLabelHead head;
    private TokenLabelHead.Result last;

    /** W [9, dim] ~ N(0, 1/dim) from the seed, b [9] 0. */
    public BindingHead(Spec spec, int dim, long seed) {
        this.spec = spec;
        this.head = TokenLabelHead.onRows(NAME, dim, VisualWorld.REGIONS.size(), seed);
    }

    /** The live parameter arrays by name, for an optimizer to update in place. */
    public Map<String, float[]> parameters() { return head.parameters(); }

    /** True for the head's parameters. */
    public static boolean isParameter(String name) { return name.startsWith(NAME + "."); }

    /**
     * The head's loss on one packed row, to pass to {@link TextGrad#lossAndGrads}: {@code labels} [T] each position's
     * region, −1 where nothing is asked. The pass's result is kept for {@link #last()} and {@link #weightedGrads()}.
     */
    public TextGrad.HiddenLoss loss(int[] labels) {
        return new TextGrad.HiddenLoss() {
            @Override public int layer() { return spec.layer(); }

            @Override public void apply(float[] hidden, int T, float[] dHidden) {
                float[] d = new float[hidden.length];
                last = head.lossAndGrads(hidden, labels, d);
                for (int i = 0; i < d.length; i++) dHidden[i] += (float) (spec.weight() * d[i]);
            }
        };
    }

    /** The last pass's loss, accuracy and number of scored positions (accuracy NaN when none was scored). */
    public TokenLabelHead.Result last() {
        if (last == null) throw new IllegalStateException("the binding head has not run yet");
        return last;
    }

    /** The last pass's gradients of the head's own parameters, times the weight (as its loss enters the total). */
    public Map<String, float[]> weightedGrads() {
        Map<String, float[]> g = new LinkedHashMap<>();
        for (var e : last().grads().entrySet()) {
            float[] v = e.getValue().clone();
            for (int i = 0; i < v.length; i++) v[i] *= (float) spec.weight();
            g.put(e.getKey(), v);
        }
        return g;
    }

    /**
     * [ids.length] the region to name at each position of an encoded grounding conversation: every token after the
     * last image that is a colour word of an object whose place the conversation gives (in a question, "Where is the
     * red shape?", or in an answer, "A red circle."), −1 elsewhere and everywhere in other examples.
     *
     * @param colourToken the token of " red" as the word appears inside a sentence (its last token if it has several)
     */
    public static int[] labels(Example ex, int[] ids, int placeholderId, java.util.function.ToIntFunction<String> colourToken) {
        int[] labels = new int[ids.length];
        Arrays.fill(labels, -1);
        Map<String, Integer> places = VisualWorld.groundingPlaces(ex);
        if (places.isEmpty()) return labels;
        Map<Integer, Integer> byToken = new java.util.HashMap<>();
        for (var e : places.entrySet()) byToken.put(colourToken.applyAsInt(e.getKey()), e.getValue());
        int start = 0;
        for (int t = 0; t < ids.length; t++) if (ids[t] == placeholderId) start = t + 1;
        for (int t = start; t < ids.length; t++) {
            Integer region = byToken.get(ids[t]);
            if (region != null) labels[t] = region;
        }
        return labels;
    }
}
