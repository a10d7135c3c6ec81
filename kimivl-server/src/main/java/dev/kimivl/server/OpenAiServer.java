package dev.kimivl.server;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.StreamReadConstraints;
import com.fasterxml.jackson.core.exc.StreamConstraintsException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import dev.kimivl.generate.ContextOverflowException;
import dev.kimivl.generate.Generator;
import dev.kimivl.generate.ThinkingFilter;
import dev.kimivl.model.KimiVL;
import dev.kimivl.vision.ImageLoader;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.BindException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.UnknownHostException;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.Locale;
import java.util.UUID;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Consumer;

/**
 * An OpenAI-compatible HTTP server: {@code GET /v1/models}, {@code GET /v1/models/{id}},
 * {@code POST /v1/chat/completions} (text and data:-URL images, streaming as server-sent events or one JSON
 * response; a Thinking model's reasoning in {@code reasoning_content}, its answer in {@code content}),
 * {@code POST /v1/completions} (a raw prompt), {@code GET /health} and {@code GET /metrics} (Prometheus).
 * Every error, 404 and 405 included, is an OpenAI error object.
 *
 * <p>Requests are served on virtual threads; generation runs one request at a time (the kernels already use every
 * core), in arrival order, with at most {@link ServerOptions#queue()} requests waiting ({@link Admission}; one more
 * gets 429 with {@code Retry-After}). A streaming client that disconnects ends its generation at the next token it
 * would have been sent. {@link #drain} (on SIGTERM: {@link #drainOnShutdown}) lets running requests finish and
 * refuses new ones with 503.
 */
public final class OpenAiServer implements AutoCloseable {
    private static final String PATHS = "GET /health, GET /metrics, GET /v1/models, POST /v1/chat/completions, POST /v1/completions";

    private final Engine engine;
    private final ServerDefaults defaults;
    private final ServerOptions options;
    private final byte[] apiKey;
    private final ObjectMapper json;
    private final HttpServer http;
    private final ImageLoader images = new ImageLoader();
    private final Admission admission;
    private final ServerMetrics metrics;
    /** Exchanges being handled now, of any path: what {@link #drain} waits for. */
    private final AtomicInteger exchanges = new AtomicInteger();
    private volatile boolean draining;
    private volatile Consumer<String> log = line -> {};

    /** Loopback or {@code host}, no API key, the default body limit. */
    public OpenAiServer(KimiVL model, ServerDefaults defaults, String host, int port) throws IOException {
        this(model, defaults, ServerOptions.local(port).withHost(host));
    }

    public OpenAiServer(KimiVL model, ServerDefaults defaults, ServerOptions options) throws IOException {
        this(model, defaults, options, CacheOptions.DEFAULT);
    }

    /** With the prefix and image caches bounded by {@code caches}. */
    public OpenAiServer(KimiVL model, ServerDefaults defaults, ServerOptions options, CacheOptions caches) throws IOException {
        this(new ModelEngine(model, defaults.contextCap(), caches), defaults, options);
    }

    /** Binds at once, so that a busy port fails here, naming it; {@link #start()} begins answering. */
    OpenAiServer(Engine engine, ServerDefaults defaults, ServerOptions options) throws IOException {
        this.engine = engine;
        this.defaults = defaults;
        this.options = options;
        this.apiKey = options.apiKey() == null ? null : options.apiKey().getBytes(StandardCharsets.UTF_8);
        // Jackson's default caps a JSON string at 20M characters, which a ~15 MB photo in base64 exceeds: the
        // server's own body limit is the one that applies, so no string may be refused below it.
        this.json = new ObjectMapper(JsonFactory.builder()
                .streamReadConstraints(StreamReadConstraints.builder().maxStringLength(options.maxBodyBytes()).build()).build());
        this.admission = new Admission(1, options.queue());
        this.metrics = new ServerMetrics(admission, engine.cacheStats());
        this.http = bind(options);
        http.setExecutor(Executors.newVirtualThreadPerTaskExecutor());
        // one context for every path: the JDK's own 404 is an HTML page, and its prefix matching would send
        // /v1/modelsX to /v1/models
        http.createContext("/", this::dispatch);
    }

