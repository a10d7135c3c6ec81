package dev.kimivl.server;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.kimivl.generate.Generator;
import dev.kimivl.generate.SamplingParams;
import dev.kimivl.text.ChatMessage;
import dev.kimivl.vision.LoadedImage;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayInputStream;
import java.net.BindException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The HTTP API's contract (validation, errors, routing, authentication, limits, streaming shape, reasoning) over a
 * scripted engine, so that each case is fast and can use output the tiny random model never gives.
 */
class ServerApiTest {
    static final ObjectMapper JSON = new ObjectMapper();
    static final String HELLO = "\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}]";
    static final HttpClient client = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();

    /** Answers with fixed pieces of text and remembers what it was asked. */
    static final class Scripted implements Engine {
        final boolean vision;
        volatile List<String> pieces = List.of("Fine", ", thanks");
        volatile boolean failAfterPieces;
        volatile List<ChatMessage> lastMessages;
        volatile String lastRaw;
        volatile SamplingParams lastSampling;

        Scripted(boolean vision) { this.vision = vision; }

        @Override public boolean acceptsImages() { return vision; }

        @Override public Job prepare(List<ChatMessage> messages, List<LoadedImage> images) {
            lastMessages = messages;
            return job();
        }

        @Override public Job prepareRaw(String text, int[] ids) {
            lastRaw = text != null ? text : detokenize(ids);
            return job();
        }

        /** "t1 t2 …": the ids as words, so that a test can see which came. */
        @Override public String detokenize(int[] ids) {
            StringBuilder b = new StringBuilder();
            for (int id : ids) b.append(b.isEmpty() ? "" : " ").append('t').append(id);
            return b.toString();
        }

        private Job job() {
            List<String> out = pieces;
            return (sampling, listener) -> {
                lastSampling = sampling;
                if (listener != null) out.forEach(listener::onText);
                if (failAfterPieces) throw new IllegalStateException("scripted failure");
                return new Generator.Result(new int[out.size()], String.join("", out), Generator.FinishReason.STOP, 7, 0, 0);
            };
        }
    }

    static Scripted engine = new Scripted(true);
    static OpenAiServer server;

    @BeforeAll
    static void start() throws Exception {
        server = new OpenAiServer(engine, new ServerDefaults("scripted", 16, 0.0, 0), ServerOptions.local(0));
        server.start();
    }

    @AfterAll
    static void stop() { server.close(); }

