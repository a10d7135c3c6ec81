package dev.kimivl.model;

import dev.kimivl.config.ModelConfig;
import dev.kimivl.io.QuantizedWeights;
import dev.kimivl.io.SafetensorsCheckpoint;
import dev.kimivl.io.WeightSource;
import dev.kimivl.tensor.DType;
import dev.kimivl.testing.Golden;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.Arrays;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/**
 * {@link LanguageModel#decodeBatch}: several sequences at different positions decoded in one step give each
 * sequence's single-token decode logits (to float rounding), and a sequence's logits are bit for bit the same alone,
 * among others and in any order (what lets a server batch requests without changing their answers).
 */
class BatchedDecodeTest {
    private static final int STEPS = 6;

    @ParameterizedTest
    @ValueSource(strings = {"BF16", "Q8_0", "Q4_0"})
    void batchedStepsEqualSingleDecodeAndDoNotDependOnTheirNeighbours(String type) {
        Golden g = Golden.load("a_text_only");
        ModelConfig cfg = ModelConfig.load(g.dir);
        try (SafetensorsCheckpoint ckpt = SafetensorsCheckpoint.open(g.dir)) {
            WeightSource w = type.equals("BF16") ? ckpt : new QuantizedWeights(ckpt, DType.valueOf(type));
            LanguageModel lm = LanguageModel.load(w, cfg.text(), cfg.textPrefix());
            int V = cfg.text().vocabSize(), D = cfg.text().hiddenSize();
            Random r = new Random(7);
            int[][] prompts = {ids(r, 5, V), ids(r, 23, V), ids(r, 1, V)};     // three positions apart
            int[][] next = new int[prompts.length][STEPS];
            for (int[] n : next) for (int s = 0; s < STEPS; s++) n[s] = r.nextInt(V);
            int S = prompts.length;
            KvCache[] single = caches(lm, prompts), batch = caches(lm, prompts), reversed = caches(lm, prompts);
            KvCache[][] alone = new KvCache[S][];
            for (int i = 0; i < S; i++) alone[i] = caches(lm, new int[][]{prompts[i]});
            double worst = 0, range = 0;
            for (int s = 0; s < STEPS; s++) {
                // batch [0, 1, 2]
                float[] x = new float[S * D];
                for (int i = 0; i < S; i++) System.arraycopy(lm.embed(new int[]{next[i][s]}), 0, x, i * D, D);
                float[] lb = lm.logitsRows(lm.decodeBatch(x, batch), S);
                // the same sequences in the order [2, 1, 0]
                float[] xr = new float[S * D];
                KvCache[] rc = {reversed[2], reversed[1], reversed[0]};
                for (int i = 0; i < S; i++) System.arraycopy(lm.embed(new int[]{next[S - 1 - i][s]}), 0, xr, i * D, D);
                float[] lr = lm.logitsRows(lm.decodeBatch(xr, rc), S);
                for (int i = 0; i < S; i++) {
                    float[] inBatch = Arrays.copyOfRange(lb, i * V, (i + 1) * V);
                    // the single-sequence decode path (matvec kernels, the one-token MoE path)
                    float[] one = lm.logits(lm.forward(lm.embed(new int[]{next[i][s]}), 1, single[i], StageSink.NONE, null), 0);
                    worst = Math.max(worst, Golden.maxAbsDiff(one, inBatch));
                    for (float v : one) range = Math.max(range, Math.abs(v));
                    // a batch of one
                    float[] solo = lm.logitsRows(lm.decodeBatch(lm.embed(new int[]{next[i][s]}), alone[i]), 1);
                    // bit for bit, every weight type: with Q8_0/Q4_0 weights this once differed in the last bits from step 2
                    // on, because the Java kernels' lane sums (reduceLanes) changed when the JIT compiled them between
                    // the two computations (KernelJitDeterminismTest)
                    assertArrayEquals(solo, inBatch, type + " step " + s + " sequence " + i + ": alone vs in a batch of " + S);
                    assertArrayEquals(inBatch, Arrays.copyOfRange(lr, (S - 1 - i) * V, (S - i) * V),
                            type + " step " + s + " sequence " + i + ": the batch's order must not matter");
                }
                for (int i = 0; i < S; i++) assertEquals(prompts[i].length + s + 1, batch[i].length(), "each cache advances by one");
            }
            System.out.printf("batched vs single decode (%s): max |Δlogit| %.2e of logits up to %.2f%n", type, worst, range);
            // float weights: the two paths use different kernels (rounding only); quantized: the same integer kernels
            assertTrue(worst <= 1e-4 * Math.max(1, range), type + ": batched decode logits differ from single decode by " + worst);
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"BF16"})
    void aCacheTwiceInOneStepOrAFullCacheIsRefused(String ignored) {
        Golden g = Golden.load("a_text_only");
        ModelConfig cfg = ModelConfig.load(g.dir);
        try (SafetensorsCheckpoint ckpt = SafetensorsCheckpoint.open(g.dir)) {
            LanguageModel lm = LanguageModel.load(ckpt, cfg.text(), cfg.textPrefix());
            int D = cfg.text().hiddenSize();
            KvCache c = lm.newCache(4);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> lm.decodeBatch(new float[2 * D], new KvCache[]{c, c}));
            assertTrue(e.getMessage().contains("share one KV cache"), e.getMessage());
            KvCache full = lm.newCache(2);
            lm.forward(lm.embed(new int[]{1, 2}), 2, full, StageSink.NONE, null);
            e = assertThrows(IllegalArgumentException.class, () -> lm.decodeBatch(new float[D], new KvCache[]{full}));
            assertTrue(e.getMessage().contains("cache is full (2 of 2 tokens)"), e.getMessage());
        }
    }

    private static int[] ids(Random r, int n, int V) {
        int[] ids = new int[n];
        for (int i = 0; i < n; i++) ids[i] = r.nextInt(V);
        return ids;
    }

    /** A cache per prompt, each prompt prefilled into it. */
    private static KvCache[] caches(LanguageModel lm, int[][] prompts) {
        KvCache[] c = new KvCache[prompts.length];
        for (int i = 0; i < prompts.length; i++) {
            c[i] = lm.newCache(64);
            lm.forward(lm.embed(prompts[i]), prompts[i].length, c[i], StageSink.NONE, null);
        }
        return c;
    }
}
