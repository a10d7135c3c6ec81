package dev.kimivl.server;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import dev.kimivl.generate.ContextOverflowException;
import dev.kimivl.generate.Generator;
import dev.kimivl.model.KimiVL;
import dev.kimivl.vision.ImageLoader;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.UUID;
import java.util.concurrent.Executors;
import java.util.concurrent.locks.ReentrantLock;

/**
 * An OpenAI-compatible HTTP server: {@code GET /v1/models}, {@code POST /v1/chat/completions} (text and
 * data:-URL images, streaming as server-sent events or one JSON response), {@code GET /health}.
 * Requests are served on virtual threads; generation runs one request at a time (the kernels already use every
 * core), in arrival order.
 */
public final class OpenAiServer implements AutoCloseable {
    /** Request bodies above this are refused (413): a few large images in base64 fit easily. */
    static final int MAX_BODY_BYTES = 64 << 20;
    private static final ObjectMapper JSON = new ObjectMapper();

    private final KimiVL model;
    private final ServerDefaults defaults;
    private final HttpServer http;
    private final ReentrantLock generation = new ReentrantLock(true);
    private final ImageLoader images = new ImageLoader();

    public OpenAiServer(KimiVL model, ServerDefaults defaults, String host, int port) throws IOException {
        this.model = model;
        this.defaults = defaults;
        this.http = HttpServer.create(new InetSocketAddress(host, port), 64);
        http.setExecutor(Executors.newVirtualThreadPerTaskExecutor());
        http.createContext("/v1/models", ex -> handle(ex, "GET", this::models));
        http.createContext("/v1/chat/completions", ex -> handle(ex, "POST", this::chat));
        http.createContext("/health", ex -> handle(ex, "GET", e -> send(e, 200, JSON.createObjectNode().put("status", "ok"))));
    }

    public void start() { http.start(); }

    /** The bound port (useful with port 0). */
    public int port() { return http.getAddress().getPort(); }

    @Override public void close() { http.stop(0); }

    @FunctionalInterface
    private interface Handler { void handle(HttpExchange ex) throws IOException; }

    private void handle(HttpExchange ex, String method, Handler h) {
        // not try-with-resources: the exchange must still be open when a catch block sends the error
        try {
            if (!ex.getRequestMethod().equals(method)) {
                ex.getResponseHeaders().set("Allow", method);
                error(ex, 405, ex.getRequestMethod() + " is not allowed on " + ex.getRequestURI().getPath() + "; use " + method, "invalid_request_error", null, null);
                return;
            }
            h.handle(ex);
        } catch (ChatRequest.BadRequest e) {
            quietly(() -> error(ex, 400, e.getMessage(), "invalid_request_error", e.param, e.code));
        } catch (ContextOverflowException e) {
            quietly(() -> error(ex, 400, e.getMessage(), "invalid_request_error", "messages", "context_length_exceeded"));
        } catch (IllegalArgumentException e) {
            quietly(() -> error(ex, 400, e.getMessage(), "invalid_request_error", null, null));
        } catch (UncheckedIOException | IOException e) {
            // the client went away mid-response: nothing left to tell it
        } catch (RuntimeException e) {
            quietly(() -> error(ex, 500, "internal error: " + e, "server_error", null, null));
        } finally {
            ex.close();
        }
    }

    private void models(HttpExchange ex) throws IOException {
        ObjectNode root = JSON.createObjectNode().put("object", "list");
        root.putArray("data").addObject().put("id", defaults.modelName()).put("object", "model").put("created", 0).put("owned_by", "kimivl");
        send(ex, 200, root);
    }

    private void chat(HttpExchange ex) throws IOException {
        JsonNode body;
        try {
            body = JSON.readTree(readBody(ex));
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new ChatRequest.BadRequest("the request body is not valid JSON: " + e.getOriginalMessage(), null);
        }
        ChatRequest req = ChatRequest.parse(body, images, defaults);
        String id = "chatcmpl-" + UUID.randomUUID().toString().replace("-", "");
        long created = System.currentTimeMillis() / 1000;
        generation.lock();
        try {
            KimiVL.Prompt prompt = model.prompt(req.messages(), req.images());
            Generator gen = model.generator(defaults.contextCap());
            gen.checkFits(prompt.ids().length);          // before any byte is sent: a too-long prompt is still a 400
            if (req.stream()) {
                stream(ex, req, gen, prompt, id, created);
            } else {
                Generator.Result r = gen.generate(prompt.embeddings(), prompt.ids(), req.sampling(), null);
                ObjectNode root = envelope(id, created, "chat.completion");
                ObjectNode choice = root.putArray("choices").addObject().put("index", 0);
                choice.putObject("message").put("role", "assistant").put("content", r.text());
                choice.put("finish_reason", finishReason(r));
                usage(root, r);
                send(ex, 200, root);
            }
        } finally {
            generation.unlock();
        }
    }

