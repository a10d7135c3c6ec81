package dev.kimivl.langchain4j;

import dev.kimivl.model.KimiVL;
import dev.langchain4j.model.chat.Capability;
import dev.langchain4j.model.chat.ChatModel;
import dev.langchain4j.model.chat.listener.ChatModelListener;
import dev.langchain4j.model.chat.request.ChatRequest;
import dev.langchain4j.model.chat.request.ChatRequestParameters;
import dev.langchain4j.model.chat.request.ResponseFormat;
import dev.langchain4j.model.chat.response.ChatResponse;

import java.util.ArrayList;
import java.util.List;
import java.util.Set;

/**
 * Kimi-VL as a LangChain4j {@link ChatModel}, running in process. Text and images (base64 or file: URLs) in user
 * messages; a Thinking model's reasoning is returned as {@code AiMessage.thinking()}, the answer as its text;
 * {@code ResponseFormat.JSON} with or without a JSON schema is served by constrained decoding (the answer always
 * parses; {@link Capability#RESPONSE_FORMAT_JSON_SCHEMA}, so AiServices returning a record asks for it).
 * Errors are LangChain4j's types: {@code UnsupportedFeatureException} (tools, audio, remote images),
 * {@code InvalidRequestException} (bad parameters, a prompt over the context, an unreadable image),
 * {@code ModelNotFoundException} (a request naming another model).
 *
 * <pre>{@code
 * try (KimiVL model = KimiVL.open(Path.of("Kimi-VL-A3B-Instruct"))) {
 *     ChatModel chat = KimiVLChatModel.builder(model).temperature(0.2).build();
 *     String answer = chat.chat("Describe Kimi-VL in one sentence.");
 * }
 * }</pre>
 */
public final class KimiVLChatModel implements ChatModel {
    private final Conversations conversations;

    KimiVLChatModel(Conversations conversations) { this.conversations = conversations; }

    public static Builder builder(KimiVL model) { return new Builder(model); }

    /** Generates on the calling thread; interrupting it ends the generation (finish reason OTHER). */
    @Override
    public ChatResponse doChat(ChatRequest request) {
        Thread caller = Thread.currentThread();
        return conversations.run(request, Conversations.Sink.NONE, caller::isInterrupted);
    }

    @Override public ChatRequestParameters defaultRequestParameters() { return conversations.defaultParameters(); }

    /** Prompt tokens the last request took from the kept KV cache instead of computing them. */
    int reusedTokens() { return conversations.reusedTokens(); }

    @Override public List<ChatModelListener> listeners() { return conversations.listeners(); }

    @Override public Set<Capability> supportedCapabilities() { return Set.of(Capability.RESPONSE_FORMAT_JSON_SCHEMA); }

    /** Options shared by both model kinds; unset ones take the defaults shown. */
    public static class Builder {
        final KimiVL model;
        String modelName;
        int maxTokens = 1024, contextCap;
        double temperature = 0.2, topP = 1.0, frequencyPenalty, presencePenalty;
        Integer topK;
        Long seed;
        boolean returnThinking = true;
        ResponseFormat responseFormat = ResponseFormat.TEXT;
        final List<ChatModelListener> listeners = new ArrayList<>();
        Conversations.Backend backend;

        Builder(KimiVL model) {
            KimiVL.requireVectorModule();
            this.model = java.util.Objects.requireNonNull(model, "model");
            this.modelName = model.dir().getFileName().toString();
        }

        /** The name responses carry and requests may give (another name is a ModelNotFoundException); default: the directory's name. */
        public Builder modelName(String name) { this.modelName = name; return this; }
        public Builder maxTokens(int n) { this.maxTokens = n; return this; }
        public Builder temperature(double t) { this.temperature = t; return this; }
        public Builder topP(double p) { this.topP = p; return this; }
        /** null or 0: off. */
        public Builder topK(Integer k) { this.topK = k; return this; }
        /** OpenAI's penalties over the tokens generated so far, in [-2, 2]. */
        public Builder frequencyPenalty(double p) { this.frequencyPenalty = p; return this; }
        public Builder presencePenalty(double p) { this.presencePenalty = p; return this; }
        public Builder contextLength(int cap) { this.contextCap = cap; return this; }
        /** A fixed seed for every request (reproducible answers); unset: a fresh seed per request. */
        public Builder seed(long seed) { this.seed = seed; return this; }
        /** Whether a Thinking model's reasoning reaches {@code AiMessage.thinking()} and {@code onPartialThinking} (default true); the answer never carries it. */
        public Builder returnThinking(boolean r) { this.returnThinking = r; return this; }
        public Builder responseFormat(ResponseFormat f) { this.responseFormat = f; return this; }
        public Builder listeners(List<ChatModelListener> l) { this.listeners.clear(); this.listeners.addAll(l); return this; }
        public Builder listeners(ChatModelListener... l) { return listeners(List.of(l)); }

        /** For tests: generation by something other than the model (the request checks stay the same). */
        Builder backend(Conversations.Backend b) { this.backend = b; return this; }

        Conversations conversations() {
            KimiVLChatRequestParameters defaults = KimiVLChatRequestParameters.builder()
                    .modelName(modelName).temperature(temperature).topP(topP).topK(topK)
                    .frequencyPenalty(frequencyPenalty).presencePenalty(presencePenalty)
                    .maxOutputTokens(maxTokens).stopSequences(List.of()).responseFormat(responseFormat)
                    .seed(seed).build();
            return new Conversations(backend != null ? backend : Conversations.backend(model, contextCap),
                    modelName, defaults, returnThinking, listeners);
        }

        public KimiVLChatModel build() { return new KimiVLChatModel(conversations()); }

        public KimiVLStreamingChatModel buildStreaming() { return new KimiVLStreamingChatModel(conversations()); }
    }
}
