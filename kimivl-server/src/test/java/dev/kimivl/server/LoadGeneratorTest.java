package dev.kimivl.server;

import org.junit.jupiter.api.Test;

import java.time.Duration;

import static org.junit.jupiter.api.Assertions.*;

/** The bench-serve load generator against a paced scripted server: counts, rates, percentiles, refusals. */
class LoadGeneratorTest {
    @Test
    void measuresEveryRequestOfALevel() throws Exception {
        PacedEngine engine = new PacedEngine(5, 5, false);
        try (OpenAiServer s = new OpenAiServer(engine, new ServerDefaults("p", 100, 0.0, 0), ServerOptions.local(0).withApiKey("k"))) {
            s.start();
            LoadGenerator gen = new LoadGenerator("http://127.0.0.1:" + s.port(), "k", LoadGenerator.chatBody("Hi", 100), Duration.ofSeconds(30));
            LoadGenerator.Level level = gen.run(2, 6);
            assertEquals(6, engine.finished.get());
            assertEquals(6, level.samples().size(), level.failures().toString());
            assertTrue(level.failures().isEmpty());
            assertEquals(30, level.tokens(), "5 tokens each, from the usage chunk");
            // one generation at a time, each ≥ 25 ms of pacing: the wall time is at least 6 × 25 ms
            assertTrue(level.wallSeconds() >= 0.15, "wall " + level.wallSeconds());
            assertEquals(level.tokens() / level.wallSeconds(), level.tokensPerSecond(), 1e-9);
            assertTrue(level.ttft(0.5) <= level.latency(0.5));
            // when the client reads is up to the machine's scheduler: only the ordering is certain, not the gaps
            assertTrue(level.perToken(0.5) >= 0 && level.perToken(0.5) <= level.perToken(0.95), level.samples().toString());
            assertTrue(level.row().startsWith("   2        6      0"), level.row());
        }
    }

    @Test
    void refusalsAreCountedAsFailures() throws Exception {
        PacedEngine engine = new PacedEngine(40, 5, false);
        try (OpenAiServer s = new OpenAiServer(engine, new ServerDefaults("p", 100, 0.0, 0), ServerOptions.local(0).withQueue(0))) {
            s.start();
            LoadGenerator gen = new LoadGenerator("http://127.0.0.1:" + s.port(), null, LoadGenerator.chatBody("Hi", 100), Duration.ofSeconds(30));
            LoadGenerator.Level level = gen.run(3, 3);
            assertEquals(3, level.samples().size() + level.failures().size());
            assertFalse(level.failures().isEmpty(), "a queue of 0 refuses the clients that find the slot taken");
            assertTrue(level.failures().getFirst().startsWith("HTTP 429: the server is busy"), level.failures().toString());
            assertEquals(level.samples().size(), engine.finished.get());
        }
    }

    @Test
    void everyRequestIsMarkedSoThatNoPrefixCacheAnswersItFromTheLastOne() throws Exception {
        ServerApiTest.Scripted engine = new ServerApiTest.Scripted(false);
        try (OpenAiServer s = new OpenAiServer(engine, new ServerDefaults("p", 100, 0.0, 0), ServerOptions.local(0))) {
            s.start();
            new LoadGenerator("http://127.0.0.1:" + s.port(), null, LoadGenerator.chatBody("Hi", 4), Duration.ofSeconds(30)).run(1, 2);
            assertEquals("(request 2) Hi", engine.lastMessages.getLast().text());
        }
    }

    @Test
    void perTokenLatencyIsTheTimeAfterTheFirstTokenOverTheRest() {
        assertEquals(0.025, new LoadGenerator.Sample(5, 0.1, 0.2).perTokenSeconds(), 1e-12);
        assertTrue(Double.isNaN(new LoadGenerator.Sample(1, 0.1, 0.1).perTokenSeconds()), "one token has no gaps");
    }

    @Test
    void quantilesAreNearestRank() {
        double[] v = {5, 1, 4, 2, 3};
        assertEquals(3, LoadGenerator.quantile(v, 0.5));
        assertEquals(5, LoadGenerator.quantile(v, 0.95));
        assertEquals(1, LoadGenerator.quantile(v, 0.0));
        assertTrue(Double.isNaN(LoadGenerator.quantile(new double[0], 0.5)));
    }
}
