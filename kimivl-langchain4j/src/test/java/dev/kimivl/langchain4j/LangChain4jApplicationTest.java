package dev.kimivl.langchain4j;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.kimivl.generate.Generator;
import dev.kimivl.generate.TokenConstraint;
import dev.kimivl.model.KimiVL;
import dev.langchain4j.agent.tool.ToolSpecification;
import dev.langchain4j.data.message.AiMessage;
import dev.langchain4j.data.message.ChatMessage;
import dev.langchain4j.data.message.UserMessage;
import dev.langchain4j.exception.InvalidRequestException;
import dev.langchain4j.exception.ModelNotFoundException;
import dev.langchain4j.exception.UnsupportedFeatureException;
import dev.langchain4j.memory.chat.MessageWindowChatMemory;
import dev.langchain4j.model.chat.Capability;
import dev.langchain4j.model.chat.ChatModel;
import dev.langchain4j.model.chat.StreamingChatModel;
import dev.langchain4j.model.chat.listener.ChatModelErrorContext;
import dev.langchain4j.model.chat.listener.ChatModelListener;
import dev.langchain4j.model.chat.listener.ChatModelRequestContext;
import dev.langchain4j.model.chat.listener.ChatModelResponseContext;
import dev.langchain4j.model.chat.request.ChatRequest;
import dev.langchain4j.model.chat.request.ChatRequestParameters;
import dev.langchain4j.model.chat.request.ResponseFormat;
import dev.langchain4j.model.chat.request.ResponseFormatType;
import dev.langchain4j.model.chat.response.ChatResponse;
import dev.langchain4j.model.chat.response.PartialResponse;
import dev.langchain4j.model.chat.response.PartialResponseContext;
import dev.langchain4j.model.chat.response.StreamingChatResponseHandler;
import dev.langchain4j.model.output.FinishReason;
import dev.langchain4j.service.AiServices;
import dev.langchain4j.service.TokenStream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The model used as a LangChain4j application uses a chat model: AiServices with chat memory, TokenStream, JSON
 * output into a record, cancellation. tiny-random's answers are random text: these tests check the plumbing.
 */
class LangChain4jApplicationTest {
    static KimiVL model;

    @BeforeAll static void open() { model = KimiVL.open(Path.of("../models/tiny-random")); }

    @AfterAll static void close() { model.close(); }

    interface Assistant { String chat(String message); }

    interface StreamingAssistant { TokenStream chat(String message); }

    record Person(String name, long age, boolean active) {}

    interface Extractor { Person extract(String text); }

    @Test
    void aiServiceWithChatMemorySendsTheWholeConversation() {
        List<ChatRequest> seen = Collections.synchronizedList(new ArrayList<>());
        List<ChatResponse> answered = Collections.synchronizedList(new ArrayList<>());
        KimiVLChatModel chat = KimiVLChatModel.builder(model).maxTokens(6).listeners(new ChatModelListener() {
            @Override public void onRequest(ChatModelRequestContext c) { seen.add(c.chatRequest()); }
            @Override public void onResponse(ChatModelResponseContext c) { answered.add(c.chatResponse()); }
        }).build();
        var memory = MessageWindowChatMemory.withMaxMessages(10);
        Assistant assistant = AiServices.builder(Assistant.class).chatModel(chat).chatMemory(memory).build();
        String first = assistant.chat("Hello, my name is Ada.");
        int firstPrompt = answered.get(0).tokenUsage().inputTokenCount();
        assistant.chat("What is my name?");
        assertTrue(chat.reusedTokens() >= firstPrompt, "the second turn reused the first one's cache: " + chat.reusedTokens() + " of " + firstPrompt);
        assertEquals(4, memory.messages().size());
        assertEquals(2, seen.size(), "listeners hear every request");
        List<ChatMessage> second = seen.get(1).messages();
        assertEquals(3, second.size(), "the second request carries the first exchange");
        assertEquals(first, ((AiMessage) second.get(1)).text());
        assertEquals("tiny-random", seen.get(1).parameters().modelName(), "defaults are merged into requests");
        assertNotNull(answered.get(0).id());
        assertNotEquals(answered.get(0).id(), answered.get(1).id());
        assertEquals("tiny-random", answered.get(0).modelName());
    }

