package dev.kimivl.train.recipe;

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
 * through {@link RecipeTrainer}'s own stage set-up and steps (its {@code StageRun}: the same optimizer split, clip,
 * routing-bias update and FLOP count), and prints GFLOP/s (the trainer's count: 6·active params·tokens plus attention) and seconds per phase. The batches
 * are rendered before the timed steps (the trainer renders them on a data thread meanwhile; their cost is printed
 * separately). With {@code --profile} a JFR recording of the timed steps is summarised by the training op on the
 * calling thread's stack (VisionGrad.attentionBackward, Muon.orthogonalize, ...) and by the leaf method on every
 * thread (PackedGemm.kernel16, Parallel$Worker.run = a worker spinning idle, ...).
 *
 * <p>Run (docs/training-speed.md): {@code java --add-modules jdk.incubator.vector -cp ... dev.kimivl.train.recipe.TrainStepBench
 * --recipe recipes/nano.json --steps 10 [--kind vit|joint|both | --stage NAME] [--profile] [--data-only]}; {@code --stage} times the
 * named stage's step instead (e.g. {@code long}, whose long text makes attention the larger part); {@code --data-only}
 * times only the batches' rendering and encoding, the trainer's data thread's work.
 */
public final class TrainStepBench {
    /** The products' precision of the timed steps (the recipe's {@code products}, or {@code --products}). */
    private static dev.kimivl.tensor.Gemm.Products products = dev.kimivl.tensor.Gemm.Products.F32;

    public static void main(String[] args) throws Exception {
        Path recipeFile = Path.of("recipes/nano.json"), tokenizerFrom = Path.of("models/kimivl-nano-instruct");
        int steps = 10, warmup = 2;
        String kind = "both", stageName = null;
        boolean profile = false, dataOnly = false;      // --data-only: the batches' rendering and encoding alone
        String productsArg = null;                      // --products: the recipe's choice unless given
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--recipe" -> recipeFile = Path.of(args[++i]);
                case "--tokenizer-from" -> tokenizerFrom = Path.of(args[++i]);
                case "--steps" -> steps = Integer.parseInt(args[++i]);
                case "--warmup" -> warmup = Integer.parseInt(args[++i]);
                case "--kind" -> kind = args[++i];
                case "--stage" -> stageName = args[++i];
                case "--profile" -> profile = true;
                case "--data-only" -> dataOnly = true;
                case "--products" -> productsArg = args[++i];
                default -> throw new IllegalArgumentException("unknown argument " + args[i]
                        + " (--recipe FILE --tokenizer-from MODEL_DIR --steps N --warmup N --kind vit|joint|both --stage NAME --profile --data-only --products f32|bf16)");
            }
        }
        Recipe recipe = Recipe.load(recipeFile);
        products = productsArg == null ? recipe.gemmProducts() : dev.kimivl.tensor.Gemm.Products.valueOf(productsArg.toUpperCase(Locale.ROOT));
        Path dir = Files.createTempDirectory("kimivl-trainbench");
        try {
            Path current = Files.createDirectories(dir.resolve("current"));
            for (String f : List.of("tiktoken.model", "tokenizer_config.json")) Files.copy(tokenizerFrom.resolve(f), current.resolve(f));
            int ranks;
            try (Stream<String> lines = Files.lines(current.resolve("tiktoken.model"))) { ranks = (int) lines.count(); }
            SpecialIds ids = TokenizerFiles.layout(ranks, TokenizerFiles.defaultVocabSize(ranks));
            recipe.model().writeInitial(current, ids, recipe.seed());
            RecipeTrainer trainer = new RecipeTrainer(recipeFile, dir, System.err, 0, 1, -1);
            System.out.printf(Locale.ROOT, "recipe %s, model %s; threads %d; %d warm-up + %d timed steps per kind; products %s%s%n",
                    recipeFile, recipe.model(), dev.kimivl.tensor.Parallel.THREADS, warmup, steps, products,
                    products == dev.kimivl.tensor.Gemm.Products.BF16 && !dev.kimivl.tensor.Gemm.bf16Available() ? " (not on this CPU: f32)" : "");
            if (stageName != null) {
                int index = -1;
                for (int i = 0; i < recipe.stages().size(); i++) if (recipe.stages().get(i).name().equals(stageName)) index = i;
                if (index < 0) throw new IllegalArgumentException(recipeFile + " has no stage named " + stageName);
                bench(trainer, recipe, index, dir.resolve("current"), warmup, steps, profile, dataOnly);
                return;
            }
            List<String> kinds = kind.equals("both") ? List.of("vit", "joint") : List.of(kind);
            for (String k : kinds) {
                Recipe.Stage stage = null;
                int index = 0;
                for (int i = 0; i < recipe.stages().size(); i++) {
                    Recipe.Stage st = recipe.stages().get(i);
                    if (k.equals("vit") ? st.kind().equals("pretrain-vit") : st.kind().equals("joint")) { stage = st; index = i; break; }
                }
                if (stage == null) throw new IllegalArgumentException(recipeFile + " has no " + (k.equals("vit") ? "pretrain-vit" : "joint") + " stage");
                bench(trainer, recipe, index, dir.resolve("current"), warmup, steps, profile, dataOnly);
            }
        } finally {
            RecipeTrainer.deleteTree(dir);
        }
    }

    /**
     * Times {@code steps} steps of stage {@code k} after {@code warmup} untimed ones: RecipeTrainer's own StageRun (its
     * optimizer split, clip, routing-bias update and FLOP count) on the model in {@code dir}; prints GFLOP/s, seconds
     * per phase and a hash of every weight.
     */
    private static void bench(RecipeTrainer trainer, Recipe recipe, int k, Path dir, int warmup, int steps, boolean profile, boolean dataOnly) throws Exception {
        RecipeTrainer.StageRun run = trainer.openStage(k, dir);
        Recipe.Stage stage = run.stage;
        // ---- data, rendered up front (the trainer overlaps it with the previous step on its data thread)
        // the warm-up steps' batches untimed (the renderer's JIT warm-up), the timed steps' batches timed
        List<List<ExampleEncoder.Encoded>> batches = new ArrayList<>();
        for (int s = 1; s <= warmup; s++) batches.add(run.batch(s));
        long d0 = System.nanoTime();
        for (int s = warmup + 1; s <= warmup + steps; s++) batches.add(run.batch(s));
        double dataPerStep = (System.nanoTime() - d0) / 1e9 / steps;
        if (dataOnly) {
            System.out.printf(Locale.ROOT, "[%s] stage '%s': data (render + encode) %.3f s/step on one thread, %d batches of %d after %d untimed%n",
                    stage.kind(), stage.name(), dataPerStep, steps, stage.batch(), warmup);
            return;
        }
        for (int s = 1; s <= warmup; s++) step(run, s, batches.get(s - 1));
        run.phaseSeconds.clear();
        Recording rec = null;
        if (profile) {
            rec = new Recording(jdk.jfr.Configuration.getConfiguration("profile"));
            rec.enable("jdk.ExecutionSample").withPeriod(java.time.Duration.ofMillis(5));
            rec.start();
        }
        double flop = 0, tokens = 0, patches = 0;
        long t0 = System.nanoTime();
        for (int s = warmup + 1; s <= warmup + steps; s++) {
            List<ExampleEncoder.Encoded> batch = batches.get(s - 1);
            RecipeTrainer.StageRun.StepResult r = step(run, s, batch);
            flop += r.flop();
            tokens += r.tokens();
            for (ExampleEncoder.Encoded e : batch) for (PreprocessedImage p : e.images()) patches += p.patches();
        }
        double el = (System.nanoTime() - t0) / 1e9;
        System.out.printf(Locale.ROOT, "%n[%s] stage '%s' (%s), batch %d: %.3f s/step, %.1f GFLOP/s (%.2f GFLOP/step; %.0f tokens, %.0f patches per step)%n",
                stage.kind().equals("pretrain-vit") ? "vit" : "joint", stage.name(), stage.kind(), stage.batch(), el / steps, flop / el / 1e9,
                flop / steps / 1e9, tokens / steps, patches / steps);
        System.out.printf(Locale.ROOT, "  data (render + encode, not in the step time): %.3f s/step on one thread%n", dataPerStep);
        // every weight, optimizer-updated tensors included, after warm-up + timed steps: equal hashes from two
        // builds mean the two train bit for bit alike
        long hash = 1;
        for (float[] v : run.params.values()) for (float f : v) hash = 31 * hash + Float.floatToRawIntBits(f);
        System.out.printf(Locale.ROOT, "  weights hash after %d steps: %016x%n", warmup + steps, hash);
        for (var e : run.phaseSeconds.entrySet()) {
            System.out.printf(Locale.ROOT, "  %-30s %7.3f s/step  %5.1f%%%n", e.getKey(), e.getValue() / steps, 100 * e.getValue() / el);
        }
        if (rec != null) {
            rec.stop();
            Path f = Files.createTempFile("kimivl-trainbench", ".jfr");
            try {
                rec.dump(f);
                summarise(f);
            } finally {
                rec.close();
                String keep = System.getProperty("kimivl.bench.jfr");       // keep the recording for jfr print
                if (keep != null) Files.move(f, Path.of(keep), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
                else Files.deleteIfExists(f);
            }
        }
    }

    private static RecipeTrainer.StageRun.StepResult step(RecipeTrainer.StageRun run, int s, List<ExampleEncoder.Encoded> batch) {
        return dev.kimivl.tensor.Gemm.withProducts(products, () -> run.siglip != null ? run.vitStep(s, batch)
                : run.step(s, batch, dev.kimivl.train.TextGrad.Objective.MEAN_CROSS_ENTROPY));
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
