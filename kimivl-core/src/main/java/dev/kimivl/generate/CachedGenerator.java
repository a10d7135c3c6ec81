package dev.kimivl.generate;

import dev.kimivl.model.KvCache;
import dev.kimivl.model.LanguageModel;
import dev.kimivl.model.StageSink;
import dev.kimivl.text.IncrementalDecoder;
import dev.kimivl.text.Tokenizer;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

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
    private final int[] stopIds;

    public CachedGenerator(LanguageModel lm, Tokenizer tokenizer) {
        this.lm = lm;
        this.tokenizer = tokenizer;
        List<Integer> stops = new ArrayList<>();
        for (String s : new String[]{"<|im_end|>", "[EOS]"}) tokenizer.tokenId(s).ifPresent(stops::add);   // as Generator's
        if (lm.config().eosTokenId() >= 0) stops.add(lm.config().eosTokenId());
        this.stopIds = stops.stream().mapToInt(Integer::intValue).distinct().toArray();
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
        int T = promptIds.length, D = lm.config().hiddenSize(), reused = cache.length();
        if (reused >= T) throw new IllegalArgumentException("the cache holds " + reused + " positions of a " + T + "-token prompt; at least its last must run");
        if (T + 1 > cache.maxTokens()) throw new ContextOverflowException(T, cache.maxTokens());
        Sampler sampler = new Sampler(params);
        int[] seen = Arrays.copyOf(promptIds, T + params.maxTokens());
        int seenCount = T;

        long t0 = System.nanoTime();
        float[] rest = reused == 0 ? promptEmbeddings : Arrays.copyOfRange(promptEmbeddings, reused * D, T * D);
        float[] logits = lm.logits(lm.prefill(rest, T - reused, cache, null), 0);
        long t1 = System.nanoTime();

        Generator.StopStringFilter text = new Generator.StopStringFilter(params.stopStrings(), listener);
        IncrementalDecoder decoder = tokenizer.incrementalDecoder(true);
        List<Integer> out = new ArrayList<>();
        Generator.FinishReason reason = Generator.FinishReason.LENGTH;
        while (true) {
            int next = sampler.sample(logits, seen, seenCount);
            boolean go = onToken == null || onToken.getAsBoolean();
            if (isStop(next)) { reason = Generator.FinishReason.STOP; break; }
            out.add(next);
            seen[seenCount++] = next;
            if (text.accept(decoder.push(next))) { reason = Generator.FinishReason.STOP; break; }
            if (out.size() >= params.maxTokens() || !go) break;
            if (cache.length() >= cache.maxTokens()) { reason = Generator.FinishReason.CONTEXT; break; }
            float[] hn = lm.forward(lm.embed(new int[]{next}), 1, cache, StageSink.NONE, null);
            logits = lm.logits(hn, 0);
        }
        if (reason != Generator.FinishReason.STOP || !text.stopped()) text.finish(decoder.flush());
        long t2 = System.nanoTime();
        return new Generator.Result(out.stream().mapToInt(Integer::intValue).toArray(), text.emitted(), reason, T,
                (t1 - t0) / 1e9, (t2 - t1) / 1e9);
    }

    private boolean isStop(int id) {
        for (int s : stopIds) if (s == id) return true;
        return false;
    }
}
