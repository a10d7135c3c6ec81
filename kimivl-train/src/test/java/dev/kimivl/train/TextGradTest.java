package dev.kimivl.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.kimivl.config.ModelConfig;
import dev.kimivl.config.PreprocessorConfig;
import dev.kimivl.io.SafeTensorsFile;
import dev.kimivl.io.SafetensorsCheckpoint;
import dev.kimivl.io.TensorData;
import dev.kimivl.model.ImageMerge;
import dev.kimivl.model.LanguageModel;
import dev.kimivl.testing.Golden;
import dev.kimivl.vision.ImageLoader;
import dev.kimivl.vision.VisionEncoder;
import dev.kimivl.vision.VisionOutput;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The language model's loss and gradients against PyTorch (golden/train/loss_grad_case_b, golden/README.md §3.1):
 * config A with case (b)'s image, 9 scored answer positions. The image features come from the inference vision path
 * (within 5e-5 of the oracle's), so this checks every language_model.* gradient; the vision tower's are VisionGrad's.
 * Tolerance 5e-5 of each tensor's max |g| (measured 6.7e-6; the golden's own float32 vs float64 spread is 7.0e-6).
 */
class TextGradTest {
    static final Path DIR = Golden.root().resolve("train/loss_grad_case_b");

    /** The case's ids, targets and input embeddings (image features at the placeholders). */
    record Case(int[] ids, int[] targets, boolean[] isText, float[] emb, ModelConfig cfg) {}

    static Case load(SafetensorsCheckpoint ck) throws Exception {
        JsonNode in = new ObjectMapper().readTree(DIR.resolve("inputs.json").toFile());
        int[] ids = ints(in.get("input_ids")), targets = ints(in.get("shift_targets"));
        ModelConfig cfg = ModelConfig.load(DIR);
        LanguageModel lm = LanguageModel.load(ck, cfg.text(), cfg.textPrefix());
        float[] emb = lm.embed(ids);
        VisionOutput v = new VisionEncoder(ck, cfg, PreprocessorConfig.load(DIR))
                .encode(List.of(new ImageLoader().load(DIR.resolve(in.get("images").get(0).asText()))));
        ImageMerge.merge(emb, ids, cfg.mediaPlaceholderTokenId(), v.features(), v.textHidden());
        boolean[] isText = new boolean[ids.length];
        for (int t = 0; t < ids.length; t++) isText[t] = ids[t] != cfg.mediaPlaceholderTokenId();
        return new Case(ids, targets, isText, emb, cfg);
    }

    /**
     * The whole model's gradient: TextGrad's d loss / d input embeddings at the 20 image placeholder rows is d loss /
     * d image features, which VisionGrad carries back through the projector and MoonViT. Together with the
     * language-model test above, every one of the golden's 120 gradient tensors is checked.
     */
    @Test
    void throughTheImageFeaturesIntoTheVisionTower() throws Exception {
        try (SafetensorsCheckpoint ck = SafetensorsCheckpoint.open(DIR)) {
            Case k = load(ck);
            TextGrad.Result r = new TextGrad(ck, k.cfg().text(), k.cfg().textPrefix()).lossAndGrads(k.emb(), k.ids(), k.isText(), k.targets());
            int D = k.cfg().text().hiddenSize(), n = 0;
            for (boolean b : k.isText()) if (!b) n++;
            float[] dFeatures = new float[n * D];
            for (int t = 0, i = 0; t < k.ids().length; t++) if (!k.isText()[t]) System.arraycopy(r.dEmbeddings(), t * D, dFeatures, D * i++, D);
            // the golden run's d loss / d image features, recovered from its linear_2 gradient (TrainGolden)
            float[] want = TrainGolden.imageFeatureGradFromGolden(Golden.root());
            double scale = 0;
            for (float v : want) scale = Math.max(scale, Math.abs(v));
            double d = Golden.maxAbsDiff(want, dFeatures);
            assertTrue(d < 1e-4 * scale, "d loss / d image features: max |Δ| " + d + " of " + scale);
            double worst = 0;
            for (TrainGolden.GradDiff g : TrainGolden.compareWithGolden(Golden.root(), dFeatures)) {
                assertTrue(g.relative() < 5e-5, g.name() + ": " + g.relative());
                worst = Math.max(worst, g.relative());
            }
            System.out.printf("TextGrad -> VisionGrad: d image features within %.1e of %.1e; vision and projector gradients worst %.1e of max |g|%n", d, scale, worst);
        }
    }

