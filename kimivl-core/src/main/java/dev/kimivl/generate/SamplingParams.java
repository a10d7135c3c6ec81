package dev.kimivl.generate;

import java.util.List;

/**
 * How the next token is chosen and when generation stops.
 *
 * @param temperature       0 = greedy (argmax)
 * @param topK              0 = off
 * @param topP              1 = off
 * @param minP              0 = off (keep tokens with p ≥ minP·p_max)
 * @param repetitionPenalty 1 = off (HF/CTRL rule: divide positive logits, multiply negative ones, for every token seen)
 * @param seed              random seed; the same seed and inputs give the same tokens
 * @param maxTokens         hard cap on new tokens
 * @param stopStrings       generation stops before any of these strings (they are not emitted)
 */
public record SamplingParams(double temperature, int topK, double topP, double minP, double repetitionPenalty,
                             long seed, int maxTokens, List<String> stopStrings) {
    public SamplingParams {
        if (temperature < 0) throw new IllegalArgumentException("temperature must be ≥ 0, got " + temperature);
        if (topK < 0) throw new IllegalArgumentException("top-k must be ≥ 0, got " + topK);
        if (!(topP > 0 && topP <= 1)) throw new IllegalArgumentException("top-p must be in (0, 1], got " + topP);
        if (!(minP >= 0 && minP < 1)) throw new IllegalArgumentException("min-p must be in [0, 1), got " + minP);
        if (!(repetitionPenalty > 0)) throw new IllegalArgumentException("repetition penalty must be > 0, got " + repetitionPenalty);
        if (maxTokens <= 0) throw new IllegalArgumentException("max tokens must be positive, got " + maxTokens);
        stopStrings = List.copyOf(stopStrings);
    }

    public static SamplingParams greedy(int maxTokens) {
        return new SamplingParams(0, 0, 1, 0, 1, 0, maxTokens, List.of());
    }

    public boolean isGreedy() { return temperature == 0; }
}