    private static HttpServer bind(ServerOptions o) throws IOException {
        try {
            return HttpServer.create(address(o), 64);
        } catch (BindException e) {
            throw bindError(o, e);
        }
    }

    /**
     * Fails as the constructor would if the address cannot be bound, naming it; for {@code kimivl serve} to check
     * before it spends minutes loading a model. The port is free again when this returns.
     */
    public static void checkCanBind(ServerOptions o) throws IOException {
        try (ServerSocket probe = new ServerSocket()) {
            probe.setReuseAddress(true);            // as HttpServer binds, so that the two agree
            probe.bind(address(o));
        } catch (BindException e) {
            throw bindError(o, e);
        }
    }

    private static InetSocketAddress address(ServerOptions o) throws UnknownHostException {
        InetSocketAddress addr = new InetSocketAddress(o.host(), o.port());
        if (addr.isUnresolved()) throw new UnknownHostException("cannot listen on " + o.hostPort(o.port()) + ": the host name '" + o.host() + "' does not resolve");
        return addr;
    }

    /** The JDK says only "Address already in use": the user needs to know which address. */
    private static BindException bindError(ServerOptions o, BindException e) {
        String m = String.valueOf(e.getMessage());
        String why = m.contains("in use")
                ? "the address is already in use (another process is listening on port " + o.port() + "; stop it or choose another port)"
                : m.contains("assign") ? m + " (" + o.host() + " is not an address of this machine)" : m;
        BindException b = new BindException("cannot listen on " + o.hostPort(o.port()) + ": " + why);
        b.initCause(e);
        return b;
    }

    public void start() { http.start(); }

    /** The bound port (useful with port 0). */
    public int port() { return http.getAddress().getPort(); }

    /** The bound address. */
    InetSocketAddress address() { return http.getAddress(); }

    /** Exchanges being handled now (the load test checks that none is left behind). */
    int exchangesInProgress() { return exchanges.get(); }

    /** True when no generation request runs or waits (the load test checks that no slot leaked). */
    boolean idle() { return admission.idle(); }

    @Override public void close() { http.stop(0); }

    /** Where the server writes one line per generation request (queue wait, tokens, speed) and per refusal. */
    public OpenAiServer logTo(Consumer<String> log) {
        this.log = java.util.Objects.requireNonNull(log);
        return this;
    }

    /**
     * Stops taking work and lets the requests in progress finish: from now on new requests get 503 (with
     * {@code Connection: close}); when none is left, or after {@code max}, the listening socket closes.
     *
     * @return true when every request finished within {@code max}
     */
    public boolean drain(Duration max) {
        draining = true;
        long deadline = System.nanoTime() + max.toNanos();
        log.accept("draining: " + admission.active() + " request(s) generating, " + admission.waiting() + " waiting; new requests get 503");
        while (exchanges.get() > 0 && System.nanoTime() < deadline) {
            try {
                Thread.sleep(20);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                break;
            }
        }
        int left = exchanges.get();
        http.stop(0);
        log.accept(left == 0 ? "drained: every request finished; stopped" : "stopped after " + max.toSeconds() + " s with " + left + " request(s) unfinished");
        return left == 0;
    }

    /** On SIGTERM (or any JVM shutdown) {@link #drain} with {@code max}, so that running answers end whole. */
    public Thread drainOnShutdown(Duration max) {
        Thread hook = new Thread(() -> drain(max), "kimivl-serve-drain");
        Runtime.getRuntime().addShutdownHook(hook);
        return hook;
    }

    @FunctionalInterface
    private interface Handler { void handle(HttpExchange ex) throws IOException; }

    /** @param open answered without the API key (a load balancer's health check has none) */
    private record Route(String method, boolean open, Handler handler) {}

    private Route route(String path) {
        return switch (path) {
            case "/" -> new Route("GET", true, ChatPage::serve);       // the chat page: it holds no data, it asks /v1 with the key
            case "/health" -> new Route("GET", true, ex -> send(ex, 200, json.createObjectNode().put("status", "ok")));
            // open as /health is, and as vLLM's is: a scraper rarely carries the API key, and the counts reveal no text
            case "/metrics" -> new Route("GET", true, this::metrics);
            case "/v1/models" -> new Route("GET", false, this::models);
            case "/v1/chat/completions" -> new Route("POST", false, this::chat);
            case "/v1/completions" -> new Route("POST", false, this::completions);
            default -> path.startsWith("/v1/models/") && path.length() > "/v1/models/".length()
                    ? new Route("GET", false, ex -> model(ex, path.substring("/v1/models/".length())))
                    : null;
        };
    }

