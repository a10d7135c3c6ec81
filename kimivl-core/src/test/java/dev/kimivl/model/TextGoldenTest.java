package dev.kimivl.model;

import dev.kimivl.tensor.KernelSettings;
import dev.kimivl.tensor.Kernels;
import com.fasterxml.jackson.databind.JsonNode;
import dev.kimivl.config.ModelConfig;
import dev.kimivl.io.SafetensorsCheckpoint;
import dev.kimivl.testing.Golden;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/** Golden case a_text_only: every decoder stage, logits, routing and greedy tokens against the PyTorch oracle. */
class TextGoldenTest {
    /** README §4: hidden states, final norm and logits within 3e-4; the stricter 1e-4 on logits catches a wrong kv_a eps. */
    static final double HIDDEN_ATOL = 3e-4, LOGITS_ATOL = 1e-4;
    /**
     * Logits with the latents rounded to f16 in the cache (relative 2⁻¹¹ per value). Measured 9.3e-3 here and 1.5e-2
     * on the GGUF golden (|logits| ≤ 14: ~1e-3 of the range); a wrong conversion or layout moves them by whole units.
     */
    static final double F16_CACHE_LOGITS_ATOL = 3e-2;
    /**
     * bf16 cache: its 2⁻⁸ relative rounding alone (f32 products over the widened cache) moved this model's logits by
     * 0.076 at most (f16: 0.0093, 8× as 3 mantissa bits should); the vdpbf16ps kernels also round the queries and the
     * softmax weights to bf16, as GPU bf16 attention does: 0.174. A wrong layout or pairing moves them by whole units.
     */
    static final double BF16_CACHE_LOGITS_ATOL = 0.3;

    static Golden golden;
    static SafetensorsCheckpoint ckpt;
    static LanguageModel lm;

    @BeforeAll
    static void load() {
        golden = Golden.load("a_text_only");
        ckpt = SafetensorsCheckpoint.open(golden.dir);
        ModelConfig cfg = ModelConfig.load(golden.dir);
        lm = LanguageModel.load(ckpt, cfg.text(), cfg.textPrefix());
    }

    @AfterAll
    static void close() { ckpt.close(); }

    @Test
    void everyStageMatchesTheOracle() {
        int[] ids = golden.inputIds();
        Map<String, float[]> stages = new HashMap<>();
        KvCache cache = lm.newCache(64);
        float[] h = lm.forward(lm.embed(ids), ids.length, cache, (name, data, shape) -> stages.put(name, data.clone()), null);
        Golden.assertClose("embeddings", golden.floats("embeddings"), stages.get("embeddings"), 5e-5);
        for (int l = 0; l < lm.config().numLayers(); l++) {
            Golden.assertClose("hidden.layer" + l, golden.floats("hidden.layer" + l), stages.get("hidden.layer" + l), HIDDEN_ATOL);
        }
        double dn = Golden.assertClose("final_norm", golden.floats("final_norm"), stages.get("final_norm"), HIDDEN_ATOL);
        double dl = Golden.assertClose("logits", golden.floats("logits"), lm.allLogits(h, ids.length), LOGITS_ATOL);
        System.out.printf("a_text_only: max |Δ| final_norm %.2e, logits %.2e%n", dn, dl);
    }

    @Test
    void lastPositionTop5() {
        int[] ids = golden.inputIds();
        float[] h = lm.forward(lm.embed(ids), ids.length, lm.newCache(64), StageSink.NONE, null);
        float[] logits = lm.logits(h, ids.length - 1);
        int[] top = MoeBlock.topK(logits, 5);
        assertArrayEquals(golden.ints(golden.expected.get("last_position_top5").get("ids")), top);
    }

