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
     * @param promptEmbeddings [T, D] input embeddings of the prompt (token embeddings with image features merged);
     *                         read only, so one prompt can be generated from many times
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
     * One answer per entry of {@code params} to the same prompt (an RL group's k samples, n choices): the prompt is
     * prefilled once, its cache copied for each answer, and the unfinished answers decode together, one batched step
     * ({@link LanguageModel#decodeBatch}) per token, so each weight is read once per step for all of them. Where the
     * batched step is bit-equal to single-token decode ({@link Speculative#exactFor}: float weights) each answer is
     * token for token the one {@link #generate} gives with the same params; otherwise equal to float rounding.
     * The results' timings are the whole group's.
     */
    public List<Result> generateEach(float[] promptEmbeddings, int[] promptIds, List<SamplingParams> params) {
        int T = promptIds.length, k = params.size(), V = lm.config().vocabSize();
        checkFits(T);
        if (k == 0) return List.of();
        long t0 = System.nanoTime();
        KvCache prompt = lm.newCache(contextLength);
        int longest = 0;
        for (SamplingParams sp : params) longest = Math.max(longest, sp.maxTokens());
        float[] first = prefillPrompt(prompt, 0, promptEmbeddings, T, longest);
        long t1 = System.nanoTime();
        Decoding[] d = new Decoding[k];
        KvCache[] caches = new KvCache[k];
        int[] token = new int[k];
        List<Integer> live = new ArrayList<>();
        for (int j = 0; j < k; j++) {
            d[j] = decoding(promptIds, params.get(j), GenerationOptions.NONE, null, null);
            caches[j] = j == k - 1 ? prompt : prompt.copy();
            token[j] = d[j].next(first.clone(), caches[j].length() >= caches[j].maxTokens());
            if (token[j] >= 0) live.add(j);
        }
        while (!live.isEmpty()) {
            int B = live.size();
            int[] ids = new int[B];
            KvCache[] cs = new KvCache[B];
            for (int b = 0; b < B; b++) { ids[b] = token[live.get(b)]; cs[b] = caches[live.get(b)]; }
            float[] logits = lm.logitsRows(lm.decodeBatch(lm.embed(ids), cs), B);
            List<Integer> still = new ArrayList<>();
            for (int b = 0; b < B; b++) {
                int j = live.get(b);
                token[j] = d[j].next(Arrays.copyOfRange(logits, b * V, (b + 1) * V), caches[j].length() >= caches[j].maxTokens());
                if (token[j] >= 0) still.add(j);
            }
            live = still;
        }
        long t2 = System.nanoTime();
        List<Result> out = new ArrayList<>();
        for (Decoding dj : d) out.add(dj.result((t1 - t0) / 1e9, (t2 - t1) / 1e9));
        return out;
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
        float[] logits = prefillPrompt(cache, start, promptEmbeddings, T, d.params().maxTokens());
        long t1 = System.nanoTime();
        try {
            if (speculative.enabled() && Speculative.exactFor(lm)) {
                decodeDrafting(cache, promptIds, d, kept, logits);
            } else {
                for (int next; (next = d.next(logits, cache.length() >= cache.maxTokens())) >= 0; ) {
                    float[] x = lm.embed(new int[]{next});
                    if (kept != null) kept.record(next, PromptCache.rowHash(x, 0, D));
                    float[] hn = lm.forward(x, 1, cache, StageSink.NONE, null);
                    logits = lm.logits(hn, 0);
                }
            }
        } finally {
            if (kept != null) kept.sync();
        }
        long t2 = System.nanoTime();
        return d.result((t1 - t0) / 1e9, (t2 - t1) / 1e9);
    }

    /**
     * Prefills prompt positions [start, T) into cache (whose first start positions hold the prompt's) and returns the
     * logits of the last: the first answer token's distribution.
     */
    private float[] prefillPrompt(KvCache cache, int start, float[] promptEmbeddings, int T, int maxTokens) {
        int D = lm.config().hiddenSize();
        // a copy even from position 0: the forward pass consumes its input, and callers generate from one prompt's
        // embeddings again (RL's k samples, the server's n choices, a retry); handing over the array itself once made
        // every answer after a prompt's first one start from the last layer's states instead of the embeddings
        float[] rest = Arrays.copyOfRange(promptEmbeddings, start * D, T * D);
        // room for the prompt and the answer's first 4096 tokens at once: no doubling copies of the cache while the prompt
        // is prefilled and the answer decodes (a 4096 cap keeps a long max_tokens from reserving gigabytes up front)
        cache.reserve(T + Math.min(maxTokens, 4096) + 1);
        java.util.function.BiConsumer<Integer, Integer> progress = promptProgress == null || start == 0 ? promptProgress
                : (done, total) -> promptProgress.accept(done + T - total, T);
        return lm.logits(lm.prefill(rest, T - start, cache, progress), 0);
    }

    private Speculative speculative = Speculative.NONE;
    private java.util.function.Consumer<Speculative.Stats> draftStats;

    /**
     * Drafts tokens by prompt lookup and verifies them in batched passes ({@link Speculative}); {@link Speculative#NONE}
     * (the default of a new generator) decodes one token per pass. The tokens are the same either way. Drafting is
     * skipped for models whose batched pass is not bit-equal to single-token decode ({@link Speculative#exactFor}).
     */
    public Generator drafting(Speculative s) {
        this.speculative = java.util.Objects.requireNonNull(s);
        return this;
    }

    public Speculative drafting() { return speculative; }

    /** Hears what each generation did with its drafts, once it ends (only when drafting ran). */
    public Generator onDraftStats(java.util.function.Consumer<Speculative.Stats> sink) {
        this.draftStats = sink;
        return this;
    }

    /**
     * The decode loop with drafting: each step runs the token to run next plus k drafted tokens as one pass of k + 1
     * positions ({@link LanguageModel#forwardRows}); {@link Decoding#next} then picks from the positions' logits in
     * order, exactly as it would one step at a time (same logits, same sampler state), and the step ends at the first
     * pick that differs from the draft: that pick is the next token to run, and the cache is truncated to the
     * positions whose input was right. A step with no draft worth verifying is the plain single-token step.
     */
    private void decodeDrafting(KvCache cache, int[] promptIds, Decoding d, PromptCache kept, float[] logits) {
        int D = lm.config().hiddenSize(), V = lm.config().vocabSize();
        int maxTokens = d.params().maxTokens();
        NgramDrafter drafter = new NgramDrafter(promptIds, speculative.maxN(), speculative.minN());
        Speculative.Policy policy = new Speculative.Policy(speculative.adaptive());
        int steps = 0, verifySteps = 0, drafted = 0, accepted = 0, rollbacks = 0;
        int next = d.next(logits, cache.length() >= cache.maxTokens());
        while (next >= 0) {
            drafter.append(next);
            policy.emitted(next);
            int pos0 = cache.length();
            // drafts beyond the room left (context, max tokens) could never be emitted: the last position's pick is
            // emitted as well, hence the - 1
            int room = Math.min(cache.maxTokens() - pos0 - 1, maxTokens - d.generated() - 1);
            NgramDrafter.Draft found = drafter.draft(Math.min(speculative.maxDraft(), Math.max(0, room)));
            int k = policy.choose(found.n(), found.tokens().length);
            if (k < found.tokens().length) policy.shadow(found.n(), found.tokens());
            steps++;
            long s0 = System.nanoTime();
            if (k == 0) {
                float[] x = lm.embed(new int[]{next});
                if (kept != null) kept.record(next, PromptCache.rowHash(x, 0, D));
                logits = lm.logits(lm.forward(x, 1, cache, StageSink.NONE, null), 0);
                policy.timed(1, (System.nanoTime() - s0) / 1e9);
                next = d.next(logits, cache.length() >= cache.maxTokens());
                continue;
            }
            policy.dropShadow();
            int T = k + 1;
            int[] run = new int[T];
            run[0] = next;
            System.arraycopy(found.tokens(), 0, run, 1, k);
            float[] x = lm.embed(run);
            long[] hashes = new long[T];
            if (kept != null) for (int t = 0; t < T; t++) hashes[t] = PromptCache.rowHash(x, t, D);
            float[] all = lm.logitsRows(lm.forwardRows(x, T, cache), T);        // [T, V]
            policy.timed(T, (System.nanoTime() - s0) / 1e9);
            verifySteps++;
            drafted += k;
            // row t's input was right (the token to run, then accepted drafts): its pick is emitted; the step ends
            // at the first pick that is not the next draft, or when the sequence ends
            int t = 0, pick;
            while (true) {
                pick = d.next(java.util.Arrays.copyOfRange(all, t * V, (t + 1) * V), pos0 + t + 1 >= cache.maxTokens());
                if (pick < 0 || t == k || pick != run[t + 1]) break;
                drafter.append(pick);
                t++;
            }
            accepted += t;
            policy.verified(found.n(), t, t < k && pick >= 0);
            if (t < k) rollbacks++;
            cache.truncate(pos0 + t + 1);
            if (kept != null) for (int i = 0; i <= t; i++) kept.record(run[i], hashes[i]);
            next = pick;
        }
        if (draftStats != null) draftStats.accept(new Speculative.Stats(steps, verifySteps, drafted, accepted, rollbacks, d.generated()));
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
