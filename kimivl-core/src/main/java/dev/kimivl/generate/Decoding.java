package dev.kimivl.generate;

import dev.kimivl.text.IncrementalDecoder;
import dev.kimivl.text.Tokenizer;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.function.BooleanSupplier;

/**
 * One sequence's generation state outside the forward pass: its sampler (own seed), OpenAI's penalties, the
 * constrained-decoding constraint, the stop rules (stop tokens, stop strings held back, max tokens, a full context),
 * cancellation and the streamed text. Whoever runs the forward passes feeds it the logits after each position with
 * {@link #next}: {@link Generator}'s loop (one sequence), or a server's scheduler that decodes several sequences in one
 * batched step ({@link dev.kimivl.model.LanguageModel#decodeBatch}). Both therefore stop, sample and emit exactly alike.
 *
 * <p>Not thread-safe: one thread calls {@link #next} at a time (the listener and {@code onToken} run on it).
 * Made by {@link Generator#decoding}.
 */
public final class Decoding {
    /**
     * The log-probability of a generated token under the model's raw distribution (log-softmax of the logits before
     * penalties, temperature and truncation, as vLLM's default), and the {@code top} most likely alternatives at that
     * position, most likely first.
     */
    public record TokenLogprob(int token, float logprob, int[] topTokens, float[] topLogprobs) {}

    private final int[] stopIds;
    private final SamplingParams params;
    private final GenerationOptions options;
    private final BooleanSupplier onToken;
    private final Sampler sampler;
    private final int[] seen;
    private int seenCount;
    private final int promptTokens;
    private final TokenConstraint constraint;
    private final int[] counts;                    // [V] times generated so far, for the penalties; null without them
    private final Generator.StopStringFilter text;
    private final IncrementalDecoder decoder;
    private final List<Integer> out = new ArrayList<>();
    private int topLogprobs = -1;                  // -1: no logprobs recorded
    private final List<TokenLogprob> logprobs = new ArrayList<>();
    private java.util.function.Consumer<TokenLogprob> logprobSink;
    private boolean ignoreStops;
    private Generator.FinishReason reason;
    private boolean closed;

    Decoding(Tokenizer tokenizer, int vocab, int[] stopIds, int[] promptIds, SamplingParams params, GenerationOptions options,
             Generator.Listener listener, BooleanSupplier onToken) {
        this.stopIds = stopIds;
        this.params = params;
        this.options = options;
        this.onToken = onToken;
        this.sampler = new Sampler(params);
        this.promptTokens = promptIds.length;
        this.seen = Arrays.copyOf(promptIds, promptIds.length + params.maxTokens());
        this.seenCount = promptIds.length;
        this.constraint = options.constraint();
        this.counts = options.penalised() ? new int[vocab] : null;
        this.text = new Generator.StopStringFilter(params.stopStrings(), listener);
        this.decoder = tokenizer.incrementalDecoder(true);
    }

    /**
     * Records each generated token's log-probability and its {@code top} (0..20) best alternatives
     * ({@link #logprobs()}), and hands each to {@code sink} (may be null) as it is recorded, before the token's text
     * goes to the listener.
     */
    public Decoding withLogprobs(int top, java.util.function.Consumer<TokenLogprob> sink) {
        if (top < 0 || top > 20) throw new IllegalArgumentException("top logprobs must be in 0..20, got " + top);
        this.topLogprobs = top;
        this.logprobSink = sink;
        return this;
    }

    /**
     * Never stops on a stop token (they are masked before sampling): the sequence runs to max tokens, a stop string or
     * the context. vLLM's and llama.cpp's {@code ignore_eos}, for benchmarks that need answers of a fixed length.
     */
    public Decoding ignoreStopTokens() {
        this.ignoreStops = true;
        return this;
    }