    @Test
    void lastTokenRoutingMatches() {
        int[] ids = golden.inputIds();
        int T = ids.length;
        MoeBlock.Routing[][] routing = new MoeBlock.Routing[lm.config().numLayers()][T];
        lm.forward(lm.embed(ids), T, lm.newCache(64), StageSink.NONE, routing);
        JsonNode expected = golden.expected.get("last_token_routing");
        for (var it = expected.fields(); it.hasNext(); ) {
            var e = it.next();
            int layer = Integer.parseInt(e.getKey());
            MoeBlock.Routing r = routing[layer][T - 1];
            int[] got = r.experts().clone();
            int[] want = golden.ints(e.getValue().get("experts"));
            float[] gotW = new float[got.length];
            Integer[] order = new Integer[got.length];
            for (int i = 0; i < order.length; i++) order[i] = i;
            Arrays.sort(order, (a, b) -> Integer.compare(got[a], got[b]));
            int[] sorted = new int[got.length];
            for (int i = 0; i < order.length; i++) { sorted[i] = got[order[i]]; gotW[i] = r.weights()[order[i]]; }
            assertArrayEquals(want, sorted, "experts of layer " + layer);
            JsonNode ww = e.getValue().get("weights");
            for (int i = 0; i < want.length; i++) assertEquals(ww.get(i).asDouble(), gotW[i], 1e-5, "weight " + i + " of layer " + layer);
        }
    }

    @Test
    void greedyTokensByFullRecomputeAndByKvCacheDecode() {
        int[] prompt = golden.inputIds();
        int[] want = golden.ints(golden.expected.get("greedy_new_tokens"));
        // full recompute: re-run the whole sequence for each new token
        int[] seq = prompt;
        int[] full = new int[want.length];
        for (int i = 0; i < want.length; i++) {
            float[] h = lm.forward(lm.embed(seq), seq.length, lm.newCache(64), StageSink.NONE, null);
            full[i] = argmax(lm.logits(h, seq.length - 1));
            seq = Arrays.copyOf(seq, seq.length + 1);
            seq[seq.length - 1] = full[i];
        }
        assertArrayEquals(want, full, "full recompute");
        // prefill once, then the absorbed-MLA decode path
        KvCache cache = lm.newCache(64);
        float[] h = lm.forward(lm.embed(prompt), prompt.length, cache, StageSink.NONE, null);
        int[] cached = new int[want.length];
        cached[0] = argmax(lm.logits(h, prompt.length - 1));
        for (int i = 1; i < want.length; i++) {
            float[] hi = lm.forward(lm.embed(new int[]{cached[i - 1]}), 1, cache, StageSink.NONE, null);
            cached[i] = argmax(lm.logits(hi, 0));
        }
        assertArrayEquals(want, cached, "KV-cache decode");
    }

    /**
     * The 16-bit KV caches (f16, the default outside the golden tests, which pin f32; and bf16, with its own tolerance:
     * 3 fewer mantissa bits, and its native kernel rounds the queries and weights to bf16 too): prefill logits stay close
     * to the oracle and prefill + decode give its greedy tokens (f32 cache: max |Δlogit| ~2e-5).
     */
    @Test
    void sixteenBitKvCachesKeepTheOracleLogitsAndTokens() {
        int[] prompt = golden.inputIds();
        int[] want = golden.ints(golden.expected.get("greedy_new_tokens"));
        for (KvCache.Precision p : new KvCache.Precision[]{KvCache.Precision.F16, KvCache.Precision.BF16}) {
            KvCache cache = lm.newCache(64, p);
            float[] h = lm.forward(lm.embed(prompt), prompt.length, cache, StageSink.NONE, null);
            double atol = p == KvCache.Precision.F16 ? F16_CACHE_LOGITS_ATOL : BF16_CACHE_LOGITS_ATOL;
            double d = Golden.assertClose("logits with a " + p + " KV cache", golden.floats("logits"), lm.allLogits(h, prompt.length), atol);
            System.out.printf("a_text_only, %s KV cache: max |Δlogit| %.2e%n", p, d);
            int[] cached = new int[want.length];
            cached[0] = argmax(lm.logits(h, prompt.length - 1));
            for (int i = 1; i < want.length; i++) {
                cached[i] = argmax(lm.logits(lm.forward(lm.embed(new int[]{cached[i - 1]}), 1, cache, StageSink.NONE, null), 0));
            }
            assertArrayEquals(want, cached, "KV-cache decode, " + p + " cache");
            // the decompressed prompt form over the same cache (bf16: the vdpbf16ps prompt kernel where the CPU has it)
            var settings = lm.kernels().settings().withMlaPromptForm(KernelSettings.MlaPromptForm.DECOMPRESSED);
            LanguageModel decompressed = lm.withKernels(lm.kernels().with(settings));
            float[] hd = decompressed.forward(lm.embed(prompt), prompt.length, decompressed.newCache(64, p), StageSink.NONE, null);
            double dd = Golden.assertClose("logits with a " + p + " KV cache, decompressed prompt form", golden.floats("logits"),
                    lm.allLogits(hd, prompt.length), atol);
            System.out.printf("a_text_only, %s KV cache, decompressed prompt form: max |Δlogit| %.2e%n", p, dd);
        }
    }

