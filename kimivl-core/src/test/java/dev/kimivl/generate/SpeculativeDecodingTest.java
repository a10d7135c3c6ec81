package dev.kimivl.generate;

import dev.kimivl.model.KimiVL;
import dev.kimivl.text.ChatMessage;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Prompt-lookup speculative decoding gives exactly the tokens of one-at-a-time decoding (greedy and seeded sampling,
 * with stops, penalties, max tokens and a full context), on tiny-random with prompts that repeat (drafts accepted)
 * and that do not (drafts rejected, the cache rolled back).
 */
class SpeculativeDecodingTest {
    static KimiVL model;

    @BeforeAll static void open() { model = KimiVL.open(Path.of("../models/tiny-random")); }

    @AfterAll static void close() { model.close(); }

    static final String REPEATS = "Copy this exactly: the red fox jumps over the red fox jumps over the red fox jumps over the lazy dog. "
            + "the red fox jumps over the red fox jumps over the lazy dog.";
    static final String NO_REPEATS = "Why is the sky blue at noon?";
    static final String CODE = "Rename x to count:\nfor (int x = 0; x < n; x++) { sum += x; }\nfor (int x = 0; x < n; x++) { sum += x; }";

    record Run(Generator.Result result, Speculative.Stats stats, String streamed) {}

    static Run run(String text, SamplingParams params, Speculative s, int ctx, GenerationOptions options) {
        KimiVL.Prompt p = model.prompt(List.of(ChatMessage.user(text)), List.of());
        Speculative.Stats[] stats = new Speculative.Stats[1];
        StringBuilder streamed = new StringBuilder();
        Generator g = model.generator(ctx).drafting(s).onDraftStats(st -> stats[0] = st);
        Generator.Result r = g.generate(p.embeddings(), p.ids(), params, streamed::append, options);
        return new Run(r, stats[0], streamed.toString());
    }

    static SamplingParams sampling(double temperature, double topP, long seed, int max) {
        return new SamplingParams(temperature, 0, topP, 0, 1, seed, max, List.of());
    }

    static void assertSame(Run plain, Run drafted, String what) {
        assertArrayEquals(plain.result.tokens(), drafted.result.tokens(), what + ": tokens");
        assertEquals(plain.result.text(), drafted.result.text(), what + ": text");
        assertEquals(plain.streamed, drafted.streamed, what + ": streamed text");
        assertEquals(plain.result.finishReason(), drafted.result.finishReason(), what + ": finish reason");
    }

    @Test
    void greedyIsTheSameWithAndWithoutDrafting() {
        int accepted = 0, rejected = 0;
        for (String text : new String[]{REPEATS, NO_REPEATS, CODE}) {
            for (int k : new int[]{1, 3, 8}) {
                SamplingParams greedy = SamplingParams.greedy(120);
                Run plain = run(text, greedy, Speculative.NONE, 0, GenerationOptions.NONE);
                Run drafted = run(text, greedy, Speculative.NGRAM.withMaxDraft(k).always(), 0, GenerationOptions.NONE);
                assertSame(plain, drafted, "greedy, k=" + k + ", '" + text + "'");
                assertNull(plain.stats, "no drafting: no stats");
                Speculative.Stats st = drafted.stats;
                assertEquals(drafted.result.tokens().length, st.generated());
                assertTrue(st.verifySteps() > 0, "drafts were verified: " + st);
                accepted += st.accepted();
                rejected += st.rollbacks();
                System.out.printf("greedy k=%d %-12s %s%n", k, text.substring(0, 10), st);
            }
        }
        // both paths were exercised: drafts accepted (tokens per step > 1) and drafts rolled back
        assertTrue(accepted >= 10, "drafts accepted: " + accepted);
        assertTrue(rejected > 0, "drafts rejected: " + rejected);
    }

    @Test
    void seededSamplingIsTheSameWithAndWithoutDrafting() {
        int accepted = 0;
        for (String text : new String[]{REPEATS, NO_REPEATS, CODE}) {
            for (long seed = 1; seed <= 3; seed++) {
                for (double[] tp : new double[][]{{0.3, 1}, {1.0, 0.9}}) {
                    SamplingParams params = sampling(tp[0], tp[1], seed, 48);
                    Run plain = run(text, params, Speculative.NONE, 0, GenerationOptions.NONE);
                    Run drafted = run(text, params, Speculative.NGRAM.always(), 0, GenerationOptions.NONE);
                    assertSame(plain, drafted, "T=" + tp[0] + " top-p=" + tp[1] + " seed " + seed + " '" + text + "'");
                    accepted += drafted.stats.accepted();
                }
            }
        }
        assertTrue(accepted > 0, "some sampled drafts were accepted: " + accepted);
    }

