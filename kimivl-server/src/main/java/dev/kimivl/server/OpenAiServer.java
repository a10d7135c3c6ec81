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
import dev.kimivl.generate.Decoding;
import dev.kimivl.generate.Generator;
import dev.kimivl.generate.ThinkingFilter;
import dev.kimivl.io.CheckpointException;
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
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.UUID;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Consumer;
import java.util.function.IntConsumer;
import java.util.function.IntFunction;

/**
 * An OpenAI-compatible HTTP server: {@code GET /v1/models}, {@code GET /v1/models/{id}},
 * {@code POST /v1/chat/completions} (text and data:-URL images, streaming as server-sent events or one JSON
 * response; a Thinking model's reasoning in {@code reasoning_content}, its answer in {@code content}),
 * {@code POST /v1/completions} (a raw prompt), {@code GET /health} and {@code GET /metrics} (Prometheus).
 * Every error, 404 and 405 included, is an OpenAI error object.
 *
 * <p>Requests are served on virtual threads; generation runs one request at a time (the kernels already use every
 * core), in arrival order, with at most {@link ServerOptions#queue()} requests waiting ({@link Admission}; one more
 * gets 429 with {@code Retry-After}). A client that disconnects, streaming or not, leaves the queue or ends its
 * generation within a token or two ({@link ConnectionWatch}; else, where the kernel's connection tables cannot be read,
 * a streaming one at the next chunk it would have been sent). {@link #drain} (on SIGTERM: {@link #drainOnShutdown}) lets running requests finish and
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
    /** Which generation requests' clients have gone away (not knowable from HttpExchange itself). */
    private final ConnectionWatch connections;
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
        this(new ModelEngine(model, defaults.contextCap(), caches, options.parallel(), options.prefillChunk()), defaults, options);
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
        this.admission = new Admission(options.parallel(), options.queue());
        this.metrics = new ServerMetrics(admission, engine.cacheStats());
        if (engine instanceof ModelEngine m) m.onDecodeStep(metrics.decodeBatch::observe);
        this.http = bind(options);
        this.connections = ConnectionWatch.start(ConnectionWatch.DEFAULT_PERIOD_MILLIS);     // after bind: a busy port leaves no thread
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

    @Override public void close() {
        http.stop(0);
        engine.close();
        connections.close();
    }

    /** True when a client that goes away is noticed without a write (the kernel's connection tables are readable). */
    boolean watchesConnections() { return connections.active(); }

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
        } catch (CheckpointException e) {
            // a weight file truncated, rewritten or replaced since start-up (Engine.prepare checks before each
            // request): no request can be served from it until a restart; said in the log and to the client
            log.accept(method + " " + path + ": 503: " + e.getMessage());
            quietly(() -> error(ex, 503, e.getMessage(), "server_error", null, "model_files_changed"));
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
        try (ConnectionWatch.Watch client = connections.watch(ex.getLocalAddress(), ex.getRemoteAddress())) {
            chat(ex, client);
        }
    }

    private void chat(HttpExchange ex, ConnectionWatch.Watch client) throws IOException {
        long arrived = System.nanoTime();
        ChatRequest req = ChatRequest.parse(parse(readBody(ex)), images, defaults);
        if (!req.imageParams().isEmpty() && !engine.acceptsImages()) {
            String where = req.imageParams().getFirst();
            throw ApiError.invalid("'" + where + "': this model is text only (it has no vision tower); send text, or serve a model with vision", where);
        }
        // videos and PDFs: sized to the context as `kimivl run` sizes them (frames given fewer tokens when needed,
        // a note in the log), then decoded; what cannot fit is a 400 context_length_exceeded (MediaParts)
        if (req.media() != null) {
            req = req.sized(engine.media(req.media(), req.sampling().maxTokens(), images.maxPixels(), log));
            // decoding a long video takes a while: a client that left meanwhile gets no prompt run for it
            if (client.gone()) throw clientLeftBeforeGenerating("POST /v1/chat/completions", "while its videos and PDFs were decoded");
        }
        String id = "chatcmpl-" + UUID.randomUUID().toString().replace("-", "");
        long created = System.currentTimeMillis() / 1000;
        try (Admission.Ticket ticket = admit(ex)) {
            String what = "POST /v1/chat/completions";
            Clock clock = new Clock(what, arrived, awaitTurn(ticket, client, what), client);
            // one job per choice, each with its own KV cache; a too-long prompt is still a 400 here
            List<Engine.Job> jobs = new ArrayList<>();
            for (int i = 0; i < req.n(); i++) jobs.add(engine.prepare(req.messages(), req.images()));
            if (req.stream()) {
                stream(ex, req, jobs, id, created, clock);
                return;
            }
            List<List<Decoding.TokenLogprob>> lps = lists(req.n());
            List<Generator.Result> rs = generateChoices(jobs, req.spec(), i -> null, i -> lps.get(i)::add, clock);
            if (client.gone()) throw clock.clientLeft(null);
            clock.finished(rs, jobs);
            ObjectNode root = envelope(id, created, "chat.completion");
            ArrayNode choices = root.putArray("choices");
            for (int i = 0; i < rs.size(); i++) {
                Generator.Result r = rs.get(i);
                // the same filter as the stream, so that both split reasoning from answer identically
                StringBuilder answer = new StringBuilder(), reasoning = new StringBuilder();
                ThinkingFilter filter = new ThinkingFilter(answer::append, reasoning::append);
                filter.onText(r.text());
                filter.finish();
                ObjectNode choice = choices.addObject().put("index", i);
                ObjectNode message = choice.putObject("message").put("role", "assistant").put("content", answer.toString());
                if (!reasoning.isEmpty()) message.put("reasoning_content", reasoning.toString());
                if (req.logprobs()) choice.set("logprobs", chatLogprobs(lps.get(i)));
                else choice.putNull("logprobs");
                choice.put("finish_reason", finishReason(r));
            }
            usage(root, rs, jobs);
            send(ex, 200, root);
        }
    }

    /**
     * {@code POST /v1/completions}: OpenAI's legacy text completions. The prompt goes to the model as it is (no chat
     * template), and the text comes back as it is (a Thinking model's markers included: there is no message to
     * split them into).
     */
    private void completions(HttpExchange ex) throws IOException {
        try (ConnectionWatch.Watch client = connections.watch(ex.getLocalAddress(), ex.getRemoteAddress())) {
            completions(ex, client);
        }
    }

    private void completions(HttpExchange ex, ConnectionWatch.Watch client) throws IOException {
        long arrived = System.nanoTime();
        CompletionRequest req = CompletionRequest.parse(parse(readBody(ex)), defaults);
        String id = "cmpl-" + UUID.randomUUID().toString().replace("-", "");
        long created = System.currentTimeMillis() / 1000;
        try (Admission.Ticket ticket = admit(ex)) {
            String what = "POST /v1/completions";
            Clock clock = new Clock(what, arrived, awaitTurn(ticket, client, what), client);
            List<Engine.Job> jobs = new ArrayList<>();
            try {
                for (int i = 0; i < req.n(); i++) jobs.add(engine.prepareRaw(req.text(), req.ids()));
            } catch (ContextOverflowException e) {
                throw new ApiError(400, "invalid_request_error", e.getMessage(), "prompt", "context_length_exceeded");
            } catch (IllegalArgumentException e) {
                throw ApiError.invalid(e.getMessage(), "prompt");     // a token id outside the vocabulary, an image placeholder
            }
            String echo = !req.echo() ? "" : req.text() != null ? req.text() : engine.detokenize(req.ids());
            int n = req.n();
            List<List<Decoding.TokenLogprob>> lps = lists(n);
            int[] offsets = new int[n];            // text_offset of each choice's next token (echo and logprobs exclude each other)
            if (!req.stream()) {
                List<Generator.Result> rs = generateChoices(jobs, req.spec(), i -> null, i -> lps.get(i)::add, clock);
                if (client.gone()) throw clock.clientLeft(null);
                clock.finished(rs, jobs);
                ObjectNode root = envelope(id, created, "text_completion");
                ArrayNode choices = root.putArray("choices");
                for (int i = 0; i < n; i++) {
                    ObjectNode c = choices.addObject().put("text", echo + rs.get(i).text()).put("index", i);
                    if (req.logprobs()) c.set("logprobs", textLogprobs(lps.get(i), offsets, i));
                    else c.putNull("logprobs");
                    c.put("finish_reason", finishReason(rs.get(i)));
                }
                usage(root, rs, jobs);
                send(ex, 200, root);
                return;
            }
            startEvents(ex);
            OutputStream out = ex.getResponseBody();
            if (!echo.isEmpty()) for (int i = 0; i < n; i++) event(out, textChunk(id, created, req, i, echo, null, offsets));
            List<Generator.Result> rs;
            try {
                rs = generateChoices(jobs, req.spec(), i -> text -> {
                    clock.text();
                    send(out, textChunk(id, created, req, i, text, lps.get(i), offsets));
                }, i -> lps.get(i)::add, clock);
            } catch (UncheckedIOException e) {
                throw clock.clientLeft(e);                  // a write failed: the client went away, nobody to tell
            } catch (RuntimeException e) {
                event(out, errorBody("internal error: " + e, "server_error", null, null));
                return;
            }
            if (clock.client.gone()) throw clock.clientLeft(null);     // stopped for it: no [DONE] for a partial answer
            clock.finished(rs, jobs);
            for (int i = 0; i < n; i++) {
                ObjectNode last = textChunk(id, created, req, i, "", lps.get(i), offsets);
                ((ObjectNode) last.withArray("choices").get(0)).put("finish_reason", finishReason(rs.get(i)));
                event(out, last);
            }
            endStream(out, req.includeUsage(), envelope(id, created, "text_completion"), rs, jobs);
        }
    }

    /** A text-completion chunk of choice {@code index}; with logprobs asked, those of the tokens since the last chunk. */
    private ObjectNode textChunk(String id, long created, CompletionRequest req, int index, String text,
                                 List<Decoding.TokenLogprob> pending, int[] offsets) {
        ObjectNode c = envelope(id, created, "text_completion");
        ObjectNode choice = c.putArray("choices").addObject().put("text", text).put("index", index);
        if (req.logprobs() && pending != null) choice.set("logprobs", textLogprobs(pending, offsets, index));
        else choice.putNull("logprobs");
        choice.putNull("finish_reason");
        if (req.includeUsage()) c.putNull("usage");
        return c;
    }

    /**
     * Generates each job as one choice: choice i with seed + i (so that choice 0 is the answer n = 1 gives, and the
     * others differ). With more than one slot the choices run on their own threads, so the scheduler decodes them in
     * one batch; with one slot, one after another. Returns when all have ended; then rethrows the first failure.
     */
    private List<Generator.Result> generateChoices(List<Engine.Job> jobs, Engine.Spec spec, IntFunction<Generator.Listener> listeners,
                                                   IntFunction<Consumer<Decoding.TokenLogprob>> logprobs, Clock clock) {
        int n = jobs.size();
        Generator.Result[] results = new Generator.Result[n];
        IntConsumer one = i -> results[i] = jobs.get(i).generate(i == 0 ? spec : spec.withSeed(spec.sampling().seed() + i),
                listeners.apply(i), clock, logprobs.apply(i));
        if (n == 1 || options.parallel() == 1) {
            for (int i = 0; i < n; i++) one.accept(i);
            return List.of(results);
        }
        RuntimeException[] failures = new RuntimeException[n];
        Thread[] threads = new Thread[n];
        for (int i = 0; i < n; i++) {
            int c = i;
            threads[i] = Thread.ofVirtual().name("kimivl-choice-" + i).start(() -> {
                try {
                    one.accept(c);
                } catch (RuntimeException e) {
                    failures[c] = e;
                } catch (Error e) {
                    failures[c] = new IllegalStateException("choice " + c + " failed: " + e, e);
                }
            });
        }
        boolean interrupted = false;
        for (Thread t : threads) {
            while (true) {
                try {
                    t.join();
                    break;
                } catch (InterruptedException e) {
                    interrupted = true;
                }
            }
        }
        if (interrupted) Thread.currentThread().interrupt();
        // a client that went away shows first: it is why the others were cancelled
        for (RuntimeException f : failures) if (f instanceof UncheckedIOException) throw f;
        for (RuntimeException f : failures) if (f != null) throw f;
        return List.of(results);
    }

    private static <T> List<List<T>> lists(int n) {
        List<List<T>> l = new ArrayList<>();
        for (int i = 0; i < n; i++) l.add(new ArrayList<>());
        return l;
    }

    /** A token's text for logprobs: its bytes as UTF-8 (a piece of a character shows as U+FFFD; "bytes" has it exactly). */
    private String tokenText(int id) { return new String(engine.tokenBytes(id), StandardCharsets.UTF_8); }

    /** JSON cannot carry -Infinity: OpenAI's stand-in for an impossible token. */
    private static double finite(float logprob) { return Float.isFinite(logprob) ? logprob : -9999.0; }

    private ObjectNode chatToken(int id, float logprob) {
        ObjectNode o = json.createObjectNode().put("token", tokenText(id)).put("logprob", finite(logprob));
        ArrayNode bytes = o.putArray("bytes");
        for (byte b : engine.tokenBytes(id)) bytes.add(b & 0xff);
        return o;
    }

    /** Chat's {@code logprobs}: {"content": [{token, logprob, bytes, top_logprobs: [...]}], "refusal": null}; consumes the list. */
    private ObjectNode chatLogprobs(List<Decoding.TokenLogprob> lps) {
        ObjectNode root = json.createObjectNode();
        ArrayNode content = root.putArray("content");
        for (Decoding.TokenLogprob lp : lps) {
            ObjectNode t = chatToken(lp.token(), lp.logprob());
            ArrayNode top = t.putArray("top_logprobs");
            for (int k = 0; k < lp.topTokens().length; k++) top.add(chatToken(lp.topTokens()[k], lp.topLogprobs()[k]));
            content.add(t);
        }
        root.putNull("refusal");
        lps.clear();
        return root;
    }

    /**
     * Text completions' {@code logprobs}: {"tokens", "token_logprobs", "top_logprobs" (token → logprob maps),
     * "text_offset"}; consumes the list and moves choice {@code i}'s offset on.
     */
    private ObjectNode textLogprobs(List<Decoding.TokenLogprob> lps, int[] offsets, int i) {
        ObjectNode root = json.createObjectNode();
        ArrayNode tokens = root.putArray("tokens"), logprobs = root.putArray("token_logprobs"), top = root.putArray("top_logprobs"),
                offset = root.putArray("text_offset");
        for (Decoding.TokenLogprob lp : lps) {
            String text = tokenText(lp.token());
            tokens.add(text);
            logprobs.add(finite(lp.logprob()));
            ObjectNode alternatives = top.addObject();
            for (int k = 0; k < lp.topTokens().length; k++) alternatives.put(tokenText(lp.topTokens()[k]), finite(lp.topLogprobs()[k]));
            offset.add(offsets[i]);
            offsets[i] += text.length();
        }
        lps.clear();
        return root;
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

    /**
     * Waits for a generation slot; a client that goes away meanwhile leaves the queue at once (its place and its turn
     * go to the next request) and the request ends as a disconnect, having generated nothing.
     */
    private double awaitTurn(Admission.Ticket ticket, ConnectionWatch.Watch client, String what) {
        try {
            double waited = client.interruptible(ticket::awaitTurn);
            metrics.queueWait.observe(waited);
            if (client.gone()) throw clientLeftBeforeGenerating(what, "as the request got its turn");
            return waited;
        } catch (InterruptedException e) {
            if (client.gone()) throw clientLeftBeforeGenerating(what, "while the request waited in the queue");
            Thread.currentThread().interrupt();
            throw new ApiError(503, "server_error", "the request was interrupted while it waited for its turn", null, null);
        }
    }

    /** A client gone before its generation began: counted as stage "queued" and logged; the exception to end with. */
    private ClientGone clientLeftBeforeGenerating(String what, String when) {
        metrics.cancelled.labelValues("queued").inc();
        log.accept(what + ": the client went away " + when + ": dropped before generating (" + admission.waiting() + " waiting now)");
        return new ClientGone();
    }

    /** A request whose client went away: ends as "disconnected" in /metrics, with nothing sent. */
    static final class ClientGone extends UncheckedIOException {
        ClientGone() { super(new IOException("the client closed the connection")); }

        ClientGone(UncheckedIOException writeFailure) { super(writeFailure.getCause()); }
    }

    /**
     * Times one generation for /metrics and the log: time to first token from the request's arrival (its queue wait
     * included, as a client sees it), the gaps between tokens, and the totals when it ends. Created when the request
     * gets its turn, it also keeps the time limit ({@link ServerOptions#timeLimitSeconds()}) from that moment.
     */
    private final class Clock implements java.util.function.BooleanSupplier, Engine.Cancellation {
        private final String what;
        final ConnectionWatch.Watch client;
        private int generated;                  // tokens reported so far, all choices together
        private final long arrived, deadline;
        private final double queueWait;
        private long last;
        private boolean tokens, first = true, timedOut;
        private double ttft = -1;

        Clock(String what, long arrived, double queueWait, ConnectionWatch.Watch client) {
            this.what = what;
            this.client = client;
            this.arrived = arrived;
            this.queueWait = queueWait;
            this.deadline = options.timeLimitSeconds() == 0 ? 0 : System.nanoTime() + options.timeLimitSeconds() * 1_000_000_000L;
        }

        /**
         * A token was generated (engines that report tokens); false once the time limit has passed. Called on the
         * thread that samples (the scheduler's with continuous batching), while {@link #text} is called on the
         * request's: hence synchronized.
         */
        @Override public synchronized boolean getAsBoolean() {
            tokens = true;
            generated++;
            tick();
            if (deadline != 0 && last - deadline > 0) timedOut = true;
            return !timedOut && !client.gone();
        }

        /** The client went away ({@link ConnectionWatch}): the engine stops the sequence now, its prompt included. */
        @Override public boolean cancelled() { return client.gone(); }

        /**
         * The generation was stopped because its client went away (noticed by the watch, or {@code writeFailure}):
         * counted and logged with the tokens generated for nobody; the exception to end the request with.
         */
        synchronized ClientGone clientLeft(UncheckedIOException writeFailure) {
            if (writeFailure instanceof ClientGone g) return g;
            metrics.cancelled.labelValues("generating").inc();
            metrics.cancelledTokens.inc(generated);
            metrics.generationTokens.inc(generated);
            log.accept(String.format(Locale.ROOT, "%s: the client went away (%s) after %d generated tokens: generation stopped; %.3f s in all",
                    what, writeFailure == null ? "connection closed" : "a write failed", generated, (System.nanoTime() - arrived) / 1e9));
            return writeFailure == null ? new ClientGone() : new ClientGone(writeFailure);
        }

        /** Text went out: the first token for engines that do not report tokens. */
        synchronized void text() { if (!tokens && first) tick(); }

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

        /** The request's choices have ended (one, or n of the same prompt). */
        void finished(List<Generator.Result> rs, List<Engine.Job> jobs) {
            Generator.Result r = rs.getFirst();
            int cached = 0, generated = 0;
            for (int i = 0; i < rs.size(); i++) {
                Generator.Result c = rs.get(i);
                int hit = jobs.get(i).cachedTokens();
                cached += hit;
                generated += c.tokens().length;
                metrics.promptTokens.inc(c.promptTokens());
                metrics.cachedPromptTokens.inc(hit);
                metrics.generationTokens.inc(c.tokens().length);
                metrics.prefillSeconds.inc(c.prefillSeconds());
                metrics.decodeSeconds.inc(c.decodeSeconds());
            }
            int firstCached = jobs.getFirst().cachedTokens();
            double prefillRate = r.prefillSeconds() > 0 ? (r.promptTokens() - firstCached) / r.prefillSeconds() : 0;
            if (r.prefillSeconds() > 0) metrics.prefillRate.set(prefillRate);
            if (r.tokens().length > 1) metrics.decodeRate.set(r.decodeTokensPerSecond());
            double total = (System.nanoTime() - arrived) / 1e9;
            metrics.requestDuration.observe(total);
            String choices = rs.size() == 1 ? "" : " in " + rs.size() + " choices";
            log.accept(String.format(Locale.ROOT, "%s: prompt %d tokens (%d cached), %d generated%s (%s%s); queue wait %.3f s (%d waiting now), "
                            + "first token %.3f s, prefill %.1f tok/s, decode %.1f tok/s, %.3f s in all",
                    what, r.promptTokens(), cached, generated, choices, finishReason(r),
                    timedOut ? ": stopped at the time limit of " + options.timeLimitSeconds() + " s" : "", queueWait, admission.waiting(), Math.max(ttft, 0),
                    prefillRate, r.decodeTokensPerSecond(), total));
        }
    }

    private JsonNode parse(byte[] body) { return parseBody(json, body); }

    /** A request body as JSON; every malformed body is a 400 (the fuzz test ChatRequestFuzzTest calls this too). */
    static JsonNode parseBody(ObjectMapper json, byte[] body) {
        try {
            return json.readTree(body);
        } catch (StreamConstraintsException e) {
            throw ApiError.invalid("the request body goes past a limit of the JSON parser: " + e.getOriginalMessage(), null);
        } catch (JsonProcessingException e) {
            throw ApiError.invalid("the request body is not valid JSON: " + e.getOriginalMessage(), null);
        } catch (java.io.CharConversionException e) {
            // Jackson guesses the encoding from the first bytes: a body it takes for UTF-32 and cannot decode lands
            // here, not in JsonProcessingException; it was answered as a client disconnect (no answer at all; fuzzing)
            throw ApiError.invalid("the request body is not valid JSON text (" + e.getMessage() + ")", null);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static void startEvents(HttpExchange ex) throws IOException {
        ex.getResponseHeaders().set("Content-Type", "text/event-stream; charset=utf-8");
        ex.getResponseHeaders().set("Cache-Control", "no-cache");
        ex.sendResponseHeaders(200, 0);
    }

    private void stream(HttpExchange ex, ChatRequest req, List<Engine.Job> jobs, String id, long created, Clock clock) throws IOException {
        startEvents(ex);
        OutputStream out = ex.getResponseBody();
        int n = jobs.size();
        for (int i = 0; i < n; i++) {
            ObjectNode first = chunk(req, id, created, i);
            ((ObjectNode) first.withArray("choices").get(0)).putObject("delta").put("role", "assistant").put("content", "");
            event(out, first);
        }
        // per choice: the logprobs of tokens whose text has not gone out yet (a stop string's start is held back)
        List<List<Decoding.TokenLogprob>> pending = lists(n);
        ThinkingFilter[] filters = new ThinkingFilter[n];
        for (int i = 0; i < n; i++) {
            int c = i;
            filters[i] = new ThinkingFilter(text -> delta(out, req, id, created, c, "content", text, pending.get(c)),
                    text -> delta(out, req, id, created, c, "reasoning_content", text, pending.get(c)));
        }
        List<Generator.Result> rs;
        try {
            rs = generateChoices(jobs, req.spec(), i -> text -> {
                clock.text();
                filters[i].onText(text);
            }, i -> pending.get(i)::add, clock);
            if (clock.client.gone()) throw clock.clientLeft(null);     // stopped for it: no [DONE] for a partial answer
            for (ThinkingFilter f : filters) f.finish();
        } catch (UncheckedIOException e) {
            throw clock.clientLeft(e);                  // a write failed: the client went away, nobody to tell
        } catch (RuntimeException e) {
            // the 200 is already sent: the error travels as an event with OpenAI's error object, and the stream
            // ends without [DONE] so that a client cannot take the partial answer for a whole one
            event(out, errorBody("internal error: " + e, "server_error", null, null));
            return;
        }
        clock.finished(rs, jobs);
        for (int i = 0; i < n; i++) {
            ObjectNode last = chunk(req, id, created, i);
            ObjectNode choice = (ObjectNode) last.withArray("choices").get(0);
            choice.putObject("delta");
            if (req.logprobs() && !pending.get(i).isEmpty()) choice.set("logprobs", chatLogprobs(pending.get(i)));
            choice.put("finish_reason", finishReason(rs.get(i)));
            event(out, last);
        }
        endStream(out, req.includeUsage(), envelope(id, created, "chat.completion.chunk"), rs, jobs);
    }

    /** A delta of choice {@code index}; with logprobs asked, it carries those of the tokens since the last delta. */
    private void delta(OutputStream out, ChatRequest req, String id, long created, int index, String field, String text,
                       List<Decoding.TokenLogprob> pending) {
        ObjectNode c = chunk(req, id, created, index);
        ObjectNode choice = (ObjectNode) c.withArray("choices").get(0);
        choice.putObject("delta").put(field, text);
        if (req.logprobs()) choice.set("logprobs", chatLogprobs(pending));
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

    private ObjectNode chunk(ChatRequest req, String id, long created, int index) {
        ObjectNode c = envelope(id, created, "chat.completion.chunk");
        ArrayNode choices = c.putArray("choices");
        choices.addObject().put("index", index).putNull("finish_reason");
        if (req.includeUsage()) c.putNull("usage");     // as OpenAI: every chunk has the field, the last one its value
        return c;
    }

    private static String finishReason(Generator.Result r) {
        return r.finishReason() == Generator.FinishReason.STOP ? "stop" : "length";
    }

    /** Usage of a request's choices: the prompt once (as OpenAI counts it), the completions summed. */
    private static void usage(ObjectNode root, List<Generator.Result> rs, List<Engine.Job> jobs) {
        int prompt = rs.getFirst().promptTokens(), completion = 0;
        for (Generator.Result r : rs) completion += r.tokens().length;
        ObjectNode u = root.putObject("usage").put("prompt_tokens", prompt).put("completion_tokens", completion)
                .put("total_tokens", prompt + completion);
        u.putObject("prompt_tokens_details").put("cached_tokens", jobs.getFirst().cachedTokens());
    }

    /**
     * The end of a stream after its last choice chunks: with include_usage a chunk of no choices carrying the usage
     * (OpenAI's shape; {@code envelope} is that chunk's id/created/object), then {@code [DONE]}.
     */
    private void endStream(OutputStream out, boolean includeUsage, ObjectNode envelope, List<Generator.Result> rs, List<Engine.Job> jobs) throws IOException {
        if (includeUsage) {
            envelope.putArray("choices");
            usage(envelope, rs, jobs);
            event(out, envelope);
        }
        synchronized (out) {
            out.write("data: [DONE]\n\n".getBytes(StandardCharsets.UTF_8));
            out.flush();
        }
    }

    /** One server-sent event; the choices of one request may write from their own threads, one event at a time. */
    private void event(OutputStream out, ObjectNode payload) throws IOException {
        byte[] b = ("data: " + json.writeValueAsString(payload) + "\n\n").getBytes(StandardCharsets.UTF_8);
        synchronized (out) {
            out.write(b);
            out.flush();
        }
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
    private static String shorten(String s) { return ApiError.oneLine(s.length() > 200 ? s.substring(0, 200) + "…" : s); }

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