    /**
     * The pieces compose into training: TextGrad's gradients, Muon on the 2-D hidden matrices and AdamW on the rest
     * (embeddings, output head, norms, router, as in Moonlight), vision frozen. On the golden sequence the loss of its
     * 9 answer tokens falls at every one of 5 steps, from 10.84 to ~0.15 (memorising them; near the minimum Muon's
     * fixed-size steps then hover).
     */
    @Test
    void muonAndAdamWStepsOnTheseGradientsLowerTheLoss() throws Exception {
        try (SafetensorsCheckpoint ck = SafetensorsCheckpoint.open(DIR)) {
            Case k = load(ck);
            TextGrad tg = new TextGrad(ck, k.cfg().text(), k.cfg().textPrefix());
            int D = k.cfg().text().hiddenSize(), images = 0;
            for (boolean b : k.isText()) if (!b) images++;
            float[] feats = new float[images * D];
            for (int t = 0, i = 0; t < k.ids().length; t++) if (!k.isText()[t]) System.arraycopy(k.emb(), t * D, feats, D * i++, D);
            assertEquals(0.0, Golden.maxAbsDiff(k.emb(), tg.embed(k.ids(), k.isText(), feats)), "TextGrad.embed rebuilds the inputs");
            Map<String, Muon> muon = new java.util.HashMap<>();
            Map<String, AdamW> adam = new java.util.HashMap<>();
            for (var e : tg.parameters().entrySet()) {
                long[] s = tg.shape(e.getKey());
                boolean matrix = s.length == 2 && !e.getKey().contains("embed_tokens") && !e.getKey().contains("lm_head") && !e.getKey().endsWith("gate.weight");
                if (matrix) muon.put(e.getKey(), new Muon((int) s[0], (int) s[1], 0.02f, 0.1f));
                else adam.put(e.getKey(), new AdamW(e.getValue().length, 3e-3f, 0.9f, 0.95f, 1e-8f, 0.1f));
            }
            double first = Double.NaN, prev = Double.POSITIVE_INFINITY;
            for (int step = 0; step < 5; step++) {
                TextGrad.Result r = tg.lossAndGrads(tg.embed(k.ids(), k.isText(), feats), k.ids(), k.isText(), k.targets());
                System.out.printf("step %d: loss %.4f%n", step, r.loss());
                if (step == 0) first = r.loss();
                assertTrue(r.loss() < prev, "step " + step + ": loss " + r.loss() + " after " + prev);
                prev = r.loss();
                for (var e : tg.parameters().entrySet()) {
                    float[] grad = r.grads().get(e.getKey());
                    if (muon.containsKey(e.getKey())) muon.get(e.getKey()).step(e.getValue(), grad);
                    else adam.get(e.getKey()).step(e.getValue(), grad);
                }
            }
            assertTrue(prev < 0.1 * first, "loss " + first + " -> " + prev);
        }
    }

    static int[] ints(JsonNode a) {
        int[] r = new int[a.size()];
        for (int i = 0; i < r.length; i++) r[i] = a.get(i).asInt();
        return r;
    }