    private void dispatch(HttpExchange ex) {
        exchanges.incrementAndGet();
        String path = ex.getRequestURI().getPath(), method = ex.getRequestMethod();
        Route route = route(path);
        boolean disconnected = false;        // the client left before the answer was whole: /metrics says "disconnected"
        // not try-with-resources: the exchange must still be open when a catch block sends the error
        try {
            if (route == null) {
                throw new ApiError(404, "invalid_request_error", "Invalid URL (" + method + " " + shorten(path) + "): this server answers " + PATHS, null, "unknown_url");
            }
            if (!route.open()) authenticate(ex);
            if (!method.equals(route.method())) {
                ex.getResponseHeaders().set("Allow", route.method());
                throw new ApiError(405, "invalid_request_error", method + " is not allowed on " + path + "; use " + route.method(), null, "method_not_allowed");
            }
            route.handler().handle(ex);
        } catch (ApiError e) {
            if (e.status == 413) drainRefusedBody(ex);
            quietly(() -> error(ex, e.status, e.getMessage(), e.type, e.param, e.code));
        } catch (ContextOverflowException e) {
            quietly(() -> error(ex, 400, e.getMessage(), "invalid_request_error", "messages", "context_length_exceeded"));
        } catch (IllegalArgumentException e) {
            quietly(() -> error(ex, 400, e.getMessage(), "invalid_request_error", null, null));
        } catch (UncheckedIOException | IOException e) {
            // the client went away mid-response: nothing left to tell it
            disconnected = true;
        } catch (RuntimeException e) {
            quietly(() -> error(ex, 500, "internal error: " + e, "server_error", null, null));
        } finally {
            ex.close();
            // a bounded set of path labels: unknown paths (anything a scanner tries) share one
            String label = route == null ? "other" : path.startsWith("/v1/models/") ? "/v1/models/{id}" : path;
            String status = disconnected ? "disconnected" : String.valueOf(ex.getResponseCode());
            metrics.requests.labelValues(label, status).inc();
            exchanges.decrementAndGet();
        }
    }

    /** With --api-key, /v1 requests must carry {@code Authorization: Bearer <key>}, as OpenAI's clients send it. */
    private void authenticate(HttpExchange ex) {
        if (apiKey == null) return;
        String h = ex.getRequestHeaders().getFirst("Authorization");
        if (h == null || h.isBlank()) {
            ex.getResponseHeaders().set("WWW-Authenticate", "Bearer");
            throw new ApiError(401, "invalid_request_error",
                    "no API key: this server requires the header 'Authorization: Bearer <key>' with the key it was started with", null, "missing_api_key");
        }
        boolean bearer = h.regionMatches(true, 0, "Bearer ", 0, 7);
        // constant-time comparison: the time taken must not tell how much of a guessed key was right
        if (!bearer || !MessageDigest.isEqual(h.substring(7).strip().getBytes(StandardCharsets.UTF_8), apiKey)) {
            ex.getResponseHeaders().set("WWW-Authenticate", "Bearer");
            throw new ApiError(401, "invalid_request_error",
                    bearer ? "incorrect API key provided" : "the Authorization header must be 'Bearer <key>'", null, "invalid_api_key");
        }
    }

    private void models(HttpExchange ex) throws IOException {
        ObjectNode root = json.createObjectNode().put("object", "list");
        root.putArray("data").add(modelObject());
        send(ex, 200, root);
    }

    private void model(HttpExchange ex, String id) throws IOException {
        if (!id.equals(defaults.modelName())) {
            throw new ApiError(404, "invalid_request_error", "The model '" + shorten(id) + "' does not exist; this server serves '" + defaults.modelName() + "'", "model", "model_not_found");
        }
        send(ex, 200, modelObject());
    }

    private ObjectNode modelObject() {
        return json.createObjectNode().put("id", defaults.modelName()).put("object", "model").put("created", 0).put("owned_by", "kimivl");
    }

