package dev.kimivl.train.probe;

import dev.kimivl.train.data.TokenColours;
import dev.kimivl.train.data.TokenShapes;
import dev.kimivl.train.data.VisualWorld;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The token probe: perfect when the features are the targets, near nothing when they are noise, and real towers' tokens counted right. */
class TokenProbeTest {
    /**
     * Synthetic tokens of {@code scenes} scenes on varying merged grids: features = [x, y, one-hot colour, one-hot
     * shape, noise] when {@code informative}, else noise only.
     */
    static TokenProbe.Tokens synthetic(int scenes, boolean informative, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        int K = TokenColours.CLASSES, S = TokenShapes.CLASSES, noise = 5, D = 2 + K + S + noise;
        java.util.List<float[]> f = new java.util.ArrayList<>();
        java.util.List<Integer> c = new java.util.ArrayList<>(), sh = new java.util.ArrayList<>(), sc = new java.util.ArrayList<>();
        java.util.List<double[]> p = new java.util.ArrayList<>();
        for (int s = 0; s < scenes; s++) {
            int W = 3 + r.nextInt(6), H = 3 + r.nextInt(6);
            for (int t = 0; t < W * H; t++) {
                double x = (t % W + 0.5) / W, y = (t / W + 0.5) / H;
                int colour = r.nextInt(3) == 0 ? r.nextInt(K - 1) : TokenColours.NONE;
                int shape = colour != TokenColours.NONE ? r.nextInt(S - 1) : TokenShapes.NONE;
                float[] v = new float[D];
                if (informative) {
                    v[0] = (float) x;
                    v[1] = (float) y;
                    v[2 + colour] = 1;
                    v[2 + K + shape] = 1;
                }
                for (int i = 2 + K + S; i < D; i++) v[i] = (float) r.nextDouble();
                if (!informative) for (int i = 0; i < 2 + K + S; i++) v[i] = (float) r.nextDouble();
                f.add(v);
                c.add(colour);
                sh.add(shape);
                sc.add(s);
                p.add(new double[]{x, y});
            }
        }
        float[] feats = new float[f.size() * D];
        double[] place = new double[2 * f.size()];
        for (int i = 0; i < f.size(); i++) {
            System.arraycopy(f.get(i), 0, feats, i * D, D);
            place[2 * i] = p.get(i)[0];
            place[2 * i + 1] = p.get(i)[1];
        }
        boolean[] inside = new boolean[f.size()];
        java.util.Arrays.fill(inside, true);
        return new TokenProbe.Tokens(feats, D, c.stream().mapToInt(Integer::intValue).toArray(), sh.stream().mapToInt(Integer::intValue).toArray(), place, sc.stream().mapToInt(Integer::intValue).toArray(), inside);
    }

    @Test
    void featuresThatArePositionsAndColoursAreReadPerfectly() {
        TokenProbe.Result r = TokenProbe.score(synthetic(40, true, 1), synthetic(15, true, 2), null);
        assertEquals(1.0, r.r2x(), 1e-4);
        assertEquals(1.0, r.r2y(), 1e-4);
        assertEquals(1.0, r.colourAccuracy(), 0.0);
        assertEquals(1.0, r.shapeAccuracy(), 0.0);
        assertTrue(r.objectTokens() > 50 && r.shapeTokens() == r.objectTokens(), "object tokens " + r.objectTokens() + ", shape tokens " + r.shapeTokens());
        assertTrue(r.colourChance() < 0.3, "chance " + r.colourChance());
    }

    @Test
    void noiseFeaturesReadNothing() {
        TokenProbe.Result r = TokenProbe.score(synthetic(40, false, 3), synthetic(15, false, 4), 1e-2);
        assertTrue(r.r2x() < 0.1 && r.r2y() < 0.1, "R² from noise: " + r.r2x() + ", " + r.r2y());
        assertTrue(r.colourAccuracy() < 0.3, "colour accuracy from noise: " + r.colourAccuracy());
        assertTrue(r.shapeAccuracy() < 0.4, "shape accuracy from noise: " + r.shapeAccuracy());
    }

    @Test
    void aTowerOnGroundingScenesGivesOneLabelledPlacedTokenPerMergedToken(@TempDir Path tmp) throws Exception {
        ProbeFixtures.write(tmp);
        FrozenVision v = FrozenVision.load(ProbeFixtures.checkpoint(tmp));
        VisualWorld world = new VisualWorld(new VisualWorld.Options(64, 112, true));
        long[] seeds = BindingProbe.seeds(5, 0, 6);
        TokenProbe.Tokens t = TokenProbe.collect(v, world, seeds);
        int expected = 0, o = 0;
        for (long s : seeds) {
            var p = v.preprocess(world.grounding(s).images().getFirst());
            expected += p.tokens();
            // images of 64-112 px are padded by less than one token (28 px): only the last column / row holds padding
            int W = p.gridW() / 2, H = p.gridH() / 2;
            for (int k = 0; k < W * H; k++, o++) {
                boolean padded = (k % W == W - 1 && p.paddedWidth() > p.resizedWidth()) || (k / W == H - 1 && p.paddedHeight() > p.resizedHeight());
                assertEquals(!padded, t.inside()[o], "scene " + s + " token " + k);
            }
        }
        assertEquals(expected, t.n());
        assertEquals(32, t.dim());
        int objects = 0, shaped = 0;
        for (int i = 0; i < t.n(); i++) {
            assertTrue(t.place()[2 * i] > 0 && t.place()[2 * i] < 1 && t.place()[2 * i + 1] > 0 && t.place()[2 * i + 1] < 1);
            if (t.colour()[i] != TokenColours.NONE) objects++;
            if (t.shape()[i] != TokenShapes.NONE) shaped++;
        }
        assertTrue(objects > 0 && objects < t.n(), objects + " object tokens of " + t.n());
        assertTrue(shaped > 0 && shaped < t.n(), shaped + " tokens of a shape of " + t.n());
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        TokenProbe.Result r = TokenProbe.run(v, world, 8, 4, 5, null, new PrintStream(out, true));
        assertTrue(Double.isFinite(r.r2x()) && Double.isFinite(r.r2y()) && r.colourAccuracy() >= 0 && r.colourAccuracy() <= 1, r.toString());
        assertTrue(out.toString().contains("R² of x") && out.toString().contains("shape accuracy"), out.toString());
    }
}
