package dev.kimivl.bench;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/**
 * {@code kimivl bench --context 24,40 --context-fill prefill|random} on a tiny Kimi-VL-shaped Q4_0 file: one decode
 * per context, each with the KV cache's bytes and how its context was made (issue 16's 4K / 32K / 128K figures
 * are this measurement at full size).
 */
class LongContextBenchTest {
    private static ModelBench.Result run(Path dir, ModelBench.ContextFill fill, ByteArrayOutputStream log) throws Exception {
        ModelBench.Options o = new ModelBench.Options(QuantMix.Q4_0, dir, 16, 4, List.of(24, 40), fill, List.of(3), 56, false, 32.0, 42, false, true, true);
        return ModelBench.run(o, QuantMixTest.tinyConfig(), new PrintStream(log, true, StandardCharsets.UTF_8));
    }

    @Test
    void eachContextIsDecodedAfterARealPrefillOrRandomLatentsWithItsCacheBytes(@TempDir Path dir) throws Exception {
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        ModelBench.Result pre = run(dir, ModelBench.ContextFill.PREFILL, log);
        String text = ModelBench.text(pre);
        System.out.print(text);
        assertEquals(List.of(24, 40), pre.decodeAt().stream().map(ModelBench.Decode::context).toList());
        assertSame(pre.decodeAt().getFirst(), pre.decodeLong(), "the first context is the one compared with llama-bench");
        assertFalse(pre.longContextRandomFill());
        // 27 layers x 576 latents x 2 or 4 bytes (the tiny file's f32 lm_head gives an f32 cache) x (context + 4 decoded + 1)
        long perPosition = 27L * 576 * (pre.kvCache().equals("f16") ? 2 : 4);
        for (ModelBench.Decode d : pre.decodeAt()) {
            assertEquals("prefill", d.fill());
            assertTrue(d.fillSeconds() > 0, "the prefill was timed");
            assertEquals(perPosition * (d.context() + 4 + 1), d.kvCacheBytes(), "the cache holds exactly its positions");
            assertTrue(d.rssBytes() > 0);
            assertTrue(text.contains("(the " + d.context() + "-token context is made by a prefill of " + d.context() + " random tokens: "), text);
        }
        assertTrue(text.contains(String.format(java.util.Locale.ROOT, "KV cache %.3f GB (%s, 29 positions)", perPosition * 29 / 1e9, pre.kvCache())), text);
        assertTrue(log.toString(StandardCharsets.UTF_8).contains("prefill of the 40-token context: 40/40 tokens"), log.toString(StandardCharsets.UTF_8));
        assertTrue(ModelBench.json(pre).contains("\"fill\":\"prefill\""));
        // --verify-rows 3: one forwardRows pass of 3 tokens timed against a decode step
        ModelBench.VerifyPass v = pre.verify().getFirst();
        assertEquals(3, v.rows());
        assertTrue(v.seconds() > 0 && v.ofDecodeStep() > 0);
        assertTrue(text.contains("  verify 3 rows     "), text);
        assertTrue(text.contains(v.exact() ? "exact on these weights" : "NOT exact here"), text);

        ModelBench.Result rnd = run(dir, ModelBench.ContextFill.RANDOM, new ByteArrayOutputStream());
        for (ModelBench.Decode d : rnd.decodeAt()) {
            assertEquals("random", d.fill());
            assertEquals(0, d.fillSeconds());
            assertEquals(perPosition * (d.context() + 4 + 1), d.kvCacheBytes());
        }
        assertTrue(ModelBench.text(rnd).contains("(the 40-token context is random latents written into the KV cache, not a prefill;"));
        assertEquals("none", rnd.decode().fill());
    }

    @Test
    void tailFillPrefillsOnlyTheLastChunkAndMeasuresItsTransientMemory(@TempDir Path dir) throws Exception {
        // prefill chunks are 2048 tokens: a 2056-token context is 2048 random positions, then its last 8 tokens as a
        // real prefill; a 40-token context is one chunk, all of it prefilled
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        ModelBench.Options o = new ModelBench.Options(QuantMix.Q4_0, dir, 16, 4, List.of(2056, 40), ModelBench.ContextFill.TAIL, List.of(),
                56, false, 32.0, 42, false, true, true);
        ModelBench.Result tail = ModelBench.run(o, QuantMixTest.tinyConfig(), new PrintStream(log, true, StandardCharsets.UTF_8));
        long perPosition = 27L * 576 * (tail.kvCache().equals("f16") ? 2 : 4);
        List<Integer> prefilled = List.of(8, 40);
        for (int i = 0; i < 2; i++) {
            ModelBench.Decode d = tail.decodeAt().get(i);
            assertEquals("tail", d.fill());
            assertEquals(prefilled.get(i), d.fillTokens());
            assertTrue(d.fillSeconds() > 0);
            assertEquals(perPosition * (d.context() + 4 + 1), d.kvCacheBytes(), "the cache holds the random positions and the chunk's");
            assertTrue(d.transientHeapBytes() > 0, "the chunk's activations are measured: " + d.transientHeapBytes());
            assertTrue(d.transientRssBytes() >= 0, "Linux: the peak RSS rise is measured: " + d.transientRssBytes());
            assertTrue(d.transientLiveBytes() >= -1 && d.transientLiveBytes() <= d.transientHeapBytes() + (1 << 20),
                    "live after a collection ≤ the pools' peaks: " + d.transientLiveBytes() + " vs " + d.transientHeapBytes());
            // the cache was reserved before the chunk: its 2061 positions (~6 MB here) are not the chunk's transient memory
        }
        String text = ModelBench.text(tail);
        assertTrue(text.contains("(the 2056-token context is random latents, then its last 8 tokens as a real prefill: "), text);
        assertTrue(text.contains("transient memory "), text);
        String progress = log.toString(StandardCharsets.UTF_8);
        assertTrue(progress.contains("prefill of the last 8 tokens of the 2056-token context: "), progress);
        assertTrue(progress.contains("prefill of the 40-token context: "), progress);
        assertTrue(ModelBench.json(tail).contains("\"fill\":\"tail\""));
    }

    @Test
    void badContextOptionsAreNamed() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ModelBench.ContextFill.parse("prompt"));
        assertEquals("--context-fill must be random, prefill or tail, not 'prompt'", e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> new ModelBench.Options(QuantMix.Q4_0, Path.of("x"), 16, 4, List.of(),
                ModelBench.ContextFill.RANDOM, List.of(), 56, false, 32, 42, false, true, true));
        assertTrue(e.getMessage().startsWith("--context needs at least one value"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> new ModelBench.Options(QuantMix.Q4_0, Path.of("x"), 16, 4, List.of(4096, -1),
                ModelBench.ContextFill.RANDOM, List.of(), 56, false, 32, 42, false, true, true));
        assertEquals("--context must not be negative: -1", e.getMessage());
    }
}