    @Test
    void lossAndEveryLanguageModelGradientMatchPyTorch() throws Exception {
        try (SafetensorsCheckpoint ck = SafetensorsCheckpoint.open(DIR)) {
            Case k = load(ck);
            TextGrad tg = new TextGrad(ck, k.cfg().text(), k.cfg().textPrefix());
            TextGrad.Result r = tg.lossAndGrads(k.emb(), k.ids(), k.isText(), k.targets());
            JsonNode exp = new ObjectMapper().readTree(DIR.resolve("expected.json").toFile());
            assertEquals(exp.get("loss").asDouble(), r.loss(), 2e-5, "loss");
            Map<String, TensorData> ref = SafeTensorsFile.open(DIR.resolve("grads.safetensors")).tensors();
            int checked = 0;
            double worst = 0;
            String worstName = "";
            for (var e : r.grads().entrySet()) {
                TensorData t = ref.get(e.getKey());
                assertTrue(t != null, "golden has no gradient for " + e.getKey());
                float[] want = t.toFloats(), got = e.getValue();
                assertEquals(want.length, got.length, e.getKey());
                double max = 0, diff = 0;
                for (int i = 0; i < want.length; i++) {
                    max = Math.max(max, Math.abs(want[i]));
                    diff = Math.max(diff, Math.abs(want[i] - got[i]));
                }
                double rel = max == 0 ? diff : diff / max;
                if (rel > worst) { worst = rel; worstName = e.getKey(); }
                assertTrue(max == 0 ? diff == 0 : rel < 5e-5, e.getKey() + ": max |Δ| " + diff + " against max |g| " + max);
                checked++;
            }
            System.out.printf("TextGrad: loss %.6f (PyTorch %.6f); %d gradient tensors, worst max|Δ|/max|g| %.1e (%s)%n",
                    r.loss(), exp.get("loss").asDouble(), checked, worst, worstName);
        }
    }

