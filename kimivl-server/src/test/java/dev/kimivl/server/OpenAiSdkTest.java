package dev.kimivl.server;

import com.openai.client.OpenAIClient;
import com.openai.client.okhttp.OpenAIOkHttpClient;
import com.openai.core.http.StreamResponse;
import com.openai.errors.BadRequestException;
import com.openai.errors.RateLimitException;
import com.openai.models.chat.completions.ChatCompletion;
import com.openai.models.chat.completions.ChatCompletionChunk;
import com.openai.models.chat.completions.ChatCompletionContentPart;
import com.openai.models.chat.completions.ChatCompletionContentPartImage;
import com.openai.models.chat.completions.ChatCompletionContentPartText;
import com.openai.models.chat.completions.ChatCompletionCreateParams;
import com.openai.models.chat.completions.ChatCompletionStreamOptions;
import com.openai.models.completions.Completion;
import com.openai.models.completions.CompletionCreateParams;
import dev.kimivl.generate.SamplingParams;
import dev.kimivl.model.KimiVL;
import dev.kimivl.text.ChatMessage;
import dev.kimivl.vision.ImageLoader;
import dev.kimivl.vision.LoadedImage;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Base64;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The server driven by a client nobody here wrote: the official OpenAI Java SDK (com.openai:openai-java), on the
 * tiny random model. Greedy answers equal {@code kimivl run}'s path (KimiVL.prompt and a fresh Generator).
 */
class OpenAiSdkTest {
    static KimiVL model;
    static OpenAiServer server;
    static OpenAIClient client;

    @BeforeAll
    static void start() throws Exception {
        model = KimiVL.open(Path.of("../models/tiny-random"));
        server = new OpenAiServer(model, new ServerDefaults("tiny-random", 16, 0.0, 512), ServerOptions.local(0).withApiKey("sk-test"));
        server.start();
        client = OpenAIOkHttpClient.builder().baseUrl("http://127.0.0.1:" + server.port() + "/v1").apiKey("sk-test")
                .maxRetries(0).timeout(Duration.ofSeconds(60)).build();
    }

    @AfterAll
    static void stop() {
        client.close();
        server.close();
        model.close();
    }

    static String reference(List<ChatMessage> messages, List<LoadedImage> images, int max) {
        KimiVL.Prompt p = model.prompt(messages, images);
        return model.generator(512).generate(p.embeddings(), p.ids(), SamplingParams.greedy(max), null).text();
    }

    @Test
    void chatCompletionAndItsStreamGiveTheGreedyAnswer() {
        ChatCompletionCreateParams params = ChatCompletionCreateParams.builder().model("tiny-random")
                .addUserMessage("Hello").maxCompletionTokens(8).temperature(0.0).build();
        ChatCompletion c = client.chat().completions().create(params);
        String expected = reference(List.of(ChatMessage.user("Hello")), List.of(), 8);
        assertFalse(expected.isEmpty(), "a prompt the tiny model answers with some text");
        assertEquals(expected, c.choices().getFirst().message().content().orElse(""));
        assertTrue(c.usage().orElseThrow().completionTokens() <= 8);

        StringBuilder streamed = new StringBuilder();
        long usageTokens = -1;
        try (StreamResponse<ChatCompletionChunk> s = client.chat().completions().createStreaming(params.toBuilder()
                .streamOptions(ChatCompletionStreamOptions.builder().includeUsage(true).build()).build())) {
            for (ChatCompletionChunk chunk : (Iterable<ChatCompletionChunk>) s.stream()::iterator) {
                chunk.choices().forEach(ch -> ch.delta().content().ifPresent(streamed::append));
                if (chunk.usage().isPresent()) usageTokens = chunk.usage().get().completionTokens();
            }
        }
        assertEquals(expected, streamed.toString());
        assertEquals(c.usage().orElseThrow().completionTokens(), usageTokens);
    }

    @Test
    void anImageAsADataUrl() throws Exception {
        byte[] png = Files.readAllBytes(Path.of("../examples/shapes.png"));
        ChatCompletion c = client.chat().completions().create(ChatCompletionCreateParams.builder().model("tiny-random")
                .addUserMessageOfArrayOfContentParts(List.of(
                        ChatCompletionContentPart.ofImageUrl(ChatCompletionContentPartImage.builder().imageUrl(ChatCompletionContentPartImage.ImageUrl
                                .builder().url("data:image/png;base64," + Base64.getEncoder().encodeToString(png)).build()).build()),
                        ChatCompletionContentPart.ofText(ChatCompletionContentPartText.builder().text("What is this?").build())))
                .maxCompletionTokens(6).temperature(0.0).build());
        LoadedImage img = new ImageLoader().load(Path.of("../examples/shapes.png"));
        String expected = reference(List.of(ChatMessage.of("user", ChatMessage.imagePart(), ChatMessage.textPart("What is this?"))), List.of(img), 6);
        assertEquals(expected, c.choices().getFirst().message().content().orElse(""));
        assertTrue(c.usage().orElseThrow().promptTokens() > 35, "the image's tokens are in the prompt");
    }

