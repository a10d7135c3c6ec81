package dev.kimivl.generate;

import dev.kimivl.model.KvCache;
import dev.kimivl.model.LanguageModel;
import dev.kimivl.model.StageSink;
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
     * The generation state of one sequence ({@link Decoding}: sampler, penalties, constraint, stop rules, text) for
     * a caller that runs the forward passes itself, such as a scheduler decoding several sequences in one batched
     * step. {@code onToken} (may be null) is called as each token is sampled; false ends the generation after that
     * token, as max_tokens would (finish reason LENGTH).
     */
    public Decoding decoding(int[] promptIds, SamplingParams params, GenerationOptions options, Listener listener,
                             java.util.function.BooleanSupplier onToken) {
        return new Decoding(tokenizer, lm.config().vocabSize(), stopIds, promptIds, params, options, listener, onToken);
    }

    /**
     * The loop itself, on {@code cache}, whose first {@code start} positions already hold the prompt's (prefilled
     * from there). {@code onToken} (may be null) is called as each token is sampled; false ends the generation after
     * that token, as max_tokens would (finish reason LENGTH): a time limit. Shared by {@link CachedGenerator}.
     */
    Result generateOn(KvCache cache, int start, float[] promptEmbeddings, int[] promptIds, SamplingParams params, Listener listener,
                      GenerationOptions options, java.util.function.BooleanSupplier onToken) {
        return generateOn(cache, start, promptEmbeddings, promptIds, decoding(promptIds, params, options, listener, onToken), options.cache());
    }

    /** {@link #generateOn} with the sequence's state made by the caller ({@link #decoding}); {@code kept} may be null. */
    Result generateOn(KvCache cache, int start, float[] promptEmbeddings, int[] promptIds, Decoding d, PromptCache kept) {
        int T = promptIds.length, D = lm.config().hiddenSize();
        long t0 = System.nanoTime();
        float[] rest = start == 0 ? promptEmbeddings : Arrays.copyOfRange(promptEmbeddings, start * D, T * D);
        java.util.function.BiConsumer<Integer, Integer> progress = promptProgress == null || start == 0 ? promptProgress
                : (done, total) -> promptProgress.accept(done + T - total, T);
        float[] logits = lm.logits(lm.prefill(rest, T - start, cache, progress), 0);
        long t1 = System.nanoTime();
        try {
            for (int next; (next = d.next(logits, cache.length() >= cache.maxTokens())) >= 0; ) {
                float[] x = lm.embed(new int[]{next});
                if (kept != null) kept.record(next, PromptCache.rowHash(x, 0, D));
                float[] hn = lm.forward(x, 1, cache, StageSink.NONE, null);
                logits = lm.logits(hn, 0);
            }
        } finally {
            if (kept != null) kept.sync();
        }
        long t2 = System.nanoTime();
        return d.result((t1 - t0) / 1e9, (t2 - t1) / 1e9);
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
