package dev.kimivl.model;

import dev.kimivl.tensor.KernelSettings;
import com.fasterxml.jackson.databind.JsonNode;
import dev.kimivl.testing.Golden;
import dev.kimivl.vision.ImageLoader;
import dev.kimivl.vision.VisionOutput;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The GGUF goldens (config A written in llama.cpp's Kimi-VL layout; llama.cpp itself ran the text file to the
 * oracle's logits) through the same code path users take: {@link KimiVL#open(Path, Path)}.
 */
class GgufGoldenTest {
    static final Path DIR = Golden.root().resolve("gguf");

    static int[] ints(JsonNode a) {
        int[] out = new int[a.size()];
        for (int i = 0; i < out.length; i++) out[i] = a.get(i).asInt();
        return out;
    }

    static int[] greedy(LanguageModel lm, int[] prompt, int n) {
        KvCache cache = lm.newCache(prompt.length + n);
        float[] logits = lm.logits(lm.forward(lm.embed(prompt), prompt.length, cache, StageSink.NONE, null), prompt.length - 1);
        int[] out = new int[n];
        for (int i = 0; i < n; i++) {
            out[i] = TextGoldenTest.argmax(logits);
            if (i + 1 < n) logits = lm.logits(lm.forward(lm.embed(new int[]{out[i]}), 1, cache, StageSink.NONE, null), 0);
        }
        return out;
    }

    @Test
    void f32TextFileGivesTheOracleLogitsAndTokens() {
        Golden g = Golden.load("gguf");
        try (KimiVL m = KimiVL.open(DIR.resolve("text-f32.gguf"))) {
            int[] ids = m.tokenizer().encode(g.inputs.get("prompt").asText());
            assertArrayEquals(g.inputIds(), ids, "the GGUF's own vocabulary tokenizes the prompt as llama.cpp does");
            LanguageModel lm = m.languageModel();
            float[] h = lm.forward(lm.embed(ids), ids.length, lm.newCache(64), StageSink.NONE, null);
            double d = Golden.assertClose("logits", g.floats("logits"), lm.allLogits(h, ids.length), 1e-4);
            System.out.printf("text-f32.gguf: max |Δlogit| vs oracle %.2e (llama.cpp's own: 2.5e-4, from its kv_a eps 1e-5)%n", d);
            assertArrayEquals(ints(g.expected.get("oracle_greedy_new_tokens")), greedy(lm, ids, 8));
        }
    }

    /** The same through the weight-absorbed prefill and the native kernel's f16 entry point: an f16 KV cache. */
    @Test
    void f32TextFileWithAnF16KvCache() {
        Golden g = Golden.load("gguf");
        try (KimiVL m = KimiVL.open(DIR.resolve("text-f32.gguf"))) {
            LanguageModel lm = m.languageModel();
            lm.kvCachePrecision(KvCache.Precision.F16);
            int[] ids = g.inputIds();
            float[] h = lm.forward(lm.embed(ids), ids.length, lm.newCache(64), StageSink.NONE, null);
            double d = Golden.assertClose("logits with an f16 KV cache", g.floats("logits"), lm.allLogits(h, ids.length), TextGoldenTest.F16_CACHE_LOGITS_ATOL);
            System.out.printf("text-f32.gguf, f16 KV cache: max |Δlogit| vs oracle %.2e%n", d);
            assertArrayEquals(ints(g.expected.get("oracle_greedy_new_tokens")), greedy(lm, ids, 8));
        }
    }

    /**
     * Both prompt forms (MlaAttention.prefill: decompressed through k_b/v_b with the native causal kernel, and weight-
     * absorbed with 4 prompt tokens per kernel call) give the oracle's logits, and a prompt prefilled in pieces of odd
     * lengths after a cached prefix gives the one-shot prefill's hidden states.
     */
    @Test
    void bothPromptFormsGiveTheOracleLogitsAlsoInPieces() {
        Golden g = Golden.load("gguf");
        try (KimiVL m = KimiVL.open(DIR.resolve("text-f32.gguf"))) {
            LanguageModel base = m.languageModel();
            int[] ids = g.inputIds();
            int D = base.config().hiddenSize();
            for (KernelSettings.MlaPromptForm f : new KernelSettings.MlaPromptForm[]{KernelSettings.MlaPromptForm.DECOMPRESSED, KernelSettings.MlaPromptForm.ABSORBED}) {
                LanguageModel lm = base.withKernels(base.kernels().with(base.kernels().settings().withMlaPromptForm(f)));
                String form = f.name().toLowerCase(java.util.Locale.ROOT);
                float[] whole = lm.forward(lm.embed(ids), ids.length, lm.newCache(64), StageSink.NONE, null);
                Golden.assertClose("logits, " + form + " prompt form", g.floats("logits"), lm.allLogits(whole, ids.length), 1e-4);
                KvCache cache = lm.newCache(64);
                int[] cuts = {0, 7, 8, 21, ids.length};
                double worst = 0;
                for (int c = 0; c + 1 < cuts.length; c++) {
                    int[] piece = java.util.Arrays.copyOfRange(ids, cuts[c], cuts[c + 1]);
                    float[] h = lm.forward(lm.embed(piece), piece.length, cache, StageSink.NONE, null);
                    float[] ref = java.util.Arrays.copyOfRange(whole, cuts[c] * D, cuts[c + 1] * D);
                    worst = Math.max(worst, Golden.maxAbsDiff(h, ref));
                }
                assertTrue(worst < 1e-4, form + " prefill in pieces vs one shot: max |Δ final_norm| = " + worst);
            }
        }
    }

    @Test
    void q8TextFileGivesTheOracleTokensOnTheSameRoundedWeights() {
        Golden g = Golden.load("gguf");
        try (KimiVL m = KimiVL.open(DIR.resolve("text-q8_0.gguf"))) {
            LanguageModel lm = m.languageModel();
            int[] ids = g.inputIds();
            float[] logits = lm.allLogits(lm.forward(lm.embed(ids), ids.length, lm.newCache(64), StageSink.NONE, null), ids.length);
            float[] oracle = g.floats("logits");
            int V = lm.config().vocabSize(), agree = 0;
            for (int t = 0; t < ids.length; t++) {
                if (argmax(logits, t * V, V) == argmax(oracle, t * V, V)) agree++;
            }
            System.out.printf("text-q8_0.gguf: top-1 agrees with the f32 oracle at %d/%d positions (the oracle on these rounded weights: 28/30; llama.cpp: 29/30)%n", agree, ids.length);
            assertArrayEquals(ints(g.expected.get("oracle_on_q8_0_weights").get("greedy_new_tokens")), greedy(lm, ids, 8));
        }
    }

    /**
     * The 32-block types that published k-quant files mix in (Q4_1, Q5_0, Q5_1: llama.cpp's fallbacks where a row is
     * not a whole number of 256-blocks), through the whole GGUF path (per-head k_b/v_b views, stacked experts, the
     * quantized embedding): text-mixed.gguf (golden config A re-quantized by gguf-py, make_mixed_gguf.py) gives the
     * logits and greedy tokens of text-mixed-dequant.gguf, the same weights as gguf-py dequantized them to F32.
     */
    @Test
    void mixedBlockTypesGiveTheLogitsOfTheirDequantizedWeights() {
        Golden g = Golden.load("gguf");
        int[] ids = g.inputIds();
        try (KimiVL mixed = KimiVL.open(DIR.resolve("text-mixed.gguf")); KimiVL ref = KimiVL.open(DIR.resolve("text-mixed-dequant.gguf"))) {
            LanguageModel a = mixed.languageModel(), b = ref.languageModel();
            float[] la = a.allLogits(a.forward(a.embed(ids), ids.length, a.newCache(64), StageSink.NONE, null), ids.length);
            float[] lb = b.allLogits(b.forward(b.embed(ids), ids.length, b.newCache(64), StageSink.NONE, null), ids.length);
            Golden.assertClose("logits (Q4_1/Q5_0/Q5_1 file vs its dequantized F32 copy)", lb, la, 1e-4);
            assertArrayEquals(greedy(b, ids, 8), greedy(a, ids, 8));
            float[] oracle = g.floats("logits");
            int V = a.config().vocabSize(), agree = 0;
            for (int t = 0; t < ids.length; t++) if (argmax(la, t * V, V) == argmax(oracle, t * V, V)) agree++;
            System.out.printf("text-mixed.gguf (Q4_1/Q5_0/Q5_1): top-1 agrees with the f32 oracle at %d/%d positions%n", agree, ids.length);
        }
    }

    @Test
    void mmprojGivesTheGoldenImageFeatures() throws Exception {
        Golden b = Golden.load("b_one_image");
        try (KimiVL m = KimiVL.open(DIR.resolve("text-f32.gguf"), DIR.resolve("mmproj-f32.gguf"))) {
            assertEquals(1000, m.config().mediaPlaceholderTokenId());
            var image = new ImageLoader().load(b.dir.resolve("image0.png"));
            VisionOutput v = m.vision().encode(List.of(image));
            Golden.assertClose("image_features", b.floats("image_features"), v.features(), 5e-5);
            // a prompt with the image releases the mmproj pages afterwards; the next encode maps them back in
            m.prompt(List.of(dev.kimivl.text.ChatMessage.of("user", dev.kimivl.text.ChatMessage.imagePart(),
                    dev.kimivl.text.ChatMessage.textPart("What is this?"))), List.of(image));
            assertArrayEquals(v.features(), m.vision().encode(List.of(image)).features(), "features after releaseVisionPages");
            int[] ids = b.inputIds();
            LanguageModel lm = m.languageModel();
            float[] emb = lm.embed(ids);
            ImageMerge.merge(emb, ids, m.config().mediaPlaceholderTokenId(), v.features(), v.textHidden());
            float[] h = lm.forward(emb, ids.length, lm.newCache(64), StageSink.NONE, null);
            Golden.assertClose("logits", b.floats("logits"), lm.allLogits(h, ids.length), 3e-4);
        }
    }

    static int argmax(float[] v, int off, int n) {
        int b = 0;
        for (int i = 1; i < n; i++) if (v[off + i] > v[off + b]) b = i;
        return b;
    }
}
