package dev.kimivl.generate;

import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

class SamplerTest {
    static final float[] LOGITS = {1f, 3f, 2.5f, -1f, 0f, 2.9f};

    static SamplingParams params(double temp, int topK, double topP, double minP, double rep, long seed) {
        return new SamplingParams(temp, topK, topP, minP, rep, seed, 10, List.of());
    }

    @Test
    void greedyPicksTheArgmax() {
        assertEquals(1, new Sampler(SamplingParams.greedy(1)).sample(LOGITS.clone(), new int[0], 0));
    }

    @Test
    void topKOfOneIsGreedyAtAnyTemperature() {
        for (long seed = 0; seed < 50; seed++) {
            assertEquals(1, new Sampler(params(5.0, 1, 1, 0, 1, seed)).sample(LOGITS.clone(), new int[0], 0));
        }
    }

    @Test
    void topKAndTopPRestrictTheCandidates() {
        for (long seed = 0; seed < 200; seed++) {
            int k2 = new Sampler(params(10.0, 2, 1, 0, 1, seed)).sample(LOGITS.clone(), new int[0], 0);
            assertTrue(k2 == 1 || k2 == 5, "top-2 sampled " + k2);
            // probabilities at T=1: 3.0 and 2.9 hold ~0.68 of the mass → top-p 0.5 keeps both at most
            int p = new Sampler(params(1.0, 0, 0.5, 0, 1, seed)).sample(LOGITS.clone(), new int[0], 0);
            assertTrue(p == 1 || p == 5, "top-p sampled " + p);
        }
    }

    @Test
    void minPDropsUnlikelyTokens() {
        for (long seed = 0; seed < 200; seed++) {
            int t = new Sampler(params(1.0, 0, 1, 0.5, 1, seed)).sample(LOGITS.clone(), new int[0], 0);
            // p_i/p_max = exp(l_i − 3) ≥ 0.5 ⇔ l_i ≥ 2.307: ids 1, 2, 5
            assertTrue(t == 1 || t == 2 || t == 5, "min-p sampled " + t);
        }
    }

    @Test
    void sameSeedSameTokensAndDifferentSeedsExploreTheDistribution() {
        int[] a = new int[50], b = new int[50];
        Sampler sa = new Sampler(params(1.0, 0, 1, 0, 1, 42)), sb = new Sampler(params(1.0, 0, 1, 0, 1, 42));
        java.util.Set<Integer> seen = new java.util.HashSet<>();
        for (int i = 0; i < 50; i++) {
            a[i] = sa.sample(LOGITS.clone(), new int[0], 0);
            b[i] = sb.sample(LOGITS.clone(), new int[0], 0);
            seen.add(a[i]);
        }
        assertArrayEquals(a, b);
        assertTrue(seen.size() >= 3, "temperature 1 should visit several tokens, saw " + seen);
    }

    @Test
    void repetitionPenaltyFollowsTheHfRule() {
        float[] l = LOGITS.clone();
        new Sampler(params(0, 0, 1, 0, 2.0, 0)).sample(l, new int[]{1, 3, 1}, 3);
        assertEquals(1.5f, l[1]);    // positive logits are divided
        assertEquals(-2f, l[3]);     // negative ones multiplied
        assertEquals(2.9f, l[5]);
        assertEquals(5, new Sampler(params(0, 0, 1, 0, 2.0, 0)).sample(LOGITS.clone(), new int[]{1}, 1));
    }

    @Test
    void topIndicesMatchesAFullSort() {
        java.util.Random r = new java.util.Random(3);
        float[] v = new float[5000];
        for (int i = 0; i < v.length; i++) v[i] = (float) r.nextGaussian();
        int[] all = Sampler.topIndices(v, v.length);
        int[] top = Sampler.topIndices(v, 40);
        for (int i = 0; i < 40; i++) assertEquals(all[i], top[i]);
        for (int i = 1; i < all.length; i++) assertTrue(v[all[i - 1]] >= v[all[i]]);
    }

    @Test
    void invalidParametersAreRejectedWithTheirName() {
        assertTrue(assertThrows(IllegalArgumentException.class, () -> params(-1, 0, 1, 0, 1, 0)).getMessage().contains("temperature"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> params(1, 0, 0, 0, 1, 0)).getMessage().contains("top-p"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> params(1, 0, 1, 1.5, 1, 0)).getMessage().contains("min-p"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> params(1, 0, 1, 0, 0, 0)).getMessage().contains("repetition"));
    }
}
