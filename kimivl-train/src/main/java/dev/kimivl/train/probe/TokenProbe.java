package dev.kimivl.train.probe;

import dev.kimivl.train.data.Example;
import dev.kimivl.train.data.TokenColours;
import dev.kimivl.train.data.TokenShapes;
import dev.kimivl.train.data.VisualWorld;
import dev.kimivl.vision.PreprocessedImage;

import java.io.PrintStream;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * What a linear read-out finds in each merged image token of a frozen tower: the colour under it, the shape it is part
 * of, and its place in the image. Session 11's {@code TokenColourProbe} and {@code PosProbe} (TRAINING.md), kept here,
 * and a shape read-out from session 13.
 *
 * <p>Each merged token of the {@code grounding} scenes is labelled by {@link TokenColours#of} (the palette colour
 * covering ≥ 30% of its pixels, else {@link TokenColours#NONE}) and placed at ((c + ½) / W, (r + ½) / H) of its W × H
 * merged grid: the place relative to the image, which is what "at the top left" needs whatever the image's size.
 * Two {@link Ridge} read-outs are fitted on the training scenes' tokens: a classifier (one-hot targets over every
 * label, NONE included; the prediction is the largest output) and a regression onto (x, y); a second classifier
 * names the shape ({@link TokenShapes#of}: the shape of the drawn object covering ≥ 30% of the token). Scored on other
 * scenes: the colour and shape accuracies on object tokens (label ≠ NONE) and R² of x and of y.
 *
 * <p>The colour read-out takes only the tokens wholly inside the image. The preprocessor pads an image to whole
 * merged tokens with black (0 before normalisation). {@link TokenColours} once saw that padding as the palette's
 * "black" (on the easy grounds 161 of the 166 "black" tokens of 40 scenes were edge tokens, 67% of all object tokens);
 * it now counts the padding as ground, and the read-out still keeps to tokens whose 28 × 28 pixels are all image,
 * so its numbers compare with those measured before the fix.
 *
 * <p>λ: unless given, each read-out picks its own from {@link #LAMBDAS} by fitting on four fifths of the training
 * scenes and scoring on the other fifth (split by scene, since the tokens of one image are alike), then refits on all
 * of them. The held-out scenes play no part in the choice.
 */
public final class TokenProbe {
    /** The penalties tried, on standardised features (see {@link Ridge}). */
    public static final double[] LAMBDAS = {1e-4, 1e-3, 1e-2, 1e-1, 1};

    private TokenProbe() {}

    /**
     * Every merged token of some scenes.
     *
     * @param features [n, dim] the tower's output per token
     * @param colour   [n] {@link TokenColours} label
     * @param shape    [n] {@link TokenShapes} label
     * @param place    [n, 2] relative (x, y) of the token's centre in its merged grid
     * @param scene    [n] which scene (0-based, in the order given) the token is from
     * @param inside   [n] whether the token lies wholly inside the image (no padding): only these take part in the
     *                 colour and shape read-outs
     */
    public record Tokens(float[] features, int dim, int[] colour, int[] shape, double[] place, int[] scene, boolean[] inside) {
        public Tokens {
            int n = colour.length;
            if (features.length != n * dim || shape.length != n || place.length != 2 * n || scene.length != n || inside.length != n) {
                throw new IllegalArgumentException("tokens: " + features.length + " feature values (dim " + dim + "), " + n + " colours, "
                        + shape.length + " shapes, " + place.length + " place values, " + scene.length + " scene indices, " + inside.length + " inside flags do not describe one set of tokens");
            }
        }

        public int n() { return colour.length; }

        /** The tokens that pass. */
        Tokens where(java.util.function.IntPredicate tokenOk) {
            int m = 0;
            for (int i = 0; i < n(); i++) if (tokenOk.test(i)) m++;
            float[] f = new float[m * dim];
            int[] c = new int[m], sh = new int[m], sc = new int[m];
            double[] p = new double[2 * m];
            boolean[] in = new boolean[m];
            for (int i = 0, j = 0; i < n(); i++) {
                if (!tokenOk.test(i)) continue;
                in[j] = inside[i];
                System.arraycopy(features, i * dim, f, j * dim, dim);
                c[j] = colour[i];
                sh[j] = shape[i];
                p[2 * j] = place[2 * i];
                p[2 * j + 1] = place[2 * i + 1];
                sc[j++] = scene[i];
            }
            return new Tokens(f, dim, c, sh, p, sc, in);
        }

        /** The labels of one classifier read-out. */
        int[] labels(Label kind) {
            return kind == Label.COLOUR ? colour : shape;
        }
    }

    /** The two classifier read-outs: each token's colour, or the shape it is part of. */
    enum Label {
        COLOUR(TokenColours.CLASSES, TokenColours.NONE), SHAPE(TokenShapes.CLASSES, TokenShapes.NONE);
        final int classes, none;

        Label(int classes, int none) {
            this.classes = classes;
            this.none = none;
        }
    }

    /** The tokens of the {@code grounding} scenes of the given seeds through the frozen tower. */
    public static Tokens collect(FrozenVision v, VisualWorld world, long[] seeds) {
        int D = v.hidden();
        List<float[]> feats = new ArrayList<>();
        List<int[]> labels = new ArrayList<>(), shapes = new ArrayList<>();
        List<int[]> grids = new ArrayList<>();           // merged (W, H), the image's (width, height) inside the padding, merged token side
        int total = 0;
        for (int i0 = 0; i0 < seeds.length; i0 += 16) {  // a chunk at a time: the preprocessed pixels are not kept
            List<PreprocessedImage> ims = new ArrayList<>();
            List<Example> scenes = BindingProbe.render(world, seeds, i0, Math.min(seeds.length, i0 + 16), "ground");
            for (int i = i0; i < Math.min(seeds.length, i0 + 16); i++) {
                Example ex = scenes.get(i - i0);
                PreprocessedImage p = v.preprocess(ex.images().getFirst());
                ims.add(p);
                labels.add(TokenColours.of(p, v.preprocessorConfig));
                shapes.add(TokenShapes.of(p, ex.images().getFirst()));
                grids.add(new int[]{p.gridW() / 2, p.gridH() / 2, p.resizedWidth(), p.resizedHeight(), 2 * p.paddedWidth() / p.gridW()});
                total += p.tokens();
            }
            feats.addAll(v.features(ims));
        }
        float[] f = new float[total * D];
        int[] c = new int[total], sh = new int[total], sc = new int[total];
        double[] place = new double[2 * total];
        boolean[] inside = new boolean[total];
        int o = 0;
        for (int s = 0; s < seeds.length; s++) {
            int[] g = grids.get(s);
            int W = g[0], H = g[1], side = g[4];
            if (labels.get(s).length != W * H || feats.get(s).length != W * H * D) {
                throw new IllegalStateException("scene " + seeds[s] + ": " + labels.get(s).length + " labels, " + feats.get(s).length / D
                        + " token features, merged grid " + W + " × " + H);
            }
            System.arraycopy(feats.get(s), 0, f, o * D, W * H * D);
            for (int t = 0; t < W * H; t++, o++) {
                c[o] = labels.get(s)[t];
                sh[o] = shapes.get(s)[t];
                place[2 * o] = (t % W + 0.5) / W;
                place[2 * o + 1] = (t / W + 0.5) / H;
                inside[o] = (t % W + 1) * side <= g[2] && (t / W + 1) * side <= g[3];    // padding lies right and below
                sc[o] = s;
            }
        }
        return new Tokens(f, D, c, sh, place, sc, inside);
    }

    /**
     * @param insideTokens   held-out tokens wholly inside their image (the colour read-out's)
     * @param colourAccuracy share of the held-out object tokens (inside, label ≠ NONE) whose largest classifier output is
     *                       their colour
     * @param colourChance   share of those tokens whose colour is the training object tokens' most common one
     * @param r2x            R² of the held-out tokens' relative column, {@code r2y} of their row
     * @param shapeAccuracy  share of the held-out tokens an object's shape covers (inside, shape label ≠ NONE), of which
     *                       there are {@code shapeTokens}, whose largest shape classifier output is that shape
     */
    public record Result(int trainTokens, int testTokens, int insideTokens, int objectTokens, double colourAccuracy, double colourChance,
                         double r2x, double r2y, double colourLambda, double placeLambda,
                         int shapeTokens, double shapeAccuracy, double shapeChance, double shapeLambda) {}

    /** A classifier read-out's score on the held-out object tokens (label ≠ NONE). */
    private record Classified(int objects, double accuracy, double chance, double lambda) {}

    /** Fits one classifier read-out on {@code trainIn}, scores it on {@code testIn}'s object tokens. */
    private static Classified classify(Tokens trainIn, Tokens testIn, Label kind, Double lambda) {
        int K = kind.classes;
        double l = lambda != null ? lambda : choose(trainIn, kind);
        double[] pred = Ridge.of(trainIn.features(), trainIn.n(), trainIn.dim(), oneHot(trainIn.labels(kind), K), K).solve(l)
                .predict(testIn.features(), testIn.n());
        int[] counts = new int[K];
        for (int c : trainIn.labels(kind)) if (c != kind.none) counts[c]++;
        int common = 0;
        for (int c = 1; c < K; c++) if (counts[c] > counts[common]) common = c;
        int objects = 0, right = 0, commonRight = 0;
        for (int i = 0; i < testIn.n(); i++) {
            int label = testIn.labels(kind)[i];
            if (label == kind.none) continue;
            objects++;
            if (argmax(pred, i * K, K) == label) right++;
            if (label == common) commonRight++;
        }
        return new Classified(objects, objects == 0 ? Double.NaN : (double) right / objects, objects == 0 ? Double.NaN : (double) commonRight / objects, l);
    }

    /** Fits on {@code train}, scores on {@code test}; {@code lambda} null: chosen per read-out (see the class comment). */
    public static Result score(Tokens train, Tokens test, Double lambda) {
        if (train.dim() != test.dim()) throw new IllegalArgumentException("train tokens have " + train.dim() + " features, test tokens " + test.dim());
        Tokens trainIn = train.where(i -> train.inside()[i]), testIn = test.where(i -> test.inside()[i]);
        double lp = lambda != null ? lambda : choose(train, null);
        Classified colour = classify(trainIn, testIn, Label.COLOUR, lambda), shape = classify(trainIn, testIn, Label.SHAPE, lambda);
        double[] placePred = Ridge.of(train.features(), train.n(), train.dim(), train.place(), 2).solve(lp)
                .predict(test.features(), test.n());
        return new Result(train.n(), test.n(), testIn.n(), colour.objects(), colour.accuracy(), colour.chance(),
                Ridge.r2(placePred, test.place(), 2, 0), Ridge.r2(placePred, test.place(), 2, 1), colour.lambda(), lp,
                shape.objects(), shape.accuracy(), shape.chance(), shape.lambda());
    }

    /**
     * The λ of {@link #LAMBDAS} that scores best on every fifth training scene when fitted on the others: for a
     * classifier read-out ({@code kind}), or for the place regression (kind null).
     */
    static double choose(Tokens train, Label kind) {
        Tokens fit = train.where(i -> train.scene()[i] % 5 != 4), val = train.where(i -> train.scene()[i] % 5 == 4);
        if (fit.n() == 0 || val.n() == 0) return 1e-2;       // too few scenes to split: a middle value
        int K = kind == null ? 2 : kind.classes;
        Ridge r = kind != null ? Ridge.of(fit.features(), fit.n(), fit.dim(), oneHot(fit.labels(kind), K), K)
                : Ridge.of(fit.features(), fit.n(), fit.dim(), fit.place(), 2);
        double best = Double.NEGATIVE_INFINITY, bestLambda = LAMBDAS[0];
        for (double l : LAMBDAS) {
            double[] pred;
            try {
                pred = r.solve(l).predict(val.features(), val.n());
            } catch (IllegalArgumentException singular) {
                continue;
            }
            double score;
            if (kind != null) {
                int objects = 0, right = 0;
                for (int i = 0; i < val.n(); i++) {
                    int label = val.labels(kind)[i];
                    if (label == kind.none) continue;
                    objects++;
                    if (argmax(pred, i * K, K) == label) right++;
                }
                score = objects == 0 ? 0 : (double) right / objects;
            } else {
                score = Ridge.r2(pred, val.place(), 2, 0) + Ridge.r2(pred, val.place(), 2, 1);
            }
            if (score > best) { best = score; bestLambda = l; }
        }
        return bestLambda;
    }

    static double[] oneHot(int[] labels, int k) {
        double[] y = new double[labels.length * k];
        for (int i = 0; i < labels.length; i++) y[i * k + labels[i]] = 1;
        return y;
    }

    static int argmax(double[] v, int off, int k) {
        int b = 0;
        for (int j = 1; j < k; j++) if (v[off + j] > v[off + b]) b = j;
        return b;
    }

    /** Renders n + heldout scenes (distinct seeds), collects, scores and prints a small table; returns the result. */
    public static Result run(FrozenVision v, VisualWorld world, int n, int heldout, long seed, Double lambda, PrintStream out) {
        if (n < 2 || heldout < 1) throw new IllegalArgumentException("need at least 2 training scenes and 1 held-out scene, got " + n + " and " + heldout);
        long t0 = System.nanoTime();
        Tokens train = collect(v, world, BindingProbe.seeds(seed, 0, n)), test = collect(v, world, BindingProbe.seeds(seed, 1, heldout));
        Result r = score(train, test, lambda);
        out.printf(Locale.ROOT, "token probe: %s, %d training scenes (%d tokens), %d held-out scenes (%d tokens: %d wholly inside the image, %d of "
                        + "those on objects), images %s; %.1f s%n",
                v.dir, n, r.trainTokens(), heldout, r.testTokens(), r.insideTokens(), r.objectTokens(), describe(world.options()), (System.nanoTime() - t0) / 1e9);
        out.println("ridge read-outs from each merged token's features, fitted on the training scenes, scored on the held-out ones:");
        out.printf(Locale.ROOT, "  %-50s %7s   %s%n", "measure", "value", "λ (standardised features)");
        out.printf(Locale.ROOT, "  %-50s %7.3f   %s%n", "colour accuracy, inside object tokens (" + (TokenColours.CLASSES - 1) + " colours)",
                r.colourAccuracy(), lambdaText(r.colourLambda(), lambda));
        out.printf(Locale.ROOT, "  %-50s %7.3f%n", "  chance: the most common training colour", r.colourChance());
        out.printf(Locale.ROOT, "  %-50s %7.3f   %s%n", "shape accuracy, inside tokens of a shape (" + r.shapeTokens() + ", " + (TokenShapes.CLASSES - 1) + " shapes)",
                r.shapeAccuracy(), lambdaText(r.shapeLambda(), lambda));
        out.printf(Locale.ROOT, "  %-50s %7.3f%n", "  chance: the most common training shape", r.shapeChance());
        out.printf(Locale.ROOT, "  %-50s %7.3f   %s%n", "R² of x = (column + ½) / merged width", r.r2x(), lambdaText(r.placeLambda(), lambda));
        out.printf(Locale.ROOT, "  %-50s %7.3f   %s%n", "R² of y = (row + ½) / merged height", r.r2y(), lambdaText(r.placeLambda(), lambda));
        return r;
    }

    private static String lambdaText(double l, Double given) {
        return String.format(Locale.ROOT, "%g", l) + (given != null ? " (given)" : " (chosen on a fifth of the training scenes)");
    }

    static String describe(VisualWorld.Options o) {
        return (o.minSide() == o.maxSide() ? o.minSide() + " px" : o.minSide() + "-" + o.maxSide() + " px") + (o.easy() ? ", easy" : ", full variety");
    }
}
