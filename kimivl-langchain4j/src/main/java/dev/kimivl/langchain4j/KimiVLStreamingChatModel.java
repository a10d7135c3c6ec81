package dev.kimivl.langchain4j;

import dev.langchain4j.model.chat.Capability;
import dev.langchain4j.model.chat.StreamingChatModel;
import dev.langchain4j.model.chat.listener.ChatModelListener;
import dev.langchain4j.model.chat.request.ChatRequest;
import dev.langchain4j.model.chat.request.ChatRequestParameters;
import dev.langchain4j.model.chat.response.ChatResponse;
import dev.langchain4j.model.chat.response.PartialResponse;
import dev.langchain4j.model.chat.response.PartialResponseContext;
import dev.langchain4j.model.chat.response.PartialThinking;
import dev.langchain4j.model.chat.response.PartialThinkingContext;
import dev.langchain4j.model.chat.response.StreamingChatResponseHandler;
import dev.langchain4j.model.chat.response.StreamingHandle;

import java.util.List;
import java.util.Set;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Kimi-VL as a LangChain4j {@link StreamingChatModel}. {@code chat} returns at once, as OpenAI's and Ollama's do:
 * generation runs on its own thread, text reaches {@code onPartialResponse(PartialResponse, PartialResponseContext)}
 * as soon as it is complete UTF-8, a Thinking model's reasoning reaches {@code onPartialThinking}, and the streamed
 * text equals the final {@code AiMessage.text()}. {@code context.streamingHandle().cancel()} stops generation
 * before the next token; after it the handler hears nothing more. A request refused before generating (see
 * {@link KimiVLChatModel}) goes to {@code onError}, as does an exception thrown by the handler.
 * Build with {@code KimiVLChatModel.builder(model).buildStreaming()}.
 */
public final class KimiVLStreamingChatModel implements StreamingChatModel {
    private static final AtomicInteger THREADS = new AtomicInteger();
    private final Conversations conversations;

    KimiVLStreamingChatModel(Conversations conversations) { this.conversations = conversations; }

    @Override
    public void doChat(ChatRequest request, StreamingChatResponseHandler handler) {
        Conversations.Job job;
        try {
            job = conversations.prepare(request);
        } catch (RuntimeException e) {
            handler.onError(e);
            return;
        }
        Handle handle = new Handle();
        Thread.ofPlatform().daemon().name("kimivl-stream-" + THREADS.incrementAndGet()).start(() -> {
            try {
                ChatResponse r = conversations.execute(job, new Conversations.Sink() {
                    @Override public void answer(String text) {
                        if (!handle.isCancelled()) handler.onPartialResponse(new PartialResponse(text), new PartialResponseContext(handle));
                    }

                    @Override public void thinking(String text) {
                        if (!handle.isCancelled()) handler.onPartialThinking(new PartialThinking(text), new PartialThinkingContext(handle));
                    }
                }, handle::isCancelled);
                if (!handle.isCancelled()) handler.onCompleteResponse(r);
            } catch (Throwable e) {
                if (!handle.isCancelled()) handler.onError(e);
            }
        });
    }

    @Override public ChatRequestParameters defaultRequestParameters() { return conversations.defaultParameters(); }

    @Override public List<ChatModelListener> listeners() { return conversations.listeners(); }

    @Override public Set<Capability> supportedCapabilities() { return Set.of(Capability.RESPONSE_FORMAT_JSON_SCHEMA); }

    /** Cancels one streamed generation. */
    private static final class Handle implements StreamingHandle {
        private final AtomicBoolean cancelled = new AtomicBoolean();

        @Override public void cancel() { cancelled.set(true); }

        @Override public boolean isCancelled() { return cancelled.get(); }
    }
}
