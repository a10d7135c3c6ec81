package dev.kimivl.server;

import dev.kimivl.model.KimiVL;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import static dev.kimivl.server.ServerApiTest.JSON;
import static dev.kimivl.server.ServerApiTest.send;
import static dev.kimivl.server.ServerOperationsTest.chatRequest;
import static dev.kimivl.server.ServerOperationsTest.metrics;
import static dev.kimivl.server.ServerOperationsTest.sample;
import static dev.kimivl.server.ServerOperationsTest.waitFor;
import static org.junit.jupiter.api.Assertions.*;

/**
 * A client that goes away stops its work: on tiny-random through the batching scheduler (the real decode loop), a
 * streaming client that hangs up after its first chunk and a non-streaming one that hangs up while its answer is
 * computed both end their generation long before max_tokens, as /metrics counts it
 * ({@code kimivl_requests_cancelled_total}, {@code kimivl_cancelled_generation_tokens_total}), and the next request is
 * served; a client that leaves while queued never generates. The non-streaming and queued cases need
 * {@link ConnectionWatch} (Linux's /proc/net/tcp): on Linux a server without it fails these tests.
 */
class ClientDisconnectTest {
    /**
     * A streaming client's hang-up is noticed at the next chunk written, so "stopped early" there is under a quarter of
     * max_tokens (EARLY). A non-streaming one's is noticed by the watch's next pass (~0.2-0.3 s, where a pass costs
     * 3.4 ms of CPU per table: ConnectionWatch): a token or two of a real model, but hundreds to thousands of
     * tiny-random's, so that test bounds the time instead (STOP_WITHIN_SECONDS).
     */
    static final int MAX_TOKENS = 4000, EARLY = MAX_TOKENS / 4;
    /**
     * A hang-up with nothing written (non-streaming) is noticed by the watch's next pass: at most
     * ConnectionWatch.MAX_PERIOD_MILLIS apart, plus as much again for a loaded machine. Measured in time, not tokens:
     * tiny-random's tokens per pass depend on the CPU.
     */
    static final double STOP_WITHIN_SECONDS = 2 * ConnectionWatch.MAX_PERIOD_MILLIS / 1000.0;
    static KimiVL model;

    @BeforeAll
    static void open() { model = KimiVL.open(Path.of("../models/tiny-random")); }

    @AfterAll
    static void close() { model.close(); }

    /** A long answer that no stop token can end early: only a disconnect stops it before max_tokens. */
    static String longRequest(boolean stream) {
        return "{\"messages\": [{\"role\": \"user\", \"content\": \"Tell me a long story.\"}], \"max_tokens\": " + MAX_TOKENS
                + ", \"ignore_eos\": true, \"temperature\": 0, \"stream\": " + stream + "}";
    }

    /** parallel 1: Generator's own loop on the request's thread; 2: the batching scheduler. */
    static OpenAiServer server(List<String> log, int parallel) throws Exception {
        OpenAiServer s = new OpenAiServer(model, new ServerDefaults("tiny-random", 16, 0.0, 0), ServerOptions.local(0).withQueue(0).withParallel(parallel, 64));
        s.logTo(log::add);
        s.start();
        requireWatch(s);
        return s;
    }

    /** On Linux the watch must work (CI runs there); elsewhere the tests that need it cannot run. */
    static void requireWatch(OpenAiServer s) {
        boolean linux = System.getProperty("os.name", "").toLowerCase().contains("linux");
        if (linux) {
            assertTrue(s.watchesConnections(), "/proc/net/tcp is not readable: the server cannot notice disconnects without a write");
        } else {
            System.err.println("ClientDisconnectTest: SKIPPED on " + System.getProperty("os.name") + " (no /proc/net/tcp)");
            org.junit.jupiter.api.Assumptions.assumeTrue(false, "needs Linux's /proc/net/tcp");
        }
    }