    @Test
    void aSecondTurnReportsCachedTokensTheSdkReads() {
        var first = ChatCompletionCreateParams.builder().model("tiny-random").addSystemMessage("Be brief.")
                .addUserMessage("Name a shape.").maxCompletionTokens(6).temperature(0.0).build();
        String answer = client.chat().completions().create(first).choices().getFirst().message().content().orElse("");
        ChatCompletion second = client.chat().completions().create(first.toBuilder().addAssistantMessage(answer)
                .addUserMessage("Another one?").build());
        long cached = second.usage().orElseThrow().promptTokensDetails().orElseThrow().cachedTokens().orElse(0L);
        assertTrue(cached > 0, "cached tokens: " + second.usage());
    }

    @Test
    void aTextCompletion() {
        String prompt = "<|im_user|>user<|im_middle|>Hi<|im_end|><|im_assistant|>assistant<|im_middle|>";
        Completion c = client.completions().create(CompletionCreateParams.builder().model("tiny-random").prompt(prompt)
                .maxTokens(6).temperature(0.0).build());
        int[] ids = new dev.kimivl.text.PromptEncoder(model.tokenizer()).encode(prompt).ids();
        String expected = model.generator(512).generate(model.languageModel().embed(ids), ids, SamplingParams.greedy(6), null).text();
        assertEquals(expected, c.choices().getFirst().text());
    }

    /** What the SDK's structured outputs turn into a JSON schema (strict: every field required, no others). */
    public record Answer(String colour, long count, List<String> shapes) {}

    @Test
    void structuredOutputsLogprobsAndChoicesThroughTheSdk() {
        // the SDK derives the schema from the record, sends response_format json_schema, and parses our answer back
        var structured = ChatCompletionCreateParams.builder().model("tiny-random").addUserMessage("Describe the picture.")
                .maxCompletionTokens(80).temperature(0.7).seed(3).n(2).responseFormat(Answer.class).build();
        var answers = client.chat().completions().create(structured).choices();
        assertEquals(2, answers.size());
        for (var choice : answers) {
            Answer a = choice.message().content().orElseThrow();
            assertNotNull(a.colour());
            assertNotNull(a.shapes());
        }
        // logprobs in the SDK's types
        ChatCompletion c = client.chat().completions().create(ChatCompletionCreateParams.builder().model("tiny-random")
                .addUserMessage("Hello").maxCompletionTokens(6).temperature(0.0).logprobs(true).topLogprobs(2).build());
        var content = c.choices().getFirst().logprobs().orElseThrow().content().orElseThrow();
        assertEquals(c.usage().orElseThrow().completionTokens(), content.size());
        for (var t : content) {
            assertEquals(2, t.topLogprobs().size());
            assertEquals(t.topLogprobs().getFirst().logprob(), t.logprob(), 0.0, "greedy: the best token");
            assertTrue(t.bytes().isPresent());
        }
    }

    @Test
    void errorsBecomeTheSdksExceptionsWithOurMessage() {
        BadRequestException e = assertThrows(BadRequestException.class, () -> client.chat().completions().create(
                ChatCompletionCreateParams.builder().model("tiny-random").addUserMessage("Hi").topP(5.0).build()));
        assertEquals(400, e.statusCode());
        assertTrue(e.getMessage().contains("'top_p' must be in (0, 1]"), e.getMessage());
        assertTrue(e.body().toString().contains("param=top_p"), "the SDK reads our error object: " + e.body());
    }

    @Test
    void aFullQueueIsTheSdksRateLimitException() throws Exception {
        PacedEngine engine = new PacedEngine(3, 1, true);
        try (OpenAiServer busy = new OpenAiServer(engine, new ServerDefaults("p", 16, 0.0, 0), ServerOptions.local(0).withQueue(0))) {
            busy.start();
            OpenAIClient c = OpenAIOkHttpClient.builder().baseUrl("http://127.0.0.1:" + busy.port() + "/v1").apiKey("x").maxRetries(0).build();
            var params = ChatCompletionCreateParams.builder().model("p").addUserMessage("Hi").build();
            var first = c.async().chat().completions().create(params);
            ServerOperationsTest.waitFor("the first request to generate", () -> engine.started.get() == 1);
            RateLimitException e = assertThrows(RateLimitException.class, () -> c.chat().completions().create(params));
            assertEquals(429, e.statusCode());
            assertTrue(e.headers().values("Retry-After").size() == 1, e.headers().toString());
            engine.gate.release();
            assertEquals("w0 w1 w2 ", first.get().choices().getFirst().message().content().orElse(""));
            c.close();
        }
    }
}