    private void metrics(HttpExchange ex) throws IOException {
        byte[] b = metrics.scrape();
        ex.getResponseHeaders().set("Content-Type", metrics.contentType());
        ex.sendResponseHeaders(200, b.length);
        ex.getResponseBody().write(b);
    }

    private void chat(HttpExchange ex) throws IOException {
        long arrived = System.nanoTime();
        ChatRequest req = ChatRequest.parse(parse(readBody(ex)), images, defaults);
        if (!req.images().isEmpty() && !engine.acceptsImages()) {
            String where = req.imageParams().getFirst();
            throw ApiError.invalid("'" + where + "': this model is text only (it has no vision tower); send text, or serve a model with vision", where);
        }
        String id = "chatcmpl-" + UUID.randomUUID().toString().replace("-", "");
        long created = System.currentTimeMillis() / 1000;
        try (Admission.Ticket ticket = admit(ex)) {
            Clock clock = new Clock("POST /v1/chat/completions", arrived, awaitTurn(ticket));
            Engine.Job job = engine.prepare(req.messages(), req.images());   // a too-long prompt is still a 400 here
            if (req.stream()) {
                stream(ex, req, job, id, created, clock);
            } else {
                // the same filter as the stream, so that both split reasoning from answer identically
                StringBuilder answer = new StringBuilder(), reasoning = new StringBuilder();
                ThinkingFilter filter = new ThinkingFilter(answer::append, reasoning::append);
                Generator.Result r = job.generate(req.sampling(), null, clock);
                clock.finished(r, job);
                filter.onText(r.text());
                filter.finish();
                ObjectNode root = envelope(id, created, "chat.completion");
                ObjectNode choice = root.putArray("choices").addObject().put("index", 0);
                ObjectNode message = choice.putObject("message").put("role", "assistant").put("content", answer.toString());
                if (!reasoning.isEmpty()) message.put("reasoning_content", reasoning.toString());
                choice.put("finish_reason", finishReason(r));
                usage(root, r, job);
                send(ex, 200, root);
            }
        }
    }

    /**
     * {@code POST /v1/completions}: OpenAI's legacy text completions. The prompt goes to the model as it is (no chat
     * template), and the text comes back as it is (a Thinking model's markers included: there is no message to
     * split them into).
     */
    private void completions(HttpExchange ex) throws IOException {
        long arrived = System.nanoTime();
        CompletionRequest req = CompletionRequest.parse(parse(readBody(ex)), defaults);
        String id = "cmpl-" + UUID.randomUUID().toString().replace("-", "");
        long created = System.currentTimeMillis() / 1000;
        try (Admission.Ticket ticket = admit(ex)) {
            Clock clock = new Clock("POST /v1/completions", arrived, awaitTurn(ticket));
            Engine.Job job;
            try {
                job = engine.prepareRaw(req.text(), req.ids());
            } catch (ContextOverflowException e) {
                throw new ApiError(400, "invalid_request_error", e.getMessage(), "prompt", "context_length_exceeded");
            } catch (IllegalArgumentException e) {
                throw ApiError.invalid(e.getMessage(), "prompt");     // a token id outside the vocabulary, an image placeholder
            }
            String echo = !req.echo() ? "" : req.text() != null ? req.text() : engine.detokenize(req.ids());
            if (!req.stream()) {
                Generator.Result r = job.generate(req.sampling(), null, clock);
                clock.finished(r, job);
                ObjectNode root = envelope(id, created, "text_completion");
                root.putArray("choices").addObject().put("text", echo + r.text()).put("index", 0).putNull("logprobs")
                        .put("finish_reason", finishReason(r));
                usage(root, r, job);
                send(ex, 200, root);
                return;
            }
            startEvents(ex);
            OutputStream out = ex.getResponseBody();
            if (!echo.isEmpty()) event(out, textChunk(id, created, req.includeUsage(), echo));
            Generator.Result r;
            try {
                r = job.generate(req.sampling(), text -> {
                    clock.text();
                    send(out, textChunk(id, created, req.includeUsage(), text));
                }, clock);
            } catch (UncheckedIOException e) {
                throw e;                                    // the client went away: nobody to tell
            } catch (RuntimeException e) {
                event(out, errorBody("internal error: " + e, "server_error", null, null));
                return;
            }
            clock.finished(r, job);
            ObjectNode last = textChunk(id, created, req.includeUsage(), "");
            ((ObjectNode) last.withArray("choices").get(0)).put("finish_reason", finishReason(r));
            event(out, last);
            endStream(out, req.includeUsage(), envelope(id, created, "text_completion"), r, job);
        }
    }

