package dev.kimivl.train.recipe;

import dev.kimivl.train.TextGrad;

import java.util.Arrays;

/**
 * The RL objective of Kimi k1.5 and Kimi-VL, online policy mirror descent. Per prompt x, k answers y_j are sampled from
 * π_old (the policy at the start of the iteration) and scored r_j by the exact answer checker; then
 * <pre>
 *   L = 1/G Σ_prompts 1/k Σ_j ( r_j − r̄ − τ·(log π_θ(y_j|x) − log π_old(y_j|x)) )²
 * </pre>
 * with r̄ the mean reward of the prompt's k answers and G the number of prompts. The mean is the baseline; τ both
 * scales the step and, once θ moved away from π_old within an iteration, pulls it back (a relative-entropy
 * regulariser). log π(y|x) = −Σ_t tokenLoss[t] over the answer's scored tokens, so
 * <pre>
 *   d L / d tokenLoss[t] = 2τ/(G·k) · (r_j − r̄ − τ·Δ_j),    Δ_j = log π_θ(y_j|x) − log π_old(y_j|x)
 * </pre>
 * for every scored token t of answer j: an answer better than its siblings gets its −log p pushed down.
 *
 * <p>Sequences are the segments of a packed batch (segStart), in order; {@code group[j]} names answer j's prompt.
 */
public final class PolicyMirrorDescent implements TextGrad.Objective {
    private final double[] reward;
    private final int[] group;
    private final double tau;
    private final double[] oldLogProb;     // NaN until the first evaluation of this batch fills them
    private double[] lastLogProb = new double[0];

    /**
     * @param reward     [N] each answer's reward
     * @param group      [N] each answer's prompt (answers of a prompt share its baseline)
     * @param oldLogProb [N] log π_old(y_j|x), or null: the first {@link #apply} is at θ = π_old and records them
     */
    public PolicyMirrorDescent(double[] reward, int[] group, double tau, double[] oldLogProb) {
        if (reward.length != group.length) throw new IllegalArgumentException(reward.length + " rewards for " + group.length + " answers");
        if (!(tau > 0)) throw new IllegalArgumentException("tau must be > 0, got " + tau);
        this.reward = reward.clone();
        this.group = group.clone();
        this.tau = tau;
        if (oldLogProb == null) {
            this.oldLogProb = new double[reward.length];
            Arrays.fill(this.oldLogProb, Double.NaN);
        } else {
            this.oldLogProb = oldLogProb.clone();
        }
    }

    /** log π_old of each answer (after the first {@link #apply}, when none were given). */
    public double[] oldLogProbs() { return oldLogProb.clone(); }

    /** log π_θ of each answer at the last {@link #apply}. */
    public double[] lastLogProbs() { return lastLogProb.clone(); }

    @Override
    public double apply(double[] tokenLoss, int[] targets, int[] segStart, double[] scale) {
        int T = tokenLoss.length, n = reward.length;
        // sequence index of every token: segments in order of their starts
        int[] seq = new int[T];
        int j = -1;
        for (int t = 0; t < T; t++) {
            if (segStart[t] == t) j++;
            seq[t] = j;
        }
        if (j + 1 != n) throw new IllegalArgumentException((j + 1) + " sequences in the batch for " + n + " rewards");
        double[] logProb = new double[n];
        for (int t = 0; t < T; t++) if (targets[t] != -100) logProb[seq[t]] -= tokenLoss[t];
        for (int i = 0; i < n; i++) if (Double.isNaN(oldLogProb[i])) oldLogProb[i] = logProb[i];
        lastLogProb = logProb;
        int groups = 0;
        for (int g : group) groups = Math.max(groups, g + 1);
        double[] sum = new double[groups];
        int[] count = new int[groups];
        for (int i = 0; i < n; i++) { sum[group[i]] += reward[i]; count[group[i]]++; }
        double loss = 0;
        double[] dLogProb = new double[n];
        for (int i = 0; i < n; i++) {
            int g = group[i];
            double res = reward[i] - sum[g] / count[g] - tau * (logProb[i] - oldLogProb[i]);
            loss += res * res / (groups * count[g]);
            dLogProb[i] = -2 * tau * res / (groups * count[g]);      // d L / d log π(y_i)
        }
        for (int t = 0; t < T; t++) if (targets[t] != -100) scale[t] = -dLogProb[seq[t]];   // log π = −Σ tokenLoss
        return loss;
    }

    /**
     * Kimi k1.5's length reward, added to the correctness rewards of one prompt's answers: λ_j = 0.5 − (len_j −
     * min)/(max − min) over the group's answer lengths; a right answer gets weight·λ_j (short ones gain, long ones
     * lose), a wrong one weight·min(0, λ_j) (only ever a loss). Nothing when all lengths are equal, and nothing
     * when no answer of the group is right: k1.5 applies it to a policy that already solves much of its data, and
     * on a weak one, where most groups are all wrong, the length term is then the only signal left and shortens
     * every answer until the reasoning block is empty (our nano Thinking run v4: reasoning 8.5% → 4.5%).
     */
    public static double[] withLengthPenalty(boolean[] correct, int[] length, double weight) {
        boolean anyRight = false;
        for (boolean c : correct) anyRight |= c;
        if (!anyRight) return new double[correct.length];
        int min = Integer.MAX_VALUE, max = Integer.MIN_VALUE;
        for (int l : length) { min = Math.min(min, l); max = Math.max(max, l); }
        double[] r = new double[correct.length];
        for (int i = 0; i < r.length; i++) {
            double lambda = max == min ? 0 : 0.5 - (double) (length[i] - min) / (max - min);
            r[i] = (correct[i] ? 1 : 0) + weight * (correct[i] ? lambda : Math.min(0, lambda));
        }
        return r;
    }
}
