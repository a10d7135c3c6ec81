package dev.kimivl.train;

import dev.kimivl.io.SafeTensorsFile;
import dev.kimivl.io.SafeTensorsWriter;
import dev.kimivl.io.TensorData;
import dev.kimivl.model.KimiVL;
import dev.kimivl.text.ChatMessage;
import dev.kimivl.vision.LoadedImage;

import java.awt.image.BufferedImage;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;

/**
 * Trains a small Kimi-VL checkpoint on {@link ShapesData} (supervised fine-tuning on the answer tokens, the chat
 * template as at inference) and writes it in the published layout: {@code kimivl train-shapes --from models/tiny-random
 * --out DIR}. The whole model is trained, language model ({@link TextGrad}) and vision tower + projector
 * ({@link VisionGrad}, fed the language model's gradient at the image positions): Muon on the language model's 2-D
 * weight matrices and AdamW on the rest of it (embeddings, output head, norms, router), as Moonlight; AdamW on the
 * vision side. Gradients are averaged over a batch.
 *
 * <p>Where it stands (2026-11-30, from the golden-config tiny-random, 8 examples a step, ~0.75 s a step on 2 cores):
 * the answers' form and the colours are learnt within ~50 steps, the shapes not. Scored by {@link ShapesEval} on 60
 * fresh examples: 29/60 with the vision side frozen (300 steps), 17/60 with Muon also on the vision matrices (300),
 * 24/60 with AdamW there (300), 25/60 with the shapes near the middle (600), a centred fixed-size variant still
 * answered "square" to every shape (400), and 31/60 after 1500 steps (vision AdamW 3e-3, Muon 0.01; 20 minutes). So the repo's default model is still the untrained tiny-random. Not tried
 * yet: longer runs, a larger batch, a warm-up/decay schedule, or a vision-only pre-training stage (the recipe's
 * SigLIP/caption stage) before the joint one.
 */
public final class ShapesTrainer {
    /** Settings of a run. */
    public record Options(int steps, int batch, float muonLr, float adamLr, float visionLr, float weightDecay, long seed) {
        public static Options defaults() { return new Options(300, 8, 0.02f, 3e-3f, 1e-3f, 0.01f, 7); }
    }

    private ShapesTrainer() {}

    /** One training example as token ids and targets over the chat template (prompt −100, answer and <|im_end|> scored). */
    record Tokens(int[] ids, int[] targets, boolean[] isText) {}

    static Tokens tokens(KimiVL m, String question, String answer) {
        KimiVL.Prompt p = m.prompt(List.of(ChatMessage.of("user", ChatMessage.imagePart(), ChatMessage.textPart(question))),
                List.of(placeholderImage()));
        int[] ans = m.tokenizer().encode(answer);
        int end = m.tokenizer().tokenId("<|im_end|>").orElseThrow();
        int T = p.ids().length + ans.length + 1;
        int[] ids = new int[T], targets = new int[T];
        boolean[] isText = new boolean[T];
        System.arraycopy(p.ids(), 0, ids, 0, p.ids().length);
        System.arraycopy(ans, 0, ids, p.ids().length, ans.length);
        ids[T - 1] = end;
        java.util.Arrays.fill(targets, -100);
        for (int t = p.ids().length - 1; t < T - 1; t++) targets[t] = ids[t + 1];        // predict the answer and <|im_end|>
        int pad = m.config().mediaPlaceholderTokenId();
        for (int t = 0; t < T; t++) isText[t] = ids[t] != pad;
        return new Tokens(ids, targets, isText);
    }

    /** An image of the training size: the prompt only needs its token count (the features are computed separately). */
    private static LoadedImage placeholderImage() {
        return toLoaded(new BufferedImage(ShapesData.SIZE, ShapesData.SIZE, BufferedImage.TYPE_INT_RGB));
    }

    public static LoadedImage toLoaded(BufferedImage im) { return dev.kimivl.train.recipe.ExampleEncoder.toLoaded(im); }