    private ObjectNode textChunk(String id, long created, boolean includeUsage, String text) {
        ObjectNode c = envelope(id, created, "text_completion");
        c.putArray("choices").addObject().put("text", text).put("index", 0).putNull("logprobs").putNull("finish_reason");
        if (includeUsage) c.putNull("usage");
        return c;
    }

    /** Admits a generation request to the queue, or refuses it: 503 while draining, 429 when the queue is full. */
    private Admission.Ticket admit(HttpExchange ex) {
        if (draining) {
            ex.getResponseHeaders().set("Connection", "close");
            ex.getResponseHeaders().set("Retry-After", "5");
            throw new ApiError(503, "server_error", "the server is shutting down and takes no new requests", null, "shutting_down");
        }
        try {
            return admission.enter();
        } catch (Admission.Full f) {
            ex.getResponseHeaders().set("Retry-After", String.valueOf(f.retryAfterSeconds));
            log.accept("429 " + ex.getRequestMethod() + " " + ex.getRequestURI().getPath() + ": queue full ("
                    + admission.active() + " generating, " + admission.waiting() + " waiting of " + admission.queueCapacity() + ")");
            throw new ApiError(429, "rate_limit_exceeded", f.getMessage(), null, "queue_full");
        }
    }

    private double awaitTurn(Admission.Ticket ticket) {
        try {
            double waited = ticket.awaitTurn();
            metrics.queueWait.observe(waited);
            return waited;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new ApiError(503, "server_error", "the request was interrupted while it waited for its turn", null, null);
        }
    }

    /**
     * Times one generation for /metrics and the log: time to first token from the request's arrival (its queue wait
     * included, as a client sees it), the gaps between tokens, and the totals when it ends. Created when the request
     * gets its turn, it also keeps the time limit ({@link ServerOptions#timeLimitSeconds()}) from that moment.
     */
    private final class Clock implements java.util.function.BooleanSupplier {
        private final String what;
        private final long arrived, deadline;
        private final double queueWait;
        private long last;
        private boolean tokens, first = true, timedOut;
        private double ttft = -1;

        Clock(String what, long arrived, double queueWait) {
            this.what = what;
            this.arrived = arrived;
            this.queueWait = queueWait;
            this.deadline = options.timeLimitSeconds() == 0 ? 0 : System.nanoTime() + options.timeLimitSeconds() * 1_000_000_000L;
        }

        /** A token was generated (engines that report tokens); false once the time limit has passed. */
        @Override public boolean getAsBoolean() {
            tokens = true;
            tick();
            if (deadline != 0 && last - deadline > 0) timedOut = true;
            return !timedOut;
        }

        /** Text went out: the first token for engines that do not report tokens. */
        void text() { if (!tokens && first) tick(); }

        private void tick() {
            long now = System.nanoTime();
            if (first) {
                ttft = (now - arrived) / 1e9;
                metrics.timeToFirstToken.observe(ttft);
                first = false;
            } else if (tokens) {
                metrics.timePerOutputToken.observe((now - last) / 1e9);
            }
            last = now;
        }

        void finished(Generator.Result r, Engine.Job job) {
            int cached = job.cachedTokens();
            metrics.promptTokens.inc(r.promptTokens());
            metrics.cachedPromptTokens.inc(cached);
            metrics.generationTokens.inc(r.tokens().length);
            metrics.prefillSeconds.inc(r.prefillSeconds());
            metrics.decodeSeconds.inc(r.decodeSeconds());
            double prefillRate = r.prefillSeconds() > 0 ? (r.promptTokens() - cached) / r.prefillSeconds() : 0;
            if (r.prefillSeconds() > 0) metrics.prefillRate.set(prefillRate);
            if (r.tokens().length > 1) metrics.decodeRate.set(r.decodeTokensPerSecond());
            double total = (System.nanoTime() - arrived) / 1e9;
            metrics.requestDuration.observe(total);
            log.accept(String.format(Locale.ROOT, "%s: prompt %d tokens (%d cached), %d generated (%s%s); queue wait %.3f s (%d waiting now), "
                            + "first token %.3f s, prefill %.1f tok/s, decode %.1f tok/s, %.3f s in all",
                    what, r.promptTokens(), cached, r.tokens().length, finishReason(r),
                    timedOut ? ": stopped at the time limit of " + options.timeLimitSeconds() + " s" : "", queueWait, admission.waiting(), Math.max(ttft, 0),
                    prefillRate, r.decodeTokensPerSecond(), total));
        }
    }