    @Test
    void tokenStreamStreamsTheFinalTextAndChatReturnsAtOnce() throws Exception {
        StreamingChatModel streaming = KimiVLChatModel.builder(model).maxTokens(24).temperature(0).buildStreaming();
        StreamingAssistant assistant = AiServices.builder(StreamingAssistant.class).streamingChatModel(streaming)
                .chatMemory(MessageWindowChatMemory.withMaxMessages(10)).build();
        CountDownLatch returned = new CountDownLatch(1);
        AtomicBoolean waitedForReturn = new AtomicBoolean(true);
        StringBuilder streamed = new StringBuilder();
        CompletableFuture<ChatResponse> done = new CompletableFuture<>();
        assistant.chat("Hello")
                .onPartialResponseWithContext((PartialResponse p, PartialResponseContext ctx) -> {
                    try {
                        // a chat() that blocked until the end would never let this latch open
                        if (!returned.await(10, TimeUnit.SECONDS)) waitedForReturn.set(false);
                    } catch (InterruptedException e) { throw new RuntimeException(e); }
                    streamed.append(p.text());
                })
                .onCompleteResponse(done::complete)
                .onError(done::completeExceptionally)
                .start();
        returned.countDown();
        ChatResponse r = done.get(60, TimeUnit.SECONDS);
        assertTrue(waitedForReturn.get(), "start() returned before the first token was delivered");
        assertFalse(streamed.isEmpty(), "text was streamed; final: '" + r.aiMessage().text() + "' " + r.finishReason());
        assertEquals(r.aiMessage().text(), streamed.toString());
        assertNotNull(r.id());
    }

    @Test
    void cancellingAStreamStopsGenerationAndSilencesTheHandler() throws Exception {
        // a fixed seed: with a fresh one per request, tiny-random sometimes ends its answer within three parts, and the
        // stream then completes before there is anything to cancel (a CI run waited out the 30 s for that)
        StreamingChatModel streaming = KimiVLChatModel.builder(model).maxTokens(2000).temperature(0.8).seed(7).buildStreaming();
        StreamingAssistant assistant = AiServices.builder(StreamingAssistant.class).streamingChatModel(streaming).build();
        AtomicInteger parts = new AtomicInteger(), after = new AtomicInteger();
        AtomicBoolean completed = new AtomicBoolean(), failed = new AtomicBoolean();
        CountDownLatch cancelled = new CountDownLatch(1);
        assistant.chat("Write a very long essay.")
                .onPartialResponseWithContext((p, ctx) -> {
                    if (ctx.streamingHandle().isCancelled()) after.incrementAndGet();
                    if (parts.incrementAndGet() == 3) {
                        ctx.streamingHandle().cancel();
                        cancelled.countDown();
                    }
                })
                .onCompleteResponse(r -> completed.set(true))
                .onError(e -> failed.set(true))
                .start();
        assertTrue(cancelled.await(30, TimeUnit.SECONDS));
        // the generation lock is free again once generation has stopped: a blocking call goes through at once
        long t0 = System.nanoTime();
        KimiVLChatModel.builder(model).maxTokens(2).build().chat("next");
        Thread.sleep(200);
        assertEquals(3, parts.get(), "no text after cancel()");
        assertEquals(0, after.get());
        assertFalse(completed.get(), "no onCompleteResponse after cancel()");
        assertFalse(failed.get(), "cancelling is not an error");
        assertTrue(System.nanoTime() - t0 < 30e9);
    }

    @Test
    void jsonOutputIntoARecordThroughAJsonSchema() {
        ChatModel chat = KimiVLChatModel.builder(model).maxTokens(80).temperature(0.8).build();
        assertTrue(chat.supportedCapabilities().contains(Capability.RESPONSE_FORMAT_JSON_SCHEMA));
        AtomicReference<ChatRequest> request = new AtomicReference<>();
        AtomicReference<String> raw = new AtomicReference<>();
        ChatModel recorded = KimiVLChatModel.builder(model).maxTokens(80).temperature(0.8)
                .listeners(new ChatModelListener() {
                    @Override public void onRequest(ChatModelRequestContext c) { request.set(c.chatRequest()); }
                    @Override public void onResponse(ChatModelResponseContext c) { raw.set(c.chatResponse().aiMessage().text()); }
                }).build();
        Extractor extractor = AiServices.create(Extractor.class, recorded);
        for (int i = 0; i < 6; i++) {
            Person p = extractor.extract("Ada Lovelace, 36, still working.");   // random values, but always a Person
            assertNotNull(p, raw.get());
            // LangChain4j's schemas leave a record's fields optional: any of them may be missing, no other key may appear
            var json = assertDoesNotThrow(() -> new ObjectMapper().readTree(raw.get()));
            json.fieldNames().forEachRemaining(k -> assertTrue(Set.of("name", "age", "active").contains(k), raw.get()));
        }
        assertNotNull(request.get().parameters().responseFormat().jsonSchema(), "AiServices asked for the record's schema: " + request.get());
    }