    @Test
    void stopsPenaltiesAndAFullContextEndAlike() {
        // the context fills in the middle of a verified draft; max tokens cut a draft; a stop string; penalties
        KimiVL.Prompt p = model.prompt(List.of(ChatMessage.user(REPEATS)), List.of());
        int ctx = p.ids().length + 13;
        SamplingParams greedy = SamplingParams.greedy(100);
        Run plain = run(REPEATS, greedy, Speculative.NONE, ctx, GenerationOptions.NONE);
        assertEquals(Generator.FinishReason.CONTEXT, plain.result.finishReason());
        for (int k : new int[]{2, 8}) {
            assertSame(plain, run(REPEATS, greedy, Speculative.NGRAM.withMaxDraft(k).always(), ctx, GenerationOptions.NONE), "full context, k=" + k);
            for (int max : new int[]{1, 2, 3, 5, 9}) {
                SamplingParams m = SamplingParams.greedy(max);
                assertSame(run(REPEATS, m, Speculative.NONE, 0, GenerationOptions.NONE),
                        run(REPEATS, m, Speculative.NGRAM.withMaxDraft(k).always(), 0, GenerationOptions.NONE), "max tokens " + max + ", k=" + k);
            }
        }
        Run longer = run(REPEATS, SamplingParams.greedy(40), Speculative.NONE, 0, GenerationOptions.NONE);
        String text = longer.result.text();
        if (text.length() > 12) {
            String stop = text.substring(text.length() / 2, text.length() / 2 + 3);
            SamplingParams withStop = new SamplingParams(0, 0, 1, 0, 1, 0, 40, List.of(stop));
            assertSame(run(REPEATS, withStop, Speculative.NONE, 0, GenerationOptions.NONE),
                    run(REPEATS, withStop, Speculative.NGRAM.always(), 0, GenerationOptions.NONE), "stop string '" + stop + "'");
        }
        GenerationOptions penalties = GenerationOptions.NONE.withPenalties(0.4, 0.3);
        SamplingParams sampled = new SamplingParams(0.9, 40, 0.95, 0.02, 1.1, 7, 40, List.of());
        assertSame(run(CODE, sampled, Speculative.NONE, 0, penalties), run(CODE, sampled, Speculative.NGRAM.always(), 0, penalties),
                "penalties, repetition penalty, top-k, top-p, min-p");
    }

    @Test
    void aKeptConversationCacheHoldsOnlyTheTokensThatRan() {
        // the chat's prompt cache must record the accepted positions only: the next turn reuses them
        SamplingParams greedy = SamplingParams.greedy(30);
        List<int[]> plain = new ArrayList<>(), drafted = new ArrayList<>();
        int[] reused = new int[2];
        for (int mode = 0; mode < 2; mode++) {
            PromptCache cache = new PromptCache();
            List<ChatMessage> msgs = new ArrayList<>(List.of(ChatMessage.user(REPEATS)));
            for (int turn = 0; turn < 2; turn++) {
                KimiVL.Prompt p = model.prompt(msgs, List.of());
                Generator g = model.generator(0).drafting(mode == 0 ? Speculative.NONE : Speculative.NGRAM.always());
                Generator.Result r = g.generate(p.embeddings(), p.ids(), greedy, null, GenerationOptions.NONE.withCache(cache));
                (mode == 0 ? plain : drafted).add(r.tokens());
                msgs.add(ChatMessage.assistant(r.text()));
                msgs.add(ChatMessage.user("Again: " + REPEATS));
            }
            reused[mode] = cache.reusedTokens();
        }
        for (int i = 0; i < plain.size(); i++) assertArrayEquals(plain.get(i), drafted.get(i), "turn " + i);
        assertEquals(reused[0], reused[1], "the second turn reuses as many cached positions with drafting as without");
        assertTrue(reused[1] > 0);
    }

    @Test
    void adaptivePolicyGivesTheSameTokens() {
        for (String text : new String[]{REPEATS, NO_REPEATS}) {
            SamplingParams params = sampling(0.7, 1, 3, 60);
            assertSame(run(text, params, Speculative.NONE, 0, GenerationOptions.NONE),
                    run(text, params, Speculative.NGRAM, 0, GenerationOptions.NONE), "adaptive '" + text + "'");
        }
    }
}
