package dev.kimivl.langchain4j;

import dev.kimivl.model.KimiVL;
import dev.langchain4j.model.chat.ChatModel;
import dev.langchain4j.model.chat.request.ChatRequest;
import dev.langchain4j.model.chat.response.ChatResponse;

/**
 * Kimi-VL as a LangChain4j {@link ChatModel}, running in process. Text and images (base64 or file: URLs) in user
 * messages; a Thinking model's reasoning is returned as {@code AiMessage.thinking()}, the answer as its text.
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

    @Override
    public ChatResponse doChat(ChatRequest request) { return conversations.run(request, null); }

    /** Options shared by both model kinds. */
    public static class Builder {
        final KimiVL model;
        String modelName;
        int maxTokens = 1024, contextCap;
        double temperature = 0.2;
        long seed = System.nanoTime();

        Builder(KimiVL model) {
            this.model = model;
            this.modelName = model.dir().getFileName().toString();
        }

        public Builder modelName(String name) { this.modelName = name; return this; }
        public Builder maxTokens(int n) { this.maxTokens = n; return this; }
        public Builder temperature(double t) { this.temperature = t; return this; }
        public Builder contextLength(int cap) { this.contextCap = cap; return this; }
        public Builder seed(long seed) { this.seed = seed; return this; }

        Conversations conversations() {
            return new Conversations(model, new Conversations.Defaults(modelName, maxTokens, temperature, contextCap, seed));
        }

        public KimiVLChatModel build() { return new KimiVLChatModel(conversations()); }

        public KimiVLStreamingChatModel buildStreaming() { return new KimiVLStreamingChatModel(conversations()); }
    }
}
