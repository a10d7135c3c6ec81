package dev.kimivl.train.recipe;

import dev.kimivl.config.ModelConfig;
import dev.kimivl.config.PreprocessorConfig;
import dev.kimivl.io.SafetensorsCheckpoint;
import dev.kimivl.text.ChatTemplate;
import dev.kimivl.text.Tokenizer;
import dev.kimivl.train.AdamW;
import dev.kimivl.train.CaptionDecoder;
import dev.kimivl.train.ImagePooling;
import dev.kimivl.train.Muon;
import dev.kimivl.train.SigLip;
import dev.kimivl.train.TextGrad;
import dev.kimivl.train.VisionGrad;
import dev.kimivl.train.data.VisualWorld;
import dev.kimivl.train.tokenizer.SpecialIds;
import dev.kimivl.train.tokenizer.TokenizerFiles;
import dev.kimivl.vision.PreprocessedImage;
import jdk.jfr.Recording;
import jdk.jfr.consumer.RecordedEvent;
import jdk.jfr.consumer.RecordedFrame;
import jdk.jfr.consumer.RecordedStackTrace;
import jdk.jfr.consumer.RecordingFile;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;

/**
 * Training-step throughput benchmark (issue 10, "fast training kernels"): runs N steps of a recipe's model (the
 * {@code model} block of e.g. recipes/nano.json, randomly initialised through {@link ModelSpec#writeInitial}, the
 * tokenizer files taken from a shipped model) for
 * <ul>
 *   <li>{@code vit}: the first pretrain-vit stage's step (MoonViT + projector forward, pooling, SigLIP and the caption
 *       decoder, vision backward, Muon/AdamW), and</li>
 *   <li>{@code joint}: the first joint stage's step (vision forward, language model forward and backward, vision
 *       backward, optimizers),</li>
 * </ul>
 * exactly as {@link RecipeTrainer}'s {@code vitStep} / {@code step} do (same optimizer split, clip and FLOP count),
 * and prints GFLOP/s (the trainer's count: 6·active params·tokens plus attention) and seconds per phase. The batches
 * are rendered before the timed steps (the trainer renders them on a data thread meanwhile; their cost is printed
 * separately). With {@code --profile} a JFR recording of the timed steps is summarised by the training op on the
 * calling thread's stack (VisionGrad.attentionBackward, Muon.orthogonalize, ...) and by the leaf method on every
 * thread (PackedGemm.kernel16, Parallel$Worker.run = a worker spinning idle, ...).
 *
 * <p>Run (docs/training-speed.md): {@code java --add-modules jdk.incubator.vector -cp ... dev.kimivl.train.recipe.TrainStepBench
 * --recipe recipes/nano.json --steps 10 [--kind vit|joint|both] [--profile]}.
 */
public final class TrainStepBench {
    private static final int TOWER_DIM = 128;          // RecipeTrainer.TOWER_DIM
    private static final float CAPTION_WEIGHT = 2f;    // RecipeTrainer.CAPTION_WEIGHT

