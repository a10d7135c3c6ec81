package dev.kimivl.server;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.kimivl.model.KimiVL;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/**
 * {@code n}, {@code logprobs}/{@code top_logprobs}, {@code response_format} and {@code ignore_eos} over HTTP on the
 * tiny random model, served one request at a time ({@code --parallel 1}) and with continuous batching (4).
 */
class ChoicesLogprobsJsonTest {
    static final ObjectMapper JSON = new ObjectMapper();
    static KimiVL model;
    static OpenAiServer sequential, batching;
    static HttpClient client;

    @BeforeAll
    static void start() throws Exception {
        model = KimiVL.open(Path.of("../models/tiny-random"));
        ServerDefaults d = new ServerDefaults("tiny-random", 16, 0.0, 1024);
        sequential = new OpenAiServer(model, d, ServerOptions.local(0));
        batching = new OpenAiServer(model, d, ServerOptions.local(0).withParallel(4, 64));
        sequential.start();
        batching.start();
        client = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
    }

    @AfterAll
    static void stop() {
        sequential.close();
        batching.close();
        model.close();
    }

    static HttpResponse<String> post(int parallel, String path, String body) throws Exception {
        int port = (parallel == 1 ? sequential : batching).port();
        return client.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + path)).timeout(Duration.ofSeconds(60))
                .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofString());
    }

    static JsonNode ok(HttpResponse<String> r) throws Exception {
        assertEquals(200, r.statusCode(), r.body());
        return JSON.readTree(r.body());
    }

    static final String ASK = "\"messages\": [{\"role\": \"user\", \"content\": \"Name a colour.\"}]";

    @ParameterizedTest(name = "parallel {0}")
    @ValueSource(ints = {1, 4})
    void nChoicesEachWithItsOwnSeedTheFirstAsForNOne(int parallel) throws Exception {
        JsonNode three = ok(post(parallel, "/v1/chat/completions", "{" + ASK + ", \"n\": 3, \"temperature\": 1.0, \"seed\": 5, \"max_tokens\": 12}"));
        JsonNode one = ok(post(parallel, "/v1/chat/completions", "{" + ASK + ", \"temperature\": 1.0, \"seed\": 5, \"max_tokens\": 12}"));
        JsonNode six = ok(post(parallel, "/v1/chat/completions", "{" + ASK + ", \"temperature\": 1.0, \"seed\": 6, \"max_tokens\": 12}"));
        assertEquals(3, three.get("choices").size());
        List<String> texts = new ArrayList<>();
        int completion = 0;
        for (int i = 0; i < 3; i++) {
            assertEquals(i, three.at("/choices/" + i + "/index").asInt());
            texts.add(three.at("/choices/" + i + "/message/content").asText());
        }
        assertEquals(one.at("/choices/0/message/content").asText(), texts.get(0), "choice 0 is the n = 1 answer of the same seed");
        assertEquals(six.at("/choices/0/message/content").asText(), texts.get(1), "choice 1 is the answer of seed + 1");
        assertNotEquals(texts.get(0), texts.get(2), "the choices are sampled apart");
        assertEquals(one.at("/usage/prompt_tokens").asInt(), three.at("/usage/prompt_tokens").asInt(), "the prompt counts once");
        assertTrue(three.at("/usage/completion_tokens").asInt() > one.at("/usage/completion_tokens").asInt());

        // streamed: every choice's deltas come with their index, and each ends with its finish_reason
        var r = post(parallel, "/v1/chat/completions", "{" + ASK + ", \"n\": 2, \"temperature\": 1.0, \"seed\": 5, \"max_tokens\": 12, \"stream\": true}");
        StringBuilder[] streamed = {new StringBuilder(), new StringBuilder()};
        int[] finished = new int[2];
        for (JsonNode e : ServerApiTest.events(r)) {
            for (JsonNode c : e.get("choices")) {
                int i = c.get("index").asInt();
                if (c.at("/delta/content").isTextual()) streamed[i].append(c.at("/delta/content").asText());
                if (!c.get("finish_reason").isNull()) finished[i]++;
            }
        }
        assertEquals(texts.get(0), streamed[0].toString());
        assertEquals(texts.get(1), streamed[1].toString());
        assertArrayEquals(new int[]{1, 1}, finished);
    }

    @ParameterizedTest(name = "parallel {0}")
    @ValueSource(ints = {1, 4})
    void chatLogprobsAreOpenAisShapeAndGreedyPicksTheTopOne(int parallel) throws Exception {
        JsonNode j = ok(post(parallel, "/v1/chat/completions", "{" + ASK + ", \"max_tokens\": 10, \"temperature\": 0, \"logprobs\": true, \"top_logprobs\": 3}"));
        JsonNode content = j.at("/choices/0/logprobs/content");
        assertEquals(j.at("/usage/completion_tokens").asInt(), content.size(), "one entry per generated token: " + j);
        assertTrue(j.at("/choices/0/logprobs/refusal").isNull());
        for (JsonNode t : content) {
            assertTrue(t.get("token").isTextual() && t.get("bytes").isArray());
            double lp = t.get("logprob").asDouble();
            assertTrue(lp <= 0, "a log-probability: " + lp);
            JsonNode top = t.get("top_logprobs");
            assertEquals(3, top.size());
            assertEquals(lp, top.get(0).get("logprob").asDouble(), 0.0, "greedy takes the most likely token");
            assertEquals(t.get("token").asText(), top.get(0).get("token").asText());
            assertTrue(top.get(0).get("logprob").asDouble() >= top.get(1).get("logprob").asDouble()
                    && top.get(1).get("logprob").asDouble() >= top.get(2).get("logprob").asDouble(), "best first: " + top);
        }
        // without top_logprobs: each token's own only
        JsonNode bare = ok(post(parallel, "/v1/chat/completions", "{" + ASK + ", \"max_tokens\": 4, \"temperature\": 0, \"logprobs\": true}"));
        assertEquals(0, bare.at("/choices/0/logprobs/content/0/top_logprobs").size());
        assertTrue(ok(post(parallel, "/v1/chat/completions", "{" + ASK + ", \"max_tokens\": 2}")).at("/choices/0/logprobs").isNull());

        // streamed: the entries of all chunks are the non-streamed ones (to rounding: this prompt now comes from the
        // prefix cache, whose prefill ran in other shapes)
        var r = post(parallel, "/v1/chat/completions", "{" + ASK + ", \"max_tokens\": 10, \"temperature\": 0, \"logprobs\": true, \"top_logprobs\": 3,"
                + " \"stream\": true, \"stream_options\": {\"include_usage\": true}}");
        List<JsonNode> streamed = new ArrayList<>();
        for (JsonNode e : ServerApiTest.events(r)) for (JsonNode c : e.get("choices")) c.at("/logprobs/content").forEach(streamed::add);
        assertEquals(content.size(), streamed.size());
        for (int i = 0; i < content.size(); i++) {
            assertEquals(content.get(i).get("token").asText(), streamed.get(i).get("token").asText());
            assertEquals(content.get(i).get("logprob").asDouble(), streamed.get(i).get("logprob").asDouble(), 1e-4);
        }
    }

    @ParameterizedTest(name = "parallel {0}")
    @ValueSource(ints = {1, 4})
    void completionLogprobsAreTheLegacyShape(int parallel) throws Exception {
        JsonNode j = ok(post(parallel, "/v1/completions", "{\"prompt\": \"The sky is\", \"max_tokens\": 8, \"temperature\": 0, \"logprobs\": 2}"));
        JsonNode lp = j.at("/choices/0/logprobs");
        int n = j.at("/usage/completion_tokens").asInt();
        assertEquals(n, lp.get("tokens").size());
        assertEquals(n, lp.get("token_logprobs").size());
        assertEquals(n, lp.get("top_logprobs").size());
        assertEquals(n, lp.get("text_offset").size());
        int offset = 0;
        for (int i = 0; i < n; i++) {
            assertEquals(offset, lp.get("text_offset").get(i).asInt(), "offsets follow the token texts");
            offset += lp.get("tokens").get(i).asText().length();
            assertTrue(lp.get("top_logprobs").get(i).size() >= 1 && lp.get("top_logprobs").get(i).size() <= 2);
            assertTrue(lp.get("top_logprobs").get(i).has(lp.get("tokens").get(i).asText()), "greedy: the token is among the best");
        }
    }

    @ParameterizedTest(name = "parallel {0}")
    @ValueSource(ints = {1, 4})
    void responseFormatsGiveJsonThatParsesAndFollowsTheSchema(int parallel) throws Exception {
        String schema = """
                {"type": "object", "properties": {"colour": {"type": "string", "enum": ["red", "green", "blue"]},
                 "count": {"type": "integer"}, "shapes": {"type": "array", "items": {"type": "string"}}},
                 "required": ["colour", "count", "shapes"]}""";
        for (long seed = 1; seed <= 3; seed++) {
            JsonNode j = ok(post(parallel, "/v1/chat/completions", "{" + ASK + ", \"max_tokens\": 80, \"temperature\": 0.8, \"seed\": " + seed
                    + ", \"response_format\": {\"type\": \"json_schema\", \"json_schema\": {\"name\": \"answer\", \"strict\": true, \"schema\": " + schema + "}}}"));
            String content = j.at("/choices/0/message/content").asText();
            JsonNode v = JSON.readTree(content);
            assertTrue(v.isObject(), content);
            assertTrue(v.get("colour").asText().matches("red|green|blue"), content);
            assertTrue(v.get("count").isIntegralNumber(), content);
            assertTrue(v.get("shapes").isArray(), content);
            v.get("shapes").forEach(s -> assertTrue(s.isTextual(), content));
        }
        JsonNode o = ok(post(parallel, "/v1/chat/completions", "{" + ASK + ", \"max_tokens\": 40, \"temperature\": 0.8, \"seed\": 9,"
                + " \"response_format\": {\"type\": \"json_object\"}}"));
        assertTrue(JSON.readTree(o.at("/choices/0/message/content").asText()).isObject(), o.toString());
        // with the penalties too (they change the logits, never the constraint)
        JsonNode p = ok(post(parallel, "/v1/chat/completions", "{" + ASK + ", \"max_tokens\": 40, \"temperature\": 0, \"presence_penalty\": 1.5,"
                + " \"frequency_penalty\": 1.0, \"response_format\": {\"type\": \"json_object\"}}"));
        assertTrue(JSON.readTree(p.at("/choices/0/message/content").asText()).isObject(), p.toString());
    }

    @ParameterizedTest(name = "parallel {0}")
    @ValueSource(ints = {1, 4})
    void ignoreEosRunsToMaxTokens(int parallel) throws Exception {
        for (long seed = 1; seed <= 3; seed++) {
            JsonNode j = ok(post(parallel, "/v1/chat/completions", "{" + ASK + ", \"max_tokens\": 30, \"temperature\": 1.0, \"seed\": " + seed + ", \"ignore_eos\": true}"));
            assertEquals(30, j.at("/usage/completion_tokens").asInt(), j.toString());
            assertEquals("length", j.at("/choices/0/finish_reason").asText());
        }
    }
}
