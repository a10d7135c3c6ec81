package dev.kimivl.bench;

import dev.kimivl.io.gguf.GgufModel;
import dev.kimivl.model.KvCache;
import dev.kimivl.model.LanguageModel;
import dev.kimivl.model.StageSink;
import dev.kimivl.tensor.NativeKernels;
import dev.kimivl.tensor.QuantMatrix;
import dev.kimivl.testing.TestData;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The whole language model on the library's default numerics, which the other tests pin off (they compare with float
 * oracles): int8-rounded activations into the native integer kernels (llama.cpp's q8_0 / Q8_K forms) and the f16 KV
 * cache. This class runs in a surefire execution of its own without those pins (kimivl-core/pom.xml).
 *
 * <p>Tiny Kimi-VL-shaped GGUFs (hidden 256, so the k-quants apply) in llama.cpp's Q4_K_M mix (Q4_K, Q6_K, Q5_0, Q8_0)
 * and in Q4_0, each against the same weights decoded to F32 through the float kernels: after prefill (the batched
 * kernels) and after a decode step (the matvec kernels), the first layers' outputs must stay within the activation
 * rounding's reach of it.
 */
class DefaultKernelsModelTest {

    @Test
    void quantizedFilesOnTheDefaultKernelsFollowTheirDecodedWeights(@TempDir Path dir) throws Exception {
        assertTrue(QuantMatrix.INT_MATVEC, "this class must run without -Dkimivl.intMatvec=false (its own surefire execution)");
        assertTrue(NativeKernels.AVAILABLE || !Boolean.getBoolean("kimivl.requireNative"), NativeKernels.STATUS);
        String json = QuantMixTest.tinyConfig();
        int[] prompt = {5, 77, 300, 999, 12, 640, 41, 8};
        for (QuantMix mix : new QuantMix[]{QuantMix.Q4_K_M, QuantMix.Q4_0}) {
            Path[] files = RandomGguf.ensure(dir, mix, json, 7, null);
            try (GgufModel g = GgufModel.open(files)) {
                LanguageModel fast = LanguageModel.load(g, g.config().text(), g.config().textPrefix());
                LanguageModel exact = LanguageModel.load(TestData.decoded(g), g.config().text(), g.config().textPrefix());
                assertEquals(fast.kernels().fastBf16Attention() ? KvCache.Precision.BF16 : KvCache.Precision.F16, fast.newCache(8).precision(),
                        "quantized weights default to a 16-bit cache: bf16 where attention runs in vdpbf16ps");
                Map<String, float[]> a = run(fast, prompt, 77), b = run(exact, prompt, 77);
                for (String stage : a.keySet()) {
                    double rel = relative(a.get(stage), b.get(stage));
                    System.out.printf("%s on the default kernels vs its decoded weights: %s relative error %.2e%n", mix.label(), stage, rel);
                    // int8 activations move each product by ≤ half a step of its block's amax/127: measured 0.3-3% after
                    // one layer here. A kernel reading a wrong block, scale, offset or token is off by the stage's own size.
                    if (stage.contains("layer0") || stage.contains("layer1")) assertTrue(rel < 0.05, mix.label() + " " + stage + ": " + rel);
                }
                // past the first layers these random weights differ: the Q4_0 model keeps its hidden states' size and the
                // rounding stays ~1% to the logits; the Q4_K_M one grows them ~8x over 27 layers, each layer adding its
                // share of the rounding (30-50% at the logits, the same with per-32 activation scales)
                if (mix == QuantMix.Q4_0) {
                    assertTrue(relative(a.get("prompt logits"), b.get("prompt logits")) < 0.05);
                    assertTrue(relative(a.get("decode logits"), b.get("decode logits")) < 0.05);
                }
            }
        }
    }

    /**
     * MoonViT + projector from the bench's Q8_0 mmproj, through the real loading path (GgufModel: attn_q/k/v stacked
     * into wqkv, the flattened position table), on the default kernels: every tower layer runs on its Q8_0 blocks
     * (int8 activations, no float copy of the weights), and the features follow the float path on the same weights
     * decoded to F32 within the activations' int8 rounding (measured 0.87% here; QuantVisionTest bounds each stage).
     */
    @Test
    void q8MmprojOnTheDefaultKernelsFollowsItsDecodedWeights(@TempDir Path dir) throws Exception {
        assertTrue(QuantMatrix.INT_MATVEC, "this class must run without -Dkimivl.intMatvec=false (its own surefire execution)");
        org.junit.jupiter.api.Assumptions.assumeTrue(NativeKernels.AVAILABLE, NativeKernels.STATUS);
        Path[] files = RandomGguf.ensure(dir, QuantMix.Q4_0, QuantMixTest.tinyConfig(), 7, null);
        try (GgufModel g = GgufModel.open(files)) {
            dev.kimivl.config.VisionConfig vc = g.config().vision();
            dev.kimivl.config.PreprocessorConfig pre = new dev.kimivl.config.PreprocessorConfig(new double[]{0.5, 0.5, 0.5},
                    new double[]{0.5, 0.5, 0.5}, 4096, true, vc.patchSize(), vc.mergeH(), vc.mergeW());
            int th = g.config().text().hiddenSize();
            dev.kimivl.vision.VisionEncoder fast = new dev.kimivl.vision.VisionEncoder(g, vc, th, pre);
            dev.kimivl.vision.VisionEncoder exact = new dev.kimivl.vision.VisionEncoder(TestData.decoded(g), vc, th, pre);
            assertEquals(4 * vc.numLayers(), fast.tower().integerLayers(), "wqkv, wo, fc0, fc1 on their Q8_0 blocks");
            assertEquals(0, exact.tower().integerLayers());
            int side = 14 * 16;
            int[] rgb = new int[side * side];
            java.util.SplittableRandom rnd = new java.util.SplittableRandom(3);
            for (int i = 0; i < rgb.length; i++) rgb[i] = rnd.nextInt(1 << 24);
            java.util.List<dev.kimivl.vision.LoadedImage> img = java.util.List.of(dev.kimivl.vision.LoadedImage.ofRgb("random", side, side, rgb));
            float[] a = fast.encode(img).features(), b = exact.encode(img).features();
            double rel = relative(a, b);
            System.out.printf("Q8_0 mmproj on the default kernels vs its decoded weights: image features relative error %.2e%n", rel);
            assertTrue(rel > 0 && rel < 0.03, "image features: " + rel);
        }
    }

    private static double relative(float[] x, float[] ref) {
        double d = 0, n = 0;
        for (int i = 0; i < x.length; i++) {
            d += Math.pow(x[i] - ref[i], 2);
            n += Math.pow(ref[i], 2);
        }
        return Math.sqrt(d / n);
    }

    /** The first two layers' outputs and the logits after a prompt (one batched prefill) and after one more token (decode). */
    private static Map<String, float[]> run(LanguageModel lm, int[] prompt, int next) {
        Map<String, float[]> out = new LinkedHashMap<>();
        KvCache cache = lm.newCache(prompt.length + 1);
        float[] h = lm.forward(lm.embed(prompt), prompt.length, cache, keep(out, "prompt "), null);
        out.put("prompt logits", lm.logits(h, prompt.length - 1));
        h = lm.forward(lm.embed(new int[]{next}), 1, cache, keep(out, "decode "), null);
        out.put("decode logits", lm.logits(h, 0));
        return out;
    }

    private static StageSink keep(Map<String, float[]> out, String prefix) {
        return (name, data, shape) -> {
            if (name.equals("hidden.layer0") || name.equals("hidden.layer1")) out.put(prefix + name, data.clone());
        };
    }

}