    /** Trains from the checkpoint in {@code from} and writes the result to {@code out} (config, tokenizer and all copied). */
    public static void train(Path from, Path out, Options o, PrintStream log) throws IOException {
        try (KimiVL m = KimiVL.open(from)) {
            String prefix = m.config().textPrefix();
            TextGrad tg = new TextGrad(m.weights(), m.config().text(), prefix);
            Map<String, Muon> muon = new HashMap<>();
            Map<String, AdamW> adam = new HashMap<>();
            for (var e : tg.parameters().entrySet()) {
                long[] s = tg.shape(e.getKey());
                String n = e.getKey();
                boolean hidden = Muon.takesLanguageModelTensor(n, s);
                if (hidden) muon.put(n, new Muon((int) s[0], (int) s[1], o.muonLr(), o.weightDecay()));
                else adam.put(n, new AdamW(e.getValue().length, o.adamLr(), 0.9f, 0.95f, 1e-8f, o.weightDecay()));
            }
            VisionGrad vg = new VisionGrad(m.weights(), m.config().vision(), m.config().text().hiddenSize());
            dev.kimivl.vision.ImagePreprocessor pre = new dev.kimivl.vision.ImagePreprocessor(dev.kimivl.config.PreprocessorConfig.load(from));
            Map<String, float[]> visionParams = new java.util.LinkedHashMap<>();      // float32 copies the optimizers update
            for (String n : vg.parameterNames()) {
                float[] v = vg.parameter(n);
                float[] f = new float[v.length];
                for (int i = 0; i < v.length; i++) f[i] = (float) v[i];
                visionParams.put(n, f);
                adam.put(n, new AdamW(f.length, o.visionLr(), 0.9f, 0.95f, 1e-8f, o.weightDecay()));
            }
            int D = m.config().text().hiddenSize();
            Random rnd = new Random(o.seed());
            Map<String, Tokens> tokenCache = new HashMap<>();       // one per question and answer: images have one size
            double avg = Double.NaN;
            long t0 = System.nanoTime();
            for (int step = 1; step <= o.steps(); step++) {
                Map<String, float[]> sum = new HashMap<>();
                double loss = 0;
                for (int b = 0; b < o.batch(); b++) {
                    ShapesData.Example ex = ShapesData.next(rnd);
                    float[] feats = vg.forward(List.of(pre.process(toLoaded(ex.image()))));
                    Tokens tk = tokenCache.computeIfAbsent(ex.question() + "\n" + ex.answer(), k -> tokens(m, ex.question(), ex.answer()));
                    TextGrad.Result r = tg.lossAndGrads(tg.embed(tk.ids(), tk.isText(), feats), tk.ids(), tk.isText(), tk.targets());
                    loss += r.loss() / o.batch();
                    float[] dFeats = new float[feats.length];
                    for (int t = 0, i = 0; t < tk.ids().length; t++) {
                        if (!tk.isText()[t]) System.arraycopy(r.dEmbeddings(), t * D, dFeats, D * i++, D);
                    }
                    Map<String, float[]> grads = new java.util.HashMap<>(r.grads());
                    grads.putAll(vg.backward(dFeats));
                    for (var e : grads.entrySet()) {
                        float[] acc = sum.computeIfAbsent(e.getKey(), k -> new float[e.getValue().length]);
                        float[] g = e.getValue();
                        for (int i = 0; i < g.length; i++) acc[i] += g[i] / o.batch();
                    }
                }
                Map<String, float[]> all = new java.util.LinkedHashMap<>(tg.parameters());
                all.putAll(visionParams);
                for (var e : all.entrySet()) {
                    float[] g = sum.get(e.getKey());
                    if (muon.containsKey(e.getKey())) muon.get(e.getKey()).step(e.getValue(), g);
                    else adam.get(e.getKey()).step(e.getValue(), g);
                }
                for (var e : visionParams.entrySet()) {                  // back into the double arrays VisionGrad reads
                    float[] v = vg.parameter(e.getKey());
                    float[] f = e.getValue();
                    for (int i = 0; i < f.length; i++) v[i] = f[i];
                }
                avg = Double.isNaN(avg) ? loss : 0.9 * avg + 0.1 * loss;
                if (log != null && (step % 10 == 0 || step == 1)) {
                    log.printf(Locale.ROOT, "step %d/%d  loss %.4f (avg %.4f)  %.1f s%n", step, o.steps(), loss, avg, (System.nanoTime() - t0) / 1e9);
                }
            }
            Map<String, float[]> trained = new java.util.LinkedHashMap<>(tg.parameters());
            trained.putAll(visionParams);
            write(from, out, trained, log);
        }
    }

    /**
     * The source checkpoint's files, with model.safetensors rewritten: trained tensors replaced, all stored as F32 (the
     * published checkpoints are BF16; rounding this tiny model's trained weights to BF16 moved its answers).
     */
    private static void write(Path from, Path out, Map<String, float[]> trained, PrintStream log) throws IOException {
        Files.createDirectories(out);
        try (var files = Files.list(from)) {
            for (Path f : (Iterable<Path>) files::iterator) {
                String n = f.getFileName().toString();
                if (Files.isRegularFile(f) && !n.equals("model.safetensors") && !n.equals("README.md")) {
                    Files.copy(f, out.resolve(n), StandardCopyOption.REPLACE_EXISTING);
                }
            }
        }
        Map<String, TensorData> src = SafeTensorsFile.open(from.resolve("model.safetensors")).tensors();
        SafeTensorsWriter w = new SafeTensorsWriter();
        for (var e : src.entrySet()) {
            float[] v = trained.containsKey(e.getKey()) ? trained.get(e.getKey()) : e.getValue().toFloats();
            w.f32(e.getKey(), v, e.getValue().shape());
        }
        Path tmp = out.resolve("model.safetensors.tmp");
        w.write(tmp);
        Files.move(tmp, out.resolve("model.safetensors"), StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        if (log != null) log.println("wrote " + out.resolve("model.safetensors"));
    }
}