    /** Both prompt forms (decompressed through kv_b, weight-absorbed through the per-head split of kv_b) give the oracle's logits. */
    @Test
    void bothPromptFormsGiveTheOracleLogits() {
        int[] ids = golden.inputIds();
        {
            for (KernelSettings.MlaPromptForm f : new KernelSettings.MlaPromptForm[]{KernelSettings.MlaPromptForm.DECOMPRESSED, KernelSettings.MlaPromptForm.ABSORBED}) {
                LanguageModel pinned = lm.withKernels(lm.kernels().with(lm.kernels().settings().withMlaPromptForm(f)));
                float[] h = pinned.forward(lm.embed(ids), ids.length, lm.newCache(64), StageSink.NONE, null);
                Golden.assertClose("logits, " + f + " prompt form", golden.floats("logits"), lm.allLogits(h, ids.length), LOGITS_ATOL);
            }
        }
    }

    /** A prompt run in passes of KernelSettings.prefillChunk tokens (long prompts) ends in the one-pass hidden state. */
    @Test
    void chunkedPrefillEqualsOnePass() {
        int[] ids = golden.inputIds();
        int D = lm.config().hiddenSize();
        float[] whole = lm.forward(lm.embed(ids), ids.length, lm.newCache(64), StageSink.NONE, null);
        LanguageModel chunked = lm.withKernels(lm.kernels().with(lm.kernels().settings().withPrefillChunk(7)));
        {
            KvCache cache = chunked.newCache(64);
            java.util.List<Integer> seen = new java.util.ArrayList<>();
            float[] last = chunked.prefill(lm.embed(ids), ids.length, cache, (done, total) -> seen.add(done));
            assertEquals(ids.length, cache.length());
            assertEquals(0, seen.get(0));
            assertEquals(Math.min(7, ids.length), seen.get(1));
            assertEquals(ids.length, seen.get(seen.size() - 1));
            double d = Golden.maxAbsDiff(last, Arrays.copyOfRange(whole, (ids.length - 1) * D, ids.length * D));
            assertTrue(d < 1e-4, "chunked prefill vs one pass: max |Δ| = " + d);
        }
    }

    /**
     * The decompressed form in chunks: every layer of a pass reuses the cache's work arrays, each chunk sizes them
     * anew (S grows), and a prefill leaves none behind; the result is the one-pass hidden state.
     */
    @Test
    void decompressedChunksShareTheirWorkArraysAndDropThem() {
        int[] ids = golden.inputIds();
        int D = lm.config().hiddenSize();
        var settings = lm.kernels().settings().withMlaPromptForm(KernelSettings.MlaPromptForm.DECOMPRESSED);
        LanguageModel whole = lm.withKernels(lm.kernels().with(settings));
        LanguageModel chunked = lm.withKernels(lm.kernels().with(settings.withPrefillChunk(5)));
        float[] one = whole.forward(lm.embed(ids), ids.length, lm.newCache(64), StageSink.NONE, null);
        KvCache cache = chunked.newCache(64);
        float[] last = chunked.prefill(lm.embed(ids), ids.length, cache, null);
        assertFalse(cache.holdsPromptScratch(), "the work arrays live only while the prompt runs");
        double d = Golden.maxAbsDiff(last, Arrays.copyOfRange(one, (ids.length - 1) * D, ids.length * D));
        assertTrue(d < 1e-4, "decompressed chunks vs one pass: max |Δ| = " + d);
        // a forward pass outside prefill keeps them (the next prefill's end drops them), and they change nothing
        KvCache c2 = whole.newCache(64);
        float[] again = whole.forward(lm.embed(ids), ids.length, c2, StageSink.NONE, null);
        assertTrue(c2.holdsPromptScratch());
        assertArrayEquals(one, again);
    }

