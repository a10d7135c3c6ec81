package dev.kimivl.model;

import dev.kimivl.config.ModelConfig;
import dev.kimivl.io.QuantizedWeights;
import dev.kimivl.io.SafetensorsCheckpoint;
import dev.kimivl.io.WeightSource;
import dev.kimivl.tensor.DType;
import dev.kimivl.tensor.KernelSettings;
import dev.kimivl.tensor.Kernels;
import dev.kimivl.tensor.NativeKernels;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/**
 * {@link LanguageModel#forwardRows}, the verify step of speculative decoding: T consecutive tokens in one pass give
 * each token's single-token decode logits bit for bit (float weights), and the cache rolled back past some of them
 * continues exactly as if the rolled-back rows had never run.
 */
class ForwardRowsTest {
    /**
     * The models a row is checked on: float checkpoints as they are; quantized ones (tiny-random quantized on load,
     * the golden GGUF files: Q8_0, and Q4_1/Q5_0/Q5_1 with a Q8_0 embedding) with the integer matvec, the CLI's
     * default (the suite runs with {@code -Dkimivl.intMatvec=false}, under which they are not exact and
     * {@link LanguageModel#rowsMatchDecode} says so: {@link #rowsMatchDecodeFollowsTheWeightsAndTheKernels}).
     */
    static Loaded model(String model, String type) {
        if (model.endsWith(".gguf")) {
            KimiVL m = KimiVL.open(GgufGoldenTest.DIR.resolve(model));
            return new Loaded(integer(m.languageModel()), m);
        }
        Path dir = Path.of("../models", model);
        ModelConfig cfg = ModelConfig.load(dir);
        SafetensorsCheckpoint ckpt = SafetensorsCheckpoint.open(dir);
        boolean isFloat = type.equals("BF16") || type.equals("F32");
        WeightSource w = isFloat ? ckpt : new QuantizedWeights(ckpt, DType.valueOf(type));
        LanguageModel lm = LanguageModel.load(w, cfg.text(), cfg.textPrefix());
        return new Loaded(isFloat ? lm : integer(lm), ckpt);
    }

    /** A model and what holds its weights open. */
    record Loaded(LanguageModel lm, AutoCloseable weights) implements AutoCloseable {
        @Override public void close() throws Exception { weights.close(); }
    }

    /** The same weights with the integer matvec (int8 activations), the native kernels where they are loaded. */
    static LanguageModel integer(LanguageModel lm) {
        return lm.withKernels(Kernels.preferred(lm.kernels().settings().withIntMatvec(true)));
    }

    @ParameterizedTest
    @CsvSource({"tiny-random,BF16", "kimivl-nano-instruct,F32", "tiny-random,Q8_0", "tiny-random,Q4_0", "text-q8_0.gguf,Q8_0", "text-mixed.gguf,Q4_1/Q5_0/Q5_1"})
    void rowsEqualSingleTokenDecode(String model, String type) throws Exception {
        try (Loaded loaded = model(model, type)) {
            LanguageModel lm = loaded.lm();
            if (!lm.rowsMatchDecode()) {
                // only the Java kernel set (no native library) lacks an integer matvec for the 32-block formats
                assertFalse(NativeKernels.AVAILABLE, model + ": with the native kernels every type has an integer matvec");
                return;
            }
            var cfg = lm.config();
            int V = cfg.vocabSize();
            Random r = new Random(11);
            int[] prompt = ids(r, 9, V), next = ids(r, 7, V);
            KvCache single = lm.newCache(64), rows = lm.newCache(64);
            lm.forward(lm.embed(prompt), prompt.length, single, StageSink.NONE, null);
            lm.forward(lm.embed(prompt), prompt.length, rows, StageSink.NONE, null);
            float[][] one = new float[next.length][];
            for (int t = 0; t < next.length; t++) one[t] = lm.logits(lm.forward(lm.embed(new int[]{next[t]}), 1, single, StageSink.NONE, null), 0);
            float[] all = lm.logitsRows(lm.forwardRows(lm.embed(next), next.length, rows), next.length);
            assertEquals(prompt.length + next.length, rows.length());
            double worst = 0;
            int firstDiff = -1;
            for (int t = 0; t < next.length; t++) {
                float[] row = Arrays.copyOfRange(all, t * V, (t + 1) * V);
                for (int v = 0; v < V; v++) {
                    double d = Math.abs(row[v] - one[t][v]);
                    if (d > 0 && firstDiff < 0) firstDiff = t;
                    worst = Math.max(worst, d);
                }
            }
            System.out.printf("forwardRows vs single decode (%s %s): max |Δlogit| %.3e, first differing row %d%n", model, type, worst, firstDiff);
            assertEquals(0.0, worst, model + " " + type + ": verify rows must equal single-token decode bit for bit");
        }
    }

