package dev.kimivl.train;

import dev.kimivl.config.ModelConfig;
import dev.kimivl.config.PreprocessorConfig;
import dev.kimivl.io.SafeTensorsFile;
import dev.kimivl.io.SafetensorsCheckpoint;
import dev.kimivl.io.TensorData;
import dev.kimivl.testing.Golden;
import dev.kimivl.vision.ImageLoader;
import dev.kimivl.vision.ImagePreprocessor;
import dev.kimivl.vision.PreprocessedImage;
import dev.kimivl.vision.VisionEncoder;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * {@link VisionGrad}: its forward against the float32 inference path, its backward against central finite
 * differences (everything in double, so the check is tight), and against the PyTorch gradients of
 * golden/train/loss_grad_case_b with the true upstream gradient recovered from the golden itself.
 */
class VisionGradTest {

    static Path trainCase() { return TrainGolden.goldenCase(Golden.root()); }

    static List<PreprocessedImage> images(Path dir) throws Exception {
        PreprocessorConfig pre = PreprocessorConfig.load(dir);
        var json = new com.fasterxml.jackson.databind.ObjectMapper().readTree(dir.resolve("inputs.json").toFile());
        List<PreprocessedImage> out = new ArrayList<>();
        if (json.has("images")) {
            for (var f : json.get("images")) out.add(new ImagePreprocessor(pre).process(new ImageLoader().load(dir.resolve(f.asText()))));
        } else {
            out.add(TrainGolden.goldenImage(dir));
        }
        return out;
    }

    // ---- (a) forward = inference --------------------------------------------------------------------------------

    @Test
    void forwardMatchesTheInferencePath() throws Exception {
        for (Path dir : List.of(trainCase(), Golden.root().resolve("c_two_images"))) {
            List<PreprocessedImage> ims = images(dir);
            float[] want;
            try (SafetensorsCheckpoint ckpt = SafetensorsCheckpoint.open(dir)) {
                want = new VisionEncoder(ckpt, ModelConfig.load(dir), PreprocessorConfig.load(dir)).encodePreprocessed(ims, false).features();
            }
            float[] got = VisionGrad.load(dir).forward(ims);
            double d = Golden.assertClose(dir.getFileName() + " image features vs VisionEncoder", want, got, 1e-5);
            System.out.printf("VisionGrad forward, %s (%d image(s), %d tokens): max |Δ| vs VisionEncoder %.2e%n",
                    dir.getFileName(), ims.size(), got.length / 64, d);
        }
        // and the PyTorch oracle's features for the same image and weights (golden b_one_image)
        float[] oracle = Golden.load("b_one_image").floats("image_features");
        float[] got = VisionGrad.load(trainCase()).forward(images(trainCase()));
        double d = Golden.assertClose("image features vs golden b_one_image", oracle, got, 1e-5);
        System.out.printf("VisionGrad forward vs PyTorch golden b_one_image: max |Δ| %.2e%n", d);
    }

    /**
     * An image's features do not depend on the images packed with it (block-diagonal attention, row-wise products):
     * what lets a frozen tower encode each distinct image of a batch once (RecipeTrainer's RL steps share one image
     * among k answers). Bit for bit: the two images together, each alone, and the second twice with the first between.
     */
    @Test
    void anImagesFeaturesDoNotDependOnTheBatch() throws Exception {
        Path dir = Golden.root().resolve("c_two_images");
        List<PreprocessedImage> ims = images(dir);
        VisionGrad vg = VisionGrad.load(dir);
        float[] both = vg.forward(ims);
        float[] first = vg.forward(List.of(ims.get(0))), second = vg.forward(List.of(ims.get(1)));
        float[] mixed = vg.forward(List.of(ims.get(1), ims.get(0), ims.get(1)));
        int a = first.length, b = second.length;
        org.junit.jupiter.api.Assertions.assertArrayEquals(first, java.util.Arrays.copyOfRange(both, 0, a));
        org.junit.jupiter.api.Assertions.assertArrayEquals(second, java.util.Arrays.copyOfRange(both, a, a + b));
        org.junit.jupiter.api.Assertions.assertArrayEquals(second, java.util.Arrays.copyOfRange(mixed, 0, b));
        org.junit.jupiter.api.Assertions.assertArrayEquals(first, java.util.Arrays.copyOfRange(mixed, b, b + a));
        org.junit.jupiter.api.Assertions.assertArrayEquals(second, java.util.Arrays.copyOfRange(mixed, b + a, 2 * b + a));
    }

