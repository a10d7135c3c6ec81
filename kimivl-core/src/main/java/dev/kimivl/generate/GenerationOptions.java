package dev.kimivl.generate;

import java.util.function.BooleanSupplier;

/**
 * What a generation may do beyond {@link SamplingParams}; {@link #NONE} is plain generation.
 *
 * @param cancelled        polled before every token: true ends generation with {@link Generator.FinishReason#CANCELLED}
 *                         (the text so far is kept); null: never
 * @param constraint       constrained decoding (one instance per generation); null: none
 * @param frequencyPenalty OpenAI's: subtracted from a token's logit once per time it was generated so far (0: off)
 * @param presencePenalty  OpenAI's: subtracted from the logit of every token generated at least once (0: off)
 * @param cache            a conversation's cache kept between calls: the prompt's longest prefix already in it is
 *                         not computed again (multi-turn chat); null: a fresh cache per call
 */
public record GenerationOptions(BooleanSupplier cancelled, TokenConstraint constraint, double frequencyPenalty,
                                double presencePenalty, PromptCache cache) {
    public static final GenerationOptions NONE = new GenerationOptions(null, null, 0, 0, null);

    public GenerationOptions {
        if (!Double.isFinite(frequencyPenalty) || Math.abs(frequencyPenalty) > 2) throw new IllegalArgumentException("frequency penalty must be in [-2, 2], got " + frequencyPenalty);
        if (!Double.isFinite(presencePenalty) || Math.abs(presencePenalty) > 2) throw new IllegalArgumentException("presence penalty must be in [-2, 2], got " + presencePenalty);
    }

    public GenerationOptions withCancel(BooleanSupplier c) { return new GenerationOptions(c, constraint, frequencyPenalty, presencePenalty, cache); }

    public GenerationOptions withConstraint(TokenConstraint c) { return new GenerationOptions(cancelled, c, frequencyPenalty, presencePenalty, cache); }

    public GenerationOptions withPenalties(double frequency, double presence) { return new GenerationOptions(cancelled, constraint, frequency, presence, cache); }

    public GenerationOptions withCache(PromptCache c) { return new GenerationOptions(cancelled, constraint, frequencyPenalty, presencePenalty, c); }

    boolean penalised() { return frequencyPenalty != 0 || presencePenalty != 0; }
}