    @Test
    void aSchemaKeywordConstrainedDecodingCannotEnforceIsRefusedNotIgnored() {
        ChatModel chat = KimiVLChatModel.builder(model).maxTokens(20).build();
        var schema = dev.langchain4j.model.chat.request.json.JsonSchema.builder().name("Address")
                .rootElement(dev.langchain4j.model.chat.request.json.JsonRawSchema.from(
                        "{\"type\":\"object\",\"properties\":{\"zip\":{\"type\":\"string\",\"pattern\":\"^[0-9]{5}$\"}}}"))
                .build();
        var e = assertThrows(dev.langchain4j.exception.UnsupportedFeatureException.class, () -> chat.chat(ChatRequest.builder()
                .messages(UserMessage.from("Where?")).responseFormat(ResponseFormat.builder().type(ResponseFormatType.JSON).jsonSchema(schema).build()).build()));
        assertTrue(e.getMessage().contains("responseFormat.jsonSchema.rootElement.properties.zip.pattern is not supported"), e.getMessage());
    }

    @Test
    void jsonModeWithoutSchemaAlwaysParses() throws Exception {
        ChatModel chat = KimiVLChatModel.builder(model).maxTokens(30).temperature(0.8).build();
        for (int i = 0; i < 4; i++) {
            ChatResponse r = chat.chat(ChatRequest.builder().messages(UserMessage.from("Some JSON please"))
                    .responseFormat(ResponseFormat.JSON).build());
            assertTrue(new ObjectMapper().readTree(r.aiMessage().text()).isObject(), r.aiMessage().text());
        }
    }

    @Test
    void thinkingGoesToOnPartialThinkingAndStreamedTextEqualsFinalText() throws Exception {
        // a scripted Thinking model: tiny-random does not think, and the plumbing is what is under test
        String output = "\u25C1think\u25B7The user greets me.\nI greet back.\u25C1/think\u25B7Hello there!";
        Conversations.Backend thinker = new Conversations.Backend() {
            @Override
            public Generator.Result generate(List<dev.kimivl.text.ChatMessage> m, List<dev.kimivl.vision.LoadedImage> i,
                                             dev.kimivl.generate.SamplingParams p, Generator.Listener l, dev.kimivl.generate.GenerationOptions o) {
                for (int k = 0; k < output.length(); k += 3) l.onText(output.substring(k, Math.min(output.length(), k + 3)));
                return new Generator.Result(new int[10], output, Generator.FinishReason.STOP, 5, 0, 0);
            }

            @Override public TokenConstraint json(dev.kimivl.generate.json.JsonShape s) { throw new AssertionError(); }
        };
        StreamingChatModel streaming = KimiVLChatModel.builder(model).backend(thinker).buildStreaming();
        StreamingAssistant assistant = AiServices.builder(StreamingAssistant.class).streamingChatModel(streaming).build();
        StringBuilder text = new StringBuilder(), thoughts = new StringBuilder();
        CompletableFuture<ChatResponse> done = new CompletableFuture<>();
        assistant.chat("Hi").onPartialResponse(text::append).onPartialThinking(t -> thoughts.append(t.text()))
                .onCompleteResponse(done::complete).onError(done::completeExceptionally).start();
        ChatResponse r = done.get(10, TimeUnit.SECONDS);
        assertEquals("Hello there!", text.toString());
        assertEquals("The user greets me.\nI greet back.", thoughts.toString());
        assertEquals(text.toString(), r.aiMessage().text());
        assertEquals(thoughts.toString(), r.aiMessage().thinking());

        ChatModel blocking = KimiVLChatModel.builder(model).backend(thinker).returnThinking(false).build();
        AiMessage m = blocking.chat(UserMessage.from("Hi")).aiMessage();
        assertEquals("Hello there!", m.text());
        assertNull(m.thinking());
    }

