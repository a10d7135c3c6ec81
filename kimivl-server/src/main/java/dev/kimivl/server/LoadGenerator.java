package dev.kimivl.server;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Drives an OpenAI-compatible server over HTTP with C concurrent streaming clients ({@code kimivl bench-serve}), as
 * vLLM's {@code benchmark_serving} and llama.cpp's server bench do: each client sends its next chat request as soon
 * as the last one ended, until the level's requests are done. A request's tokens are the usage the server reports
 * ({@code stream_options.include_usage}), its time to first token is until the first content (or reasoning) delta,
 * and its per-token latency is (end − first token) / (tokens − 1). Each request's last message starts with
 * "(request N)", so that a server's prefix cache cannot answer one request from the previous one's identical prompt.
 *
 * @param baseUrl   the server, e.g. {@code http://127.0.0.1:8080} (no {@code /v1})
 * @param apiKey    sent as {@code Authorization: Bearer}, or null
 * @param body      the chat request every client sends; {@code stream} and {@code stream_options} are set here
 */
public record LoadGenerator(String baseUrl, String apiKey, ObjectNode body, Duration timeout) {
    private static final ObjectMapper JSON = new ObjectMapper();

    /** A chat request: one user message with {@code prompt}, greedy, at most {@code maxTokens}. */
    public static ObjectNode chatBody(String prompt, int maxTokens) {
        ObjectNode b = JSON.createObjectNode();
        b.putArray("messages").addObject().put("role", "user").put("content", prompt);
        b.put("max_tokens", maxTokens).put("temperature", 0);
        return b;
    }

    /** One finished request, as the client saw it. */
    public record Sample(int tokens, double ttftSeconds, double totalSeconds) {
        /** Seconds per token after the first; NaN with fewer than two tokens. */
        public double perTokenSeconds() { return tokens < 2 ? Double.NaN : (totalSeconds - ttftSeconds) / (tokens - 1); }
    }

    /**
     * One concurrency level's results.
     *
     * @param failures   requests that got an error status (429 included) or a broken stream, by first message
     */
    public record Level(int concurrency, List<Sample> samples, List<String> failures, double wallSeconds) {
        public int tokens() { return samples.stream().mapToInt(Sample::tokens).sum(); }

        /** Generated tokens per second of wall time, all clients together. */
        public double tokensPerSecond() { return tokens() / Math.max(1e-9, wallSeconds); }

        public double ttft(double q) { return quantile(samples.stream().mapToDouble(Sample::ttftSeconds).toArray(), q); }

        public double perToken(double q) {
            return quantile(samples.stream().mapToDouble(Sample::perTokenSeconds).filter(d -> !Double.isNaN(d)).toArray(), q);
        }

        public double latency(double q) { return quantile(samples.stream().mapToDouble(Sample::totalSeconds).toArray(), q); }

        /** A table row: C, requests, failures, tok/s, TTFT p50/p95, per-token p50/p95, latency p50/p95 (ms). */
        public String row() {
            return String.format(Locale.ROOT, "%4d %8d %6d %10.1f %9.0f %9.0f %9.1f %9.1f %9.0f %9.0f", concurrency, samples.size(),
                    failures.size(), tokensPerSecond(), 1e3 * ttft(0.5), 1e3 * ttft(0.95), 1e3 * perToken(0.5), 1e3 * perToken(0.95),
                    1e3 * latency(0.5), 1e3 * latency(0.95));
        }

        public static String header() {
            return "   C requests failed      tok/s  ttft p50  ttft p95  tpot p50  tpot p95   lat p50   lat p95   (ms)";
        }
    }

    /**
     * Nearest-rank quantile (the smallest value with at least q of the values at or below it); NaN for no values.
     */
    public static double quantile(double[] values, double q) {
        if (values.length == 0) return Double.NaN;
        double[] v = values.clone();
        Arrays.sort(v);
        int rank = (int) Math.ceil(q * v.length);
        return v[Math.max(0, Math.min(v.length - 1, rank - 1))];
    }

    /** Runs {@code requests} requests from {@code concurrency} clients and returns what they saw. */
    public Level run(int concurrency, int requests) throws InterruptedException {
        if (concurrency < 1 || requests < 1) throw new IllegalArgumentException("need ≥ 1 client and ≥ 1 request, got " + concurrency + " and " + requests);
        AtomicInteger numbers = new AtomicInteger();
        List<Sample> samples = Collections.synchronizedList(new ArrayList<>());
        List<String> failures = Collections.synchronizedList(new ArrayList<>());
        AtomicInteger left = new AtomicInteger(requests);
        try (HttpClient client = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();
             ExecutorService clients = Executors.newFixedThreadPool(concurrency)) {
            long t0 = System.nanoTime();
            List<Future<?>> running = new ArrayList<>();
            for (int c = 0; c < concurrency; c++) {
                running.add(clients.submit(() -> {
                    while (left.getAndDecrement() > 0) {
                        try {
                            samples.add(one(client, payload(numbers.incrementAndGet())));
                        } catch (Failure | IOException e) {
                            failures.add(e.getMessage());
                        } catch (InterruptedException e) {
                            Thread.currentThread().interrupt();
                            return;
                        }
                    }
                }));
            }
            for (Future<?> f : running) {
                try {
                    f.get();
                } catch (java.util.concurrent.ExecutionException e) {
                    throw new IllegalStateException("a client failed: " + e.getCause(), e.getCause());
                }
            }
            return new Level(concurrency, List.copyOf(samples), List.copyOf(failures), (System.nanoTime() - t0) / 1e9);
        }
    }

    /** The request body for request n: streaming with usage, the last message marked "(request n)". */
    private byte[] payload(int n) {
        ObjectNode b = body.deepCopy();
        b.put("stream", true);
        b.putObject("stream_options").put("include_usage", true);
        JsonNode msgs = b.path("messages");
        if (msgs.isArray() && !msgs.isEmpty() && msgs.get(msgs.size() - 1) instanceof ObjectNode last) {
            JsonNode content = last.get("content");
            String mark = "(request " + n + ") ";
            if (content != null && content.isTextual()) {
                last.put("content", mark + content.asText());
            } else if (content instanceof com.fasterxml.jackson.databind.node.ArrayNode parts) {
                parts.insertObject(0).put("type", "text").put("text", mark);
            }
        }
        try {
            return JSON.writeValueAsBytes(b);
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    private static final class Failure extends Exception {
        Failure(String message) { super(message); }
    }

    private Sample one(HttpClient client, byte[] payload) throws IOException, InterruptedException, Failure {
        HttpRequest.Builder r = HttpRequest.newBuilder(URI.create(baseUrl + "/v1/chat/completions")).timeout(timeout)
                .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofByteArray(payload));
        if (apiKey != null) r.header("Authorization", "Bearer " + apiKey);
        long t0 = System.nanoTime();
        HttpResponse<java.io.InputStream> resp = client.send(r.build(), HttpResponse.BodyHandlers.ofInputStream());
        if (resp.statusCode() != 200) {
            String body = new String(resp.body().readAllBytes(), StandardCharsets.UTF_8);
            String msg = body;
            try {
                msg = JSON.readTree(body).at("/error/message").asText(body);
            } catch (IOException ignored) {
                // not JSON: the body itself
            }
            throw new Failure("HTTP " + resp.statusCode() + ": " + (msg.length() > 200 ? msg.substring(0, 200) : msg));
        }
        long first = -1;
        int tokens = -1;
        boolean done = false;
        try (BufferedReader in = new BufferedReader(new InputStreamReader(resp.body(), StandardCharsets.UTF_8))) {
            for (String line; (line = in.readLine()) != null; ) {
                if (!line.startsWith("data: ")) continue;
                if (line.equals("data: [DONE]")) {
                    done = true;
                    break;
                }
                JsonNode c = JSON.readTree(line.substring(6));
                if (c.has("error")) throw new Failure("error event: " + c.at("/error/message").asText());
                JsonNode d = c.at("/choices/0/delta");
                if (first < 0 && (!d.path("content").asText("").isEmpty() || !d.path("reasoning_content").asText("").isEmpty())) {
                    first = System.nanoTime();
                }
                if (c.hasNonNull("usage")) tokens = c.at("/usage/completion_tokens").asInt();
            }
        }
        long end = System.nanoTime();
        if (!done) throw new Failure("the stream ended without [DONE]");
        if (tokens < 0) throw new Failure("no usage chunk (the server ignored stream_options.include_usage)");
        if (first < 0) first = end;                    // an empty answer: its first token is its end
        return new Sample(tokens, (first - t0) / 1e9, (end - t0) / 1e9);
    }
}