    private void stream(HttpExchange ex, ChatRequest req, Generator gen, KimiVL.Prompt prompt, String id, long created) throws IOException {
        ex.getResponseHeaders().set("Content-Type", "text/event-stream; charset=utf-8");
        ex.getResponseHeaders().set("Cache-Control", "no-cache");
        ex.sendResponseHeaders(200, 0);
        OutputStream out = ex.getResponseBody();
        ObjectNode first = chunk(id, created);
        ((ObjectNode) first.withArray("choices").get(0)).putObject("delta").put("role", "assistant").put("content", "");
        event(out, first);
        Generator.Result r = gen.generate(prompt.embeddings(), prompt.ids(), req.sampling(), text -> {
            ObjectNode c = chunk(id, created);
            ((ObjectNode) c.withArray("choices").get(0)).putObject("delta").put("content", text);
            try {
                event(out, c);
            } catch (IOException e) {
                throw new UncheckedIOException(e);     // client disconnected: stops generation
            }
        });
        ObjectNode last = chunk(id, created);
        ObjectNode choice = (ObjectNode) last.withArray("choices").get(0);
        choice.putObject("delta");
        choice.put("finish_reason", finishReason(r));
        event(out, last);
        if (req.includeUsage()) {
            ObjectNode u = envelope(id, created, "chat.completion.chunk");
            u.putArray("choices");
            usage(u, r);
            event(out, u);
        }
        out.write("data: [DONE]\n\n".getBytes(StandardCharsets.UTF_8));
        out.flush();
    }

    private ObjectNode envelope(String id, long created, String object) {
        return JSON.createObjectNode().put("id", id).put("object", object).put("created", created).put("model", defaults.modelName());
    }

    private ObjectNode chunk(String id, long created) {
        ObjectNode c = envelope(id, created, "chat.completion.chunk");
        ArrayNode choices = c.putArray("choices");
        choices.addObject().put("index", 0).putNull("finish_reason");
        return c;
    }

    private static String finishReason(Generator.Result r) {
        return r.finishReason() == Generator.FinishReason.STOP ? "stop" : "length";
    }

    private static void usage(ObjectNode root, Generator.Result r) {
        root.putObject("usage").put("prompt_tokens", r.promptTokens()).put("completion_tokens", r.tokens().length)
                .put("total_tokens", r.promptTokens() + r.tokens().length);
    }

    private static void event(OutputStream out, ObjectNode payload) throws IOException {
        out.write(("data: " + JSON.writeValueAsString(payload) + "\n\n").getBytes(StandardCharsets.UTF_8));
        out.flush();
    }

    private static byte[] readBody(HttpExchange ex) throws IOException {
        try (InputStream in = ex.getRequestBody()) {
            byte[] b = in.readNBytes(MAX_BODY_BYTES + 1);
            if (b.length > MAX_BODY_BYTES) throw new ChatRequest.BadRequest("the request body exceeds " + (MAX_BODY_BYTES >> 20) + " MiB", null, "request_too_large");
            return b;
        }
    }

    private static void send(HttpExchange ex, int status, ObjectNode body) throws IOException {
        byte[] b = JSON.writeValueAsBytes(body);
        ex.getResponseHeaders().set("Content-Type", "application/json");
        ex.sendResponseHeaders(status, b.length);
        ex.getResponseBody().write(b);
    }

    private static void error(HttpExchange ex, int status, String message, String type, String param, String code) throws IOException {
        ObjectNode err = JSON.createObjectNode();
        ObjectNode e = err.putObject("error").put("message", message).put("type", type);
        if (param != null) e.put("param", param); else e.putNull("param");
        if (code != null) e.put("code", code); else e.putNull("code");
        send(ex, status, err);
    }

    @FunctionalInterface
    private interface IoAction { void run() throws IOException; }

    /** Error responses after the headers went out cannot be sent: give up silently. */
    private static void quietly(IoAction a) {
        try {
            a.run();
        } catch (IOException | RuntimeException ignored) {
            // response already committed or connection closed
        }
    }
}
