package dev.kimivl.generate;

import dev.kimivl.model.KvCache;
import dev.kimivl.model.LanguageModel;
import dev.kimivl.text.Tokenizer;

/**
 * {@link Generator}'s loop on a KV cache the caller owns, which may already hold the first positions of the prompt
 * (a prefix cache's hit: an earlier turn of the conversation, a shared system prompt). Only the rest of the prompt is
 * prefilled; the cache is left holding the prompt and the generated tokens (all but the last, which was sampled and
 * never run), so that the caller can offer it to the next request.
 *
 * <p>With an empty cache it is {@link Generator#generate}: the same prefill, sampler, stop rules and text, token
 * for token (the server's tests check it).
 */
public final class CachedGenerator {
    private final LanguageModel lm;
    private final Tokenizer tokenizer;

    public CachedGenerator(LanguageModel lm, Tokenizer tokenizer) {
        this.lm = lm;
        this.tokenizer = tokenizer;
    }

    /**
     * @param cache            holds positions [0, cache.length()) equal to the prompt's first positions (the caller
     *                         checked), fewer than T, since the last prompt position must run to give the first logits
     * @param promptEmbeddings [T, D] input embeddings of the whole prompt (only rows ≥ cache.length() are read)
     * @param promptIds        the T prompt ids (for the repetition penalty)
     * @param onToken          called as each token is sampled, before its text (may be null); false ends the
     *                         generation after that token, as max_tokens would (finish reason LENGTH): a time limit
     */
    public Generator.Result generate(KvCache cache, float[] promptEmbeddings, int[] promptIds, SamplingParams params,
                                     Generator.Listener listener, java.util.function.BooleanSupplier onToken) {
        check(cache, promptIds);
        return generator(cache).generateOn(cache, cache.length(), promptEmbeddings, promptIds, params, listener, GenerationOptions.NONE, onToken);
    }

    /**
     * As above with the sequence's state made by {@link #decoding} (constrained decoding, penalties, logprobs); the
     * same loop. {@code cache} and the prompt as above.
     */
    public Generator.Result generate(KvCache cache, float[] promptEmbeddings, int[] promptIds, Decoding decoding) {
        check(cache, promptIds);
        return generator(cache).generateOn(cache, cache.length(), promptEmbeddings, promptIds, decoding, null);
    }

    /** A sequence's generation state ({@link Generator#decoding}) for {@link #generate(KvCache, float[], int[], Decoding)} or a batching scheduler. */
    public Decoding decoding(int[] promptIds, SamplingParams params, GenerationOptions options, Generator.Listener listener,
                             java.util.function.BooleanSupplier onToken) {
        return new Generator(lm, tokenizer, Integer.MAX_VALUE).decoding(promptIds, params, options, listener, onToken);
    }

    private static void check(KvCache cache, int[] promptIds) {
        int T = promptIds.length, reused = cache.length();
        if (reused >= T) throw new IllegalArgumentException("the cache holds " + reused + " positions of a " + T + "-token prompt; at least its last must run");
        if (T + 1 > cache.maxTokens()) throw new ContextOverflowException(T, cache.maxTokens());
    }

    private Speculative speculative = Speculative.NONE;
    private java.util.function.Consumer<Speculative.Stats> draftStats;

    /**
     * Prompt-lookup drafting ({@link Generator#drafting}); off by default: the server batches sequences instead and
     * keeps this off. Benchmarks use it with {@link Decoding#ignoreStopTokens} for answers of a fixed length.
     */
    public CachedGenerator drafting(Speculative s, java.util.function.Consumer<Speculative.Stats> stats) {
        this.speculative = java.util.Objects.requireNonNull(s);
        this.draftStats = stats;
        return this;
    }

    private Generator generator(KvCache cache) {
        return new Generator(lm, tokenizer, cache.maxTokens()).drafting(speculative).onDraftStats(draftStats);
    }
}
