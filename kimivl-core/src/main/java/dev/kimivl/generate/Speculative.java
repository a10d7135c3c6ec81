package dev.kimivl.generate;

import dev.kimivl.model.LanguageModel;

import java.util.Locale;

/**
 * Prompt-lookup speculative decoding for {@link Generator}: {@link NgramDrafter} guesses up to {@code maxDraft}
 * tokens, the model runs the current token and the guesses in ONE pass ({@link LanguageModel#forwardRows}), and the
 * sampler picks each position's token in order from that pass's logits, exactly as one-at-a-time decoding would (same
 * logits bit for bit, same RNG draws in the same order); the guesses are accepted while they equal what it picks, the
 * first pick that differs is emitted, and the KV cache is rolled back past the rejected positions. The output (greedy
 * or seeded sampling) is therefore the same tokens with and without drafting; only the time differs.
 *
 * <p>Whether and how far to draft is decided per step ({@link Policy}) from the measured cost of a pass of T positions
 * against a single-token step, and the measured acceptance of drafts by n-gram length: where drafts miss (or a
 * pass of several positions costs about as much as their tokens one by one) it stops drafting, and keeps checking
 * what the drafts would have given, so that it starts again when they would hit.
 *
 * @param maxDraft tokens drafted at most per step (0: off)
 * @param maxN     longest n-gram looked up (1..3)
 * @param minN     shortest n-gram that may draft (1..maxN)
 * @param adaptive true: the cost/acceptance policy chooses how many (possibly none) of the drafted tokens to verify;
 *                 false: every draft found is verified in full (tests, measurements)
 */
public record Speculative(int maxDraft, int maxN, int minN, boolean adaptive) {
    /** No drafting. */
    public static final Speculative NONE = new Speculative(0, NgramDrafter.MAX_N, 1, false);
    /** {@code --draft ngram}: up to 8 tokens from 3- to 1-grams, adaptive. */
    public static final Speculative NGRAM = new Speculative(8, 3, 1, true);

    public Speculative {
        if (maxDraft < 0 || maxDraft > 64) throw new IllegalArgumentException("draft length must be in 0..64, got " + maxDraft);
        if (maxN < 1 || maxN > NgramDrafter.MAX_N) throw new IllegalArgumentException("n-gram length must be in 1.." + NgramDrafter.MAX_N + ", got " + maxN);
        if (minN < 1 || minN > maxN) throw new IllegalArgumentException("shortest n-gram must be in 1.." + maxN + ", got " + minN);
    }

    public boolean enabled() { return maxDraft > 0; }

    /** The same with at most {@code k} drafted tokens per step. */
    public Speculative withMaxDraft(int k) { return new Speculative(k, maxN, minN, adaptive); }

    /** The same, verifying every draft found in full (no cost/acceptance policy). */
    public Speculative always() { return new Speculative(maxDraft, maxN, minN, false); }

    /**
     * {@code --draft} values: {@code none} (or {@code off}), {@code ngram}, or {@code ngram:K} (at most K drafted
     * tokens per step).
     */
    public static Speculative parse(String s) {
        String v = s.trim().toLowerCase(Locale.ROOT);
        if (v.equals("none") || v.equals("off")) return NONE;
        if (v.equals("ngram")) return NGRAM;
        if (v.startsWith("ngram:")) {
            try {
                int k = Integer.parseInt(v.substring(6));
                if (k < 1 || k > 64) throw new IllegalArgumentException("--draft ngram:K needs K in 1..64, got " + k);
                return NGRAM.withMaxDraft(k);
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("--draft ngram:K needs a whole number K, got '" + s + "'");
            }
        }
        throw new IllegalArgumentException("--draft must be none, ngram or ngram:K, not '" + s + "'");
    }

    /**
     * What a generation did with its drafts: forward passes (steps), those that verified drafts, drafted tokens
     * verified, accepted, passes whose cache was rolled back past a rejected draft, and tokens generated.
     */
    public record Stats(int steps, int verifySteps, int drafted, int accepted, int rollbacks, int generated) {
        /** Accepted drafted tokens / drafted tokens that were verified. */
        public double acceptanceRate() { return drafted == 0 ? 0 : (double) accepted / drafted; }

        /** Generated tokens per forward pass (1 without drafting). */
        public double tokensPerStep() { return steps == 0 ? 0 : (double) generated / steps; }

        @Override public String toString() {
            return String.format(Locale.ROOT, "draft: %d of %d verified tokens accepted (%.0f%%), %d of %d steps verified drafts (%d rolled back), %.2f tokens per step",
                    accepted, drafted, 100 * acceptanceRate(), verifySteps, steps, rollbacks, tokensPerStep());
        }
    }

