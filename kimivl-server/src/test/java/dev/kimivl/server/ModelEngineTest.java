package dev.kimivl.server;

import dev.kimivl.generate.Generator;
import dev.kimivl.generate.SamplingParams;
import dev.kimivl.model.KimiVL;
import dev.kimivl.text.ChatMessage;
import dev.kimivl.vision.ImageLoader;
import dev.kimivl.vision.LoadedImage;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The server's engine on the tiny random model: without reuse it generates what {@link Generator} does; the prefix
 * cache and the image cache are used when they should be, and the tokens with reuse equal the tokens without.
 */
class ModelEngineTest {
    static final int CAP = 512;
    static KimiVL model;
    static LoadedImage shapes;

    @BeforeAll
    static void open() {
        model = KimiVL.open(Path.of("../models/tiny-random"));
        shapes = new ImageLoader().load(Path.of("../examples/shapes.png"));
    }

    @AfterAll
    static void close() { model.close(); }

    static SamplingParams greedy(int n) { return SamplingParams.greedy(n); }

    static int[] tokens(Engine e, List<ChatMessage> messages, List<LoadedImage> images) {
        return e.prepare(messages, images).generate(greedy(12), null).tokens();
    }

    /** What {@code kimivl run} does: KimiVL.prompt and a fresh Generator. */
    static int[] reference(List<ChatMessage> messages, List<LoadedImage> images) {
        KimiVL.Prompt p = model.prompt(messages, images);
        return model.generator(CAP).generate(p.embeddings(), p.ids(), greedy(12), null).tokens();
    }

    @Test
    void withoutReuseItGeneratesWhatTheGeneratorDoes() {
        Engine cold = new ModelEngine(model, CAP, CacheOptions.OFF);
        List<ChatMessage> text = List.of(ChatMessage.user("Hello there, how are you?"));
        assertArrayEquals(reference(text, List.of()), tokens(cold, text, List.of()));
        List<ChatMessage> image = List.of(ChatMessage.of("user", ChatMessage.imagePart(), ChatMessage.textPart("What is this?")));
        assertArrayEquals(reference(image, List.of(shapes)), tokens(cold, image, List.of(shapes)));
        assertEquals(0, cold.cacheStats().prefixHits.get());
        assertEquals(0, cold.cacheStats().imageHits.get());
        assertEquals(1, cold.cacheStats().imageMisses.get());
    }

    @Test
    void aSecondTurnReusesTheFirstTurnsCacheAndGivesTheSameTokens() {
        Engine warm = new ModelEngine(model, CAP, CacheOptions.DEFAULT);
        List<ChatMessage> turn1 = List.of(ChatMessage.system("You are brief."), ChatMessage.user("Name three shapes."));
        Engine.Job j1 = warm.prepare(turn1, List.of());
        assertEquals(0, j1.cachedTokens(), "nothing to reuse yet");
        Generator.Result r1 = j1.generate(greedy(12), null);
        int t1 = r1.promptTokens();

        List<ChatMessage> turn2 = List.of(turn1.get(0), turn1.get(1), ChatMessage.assistant(r1.text()), ChatMessage.user("And three colours?"));
        Engine.Job j2 = warm.prepare(turn2, List.of());
        assertTrue(j2.cachedTokens() >= t1, "the whole first prompt (" + t1 + " tokens) is reused, got " + j2.cachedTokens());
        Generator.Result r2 = j2.generate(greedy(12), null);
        assertTrue(j2.cachedTokens() < r2.promptTokens());
        assertEquals(1, warm.cacheStats().prefixHits.get());
        assertEquals(1, warm.cacheStats().prefixMisses.get());
        assertEquals(j2.cachedTokens(), warm.cacheStats().prefixTokensReused.get());

        int[] cold = tokens(new ModelEngine(model, CAP, CacheOptions.OFF), turn2, List.of());
        assertTrue(cold.length > 0);
        assertArrayEquals(cold, r2.tokens(), "reuse gives the tokens a cold prefill gives");
        assertArrayEquals(reference(turn2, List.of()), r2.tokens());

        // a conversation that shares only the system prompt reuses that part, and still answers the same
        List<ChatMessage> other = List.of(turn1.get(0), ChatMessage.user("Count to five."));
        Engine.Job j3 = warm.prepare(other, List.of());
        assertTrue(j3.cachedTokens() > 0 && j3.cachedTokens() < t1, "the shared system prompt: " + j3.cachedTokens());
        assertArrayEquals(reference(other, List.of()), j3.generate(greedy(12), null).tokens());
    }

    @Test
    void theSameImageIsEncodedOnceAndGivesTheSameTokens() {
        Engine warm = new ModelEngine(model, CAP, new CacheOptions(0, 64 << 20));    // image cache only
        List<ChatMessage> q1 = List.of(ChatMessage.of("user", ChatMessage.imagePart(), ChatMessage.textPart("What is this?")));
        List<ChatMessage> q2 = List.of(ChatMessage.of("user", ChatMessage.textPart("Describe"), ChatMessage.imagePart()));
        tokens(warm, q1, List.of(shapes));
        assertEquals(1, warm.cacheStats().imageMisses.get());
        // the same pixels decoded again (another request's upload): a hit
        LoadedImage again = new ImageLoader().load(Path.of("../examples/shapes.png"));
        int[] reused = tokens(warm, q2, List.of(again));
        assertEquals(1, warm.cacheStats().imageHits.get());
        assertEquals(1, warm.cacheStats().imageMisses.get());
        assertArrayEquals(reference(q2, List.of(shapes)), reused, "cached features give the tokens fresh ones give");
        // other pixels are another image
        byte[] px = shapes.pixels().clone();
        px[0] ^= 1;
        tokens(warm, q2, List.of(LoadedImage.of("changed", shapes.width(), shapes.height(), shapes.mode(), px)));
        assertEquals(2, warm.cacheStats().imageMisses.get());
    }

    static int[] range(int from, int n) {
        int[] ids = new int[n];
        for (int i = 0; i < n; i++) ids[i] = from + i;
        return ids;
    }

    @Test
    void thePrefixCacheKeepsWithinItsBudgetLeastRecentlyUsedFirst() {
        long per = model.languageModel().kvBytesPerPosition();
        // room for one 20-token prompt and its answer, not for two
        Engine small = new ModelEngine(model, CAP, new CacheOptions(per * 40, 0));
        small.prepareRaw(null, range(1, 20)).generate(greedy(4), null);
        small.prepareRaw(null, range(100, 20)).generate(greedy(4), null);     // shares nothing: a second cache, the first goes
        Engine.Job again = small.prepareRaw(null, range(1, 21));
        assertEquals(0, again.cachedTokens(), "the first prompt's cache was evicted");
        again.generate(greedy(4), null);
        assertEquals(0, small.cacheStats().prefixHits.get());

        Engine roomy = new ModelEngine(model, CAP, new CacheOptions(per * 200, 0));
        roomy.prepareRaw(null, range(1, 20)).generate(greedy(4), null);
        roomy.prepareRaw(null, range(100, 20)).generate(greedy(4), null);
        Engine.Job kept = roomy.prepareRaw(null, range(1, 21));
        assertEquals(20, kept.cachedTokens(), "both fit: the first prompt is still there");
        assertArrayEquals(new ModelEngine(model, CAP, CacheOptions.OFF).prepareRaw(null, range(1, 21)).generate(greedy(4), null).tokens(),
                kept.generate(greedy(4), null).tokens());
    }
}