    // ---- (b) finite differences ---------------------------------------------------------------------------------

    /** Loss = Σ g·features with a fixed random g: its gradient w.r.t. the features is g. */
    static double loss(VisionGrad vg, List<PreprocessedImage> ims, float[] g) {
        float[] f = vg.forward(ims);
        double s = 0;
        for (int i = 0; i < f.length; i++) s += g[i] * f[i];
        return s;
    }

    static void finiteDifferenceCheck(Path dir, String[] names, int randomPerTensor) throws Exception {
        List<PreprocessedImage> ims = images(dir);
        VisionGrad vg = VisionGrad.load(dir);
        int n = vg.forward(ims).length;
        Random rnd = new Random(12345);
        float[] g = new float[n];
        for (int i = 0; i < n; i++) g[i] = (float) rnd.nextGaussian();
        vg.forward(ims);
        Map<String, float[]> grads = vg.backward(g);
        assertEquals(vg.parameterNames(), List.copyOf(grads.keySet()));
        double worst = 0;
        int checked = 0;
        for (String name : names) {
            float[] p = vg.parameter(name), an = grads.get(name);
            // the largest analytic coordinate, plus random ones
            int big = 0;
            for (int i = 0; i < an.length; i++) if (Math.abs(an[i]) > Math.abs(an[big])) big = i;
            List<Integer> coords = new ArrayList<>(List.of(big));
            // one random coordinate in each of randomPerTensor equal slices (so wqkv's q, k and v rows are all hit)
            for (int k = 0; k < randomPerTensor; k++) {
                int lo = (int) ((long) p.length * k / randomPerTensor), hi = (int) ((long) p.length * (k + 1) / randomPerTensor);
                coords.add(lo + rnd.nextInt(Math.max(1, hi - lo)));
            }
            double scale = 0;                                          // max |g| of the tensor: floor for tiny coordinates
            for (float v : an) scale = Math.max(scale, Math.abs(v));
            double tensorWorst = 0;
            for (int i : coords) {
                // float32 passes: the loss (a sum over ~1e3 features) carries ~1e-5 of rounding, so the step is 1e-2 and
                // the bound 5e-2: loose against the goldens (5e-5, TrainGolden), tight enough for a wrong formula
                float keep = p[i];
                float h = 1e-2f * Math.max(1, Math.abs(keep));
                p[i] = keep + h;
                double lp = loss(vg, ims, g);
                p[i] = keep - h;
                double lm = loss(vg, ims, g);
                p[i] = keep;
                double num = (lp - lm) / (2 * h);
                double err = Math.abs(num - an[i]) / Math.max(Math.max(Math.abs(num), Math.abs(an[i])), 1e-2 * scale);
                tensorWorst = Math.max(tensorWorst, err);
                assertTrue(err < 5e-2, name + "[" + i + "]: analytic " + an[i] + ", numeric " + num + ", rel err " + err);
                checked++;
            }
            worst = Math.max(worst, tensorWorst);
            System.out.printf("  FD %-52s %d coords, worst rel err %.1e (max|g| %.3g)%n", name, coords.size(), tensorWorst, scale);
        }
        System.out.printf("VisionGrad finite differences, %s: %d coordinates, worst relative error %.2e%n", dir.getFileName(), checked, worst);
    }

    @Test
    void backwardMatchesFiniteDifferences() throws Exception {
        finiteDifferenceCheck(trainCase(), new String[]{
                "vision_tower.patch_embed.proj.weight", "vision_tower.patch_embed.proj.bias",
                "vision_tower.patch_embed.pos_emb.weight",
                "vision_tower.encoder.blocks.0.norm0.weight", "vision_tower.encoder.blocks.0.norm0.bias",
                "vision_tower.encoder.blocks.0.wqkv.weight", "vision_tower.encoder.blocks.0.wqkv.bias",
                "vision_tower.encoder.blocks.0.wo.weight", "vision_tower.encoder.blocks.0.norm1.weight",
                "vision_tower.encoder.blocks.0.mlp.fc0.weight", "vision_tower.encoder.blocks.0.mlp.fc1.weight",
                "vision_tower.encoder.blocks.1.wqkv.weight", "vision_tower.encoder.blocks.1.mlp.fc0.bias",
                "vision_tower.encoder.blocks.1.mlp.fc1.bias", "vision_tower.encoder.blocks.1.norm1.bias",
                "vision_tower.encoder.final_layernorm.weight", "vision_tower.encoder.final_layernorm.bias",
                "multi_modal_projector.pre_norm.weight", "multi_modal_projector.pre_norm.bias",
                "multi_modal_projector.linear_1.weight", "multi_modal_projector.linear_1.bias",
                "multi_modal_projector.linear_2.weight", "multi_modal_projector.linear_2.bias"}, 6);
    }

