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
 * The generation loop: prefill the prompt as one batch, then decode token by token on the latent KV cache,
 * streaming complete UTF-8 text. Stops on a stop token (&lt;|im_end|&gt;, [EOS], the config's eos), on a stop
 * string (never emitted), at max tokens, or when the context is full.
 */
public final class Generator {
    public enum FinishReason { STOP, LENGTH, CONTEXT, /** {@link GenerationOptions#cancelled()} said so */ CANCELLED }

    /** Receives generated text as soon as it is complete UTF-8 and cannot be the start of a stop string. */
    @FunctionalInterface
    public interface Listener { void onText(String text); }

    public record Result(int[] tokens, String text, FinishReason finishReason, int promptTokens,
                         double prefillSeconds, double decodeSeconds) {
        public double prefillTokensPerSecond() { return promptTokens / Math.max(1e-9, prefillSeconds); }
        public double decodeTokensPerSecond() { return Math.max(0, tokens.length - 1) / Math.max(1e-9, decodeSeconds); }
    }

    private final LanguageModel lm;
    private final Tokenizer tokenizer;
    private final int contextLength;
    private final int[] stopIds;

    public Generator(LanguageModel lm, Tokenizer tokenizer, int contextLength) {
        this.lm = lm;
        this.tokenizer = tokenizer;
        this.contextLength = contextLength;
        List<Integer> stops = new ArrayList<>();
        for (String s : new String[]{"<|im_end|>", "[EOS]"}) tokenizer.tokenId(s).ifPresent(stops::add);
        if (lm.config().eosTokenId() >= 0) stops.add(lm.config().eosTokenId());
        this.stopIds = stops.stream().mapToInt(Integer::intValue).distinct().toArray();
    }

    public int contextLength() { return contextLength; }

    private java.util.function.BiConsumer<Integer, Integer> promptProgress;

    /** Hears (prompt tokens done, total) while a prompt is processed: before the first pass of ≤ 2048 tokens and after each. */
    public Generator onPromptProgress(java.util.function.BiConsumer<Integer, Integer> progress) {
        this.promptProgress = progress;
        return this;
    }

    /** Checks the prompt fits with room for one answer token. */
    public void checkFits(int promptTokens) {
        if (promptTokens + 1 > contextLength) throw new ContextOverflowException(promptTokens, contextLength);
    }

    /**
     * @param promptEmbeddings [T, D] input embeddings of the prompt (token embeddings with image features merged)
     * @param promptIds        the T prompt ids (for the repetition penalty)
     */
    public Result generate(float[] promptEmbeddings, int[] promptIds, SamplingParams params, Listener listener) {
        return generate(promptEmbeddings, promptIds, params, listener, GenerationOptions.NONE);
    }

    /** As above, with cancellation, constrained decoding, frequency/presence penalties or a kept cache. */
    public Result generate(float[] promptEmbeddings, int[] promptIds, SamplingParams params, Listener listener, GenerationOptions options) {
        int T = promptIds.length;
        checkFits(T);
        int D = lm.config().hiddenSize();
        PromptCache kept = options.cache();
        KvCache cache;
        int start = 0;
        if (kept != null) {
            cache = kept.prepare(lm, contextLength, promptIds, promptEmbeddings, D);
            start = cache.length();
        } else {
            cache = lm.newCache(contextLength);
        }
        return generateOn(cache, start, promptEmbeddings, promptIds, params, listener, options, null);
    }

    /**
     * The loop itself, on {@code cache}, whose first {@code start} positions already hold the prompt's (prefilled
     * from there). {@code onToken} (may be null) is called as each token is sampled; false ends the generation after
     * that token, as max_tokens would (finish reason LENGTH): a time limit. Shared by {@link CachedGenerator}.
     */
    Result generateOn(KvCache cache, int start, float[] promptEmbeddings, int[] promptIds, SamplingParams params, Listener listener,
                      GenerationOptions options, java.util.function.BooleanSupplier onToken) {
        int T = promptIds.length, D = lm.config().hiddenSize();
        PromptCache kept = options.cache();
        Sampler sampler = new Sampler(params);
        int[] seen = Arrays.copyOf(promptIds, T + params.maxTokens());
        int seenCount = T;
        TokenConstraint constraint = options.constraint();
        int[] counts = options.penalised() ? new int[lm.config().vocabSize()] : null;   // [V] times generated so far

        long t0 = System.nanoTime();
        float[] rest = start == 0 ? promptEmbeddings : Arrays.copyOfRange(promptEmbeddings, start * D, T * D);
        java.util.function.BiConsumer<Integer, Integer> progress = promptProgress == null || start == 0 ? promptProgress
                : (done, total) -> promptProgress.accept(done + T - total, T);
        float[] logits = lm.logits(lm.prefill(rest, T - start, cache, progress), 0);
        long t1 = System.nanoTime();

        StopStringFilter text = new StopStringFilter(params.stopStrings(), listener);
        IncrementalDecoder decoder = tokenizer.incrementalDecoder(true);
        List<Integer> out = new ArrayList<>();
        FinishReason reason = FinishReason.LENGTH;
        try {
            while (true) {
                if (options.cancelled() != null && options.cancelled().getAsBoolean()) { reason = FinishReason.CANCELLED; break; }
                if (constraint != null && constraint.finished()) { reason = FinishReason.STOP; break; }
                if (counts != null) penalise(logits, counts, options);
                int next = constraint == null ? sampler.sample(logits, seen, seenCount)
                        : sampleConstrained(sampler, constraint, logits, seen, seenCount, params.maxTokens() - out.size());
                boolean go = onToken == null || onToken.getAsBoolean();
                if (isStop(next)) { reason = FinishReason.STOP; break; }
                if (constraint != null) constraint.accept(next);
                if (counts != null && next < counts.length) counts[next]++;
                out.add(next);
                seen[seenCount++] = next;
                if (text.accept(decoder.push(next))) { reason = FinishReason.STOP; break; }
                if (out.size() >= params.maxTokens() || !go) break;
                if (cache.length() >= cache.maxTokens()) { reason = FinishReason.CONTEXT; break; }
                float[] x = lm.embed(new int[]{next});
                if (kept != null) kept.record(next, PromptCache.rowHash(x, 0, D));
                float[] hn = lm.forward(x, 1, cache, StageSink.NONE, null);
                logits = lm.logits(hn, 0);
            }
        } finally {
            if (kept != null) kept.sync();
        }
        if (reason != FinishReason.STOP || !text.stopped()) text.finish(decoder.flush());
        long t2 = System.nanoTime();
        return new Result(out.stream().mapToInt(Integer::intValue).toArray(), text.emitted(), reason, T,
                (t1 - t0) / 1e9, (t2 - t1) / 1e9);
    }

    /** OpenAI's penalties: logit -= count·frequency + (count &gt; 0)·presence, over the tokens generated so far. */
    private static void penalise(float[] logits, int[] counts, GenerationOptions o) {
        for (int id = 0; id < logits.length && id < counts.length; id++) {
            int c = counts[id];
            if (c > 0) logits[id] -= (float) (c * o.frequencyPenalty() + o.presencePenalty());
        }
    }

    /**
     * Samples as usual; if the constraint refuses the token drawn, masks every refused token (stop tokens count as
     * allowed only where the constraint may stop) and samples again from the untouched logits.
     */
    private int sampleConstrained(Sampler sampler, TokenConstraint c, float[] logits, int[] seen, int seenCount, int remaining) {
        float[] untouched = logits.clone();
        int first = sampler.sample(logits, seen, seenCount);
        if (isStop(first) ? c.mayStop() : c.allows(first, remaining)) return first;
        boolean any = false;
        for (int id = 0; id < untouched.length; id++) {
            boolean ok = isStop(id) ? c.mayStop() : c.allows(id, remaining);
            if (ok) any = true;
            else untouched[id] = Float.NEGATIVE_INFINITY;
        }
        if (!any) throw new IllegalStateException("constrained decoding: no token of the vocabulary can continue the output with " + remaining + " token(s) left");
        int next = sampler.sample(untouched, seen, seenCount);
        // a draw can land on a masked token only through rounding at the end of the cumulative sum: take the best allowed
        return untouched[next] == Float.NEGATIVE_INFINITY ? Sampler.argmax(untouched) : next;
    }

    private boolean isStop(int id) {
        for (int s : stopIds) if (s == id) return true;
        return false;
    }

    /** Holds back text that may begin a stop string; cuts the output at the first stop string. */
    static final class StopStringFilter {
        private final List<String> stops;
        private final Listener listener;
        private final StringBuilder all = new StringBuilder();
        private int emittedUpTo;
        private boolean stopped;

        StopStringFilter(List<String> stops, Listener listener) {
            this.stops = stops;
            this.listener = listener == null ? s -> {} : listener;
        }

        /** Adds text; returns true when a stop string was found. */
        boolean accept(String piece) {
            if (piece.isEmpty()) return false;
            all.append(piece);
            int cut = -1;
            for (String s : stops) {
                int i = all.indexOf(s, Math.max(0, emittedUpTo - s.length() + 1));
                if (i >= 0 && (cut < 0 || i < cut)) cut = i;
            }
            if (cut >= 0) {
                emit(cut);
                all.setLength(cut);
                stopped = true;
                return true;
            }
            emit(all.length() - heldBack());
            return false;
        }

        /** Length of the longest suffix of the text that is a proper prefix of a stop string. */
        private int heldBack() {
            int hold = 0;
            for (String s : stops) {
                for (int len = Math.min(s.length() - 1, all.length() - emittedUpTo); len > hold; len--) {
                    if (all.substring(all.length() - len).equals(s.substring(0, len))) { hold = len; break; }
                }
            }
            return hold;
        }

        private void emit(int upTo) {
            if (upTo > emittedUpTo) {
                listener.onText(all.substring(emittedUpTo, upTo));
                emittedUpTo = upTo;
            }
        }

        void finish(String tail) {
            if (!accept(tail)) emit(all.length());
        }

        boolean stopped() { return stopped; }

        String emitted() { return all.substring(0, emittedUpTo); }
    }
}
