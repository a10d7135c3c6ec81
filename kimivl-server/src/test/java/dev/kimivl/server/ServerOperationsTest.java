package dev.kimivl.server;

import com.fasterxml.jackson.databind.JsonNode;
import org.junit.jupiter.api.Test;

import java.io.BufferedReader;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.net.Socket;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static dev.kimivl.server.ServerApiTest.JSON;
import static dev.kimivl.server.ServerApiTest.client;
import static dev.kimivl.server.ServerApiTest.request;
import static dev.kimivl.server.ServerApiTest.send;
import static org.junit.jupiter.api.Assertions.*;

/** Running the server: the bounded queue (429), /metrics, a client that disconnects mid-stream, SIGTERM's drain. */
class ServerOperationsTest {
    static final String CHAT = "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}]%s}";

    static HttpRequest chatRequest(OpenAiServer s, String extra) {
        return request(s, "/v1/chat/completions").POST(HttpRequest.BodyPublishers.ofString(CHAT.formatted(extra))).build();
    }

    static String metrics(OpenAiServer s) throws Exception {
        var r = send(request(s, "/metrics").GET().build());
        assertEquals(200, r.statusCode(), r.body());
        return r.body();
    }

    /** The value of one sample line of the Prometheus text, e.g. {@code kimivl_requests_waiting} or with its labels. */
    static double sample(String metrics, String nameAndLabels) {
        Matcher m = Pattern.compile("(?m)^" + Pattern.quote(nameAndLabels) + " (\\S+)$").matcher(metrics);
        assertTrue(m.find(), nameAndLabels + " in:\n" + metrics);
        return Double.parseDouble(m.group(1));
    }

