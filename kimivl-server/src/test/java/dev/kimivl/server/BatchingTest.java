package dev.kimivl.server;

import dev.kimivl.generate.Generator;
import dev.kimivl.generate.SamplingParams;
import dev.kimivl.model.KimiVL;
import dev.kimivl.text.ChatMessage;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Continuous batching ({@link Scheduler} behind {@link ModelEngine} with parallel above 1) on the tiny random model:
 * a greedy or seeded request gives the same tokens alone and decoded in one step with others; steps really batch;
 * a long prompt is read in chunks between the running streams' steps; a client that goes away leaves at once.
 */
class BatchingTest {
    static final int CAP = 2048;
    static KimiVL model;

    @BeforeAll
    static void open() { model = KimiVL.open(Path.of("../models/tiny-random")); }

    @AfterAll
    static void close() { model.close(); }

    static List<ChatMessage> ask(String text) { return List.of(ChatMessage.user(text)); }

    static SamplingParams seeded(double temperature, long seed, int max) {
        return new SamplingParams(temperature, 0, 0.95, 0, 1.0, seed, max, List.of());
    }

    /** The prompts and their sampling: two greedy, two seeded at temperature 0.9, of different lengths. */
    static final List<String> PROMPTS = List.of("Hello there, how are you?", "What colour is the sky on a clear day, and why?",
            "Count to three.", "Tell me a long story about a red circle who meets a blue square in a garden of shapes.");
    static final List<SamplingParams> SAMPLING = List.of(SamplingParams.greedy(24), seeded(0.9, 11, 24), SamplingParams.greedy(24), seeded(0.9, 12, 24));

