package dev.kimivl.train;

import dev.kimivl.config.ModelConfig;
import dev.kimivl.io.SafetensorsCheckpoint;
import dev.kimivl.train.recipe.ModelSpec;
import dev.kimivl.train.tokenizer.TokenizerFiles;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * End to end through the training path: a 2-layer Kimi-VL language model (MLA with decoupled RoPE, a MoE layer) learns
 * to copy a random token sequence from scratch, the induction circuit that retrieval (NIAH) needs. Copying the k-th
 * token of the repeat needs a head that attends by relative position (the token after the previous match), so the
 * loss falls below "any token of the sequence" (ln 16 ≈ 2.8) only if RoPE, the attention backward pass and the
 * optimizers all work together; the gradient goldens check each piece, this checks that they learn. Deterministic
 * (seeded data and initialisation, bit-identical training), so the step count is a fixed fact of this code:
 * TRAINING.md (session 9) has the same probe at larger vocabularies and learning rates.
 */
class CopyCircuitTest {
    /** Copied tokens come from [FIRST, FIRST + SYMBOLS); FIRST + SYMBOLS is the separator. */
    private static final int FIRST = 100, SYMBOLS = 64, BATCH = 16;

    @Test
    void aTwoLayerModelLearnsToCopy(@TempDir Path dir) throws Exception {
        ModelSpec spec = new ModelSpec(128, 2, 4, 32, 16, 16, 16, 256, 64, 4, 2, 1, 1, 50000.0, 512,
                32, 1, 2, 64, 16, 196, 0.0, "normal");
        var ids = TokenizerFiles.layout(256, TokenizerFiles.defaultVocabSize(256));
        spec.writeInitial(dir, ids, 7);
        ModelConfig cfg = ModelConfig.load(dir);
        TextGrad tg;
        try (SafetensorsCheckpoint ck = SafetensorsCheckpoint.open(dir)) { tg = new TextGrad(ck, cfg.text(), cfg.textPrefix()); }
        // the trainer's split: Muon on the hidden matrices, AdamW on embeddings, head, norms, router (at 2e-3 each;
        // at Muon 1e-2 the probe never left chance)
        Map<String, Muon> muon = new HashMap<>();
        Map<String, AdamW> adam = new HashMap<>();
        for (var e : tg.parameters().entrySet()) {
            String n = e.getKey();
            long[] s = tg.shape(n);
            boolean hidden = Muon.takesLanguageModelTensor(n, s);
            if (hidden) muon.put(n, new Muon((int) s[0], (int) s[1], 2e-3f, 0.01f));
            else adam.put(n, new AdamW(e.getValue().length, 2e-3f, 0.9f, 0.95f, 1e-8f, s.length == 1 ? 0f : 0.01f));
        }
        SplittableRandom r = new SplittableRandom(5);
        double first = Double.NaN, window = 0;
        int learntAt = -1;
        for (int step = 1; step <= 1200 && learntAt < 0; step++) {
            int[][] batch = batch(r);
            double loss = step(tg, batch[0], batch[1], batch[2], muon, adam);
            if (step == 1) first = loss;
            window += loss;
            if (step % 50 == 0) {
                if (window / 50 < 0.5) learntAt = step;
                window = 0;
            }
        }
        System.out.printf(java.util.Locale.ROOT, "copy circuit: loss %.2f at step 1, below 0.5 from step %d%n", first, learntAt);
        assertTrue(first > 4, "starts near chance (ln 64 = 4.2): " + first);
        assertTrue(learntAt > 0, "the mean loss of 50 steps never fell below 0.5 in 1,200 steps: no copy circuit");
    }

    /** BATCH sequences "x1..xn SEP x1..xn" packed into one row: {ids, targets (−100 outside the repeat), segment starts}. */
    private static int[][] batch(SplittableRandom r) {
        int total = 0;
        int[][] seqs = new int[BATCH][];
        for (int b = 0; b < BATCH; b++) {
            int n = 8 + r.nextInt(17);
            int[] s = new int[2 * n + 1];
            for (int i = 0; i < n; i++) s[i] = s[n + 1 + i] = FIRST + r.nextInt(SYMBOLS);
            s[n] = FIRST + SYMBOLS;
            seqs[b] = s;
            total += s.length;
        }
        int[] ids = new int[total], targets = new int[total], seg = new int[total];
        for (int b = 0, o = 0; b < BATCH; b++) {
            int[] s = seqs[b];
            int n = (s.length - 1) / 2;
            for (int i = 0; i < s.length; i++) {
                ids[o + i] = s[i];
                seg[o + i] = o;
                // scored: the repeat's tokens after its first (which nothing in the sequence predicts)
                targets[o + i] = i >= n + 1 && i + 1 < s.length ? s[i + 1] : -100;
            }
            o += s.length;
        }
        return new int[][]{ids, targets, seg};
    }

    private static double step(TextGrad tg, int[] ids, int[] targets, int[] seg, Map<String, Muon> muon, Map<String, AdamW> adam) {
        boolean[] isText = new boolean[ids.length];
        java.util.Arrays.fill(isText, true);
        TextGrad.Result res = tg.lossAndGrads(tg.embed(ids, isText, new float[0]), ids, isText, targets, seg);
        Map<String, float[]> p = tg.parameters();
        for (var e : res.grads().entrySet()) {
            if (muon.containsKey(e.getKey())) muon.get(e.getKey()).step(p.get(e.getKey()), e.getValue());
            else adam.get(e.getKey()).step(p.get(e.getKey()), e.getValue());
        }
        return res.loss();
    }
}