    private JsonNode parse(byte[] body) {
        try {
            return json.readTree(body);
        } catch (StreamConstraintsException e) {
            throw ApiError.invalid("the request body goes past a limit of the JSON parser: " + e.getOriginalMessage(), null);
        } catch (JsonProcessingException e) {
            throw ApiError.invalid("the request body is not valid JSON: " + e.getOriginalMessage(), null);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static void startEvents(HttpExchange ex) throws IOException {
        ex.getResponseHeaders().set("Content-Type", "text/event-stream; charset=utf-8");
        ex.getResponseHeaders().set("Cache-Control", "no-cache");
        ex.sendResponseHeaders(200, 0);
    }

    private void stream(HttpExchange ex, ChatRequest req, Engine.Job job, String id, long created, Clock clock) throws IOException {
        startEvents(ex);
        OutputStream out = ex.getResponseBody();
        ObjectNode first = chunk(req, id, created);
        ((ObjectNode) first.withArray("choices").get(0)).putObject("delta").put("role", "assistant").put("content", "");
        event(out, first);
        ThinkingFilter filter = new ThinkingFilter(text -> delta(out, req, id, created, "content", text),
                text -> delta(out, req, id, created, "reasoning_content", text));
        Generator.Result r;
        try {
            r = job.generate(req.sampling(), text -> {
                clock.text();
                filter.onText(text);
            }, clock);
            filter.finish();
        } catch (UncheckedIOException e) {
            throw e;                                    // the client went away: nobody to tell
        } catch (RuntimeException e) {
            // the 200 is already sent: the error travels as an event with OpenAI's error object, and the stream
            // ends without [DONE] so that a client cannot take the partial answer for a whole one
            event(out, errorBody("internal error: " + e, "server_error", null, null));
            return;
        }
        clock.finished(r, job);
        ObjectNode last = chunk(req, id, created);
        ObjectNode choice = (ObjectNode) last.withArray("choices").get(0);
        choice.putObject("delta");
        choice.put("finish_reason", finishReason(r));
        event(out, last);
        endStream(out, req.includeUsage(), envelope(id, created, "chat.completion.chunk"), r, job);
    }

    private void delta(OutputStream out, ChatRequest req, String id, long created, String field, String text) {
        ObjectNode c = chunk(req, id, created);
        ((ObjectNode) c.withArray("choices").get(0)).putObject("delta").put(field, text);
        send(out, c);
    }

    /** An event from inside a generation: a failed write (the client went away) ends the generation by this throw. */
    private void send(OutputStream out, ObjectNode event) {
        try {
            event(out, event);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private ObjectNode envelope(String id, long created, String object) {
        return json.createObjectNode().put("id", id).put("object", object).put("created", created).put("model", defaults.modelName());
    }

    private ObjectNode chunk(ChatRequest req, String id, long created) {
        ObjectNode c = envelope(id, created, "chat.completion.chunk");
        ArrayNode choices = c.putArray("choices");
        choices.addObject().put("index", 0).putNull("finish_reason");
        if (req.includeUsage()) c.putNull("usage");     // as OpenAI: every chunk has the field, the last one its value
        return c;
    }

    private static String finishReason(Generator.Result r) {
        return r.finishReason() == Generator.FinishReason.STOP ? "stop" : "length";
    }

    private static void usage(ObjectNode root, Generator.Result r, Engine.Job job) {
        ObjectNode u = root.putObject("usage").put("prompt_tokens", r.promptTokens()).put("completion_tokens", r.tokens().length)
                .put("total_tokens", r.promptTokens() + r.tokens().length);
        u.putObject("prompt_tokens_details").put("cached_tokens", job.cachedTokens());
    }

    /**
     * The end of a stream after its last choice chunk: with include_usage a chunk of no choices carrying the usage
     * (OpenAI's shape; {@code envelope} is that chunk's id/created/object), then {@code [DONE]}.
     */
    private void endStream(OutputStream out, boolean includeUsage, ObjectNode envelope, Generator.Result r, Engine.Job job) throws IOException {
        if (includeUsage) {
            envelope.putArray("choices");
            usage(envelope, r, job);
            event(out, envelope);
        }
        out.write("data: [DONE]\n\n".getBytes(StandardCharsets.UTF_8));
        out.flush();
    }

    private void event(OutputStream out, ObjectNode payload) throws IOException {
        out.write(("data: " + json.writeValueAsString(payload) + "\n\n").getBytes(StandardCharsets.UTF_8));
        out.flush();
    }

    /** Reads the body up to the server's limit; a declared length over it is refused before reading anything. */
    private byte[] readBody(HttpExchange ex) throws IOException {
        int max = options.maxBodyBytes();
        String declared = ex.getRequestHeaders().getFirst("Content-Length");
        if (declared != null) {
            long n;
            try {
                n = Long.parseLong(declared.strip());
            } catch (NumberFormatException e) {
                n = -1;                                  // the JDK server refuses a malformed length before we get here
            }
            if (n > max) throw tooLarge(ex, n + " bytes");
        }
        try (InputStream in = ex.getRequestBody()) {
            byte[] b = in.readNBytes(Math.min(max, Integer.MAX_VALUE - 16) + 1);
            if (b.length > max) throw tooLarge(ex, "over " + max + " bytes");
            return b;
        }
    }

    /** What a refused body may still send that is read and dropped before the 413 goes out. */
    static final int DRAIN_LIMIT = 16 << 20;

    /**
     * Reads and drops the rest of a refused body (at most {@link #DRAIN_LIMIT} bytes): a client still writing it when
     * the 413 is sent and the connection closed would otherwise be reset by the unread data and lose the answer
     * ("header parser received no bytes"). Beyond the limit the connection is closed anyway.
     */
    private static void drainRefusedBody(HttpExchange ex) {
        try {
            InputStream in = ex.getRequestBody();
            byte[] buf = new byte[1 << 16];
            for (long left = DRAIN_LIMIT; left > 0; ) {
                int n = in.read(buf, 0, (int) Math.min(buf.length, left));
                if (n < 0) break;
                left -= n;
            }
        } catch (IOException e) {
            // already read to the limit and closed (a chunked body), or the client went away: nothing to drain
        }
    }

    private ApiError tooLarge(HttpExchange ex, String size) {
        // the rest of the body stays unread, so the connection cannot carry another request: say so, or the
        // client reuses it and its next request fails
        ex.getResponseHeaders().set("Connection", "close");
        int max = options.maxBodyBytes();
        String limit = max % (1 << 20) == 0 ? (max >> 20) + " MiB (" + max + " bytes)" : max + " bytes";
        return new ApiError(413, "invalid_request_error", "the request body is " + size + ", over this server's request body limit of " + limit,
                null, "request_too_large");
    }

    private void send(HttpExchange ex, int status, ObjectNode body) throws IOException {
        byte[] b = json.writeValueAsBytes(body);
        ex.getResponseHeaders().set("Content-Type", "application/json");
        ex.sendResponseHeaders(status, b.length);
        ex.getResponseBody().write(b);
    }

    private void error(HttpExchange ex, int status, String message, String type, String param, String code) throws IOException {
        send(ex, status, errorBody(message, type, param, code));
    }

    private ObjectNode errorBody(String message, String type, String param, String code) {
        ObjectNode err = json.createObjectNode();
        ObjectNode e = err.putObject("error").put("message", message).put("type", type);
        if (param != null) e.put("param", param); else e.putNull("param");
        if (code != null) e.put("code", code); else e.putNull("code");
        return err;
    }

    /** A client-supplied string echoed in a message, cut short so a huge path cannot make a huge error. */
    private static String shorten(String s) { return s.length() > 200 ? s.substring(0, 200) + "…" : s; }

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
