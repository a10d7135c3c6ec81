package dev.kimivl.server;

import com.fasterxml.jackson.databind.JsonNode;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.util.List;

import static dev.kimivl.server.ServerApiTest.JSON;
import static dev.kimivl.server.ServerApiTest.assertError;
import static dev.kimivl.server.ServerApiTest.events;
import static dev.kimivl.server.ServerApiTest.request;
import static dev.kimivl.server.ServerApiTest.send;
import static org.junit.jupiter.api.Assertions.*;

/** {@code POST /v1/completions} (legacy text completions) over the scripted engine: shapes, streaming, echo, errors. */
class CompletionsApiTest {
    static final ServerApiTest.Scripted engine = new ServerApiTest.Scripted(false);
    static OpenAiServer server;

    @BeforeAll
    static void start() throws Exception {
        server = new OpenAiServer(engine, new ServerDefaults("scripted", 16, 0.0, 0), ServerOptions.local(0));
        server.start();
    }

    @AfterAll
    static void stop() { server.close(); }

    static HttpResponse<String> complete(String body) throws Exception {
        return send(request(server, "/v1/completions").header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(body)).build());
    }

    @Test
    void aPromptIsCompletedAsATextCompletion() throws Exception {
        var r = complete("{\"model\": \"scripted\", \"prompt\": \"Once upon a time\", \"max_tokens\": 5}");
        assertEquals(200, r.statusCode(), r.body());
        JsonNode j = JSON.readTree(r.body());
        assertTrue(j.get("id").asText().startsWith("cmpl-"));
        assertEquals("text_completion", j.get("object").asText());
        assertEquals("scripted", j.get("model").asText());
        JsonNode c = j.at("/choices/0");
        assertEquals("Fine, thanks", c.get("text").asText());
        assertEquals(0, c.get("index").asInt());
        assertTrue(c.get("logprobs").isNull());
        assertEquals("stop", c.get("finish_reason").asText());
        assertEquals(7, j.at("/usage/prompt_tokens").asInt());
        assertEquals(2, j.at("/usage/completion_tokens").asInt());
        assertEquals(0, j.at("/usage/prompt_tokens_details/cached_tokens").asInt());
        assertEquals("Once upon a time", engine.lastRaw, "the prompt goes to the engine as it is, without a chat template");
        assertEquals(5, engine.lastSampling.maxTokens());
    }

    @Test
    void promptsAsTokenIdsOrOneStringInAnArrayAndEcho() throws Exception {
        assertEquals(200, complete("{\"prompt\": [\"Hello\"]}").statusCode());
        assertEquals("Hello", engine.lastRaw);
        var r = complete("{\"prompt\": [5, 6, 7], \"echo\": true}");
        assertEquals(200, r.statusCode(), r.body());
        assertEquals("t5 t6 t7", engine.lastRaw);
        assertEquals("t5 t6 t7Fine, thanks", JSON.readTree(r.body()).at("/choices/0/text").asText(), "echo repeats the prompt");
        assertEquals(200, complete("{\"prompt\": [[8, 9]]}").statusCode());
        assertEquals("t8 t9", engine.lastRaw);
        r = complete("{\"prompt\": \"Say\", \"echo\": true}");
        assertEquals("SayFine, thanks", JSON.readTree(r.body()).at("/choices/0/text").asText());
    }

    @Test
    void streamsTextCompletionChunks() throws Exception {
        List<JsonNode> ev = events(complete("{\"prompt\": \"Say\", \"stream\": true, \"echo\": true, \"stream_options\": {\"include_usage\": true}}"));
        StringBuilder text = new StringBuilder();
        String finish = null;
        for (JsonNode c : ev) {
            assertEquals("text_completion", c.get("object").asText());
            assertTrue(c.get("id").asText().startsWith("cmpl-"));
            if (c.get("choices").isEmpty()) continue;
            text.append(c.at("/choices/0/text").asText());
            if (!c.at("/choices/0/finish_reason").isNull()) finish = c.at("/choices/0/finish_reason").asText();
        }
        assertEquals("SayFine, thanks", text.toString());
        assertEquals("stop", finish);
        JsonNode usage = ev.getLast();
        assertTrue(usage.get("choices").isEmpty());
        assertEquals(9, usage.at("/usage/total_tokens").asInt());
        for (JsonNode c : ev.subList(0, ev.size() - 1)) assertTrue(c.get("usage").isNull());
    }

    @Test
    void badRequestsNameTheField() throws Exception {
        assertError(complete("{}"), 400, "prompt", null, "'prompt' is required");
        assertError(complete("{\"prompt\": 5}"), 400, "prompt", null, "must be a string or an array of token ids", "the number 5");
        assertError(complete("{\"prompt\": \"\"}"), 400, "prompt", null, "must not be empty");
        assertError(complete("{\"prompt\": []}"), 400, "prompt", null, "must not be an empty array");
        assertError(complete("{\"prompt\": [1, \"a\"]}"), 400, "prompt[1]", null, "token id", "the string \"a\"");
        assertError(complete("{\"prompt\": [1, -2]}"), 400, "prompt[1]", null, "token id", "-2");
        assertError(complete("{\"prompt\": [\"a\", \"b\"]}"), 400, "prompt", "unsupported_parameter", "more than one prompt");
        assertError(complete("{\"prompt\": \"a\", \"logprobs\": 21}"), 400, "logprobs", null, "0..20");
        assertError(complete("{\"prompt\": \"a\", \"logprobs\": true}"), 400, "logprobs", null, "must be an integer");
        assertError(complete("{\"prompt\": \"a\", \"logprobs\": 2, \"echo\": true}"), 400, "logprobs", "unsupported_parameter", "with echo");
        assertError(complete("{\"prompt\": \"a\", \"best_of\": 2}"), 400, "best_of", "unsupported_parameter", "best_of");
        assertError(complete("{\"prompt\": \"a\", \"n\": 20}"), 400, "n", null, "1..16");
        assertError(complete("{\"prompt\": \"a\", \"suffix\": \"end\"}"), 400, "suffix", "unsupported_parameter", "suffix");
        assertError(complete("{\"prompt\": \"a\", \"echo\": \"yes\"}"), 400, "echo", null, "must be a boolean");
        assertError(complete("{\"prompt\": \"a\", \"max_tokens\": -1}"), 400, "max_tokens", null, "positive");
        assertError(complete("{\"prompt\": \"a\", \"top_p\": 2}"), 400, "top_p", null, "(0, 1]");
        assertError(complete("{\"prompt\": \"a\", \"stream_options\": {\"include_usage\": true}}"), 400, "stream_options", null, "only allowed");
        // the neutral values clients send by default are fine
        assertEquals(200, complete("{\"prompt\": \"a\", \"logprobs\": null, \"best_of\": 1, \"suffix\": null, \"echo\": false, \"n\": 1}").statusCode());
    }
}
