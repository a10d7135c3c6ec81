package dev.kimivl.server;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.kimivl.model.KimiVL;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Base64;

import static org.junit.jupiter.api.Assertions.*;

/** The HTTP API on loopback with the repo's tiny-random model: shapes of responses, streaming, images, errors. */
class OpenAiServerTest {
    static final ObjectMapper JSON = new ObjectMapper();
    static KimiVL model;
    static OpenAiServer server;
    static HttpClient client;

    @BeforeAll
    static void start() throws Exception {
        model = KimiVL.open(Path.of("../models/tiny-random"));
        server = new OpenAiServer(model, new ServerDefaults("tiny-random", 16, 0.0, 256), "127.0.0.1", 0);
        server.start();
        client = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
    }

    @AfterAll
    static void stop() {
        server.close();
        model.close();
    }

    static HttpResponse<String> post(String path, String body) throws Exception {
        return client.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + server.port() + path))
                .timeout(Duration.ofSeconds(60)).header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofString());
    }

    @Test
    void listsTheModel() throws Exception {
        var r = client.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + server.port() + "/v1/models")).build(), HttpResponse.BodyHandlers.ofString());
        assertEquals(200, r.statusCode());
        assertEquals("tiny-random", JSON.readTree(r.body()).at("/data/0/id").asText());
    }

    @Test
    void completesAChatLikeTheGreedyCli() throws Exception {
        var r = post("/v1/chat/completions", """
                {"model": "tiny-random", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 6, "temperature": 0}""");
        assertEquals(200, r.statusCode(), r.body());
        JsonNode j = JSON.readTree(r.body());
        assertEquals("chat.completion", j.get("object").asText());
        assertEquals("assistant", j.at("/choices/0/message/role").asText());
        assertTrue(j.at("/choices/0/finish_reason").asText().matches("stop|length"));
        assertTrue(j.at("/usage/prompt_tokens").asInt() > 5);
        assertTrue(j.at("/usage/completion_tokens").asInt() <= 6);
        // the same request again gives the same text (greedy)
        assertEquals(j.at("/choices/0/message/content").asText(),
                JSON.readTree(post("/v1/chat/completions", """
                        {"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 6, "temperature": 0}""").body()).at("/choices/0/message/content").asText());
    }

    @Test
    void streamsChunksThatAddUpToTheAnswer() throws Exception {
        String req = """
                {"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 6, "temperature": 0%s}""";
        String whole = JSON.readTree(post("/v1/chat/completions", req.formatted("")).body()).at("/choices/0/message/content").asText();
        var r = post("/v1/chat/completions", req.formatted(", \"stream\": true, \"stream_options\": {\"include_usage\": true}"));
        assertEquals(200, r.statusCode());
        assertTrue(r.headers().firstValue("Content-Type").orElse("").startsWith("text/event-stream"));
        StringBuilder text = new StringBuilder();
        String finish = null;
        boolean done = false, usage = false;
        for (String line : r.body().split("\n")) {
            if (!line.startsWith("data: ")) continue;
            String data = line.substring(6);
            if (data.equals("[DONE]")) { done = true; continue; }
            JsonNode c = JSON.readTree(data);
            assertEquals("chat.completion.chunk", c.get("object").asText());
            if (c.has("usage")) usage = true;
            if (c.get("choices").isEmpty()) continue;
            text.append(c.at("/choices/0/delta/content").asText(""));
            if (!c.at("/choices/0/finish_reason").isNull()) finish = c.at("/choices/0/finish_reason").asText();
        }
        assertTrue(done && usage);
        assertNotNull(finish);
        assertEquals(whole, text.toString());
    }

    @Test
    void acceptsImagesAsDataUrls() throws Exception {
        String b64 = Base64.getEncoder().encodeToString(Files.readAllBytes(Path.of("../examples/shapes.png")));
        var r = post("/v1/chat/completions", """
                {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,%s"}},
                 {"type": "text", "text": "What is this?"}]}], "max_tokens": 4}""".formatted(b64));
        assertEquals(200, r.statusCode(), r.body());
        assertTrue(JSON.readTree(r.body()).at("/usage/prompt_tokens").asInt() > 35, "the image's 35 tokens are in the prompt");
    }

    /**
     * A photo over 15 MB: its base64 passes Jackson's default 20M-character string limit, which once refused the
     * request as "not valid JSON". The file is examples/shapes.png with 16 MB of text metadata (a tEXt chunk, as
     * camera and editor metadata is), so the tiny model's prompt stays small while the request is as large as a photo's.
     */
    @Test
    void acceptsAPhotoOver15MB() throws Exception {
        byte[] png = Files.readAllBytes(Path.of("../examples/shapes.png"));
        byte[] text = ("Comment\0" + "x".repeat(16 << 20)).getBytes(java.nio.charset.StandardCharsets.ISO_8859_1);
        java.io.ByteArrayOutputStream chunk = new java.io.ByteArrayOutputStream();
        java.io.DataOutputStream d = new java.io.DataOutputStream(chunk);
        d.writeInt(text.length);
        java.util.zip.CRC32 crc = new java.util.zip.CRC32();
        crc.update("tEXt".getBytes(java.nio.charset.StandardCharsets.US_ASCII));
        crc.update(text);
        d.writeBytes("tEXt");
        d.write(text);
        d.writeInt((int) crc.getValue());
        int afterIhdr = 8 + 4 + 4 + 13 + 4;             // signature, then IHDR's length, type, 13 data bytes and CRC
        java.io.ByteArrayOutputStream big = new java.io.ByteArrayOutputStream();
        big.write(png, 0, afterIhdr);
        big.write(chunk.toByteArray());
        big.write(png, afterIhdr, png.length - afterIhdr);
        assertTrue(big.size() > 16_000_000);
        String b64 = Base64.getEncoder().encodeToString(big.toByteArray());
        assertTrue(b64.length() > 20_000_000, "over Jackson's default string limit");
        var r = post("/v1/chat/completions", """
                {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,%s"}},
                 {"type": "text", "text": "What is this?"}]}], "max_tokens": 2}""".formatted(b64));
        assertEquals(200, r.statusCode(), r.body());
        assertEquals(JSON.readTree(post("/v1/chat/completions", """
                {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,%s"}},
                 {"type": "text", "text": "What is this?"}]}], "max_tokens": 2}""".formatted(Base64.getEncoder().encodeToString(png)))
                .body()).at("/usage/prompt_tokens").asInt(), JSON.readTree(r.body()).at("/usage/prompt_tokens").asInt(),
                "the same pixels, the same prompt");
    }

    @Test
    void badRequestsGetOpenAiErrorsNamingTheField() throws Exception {
        var r = post("/v1/chat/completions", "{not json");
        assertEquals(400, r.statusCode());
        assertTrue(JSON.readTree(r.body()).at("/error/message").asText().contains("not valid JSON"));

        r = post("/v1/chat/completions", "{\"messages\": []}");
        assertEquals(400, r.statusCode());
        assertEquals("messages", JSON.readTree(r.body()).at("/error/param").asText());

        r = post("/v1/chat/completions", """
                {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://example.com/x.png"}}]}]}""");
        assertEquals(400, r.statusCode());
        assertEquals("messages[0].content[0].image_url", JSON.readTree(r.body()).at("/error/param").asText());

        r = post("/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"temperature\": -1}");
        assertEquals(400, r.statusCode());
        assertTrue(JSON.readTree(r.body()).at("/error/message").asText().contains("temperature"));
        assertEquals("temperature", JSON.readTree(r.body()).at("/error/param").asText());
    }

    @Test
    void aPromptOverTheContextIsContextLengthExceeded() throws Exception {
        String longText = "word ".repeat(400);
        var r = post("/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"" + longText + "\"}], \"stream\": true}");
        assertEquals(400, r.statusCode());
        assertEquals("context_length_exceeded", JSON.readTree(r.body()).at("/error/code").asText());
    }

    @Test
    void wrongMethodIs405() throws Exception {
        var r = client.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + server.port() + "/v1/chat/completions")).GET().build(), HttpResponse.BodyHandlers.ofString());
        assertEquals(405, r.statusCode());
        assertEquals("invalid_request_error", JSON.readTree(r.body()).at("/error/type").asText());
    }

    @Test
    void aSecondTurnReportsItsCachedTokensAndMetricsCountTheHit() throws Exception {
        String turn1 = "[{\"role\": \"system\", \"content\": \"Answer in one word.\"}, {\"role\": \"user\", \"content\": \"Which shape is round?\"}]";
        JsonNode r1 = JSON.readTree(post("/v1/chat/completions", "{\"messages\": " + turn1 + ", \"max_tokens\": 6, \"temperature\": 0}").body());
        String answer = r1.at("/choices/0/message/content").asText();
        String turn2 = turn1.substring(0, turn1.length() - 1) + ", {\"role\": \"assistant\", \"content\": " + JSON.writeValueAsString(answer)
                + "}, {\"role\": \"user\", \"content\": \"And which has corners?\"}]";
        var r = post("/v1/chat/completions", "{\"messages\": " + turn2 + ", \"max_tokens\": 6, \"temperature\": 0, \"stream\": true,"
                + " \"stream_options\": {\"include_usage\": true}}");
        assertEquals(200, r.statusCode(), r.body());
        JsonNode usage = null;
        for (String line : r.body().split("\n")) {
            if (line.startsWith("data: {") && line.contains("\"usage\":{")) usage = JSON.readTree(line.substring(6)).get("usage");
        }
        assertNotNull(usage, r.body());
        int cached = usage.at("/prompt_tokens_details/cached_tokens").asInt();
        assertTrue(cached >= r1.at("/usage/prompt_tokens").asInt(), "the first turn's prompt is reused: " + usage);
        assertTrue(cached < usage.get("prompt_tokens").asInt());

        String metrics = client.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + server.port() + "/metrics")).build(),
                HttpResponse.BodyHandlers.ofString()).body();
        assertTrue(ServerOperationsTest.sample(metrics, "kimivl_prefix_cache_lookups_total{result=\"hit\"}") >= 1, metrics);
        assertTrue(ServerOperationsTest.sample(metrics, "kimivl_prompt_tokens_cached_total") >= cached, metrics);
    }

    @Test
    void aTextCompletionIsTheGreedyGeneratorOnTheRawPrompt() throws Exception {
        String prompt = "<|im_user|>user<|im_middle|>Hello<|im_end|><|im_assistant|>assistant<|im_middle|>";
        var r = post("/v1/completions", "{\"prompt\": " + JSON.writeValueAsString(prompt) + ", \"max_tokens\": 8, \"temperature\": 0}");
        assertEquals(200, r.statusCode(), r.body());
        JsonNode j = JSON.readTree(r.body());
        int[] ids = new dev.kimivl.text.PromptEncoder(model.tokenizer()).encode(prompt).ids();
        dev.kimivl.generate.Generator.Result ref = model.generator(256).generate(model.languageModel().embed(ids), ids,
                dev.kimivl.generate.SamplingParams.greedy(8), null);
        assertEquals(ref.text(), j.at("/choices/0/text").asText());
        assertEquals(ids.length, j.at("/usage/prompt_tokens").asInt(), "special tokens in the prompt are recognised");
        // the same prompt as token ids, streamed: the same text
        StringBuilder text = new StringBuilder();
        var s = post("/v1/completions", "{\"prompt\": " + JSON.writeValueAsString(ids) + ", \"max_tokens\": 8, \"temperature\": 0, \"stream\": true}");
        for (String line : s.body().split("\n")) {
            if (line.startsWith("data: {")) text.append(JSON.readTree(line.substring(6)).at("/choices/0/text").asText());
        }
        assertEquals(ref.text(), text.toString());
        // a token id outside the vocabulary names the prompt
        var bad = post("/v1/completions", "{\"prompt\": [1, 99999999]}");
        assertEquals(400, bad.statusCode(), bad.body());
        assertEquals("prompt", JSON.readTree(bad.body()).at("/error/param").asText());
    }
}
