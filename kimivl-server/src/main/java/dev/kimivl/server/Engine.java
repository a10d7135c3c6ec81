package dev.kimivl.server;

import dev.kimivl.generate.Decoding;
import dev.kimivl.generate.Generator;
import dev.kimivl.generate.SamplingParams;
import dev.kimivl.generate.json.JsonShape;
import dev.kimivl.text.ChatMessage;
import dev.kimivl.vision.LoadedImage;

import java.util.List;

/**
 * What the HTTP layer needs from the model ({@link ModelEngine} over a loaded model). It is an interface so that the
 * server's tests can script output the repo's tiny random model never produces, such as a Thinking model's
 * {@code ◁think▷…◁/think▷} reasoning, or take their time.
 */
interface Engine {
    boolean acceptsImages();

    /**
     * Renders and encodes the conversation and checks that it fits the context, throwing
     * {@link dev.kimivl.generate.ContextOverflowException} before any response byte is sent. First it checks that the
     * weight files are still the ones mapped at start-up ({@link dev.kimivl.io.WeightSource#checkUnchanged()}, one
     * stat per file): a checkpoint truncated or replaced under the running server is a
     * {@link dev.kimivl.io.CheckpointException} naming the file, not a fault in a kernel reading a lost page.
     */
    Job prepare(List<ChatMessage> messages, List<LoadedImage> images);

    /**
     * A conversation with videos and PDFs (video_url and file parts) sized to this engine's context and decoded,
     * with room for {@code maxTokens} of answer ({@link MediaParts#size}); notes go to {@code log}. An engine
     * without a model takes none.
     */
    default dev.kimivl.media.MediaMessages.Built media(List<dev.kimivl.media.MediaMessages.Draft> conversation, int maxTokens, long maxPixels,
                                                      java.util.function.Consumer<String> log) {
        throw ApiError.unsupported("messages", "video_url and file parts on this engine");
    }

    /**
     * A raw prompt for {@code /v1/completions}, without the chat template: exactly one of {@code text} (encoded with
     * special tokens recognised) and {@code ids} is given. Checks as {@link #prepare} does.
     */
    Job prepareRaw(String text, int[] ids);

    /** Text of token ids (a completion request's {@code echo} of a prompt given as ids). */
    String detokenize(int[] ids);

    /** A token's bytes (for logprobs: a token may be part of a UTF-8 character); an engine without a tokenizer has none. */
    default byte[] tokenBytes(int id) { return new byte[0]; }

    /** Stops what the engine runs in the background (the batching scheduler's thread), after the running requests. */
    default void close() {}

    /** What the engine's caches did; an engine without caches counts nothing. */
    default CacheStats cacheStats() { return new CacheStats(); }

    /**
     * What one choice is generated with beyond {@link SamplingParams}.
     *
     * @param format           constrained decoding to this JSON shape ({@code response_format}); null: free text
     * @param frequencyPenalty OpenAI's frequency penalty (0: off)
     * @param presencePenalty  OpenAI's presence penalty (0: off)
     * @param topLogprobs      -1: no logprobs; else each token's log-probability and this many (0..20) alternatives
     * @param ignoreEos        never stop on a stop token (vLLM's and llama.cpp's {@code ignore_eos}: benchmarks)
     */
    record Spec(SamplingParams sampling, JsonShape format, double frequencyPenalty, double presencePenalty, int topLogprobs,
                boolean ignoreEos) {
        static Spec plain(SamplingParams sampling) { return new Spec(sampling, null, 0, 0, -1, false); }

        Spec withSeed(long seed) {
            SamplingParams p = sampling;
            return new Spec(new SamplingParams(p.temperature(), p.topK(), p.topP(), p.minP(), p.repetitionPenalty(), seed, p.maxTokens(), p.stopStrings()),
                    format, frequencyPenalty, presencePenalty, topLogprobs, ignoreEos);
        }
    }

    /**
     * What a job's {@code onToken} may also be: a request that knows when its client has gone away
     * ({@link ConnectionWatch}). An engine that checks it stops the sequence at once, also between the chunks of its
     * prompt; one that does not stops it at the next token, when {@code onToken} answers false.
     */
    interface Cancellation { boolean cancelled(); }

    interface Job {
        Generator.Result generate(SamplingParams sampling, Generator.Listener listener);

        /**
         * As {@link #generate(SamplingParams, Generator.Listener)}, and calls {@code onToken} as each token is
         * generated (for latency metrics); when it answers false the generation ends after that token with finish
         * reason LENGTH (the server's time limit). An exception thrown by the listener ends the generation (a client
         * that went away).
         */
        default Generator.Result generate(SamplingParams sampling, Generator.Listener listener, java.util.function.BooleanSupplier onToken) {
            return generate(sampling, listener);
        }

        /**
         * The general form: {@code spec} adds constrained JSON, penalties and logprobs; each token's logprobs go to
         * {@code logprobs} (when asked for) before its text goes to {@code listener}, on the same thread. An engine
         * that has only the plain form refuses a spec it cannot honour and reports no logprobs.
         */
        default Generator.Result generate(Spec spec, Generator.Listener listener, java.util.function.BooleanSupplier onToken,
                                          java.util.function.Consumer<Decoding.TokenLogprob> logprobs) {
            // logprobs are left out (none are reported); what would change the text cannot be left out
            if (spec.format() != null || spec.frequencyPenalty() != 0 || spec.presencePenalty() != 0 || spec.ignoreEos()) {
                throw new UnsupportedOperationException("this engine generates plain text only");
            }
            return generate(spec.sampling(), listener, onToken);
        }

        /** Prompt tokens whose KV cache is reused from an earlier request rather than computed. */
        default int cachedTokens() { return 0; }
    }
}