    /**
     * Decides per step how many of the drafted tokens to verify. Model: drafts of an n-gram match are accepted
     * independently with probability p[n] (so k drafts give 1 + p + ... + p^k expected tokens), and a pass of T
     * positions costs single + (T - 1)·perRow seconds; it picks the k (0 = a plain step) with the most tokens per
     * second. p[n] and the costs are running averages of what the generation measured; drafts not verified are still
     * scored against the tokens that follow (free), so that the policy notices when drafting starts to pay.
     */
    static final class Policy {
        /** Weight of the newest observation in the running averages. */
        private static final double ALPHA = 0.15;
        private final boolean adaptive;
        /** Exponentially decayed counts of accepted drafts and of rejections, per n-gram length (index n). */
        private final double[] accepted = new double[NgramDrafter.MAX_N + 1], rejected = new double[NgramDrafter.MAX_N + 1];
        private double single = Double.NaN;       // seconds of a single-token step
        private double perRow = Double.NaN;       // extra seconds per additional position in a pass
        // a draft that was not verified, scored against the tokens emitted after it
        private int[] shadow;
        private int shadowN, shadowAt;

        Policy(boolean adaptive) {
            this.adaptive = adaptive;
            // prior: one hit and one miss (p = 0.5) per n-gram length, so that the first observations move it quickly
            for (int n = 1; n <= NgramDrafter.MAX_N; n++) { accepted[n] = 1; rejected[n] = 1; }
        }

        double acceptance(int n) { return accepted[n] / (accepted[n] + rejected[n]); }

        /** How many of the {@code draft.length} tokens (drafted from an n-gram of length n) to verify now; 0: a plain step. */
        int choose(int n, int available) {
            if (!adaptive || available == 0) return available;
            if (Double.isNaN(single)) return 0;            // measure a plain step first
            double p = acceptance(n);
            // unmeasured: assume a further position costs a third of a single step (memory-bound weights are read
            // once per pass); the first passes measure it
            double row = Double.isNaN(perRow) ? single / 3 : perRow;
            int best = 0;
            double bestRate = 1 / single, expected = 1, pk = 1;
            for (int k = 1; k <= available; k++) {
                pk *= p;
                expected += pk;
                double rate = expected / (single + k * row);
                if (rate > bestRate * 1.02) { bestRate = rate; best = k; }   // 2%: not for a rounding's gain
            }
            return best;
        }

        /** Seconds of a pass of {@code T} positions (1: a plain step). */
        void timed(int T, double seconds) {
            if (T == 1) {
                single = Double.isNaN(single) ? seconds : single + ALPHA * (seconds - single);
            } else if (!Double.isNaN(single)) {
                double r = Math.max(0, (seconds - single) / (T - 1));
                perRow = Double.isNaN(perRow) ? r : perRow + ALPHA * (r - perRow);
            }
        }

        /** A verified draft from an n-gram of length n: {@code hits} accepted, then a miss unless all were accepted. */
        void verified(int n, int hits, boolean missed) { observe(n, hits, missed); }

        /** Starts scoring a draft that is not verified (unless one is being scored). */
        void shadow(int n, int[] draft) {
            if (shadow != null || draft.length == 0) return;
            shadow = draft;
            shadowN = n;
            shadowAt = 0;
        }

        /** The next emitted token, for the draft being scored. */
        void emitted(int token) {
            if (shadow == null) return;
            if (shadow[shadowAt] != token) { observe(shadowN, shadowAt, true); shadow = null; return; }
            if (++shadowAt == shadow.length) { observe(shadowN, shadowAt, false); shadow = null; }
        }

        /** Drops the draft being scored (the drafts were verified instead, which scores them). */
        void dropShadow() { shadow = null; }

        private void observe(int n, int hits, boolean missed) {
            // decay by the tokens observed, so that a long draft does not count as one observation
            double keep = Math.pow(1 - ALPHA, hits + (missed ? 1 : 0));
            accepted[n] = accepted[n] * keep + hits;
            rejected[n] = rejected[n] * keep + (missed ? 1 : 0);
        }
    }

    /**
     * Whether {@link LanguageModel#forwardRows} gives this model's single-token decode logits bit for bit, which the
     * exactness of drafting rests on. True for float weights (F32, BF16: the same dot kernel per row); false for
     * quantized and F16 weights, whose batched products use other kernels than their matvec (see docs/speculative.md):
     * {@link Generator} does not draft for those.
     */
    public static boolean exactFor(LanguageModel lm) { return lm.rowsMatchDecode(); }
}