    /**
     * Chooses the token after the position whose logits these are, emits its text, and says what to run next.
     *
     * @param logits      [V] of the last position run (modified)
     * @param contextFull true when the cache has no room for another position: the token chosen is the last
     * @return the token to run through the model next, or -1 when the sequence has ended ({@link #finishReason()})
     */
    public int next(float[] logits, boolean contextFull) {
        if (reason != null) throw new IllegalStateException("the sequence has ended (" + reason + ")");
        if (options.cancelled() != null && options.cancelled().getAsBoolean()) return end(Generator.FinishReason.CANCELLED);
        if (constraint != null && constraint.finished()) return end(Generator.FinishReason.STOP);
        float[] raw = topLogprobs >= 0 ? logits.clone() : null;
        if (counts != null) penalise(logits);
        if (ignoreStops) for (int id : stopIds) if (id < logits.length) logits[id] = Float.NEGATIVE_INFINITY;
        int next = constraint == null ? sampler.sample(logits, seen, seenCount)
                : sampleConstrained(logits, params.maxTokens() - out.size());
        boolean go = onToken == null || onToken.getAsBoolean();
        if (isStop(next)) return end(Generator.FinishReason.STOP);
        if (constraint != null) constraint.accept(next);
        if (counts != null && next < counts.length) counts[next]++;
        if (raw != null) {
            TokenLogprob lp = logprob(raw, next, topLogprobs);
            logprobs.add(lp);
            if (logprobSink != null) logprobSink.accept(lp);
        }
        out.add(next);
        seen[seenCount++] = next;
        if (text.accept(decoder.push(next))) return end(Generator.FinishReason.STOP);
        if (out.size() >= params.maxTokens() || !go) return end(Generator.FinishReason.LENGTH);
        if (contextFull) return end(Generator.FinishReason.CONTEXT);
        return next;
    }

    /** Ends the sequence now (a client that went away, a server shutting down), keeping the text so far. */
    public void cancel() {
        if (reason == null) end(Generator.FinishReason.CANCELLED);
    }

    private int end(Generator.FinishReason r) {
        reason = r;
        // the decoder's held-back bytes go out unless a stop string cut the text (they lie beyond the cut)
        if (r != Generator.FinishReason.STOP || !text.stopped()) text.finish(decoder.flush());
        closed = true;
        return -1;
    }

    public boolean ended() { return closed; }

    /** Why the sequence ended; null while it runs. */
    public Generator.FinishReason finishReason() { return reason; }

    /** Tokens generated so far (stop tokens excluded). */
    public int generated() { return out.size(); }

    /** Each generated token's log-probabilities, when {@link #withLogprobs} asked for them; else empty. */
    public List<TokenLogprob> logprobs() { return logprobs; }

    public SamplingParams params() { return params; }

    /** The sequence's result once it has ended; the seconds are the caller's to measure. */
    public Generator.Result result(double prefillSeconds, double decodeSeconds) {
        if (reason == null) throw new IllegalStateException("the sequence has not ended");
        return new Generator.Result(out.stream().mapToInt(Integer::intValue).toArray(), text.emitted(), reason, promptTokens,
                prefillSeconds, decodeSeconds);
    }

    /** OpenAI's penalties: logit -= count·frequency + (count &gt; 0)·presence, over the tokens generated so far. */
    private void penalise(float[] logits) {
        for (int id = 0; id < logits.length && id < counts.length; id++) {
            int c = counts[id];
            if (c > 0) logits[id] -= (float) (c * options.frequencyPenalty() + options.presencePenalty());
        }
    }

    /**
     * Samples as usual; if the constraint refuses the token drawn, masks every refused token (stop tokens count as
     * allowed only where the constraint may stop) and samples again from the untouched logits.
     */
    private int sampleConstrained(float[] logits, int remaining) {
        TokenConstraint c = constraint;
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

    boolean isStop(int id) {
        for (int s : stopIds) if (s == id) return true;
        return false;
    }

    /** log-softmax of {@code logits} at {@code token}, and the {@code top} largest (ties: lower id first). */
    static TokenLogprob logprob(float[] logits, int token, int top) {
        double max = Double.NEGATIVE_INFINITY;
        for (float v : logits) max = Math.max(max, v);
        double sum = 0;
        for (float v : logits) sum += Math.exp(v - max);
        double logZ = max + Math.log(sum);
        int[] ids = top > 0 ? Sampler.topIndices(logits, Math.min(top, logits.length)) : new int[0];
        float[] lp = new float[ids.length];
        for (int i = 0; i < ids.length; i++) lp[i] = (float) (logits[ids[i]] - logZ);
        return new TokenLogprob(token, (float) (logits[token] - logZ), ids, lp);
    }
}