    static void waitFor(String what, java.util.function.BooleanSupplier cond) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        while (!cond.getAsBoolean()) {
            if (System.nanoTime() > deadline) fail("timed out waiting for " + what);
            Thread.sleep(5);
        }
    }

    @Test
    void aFullQueueAnswers429WithRetryAfterAndTheLogSaysSo() throws Exception {
        PacedEngine engine = new PacedEngine(3, 1, true);
        List<String> log = Collections.synchronizedList(new ArrayList<>());
        try (OpenAiServer s = new OpenAiServer(engine, new ServerDefaults("p", 1000, 0.0, 0), ServerOptions.local(0).withQueue(1))) {
            s.logTo(log::add);
            s.start();
            CompletableFuture<HttpResponse<String>> first = client.sendAsync(chatRequest(s, ""), HttpResponse.BodyHandlers.ofString());
            waitFor("the first request to generate", () -> engine.started.get() == 1);
            CompletableFuture<HttpResponse<String>> second = client.sendAsync(chatRequest(s, ""), HttpResponse.BodyHandlers.ofString());
            waitFor("the second request to wait", () -> {
                try {
                    return sample(metrics(s), "kimivl_requests_waiting") == 1;
                } catch (Exception e) {
                    throw new RuntimeException(e);
                }
            });
            assertEquals(1, sample(metrics(s), "kimivl_requests_running"));

            var third = send(chatRequest(s, ""));
            assertEquals(429, third.statusCode(), third.body());
            JsonNode e = JSON.readTree(third.body()).get("error");
            assertEquals("rate_limit_exceeded", e.get("type").asText());
            assertEquals("queue_full", e.get("code").asText());
            assertTrue(e.get("message").asText().contains("queue of 1"), e.toString());
            int retryAfter = Integer.parseInt(third.headers().firstValue("Retry-After").orElseThrow());
            assertTrue(retryAfter >= 1, "Retry-After " + retryAfter);
            // a text completion shares the queue
            assertEquals(429, send(request(s, "/v1/completions").POST(HttpRequest.BodyPublishers.ofString("{\"prompt\": \"x\"}")).build()).statusCode());

            engine.gate.release(2);
            assertEquals(200, first.get(20, TimeUnit.SECONDS).statusCode());
            assertEquals(200, second.get(20, TimeUnit.SECONDS).statusCode());
            assertEquals(1, engine.maxRunning.get(), "one generation at a time");
            // a request is counted after its exchange closes, which may come just after the client has the whole answer
            waitFor("both answers counted", () -> {
                try {
                    return sample(metrics(s), "kimivl_requests_total{path=\"/v1/chat/completions\",status=\"200\"}") == 2;
                } catch (Exception x) {
                    throw new RuntimeException(x);
                }
            });
            String m = metrics(s);
            assertEquals(2, sample(m, "kimivl_requests_total{path=\"/v1/chat/completions\",status=\"200\"}"));
            assertEquals(1, sample(m, "kimivl_requests_total{path=\"/v1/chat/completions\",status=\"429\"}"));
            assertEquals(1, sample(m, "kimivl_requests_total{path=\"/v1/completions\",status=\"429\"}"));
            assertEquals(0, sample(m, "kimivl_requests_waiting"));
            assertEquals(0, sample(m, "kimivl_requests_running"));
            assertEquals(2, sample(m, "kimivl_queue_wait_seconds_count"));
            assertTrue(sample(m, "kimivl_queue_wait_seconds_sum") > 0);
            synchronized (log) {
                assertTrue(log.stream().anyMatch(l -> l.startsWith("429 POST /v1/chat/completions: queue full (1 generating, 1 waiting of 1)")), log.toString());
                assertEquals(2, log.stream().filter(l -> l.contains("queue wait") && l.contains("waiting now")).count(), log.toString());
            }
        }
    }

    @Test
    void metricsAreInPrometheusTextFormat() throws Exception {
        PacedEngine engine = new PacedEngine(4, 2, false);
        try (OpenAiServer s = new OpenAiServer(engine, new ServerDefaults("p", 1000, 0.0, 0), ServerOptions.local(0).withApiKey("k"))) {
            s.start();
            for (int i = 0; i < 3; i++) {
                assertEquals(200, send(request(s, "/v1/chat/completions").header("Authorization", "Bearer k")
                        .POST(HttpRequest.BodyPublishers.ofString(CHAT.formatted(i == 0 ? ", \"stream\": true" : ""))).build()).statusCode());
            }
            assertEquals(404, send(request(s, "/wp-login.php").GET().build()).statusCode());
            // an exchange is counted after its last byte went out: a client may read the answer before the count
            waitFor("the 404 to be counted", () -> {
                try {
                    return metrics(s).contains("kimivl_requests_total{path=\"other\",status=\"404\"}");
                } catch (Exception e) {
                    throw new IllegalStateException(e);
                }
            });
            var r = send(request(s, "/metrics").GET().build());      // no key needed, as for /health
            assertEquals(200, r.statusCode());
            assertTrue(r.headers().firstValue("Content-Type").orElse("").startsWith("text/plain; version=0.0.4"), r.headers().toString());
            String m = r.body();
            assertEquals(3, sample(m, "kimivl_requests_total{path=\"/v1/chat/completions\",status=\"200\"}"));
            assertEquals(1, sample(m, "kimivl_requests_total{path=\"other\",status=\"404\"}"), "unknown paths share one label");
            assertEquals(15, sample(m, "kimivl_prompt_tokens_total"), "5 prompt tokens each");
            assertEquals(12, sample(m, "kimivl_generation_tokens_total"));
            assertEquals(3, sample(m, "kimivl_time_to_first_token_seconds_count"));
            assertEquals(9, sample(m, "kimivl_time_per_output_token_seconds_count"), "3 gaps between 4 tokens, 3 requests");
            assertTrue(sample(m, "kimivl_time_per_output_token_seconds_sum") >= 9 * 0.002, "each gap is ≥ 2 ms");
            assertEquals(0, sample(m, "kimivl_time_per_output_token_seconds_bucket{le=\"0.002\"}"), "no gap under 2 ms");
            assertEquals(9, sample(m, "kimivl_time_per_output_token_seconds_bucket{le=\"+Inf\"}"));
            assertTrue(sample(m, "kimivl_decode_tokens_per_second") > 0);
            assertEquals(0, sample(m, "kimivl_prefix_cache_lookups_total{result=\"hit\"}"));
            assertEquals(0, sample(m, "kimivl_image_cache_lookups_total{result=\"miss\"}"));
            assertTrue(m.contains("# TYPE kimivl_time_to_first_token_seconds histogram"), m);
        }
    }

    @Test
    void aGenerationPastTheTimeLimitEndsAsAtMaxTokens() throws Exception {
        PacedEngine engine = new PacedEngine(1000, 5, false);    // 5 s unless stopped
        List<String> log = Collections.synchronizedList(new ArrayList<>());
        try (OpenAiServer s = new OpenAiServer(engine, new ServerDefaults("p", 2000, 0.0, 0), ServerOptions.local(0).withTimeLimitSeconds(1))) {
            s.logTo(log::add);
            s.start();
            var r = send(chatRequest(s, ""));
            assertEquals(200, r.statusCode(), r.body());
            JsonNode j = JSON.readTree(r.body());
            assertEquals("length", j.at("/choices/0/finish_reason").asText());
            int words = j.at("/choices/0/message/content").asText().split(" ").length;
            assertTrue(words > 0 && words < 1000, words + " words");
            assertEquals(words, j.at("/usage/completion_tokens").asInt());
            assertEquals(1, engine.finished.get(), "ended normally, not by an error");
            synchronized (log) {
                assertTrue(log.getFirst().contains("(length: stopped at the time limit of 1 s)"), log.toString());
            }
            // streaming ends the same way, whole
            List<JsonNode> ev = ServerApiTest.events(send(chatRequest(s, ", \"stream\": true")));
            assertEquals("length", ev.getLast().at("/choices/0/finish_reason").asText());
        }
    }

    /** Writes a streaming request on a raw socket, reads {@code events} data lines of the answer, then closes the socket. */
    static void readSomeThenHangUp(int port, String body, int events) throws Exception {
        try (Socket sock = ClientDisconnectTest.post(port, body)) {
            BufferedReader in = new BufferedReader(new InputStreamReader(sock.getInputStream(), StandardCharsets.UTF_8));
            assertTrue(in.readLine().startsWith("HTTP/1.1 200"));
            int seen = 0;
            for (String line; seen < events && (line = in.readLine()) != null; ) if (line.contains("data: ")) seen++;
            assertEquals(events, seen);
        }                                                   // closed mid-stream
    }

    @Test
    void aClientThatDisconnectsMidStreamStopsItsGenerationAndFreesItsSlot() throws Exception {
        PacedEngine engine = new PacedEngine(400, 10, false);   // 4 s if nobody stopped it
        List<String> log = Collections.synchronizedList(new ArrayList<>());
        try (OpenAiServer s = new OpenAiServer(engine, new ServerDefaults("p", 1000, 0.0, 0), ServerOptions.local(0).withQueue(0))) {
            s.logTo(log::add);
            s.start();
            long t0 = System.nanoTime();
            readSomeThenHangUp(s.port(), CHAT.formatted(", \"stream\": true"), 4);   // the role chunk and 3 words
            assertTrue(engine.ended.await(10, TimeUnit.SECONDS), "the generation ended");
            double seconds = (System.nanoTime() - t0) / 1e9;
            // ended either by the failed write (the listener's exception) or by the connection watch (onToken false)
            assertEquals(1, engine.aborted.get() + engine.finished.get(), "one generation, ended");
            assertTrue(engine.lastEmitted < 400, "stopped after " + engine.lastEmitted + " of 400 words");
            assertTrue(seconds < 3.5, "stopped early: " + seconds + " s");
            // the slot is freed: the request's thread closes its ticket just after the engine returns (a leaked slot
            // would time out here), and with a queue of 0 the next request would get 429 if the dead one still held it
            waitFor("the slot to be given back", s::idle);
            var next = send(chatRequest(s, ", \"max_tokens\": 2"));
            assertEquals(200, next.statusCode(), next.body());
            assertEquals("w0 w1 ", JSON.readTree(next.body()).at("/choices/0/message/content").asText());
            String m = metrics(s);
            assertEquals(1, sample(m, "kimivl_requests_total{path=\"/v1/chat/completions\",status=\"disconnected\"}"), m);
            assertEquals(0, sample(m, "kimivl_requests_waiting"));
            assertEquals(0, sample(m, "kimivl_requests_running"));
            assertEquals(1, sample(m, "kimivl_requests_cancelled_total{stage=\"generating\"}"), m);
            synchronized (log) {
                assertEquals(2, log.size(), "the stopped generation and the next one logged: " + log);
                assertTrue(log.getFirst().contains("the client went away"), log.toString());
            }
        }
    }

    @Test
    void sigtermDrainsTheRunningRequestsThenExits() throws Exception {
        String java = ProcessHandle.current().info().command().orElseThrow();
        Process p = new ProcessBuilder(java, "--add-modules", "jdk.incubator.vector", "-cp", System.getProperty("java.class.path"),
                DrainMain.class.getName()).redirectError(ProcessBuilder.Redirect.PIPE).start();
        StringBuilder err = new StringBuilder();
        Thread errReader = Thread.ofVirtual().start(() -> {
            try (BufferedReader r = new BufferedReader(new InputStreamReader(p.getErrorStream(), StandardCharsets.UTF_8))) {
                for (String line; (line = r.readLine()) != null; ) synchronized (err) { err.append(line).append('\n'); }
            } catch (java.io.IOException ignored) {
            }
        });
        try {
            BufferedReader out = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8));
            String first = out.readLine();
            assertNotNull(first, "the server process printed nothing; stderr:\n" + err);
            assertTrue(first.startsWith("port "), first);
            int port = Integer.parseInt(first.substring(5).strip());

            // a stream of 30 words at 50 ms: 1.5 s; SIGTERM comes after its first word
            try (Socket sock = ClientDisconnectTest.post(port, CHAT.formatted(", \"stream\": true"))) {
                InputStream is = sock.getInputStream();
                BufferedReader in = new BufferedReader(new InputStreamReader(is, StandardCharsets.UTF_8));
                StringBuilder text = new StringBuilder();
                int words = 0;
                boolean done = false, signalled = false;
                for (String line; (line = in.readLine()) != null; ) {
                    if (!line.startsWith("data: ")) continue;
                    if (line.equals("data: [DONE]")) { done = true; break; }
                    String w = JSON.readTree(line.substring(6)).at("/choices/0/delta/content").asText("");
                    if (w.startsWith("w")) words++;
                    text.append(w);
                    if (words == 1 && !signalled) {
                        // SIGTERM (on Linux and macOS); Process.destroy() would also close our end of its stderr
                        p.toHandle().destroy();
                        signalled = true;
                    }
                }
                assertTrue(signalled);
                assertTrue(done, "the running answer ended whole, with [DONE]; got: " + text + "\nstderr:\n" + err);
                assertEquals(30, words, text.toString());
            }
            assertTrue(p.waitFor(20, TimeUnit.SECONDS), "the server exited after draining");
            errReader.join(5_000);
            synchronized (err) {
                assertTrue(err.toString().contains("drain-main: draining: 1 request(s) generating"), err.toString());
                assertTrue(err.toString().contains("drain-main: drained: every request finished; stopped"), err.toString());
            }
        } finally {
            p.destroyForcibly();
        }
    }
}
