package dev.kimivl.model;

import dev.kimivl.tensor.KernelSettings;
import dev.kimivl.tensor.Kernels;
import dev.kimivl.tensor.NativeKernels;
import dev.kimivl.testing.Golden;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The kernel seam on a whole quantized model: text-q8_0.gguf (golden config A, Q8_0 weights) run by the native and by
 * the Java kernels, built as two views of one loaded model with {@link LanguageModel#withKernels}.
 */
class KernelSeamModelTest {

    /**
     * Token by token (every product a matvec, which both sets run with int8 activations, llama.cpp's numerics): the
     * same int8 products summed in another order (C vs the Vector API), so the hidden states differ by float rounding
     * only. (A batched prompt is not compared with int8 activations: the Java set has no integer GEMM, so its prompts
     * take the exact float product; QuantMatrix.usesIntegerMatmul.)
     */
    @Test
    void javaAndNativeKernelsDecodeTheQ8ModelAlike() {
        assumeTrue(NativeKernels.AVAILABLE, NativeKernels.STATUS);
        int[] ids = Golden.load("gguf").inputIds();
        try (KimiVL m = KimiVL.open(GgufGoldenTest.DIR.resolve("text-q8_0.gguf"))) {
            LanguageModel base = m.languageModel();
            KernelSettings integer = base.kernels().settings().withIntMatvec(true);
            LanguageModel nat = base.withKernels(Kernels.nativeKernels().with(integer));
            LanguageModel java = base.withKernels(Kernels.java().with(integer));
            KvCache cn = base.newCache(64), cj = base.newCache(64);
            double worst = 0;
            float[] hj = null;
            for (int id : ids) {
                float[] x = base.embed(new int[]{id});
                float[] hn = nat.forward(x.clone(), 1, cn, StageSink.NONE, null);
                hj = java.forward(x.clone(), 1, cj, StageSink.NONE, null);
                worst = Math.max(worst, Golden.maxAbsDiff(hn, hj));
            }
            System.out.printf("text-q8_0.gguf, int8 activations, %d tokens one by one: max |Δ final_norm| native vs Java kernels %.2e%n", ids.length, worst);
            assertTrue(worst < 1e-4, "final_norm, native vs Java kernels: max |Δ| = " + worst);
            // the views really run other numerics than the loaded model where that one has exact float activations
            if (!base.kernels().settings().intMatvec()) {
                KvCache ce = base.newCache(64);
                float[] he = null;
                for (int id : ids) he = base.forward(base.embed(new int[]{id}), 1, ce, StageSink.NONE, null);
                assertTrue(Golden.maxAbsDiff(he, hj) > 10 * worst, "withKernels changed the quantized products' numerics");
            }
        }
    }

    /** A batched prompt with exact float activations (the tests' setting): the attention kernels differ only. */
    @Test
    void javaAndNativeKernelsRunTheQ8PromptAlike() {
        assumeTrue(NativeKernels.AVAILABLE, NativeKernels.STATUS);
        int[] ids = Golden.load("gguf").inputIds();
        try (KimiVL m = KimiVL.open(GgufGoldenTest.DIR.resolve("text-q8_0.gguf"))) {
            LanguageModel base = m.languageModel();
            KernelSettings exact = base.kernels().settings().withIntMatvec(false);
            float[] hn = base.withKernels(Kernels.nativeKernels().with(exact)).forward(base.embed(ids), ids.length, base.newCache(64), StageSink.NONE, null);
            float[] hj = base.withKernels(Kernels.java().with(exact)).forward(base.embed(ids), ids.length, base.newCache(64), StageSink.NONE, null);
            double d = Golden.maxAbsDiff(hn, hj);
            System.out.printf("text-q8_0.gguf, exact activations, %d-token prompt: max |Δ final_norm| native vs Java kernels %.2e%n", ids.length, d);
            assertTrue(d < 1e-4, "final_norm, native vs Java kernels: max |Δ| = " + d);
        }
    }
}