    static Socket post(int port, String body) throws Exception {
        Socket sock = new Socket("127.0.0.1", port);
        sock.setSoTimeout(20_000);
        byte[] b = body.getBytes(StandardCharsets.UTF_8);
        OutputStream out = sock.getOutputStream();
        out.write(("POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: "
                + b.length + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
        out.write(b);
        out.flush();
        return sock;
    }

    static double metric(OpenAiServer s, String name) throws Exception { return sample(metrics(s), name); }

    static void waitForMetric(OpenAiServer s, String name, double value) throws InterruptedException {
        waitFor(name + " = " + value, () -> {
            try {
                return metric(s, name) == value;
            } catch (Exception | AssertionError e) {
                return false;
            }
        });
    }

    /** After a disconnect: the slot is free and the server answers the next request. */
    static void nextRequestIsServed(OpenAiServer s) throws Exception {
        waitForMetric(s, "kimivl_requests_running", 0);
        var next = send(chatRequest(s, ", \"max_tokens\": 3"));
        assertEquals(200, next.statusCode(), next.body());
        assertEquals(3, JSON.readTree(next.body()).at("/usage/completion_tokens").asInt(), next.body());
    }

    @Test
    void aStreamingClientThatHangsUpAfterItsFirstChunkStopsItsGeneration() throws Exception {
        List<String> log = Collections.synchronizedList(new ArrayList<>());
        try (OpenAiServer s = server(log, 2)) {
            try (Socket sock = post(s.port(), longRequest(true))) {
                BufferedReader in = new BufferedReader(new InputStreamReader(sock.getInputStream(), StandardCharsets.UTF_8));
                assertTrue(in.readLine().startsWith("HTTP/1.1 200"));
                int data = 0;
                for (String line; data < 2 && (line = in.readLine()) != null; ) if (line.startsWith("data: ")) data++;
                assertEquals(2, data, "the role chunk and the first text chunk");
            }                                                   // hung up
            waitForMetric(s, "kimivl_requests_cancelled_total{stage=\"generating\"}", 1);
            double tokens = metric(s, "kimivl_cancelled_generation_tokens_total");
            System.err.println("streaming client gone after its first chunk: " + (int) tokens + " tokens generated of " + MAX_TOKENS);
            assertTrue(tokens >= 1 && tokens < EARLY, "stopped early: " + tokens + " tokens of " + MAX_TOKENS);
            assertEquals(1, metric(s, "kimivl_requests_total{path=\"/v1/chat/completions\",status=\"disconnected\"}"));
            nextRequestIsServed(s);
            synchronized (log) {
                assertTrue(log.stream().anyMatch(l -> l.contains("the client went away") && l.contains((int) tokens + " generated tokens")), log.toString());
            }
        }
    }

    @org.junit.jupiter.params.ParameterizedTest(name = "parallel {0}")
    @org.junit.jupiter.params.provider.ValueSource(ints = {1, 2})
    void aNonStreamingClientThatHangsUpStopsItsGeneration(int parallel) throws Exception {
        List<String> log = Collections.synchronizedList(new ArrayList<>());
        try (OpenAiServer s = server(log, parallel)) {
            double before;
            try (Socket sock = post(s.port(), longRequest(false))) {
                // decoding: its first token is out (the histogram counts it then), and a few more after it
                waitForMetric(s, "kimivl_time_to_first_token_seconds_count", 1);
                Thread.sleep(30);
                // tokens so far, as the latency histograms count them live (one first token, then one gap each)
                before = metric(s, "kimivl_time_to_first_token_seconds_count") + metric(s, "kimivl_time_per_output_token_seconds_count");
            }                                                   // hung up: nothing was written to notice it by
            waitForMetric(s, "kimivl_requests_cancelled_total{stage=\"generating\"}", 1);
            double tokens = metric(s, "kimivl_cancelled_generation_tokens_total");
            // how long it went on after the hang-up, at the mean time per token (tiny-random's rate is the machine's:
            // ~1 ms a token on the Zen 3 VMs, ~0.2 ms on a Zen 5 one, where a watch pass every ~270 ms is 1,300 tokens)
            double perToken = metric(s, "kimivl_time_per_output_token_seconds_sum") / metric(s, "kimivl_time_per_output_token_seconds_count");
            double afterSeconds = (tokens - before) * perToken;
            System.err.println("non-streaming client gone (parallel " + parallel + "): " + (int) tokens + " tokens generated of " + MAX_TOKENS
                    + ", " + (int) (tokens - before) + " of them after the hang-up (" + Math.round(afterSeconds * 1000) + " ms)");
            assertTrue(tokens >= 1 && tokens < MAX_TOKENS && afterSeconds < STOP_WITHIN_SECONDS,
                    "stopped early: " + tokens + " tokens of " + MAX_TOKENS + ", " + afterSeconds + " s after the hang-up");
            assertEquals(1, metric(s, "kimivl_requests_total{path=\"/v1/chat/completions\",status=\"disconnected\"}"));
            nextRequestIsServed(s);
        }
    }

    @Test
    void aClientThatLeavesTheQueueIsNeverGenerated() throws Exception {
        PacedEngine engine = new PacedEngine(5, 1, true);      // each generation waits for a permit
        List<String> log = Collections.synchronizedList(new ArrayList<>());
        try (OpenAiServer s = new OpenAiServer(engine, new ServerDefaults("p", 100, 0.0, 0), ServerOptions.local(0).withQueue(1))) {
            s.logTo(log::add);
            s.start();
            requireWatch(s);
            var first = ServerApiTest.client.sendAsync(chatRequest(s, ""), java.net.http.HttpResponse.BodyHandlers.ofString());
            waitFor("the first request to generate", () -> engine.started.get() == 1);
            try (Socket queued = post(s.port(), longRequest(false))) {
                waitForMetric(s, "kimivl_requests_waiting", 1);
            }                                                   // hung up while waiting
            waitForMetric(s, "kimivl_requests_cancelled_total{stage=\"queued\"}", 1);
            assertEquals(0, metric(s, "kimivl_requests_waiting"), "its place in the queue is free");
            engine.gate.release(10);
            assertEquals(200, first.get().statusCode());
            // the queue of 1 has room again: another request is admitted, and the one that left was never generated
            var next = send(chatRequest(s, ""));
            assertEquals(200, next.statusCode(), next.body());
            assertEquals(2, engine.started.get(), "the first and the next request; not the one that left the queue");
            synchronized (log) {
                assertTrue(log.stream().anyMatch(l -> l.contains("went away while the request waited in the queue")), log.toString());
            }
        }
    }

    @Test
    void aSequenceCancelledWhileItsPromptIsReadLeavesBetweenChunks() {
        // one prompt token a step, so that a long prompt takes hundreds of scheduler turns
        ModelEngine engine = new ModelEngine(model, 2048, CacheOptions.DEFAULT, 2, 1);
        try {
            StringBuilder text = new StringBuilder();
            for (int i = 0; i < 200; i++) text.append(i).append(' ');
            List<dev.kimivl.text.ChatMessage> ask = List.of(dev.kimivl.text.ChatMessage.user(text.toString()));
            java.util.concurrent.atomic.AtomicInteger polls = new java.util.concurrent.atomic.AtomicInteger();
            final class GoneAfter20Polls implements java.util.function.BooleanSupplier, Engine.Cancellation {
                @Override public boolean getAsBoolean() { return true; }

                @Override public boolean cancelled() { return polls.incrementAndGet() > 20; }
            }
            var r = engine.prepare(ask, List.of()).generate(Engine.Spec.plain(dev.kimivl.generate.SamplingParams.greedy(50)), null,
                    new GoneAfter20Polls(), null);
            assertEquals(0, r.tokens().length);
            assertEquals(dev.kimivl.generate.Generator.FinishReason.CANCELLED, r.finishReason());
            // the cancelled sequence's cache goes to the prefix cache holding what ran of the prompt: the same prompt
            // again reuses about 20 positions (one per scheduler turn polled), not the whole prompt
            int reused = engine.prepare(ask, List.of()).cachedTokens();
            System.err.println("cancelled after 20 polls: " + reused + " of " + r.promptTokens() + " prompt positions had run");
            assertTrue(r.promptTokens() > 200, r.promptTokens() + " prompt tokens");
            assertTrue(reused >= 1 && reused <= 25, reused + " of " + r.promptTokens() + " prompt positions ran before the sequence left");
        } finally {
            engine.close();
        }
    }

    @Test
    void theWatchSeesAClosedConnectionAndParsesBothTables() throws Exception {
        // the kernel's notation: 127.0.0.1:8080 → 0100007F:1F90 on little-endian x86; ::ffff:127.0.0.1 in tcp6
        Map<String, Integer> states = new HashMap<>();
        ConnectionWatch.parse(List.of("  sl  local_address rem_address   st",
                "   0: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000  1000 0 1 1"), states);
        ConnectionWatch.parse(List.of("  sl  local_address                         remote_address                        st",
                "   0: 0000000000000000FFFF00000100007F:1F91 0000000000000000FFFF00000100007F:D432 08 00000000:00000000"), states);
        if (java.nio.ByteOrder.nativeOrder() == java.nio.ByteOrder.LITTLE_ENDIAN) {
            var lo = java.net.InetAddress.getByName("127.0.0.1");
            assertEquals(1, states.get(ConnectionWatch.key(lo, 8080, lo, 0xD431)));
            assertEquals(8, states.get(ConnectionWatch.key(lo, 8081, lo, 0xD432)), "an IPv4-mapped address is the IPv4 one");
        }

        ConnectionWatch watch = ConnectionWatch.start(5);
        org.junit.jupiter.api.Assumptions.assumeTrue(watch.active(), "needs Linux's /proc/net/tcp");
        try (watch; ServerSocket server = new ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress())) {
            Socket client = new Socket(server.getInetAddress(), server.getLocalPort());
            try (Socket accepted = server.accept()) {
                ConnectionWatch.Watch w = watch.watch((InetSocketAddress) accepted.getLocalSocketAddress(), (InetSocketAddress) accepted.getRemoteSocketAddress());
                long passes = watch.passes();
                waitFor("a few passes", () -> watch.passes() >= passes + 3);
                assertFalse(w.gone(), "an open connection is not gone");
                client.close();
                waitFor("the closed connection to be seen", w::gone);
                System.err.println("connection watch: " + watch.lastPauseMillis() + " ms between passes here");
                assertTrue(watch.lastPauseMillis() >= 5 && watch.lastPauseMillis() <= ConnectionWatch.MAX_PERIOD_MILLIS, watch.lastPauseMillis() + " ms");
                // nothing watched: the poller sleeps
                Thread.sleep(50);
                long idle = watch.passes();
                Thread.sleep(100);
                assertEquals(idle, watch.passes(), "no passes while nothing is watched");
            }
        }
    }
}