    public static void main(String[] args) throws Exception {
        Path recipeFile = Path.of("recipes/nano.json"), tokenizerFrom = Path.of("models/kimivl-nano-instruct");
        int steps = 10, warmup = 2;
        String kind = "both";
        boolean profile = false;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--recipe" -> recipeFile = Path.of(args[++i]);
                case "--tokenizer-from" -> tokenizerFrom = Path.of(args[++i]);
                case "--steps" -> steps = Integer.parseInt(args[++i]);
                case "--warmup" -> warmup = Integer.parseInt(args[++i]);
                case "--kind" -> kind = args[++i];
                case "--profile" -> profile = true;
                default -> throw new IllegalArgumentException("unknown argument " + args[i]
                        + " (--recipe FILE --tokenizer-from MODEL_DIR --steps N --warmup N --kind vit|joint|both --profile)");
            }
        }
        Recipe recipe = Recipe.load(recipeFile);
        Path dir = Files.createTempDirectory("kimivl-trainbench");
        try {
            for (String f : List.of("tiktoken.model", "tokenizer_config.json")) Files.copy(tokenizerFrom.resolve(f), dir.resolve(f));
            int ranks;
            try (Stream<String> lines = Files.lines(dir.resolve("tiktoken.model"))) { ranks = (int) lines.count(); }
            SpecialIds ids = TokenizerFiles.layout(ranks, TokenizerFiles.defaultVocabSize(ranks));
            recipe.model().writeInitial(dir, ids, recipe.seed());
            System.out.printf(Locale.ROOT, "recipe %s, model %s; threads %d; %d warm-up + %d timed steps per kind%n",
                    recipeFile, recipe.model(), dev.kimivl.tensor.Parallel.THREADS, warmup, steps);
            List<String> kinds = kind.equals("both") ? List.of("vit", "joint") : List.of(kind);
            for (String k : kinds) {
                Recipe.Stage stage = null;
                int index = 0;
                for (int i = 0; i < recipe.stages().size(); i++) {
                    Recipe.Stage st = recipe.stages().get(i);
                    if (k.equals("vit") ? st.kind().equals("pretrain-vit") : st.kind().equals("joint")) { stage = st; index = i; break; }
                }
                if (stage == null) throw new IllegalArgumentException(recipeFile + " has no " + (k.equals("vit") ? "pretrain-vit" : "joint") + " stage");
                new Run(recipe, index, stage, dir).bench(warmup, steps, profile);
            }
        } finally {
            RecipeTrainer.deleteTree(dir);
        }
    }

    /** One stage's model, optimizers and towers, as RecipeTrainer's StageRun sets them up. */
    private static final class Run {
        final Recipe recipe;
        final int k;
        final Recipe.Stage stage;
        final ModelConfig cfg;
        final TextGrad tg;
        final VisionGrad vg;
        final ExampleEncoder encoder;
        final ExampleSource source;
        final SigLip siglip;
        final CaptionDecoder captioner;
        final Map<String, float[]> params = new LinkedHashMap<>();
        final Map<String, Muon> muon = new LinkedHashMap<>();
        final Map<String, AdamW> adam = new LinkedHashMap<>();
        final boolean trainText, trainVisionSide;
        /** Seconds per phase, summed over the timed steps. */
        final Map<String, Double> phase = new LinkedHashMap<>();

        Run(Recipe recipe, int k, Recipe.Stage stage, Path dir) throws IOException {
            this.recipe = recipe;
            this.k = k;
            this.stage = stage;
            cfg = ModelConfig.load(dir);
            try (SafetensorsCheckpoint ck = SafetensorsCheckpoint.open(dir)) {
                tg = new TextGrad(ck, cfg.text(), cfg.textPrefix());
                vg = new VisionGrad(ck, cfg.vision(), cfg.text().hiddenSize());
            }
            encoder = new ExampleEncoder(Tokenizer.load(dir), ChatTemplate.load(dir), PreprocessorConfig.load(dir), cfg.mediaPlaceholderTokenId());
            source = new ExampleSource(new VisualWorld(stage.imageOptions()), stage.mix(), stage.needleChars() == null ? 2000 : stage.needleChars(), stage.vqaTypes());
            trainText = stage.train().contains("text");
            trainVisionSide = stage.train().contains("vision") || stage.train().contains("projector");
            params.putAll(tg.parameters());
            for (String n : vg.parameterNames()) params.put(n, vg.parameter(n));
            if (stage.kind().equals("pretrain-vit")) {
                long seed = recipe.seed() ^ (k + 1) * 0x9E3779B97F4A7C15L;
                siglip = new SigLip(cfg.text().hiddenSize(), TOWER_DIM, cfg.text().vocabSize(), seed);
                captioner = new CaptionDecoder(cfg.text().hiddenSize(), TOWER_DIM, cfg.text().vocabSize(), seed + 1,
                        Boolean.TRUE.equals(stage.captionAttention()));
                params.putAll(siglip.parameters());
                params.putAll(captioner.parameters());
            } else {
                siglip = null;
                captioner = null;
            }
            for (var e : params.entrySet()) {
                String n = e.getKey();
                if (!trains(n)) continue;
                boolean text = n.startsWith(cfg.textPrefix());
                if (RecipeTrainer.isTower(n)) {
                    adam.put(n, new AdamW(e.getValue().length, (float) stage.visionLr(), 0.9f, 0.95f, 1e-8f, RecipeTrainer.isVector(n) ? 0f : 0.01f));
                    continue;
                }
                long[] s = text ? tg.shape(n) : vg.shape(n);
                boolean hidden = text && s.length == 2 && !n.contains("embed_tokens") && !n.contains("lm_head") && !n.endsWith("mlp.gate.weight");
                boolean visionMatrix = !text && "muon".equals(stage.visionOptimizer()) && s.length >= 2 && !n.endsWith("pos_emb.weight");
                if (hidden) muon.put(n, new Muon((int) s[0], (int) s[1], (float) stage.lr(), 0.01f));
                else if (visionMatrix) muon.put(n, new Muon((int) s[0], e.getValue().length / (int) s[0], (float) stage.visionLr(), 0.01f));
                else adam.put(n, new AdamW(e.getValue().length, (float) (text ? stage.adamLr() : stage.visionLr()), 0.9f, 0.95f, 1e-8f,
                        s.length == 1 ? 0f : 0.01f));
            }
        }

        boolean trains(String name) {
            if (name.startsWith(cfg.textPrefix())) return trainText;
            if (RecipeTrainer.isTower(name)) return siglip != null;
            if (name.startsWith("vision_tower.")) return stage.train().contains("vision");
            return stage.train().contains("projector");
        }

        void bench(int warmup, int steps, boolean profile) throws Exception {
            // ---- data, rendered up front (the trainer overlaps it with the previous step on its data thread)
            long d0 = System.nanoTime();
            List<List<ExampleEncoder.Encoded>> batches = new ArrayList<>();
            for (int s = 1; s <= warmup + steps; s++) {
                List<ExampleEncoder.Encoded> batch = new ArrayList<>();
                for (int b = 0; b < stage.batch(); b++) {
                    batch.add(encoder.encode(source.draw(ExampleSource.exampleSeed(recipe.seed(), k, s, b)), stage.thinking()));
                }
                batches.add(batch);
            }
            double dataPerStep = (System.nanoTime() - d0) / 1e9 / (warmup + steps);
            for (int s = 1; s <= warmup; s++) step(s, batches.get(s - 1));
            phase.clear();
            Recording rec = null;
            if (profile) {
                rec = new Recording(jdk.jfr.Configuration.getConfiguration("profile"));
                rec.enable("jdk.ExecutionSample").withPeriod(java.time.Duration.ofMillis(5));
                rec.start();
            }
            double flop = 0, tokens = 0, patches = 0;
            long t0 = System.nanoTime();
            for (int s = warmup + 1; s <= warmup + steps; s++) {
                double[] r = step(s, batches.get(s - 1));
                flop += r[0];
                tokens += r[1];
                patches += r[2];
            }
            double el = (System.nanoTime() - t0) / 1e9;
            System.out.printf(Locale.ROOT, "%n[%s] stage '%s' (%s), batch %d: %.3f s/step, %.1f GFLOP/s (%.2f GFLOP/step; %.0f tokens, %.0f patches per step)%n",
                    stage.kind().equals("pretrain-vit") ? "vit" : "joint", stage.name(), stage.kind(), stage.batch(), el / steps, flop / el / 1e9,
                    flop / steps / 1e9, tokens / steps, patches / steps);
            System.out.printf(Locale.ROOT, "  data (render + encode, not in the step time): %.3f s/step on one thread%n", dataPerStep);
            // every weight, optimizer-updated tensors included, after warm-up + timed steps: equal hashes from two
            // builds mean the two train bit for bit alike
            long hash = 1;
            for (float[] v : params.values()) for (float f : v) hash = 31 * hash + Float.floatToRawIntBits(f);
            System.out.printf(Locale.ROOT, "  weights hash after %d steps: %016x%n", warmup + steps, hash);
            for (var e : phase.entrySet()) {
                System.out.printf(Locale.ROOT, "  %-22s %7.3f s/step  %5.1f%%%n", e.getKey(), e.getValue() / steps, 100 * e.getValue() / el);
            }
            if (rec != null) {
                rec.stop();
                Path f = Files.createTempFile("kimivl-trainbench", ".jfr");
                try {
                    rec.dump(f);
                    summarise(f);
                } finally {
                    rec.close();
                    Files.deleteIfExists(f);
                }
            }
        }

        private void time(String name, long since) {
            phase.merge(name, (System.nanoTime() - since) / 1e9, Double::sum);
        }

        /** One step; returns {flop, tokens, patches}. */
        double[] step(int s, List<ExampleEncoder.Encoded> batch) {
            return siglip != null ? vitStep(s, batch) : jointStep(s, batch);
        }

        double[] vitStep(int s, List<ExampleEncoder.Encoded> batch) {
            List<PreprocessedImage> images = new ArrayList<>();
            int[] merged = new int[batch.size()];
            List<int[]> captions = new ArrayList<>();
            long patches = 0;
            int captionTokens = 0;
            for (int i = 0; i < batch.size(); i++) {
                ExampleEncoder.Encoded e = batch.get(i);
                images.add(e.images().get(0));
                merged[i] = e.images().get(0).patches() / 4;
                patches += e.images().get(0).patches();
                captions.add(java.util.Arrays.stream(e.targets()).filter(v -> v != -100).toArray());   // RecipeTrainer's captionIds
                captionTokens += captions.get(i).length;
            }
            int dt = cfg.text().hiddenSize();
            long t = System.nanoTime();
            float[] feats = vg.forward(images);
            time("vision forward", t);
            t = System.nanoTime();
            double[][] pooled = ImagePooling.mean(feats, merged, dt), dPooled = new double[batch.size()][dt];
            SigLip.Result sr = siglip.lossAndGrads(pooled, captions, dPooled);
            time("siglip", t);
            t = System.nanoTime();
            double[][] dCaption = new double[batch.size()][dt];             // through the mean
            float[] dCaptionFeats = new float[feats.length];                // through the decoder's attention
            CaptionDecoder.Result cr = captioner.lossAndGrads(feats, merged, captions, dCaption, dCaptionFeats);
            Map<String, float[]> grads = new LinkedHashMap<>(sr.grads());
            for (var e : cr.grads().entrySet()) {
                float[] g = e.getValue();
                for (int i = 0; i < g.length; i++) g[i] *= CAPTION_WEIGHT;
                grads.put(e.getKey(), g);
            }
            time("caption decoder", t);
            t = System.nanoTime();
            for (int i = 0; i < dPooled.length; i++) for (int d = 0; d < dt; d++) dPooled[i][d] += CAPTION_WEIGHT * dCaption[i][d];
            float[] dFeats = new float[feats.length];
            ImagePooling.meanBackward(dPooled, merged, dt, dFeats);
            for (int i = 0; i < dFeats.length; i++) dFeats[i] += (float) (CAPTION_WEIGHT * dCaptionFeats[i]);
            grads.putAll(vg.backward(dFeats));
            time("vision backward", t);
            update(s, grads);
            double flop = 6.0 * RecipeTrainer.visionParamsPerPatch(cfg) * patches + 6.0 * RecipeTrainer.projectorParamsPerToken(cfg) * (patches / 4.0);
            return new double[]{flop, captionTokens, patches};
        }

        double[] jointStep(int s, List<ExampleEncoder.Encoded> batch) {
            int T = 0;
            for (ExampleEncoder.Encoded e : batch) T += e.ids().length;
            int[] ids = new int[T], targets = new int[T], seg = new int[T];
            boolean[] isText = new boolean[T];
            List<PreprocessedImage> images = new ArrayList<>();
            long patches = 0, segSq = 0;
            for (int o = 0, i = 0; i < batch.size(); i++) {
                ExampleEncoder.Encoded e = batch.get(i);
                int n = e.ids().length;
                System.arraycopy(e.ids(), 0, ids, o, n);
                System.arraycopy(e.targets(), 0, targets, o, n);
                System.arraycopy(e.isText(), 0, isText, o, n);
                java.util.Arrays.fill(seg, o, o + n, o);
                images.addAll(e.images());
                for (PreprocessedImage p : e.images()) patches += p.patches();
                segSq += (long) n * n;
                o += n;
            }
            long t = System.nanoTime();
            float[] feats = images.isEmpty() ? new float[0] : vg.forward(images);
            time("vision forward", t);
            t = System.nanoTime();
            float[] emb = tg.embed(ids, isText, feats);
            TextGrad.Result r = tg.lossAndGrads(emb, ids, isText, targets, seg, TextGrad.Objective.MEAN_CROSS_ENTROPY);
            time("text fwd + bwd", t);
            t = System.nanoTime();
            Map<String, float[]> grads = new LinkedHashMap<>(r.grads());
            if (trainVisionSide && !images.isEmpty()) {
                int D = cfg.text().hiddenSize();
                float[] dFeats = new float[feats.length];
                for (int q = 0, i = 0; q < T; q++) if (!isText[q]) System.arraycopy(r.dEmbeddings(), q * D, dFeats, D * i++, D);
                grads.putAll(vg.backward(dFeats));
            }
            time("vision backward", t);
            update(s, grads);
            double flop = 6.0 * RecipeTrainer.activeTextParams(cfg) * T + 6.0 * RecipeTrainer.attentionFlopPerPair(cfg) * segSq / 2
                    + (images.isEmpty() ? 0 : 6.0 * RecipeTrainer.visionParamsPerPatch(cfg) * patches
                    + 6.0 * RecipeTrainer.projectorParamsPerToken(cfg) * (patches / 4.0));
            return new double[]{flop, T, patches};
        }

        /** RecipeTrainer's own optimizer step (clip, AdamW, Muon one tensor per core), timed as one phase. */
        void update(int s, Map<String, float[]> grads) {
            long t = System.nanoTime();
            RecipeTrainer.optimizerStep(params, grads, this::trains, muon, adam, (float) stage.lrFactor(s));
            time("optimizer (clip, AdamW, Muon)", t);
        }
    }

    // ------------------------------------------------------------------------------------------- JFR summary

    /** Execution samples by training op (first dev.kimivl.train frame below the top, calling thread) and by leaf method (all threads). */
    static void summarise(Path jfr) throws IOException {
        Map<String, Integer> byOp = new TreeMap<>(), byLeaf = new TreeMap<>();
        int total = 0, main = 0;
        for (RecordedEvent ev : RecordingFile.readAllEvents(jfr)) {
            if (!ev.getEventType().getName().equals("jdk.ExecutionSample")) continue;
            RecordedStackTrace st = ev.getStackTrace();
            if (st == null || st.getFrames().isEmpty()) continue;
            total++;
            List<RecordedFrame> frames = st.getFrames();
            byLeaf.merge(name(frames.get(0)), 1, Integer::sum);
            String thread = ev.getThread("sampledThread") == null ? "" : ev.getThread("sampledThread").getJavaName();
            if (!"main".equals(thread)) continue;
            main++;
            String op = "other: " + name(frames.get(0));
            for (RecordedFrame fr : frames) {
                String cls = fr.getMethod().getType().getName();
                if (cls.startsWith("dev.kimivl.train.") && !cls.contains("TrainStepBench")) { op = name(fr); break; }
            }
            byOp.merge(op, 1, Integer::sum);
        }
        print("training op on the calling thread (JFR samples, share of that thread)", byOp, main);
        print("leaf method on every thread (Parallel$Worker.run / Parallel.dispatch = spinning, waiting for work)", byLeaf, total);
    }

    private static String name(RecordedFrame f) {
        String cls = f.getMethod().getType().getName();
        return cls.substring(cls.lastIndexOf('.') + 1) + "." + f.getMethod().getName();
    }

    private static void print(String title, Map<String, Integer> counts, int total) {
        System.out.printf(Locale.ROOT, "  %s, %d samples:%n", title, total);
        counts.entrySet().stream().sorted(Map.Entry.<String, Integer>comparingByValue(Comparator.reverseOrder())).limit(22)
                .forEach(e -> System.out.printf(Locale.ROOT, "    %5.1f%%  %s%n", 100.0 * e.getValue() / total, e.getKey()));
    }
}
