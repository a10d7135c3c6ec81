package dev.kimivl.train;

import dev.kimivl.config.PreprocessorConfig;
import dev.kimivl.io.SafeTensorsFile;
import dev.kimivl.io.TensorData;
import dev.kimivl.vision.ImageLoader;
import dev.kimivl.vision.ImagePreprocessor;
import dev.kimivl.vision.PreprocessedImage;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/** The training golden (golden/train/loss_grad_case_b) as the train tests use it: its image, and comparisons of gradients with it. */
final class TrainGolden {
    private TrainGolden() {}

    /** Per-tensor agreement with the golden: max |Δ|, and the golden's max |g| (the README's scale for "relative"). */
    public record GradDiff(String name, double maxAbs, double refAbsMax) {
        public double relative() { return refAbsMax == 0 ? maxAbs : maxAbs / refAbsMax; }
    }

    /** The training golden: golden/train/loss_grad_case_b (weights, image, grads.safetensors). */
    public static Path goldenCase(Path goldenRoot) { return goldenRoot.resolve("train/loss_grad_case_b"); }

    /**
     * Runs the vision forward on the training golden's image, back-propagates {@code dImageFeatures}
     * (d loss / d image features [M = 20, Dt = 64]: the language model's d loss / d input embeddings at the
     * placeholder positions, in order) and compares every vision_tower.* and multi_modal_projector.* gradient with
     * grads.safetensors. The golden's own float32-vs-float64 spread is ≤ 7e-6 of each tensor's max |g|.
     *
     * @param goldenRoot the golden folder (tests: {@code dev.kimivl.testing.Golden.root()})
     */
    public static List<GradDiff> compareWithGolden(Path goldenRoot, float[] dImageFeatures) {
        Path dir = goldenCase(goldenRoot);
        VisionGrad vg = VisionGrad.load(dir);
        vg.forward(List.of(goldenImage(dir)));
        Map<String, float[]> grads = vg.backward(dImageFeatures);
        Map<String, TensorData> golden = SafeTensorsFile.open(dir.resolve("grads.safetensors")).tensors();
        List<GradDiff> out = new ArrayList<>();
        for (Map.Entry<String, float[]> e : grads.entrySet()) {
            float[] want = golden.get(e.getKey()).toFloats(), got = e.getValue();
            double max = 0, ref = 0;
            for (int i = 0; i < want.length; i++) {
                max = Math.max(max, Math.abs((double) got[i] - want[i]));
                ref = Math.max(ref, Math.abs(want[i]));
            }
            out.add(new GradDiff(e.getKey(), max, ref));
        }
        return out;
    }

    /**
     * d loss / d image features is not stored in the golden, but linear_2's weight gradient determines it:
     * dW2 [Dt, S·D] = dFᵀ·G with G [M, S·D] the linear_2 input (M = 20 ≤ S·D = 192, G of full row rank), so
     * dF = (G·Gᵀ)⁻¹·G·dW2ᵀ, which is d loss / d image features of the golden run [M = 20, Dt = 64] (to the golden's
     * float32 rounding amplified by the conditioning of G·Gᵀ: its row sums match linear_2's bias gradient to 7e-8).
     * This is also what the language model's d loss / d input embeddings must give at the 20 placeholder rows.
     */
    public static float[] imageFeatureGradFromGolden(Path goldenRoot) {
        Path dir = goldenCase(goldenRoot);
        VisionGrad vg = VisionGrad.load(dir);
        vg.forward(List.of(goldenImage(dir)));
        int M = vg.mergedTokens(), Dt = vg.textHidden();
        float[] G = vg.projectorHidden();
        int K = G.length / M;
        float[] dW2 = SafeTensorsFile.open(dir.resolve("grads.safetensors")).tensors().get("multi_modal_projector.linear_2.weight").toFloats();
        // A = G·Gᵀ [M, M], B = G·dW2ᵀ [M, Dt]
        double[] A = new double[M * M], B = new double[M * Dt];
        for (int i = 0; i < M; i++) {
            for (int j = 0; j < M; j++) {
                double s = 0;
                for (int k = 0; k < K; k++) s += G[i * K + k] * G[j * K + k];
                A[i * M + j] = s;
            }
            for (int o = 0; o < Dt; o++) {
                double s = 0;
                for (int k = 0; k < K; k++) s += G[i * K + k] * dW2[o * K + k];
                B[i * Dt + o] = s;
            }
        }
        double[] X = solve(A, B, M, Dt);
        float[] out = new float[X.length];
        for (int i = 0; i < X.length; i++) out[i] = (float) X[i];
        return out;
    }

    /** Solves A·X = B (A [n, n], B [n, r]) by Gaussian elimination with partial pivoting. */
    private static double[] solve(double[] A, double[] B, int n, int r) {
        double[] a = A.clone(), b = B.clone();
        for (int c = 0; c < n; c++) {
            int piv = c;
            for (int i = c + 1; i < n; i++) if (Math.abs(a[i * n + c]) > Math.abs(a[piv * n + c])) piv = i;
            for (int k = 0; k < n; k++) { double t = a[c * n + k]; a[c * n + k] = a[piv * n + k]; a[piv * n + k] = t; }
            for (int k = 0; k < r; k++) { double t = b[c * r + k]; b[c * r + k] = b[piv * r + k]; b[piv * r + k] = t; }
            for (int i = c + 1; i < n; i++) {
                double f = a[i * n + c] / a[c * n + c];
                for (int k = c; k < n; k++) a[i * n + k] -= f * a[c * n + k];
                for (int k = 0; k < r; k++) b[i * r + k] -= f * b[c * r + k];
            }
        }
        double[] x = new double[n * r];
        for (int i = n - 1; i >= 0; i--) {
            for (int k = 0; k < r; k++) {
                double s = b[i * r + k];
                for (int j = i + 1; j < n; j++) s -= a[i * n + j] * x[j * r + k];
                x[i * r + k] = s / a[i * n + i];
            }
        }
        return x;
    }

    /**
     * {@link #compareWithGolden(Path, float[])} with the golden folder found on the class path ("/golden", i.e.
     * kimivl-core/src/test/resources/golden when run from the tests).
     */
    public static List<GradDiff> compareWithGolden(float[] dImageFeatures) {
        java.net.URL url = TrainGolden.class.getResource("/golden");
        if (url == null) throw new IllegalStateException("no /golden folder on the class path (run from the kimivl-core tests)");
        try {
            return compareWithGolden(Path.of(url.toURI()), dImageFeatures);
        } catch (java.net.URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    /** The training golden's image (image0.png), preprocessed with its preprocessor_config.json. */
    public static PreprocessedImage goldenImage(Path caseDir) {
        PreprocessorConfig pre = PreprocessorConfig.load(caseDir);
        return new ImagePreprocessor(pre).process(new ImageLoader().load(caseDir.resolve("image0.png")));
    }
}