    /** Two images of different grids (6×6 and 10×14, both resized from the 8×8 table): per-image attention and pos. */
    @Test
    void backwardMatchesFiniteDifferencesOnTwoImages() throws Exception {
        finiteDifferenceCheck(Golden.root().resolve("c_two_images"), new String[]{
                "vision_tower.patch_embed.pos_emb.weight", "vision_tower.patch_embed.proj.weight",
                "vision_tower.encoder.blocks.0.wqkv.weight", "vision_tower.encoder.blocks.1.wo.weight",
                "multi_modal_projector.linear_1.weight"}, 4);
    }

    /**
     * The native attention kernels (kimivl_train.c) and the Java form give the same features and gradients up to float
     * rounding, on the shipped nano model's tower (head width 32, the native kernels' case; the goldens' towers have
     * width 12, the Java form's) with two images of different grids. Skipped (and said so) where the kernels are not
     * loaded.
     */
    @Test
    void nativeAttentionMatchesTheJavaForm() throws Exception {
        assumeTrue(dev.kimivl.tensor.NativeKernels.vitAttention(32), "native training kernels not loaded: " + dev.kimivl.tensor.NativeKernels.STATUS);
        Path nano = Path.of("..", "models", "kimivl-nano-instruct");
        PreprocessorConfig pre = PreprocessorConfig.load(nano);
        List<PreprocessedImage> ims = new ArrayList<>();
        for (String f : List.of("blue-circle.png", "shapes.png")) {
            ims.add(new ImagePreprocessor(pre).process(new ImageLoader().load(Path.of("..", "examples", f))));
        }
        VisionGrad java = VisionGrad.load(nano), nat = VisionGrad.load(nano);
        assertTrue(nat.nativeAttention, "the nano tower takes the native kernels");
        java.nativeAttention = false;
        float[] fj = java.forward(ims), fn = nat.forward(ims);
        double d = Golden.assertClose("features, native vs Java attention", fj, fn, 1e-4);
        Random rnd = new Random(5);
        float[] g = new float[fj.length];
        for (int i = 0; i < g.length; i++) g[i] = (float) rnd.nextGaussian();
        Map<String, float[]> gj = java.backward(g), gn = nat.backward(g);
        double worst = 0;
        for (String name : gj.keySet()) {
            float[] a = gj.get(name), b = gn.get(name);
            double max = 0, diff = 0;
            for (int i = 0; i < a.length; i++) { max = Math.max(max, Math.abs(a[i])); diff = Math.max(diff, Math.abs(a[i] - b[i])); }
            assertTrue(diff <= 1e-3 * Math.max(max, 1e-3), name + ": native and Java gradients differ by " + diff + " (max |g| " + max + ")");
            worst = Math.max(worst, diff / Math.max(max, 1e-3));
        }
        System.out.printf("VisionGrad native vs Java attention (nano tower, 2 images): features max |Δ| %.2e, gradients worst relative %.2e%n", d, worst);
    }

    /** The vector GELU pass (inference's VectorMath.geluTanh and its derivative) against the double formulas. */
    @Test
    void vectorGeluMatchesTheDoubleFormulas() {
        int n = 1000;
        float[] u = new float[n], dOut = new float[n], h = new float[n], du = new float[n];
        for (int i = 0; i < n; i++) { u[i] = -12f + 24f * i / (n - 1); dOut[i] = 1f + (i % 7) * 0.25f; }
        VisionGrad.geluTanhInto(u, h, null, 0, n - 3);                 // a last block through the lane mask
        VisionGrad.geluTanhInto(u, du, dOut, 0, n - 3);
        for (int i = 0; i < n - 3; i++) {
            double want = VisionGrad.geluTanh(u[i]), wantGrad = dOut[i] * VisionGrad.geluTanhGrad(u[i]);
            assertEquals(want, h[i], 3e-6 * Math.max(1, Math.abs(want)), "gelu at " + u[i]);
            assertEquals(wantGrad, du[i], 3e-6 * Math.max(1, Math.abs(wantGrad)), "gelu' at " + u[i]);
        }
        for (int i = n - 3; i < n; i++) assertEquals(0f, h[i], "nothing written past the range");
    }