    @Test
    void seedsArePerRequest() {
        ChatModel unseeded = KimiVLChatModel.builder(model).maxTokens(16).temperature(0.8).build();
        Set<String> answers = new HashSet<>();
        for (int i = 0; i < 3; i++) answers.add(unseeded.chat("Say something random."));
        assertTrue(answers.size() > 1, "at temperature 0.8 a fresh seed per request: " + answers);

        ChatModel seeded = KimiVLChatModel.builder(model).maxTokens(16).temperature(0.8).seed(42).build();
        assertEquals(seeded.chat("Say something random."), seeded.chat("Say something random."));

        ChatRequest withSeed = ChatRequest.builder().messages(UserMessage.from("Say something random."))
                .parameters(KimiVLChatRequestParameters.builder().seed(7L).build()).build();
        assertEquals(unseeded.chat(withSeed).aiMessage().text(), unseeded.chat(withSeed).aiMessage().text());
    }

    @Test
    void frequencyAndPresencePenaltiesAreHonoured() {
        ChatModel chat = KimiVLChatModel.builder(model).maxTokens(40).temperature(0).build();
        String plain = chat.chat("Hello");
        String penalised = chat.chat(ChatRequest.builder().messages(UserMessage.from("Hello")).frequencyPenalty(2.0).presencePenalty(2.0).build()).aiMessage().text();
        assertNotEquals(plain, penalised);
        assertThrows(InvalidRequestException.class, () -> chat.chat(ChatRequest.builder().messages(UserMessage.from("Hello")).frequencyPenalty(3.0).build()));
    }

    @Test
    void defaultParametersAreFilledAndTheModelNameIsChecked() {
        ChatModel chat = KimiVLChatModel.builder(model).maxTokens(8).temperature(0.3).build();
        ChatRequestParameters d = chat.defaultRequestParameters();
        assertEquals("tiny-random", d.modelName());
        assertEquals(0.3, d.temperature());
        assertEquals(1.0, d.topP());
        assertEquals(8, d.maxOutputTokens());
        assertEquals(0.0, d.frequencyPenalty());
        assertEquals(0.0, d.presencePenalty());
        assertEquals(ResponseFormat.TEXT, d.responseFormat());
        var e = assertThrows(ModelNotFoundException.class, () -> chat.chat(ChatRequest.builder().messages(UserMessage.from("Hi")).modelName("gpt-4o").build()));
        assertTrue(e.getMessage().contains("gpt-4o") && e.getMessage().contains("tiny-random"), e.getMessage());
        assertNotNull(chat.chat(ChatRequest.builder().messages(UserMessage.from("Hi")).modelName("tiny-random").build()).aiMessage());
    }

    @Test
    void errorsAreLangChain4jTypesAndReachListenersAndOnError() throws Exception {
        List<Throwable> heard = Collections.synchronizedList(new ArrayList<>());
        ChatModel chat = KimiVLChatModel.builder(model).maxTokens(4).contextLength(64).listeners(new ChatModelListener() {
            @Override public void onError(ChatModelErrorContext c) { heard.add(c.error()); }
        }).build();
        ChatRequest tools = ChatRequest.builder().messages(UserMessage.from("Weather?"))
                .toolSpecifications(ToolSpecification.builder().name("weather").build()).build();
        assertThrows(UnsupportedFeatureException.class, () -> chat.chat(tools));
        var e = assertThrows(InvalidRequestException.class, () -> chat.chat("word ".repeat(200)));
        assertTrue(e.getMessage().contains("64"), e.getMessage());
        assertThrows(InvalidRequestException.class, () -> chat.chat(ChatRequest.builder().messages(UserMessage.from("x")).temperature(-1.0).build()));
        assertEquals(3, heard.size());

        CompletableFuture<Throwable> streamed = new CompletableFuture<>();
        KimiVLChatModel.builder(model).buildStreaming().chat(tools, new StreamingChatResponseHandler() {
            @Override public void onCompleteResponse(ChatResponse r) { streamed.complete(null); }
            @Override public void onError(Throwable t) { streamed.complete(t); }
        });
        assertInstanceOf(UnsupportedFeatureException.class, streamed.get(10, TimeUnit.SECONDS));
    }

    @Test
    void finishReasonsAndUsage() {
        ChatResponse r = KimiVLChatModel.builder(model).maxTokens(3).temperature(0).build().chat(ChatRequest.builder()
                .messages(UserMessage.from("Hello")).build());
        assertTrue(r.finishReason() == FinishReason.LENGTH || r.finishReason() == FinishReason.STOP);
        assertTrue(r.tokenUsage().outputTokenCount() <= 3);
    }
}