    /** Runs each request on its own thread at once (all start together), returning each one's tokens. */
    static List<int[]> together(Engine e, List<String> prompts, List<SamplingParams> sampling) throws InterruptedException {
        int n = prompts.size();
        int[][] out = new int[n][];
        List<Engine.Job> jobs = new ArrayList<>();
        for (String p : prompts) jobs.add(e.prepare(ask(p), List.of()));
        CountDownLatch go = new CountDownLatch(1);
        List<Thread> threads = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            int c = i;
            threads.add(Thread.ofVirtual().start(() -> {
                try {
                    go.await();
                } catch (InterruptedException ex) {
                    throw new IllegalStateException(ex);
                }
                out[c] = jobs.get(c).generate(sampling.get(c), null).tokens();
            }));
        }
        go.countDown();
        for (Thread t : threads) t.join(60_000);
        return List.of(out);
    }

    @Test
    void aRequestGivesTheSameTokensAloneAndInABatch() throws InterruptedException {
        ModelEngine batching = new ModelEngine(model, CAP, CacheOptions.OFF, 4, 256);
        AtomicInteger widest = new AtomicInteger();
        batching.onDecodeStep(b -> widest.accumulateAndGet(b, Math::max));
        try {
            List<int[]> alone = new ArrayList<>();
            for (int i = 0; i < PROMPTS.size(); i++) alone.add(together(batching, List.of(PROMPTS.get(i)), List.of(SAMPLING.get(i))).getFirst());
            assertEquals(1, widest.get(), "one request at a time decodes alone");
            List<int[]> batch = together(batching, PROMPTS, SAMPLING);
            assertTrue(widest.get() >= 2, "the four requests must have shared decode steps (widest step: " + widest.get() + ")");
            for (int i = 0; i < PROMPTS.size(); i++) {
                assertTrue(alone.get(i).length > 0, "request " + i + " generated nothing");
                assertArrayEquals(alone.get(i), batch.get(i), "request " + i + " (" + SAMPLING.get(i) + ") alone vs in a batch");
            }
            // and the batched path gives Generator's own greedy answer (kimivl run's), here where no logit is a near tie
            Engine sequential = new ModelEngine(model, CAP, CacheOptions.OFF);
            assertArrayEquals(sequential.prepare(ask(PROMPTS.get(0)), List.of()).generate(SAMPLING.get(0), null).tokens(), alone.get(0));
            assertEquals(0, batching.scheduled(), "every sequence left the scheduler");
        } finally {
            batching.close();
        }
    }

    @Test
    void aLongPromptIsReadInChunksWhileTheRunningStreamsKeepDecoding() throws Exception {
        int chunk = 16;
        ModelEngine e = new ModelEngine(model, CAP, CacheOptions.OFF, 4, chunk);
        try {
            AtomicInteger aTokens = new AtomicInteger();
            CountDownLatch aStarted = new CountDownLatch(1);
            SamplingParams longAnswer = SamplingParams.greedy(400);
            Engine.Spec spec = new Engine.Spec(longAnswer, null, 0, 0, -1, true);   // ignore_eos: A runs its 400 tokens
            Engine.Job a = e.prepare(ask("Keep talking."), List.of());
            Thread ta = Thread.ofVirtual().start(() -> a.generate(spec, null, () -> {
                aTokens.incrementAndGet();
                aStarted.countDown();
                return true;
            }, null));
            assertTrue(aStarted.await(30, TimeUnit.SECONDS));
            String longPrompt = "word ".repeat(600);
            int[] bFirst = {-1};                   // A's tokens when B's first token came
            Engine.Job b = e.prepare(ask(longPrompt), List.of());
            int promptTokens = b.generate(SamplingParams.greedy(1), null, () -> {
                bFirst[0] = aTokens.get();
                return true;
            }).promptTokens();
            ta.join(60_000);
            int chunks = (promptTokens + chunk - 1) / chunk;
            // each turn of the scheduler reads one chunk of B and decodes one token of A: A kept streaming meanwhile
            assertTrue(bFirst[0] - 1 >= chunks - 2, "A generated " + bFirst[0] + " tokens by B's first; B's prompt of "
                    + promptTokens + " tokens is " + chunks + " chunks of " + chunk);
            assertTrue(bFirst[0] < 400, "B answered before A ended");
        } finally {
            e.close();
        }
    }

    @Test
    void aClientThatGoesAwayLeavesTheBatchAndTheOthersFinish() throws Exception {
        ModelEngine e = new ModelEngine(model, CAP, CacheOptions.DEFAULT, 4, 256);
        try {
            Engine.Spec spec = new Engine.Spec(SamplingParams.greedy(200), null, 0, 0, -1, true);
            Engine.Job stays = e.prepare(ask("Stay with me."), List.of()), leaves = e.prepare(ask("Leave early."), List.of());
            Generator.Result[] r = new Generator.Result[1];
            Thread t = Thread.ofVirtual().start(() -> r[0] = stays.generate(spec, null, null, null));
            AtomicInteger seen = new AtomicInteger();
            UncheckedIOException gone = assertThrows(UncheckedIOException.class, () -> leaves.generate(spec, text -> {
                if (seen.incrementAndGet() == 3) throw new UncheckedIOException(new java.io.IOException("client closed the connection"));
            }, null, null));
            assertTrue(gone.getMessage().contains("client closed"), gone.getMessage());
            t.join(60_000);
            assertEquals(200, r[0].tokens().length, "the other request ran to its end");
            assertEquals(Generator.FinishReason.LENGTH, r[0].finishReason());
            assertEquals(0, e.scheduled(), "no sequence left behind");
        } finally {
            e.close();
        }
    }

    @Test
    void underLoadEveryFinishedAnswerIsRightAndNothingIsLeftBehind() throws Exception {
        ModelEngine engine = new ModelEngine(model, CAP, CacheOptions.DEFAULT, 4, 64);
        try (OpenAiServer s = new OpenAiServer(engine, new ServerDefaults("tiny-random", 20, 0.0, CAP), ServerOptions.local(0).withQueue(8).withParallel(4, 64));
             java.net.http.HttpClient client = java.net.http.HttpClient.newBuilder().connectTimeout(java.time.Duration.ofSeconds(10)).build()) {
            s.start();
            List<String> bodies = new ArrayList<>(), expected = new ArrayList<>();
            for (String p : PROMPTS) {
                String body = "{\"messages\": [{\"role\": \"user\", \"content\": \"" + p + "\"}]}";
                bodies.add(body);
                expected.add(ServerApiTest.JSON.readTree(post(client, s, body).body()).at("/choices/0/message/content").asText());
            }
            AtomicInteger next = new AtomicInteger(48), ok = new AtomicInteger();
            List<String> wrong = java.util.Collections.synchronizedList(new ArrayList<>());
            List<Thread> clients = new ArrayList<>();
            for (int c = 0; c < 8; c++) {
                clients.add(Thread.ofVirtual().start(() -> {
                    for (int n; (n = next.getAndDecrement()) > 0; ) {
                        try {
                            if (n % 4 == 0) {                       // a quarter hang up after the first events of a stream
                                int status = ServerLoadTest.hangUpAfterTwoEvents(s.port());
                                if (status != 200) wrong.add("a hanging-up client got " + status);
                                continue;
                            }
                            int i = n % PROMPTS.size();
                            boolean stream = n % 2 == 1;
                            String body = stream ? bodies.get(i).replace("]}", "], \"stream\": true}") : bodies.get(i);
                            var r = post(client, s, body);
                            if (r.statusCode() != 200) { wrong.add("status " + r.statusCode() + ": " + r.body()); continue; }
                            String text = stream ? ServerLoadTest.streamed(r.body()) : ServerApiTest.JSON.readTree(r.body()).at("/choices/0/message/content").asText();
                            if (!text.equals(expected.get(i))) wrong.add("prompt " + i + ": '" + text + "' instead of '" + expected.get(i) + "'");
                            else ok.incrementAndGet();
                        } catch (Exception e) {
                            wrong.add(e.toString());
                        }
                    }
                }));
            }
            for (Thread t : clients) t.join(120_000);
            assertEquals(List.of(), wrong);
            assertEquals(36, ok.get());
            ServerOperationsTest.waitFor("the server to be idle", () -> s.idle() && s.exchangesInProgress() == 0);
            assertEquals(0, engine.scheduled(), "no sequence left in the scheduler");
        }
    }

    static java.net.http.HttpResponse<String> post(java.net.http.HttpClient client, OpenAiServer s, String body) throws Exception {
        return client.send(java.net.http.HttpRequest.newBuilder(java.net.URI.create("http://127.0.0.1:" + s.port() + "/v1/chat/completions"))
                .timeout(java.time.Duration.ofSeconds(60)).POST(java.net.http.HttpRequest.BodyPublishers.ofString(body)).build(),
                java.net.http.HttpResponse.BodyHandlers.ofString());
    }
}
