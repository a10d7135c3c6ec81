package dev.kimivl.server;

import com.fasterxml.jackson.databind.JsonNode;
import org.junit.jupiter.api.Test;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import static dev.kimivl.server.ServerApiTest.JSON;
import static dev.kimivl.server.ServerOperationsTest.metrics;
import static dev.kimivl.server.ServerOperationsTest.sample;
import static dev.kimivl.server.ServerOperationsTest.waitFor;
import static org.junit.jupiter.api.Assertions.*;

/**
 * A bounded load test on loopback: 200 requests from 16 clients against a queue of 8, a quarter of them hanging up
 * after the first words of a stream. Every answer that finishes is whole and right, every refusal is a 429 with
 * Retry-After, and afterwards no slot, queue place or exchange is left held.
 */
class ServerLoadTest {
    static final String EXPECTED = "w0 w1 w2 w3 w4 w5 ";
    static final String BODY = "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}]%s}";

    @Test
    void twoHundredRequestsFromSixteenClientsAQuarterHangingUp() throws Exception {
        PacedEngine engine = new PacedEngine(6, 3, false);
        try (OpenAiServer s = new OpenAiServer(engine, new ServerDefaults("p", 100, 0.0, 0), ServerOptions.local(0).withQueue(8));
             HttpClient client = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();
             ExecutorService clients = Executors.newFixedThreadPool(16)) {
            s.start();
            AtomicInteger next = new AtomicInteger(200), ok = new AtomicInteger(), refused = new AtomicInteger(), hungUp = new AtomicInteger();
            List<String> wrong = Collections.synchronizedList(new ArrayList<>());
            List<java.util.concurrent.Future<?>> running = new ArrayList<>();
            for (int c = 0; c < 16; c++) {
                running.add(clients.submit(() -> {
                    for (int n; (n = next.getAndDecrement()) > 0; ) {
                        try {
                            if (n % 4 == 0) {
                                int status = hangUpAfterTwoEvents(s.port());
                                if (status == 200) hungUp.incrementAndGet();
                                else if (status == 429) {
                                    refused.incrementAndGet();
                                    Thread.sleep(30);
                                }
                                else wrong.add("a hanging-up client got " + status);
                                continue;
                            }
                            boolean stream = n % 2 == 1;
                            var r = client.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + s.port() + "/v1/chat/completions"))
                                    .timeout(Duration.ofSeconds(30))
                                    .POST(HttpRequest.BodyPublishers.ofString(BODY.formatted(stream ? ", \"stream\": true" : ""))).build(),
                                    HttpResponse.BodyHandlers.ofString());
                            if (r.statusCode() == 429) {
                                JsonNode e = JSON.readTree(r.body()).get("error");
                                if (!"queue_full".equals(e.path("code").asText()) || r.headers().firstValue("Retry-After").isEmpty()) {
                                    wrong.add("a 429 without its code or Retry-After: " + r.body());
                                }
                                refused.incrementAndGet();
                                Thread.sleep(30);        // backs off (a real client waits Retry-After's seconds)
                            } else if (r.statusCode() != 200) {
                                wrong.add("status " + r.statusCode() + ": " + r.body());
                            } else {
                                String text = stream ? streamed(r.body()) : JSON.readTree(r.body()).at("/choices/0/message/content").asText();
                                if (!text.equals(EXPECTED)) wrong.add("answer '" + text + "'");
                                ok.incrementAndGet();
                            }
                        } catch (Exception e) {
                            wrong.add(e.toString());
                        }
                    }
                }));
            }
            for (var f : running) f.get(120, TimeUnit.SECONDS);
            assertTrue(wrong.isEmpty(), wrong.size() + " wrong, e.g. " + wrong.subList(0, Math.min(5, wrong.size())));
            System.out.printf("ServerLoadTest: %d answered whole, %d refused with 429, %d hung up (%d of them stopped early)%n",
                    ok.get(), refused.get(), hungUp.get(), engine.aborted.get());
            assertEquals(200, ok.get() + refused.get() + hungUp.get());
            assertTrue(ok.get() > 0);

            // nothing left held: no slot, no place in the queue, no exchange, no generation
            waitFor("every exchange to end", () -> s.exchangesInProgress() == 0 && s.idle());
            assertEquals(0, engine.running.get());
            assertEquals(engine.started.get(), engine.finished.get() + engine.aborted.get());
            assertTrue(engine.aborted.get() <= hungUp.get(), "only hung-up streams end early");
            String m = metrics(s);
            assertEquals(0, sample(m, "kimivl_requests_running"));
            assertEquals(0, sample(m, "kimivl_requests_waiting"));
            double counted = 0;
            for (String status : List.of("200", "429", "disconnected")) {
                if (m.contains("path=\"/v1/chat/completions\",status=\"" + status + "\"")) {
                    counted += sample(m, "kimivl_requests_total{path=\"/v1/chat/completions\",status=\"" + status + "\"}");
                }
            }
            assertEquals(200, counted, "every request counted once, as 200, 429 or disconnected:\n" + m);
            // the server still answers
            assertEquals(200, client.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + s.port() + "/v1/chat/completions"))
                    .POST(HttpRequest.BodyPublishers.ofString(BODY.formatted(""))).build(), HttpResponse.BodyHandlers.ofString()).statusCode());
        }
    }

    static String streamed(String body) throws Exception {
        StringBuilder text = new StringBuilder();
        boolean done = false;
        for (String line : body.split("\n")) {
            if (line.equals("data: [DONE]")) done = true;
            else if (line.startsWith("data: ")) text.append(JSON.readTree(line.substring(6)).at("/choices/0/delta/content").asText(""));
        }
        return done ? text.toString() : "(no [DONE]) " + text;
    }

    /** A streaming request on a raw socket, closed after the first two events; returns the status. */
    static int hangUpAfterTwoEvents(int port) throws Exception {
        try (Socket sock = new Socket("127.0.0.1", port)) {
            sock.setSoTimeout(30_000);
            byte[] b = BODY.formatted(", \"stream\": true").getBytes(StandardCharsets.UTF_8);
            OutputStream out = sock.getOutputStream();
            out.write(("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: " + b.length + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
            out.write(b);
            out.flush();
            BufferedReader in = new BufferedReader(new InputStreamReader(sock.getInputStream(), StandardCharsets.UTF_8));
            int status = Integer.parseInt(in.readLine().split(" ")[1]);
            if (status != 200) return status;
            int events = 0;
            for (String line; events < 2 && (line = in.readLine()) != null; ) if (line.startsWith("data: ")) events++;
            return status;
        }
    }
}
