package dev.kimivl.langchain4j;

import dev.langchain4j.model.chat.StreamingChatModel;
import dev.langchain4j.model.chat.request.ChatRequest;
import dev.langchain4j.model.chat.response.StreamingChatResponseHandler;

/**
 * Kimi-VL as a LangChain4j {@link StreamingChatModel}: text reaches {@code onPartialResponse} as soon as it is
 * complete UTF-8; generation runs on the calling thread. Build with {@code KimiVLChatModel.builder(model).buildStreaming()}.
 */
public final class KimiVLStreamingChatModel implements StreamingChatModel {
    private final Conversations conversations;

    KimiVLStreamingChatModel(Conversations conversations) { this.conversations = conversations; }

    @Override
    public void doChat(ChatRequest request, StreamingChatResponseHandler handler) {
        try {
            handler.onCompleteResponse(conversations.run(request, handler::onPartialResponse));
        } catch (RuntimeException e) {
            handler.onError(e);
        }
    }
}