    /**
     * Packing: the golden sequence and a shifted copy of it packed into one row (block-diagonal attention, positions
     * restarting) give the loss and gradients of the two run one by one, averaged over their scored tokens.
     */
    @Test
    void packedSequencesEqualSeparateRuns() throws Exception {
        try (SafetensorsCheckpoint ck = SafetensorsCheckpoint.open(DIR)) {
            Case k = load(ck);
            TextGrad tg = new TextGrad(ck, k.cfg().text(), k.cfg().textPrefix());
            int T = k.ids().length, D = k.cfg().text().hiddenSize(), cut = 7;
            // the second sequence: the golden's last T - cut tokens (scored where the golden scores them)
            int[] ids2 = java.util.Arrays.copyOfRange(k.ids(), cut, T), tg2 = java.util.Arrays.copyOfRange(k.targets(), cut, T);
            boolean[] txt2 = java.util.Arrays.copyOfRange(k.isText(), cut, T);
            float[] emb2 = java.util.Arrays.copyOfRange(k.emb(), cut * D, T * D);
            TextGrad.Result a = tg.lossAndGrads(k.emb(), k.ids(), k.isText(), k.targets());
            TextGrad.Result b = tg.lossAndGrads(emb2, ids2, txt2, tg2);
            int na = 0, nb = 0;
            for (int t : k.targets()) if (t != -100) na++;
            for (int t : tg2) if (t != -100) nb++;
            int P = T + ids2.length;
            int[] ids = new int[P], targets = new int[P], seg = new int[P];
            boolean[] isText = new boolean[P];
            float[] emb = new float[P * D];
            System.arraycopy(k.ids(), 0, ids, 0, T); System.arraycopy(ids2, 0, ids, T, ids2.length);
            System.arraycopy(k.targets(), 0, targets, 0, T); System.arraycopy(tg2, 0, targets, T, tg2.length);
            System.arraycopy(k.isText(), 0, isText, 0, T); System.arraycopy(txt2, 0, isText, T, txt2.length);
            System.arraycopy(k.emb(), 0, emb, 0, T * D); System.arraycopy(emb2, 0, emb, T * D, emb2.length);
            for (int t = T; t < P; t++) seg[t] = T;
            TextGrad.Result p = tg.lossAndGrads(emb, ids, isText, targets, seg);
            assertEquals((na * a.loss() + nb * b.loss()) / (na + nb), p.loss(), 1e-5, "packed loss");
            double worst = 0;
            for (var e : p.grads().entrySet()) {
                float[] ga = a.grads().get(e.getKey()), gb = b.grads().get(e.getKey()), gp = e.getValue();
                double scale = 1e-12, diff = 0;
                for (int i = 0; i < gp.length; i++) {
                    double want = (na * (double) ga[i] + nb * (double) gb[i]) / (na + nb);
                    scale = Math.max(scale, Math.abs(want));
                    diff = Math.max(diff, Math.abs(want - gp[i]));
                }
                worst = Math.max(worst, diff / scale);
            }
            System.out.printf("TextGrad packed vs separate: loss %.6f, worst gradient max|Δ|/max|g| %.1e%n", p.loss(), worst);
            assertTrue(worst < 1e-4, "packed gradients differ from separate runs by " + worst + " of max |g|");
        }
    }
    /**
     * A loss on layer 1's output (a fixed linear functional of the hidden states, as a scaffold head is to first
     * order) leaves the main loss and every gradient above layer 1 unchanged and adds its own below: checked against
     * central differences of main + hidden loss on layer 0's weights.
     */
    @Test
    void aLossOnALayersOutputAddsItsGradientBelowThatLayerOnly() throws Exception {
        try (SafetensorsCheckpoint ck = SafetensorsCheckpoint.open(DIR)) {
            Case k = load(ck);
            TextGrad tg = new TextGrad(ck, k.cfg().text(), k.cfg().textPrefix());
            int T = k.ids().length, D = k.cfg().text().hiddenSize();
            float[] c = new float[T * D];
            java.util.SplittableRandom r = new java.util.SplittableRandom(7);
            for (int i = 0; i < c.length; i++) c[i] = (float) (r.nextDouble(-1, 1) / T);
            double[] hiddenLoss = new double[1];
            TextGrad.HiddenLoss h = new TextGrad.HiddenLoss() {
                @Override public int layer() { return 1; }

                @Override public void apply(float[] hidden, int n, float[] dHidden) {
                    double sum = 0;
                    for (int i = 0; i < hidden.length; i++) { sum += (double) c[i] * hidden[i]; dHidden[i] += c[i]; }
                    hiddenLoss[0] = sum;
                }
            };
            int[] seg = new int[T];
            TextGrad.Result plain = tg.lossAndGrads(k.emb(), k.ids(), k.isText(), k.targets(), seg, TextGrad.Objective.MEAN_CROSS_ENTROPY, null);
            TextGrad.Result with = tg.lossAndGrads(k.emb(), k.ids(), k.isText(), k.targets(), seg, TextGrad.Objective.MEAN_CROSS_ENTROPY, h);
            assertEquals(plain.loss(), with.loss(), 0.0, "the main loss is the main loss");
            int changed = 0;
            for (var e : with.grads().entrySet()) {
                boolean below = e.getKey().contains("layers.0.") || e.getKey().endsWith("embed_tokens.weight");
                if (!below) org.junit.jupiter.api.Assertions.assertArrayEquals(plain.grads().get(e.getKey()), e.getValue(), e.getKey() + " is above the loss");
                else if (!java.util.Arrays.equals(plain.grads().get(e.getKey()), e.getValue())) changed++;
            }
            assertTrue(changed > 3, "the hidden loss reaches layer 0's weights (" + changed + " tensors changed)");

            String name = with.grads().keySet().stream().filter(n -> n.contains("layers.0.") && n.endsWith("kv_a_proj_with_mqa.weight")).findFirst().orElseThrow();
            float[] w = tg.parameters().get(name), g = with.grads().get(name), g0 = plain.grads().get(name);
            Integer[] idx = new Integer[g.length];
            for (int i = 0; i < idx.length; i++) idx[i] = i;
            java.util.Arrays.sort(idx, (a, b) -> Float.compare(Math.abs(g[b] - g0[b]), Math.abs(g[a] - g0[a])));
            for (int q = 0; q < 3; q++) {
                int i = idx[q];
                float orig = w[i], eps = 1e-2f;
                w[i] = orig + eps;
                double plus = tg.lossAndGrads(k.emb(), k.ids(), k.isText(), k.targets(), seg, TextGrad.Objective.MEAN_CROSS_ENTROPY, h).loss() + hiddenLoss[0];
                w[i] = orig - eps;
                double minus = tg.lossAndGrads(k.emb(), k.ids(), k.isText(), k.targets(), seg, TextGrad.Objective.MEAN_CROSS_ENTROPY, h).loss() + hiddenLoss[0];
                w[i] = orig;
                double fd = (plus - minus) / (2 * eps);
                assertEquals(fd, g[i], 0.02 * Math.abs(fd) + 1e-4, name + "[" + i + "]: central difference " + fd + " (without the hidden loss " + g0[i] + ")");
            }
        }
    }
}
