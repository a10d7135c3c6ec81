package dev.kimivl.train.recipe;

import dev.kimivl.train.data.Example;
import dev.kimivl.train.data.VisualWorld;

import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * Draws a stage's examples from the synthetic world by the stage's mix. Example b of step s of a stage comes from the
 * seed {@link #exampleSeed}(recipe seed, the stage's {@link Recipe#depth}, s, b): nothing depends on what was drawn before, so a resumed run draws
 * exactly what the uninterrupted one would have (the data cursor is the step number), and evaluation seeds (from
 * {@link #EVAL_SEED_BASE} up) never meet training ones.
 */
public final class ExampleSource {
    public static final List<String> KINDS = List.of("vqa", "caption", "compare", "chart", "reasoning", "text", "needle", "shapes", "object", "label", "passkey", "passkey-sweep", "copy", "repeat", "scene", "ground", "ground-grid", "ground-one", "video-needle", "inventory");
    /** The kinds whose examples hold exactly one image (what the ViT pre-training stage pairs with its caption). */
    public static final java.util.Set<String> ONE_IMAGE_KINDS = java.util.Set.of("vqa", "caption", "chart", "shapes", "object", "label", "inventory");
    /** Training seeds are below this; evaluation draws from here up. */
    public static final long EVAL_SEED_BASE = 1L << 52;

    private final VisualWorld world;
    private final String[] kinds;
    private final double[] cumulative;
    private final int needleChars;
    private final List<String> vqaTypes;
    /** Null, or the easy-image world that {@link #easyShare} of the examples draw from instead of {@link #world}. */
    private final VisualWorld easyWorld;
    private final double easyShare;

    public ExampleSource(VisualWorld world, Map<String, Double> mix, int needleChars) { this(world, mix, needleChars, null); }

    /** @param vqaTypes the VQA types to draw from (null: all of them, as {@link VisualWorld#vqa(long)} picks) */
    public ExampleSource(VisualWorld world, Map<String, Double> mix, int needleChars, List<String> vqaTypes) {
        this(world, null, 0, mix, needleChars, vqaTypes);
    }

    /**
     * A source whose examples draw their images from {@code easyWorld} with probability {@code easyShare} (decided by
     * each example's seed, so a resumed run draws the same) and from {@code world} otherwise.
     */
    public ExampleSource(VisualWorld world, VisualWorld easyWorld, double easyShare, Map<String, Double> mix, int needleChars, List<String> vqaTypes) {
        if (easyWorld != null && !(easyShare > 0 && easyShare < 1)) throw new IllegalArgumentException("easyShare must lie in (0, 1), got " + easyShare);
        this.easyWorld = easyWorld;
        this.easyShare = easyShare;
        this.vqaTypes = vqaTypes == null || vqaTypes.isEmpty() ? null : List.copyOf(vqaTypes);
        this.world = world;
        this.kinds = mix.keySet().stream().sorted().toArray(String[]::new);    // sorted: the JSON order must not matter
        this.cumulative = new double[kinds.length];
        double sum = 0;
        for (int i = 0; i < kinds.length; i++) cumulative[i] = sum += mix.get(kinds[i]);
        if (!(sum > 0)) throw new IllegalArgumentException("the mix " + mix + " has no positive weight");
        this.needleChars = needleChars;
    }

    /** A 52-bit seed from the recipe seed and the example's coordinates (SplitMix64 finaliser over the mixed words). */
    public static long exampleSeed(long seed, int stage, int step, int index) {
        long z = seed * 0x9E3779B97F4A7C15L + stage * 0xBF58476D1CE4E5B9L + step * 0x94D049BB133111EBL + index * 0x2545F4914F6CDD1DL;
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return (z ^ (z >>> 31)) & (EVAL_SEED_BASE - 1);
    }

    public Example draw(long seed) {
        double u = new SplittableRandom(seed ^ 0x5DEECE66DL).nextDouble() * cumulative[cumulative.length - 1];
        int i = 0;
        while (i < kinds.length - 1 && u >= cumulative[i]) i++;
        // a third generator of its own, so that the kinds and VQA types drawn stay those of a source without easyShare
        VisualWorld world = easyWorld != null && new SplittableRandom(seed ^ 0x6A09E667F3BCC909L).nextDouble() < easyShare ? easyWorld : this.world;
        if (kinds[i].equals("vqa") && vqaTypes != null) {
            return world.vqa(seed, vqaTypes.get((int) Math.floorMod(new SplittableRandom(seed ^ 0x2545F491L).nextLong(), (long) vqaTypes.size())));
        }
        return of(world, kinds[i], seed, needleChars);
    }

    static Example of(VisualWorld world, String kind, long seed, int needleChars) {
        return switch (kind) {
            case "vqa" -> world.vqa(seed);
            case "caption" -> world.caption(seed);
            case "compare" -> world.compare(seed);
            case "chart" -> world.chart(seed);
            case "reasoning" -> world.reasoning(seed);
            case "text" -> world.text(seed);
            case "needle" -> world.longContext(seed, needleChars);
            case "passkey" -> world.passkey(seed, needleChars);
            case "passkey-sweep" -> world.passkeySweep(seed, needleChars);
            case "copy" -> world.copy(seed);
            case "repeat" -> world.repeat(seed);
            case "object" -> world.object(seed);
            case "scene" -> world.conversation(seed);
            case "ground" -> world.grounding(seed);
            case "video-needle" -> dev.kimivl.train.data.Videos.random(seed);     // its own frames: plain, one size a video
            case "ground-grid" -> world.groundingOnGrid(seed);
            case "ground-one" -> world.groundingAlone(seed);
            case "label" -> world.label(seed);
            case "inventory" -> world.inventory(seed);
            case "shapes" -> {      // the earlier one-shape task (train-shapes), as a first lesson or a baseline
                dev.kimivl.train.ShapesData.Example e = dev.kimivl.train.ShapesData.next(new java.util.Random(seed));
                yield new Example("shapes", List.of(e.image()), e.question(), e.answer(), null);
            }
            default -> throw new IllegalArgumentException("unknown example kind " + kind);
        };
    }
}