    @Test
    void activationDerivatives() {
        for (double x = -7; x <= 7; x += 0.37) {
            double h = 1e-6;
            assertEquals((VisionGrad.geluErf(x + h) - VisionGrad.geluErf(x - h)) / (2 * h), VisionGrad.geluErfGrad(x), 1e-8, "erf gelu' at " + x);
            assertEquals((VisionGrad.geluTanh(x + h) - VisionGrad.geluTanh(x - h)) / (2 * h), VisionGrad.geluTanhGrad(x), 1e-8, "tanh gelu' at " + x);
        }
        // erf against known values
        assertEquals(0.8427007929497149, VisionGrad.erf(1), 1e-15);
        assertEquals(-0.9953222650189527, VisionGrad.erf(-2), 1e-15);
        assertEquals(0.9999779095030014, VisionGrad.erf(3), 1e-15);
        assertEquals(0.0112834155558496, VisionGrad.erf(0.01), 1e-15);
    }

    @Test
    void projectorOnlyBackwardGivesTheProjectorsGradientsAndLeavesTheTowerAtZero() throws Exception {
        List<PreprocessedImage> ims = images(trainCase());
        VisionGrad vg = VisionGrad.load(trainCase());
        int n = vg.forward(ims).length;
        Random rnd = new Random(3);
        float[] g = new float[n];
        for (int i = 0; i < n; i++) g[i] = (float) rnd.nextGaussian();
        Map<String, float[]> full = vg.backward(g);
        vg.forward(ims);
        Map<String, float[]> head = vg.backward(g, false);
        assertEquals(full.keySet(), head.keySet());
        int projector = 0;
        for (String name : full.keySet()) {
            if (name.startsWith("multi_modal_projector.")) {
                projector++;
                assertTrue(java.util.Arrays.equals(full.get(name), head.get(name)), name);
            } else {
                for (float v : head.get(name)) assertEquals(0f, v, name);
                float max = 0;
                for (float v : full.get(name)) max = Math.max(max, Math.abs(v));
                assertTrue(max > 0, name + ": the full backward gives it a gradient");
            }
        }
        assertEquals(6, projector);
    }

    // ---- (c) against the PyTorch gradients ----------------------------------------------------------------------

    @Test
    void gradientsMatchThePyTorchGolden() {
        float[] dF = TrainGolden.imageFeatureGradFromGolden(Golden.root());
        Map<String, TensorData> golden = SafeTensorsFile.open(trainCase().resolve("grads.safetensors")).tensors();
        // independent consistency check: linear_2.bias's gradient = Σ over the 20 tokens of dF
        float[] db2 = golden.get("multi_modal_projector.linear_2.bias").toFloats();
        int Dt = db2.length, M = dF.length / Dt;
        double maxB = 0, refB = 0;
        for (int o = 0; o < Dt; o++) {
            double s = 0;
            for (int m = 0; m < M; m++) s += dF[m * Dt + o];
            maxB = Math.max(maxB, Math.abs(s - db2[o]));
            refB = Math.max(refB, Math.abs(db2[o]));
        }
        System.out.printf("recovered d loss/d image_features [%d, %d]: Σ rows vs golden linear_2.bias grad max |Δ| %.2e (max |g| %.3g)%n", M, Dt, maxB, refB);
        assertTrue(maxB <= 1e-4 * refB, "recovered upstream gradient inconsistent with linear_2.bias: " + maxB);

        List<TrainGolden.GradDiff> diffs = TrainGolden.compareWithGolden(Golden.root(), dF);
        assertEquals(29 + 6, diffs.size());                           // 3 + 2·12 + 2 vision tensors (config A) + 6 projector
        double worst = 0;
        for (TrainGolden.GradDiff d : diffs) {
            System.out.printf("  golden %-52s max |Δ| %.2e  max |g| %.3g  rel %.1e%n", d.name(), d.maxAbs(), d.refAbsMax(), d.relative());
            worst = Math.max(worst, d.relative());
            assertTrue(d.relative() <= 1e-4, d.name() + ": max |Δ| " + d.maxAbs() + " vs max |g| " + d.refAbsMax());
        }
        assertEquals(diffs, TrainGolden.compareWithGolden(dF));       // the class-path overload the LM test can call
        System.out.printf("VisionGrad vs PyTorch golden gradients: %d tensors, worst max|Δ|/max|g| %.2e%n", diffs.size(), worst);
    }
}
