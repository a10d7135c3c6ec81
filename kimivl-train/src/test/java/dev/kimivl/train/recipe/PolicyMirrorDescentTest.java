package dev.kimivl.train.recipe;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The RL objective: its value by the formula, its token scales as finite differences, the length reward. */
class PolicyMirrorDescentTest {
    // three answers packed as segments [0,4) [4,7) [7,10); the first tokens of each are prompt (unscored)
    static final int[] SEG = {0, 0, 0, 0, 4, 4, 4, 7, 7, 7};
    static final int[] TARGETS = {-100, 5, 6, 7, -100, 8, 9, -100, -100, 3};
    static final double[] TOKEN_LOSS = {0, 0.7, 1.2, 0.1, 0, 2.0, 0.4, 0, 0, 1.5};

    static double loss(PolicyMirrorDescent o, double[] tokenLoss) {
        return o.apply(tokenLoss, TARGETS, SEG, new double[tokenLoss.length]);
    }

    @Test
    void valueFollowsTheFormula() {
        double[] reward = {1, 0, 1};
        int[] group = {0, 0, 1};
        double tau = 0.5;
        double[] old = {-1.5, -2.0, -1.0};
        var o = new PolicyMirrorDescent(reward, group, tau, old);
        double[] logp = {-(0.7 + 1.2 + 0.1), -(2.0 + 0.4), -1.5};
        assertArrayEquals(logp, new double[]{-2.0, -2.4, -1.5}, 1e-12);
        // prompt 0: mean 0.5 over two answers; prompt 1: one answer, its own mean
        double r0 = 1 - 0.5 - tau * (logp[0] - old[0]), r1 = 0 - 0.5 - tau * (logp[1] - old[1]), r2 = 1 - 1 - tau * (logp[2] - old[2]);
        double want = (r0 * r0 / 2 + r1 * r1 / 2 + r2 * r2) / 2;
        assertEquals(want, loss(o, TOKEN_LOSS), 1e-12);
        assertArrayEquals(logp, o.lastLogProbs(), 1e-12);
    }

    @Test
    void scalesAreTheDerivativesOfTheLoss() {
        var o = new PolicyMirrorDescent(new double[]{1, 0, 0.3}, new int[]{0, 0, 0}, 0.7, new double[]{-1.0, -3.0, -1.2});
        double[] scale = new double[TOKEN_LOSS.length];
        o.apply(TOKEN_LOSS, TARGETS, SEG, scale);
        double h = 1e-6;
        for (int t = 0; t < TOKEN_LOSS.length; t++) {
            if (TARGETS[t] == -100) { assertEquals(0, scale[t]); continue; }
            double[] up = TOKEN_LOSS.clone(), down = TOKEN_LOSS.clone();
            up[t] += h;
            down[t] -= h;
            double fd = (loss(o, up) - loss(o, down)) / (2 * h);
            assertEquals(fd, scale[t], 1e-7, "token " + t);
        }
    }

    @Test
    void atThePolicyItselfTheBetterAnswerIsPushedUp() {
        // first evaluation: θ = π_old, so the residual is r − r̄ and the right answer's −log p must fall (scale > 0
        // means gradient descent lowers its token losses), the wrong one's rise
        var o = new PolicyMirrorDescent(new double[]{1, 0, 0}, new int[]{0, 0, 0}, 0.5, null);
        double[] scale = new double[TOKEN_LOSS.length];
        o.apply(TOKEN_LOSS, TARGETS, SEG, scale);
        assertTrue(scale[1] > 0 && scale[5] < 0 && scale[9] < 0);
        assertArrayEquals(new double[]{-2.0, -2.4, -1.5}, o.oldLogProbs(), 1e-12);
        // all answers equally good: no signal at all
        var same = new PolicyMirrorDescent(new double[]{1, 1, 1}, new int[]{0, 0, 0}, 0.5, null);
        double[] zero = new double[TOKEN_LOSS.length];
        assertEquals(0, same.apply(TOKEN_LOSS, TARGETS, SEG, zero), 0);
        for (double z : zero) assertEquals(0, z, 0);
    }

    @Test
    void lengthRewardFavoursShortRightAnswersAndNeverHelpsWrongOnes() {
        double[] r = PolicyMirrorDescent.withLengthPenalty(new boolean[]{true, true, false, false}, new int[]{10, 30, 10, 30}, 0.2);
        assertArrayEquals(new double[]{1 + 0.2 * 0.5, 1 - 0.2 * 0.5, 0, -0.2 * 0.5}, r, 1e-12);
        assertArrayEquals(new double[]{1, 0}, PolicyMirrorDescent.withLengthPenalty(new boolean[]{true, false}, new int[]{5, 5}, 0.2), 0);
        // a group with no right answer gets no length term: it would only teach a weak policy to stop reasoning
        assertArrayEquals(new double[]{0, 0, 0}, PolicyMirrorDescent.withLengthPenalty(new boolean[]{false, false, false}, new int[]{5, 50, 90}, 0.2), 0);
    }

    @Test
    void mismatchedBatchesAreRefused() {
        var o = new PolicyMirrorDescent(new double[]{1, 0}, new int[]{0, 0}, 0.5, null);
        assertThrows(IllegalArgumentException.class, () -> loss(o, TOKEN_LOSS));
        assertThrows(IllegalArgumentException.class, () -> new PolicyMirrorDescent(new double[]{1}, new int[]{0}, 0, null));
    }
}
