package dev.kimivl.generate;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.kimivl.generate.json.JsonConstraint;
import dev.kimivl.generate.json.JsonShape;
import dev.kimivl.model.KimiVL;
import dev.kimivl.text.ChatMessage;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.*;

/** Cancellation, constrained JSON, penalties and the kept cache, on tiny-random (random weights: random text). */
class GenerationOptionsTest {
    static KimiVL model;
    static final ObjectMapper JSON = new ObjectMapper();

    @BeforeAll static void open() { model = KimiVL.open(Path.of("../models/tiny-random")); }

    @AfterAll static void close() { model.close(); }

    static KimiVL.Prompt prompt(String text) { return model.prompt(List.of(ChatMessage.user(text)), List.of()); }

    static SamplingParams sampling(double temperature, long seed, int max) {
        return new SamplingParams(temperature, 0, 1, 0, 1, seed, max, List.of());
    }

    /**
     * The prompt's embeddings are read, never consumed: a second generation from the same Prompt (RL's k samples of a
     * prompt, the server's n choices) is the first one again. The forward pass works in place, and a one-chunk prompt
     * was once handed to it as is, so every answer after the first began from the last layer's states.
     */
    @Test
    void aPromptCanBeGeneratedFromAgain() {
        KimiVL.Prompt p = prompt("Describe a red circle.");
        float[] before = p.embeddings().clone();
        Generator gen = model.generator(0);
        Generator.Result first = gen.generate(p.embeddings(), p.ids(), SamplingParams.greedy(12), null);
        assertArrayEquals(before, p.embeddings(), "the prompt's embeddings are unchanged");
        Generator.Result second = gen.generate(p.embeddings(), p.ids(), SamplingParams.greedy(12), null);
        assertArrayEquals(first.tokens(), second.tokens());
        assertEquals(12, first.tokens().length, "tiny-random writes on to the budget: " + first.text());
    }

    /**
     * generateEach (one prefill, the answers decoded in batched steps, each from its own copy of the prompt's cache)
     * gives, answer by answer, what generate gives with the same params: sampled and greedy, different budgets (so the
     * batch shrinks as answers end), and the prompt's embeddings unchanged.
     */
    @Test
    void generateEachGivesEachAnswerGenerateGives() {
        KimiVL.Prompt p = prompt("Describe a red circle.");
        float[] before = p.embeddings().clone();
        Generator gen = model.generator(0);
        List<SamplingParams> params = List.of(sampling(0.8, 1, 12), sampling(0.8, 2, 5), SamplingParams.greedy(9), sampling(1.2, 3, 12));
        List<Generator.Result> each = gen.generateEach(p.embeddings(), p.ids(), params);
        assertArrayEquals(before, p.embeddings(), "the prompt's embeddings are unchanged");
        assertEquals(params.size(), each.size());
        for (int j = 0; j < params.size(); j++) {
            Generator.Result one = gen.generate(p.embeddings(), p.ids(), params.get(j), null);
            assertArrayEquals(one.tokens(), each.get(j).tokens(), "answer " + j + ": " + one.text() + " | " + each.get(j).text());
            assertEquals(one.text(), each.get(j).text());
            assertEquals(one.finishReason(), each.get(j).finishReason());
        }
        assertEquals(5, each.get(1).tokens().length, "answers end on their own budgets");
        assertNotEquals(Arrays.toString(each.get(0).tokens()), Arrays.toString(each.get(3).tokens()), "different seeds, different answers");
    }

    @Test
    void cancellationStopsAtOnceAndKeepsTheText() {
        KimiVL.Prompt p = prompt("Count to ten.");
        AtomicInteger pieces = new AtomicInteger();
        StringBuilder streamed = new StringBuilder();
        Generator.Result r = model.generator(0).generate(p.embeddings(), p.ids(), SamplingParams.greedy(50),
                t -> { streamed.append(t); pieces.incrementAndGet(); }, GenerationOptions.NONE.withCancel(() -> pieces.get() >= 3));
        assertEquals(Generator.FinishReason.CANCELLED, r.finishReason());
        assertTrue(r.tokens().length < 50, "stopped early: " + r.tokens().length);
        assertEquals(streamed.toString(), r.text());
    }

