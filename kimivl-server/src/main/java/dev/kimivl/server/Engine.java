package dev.kimivl.server;

import dev.kimivl.generate.Generator;
import dev.kimivl.generate.SamplingParams;
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
     * {@link dev.kimivl.generate.ContextOverflowException} before any response byte is sent.
     */
    Job prepare(List<ChatMessage> messages, List<LoadedImage> images);

    /**
     * A raw prompt for {@code /v1/completions}, without the chat template: exactly one of {@code text} (encoded with
     * special tokens recognised) and {@code ids} is given. Checks as {@link #prepare} does.
     */
    Job prepareRaw(String text, int[] ids);

    /** Text of token ids (a completion request's {@code echo} of a prompt given as ids). */
    String detokenize(int[] ids);

    /** What the engine's caches did; an engine without caches counts nothing. */
    default CacheStats cacheStats() { return new CacheStats(); }

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

        /** Prompt tokens whose KV cache is reused from an earlier request rather than computed. */
        default int cachedTokens() { return 0; }
    }
}