    static HttpRequest.Builder request(OpenAiServer s, String path) {
        return HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + s.port() + path)).timeout(Duration.ofSeconds(30));
    }

    static HttpResponse<String> send(HttpRequest r) throws Exception { return client.send(r, HttpResponse.BodyHandlers.ofString()); }

    static HttpResponse<String> chat(String body) throws Exception {
        return send(request(server, "/v1/chat/completions").header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(body)).build());
    }

    /** Checks an OpenAI error object: status, type, param (null: JSON null), code, and words of the message. */
    static JsonNode assertError(HttpResponse<String> r, int status, String param, String code, String... says) throws Exception {
        assertEquals(status, r.statusCode(), r.body());
        assertTrue(r.headers().firstValue("Content-Type").orElse("").startsWith("application/json"), "an error is JSON, not a page");
        JsonNode e = JSON.readTree(r.body()).get("error");
        assertNotNull(e, r.body());
        assertEquals("invalid_request_error", e.get("type").asText());
        if (param == null) assertTrue(e.get("param").isNull(), r.body()); else assertEquals(param, e.get("param").asText(), r.body());
        if (code == null) assertTrue(e.get("code").isNull(), r.body()); else assertEquals(code, e.get("code").asText(), r.body());
        for (String s : says) assertTrue(e.get("message").asText().contains(s), "'" + s + "' in: " + e.get("message").asText());
        return e;
    }

    // ---- values out of range: param is the API's field name -------------------------------------------------

    @Test
    void outOfRangeValuesNameTheFieldAsTheApiSpellsIt() throws Exception {
        assertError(chat("{" + HELLO + ", \"max_tokens\": -5}"), 400, "max_tokens", null, "'max_tokens'", "-5");
        assertError(chat("{" + HELLO + ", \"max_completion_tokens\": 0}"), 400, "max_completion_tokens", null, "'max_completion_tokens'", "positive");
        assertError(chat("{" + HELLO + ", \"top_p\": 5}"), 400, "top_p", null, "'top_p' must be in (0, 1]", "5.0");
        assertError(chat("{" + HELLO + ", \"top_k\": -3}"), 400, "top_k", null, "'top_k'");
        assertError(chat("{" + HELLO + ", \"min_p\": 1}"), 400, "min_p", null, "'min_p'");
        assertError(chat("{" + HELLO + ", \"repetition_penalty\": 0}"), 400, "repetition_penalty", null, "'repetition_penalty'");
        assertError(chat("{" + HELLO + ", \"temperature\": -1}"), 400, "temperature", null, "'temperature'");
        assertError(chat("{" + HELLO + ", \"stop\": [\"\"]}"), 400, "stop", null, "empty");
    }

    // ---- wrong JSON types are 400s naming the field; unknown fields are ignored -------------------------------

    @Test
    void wrongTypesAre400sNamingTheField() throws Exception {
        assertError(chat("{" + HELLO + ", \"stream\": \"yes\"}"), 400, "stream", null, "'stream' must be a boolean", "the string \"yes\"");
        assertError(chat("{\"messages\": [{\"role\": \"robot\", \"content\": \"Hi\"}]}"), 400, "messages[0].role", null,
                "must be one of system, developer, user, assistant", "'robot'");
        assertError(chat("{\"messages\": [{\"role\": 1, \"content\": \"Hi\"}]}"), 400, "messages[0].role", null, "must be a string", "the number 1");
        assertError(chat("{\"messages\": [{\"role\": \"user\", \"content\": 5}]}"), 400, "messages[0].content", null, "string or an array");
        assertError(chat("{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": 3}]}]}"), 400,
                "messages[0].content[0].text", null, "must be a string");
        assertError(chat("{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"image_url\", \"image_url\": {\"url\": 7}}]}]}"), 400,
                "messages[0].content[0].image_url.url", null, "must be a string");
        assertError(chat("{\"messages\": {\"role\": \"user\"}}"), 400, "messages", null, "array", "an object");
        assertError(chat("{" + HELLO + ", \"temperature\": \"hot\"}"), 400, "temperature", null, "must be a number");
        assertError(chat("{" + HELLO + ", \"max_tokens\": 2.5}"), 400, "max_tokens", null, "must be an integer", "2.5");
        assertError(chat("{" + HELLO + ", \"max_tokens\": \"10\"}"), 400, "max_tokens", null, "must be an integer", "the string \"10\"");
        assertError(chat("{" + HELLO + ", \"stop\": 3}"), 400, "stop", null, "string or an array of strings");
        assertError(chat("{" + HELLO + ", \"stop\": [\"end\", 3]}"), 400, "stop[1]", null, "'stop[1]' must be a string", "the number 3");
        assertError(chat("{" + HELLO + ", \"model\": 3}"), 400, "model", null, "must be a string");
        assertError(chat("{" + HELLO + ", \"seed\": \"x\"}"), 400, "seed", null, "must be an integer");
        assertError(chat("{" + HELLO + ", \"stream\": true, \"stream_options\": {\"include_usage\": \"yes\"}}"), 400,
                "stream_options.include_usage", null, "must be a boolean");
        assertError(chat("[1, 2]"), 400, null, null, "must be a JSON object", "an array");
        assertError(chat("{not json"), 400, null, null, "not valid JSON");
    }

    @Test
    void choicesLogprobsPenaltiesAndResponseFormatsAreValidated() throws Exception {
        assertError(chat("{" + HELLO + ", \"n\": 0}"), 400, "n", null, "'n' must be in 1..16", "got 0");
        assertError(chat("{" + HELLO + ", \"n\": 17}"), 400, "n", null, "'n' must be in 1..16");
        assertError(chat("{" + HELLO + ", \"n\": \"2\"}"), 400, "n", null, "must be an integer");
        assertError(chat("{" + HELLO + ", \"logprobs\": 1}"), 400, "logprobs", null, "must be a boolean");
        assertError(chat("{" + HELLO + ", \"top_logprobs\": 3}"), 400, "top_logprobs", null, "needs 'logprobs': true");
        assertError(chat("{" + HELLO + ", \"logprobs\": true, \"top_logprobs\": 21}"), 400, "top_logprobs", null, "0..20");
        assertError(chat("{" + HELLO + ", \"presence_penalty\": 2.5}"), 400, "presence_penalty", null, "[-2, 2]");
        assertError(chat("{" + HELLO + ", \"frequency_penalty\": -3}"), 400, "frequency_penalty", null, "[-2, 2]");
        assertError(chat("{" + HELLO + ", \"response_format\": {\"type\": \"json_schema\"}}"), 400, "response_format.json_schema", null, "is required");
        assertError(chat("{" + HELLO + ", \"response_format\": {\"type\": \"json_schema\", \"json_schema\": {\"name\": \"x\", \"schema\": 5}}}"),
                400, "response_format.json_schema.schema", null, "a JSON Schema object");
        assertError(chat("{" + HELLO + ", \"response_format\": {\"type\": \"json_schema\", \"json_schema\": {\"name\": \"x\", \"strict\": \"yes\"}}}"),
                400, "response_format.json_schema.strict", null, "must be a boolean");
        assertError(chat("{" + HELLO + ", \"response_format\": {\"type\": \"yaml\"}}"), 400, "response_format.type", null, "text, json_object or json_schema");
        // a schema keyword constrained decoding cannot enforce is refused, named by its path (never silently ignored)
        assertError(chat("{" + HELLO + ", \"response_format\": {\"type\": \"json_schema\", \"json_schema\": {\"name\": \"x\", \"schema\": "
                        + "{\"type\": \"object\", \"properties\": {\"zip\": {\"type\": \"string\", \"pattern\": \"^[0-9]{5}$\"}}}}}}"),
                400, "response_format.json_schema.schema", null, "response_format.json_schema.schema.properties.zip.pattern is not supported");
        // n choices from an engine of scripted text: each choice in its place, usage counting the prompt once
        var r = chat("{" + HELLO + ", \"n\": 3}");
        assertEquals(200, r.statusCode(), r.body());
        var body = JSON.readTree(r.body());
        assertEquals(3, body.get("choices").size());
        for (int i = 0; i < 3; i++) {
            assertEquals(i, body.at("/choices/" + i + "/index").asInt());
            assertEquals("Fine, thanks", body.at("/choices/" + i + "/message/content").asText());
        }
    }

    @Test
    void unknownFieldsAreIgnoredAsOpenAiDoes() throws Exception {
        var r = chat("{" + HELLO + ", \"frobnicate\": 1, \"metadata\": {\"a\": \"b\"}, \"store\": false}");
        assertEquals(200, r.statusCode(), r.body());
        assertEquals("Fine, thanks", JSON.readTree(r.body()).at("/choices/0/message/content").asText());
    }

    @Test
    void featuresThisServerLacksAreRefusedNotIgnored() throws Exception {
        assertError(chat("{\"messages\": [{\"role\": \"tool\", \"content\": \"42\"}]}"), 400, "messages[0].role", "unsupported_parameter", "tool");
        // the neutral values clients send by default are fine
        assertEquals(200, chat("{" + HELLO + ", \"n\": 1, \"logprobs\": false, \"presence_penalty\": 0, \"frequency_penalty\": 0,"
                + " \"response_format\": {\"type\": \"text\"}, \"tools\": [], \"top_k\": -1}").statusCode());
    }

    @Test
    void anImageForATextOnlyModelNamesTheImage() throws Exception {
        try (OpenAiServer textOnly = new OpenAiServer(new Scripted(false), new ServerDefaults("t", 16, 0.0, 0), ServerOptions.local(0))) {
            textOnly.start();
            String b64 = Base64.getEncoder().encodeToString(Files.readAllBytes(Path.of("../examples/shapes.png")));
            var r = send(request(textOnly, "/v1/chat/completions").POST(HttpRequest.BodyPublishers.ofString("""
                    {"messages": [{"role": "user", "content": [{"type": "text", "text": "What?"},
                     {"type": "image_url", "image_url": {"url": "data:image/png;base64,%s"}}]}]}""".formatted(b64))).build());
            assertError(r, 400, "messages[0].content[1].image_url", null, "text only");
        }
    }

    // ---- the body limit: 413, the server's own, named -----------------------------------------------------------

    @Test
    void aBodyOverTheLimitIs413NamingTheLimit() throws Exception {
        try (OpenAiServer small = new OpenAiServer(engine, new ServerDefaults("s", 16, 0.0, 0), ServerOptions.local(0).withMaxBodyBytes(16 << 10))) {
            small.start();
            String body = "{" + HELLO + ", \"pad\": \"" + "x".repeat(20 << 10) + "\"}";
            // a declared Content-Length over the limit is refused before the body is read
            var r = send(request(small, "/v1/chat/completions").POST(HttpRequest.BodyPublishers.ofString(body)).build());
            assertError(r, 413, null, "request_too_large", "request body limit of 16384 bytes", body.length() + " bytes");
            // a chunked body (no length) is refused once it passes the limit
            r = send(request(small, "/v1/chat/completions")
                    .POST(HttpRequest.BodyPublishers.ofInputStream(() -> new ByteArrayInputStream(body.getBytes()))).build());
            assertError(r, 413, null, "request_too_large", "request body limit of 16384 bytes", "over 16384 bytes");
            // far over the limit: the body is left unread and the connection closed, so a client that sends again
            // must get a fresh connection and the same answer, not a broken one
            byte[] huge = new byte[(16 << 10) * 64];
            for (int i = 0; i < 4; i++) {
                r = send(request(small, "/v1/chat/completions").POST(HttpRequest.BodyPublishers.ofByteArray(huge)).build());
                assertError(r, 413, null, "request_too_large", huge.length + " bytes");
                assertEquals("close", r.headers().firstValue("Connection").orElse(null), "the client must not reuse the connection");
            }
            // just under the limit is fine
            assertEquals(200, send(request(small, "/v1/chat/completions").POST(HttpRequest.BodyPublishers.ofString(
                    "{" + HELLO + ", \"pad\": \"" + "x".repeat(15 << 10) + "\"}")).build()).statusCode());
        }
    }

    @Test
    void aStringLongerThanJacksonsDefaultLimitIsAccepted() throws Exception {
        // Jackson refuses strings over 20M characters unless told otherwise; the server's 64 MiB body limit is what counts
        var r = chat("{\"messages\": [{\"role\": \"user\", \"content\": \"" + "a".repeat(21_000_000) + "\"}]}");
        assertEquals(200, r.statusCode(), r.body().length() > 300 ? r.body().substring(0, 300) : r.body());
        assertEquals(21_000_000, engine.lastMessages.getFirst().text().length());
    }

    // ---- routing: every error is an OpenAI error object ---------------------------------------------------------

    @Test
    void unknownPathsAre404JsonErrors() throws Exception {
        assertError(send(request(server, "/nope").GET().build()), 404, null, "unknown_url", "Invalid URL (GET /nope)", "POST /v1/chat/completions");
        assertError(send(request(server, "/v1/completion").POST(HttpRequest.BodyPublishers.ofString("{}")).build()), 404, null, "unknown_url",
                "Invalid URL (POST /v1/completion)", "POST /v1/completions");
        // the JDK matches contexts by prefix: /v1/modelsX must not reach /v1/models
        assertError(send(request(server, "/v1/modelsX").GET().build()), 404, null, "unknown_url", "/v1/modelsX");
        assertError(send(request(server, "/index.html").GET().build()), 404, null, "unknown_url");
        // "/" is the chat page (ChatPageBrowserTest drives it); other methods there are the API's 405
        var page = send(request(server, "/").GET().build());
        assertEquals(200, page.statusCode());
        assertTrue(page.headers().firstValue("Content-Type").orElse("").startsWith("text/html"));
        assertEquals(405, send(request(server, "/").POST(HttpRequest.BodyPublishers.ofString("{}")).build()).statusCode());
    }

    @Test
    void aWrongMethodIsA405JsonError() throws Exception {
        var r = send(request(server, "/v1/chat/completions").GET().build());
        assertError(r, 405, null, "method_not_allowed", "GET is not allowed on /v1/chat/completions", "use POST");
        assertEquals("POST", r.headers().firstValue("Allow").orElse(null));
        assertError(send(request(server, "/health").DELETE().build()), 405, null, "method_not_allowed", "use GET");
    }

    @Test
    void healthAndModels() throws Exception {
        var r = send(request(server, "/health").GET().build());
        assertEquals(200, r.statusCode());
        assertEquals("ok", JSON.readTree(r.body()).get("status").asText());
        r = send(request(server, "/v1/models/scripted").GET().build());
        assertEquals(200, r.statusCode());
        assertEquals("scripted", JSON.readTree(r.body()).get("id").asText());
        assertError(send(request(server, "/v1/models/gpt-4o").GET().build()), 404, "model", "model_not_found", "'gpt-4o' does not exist", "'scripted'");
    }

    // ---- request fields -----------------------------------------------------------------------------------------

    @Test
    void maxCompletionTokensIsMaxTokensNewerName() throws Exception {
        assertEquals(200, chat("{" + HELLO + ", \"max_completion_tokens\": 7}").statusCode());
        assertEquals(7, engine.lastSampling.maxTokens());
        assertEquals(200, chat("{" + HELLO + ", \"max_tokens\": 9}").statusCode());
        assertEquals(9, engine.lastSampling.maxTokens());
        assertEquals(200, chat("{" + HELLO + ", \"max_tokens\": 9, \"max_completion_tokens\": 5}").statusCode());
        assertEquals(5, engine.lastSampling.maxTokens());
        assertEquals(200, chat("{" + HELLO + "}").statusCode());
        assertEquals(16, engine.lastSampling.maxTokens(), "the server's default");
    }

    @Test
    void developerIsSystem() throws Exception {
        assertEquals(200, chat("{\"messages\": [{\"role\": \"developer\", \"content\": \"Be brief\"}, {\"role\": \"user\", \"content\": \"Hi\"}]}").statusCode());
        assertEquals("system", engine.lastMessages.getFirst().role());
    }

    /** The data: lines of an SSE body, parsed, up to [DONE] (which must come). */
    static List<JsonNode> events(HttpResponse<String> r) throws Exception {
        assertEquals(200, r.statusCode(), r.body());
        List<JsonNode> out = new ArrayList<>();
        boolean done = false;
        for (String line : r.body().split("\n")) {
            if (!line.startsWith("data: ")) continue;
            assertFalse(done, "nothing after [DONE]");
            if (line.equals("data: [DONE]")) done = true; else out.add(JSON.readTree(line.substring(6)));
        }
        assertTrue(done, "the stream ends with [DONE]");
        return out;
    }

    @Test
    void streamOptionsIncludeUsage() throws Exception {
        List<JsonNode> ev = events(chat("{" + HELLO + ", \"stream\": true, \"stream_options\": {\"include_usage\": true}}"));
        JsonNode last = ev.getLast();
        assertTrue(last.get("choices").isEmpty(), "the usage chunk has no choices");
        assertEquals(7, last.at("/usage/prompt_tokens").asInt());
        assertEquals(2, last.at("/usage/completion_tokens").asInt());
        assertEquals(9, last.at("/usage/total_tokens").asInt());
        for (JsonNode c : ev.subList(0, ev.size() - 1)) assertTrue(c.get("usage").isNull(), "the other chunks carry usage: null, as OpenAI's");

        for (JsonNode c : events(chat("{" + HELLO + ", \"stream\": true}")))
            assertFalse(c.has("usage"), "no usage unless asked for");
        assertError(chat("{" + HELLO + ", \"stream_options\": {\"include_usage\": true}}"), 400, "stream_options", null, "only allowed when 'stream' is true");
    }

    @Test
    void reasoningGoesToReasoningContentAndTheAnswerToContent() throws Exception {
        // a Thinking model's output, cut so that the markers fall across pieces
        engine.pieces = List.of("◁thi", "nk▷I count", " three◁/th", "ink▷There are", " three.");
        try {
            var r = chat("{" + HELLO + "}");
            assertEquals(200, r.statusCode(), r.body());
            JsonNode msg = JSON.readTree(r.body()).at("/choices/0/message");
            assertEquals("I count three", msg.get("reasoning_content").asText());
            assertEquals("There are three.", msg.get("content").asText());

            StringBuilder reasoning = new StringBuilder(), content = new StringBuilder();
            for (JsonNode c : events(chat("{" + HELLO + ", \"stream\": true}"))) {
                JsonNode d = c.at("/choices/0/delta");
                reasoning.append(d.path("reasoning_content").asText(""));
                content.append(d.path("content").asText(""));
                assertFalse(d.path("content").asText("").contains("think"), "no marker leaks into content");
            }
            assertEquals("I count three", reasoning.toString());
            assertEquals("There are three.", content.toString());
        } finally {
            engine.pieces = List.of("Fine", ", thanks");
        }
        // an Instruct model's answer has no reasoning_content at all
        JsonNode msg = JSON.readTree(chat("{" + HELLO + "}").body()).at("/choices/0/message");
        assertFalse(msg.has("reasoning_content"));
        assertEquals("Fine, thanks", msg.get("content").asText());
    }

    @Test
    void aFailureMidStreamIsAnErrorEventAndNoDone() throws Exception {
        engine.failAfterPieces = true;
        try {
            var r = chat("{" + HELLO + ", \"stream\": true}");
            assertEquals(200, r.statusCode(), "the status went out with the first chunk");
            assertFalse(r.body().contains("[DONE]"), "a broken answer must not look finished");
            List<JsonNode> ev = new ArrayList<>();
            for (String line : r.body().split("\n")) if (line.startsWith("data: ")) ev.add(JSON.readTree(line.substring(6)));
            JsonNode e = ev.getLast().get("error");
            assertNotNull(e, r.body());
            assertEquals("server_error", e.get("type").asText());
            assertTrue(e.get("param").isNull());
            assertTrue(e.get("message").asText().contains("scripted failure"), e.toString());
            // and without streaming it is a 500 with the same object
            var whole = chat("{" + HELLO + "}");
            assertEquals(500, whole.statusCode());
            assertEquals("server_error", JSON.readTree(whole.body()).at("/error/type").asText());
        } finally {
            engine.failAfterPieces = false;
        }
    }

    // ---- API key, bind address, busy port -----------------------------------------------------------------------

    @Test
    void anApiKeyIsRequiredWhenSet() throws Exception {
        try (OpenAiServer locked = new OpenAiServer(engine, new ServerDefaults("s", 16, 0.0, 0), ServerOptions.local(0).withApiKey("sk-right"))) {
            locked.start();
            String body = "{" + HELLO + "}";
            var r = send(request(locked, "/v1/chat/completions").POST(HttpRequest.BodyPublishers.ofString(body)).build());
            assertError(r, 401, null, "missing_api_key", "Authorization: Bearer");
            assertEquals("Bearer", r.headers().firstValue("WWW-Authenticate").orElse(null));
            assertError(send(request(locked, "/v1/chat/completions").header("Authorization", "Bearer sk-wrong")
                    .POST(HttpRequest.BodyPublishers.ofString(body)).build()), 401, null, "invalid_api_key", "incorrect API key");
            assertError(send(request(locked, "/v1/models").header("Authorization", "Basic c2stcmlnaHQ=").GET().build()), 401, null, "invalid_api_key", "Bearer");
            assertEquals(200, send(request(locked, "/v1/chat/completions").header("Authorization", "Bearer sk-right")
                    .POST(HttpRequest.BodyPublishers.ofString(body)).build()).statusCode());
            assertEquals(200, send(request(locked, "/v1/models").header("Authorization", "bearer sk-right").GET().build()).statusCode());
            assertEquals(200, send(request(locked, "/health").GET().build()).statusCode(), "health checks need no key");
        }
    }

    @Test
    void bindsLoopbackByDefault() {
        assertTrue(server.address().getAddress().isLoopbackAddress(), server.address().toString());
        assertThrows(IllegalArgumentException.class, () -> ServerOptions.local(0).withApiKey(" "), "an empty key would lock nobody out");
    }

    @Test
    void aFreePortPassesTheCheckAndStaysFree() throws Exception {
        int port;
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getByName("127.0.0.1"))) { port = s.getLocalPort(); }
        OpenAiServer.checkCanBind(ServerOptions.local(port));
        try (OpenAiServer bound = new OpenAiServer(engine, new ServerDefaults("s", 16, 0.0, 0), ServerOptions.local(port))) {
            assertEquals(port, bound.port());
        }
    }

    @Test
    void anUnknownHostIsNamed() {
        var e = assertThrows(java.net.UnknownHostException.class,
                () -> OpenAiServer.checkCanBind(ServerOptions.local(8080).withHost("no-such-host.invalid")));
        assertTrue(e.getMessage().contains("no-such-host.invalid:8080"), e.getMessage());
    }

    @Test
    void aBusyPortIsNamedInTheError() throws Exception {
        try (ServerSocket taken = new ServerSocket(0, 1, InetAddress.getByName("127.0.0.1"))) {
            int port = taken.getLocalPort();
            BindException e = assertThrows(BindException.class,
                    () -> new OpenAiServer(engine, new ServerDefaults("s", 16, 0.0, 0), ServerOptions.local(port)));
            assertTrue(e.getMessage().contains("127.0.0.1:" + port), e.getMessage());
            assertTrue(e.getMessage().contains("already in use"), e.getMessage());
            // serve's check before loading the model says the same
            e = assertThrows(BindException.class, () -> OpenAiServer.checkCanBind(ServerOptions.local(port)));
            assertTrue(e.getMessage().contains("127.0.0.1:" + port + ": the address is already in use"), e.getMessage());
        }
    }
}