    @Test
    void jsonModeAlwaysParsesAndFitsTheBudget() throws Exception {
        KimiVL.Prompt p = prompt("Give me JSON.");
        int vocab = model.config().text().vocabSize();
        for (long seed = 1; seed <= 6; seed++) {
            for (int max : new int[]{12, 40}) {
                var c = new JsonConstraint(JsonShape.ANY_OBJECT, model.tokenizer(), vocab);
                Generator.Result r = model.generator(0).generate(p.embeddings(), p.ids(), sampling(0.8, seed, max), null,
                        GenerationOptions.NONE.withConstraint(c));
                JsonNode n = JSON.readTree(r.text());
                assertTrue(n.isObject(), r.text());
                assertTrue(r.tokens().length <= max);
            }
        }
    }

    @Test
    void jsonSchemaOutputValidates() throws Exception {
        JsonShape shape = JsonShape.fromSchema("""
                {"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"},
                 "ok":{"type":"boolean"},"kind":{"enum":["cat","dog"]}},"required":["name","age","ok","kind"]}""");
        KimiVL.Prompt p = prompt("Describe a pet as JSON.");
        for (long seed = 1; seed <= 5; seed++) {
            var c = new JsonConstraint(shape, model.tokenizer(), model.config().text().vocabSize());
            Generator.Result r = model.generator(0).generate(p.embeddings(), p.ids(), sampling(0.8, seed, 60), null,
                    GenerationOptions.NONE.withConstraint(c));
            JsonNode n = JSON.readTree(r.text());
            assertTrue(n.get("name").isTextual(), r.text());
            assertTrue(n.get("age").isIntegralNumber(), r.text());
            assertTrue(n.get("ok").isBoolean(), r.text());
            assertTrue(List.of("cat", "dog").contains(n.get("kind").asText()), r.text());
            assertEquals(4, n.size(), r.text());
        }
    }

    @Test
    void frequencyPenaltyDiscouragesRepeats() {
        KimiVL.Prompt p = prompt("Hello");
        int[] plain = model.generator(0).generate(p.embeddings(), p.ids(), SamplingParams.greedy(40), null).tokens();
        int[] penalised = model.generator(0).generate(p.embeddings(), p.ids(), SamplingParams.greedy(40), null,
                GenerationOptions.NONE.withPenalties(2.0, 2.0)).tokens();
        assertTrue(maxRepeats(plain) > 1, "the random model repeats itself greedily: " + Arrays.toString(plain));
        assertTrue(maxRepeats(penalised) < maxRepeats(plain), Arrays.toString(plain) + " vs " + Arrays.toString(penalised));
    }

    static int maxRepeats(int[] ids) {
        int[] c = new int[4096];
        int m = 0;
        for (int id : ids) m = Math.max(m, ++c[id]);
        return m;
    }

    @Test
    void keptCacheGivesTheSameAnswersAndReusesEarlierTurns() {
        PromptCache cache = new PromptCache();
        List<ChatMessage> convo = new ArrayList<>(List.of(ChatMessage.system("Be brief."), ChatMessage.user("Hi there")));
        int before = 0;                                                   // the previous turn's prompt length
        for (int turn = 0; turn < 3; turn++) {
            KimiVL.Prompt p = model.prompt(convo, List.of());
            Generator.Result fresh = model.generator(0).generate(p.embeddings().clone(), p.ids(), SamplingParams.greedy(12), null);
            Generator.Result kept = model.generator(0).generate(p.embeddings(), p.ids(), SamplingParams.greedy(12), null,
                    GenerationOptions.NONE.withCache(cache));
            assertArrayEquals(fresh.tokens(), kept.tokens(), "turn " + turn);
            // at least the whole previous prompt (the random answer's tokens may re-tokenize differently: from there on it recomputes)
            if (turn > 0) assertTrue(cache.reusedTokens() >= before, "turn " + turn + " reused " + cache.reusedTokens() + " of " + p.ids().length + ", previous prompt " + before);
            before = p.ids().length;
            convo.add(ChatMessage.assistant(kept.text()));
            convo.add(ChatMessage.user("And turn " + (turn + 2) + "?"));
        }
        convo.set(0, ChatMessage.system("Changed."));                     // an early change: little to reuse
        KimiVL.Prompt p = model.prompt(convo, List.of());
        model.generator(0).generate(p.embeddings(), p.ids(), SamplingParams.greedy(4), null, GenerationOptions.NONE.withCache(cache));
        assertTrue(cache.reusedTokens() < 8, "reused " + cache.reusedTokens());
    }
}
