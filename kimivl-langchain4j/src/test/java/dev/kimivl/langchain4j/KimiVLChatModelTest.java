package dev.kimivl.langchain4j;

import dev.kimivl.model.KimiVL;
import dev.langchain4j.data.message.ImageContent;
import dev.langchain4j.data.message.TextContent;
import dev.langchain4j.data.message.UserMessage;
import dev.langchain4j.model.chat.ChatModel;
import dev.langchain4j.model.chat.request.ChatRequest;
import dev.langchain4j.model.chat.response.ChatResponse;
import dev.langchain4j.model.chat.response.StreamingChatResponseHandler;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Base64;
import java.util.concurrent.atomic.AtomicReference;

import static org.junit.jupiter.api.Assertions.*;

class KimiVLChatModelTest {
    static KimiVL model;

    @BeforeAll
    static void open() { model = KimiVL.open(Path.of("../models/tiny-random")); }

    @AfterAll
    static void close() { model.close(); }

    @Test
    void blockingAndStreamingGiveTheSameGreedyAnswer() throws Exception {
        ChatModel chat = KimiVLChatModel.builder(model).temperature(0).maxTokens(8).build();
        ChatResponse r = chat.chat(ChatRequest.builder().messages(UserMessage.from("Hello")).build());
        assertNotNull(r.aiMessage().text());
        assertTrue(r.tokenUsage().outputTokenCount() <= 8);
        assertTrue(r.tokenUsage().inputTokenCount() > 5);

        StringBuilder streamed = new StringBuilder();
        java.util.concurrent.CompletableFuture<ChatResponse> done = new java.util.concurrent.CompletableFuture<>();
        KimiVLChatModel.builder(model).temperature(0).maxTokens(8).buildStreaming()
                .chat(ChatRequest.builder().messages(UserMessage.from("Hello")).build(), new StreamingChatResponseHandler() {
                    @Override public void onPartialResponse(String s) { streamed.append(s); }
                    @Override public void onCompleteResponse(ChatResponse c) { done.complete(c); }
                    @Override public void onError(Throwable t) { done.completeExceptionally(t); }
                });
        done.get(60, java.util.concurrent.TimeUnit.SECONDS);            // streaming returns at once; generation runs on
        assertEquals(r.aiMessage().text(), done.get().aiMessage().text());
        assertEquals(r.aiMessage().text(), streamed.toString());
    }

    @Test
    void takesBase64Images() throws Exception {
        String b64 = Base64.getEncoder().encodeToString(Files.readAllBytes(Path.of("../examples/shapes.png")));
        ChatResponse r = KimiVLChatModel.builder(model).maxTokens(4).build().chat(ChatRequest.builder().messages(
                UserMessage.from(ImageContent.from(b64, "image/png"), TextContent.from("What is this?"))).build());
        assertTrue(r.tokenUsage().inputTokenCount() > 35, "the image's 35 tokens are in the prompt");
    }

    @Test
    void remoteImageUrlsAreRefusedClearly() {
        ChatModel chat = KimiVLChatModel.builder(model).maxTokens(4).build();
        Exception e = assertThrows(dev.langchain4j.exception.UnsupportedFeatureException.class, () -> chat.chat(ChatRequest.builder().messages(
                UserMessage.from(ImageContent.from("https://example.com/cat.png"), TextContent.from("?"))).build()));
        assertTrue(e.getMessage().contains("does not download"), e.getMessage());
    }
}