    /**
     * The KV cache rolled back past rejected rows: after a pass of 5 rows truncated to its first 2, decoding goes on
     * bit for bit as on a cache that only ever held those 2 (the rolled-back positions are overwritten, never read).
     */
    @ParameterizedTest
    @CsvSource({"tiny-random,BF16", "kimivl-nano-instruct,F32", "tiny-random,Q4_0", "text-q8_0.gguf,Q8_0"})
    void aTruncatedCacheContinuesAsIfTheRejectedRowsNeverRan(String model, String type) throws Exception {
        try (Loaded loaded = model(model, type)) {
            LanguageModel lm = loaded.lm();
            assertTrue(lm.rowsMatchDecode(), model);
            int V = lm.config().vocabSize();
            Random r = new Random(5);
            int[] prompt = ids(r, 6, V), drafted = ids(r, 5, V), after = ids(r, 4, V);
            KvCache reference = lm.newCache(32), rolled = lm.newCache(32);
            lm.forward(lm.embed(prompt), prompt.length, reference, StageSink.NONE, null);
            lm.forward(lm.embed(prompt), prompt.length, rolled, StageSink.NONE, null);
            int keep = 2;
            for (int t = 0; t < keep; t++) lm.forward(lm.embed(new int[]{drafted[t]}), 1, reference, StageSink.NONE, null);
            lm.forwardRows(lm.embed(drafted), drafted.length, rolled);
            assertEquals(prompt.length + drafted.length, rolled.length());
            rolled.truncate(prompt.length + keep);
            for (int t = 0; t < after.length; t++) {
                float[] want = lm.logits(lm.forward(lm.embed(new int[]{after[t]}), 1, reference, StageSink.NONE, null), 0);
                float[] got = lm.logits(lm.forward(lm.embed(new int[]{after[t]}), 1, rolled, StageSink.NONE, null), 0);
                assertArrayEquals(want, got, 0f, type + ": token " + t + " after the rollback");
            }
            // and a second verify pass on the rolled-back cache
            float[] rows = lm.logitsRows(lm.forwardRows(lm.embed(Arrays.copyOf(drafted, 3)), 3, rolled), 3);
            for (int t = 0; t < 3; t++) {
                float[] want = lm.logits(lm.forward(lm.embed(new int[]{drafted[t]}), 1, reference, StageSink.NONE, null), 0);
                assertArrayEquals(want, Arrays.copyOfRange(rows, t * V, (t + 1) * V), 0f, type + ": verify row " + t + " after the rollback");
            }
            assertThrows(IllegalArgumentException.class, () -> rolled.truncate(rolled.length() + 1));
        }
    }

    @org.junit.jupiter.api.Test
    void rowsMatchDecodeFollowsTheWeightsAndTheKernels() {
        Path dir = Path.of("../models/tiny-random");
        ModelConfig cfg = ModelConfig.load(dir);
        try (SafetensorsCheckpoint ckpt = SafetensorsCheckpoint.open(dir)) {
            assertTrue(LanguageModel.load(ckpt, cfg.text(), cfg.textPrefix()).rowsMatchDecode(), "BF16");
            LanguageModel q8 = LanguageModel.load(new QuantizedWeights(ckpt, DType.Q8_0), cfg.text(), cfg.textPrefix());
            KernelSettings s = q8.kernels().settings();
            assertTrue(q8.withKernels(Kernels.preferred(s.withIntMatvec(true))).rowsMatchDecode(), "Q8_0, int8 activations");
            assertTrue(q8.withKernels(Kernels.java().with(s.withIntMatvec(true))).rowsMatchDecode(), "Q8_0, Java integer matvec");
            assertFalse(q8.withKernels(Kernels.preferred(s.withIntMatvec(false))).rowsMatchDecode(), "Q8_0, exact float activations");
        }
        try (KimiVL m = KimiVL.open(GgufGoldenTest.DIR.resolve("text-mixed.gguf"))) {
            KernelSettings s = m.languageModel().kernels().settings().withIntMatvec(true);
            assertFalse(m.languageModel().withKernels(Kernels.java().with(s)).rowsMatchDecode(), "Q4_1/Q5_0/Q5_1: no Java integer matvec");
            if (NativeKernels.AVAILABLE) assertTrue(m.languageModel().withKernels(Kernels.nativeKernels().with(s)).rowsMatchDecode(), "native");
        }
    }

    private static int[] ids(Random r, int n, int V) {
        int[] ids = new int[n];
        for (int i = 0; i < n; i++) ids[i] = r.nextInt(V);
        return ids;
    }
}