    /**
     * The decompressed form over key blocks (the context before a chunk decompressed a block at a time, the softmax
     * state carried between blocks) gives the one-pass hidden state, for blocks that divide the context and blocks
     * that leave a shorter last one, down to one position a block.
     */
    @Test
    void decompressedKeyBlocksEqualOnePass() {
        int[] ids = golden.inputIds();
        int D = lm.config().hiddenSize();
        var settings = lm.kernels().settings().withMlaPromptForm(KernelSettings.MlaPromptForm.DECOMPRESSED);
        float[] one = lm.withKernels(lm.kernels().with(settings)).forward(lm.embed(ids), ids.length, lm.newCache(64), StageSink.NONE, null);
        float[] want = Arrays.copyOfRange(one, (ids.length - 1) * D, ids.length * D);
        for (int block : new int[]{1, 3, 4, 64}) {
            for (int chunk : new int[]{4, 7}) {
                LanguageModel blocked = lm.withKernels(lm.kernels().with(settings.withPrefillChunk(chunk).withMlaKeyBlock(block)));
                float[] last = blocked.prefill(lm.embed(ids), ids.length, blocked.newCache(64), null);
                double d = Golden.maxAbsDiff(last, want);
                assertTrue(d < 1e-4, "key blocks of " + block + ", chunks of " + chunk + " vs one pass: max |Δ| = " + d);
            }
        }
        // over a bf16 cache (the vdpbf16ps kernel where the CPU has it): each block's weights are rounded to bf16 after
        // its own running maximum, so the blockings differ by that rounding, not by whole units
        float[] oneBf16 = lm.withKernels(lm.kernels().with(settings)).forward(lm.embed(ids), ids.length, lm.newCache(64, KvCache.Precision.BF16), StageSink.NONE, null);
        float[] wantBf16 = Arrays.copyOfRange(oneBf16, (ids.length - 1) * D, ids.length * D);
        for (int block : new int[]{1, 3, 64}) {
            LanguageModel blocked = lm.withKernels(lm.kernels().with(settings.withPrefillChunk(7).withMlaKeyBlock(block)));
            double d = Golden.maxAbsDiff(blocked.prefill(lm.embed(ids), ids.length, blocked.newCache(64, KvCache.Precision.BF16), null), wantBf16);
            assertTrue(d < 2e-2, "bf16 cache, key blocks of " + block + ", chunks of 7 vs one pass: max |Δ| = " + d);
        }
    }

    /** The Java kernels (fallback without the native library) give the native kernels' prompt hidden states. */
    @Test
    void javaAndNativeKernelsAgree() {
        int[] ids = golden.inputIds();
        float[] nat = lm.forward(lm.embed(ids), ids.length, lm.newCache(64), StageSink.NONE, null);
        {
            LanguageModel javaLm = lm.withKernels(Kernels.java());
            float[] java = javaLm.forward(lm.embed(ids), ids.length, lm.newCache(64), StageSink.NONE, null);
            double d = Golden.maxAbsDiff(nat, java);
            assertTrue(d < 2e-5, "final_norm, Java vs native attention: max |Δ| = " + d);
        }
    }

    @Test
    void absorbedDecodeEqualsNaivePrefillStepByStep() {
        int[] ids = golden.inputIds();
        KvCache cache = lm.newCache(64);
        int start = 20;
        lm.forward(lm.embed(Arrays.copyOf(ids, start)), start, cache, StageSink.NONE, null);
        float[] full = lm.forward(lm.embed(ids), ids.length, lm.newCache(64), StageSink.NONE, null);
        int D = lm.config().hiddenSize();
        double worst = 0;
        for (int t = start; t < ids.length; t++) {
            float[] step = lm.forward(lm.embed(new int[]{ids[t]}), 1, cache, StageSink.NONE, null);
            float[] ref = Arrays.copyOfRange(full, t * D, (t + 1) * D);
            worst = Math.max(worst, Golden.maxAbsDiff(step, ref));
        }
        assertTrue(worst < 1e-4, "absorbed decode vs naive prefill: max |Δ final_norm| = " + worst);
    }

    @Test
    void contextOverflowIsAnErrorNotATruncation() {
        int[] ids = golden.inputIds();
        KvCache cache = lm.newCache(ids.length - 1);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> lm.forward(lm.embed(ids), ids.length, cache, StageSink.NONE, null));
        assertTrue(e.getMessage().contains("37 new tokens") && e.getMessage().contains("context of 36"), e.getMessage());
    }

    static int argmax(float[] v) {
        int b = 0;
        for (int i = 1; i < v.length; i++) if (v[i] > v[b]) b = i;
        return b;
    }
}
