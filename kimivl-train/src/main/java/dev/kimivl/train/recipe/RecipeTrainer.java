package dev.kimivl.train.recipe;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.kimivl.config.ModelConfig;
import dev.kimivl.config.PreprocessorConfig;
import dev.kimivl.io.SafeTensorsFile;
import dev.kimivl.io.SafeTensorsWriter;
import dev.kimivl.io.SafetensorsCheckpoint;
import dev.kimivl.io.TensorData;
import dev.kimivl.tensor.Gemm;
import dev.kimivl.tensor.Parallel;
import dev.kimivl.text.ChatTemplate;
import dev.kimivl.text.Tokenizer;
import dev.kimivl.train.AdamW;
import dev.kimivl.train.Muon;
import dev.kimivl.train.TextGrad;
import dev.kimivl.train.VisionGrad;
import dev.kimivl.train.data.VisualWorld;
import dev.kimivl.train.tokenizer.BpeTrainer;
import dev.kimivl.train.tokenizer.SpecialIds;
import dev.kimivl.train.tokenizer.TokenizerFiles;
import dev.kimivl.vision.PreprocessedImage;

import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.stream.Stream;

/**
 * Runs a {@link Recipe}: trains the tokenizer, writes the randomly initialised model, then every stage in order, each a
 * resumable sequence of optimizer steps over packed batches of synthetic examples ({@link ExampleSource},
 * {@link ExampleEncoder}), on the fast float32 passes ({@link TextGrad}, {@link VisionGrad}). Muon (Moonlight's variant)
 * takes the language model's 2-D hidden matrices, AdamW the rest; the routing bias follows the aux-loss-free update
 * of DeepSeek-V3 (b_e += γ·sign(mean load − load_e)).
 *
 * <p>The output folder:
 * <pre>
 * tokenizer/            tiktoken.model, tokenizer_config.json
 * current/              the newest checkpoint in the published layout + optimizer.safetensors + trainer_state.json
 * stages/NN-name/       the checkpoint each finished stage left (published layout)
 * curves/NN-name.png    the stage's loss and token-accuracy curves
 * &lt;output name&gt;/       the recipe's named outputs (e.g. kimivl-nano-instruct), copied from their stages
 * train_log.jsonl       one line per step (the progress line on stderr comes every logEvery steps)
 * </pre>
 * Every checkpoint is written to a temporary folder and renamed into place (the previous one is renamed away first and
 * removed after), so a run killed at any moment resumes ({@code --resume}) from the last complete checkpoint; examples
 * are drawn from seeds of (recipe seed, stage, step, index) and optimizer states are saved bit for bit, so the resumed
 * run ends with exactly the weights of an uninterrupted one.
 */
public final class RecipeTrainer {
    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);
    /** One line per object, for train_log.jsonl (written every step: one mapper, not one per line). */
    private static final ObjectMapper JSON_LINE = new ObjectMapper();
    private static final String STATE = "trainer_state.json", OPT = "optimizer.safetensors";
    /** The aux-loss-free balancing step γ (DeepSeek-V3 uses 0.001). */
    private static final float BIAS_STEP = 1e-3f;
    /** The width of the pretrain-vit stage's towers (SigLIP's shared embedding, the caption decoder's hidden). */
    private static final int TOWER_DIM = 128;
    /** Kimi-VL's first stage: L = L_siglip + 2·L_caption. */
    private static final float CAPTION_WEIGHT = 2f;
    /** Global gradient-norm clip. */
    private static final double CLIP = 1.0;

    private final Recipe recipe;
    private final Path recipeFile, out;
    private final String fingerprint;     // of the recipe file, read once: every checkpoint records it
    private final PrintStream err;
    private final int checkpointEvery, logEvery;
    private final long stopAfterSteps;         // tests: stop (as if killed) after this many steps of this process
    /** {@link #startingAt}: the stage a new run begins at and the checkpoint it begins from (else null). */
    private String startStage;
    private Path startFrom;

    /** Thrown when a loss is NaN or infinite: names stage and step; the last good checkpoint stays in place. */
    public static final class DivergedException extends RuntimeException {
        DivergedException(String msg) { super(msg); }
    }

    public RecipeTrainer(Path recipeFile, Path out, PrintStream err, int checkpointEvery, int logEvery, long stopAfterSteps) throws IOException {
        this.recipeFile = recipeFile;
        this.recipe = Recipe.load(recipeFile);
        this.fingerprint = Recipe.fingerprint(recipeFile);
        this.out = out;
        this.err = err;
        this.checkpointEvery = checkpointEvery;
        this.logEvery = Math.max(1, logEvery);
        this.stopAfterSteps = stopAfterSteps;
    }

    /**
     * A new run begins at stage {@code stage} with the weights, config and tokenizer of {@code from} (a stage output
     * such as {@code runs/x/stages/01-vit}, or a model folder) instead of the recipe's tokenizer and initial weights:
     * for experiments on later stages without re-running the earlier ones. The stages before it do not run, and outputs
     * naming them are skipped. Started from the very checkpoint an earlier run of the same recipe wrote after the stage
     * before, it ends with that run's weights (the data seeds depend on stage and step, and each stage starts with
     * fresh optimizers). From a run's {@code current/} folder, whose optimizer state holds the scaffold heads of the stage
     * it last trained, a stage with {@code continueHeads} goes on from those heads.
     */
    public RecipeTrainer startingAt(String stage, Path from) {
        stageIndex(stage);
        this.startStage = stage;
        this.startFrom = from;
        return this;
    }

    /** Runs (or, with {@code resume}, continues) the recipe. Returns false if stopped early by stopAfterSteps. */
    public boolean run(boolean resume) throws IOException {
        Files.createDirectories(out);
        Path current = out.resolve("current");
        recoverInterruptedSwap(current);
        if (Files.exists(current.resolve(STATE)) && !resume) {
            throw new IllegalArgumentException(out + " already holds a run (current/" + STATE + "): pass --resume to continue it, or choose another --out");
        }
        if (startStage != null && resume) throw new IllegalArgumentException("--resume continues a run; starting at a stage begins a new one");
        if (startStage != null) initialiseFrom(current, stageIndex(startStage), startFrom);
        if (!Files.exists(current.resolve(STATE))) initialise(current);
        State st = State.load(current.resolve(STATE));
        if (!st.fingerprint.equals(fingerprint)) {
            throw new IllegalArgumentException(out + " was started with another recipe (fingerprint " + st.fingerprint
                    + ", " + recipeFile + " has " + fingerprint + ")");
        }
        long stepsThisRun = 0;
        for (int k = st.stage; k < recipe.stages().size(); k++) {
            Recipe.Stage stage = recipe.stages().get(k);
            StageRun run = new StageRun(k, stage, current, k == st.stage ? st : null);
            int done = run.train(stopAfterSteps < 0 ? Long.MAX_VALUE : stopAfterSteps - stepsThisRun);
            stepsThisRun += done;
            if (run.step < stage.steps()) return false;
            copyModel(current, stageDir(k));
            List<com.fasterxml.jackson.databind.JsonNode> logged = Curves.stageLines(out.resolve("train_log.jsonl"), stage.name());
            Path png = Curves.draw(logged, stage.name(), out.resolve("curves").resolve(stageLabel(k) + ".png"));
            if (png != null) err.println("[" + stage.name() + "] curves: " + png);
            StageThroughput throughput = StageThroughput.of(logged);
            if (throughput != null) err.println("[" + stage.name() + "] " + throughput.describe());
            st = new State(k + 1, 0, st.fingerprint, run.wallSeconds, run.tokensSeen);
            boolean branch = k + 1 < recipe.stages().size() && recipe.stages().get(k + 1).from() != null;
            if (branch && branchInto(current, k + 1, st)) continue;     // the cursor went in with the branch's checkpoint
            st.save(current.resolve(STATE));
            if (branch) break;                              // no checkpoint to branch from: what ran is published below; the rest is named
        }
        if (recipe.outputs() != null) {
            for (var e : recipe.outputs().entrySet()) {
                int idx = stageIndex(e.getValue());
                Path from = stageDir(idx);
                if (!Files.isDirectory(from)) {      // a run started at a later stage (startingAt) never ran it
                    err.println("skipped output " + e.getKey() + ": stage " + e.getValue() + " did not run in " + out);
                    continue;
                }
                copyModel(from, out.resolve(e.getKey()));
                err.println("wrote " + out.resolve(e.getKey()) + " (stage " + e.getValue() + ")");
            }
        }
        return true;
    }

    /**
     * Scaffolding saved with the optimizer state, trained, never published: the ViT pre-training stage's SigLIP towers
     * and caption decoder, and the token-label heads of any stage that has them.
     */
    static boolean isTower(String name) {
        return name.startsWith("siglip.") || name.startsWith("caption.") || isScaffoldHead(name);
    }

    /** The per-stage scaffold heads among them (token-label heads, binding head): what {@code continueHeads} carries. */
    static boolean isScaffoldHead(String name) {
        return dev.kimivl.train.TokenLabelHead.isHeadParameter(name) || dev.kimivl.train.BindingHead.isParameter(name);
    }

    static boolean isVector(String name) {
        return name.endsWith("bias") || name.endsWith("log_scale");
    }

    private int stageIndex(String name) {
        int i = recipe.stageIndex(name);
        if (i >= 0) return i;
        throw new IllegalArgumentException(recipeFile + " has no stage '" + name + "' (its stages: "
                + recipe.stages().stream().map(Recipe.Stage::name).toList() + ")");
    }

    /**
     * A branch: stage k starts from the final checkpoint of the stage its {@code from} names, not from current/.
     * current/ := that stage's folder with the cursor {@code st} in one swap, so a run killed before it resumes at the
     * end of the stage before, which has nothing left to do and comes here again. False (and said) when this run has
     * no such checkpoint: it began ({@code --start-at}) after that stage, so the branch and what follows do not run.
     */
    private boolean branchInto(Path current, int k, State st) throws IOException {
        Recipe.Stage stage = recipe.stages().get(k);
        int from = stageIndex(stage.from());
        Path dir = stageDir(from);
        if (!Files.isRegularFile(dir.resolve("model.safetensors"))) {
            err.printf(Locale.ROOT, "[%s] not run, nor the stages after it: it starts from stage %s's checkpoint, which this run did not make"
                    + " (it began after that stage); run it with --start-at %s --from <stage %s's checkpoint>%n", stage.name(), stage.from(), stage.name(), stage.from());
            return false;
        }
        replaceCurrent(current, dir, st, false);
        err.printf(Locale.ROOT, "[%s] starts from stage %s's checkpoint (%s)%n", stage.name(), stage.from(), dir);
        return true;
    }

    /**
     * current/ := the model files of {@code from} (and its optimizer state when {@code withOptimizer} and it has one)
     * with the cursor {@code st}, in one swap: a run killed on either side of it resumes correctly.
     */
    private void replaceCurrent(Path current, Path from, State st, boolean withOptimizer) throws IOException {
        Path tmp = out.resolve("current.tmp");
        deleteTree(tmp);
        copyModelFiles(from, tmp);
        if (withOptimizer && Files.isRegularFile(from.resolve(OPT))) Files.copy(from.resolve(OPT), tmp.resolve(OPT));
        st.save(tmp.resolve(STATE));
        swapInto(tmp, current);
    }

    /** Stage k's final checkpoint, stages/NN-name. */
    private Path stageDir(int k) {
        return out.resolve("stages").resolve(stageLabel(k));
    }

    /** "NN-name": the stage's number in the recipe file and its name (its checkpoint folder and curves file). */
    private String stageLabel(int k) {
        return String.format(Locale.ROOT, "%02d-%s", k + 1, recipe.stages().get(k).name());
    }

    /** current/ := the model files of {@code from}, with a cursor at step 0 of stage k (see {@link #startingAt}). */
    private void initialiseFrom(Path current, int k, Path from) throws IOException {
        for (String f : List.of("config.json", "model.safetensors", "tiktoken.model", "tokenizer_config.json", "preprocessor_config.json")) {
            if (!Files.isRegularFile(from.resolve(f))) {
                throw new IllegalArgumentException(from + " is not a checkpoint to start stage " + recipe.stages().get(k).name() + " from: it has no " + f);
            }
        }
        // a run's current/: its optimizer state carries the scaffold heads a continueHeads stage starts from (its
        // moments are not used: a stage starts with fresh optimizers)
        replaceCurrent(current, from, new State(k, 0, fingerprint, 0, 0), true);
        err.printf(Locale.ROOT, "starting at stage %d (%s) from %s%n", k + 1, recipe.stages().get(k).name(), from);
    }

    // ================================================================================================ initialisation

    private void initialise(Path current) throws IOException {
        long t0 = System.nanoTime();
        Path tokDir = out.resolve("tokenizer");
        VisualWorld world = new VisualWorld(VisualWorld.Options.defaults());
        int n = recipe.tokenizer().corpusExamples();
        SpecialIds ids;
        int numRanks;
        if (Files.isRegularFile(tokDir.resolve("tokenizer_config.json")) && Files.isRegularFile(tokDir.resolve("tiktoken.model"))) {
            // a run killed after its tokenizer was written: the files are complete (tokenizer_config.json comes last)
            numRanks = TokenizerFiles.ranksIn(tokDir);
            ids = TokenizerFiles.layout(numRanks, TokenizerFiles.defaultVocabSize(numRanks));
            err.printf(Locale.ROOT, "tokenizer: reusing %s (%d ranks)%n", tokDir, numRanks);
        } else {
            err.printf(Locale.ROOT, "tokenizer: training %d ranks on the text of %d synthetic examples%n", recipe.tokenizer().ranks(), n);
            List<byte[]> ranks = BpeTrainer.train(world.corpus(recipe.seed(), n), recipe.tokenizer().ranks());
            ids = TokenizerFiles.write(tokDir, ranks);
            numRanks = ranks.size();
        }
        Path tmp = out.resolve("current.tmp");
        deleteTree(tmp);
        copyFiles(tokDir, tmp);
        recipe.model().writeInitial(tmp, ids, recipe.seed());
        Files.writeString(tmp.resolve("generation_config.json"), "{\n  \"temperature\": 0.0,\n  \"max_new_tokens\": 256\n}\n");
        new State(0, 0, fingerprint, 0, 0).save(tmp.resolve(STATE));
        swapInto(tmp, current);
        err.printf(Locale.ROOT, "initialised %s: vocabulary %d (%d ranks), %.1f s%n", current, ids.vocabSize(), numRanks, (System.nanoTime() - t0) / 1e9);
    }

    // ================================================================================================ one stage

    /**
     * One optimizer step over the trained tensors (shared by {@link StageRun} and the training benchmark): the global
     * gradient norm over what trains, summed in name order (the tensor order of a checkpoint file must not move the
     * clip by a rounding), clipped to {@link #CLIP}, then AdamW or Muon per tensor at {@code lrFactor} of its rate.
     * Muon's Newton–Schulz iterations were up to half of a step, on matrices too small to keep both cores busy in one
     * GEMM: its tensors go one per core. Each runs as it would alone (a GEMM inside a chunk runs inline, and every
     * output tile is computed by one thread in a fixed order), so the weights are the same as one after another.
     */
    public static void optimizerStep(Map<String, float[]> params, Map<String, float[]> grads, java.util.function.Predicate<String> trains,
                              Map<String, Muon> muon, Map<String, AdamW> adam, float lrFactor) {
        double sq = 0;
        for (var e : new java.util.TreeMap<>(grads).entrySet()) {
            if (!trains.test(e.getKey())) continue;
            for (float g : e.getValue()) sq += (double) g * g;
        }
        double norm = Math.sqrt(sq);
        float clip = norm > CLIP ? (float) (CLIP / norm) : 1f;
        List<String> orthogonalised = new ArrayList<>();
        for (var e : params.entrySet()) {
            float[] g = grads.get(e.getKey());
            if (g == null || !trains.test(e.getKey())) continue;
            if (clip != 1f) for (int i = 0; i < g.length; i++) g[i] *= clip;
            if (muon.containsKey(e.getKey())) orthogonalised.add(e.getKey());
            else adam.get(e.getKey()).step(e.getValue(), g, lrFactor);
        }
        // the caller's products precision on whichever thread runs a tensor (a scoped binding does not reach the pool's
        // workers by itself), so the weights do not depend on which core took which tensor
        Gemm.Products products = Gemm.products();
        Parallel.forRange(orthogonalised.size(), 1, (i0, i1) -> Gemm.withProducts(products, () -> {
            for (int i = i0; i < i1; i++) {
                String n = orthogonalised.get(i);
                muon.get(n).step(params.get(n), grads.get(n), lrFactor);
            }
            return null;
        }));
    }

    /**
     * DeepSeek-V3's aux-loss-free load balancing: each MoE layer's {@code e_score_correction_bias} moves a fixed step
     * towards the experts that took fewer than the mean of the step's tokens ({@code update} false: only measure).
     *
     * @param expertLoad [layer][expert] tokens routed to each expert this step (null rows: dense layers)
     * @return the worst layer's load spread, max / min tokens per expert
     */
    public static double balanceExperts(Map<String, float[]> params, String textPrefix, int[][] expertLoad, boolean update) {
        double spread = 0;
        for (int l = 0; l < expertLoad.length; l++) {
            int[] load = expertLoad[l];
            if (load == null) continue;
            double mean = 0;
            int max = 0, min = Integer.MAX_VALUE;
            for (int v : load) { mean += v; max = Math.max(max, v); min = Math.min(min, v); }
            mean /= load.length;
            spread = Math.max(spread, (double) max / Math.max(1, min));
            if (!update) continue;
            float[] bias = params.get(textPrefix + "model.layers." + l + ".mlp.gate.e_score_correction_bias");
            if (bias != null) for (int e = 0; e < load.length; e++) bias[e] += BIAS_STEP * Math.signum((float) (mean - load[e]));
        }
        return spread;
    }

    /**
     * Stage {@code k} of the recipe set up on the checkpoint in {@code current} (its optimizers fresh), for the training
     * benchmark to time the very steps a run takes ({@code TrainStepBench}).
     */
    StageRun openStage(int k, Path current) throws IOException {
        return new StageRun(k, recipe.stages().get(k), current, null);
    }

    /** One stage being trained: its model, optimizers, towers and data source. */
    final class StageRun {
        final int k;
        /** {@link Recipe#depth}(k): what numbers the stage's examples and seeds (k itself in a recipe without branches) */
        final int depth;
        final Recipe.Stage stage;
        final Path current;
        final TextGrad tg;
        final VisionGrad vg;
        final ExampleEncoder encoder;
        final PreprocessorConfig preprocessor;
        final ExampleSource source;
        final ModelConfig cfg;
        final Map<String, Muon> muon = new LinkedHashMap<>();
        final Map<String, AdamW> adam = new LinkedHashMap<>();
        final Map<String, float[]> params = new LinkedHashMap<>();
        final boolean trainText, trainVisionSide;
        /**
         * The ViT pre-training stage's towers (null in every other stage): SigLIP's and the small caption decoder;
         * saved with the optimizer state, never with the model.
         */
        final dev.kimivl.train.SigLip siglip;
        final dev.kimivl.train.CaptionDecoder captioner;
        /** The stage's token-label heads by kind, those with a weight > 0 in {@code tokenLabels} (else empty). */
        final Map<String, dev.kimivl.train.TokenLabelHead> labelHeads = new LinkedHashMap<>();
        /** The stage's binding head on the language model ({@code bindHead}), else null. */
        final dev.kimivl.train.BindingHead binding;
        final Tokenizer tokenizer;
        /**
         * FLOPs per multiply-add of the language model: 2 forward, 4 more backward where it trains (its weights' and
         * its input's gradients); a frozen language model still runs backward for the image tokens' gradient (2 more)
         * when the vision side trains.
         */
        final double textFlopFactor;
        int step;
        double wallSeconds, tokensSeen;
        /** Seconds spent per phase of a step (vision forward, text fwd + bwd, ..., optimizer), summed over the steps. */
        final Map<String, Double> phaseSeconds = new LinkedHashMap<>();

        /** Adds the time since {@code since} (System.nanoTime) to a phase; returns now, the next phase's start. */
        long phase(String name, long since) {
            long now = System.nanoTime();
            phaseSeconds.merge(name, (now - since) / 1e9, Double::sum);
            return now;
        }

        StageRun(int k, Recipe.Stage stage, Path current, State resumed) throws IOException {
            this.k = k;
            this.depth = recipe.depth(k);
            this.stage = stage;
            this.current = current;
            if (resumed == null || resumed.step == 0) applyStageConfig(current, stage);
            cfg = ModelConfig.load(current);
            try (SafetensorsCheckpoint ck = SafetensorsCheckpoint.open(current)) {
                tg = new TextGrad(ck, cfg.text(), cfg.textPrefix());
                vg = new VisionGrad(ck, cfg.vision(), cfg.text().hiddenSize());
            }
            tokenizer = Tokenizer.load(current);
            preprocessor = PreprocessorConfig.load(current);
            encoder = new ExampleEncoder(tokenizer, ChatTemplate.load(current), preprocessor, cfg.mediaPlaceholderTokenId());
            source = sourceFor(stage.imageOptions());
            trainText = stage.train().contains("text");
            trainVisionSide = stage.train().contains("vision") || stage.train().contains("projector");
            params.putAll(tg.parameters());
            for (String n : vg.parameterNames()) params.put(n, vg.parameter(n));
            long seed = recipe.seed() ^ (depth + 1) * 0x9E3779B97F4A7C15L;
            if (stage.kind().equals("pretrain-vit")) {
                siglip = new dev.kimivl.train.SigLip(cfg.text().hiddenSize(), TOWER_DIM, cfg.text().vocabSize(), seed);
                captioner = new dev.kimivl.train.CaptionDecoder(cfg.text().hiddenSize(), TOWER_DIM, cfg.text().vocabSize(), seed + 1,
                        Boolean.TRUE.equals(stage.captionAttention()));
                params.putAll(siglip.parameters());
                params.putAll(captioner.parameters());
            } else {
                siglip = null;
                captioner = null;
            }
            int next = 2;
            for (String kind : dev.kimivl.train.TokenLabelHead.KINDS) {      // a fixed order: the seeds and the parameter order stay put
                Double w = stage.tokenLabels() == null ? null : stage.tokenLabels().get(kind);
                if (w == null || w <= 0) continue;
                var head = new dev.kimivl.train.TokenLabelHead(kind, cfg.text().hiddenSize(), dev.kimivl.train.TokenLabelHead.classes(kind), seed + next++);
                labelHeads.put(kind, head);
                params.putAll(head.parameters());
            }
            if (stage.bindHead() != null) {
                if (stage.bindHead().layer() > cfg.text().numLayers()) {
                    throw new IllegalArgumentException("stage " + stage.name() + ": bindHead.layer " + stage.bindHead().layer()
                            + " is past the language model's " + cfg.text().numLayers() + " layers");
                }
                binding = new dev.kimivl.train.BindingHead(stage.bindHead(), cfg.text().hiddenSize(), seed + next++);
                params.putAll(binding.parameters());
            } else {
                binding = null;
            }
            if (Boolean.TRUE.equals(stage.continueHeads()) && (resumed == null || resumed.step == 0)) continueHeads(current.resolve(OPT));
            boolean rlOnAdam = stage.rl() != null && stage.rl().adamOnly();     // rl.optimizer adamw: no Muon in the language model
            for (var e : params.entrySet()) {
                String n = e.getKey();
                if (!trains(n)) continue;
                boolean text = n.startsWith(cfg.textPrefix());
                if (isTower(n)) {     // the towers: AdamW at the vision side's rate (the binding head: the language model's), no decay on vectors and scalars
                    double lr = dev.kimivl.train.BindingHead.isParameter(n) ? stage.adamLr() : stage.visionLr();
                    adam.put(n, new AdamW(e.getValue().length, (float) lr, 0.9f, 0.95f, 1e-8f, isVector(n) ? 0f : 0.01f));
                    continue;
                }
                long[] s = text ? tg.shape(n) : vg.shape(n);
                boolean hidden = text && Muon.takesLanguageModelTensor(n, s) && !rlOnAdam;
                // the vision side's matrices (a conv kernel [D, 3, p, p] as [D, 3·p·p]); the position table is a table
                boolean visionMatrix = !text && "muon".equals(stage.visionOptimizer()) && s.length >= 2 && !n.endsWith("pos_emb.weight");
                if (hidden) muon.put(n, new Muon((int) s[0], (int) s[1], (float) stage.lr(), 0.01f));
                else if (visionMatrix) muon.put(n, new Muon((int) s[0], e.getValue().length / (int) s[0], (float) stage.visionLr(), 0.01f));
                else adam.put(n, new AdamW(e.getValue().length, (float) (text ? stage.adamLr() : stage.visionLr()), 0.9f, 0.95f, 1e-8f,
                        s.length == 1 ? 0f : 0.01f));
            }
            textFlopFactor = trainText ? 6.0 : trainVisionSide ? 4.0 : 2.0;
            if (resumed != null && resumed.step > 0) {
                restoreOptimizers(current.resolve(OPT));
                step = resumed.step;
                wallSeconds = resumed.wallSeconds;
                tokensSeen = resumed.tokensSeen;
                err.printf(Locale.ROOT, "[%s] resumed at step %d/%d%n", stage.name(), step, stage.steps());
            }
        }

        /**
         * A stage's first step: its scaffold heads take the previous stage's final weights where it had the same head
         * ({@code continueHeads}). That stage's last checkpoint is still in current/ until this stage writes its first,
         * so a run killed before then carries the same weights when resumed.
         */
        private void continueHeads(Path previous) {
            Map<String, TensorData> t = Files.isRegularFile(previous) ? SafeTensorsFile.open(previous).tensors() : Map.of();
            List<String> carried = new ArrayList<>(), fresh = new ArrayList<>();
            for (var e : params.entrySet()) {
                String n = e.getKey();
                if (!isScaffoldHead(n)) continue;
                TensorData d = t.get("param." + n);
                float[] previousWeights = d == null ? null : d.toFloats();
                if (previousWeights != null && previousWeights.length == e.getValue().length) {
                    System.arraycopy(previousWeights, 0, e.getValue(), 0, previousWeights.length);
                    carried.add(n);
                } else {
                    fresh.add(n);
                }
            }
            err.printf(Locale.ROOT, "[%s] scaffold heads from the previous stage: %s%s%n", stage.name(), carried.isEmpty() ? "none" : carried,
                    fresh.isEmpty() ? "" : "; fresh: " + fresh);
        }

        boolean trains(String name) {
            if (name.startsWith(cfg.textPrefix())) return trainText;
            if (dev.kimivl.train.TokenLabelHead.isHeadParameter(name)) return labelHeads.containsKey(name.substring(0, name.indexOf('.')));
            if (dev.kimivl.train.BindingHead.isParameter(name)) return binding != null;
            if (isTower(name)) return siglip != null;
            if (name.startsWith("vision_tower.")) return stage.train().contains("vision");
            return stage.train().contains("projector");
        }

        /** Runs steps until the stage ends or {@code budget} steps were taken; returns the steps taken. */
        int train(long budget) throws IOException {
            int taken = 0;
            double avg = Double.NaN;
            long t0 = System.nanoTime();
            double wall0 = wallSeconds, flops = 0;
            final Gemm.Products products = recipe.gemmProducts();
            if (step == 0) {
                err.printf(Locale.ROOT, "[%s] %s: %d steps of %d examples, training %s%s%n", stage.name(), stage.kind(), stage.steps(), stage.batch(), stage.train(),
                        products == Gemm.Products.BF16 ? (Gemm.bf16Available() ? ", bf16 products" : ", f32 products (the recipe asks for bf16; this CPU has no AVX512-BF16)") : "");
            }
            java.util.concurrent.ExecutorService data = java.util.concurrent.Executors.newSingleThreadExecutor(r -> {
                Thread t = new Thread(r, "kimivl-train-data");
                t.setDaemon(true);
                return t;
            });
            java.util.concurrent.Future<List<ExampleEncoder.Encoded>> next = null;
            try {
            while (step < stage.steps() && taken < budget) {
                final int s = step + 1;
                StepResult r;
                if (stage.rl() != null) {
                    r = rlStep(s);      // sampled from the weights of this very step: nothing can be prepared ahead
                } else {
                    List<ExampleEncoder.Encoded> batch;
                    try {
                        batch = next != null ? next.get() : batch(s);
                    } catch (InterruptedException | java.util.concurrent.ExecutionException e) {
                        throw new IllegalStateException("preparing step " + s + " of stage " + stage.name() + ": " + e.getCause(), e.getCause());
                    }
                    next = s < stage.steps() && taken + 1 < budget ? data.submit(() -> batch(s + 1)) : null;
                    r = Gemm.withProducts(products, () -> siglip != null ? vitStep(s, batch) : step(s, batch, TextGrad.Objective.MEAN_CROSS_ENTROPY));
                }
                step++;
                taken++;
                tokensSeen += r.tokens;
                flops += r.flop;
                avg = Double.isNaN(avg) ? r.loss : 0.95 * avg + 0.05 * r.loss;
                double el = (System.nanoTime() - t0) / 1e9;
                wallSeconds = wall0 + el;
                double gflops = flops / el / 1e9;
                // every step goes to the JSONL log: one step's figures are noisy (an RL step's accuracy is 8 prompts'),
                // and means over many steps need them all; the progress line comes every logEvery steps
                log(stage, step, r, avg, gflops);
                if (step % logEvery == 0 || step == stage.steps() || step == 1) {
                    double eta = el / taken * (stage.steps() - step);
                    StringBuilder heads = new StringBuilder();     // each token-label head's accuracy on this step's tokens
                    for (var e : r.tokenLabels.entrySet()) {
                        if (e.getKey().equals(BIND)) continue;
                        double obj = e.getValue().objectAccuracy();
                        heads.append(String.format(Locale.ROOT, " %s %.3f", e.getKey(), e.getValue().accuracy()))
                                .append(Double.isNaN(obj) ? "" : String.format(Locale.ROOT, " (objects %.3f)", obj));
                    }
                    LabelScore bind = r.tokenLabels.get(BIND);          // the binding head's accuracy at this step's colour words
                    String scaffolds = (heads.isEmpty() ? "" : "  tokens:" + heads) + (bind == null ? "" : String.format(Locale.ROOT, "  bind %.3f", bind.accuracy()));
                    err.printf(Locale.ROOT, "[%s] step %d/%d  loss %.4f (avg %.4f)  acc %.3f%s%s  %.0f tok/s  %.1f GFLOP/s  load max/min %.2f  ETA %s%n",
                            stage.name(), step, stage.steps(), r.loss, avg, r.accuracy,
                            Double.isNaN(r.siglipLoss) ? "" : String.format(Locale.ROOT, "  siglip %.4f  retrieval %.3f", r.siglipLoss, r.retrieval),
                            scaffolds, r.tokens / r.seconds, gflops, r.loadSpread, eta(eta));
                }
                if (checkpointEvery > 0 && step % checkpointEvery == 0 && step < stage.steps()) checkpoint();
            }
            } finally {
                data.shutdownNow();
            }
            if (taken > 0) checkpoint();
            if (step == stage.steps()) deleteTree(out.resolve("rl-policy"));     // the RL sampler's scratch copy
            return taken;
        }

        /**
         * @param loss      the step's loss (pretrain-vit: L_siglip + 2·L_caption)
         * @param accuracy  token accuracy of the scored answer tokens (RL: the share of sampled answers accepted)
         * @param siglipLoss pretrain-vit only (else NaN): the contrastive loss, and {@code retrieval} the share of
         *                  images whose best-scoring caption in the batch is theirs
         * @param tokenLabels a stage with {@code tokenLabels} (else empty): each head's loss and the share of tokens
         *                  whose label it names, by kind; and a stage with a binding head, its loss and accuracy at the
         *                  colour words under {@link #BIND}
         */
        record StepResult(double loss, double accuracy, int tokens, double flop, double seconds, double loadSpread, double lrFactor,
                          double siglipLoss, double retrieval, Map<String, LabelScore> tokenLabels) {
            StepResult(double loss, double accuracy, int tokens, double flop, double seconds, double loadSpread, double lrFactor) {
                this(loss, accuracy, tokens, flop, seconds, loadSpread, lrFactor, Double.NaN, Double.NaN, Map.of());
            }
        }

        /** A token-label head's loss and accuracy in one step, and its accuracy on object tokens (NaN: none, or place). */
        record LabelScore(double loss, double accuracy, double objectAccuracy) {}

        /** The binding head's key among a step's {@link LabelScore}s (logged as bind_loss and bind_accuracy). */
        static final String BIND = "bind";

        /** Adds w · each gradient of {@code from} to {@code into} under the same names (scaling in place). */
        static void putScaled(Map<String, float[]> into, Map<String, float[]> from, float w) {
            for (var e : from.entrySet()) {
                float[] g = e.getValue();
                for (int i = 0; i < g.length; i++) g[i] *= w;
                into.put(e.getKey(), g);
            }
        }

        /** The caption's token ids: the scored answer tokens, ending with the closing <|im_end|>. */
        static int[] captionIds(ExampleEncoder.Encoded e) {
            return java.util.Arrays.stream(e.targets()).filter(v -> v != -100).toArray();
        }

        /**
         * One step of the ViT pre-training stage: the images through MoonViT and the projector, pooled, then
         * L = L_siglip + 2·L_caption (SigLIP against the batch's captions, the small caption decoder on each caption);
         * the language model does not run. The logged accuracy is the caption decoder's token accuracy.
         */
        StepResult vitStep(int s, List<ExampleEncoder.Encoded> batch) {
            long t0 = System.nanoTime();
            List<PreprocessedImage> images = new ArrayList<>();
            int[] merged = new int[batch.size()];
            List<int[]> captions = new ArrayList<>();
            long patches = 0;
            int captionTokens = 0;
            for (int i = 0; i < batch.size(); i++) {
                ExampleEncoder.Encoded e = batch.get(i);
                if (e.images().size() != 1) throw new IllegalStateException("stage " + stage.name() + " step " + s + ": example " + i + " has " + e.images().size() + " images, not 1");
                images.add(e.images().get(0));
                merged[i] = e.images().get(0).patches() / 4;
                patches += e.images().get(0).patches();
                captions.add(captionIds(e));
                captionTokens += captions.get(i).length;
            }
            int dt = cfg.text().hiddenSize();
            long t = System.nanoTime();
            float[] feats = vg.forward(images);
            t = phase("vision forward", t);
            double[][] pooled = dev.kimivl.train.ImagePooling.mean(feats, merged, dt), dPooled = new double[batch.size()][dt];
            dev.kimivl.train.SigLip.Result sr = siglip.lossAndGrads(pooled, captions, dPooled);
            t = phase("siglip", t);
            double[][] dCaption = new double[batch.size()][dt];             // through the mean
            float[] dCaptionFeats = new float[feats.length];                // through the decoder's attention
            dev.kimivl.train.CaptionDecoder.Result cr = captioner.lossAndGrads(feats, merged, captions, dCaption, dCaptionFeats);
            double loss = sr.loss() + CAPTION_WEIGHT * cr.loss();
            if (!Double.isFinite(loss)) {
                throw new DivergedException("stage " + stage.name() + " step " + s + ": the loss is " + loss + " (SigLIP " + sr.loss() + ", caption "
                        + cr.loss() + "); the last good checkpoint is " + current + " (lower the learning rate and --resume)");
            }
            Map<String, float[]> grads = new LinkedHashMap<>(sr.grads());
            putScaled(grads, cr.grads(), CAPTION_WEIGHT);
            t = phase("caption decoder", t);
            for (int i = 0; i < dPooled.length; i++) for (int d = 0; d < dt; d++) dPooled[i][d] += CAPTION_WEIGHT * dCaption[i][d];
            float[] dFeats = new float[feats.length];
            dev.kimivl.train.ImagePooling.meanBackward(dPooled, merged, dt, dFeats);
            for (int i = 0; i < dFeats.length; i++) dFeats[i] += (float) (CAPTION_WEIGHT * dCaptionFeats[i]);
            Map<String, LabelScore> scores = new LinkedHashMap<>();
            loss += tokenLabelLosses(feats, images, batch.stream().flatMap(e -> e.sources().stream()).toList(), dFeats, grads, scores);
            t = System.nanoTime();
            grads.putAll(vg.backward(dFeats));
            phase("vision backward", t);
            update(s, grads);
            double flop = visionFlop(cfg, images, true, stage.train().contains("projector"));
            return new StepResult(loss, cr.tokenAccuracy(), captionTokens, flop, (System.nanoTime() - t0) / 1e9, 0, stage.lrFactor(s), sr.loss(), sr.retrievalAccuracy(),
                    scores);
        }

        /**
         * The stage's token-label heads on a batch's image tokens: each token names a label of the pixels under it (its
         * colour, its cell of the image, the shape it is part of), L += w · L_label for each head. Adds each head's
         * d loss / d feats to {@code dFeats}, its weighted gradients to {@code grads} and its score to {@code scores};
         * returns Σ w · L_label.
         *
         * @param feats   [merged tokens of all images, hidden] the projector's output, images in order
         * @param images  the images as the tower took them, and {@code sources} as drawn (their shape maps)
         */
        double tokenLabelLosses(float[] feats, List<PreprocessedImage> images, List<java.awt.image.BufferedImage> sources, float[] dFeats,
                                Map<String, float[]> grads, Map<String, LabelScore> scores) {
            int dt = cfg.text().hiddenSize();
            double loss = 0;
            for (var head : labelHeads.entrySet()) {
                long t = System.nanoTime();
                String kind = head.getKey();
                double weight = stage.tokenLabels().get(kind);
                int[] labels = new int[feats.length / dt];
                int at = 0;
                for (int i = 0; i < images.size(); i++) {
                    PreprocessedImage im = images.get(i);
                    int[] l = switch (kind) {
                        case "colour" -> dev.kimivl.train.data.TokenColours.of(im, preprocessor);
                        case "place" -> dev.kimivl.train.data.TokenPlaces.of(im);
                        case "centre" -> dev.kimivl.train.data.TokenCentres.of(im, sources.get(i));
                        default -> dev.kimivl.train.data.TokenShapes.of(im, sources.get(i));
                    };
                    System.arraycopy(l, 0, labels, at, l.length);
                    at += l.length;
                }
                if (at != labels.length) throw new IllegalStateException(at + " token labels for " + labels.length + " image tokens");
                float[] dLabel = new float[feats.length];
                dev.kimivl.train.TokenLabelHead.Result hr = head.getValue().lossAndGrads(feats, labels, dLabel);
                loss += weight * hr.loss();
                putScaled(grads, hr.grads(), (float) weight);
                for (int i = 0; i < dFeats.length; i++) dFeats[i] += (float) (weight * dLabel[i]);
                if (hr.scored() > 0) scores.put(kind, new LabelScore(hr.loss(), hr.accuracy(), hr.objectAccuracy()));
                phase("token " + kind, t);
            }
            return loss;
        }

        ExampleSource sourceFor(VisualWorld.Options images) {
            VisualWorld easy = stage.easyShare() == null ? null
                    : new VisualWorld(new VisualWorld.Options(images.minSide(), images.maxSide(), true));
            return new ExampleSource(new VisualWorld(images), easy, stage.easyShare() == null ? 0 : stage.easyShare(), stage.mix(),
                    stage.needleChars() == null ? 2000 : stage.needleChars(), stage.vqaTypes());
        }

        /** Where step s draws its examples: the stage's source, or with progressive resolution one sized for step s. */
        ExampleSource sourceAt(int s) {
            return stage.startMaxSide() == null ? source : sourceFor(stage.imageOptionsAt(s));
        }

        /** Step s's examples, encoded: drawn and rendered on the data thread while the previous step computes. */
        List<ExampleEncoder.Encoded> batch(int s) {
            List<ExampleEncoder.Encoded> batch = new ArrayList<>();
            ExampleSource stepSource = sourceAt(s);
            for (int b = 0; b < stage.batch(); b++) {
                dev.kimivl.train.data.Example ex = stepSource.draw(ExampleSource.exampleSeed(recipe.seed(), depth, s, b));
                ExampleEncoder.Encoded e = encoder.encode(ex, stage.thinking());
                if (binding != null) e = e.withBindLabels(dev.kimivl.train.BindingHead.labels(ex, e.ids(), cfg.mediaPlaceholderTokenId(), this::colourToken));
                batch.add(e);
            }
            return batch;
        }

        /** The token of a colour word as it appears inside a sentence (" red"; its last token if it has several), encoded once per colour. */
        int colourToken(String colour) {
            return colourTokens.computeIfAbsent(colour, c -> {
                int[] t = tokenizer.encode(" " + c);
                return t[t.length - 1];
            });
        }

        private final Map<String, Integer> colourTokens = new java.util.concurrent.ConcurrentHashMap<>();

        /**
         * One RL step ({@link PolicyMirrorDescent}): the stage's batch of prompts, {@code rl.samples} answers each
         * sampled through the inference path from the current weights (π_old), rewarded by the exact answer checker
         * and the length reward; then two updates on those answers, the first at θ = π_old, the second with the
         * τ-regularised residuals against the log-probabilities the first recorded.
         */
        StepResult rlStep(int s) throws IOException {
            long t0 = System.nanoTime();
            Recipe.Rl spec = stage.rl();
            List<ExampleEncoder.Encoded> answers = new ArrayList<>();
            List<Double> rewards = new ArrayList<>();
            List<Integer> groups = new ArrayList<>();
            int right = 0, sampled = 0;
            Path policyDir = out.resolve("rl-policy");
            writePolicy(policyDir);
            try (dev.kimivl.model.KimiVL policy = dev.kimivl.model.KimiVL.open(policyDir)) {
                dev.kimivl.generate.Generator gen = policy.generator(0);
                ExampleSource stepSource = sourceAt(s);
                for (int b = 0; b < stage.batch(); b++) {
                    long seed = ExampleSource.exampleSeed(recipe.seed(), depth, s, b);
                    dev.kimivl.train.data.Example ex = stepSource.draw(seed);
                    List<dev.kimivl.vision.LoadedImage> ims = new ArrayList<>();
                    for (java.awt.image.BufferedImage im : ex.images()) ims.add(ExampleEncoder.toLoaded(im));
                    dev.kimivl.model.KimiVL.Prompt prompt = policy.prompt(ExampleEncoder.userTurn(ex), ims);
                    boolean[] ok = new boolean[spec.samples()];
                    int[] length = new int[spec.samples()];
                    String[] text = new String[spec.samples()];
                    List<dev.kimivl.generate.SamplingParams> params = new ArrayList<>();
                    for (int j = 0; j < spec.samples(); j++) {
                        params.add(new dev.kimivl.generate.SamplingParams(spec.temperature(), 0, 1, 0, 1,
                                seed * 0x9E3779B97F4A7C15L + j, spec.maxTokens(), List.of()));
                    }
                    // the k answers together: one prefill, batched decode steps (each the answer generate() gives)
                    List<dev.kimivl.generate.Generator.Result> group = gen.generateEach(prompt.embeddings(), prompt.ids(), params);
                    for (int j = 0; j < spec.samples(); j++) {
                        var g = group.get(j);
                        text[j] = g.text();
                        length[j] = g.tokens().length;
                        ok[j] = VisualWorld.correct(ex, dev.kimivl.text.ThinkingSplit.answerOf(g.text()).strip());
                        if (ok[j]) right++;
                        sampled++;
                    }
                    double[] r = PolicyMirrorDescent.withLengthPenalty(ok, length, spec.lengthPenalty());
                    for (int j = 0; j < spec.samples(); j++) {
                        answers.add(encoder.encode(ex, text[j]));
                        rewards.add(r[j]);
                        groups.add(b);
                    }
                }
            }
            double sampleSeconds = (System.nanoTime() - t0) / 1e9;
            double[] reward = rewards.stream().mapToDouble(Double::doubleValue).toArray();
            int[] group = groups.stream().mapToInt(Integer::intValue).toArray();
            PolicyMirrorDescent first = new PolicyMirrorDescent(reward, group, spec.tau(), null);
            StepResult a, b;
            featureCache = trainVisionSide ? null : new java.util.HashMap<>();   // both updates: one encode per image
            try {
                // the updates in the recipe's products; the sampling above stays f32 (the inference engine runs some
                // products inside pool bodies, where a scoped choice would depend on which thread took which)
                Gemm.Products products = recipe.gemmProducts();
                a = Gemm.withProducts(products, () -> step(s, answers, first));
                b = Gemm.withProducts(products, () -> step(s, answers, new PolicyMirrorDescent(reward, group, spec.tau(), first.oldLogProbs())));
            } finally {
                featureCache = null;
            }
            if (Boolean.getBoolean("kimivl.trainProfile")) {
                err.printf(Locale.ROOT, "  rl: %d answers sampled in %.2f s, %d right%n", sampled, sampleSeconds, right);
            }
            // accuracy: the share of sampled answers the checker accepted (the reward without the length term)
            return new StepResult(b.loss, (double) right / Math.max(1, sampled), a.tokens + b.tokens, a.flop + b.flop,
                    (System.nanoTime() - t0) / 1e9, Math.max(a.loadSpread, b.loadSpread), b.lrFactor);
        }

        /**
         * The current weights as a checkpoint the inference path opens: the stage's files (config, tokenizer, copied
         * once per stage run: they do not change within a stage) with these weights (written every step).
         */
        void writePolicy(Path dir) throws IOException {
            if (!policyFilesCopied) {
                Files.createDirectories(dir);
                try (Stream<Path> files = Files.list(current)) {
                    for (Path p : (Iterable<Path>) files::iterator) {
                        String n = p.getFileName().toString();
                        if (Files.isRegularFile(p) && !n.equals("model.safetensors") && !n.equals(OPT) && !n.equals(STATE)) {
                            Files.copy(p, dir.resolve(n), StandardCopyOption.REPLACE_EXISTING);
                        }
                    }
                }
                policyFilesCopied = true;
            }
            writeModel(dir.resolve("model.safetensors"));
        }

        private boolean policyFilesCopied;

        /** The weights being trained (and those not trained, from the checkpoint), as F32 safetensors. */
        void writeModel(Path file) throws IOException {
            Map<String, TensorData> shapesFrom = SafeTensorsFile.open(current.resolve("model.safetensors")).tensors();
            SafeTensorsWriter w = new SafeTensorsWriter();
            for (var e : shapesFrom.entrySet()) {
                float[] v = params.get(e.getKey());
                w.f32(e.getKey(), v != null ? v : e.getValue().toFloats(), e.getValue().shape());
            }
            w.write(file);
        }

        StepResult step(int s, List<ExampleEncoder.Encoded> batch, TextGrad.Objective objective) {
            long t0 = System.nanoTime();
            // ---- batch: examples packed into one sequence, images in prompt order
            int T = 0;
            for (ExampleEncoder.Encoded e : batch) T += e.ids().length;
            int[] ids = new int[T], targets = new int[T], seg = new int[T];
            boolean[] isText = new boolean[T];
            List<PreprocessedImage> images = new ArrayList<>();
            long patches = 0, segSq = 0;
            for (int o = 0, i = 0; i < batch.size(); i++) {
                ExampleEncoder.Encoded e = batch.get(i);
                int n = e.ids().length;
                if (n > cfg.text().maxPositionEmbeddings()) {
                    throw new IllegalStateException("stage " + stage.name() + " step " + s + ": an example of " + n
                            + " tokens exceeds the context of " + cfg.text().maxPositionEmbeddings());
                }
                System.arraycopy(e.ids(), 0, ids, o, n);
                System.arraycopy(e.targets(), 0, targets, o, n);
                System.arraycopy(e.isText(), 0, isText, o, n);
                java.util.Arrays.fill(seg, o, o + n, o);
                images.addAll(e.images());
                for (PreprocessedImage p : e.images()) patches += p.patches();
                segSq += (long) n * n;
                o += n;
            }
            long tData = phase("packing", t0);
            // ---- forward and backward
            List<PreprocessedImage> encoded = new ArrayList<>(images);    // what the tower encodes: fewer where an RL step shares images
            float[] feats = images.isEmpty() ? new float[0]
                    : trainVisionSide || featureCache == null ? vg.forward(images) : frozenFeatures(images, encoded);
            long tVis = phase("vision forward", tData);
            float[] emb = tg.embed(ids, isText, feats);
            TextGrad.HiddenLoss bindLoss = null;
            if (binding != null) {      // the examples' labels packed as their tokens are (none: −1)
                int[] labels = new int[T];
                java.util.Arrays.fill(labels, -1);
                int o = 0;
                for (ExampleEncoder.Encoded e : batch) {
                    if (e.bindLabels() != null) System.arraycopy(e.bindLabels(), 0, labels, o, e.ids().length);
                    o += e.ids().length;
                }
                bindLoss = binding.loss(labels);
            }
            TextGrad.Result r = tg.lossAndGrads(emb, ids, isText, targets, seg, objective, bindLoss);
            if (!Double.isFinite(r.loss())) {
                throw new DivergedException("stage " + stage.name() + " step " + s + ": the loss is " + r.loss()
                        + "; the last good checkpoint is " + current + " (lower the learning rate and --resume)");
            }
            long tText = phase("text fwd + bwd", tVis);
            Map<String, float[]> grads = new LinkedHashMap<>(r.grads());
            Map<String, LabelScore> labelScores = new LinkedHashMap<>();
            if (binding != null) {
                grads.putAll(binding.weightedGrads());
                var b = binding.last();
                if (b.scored() > 0) labelScores.put(BIND, new LabelScore(b.loss(), b.accuracy(), Double.NaN));
            }
            if (trainVisionSide && !images.isEmpty()) {
                int D = cfg.text().hiddenSize();
                float[] dFeats = new float[feats.length];
                for (int t = 0, i = 0; t < T; t++) if (!isText[t]) System.arraycopy(r.dEmbeddings(), t * D, dFeats, D * i++, D);
                // the token-label heads keep the tokens' colour, place and shape plain while the language model's
                // gradient reshapes the tower (their loss is logged apart from the language model's)
                tokenLabelLosses(feats, images, batch.stream().flatMap(e -> e.sources().stream()).toList(), dFeats, grads, labelScores);
                grads.putAll(vg.backward(dFeats, stage.train().contains("vision")));
            }
            long tVisB = phase("vision backward", tText);
            update(s, grads);
            // ---- aux-loss-free balancing of the routed experts (only while the language model trains)
            double spread = balanceExperts(params, cfg.textPrefix(), r.expertLoad(), trainText);
            int scored = 0;
            for (ExampleEncoder.Encoded e : batch) scored += e.scored();
            long tEnd = System.nanoTime();
            if (Boolean.getBoolean("kimivl.trainProfile")) {
                err.printf(Locale.ROOT, "  profile: data %.2f s, vision fwd %.2f, text fwd+bwd %.2f, vision bwd %.2f, optimizer %.2f; T %d, patches %d%n",
                        (tData - t0) / 1e9, (tVis - tData) / 1e9, (tText - tVis) / 1e9, (tVisB - tText) / 1e9, (tEnd - tVisB) / 1e9, T, patches);
            }
            double flop = textFlopFactor * (activeTextParams(cfg) * T + attentionFlopPerPair(cfg) * segSq / 2)
                    + visionFlop(cfg, encoded, stage.train().contains("vision"), stage.train().contains("projector"));
            return new StepResult(r.loss(), (double) r.correct() / Math.max(1, scored), T, flop, (System.nanoTime() - t0) / 1e9, spread, stage.lrFactor(s),
                    Double.NaN, Double.NaN, labelScores);
        }

        /**
         * While an RL step runs, the frozen tower's features of the images it has encoded (its two updates see the same
         * k answers per prompt, hence the same images 2k times); null otherwise.
         */
        private Map<ImageKey, float[]> featureCache;

        /** A preprocessed image by content (pixels and grid), for {@link #frozenFeatures}. */
        private record ImageKey(int gridH, int gridW, float[] pixels, int hash) {
            static ImageKey of(PreprocessedImage p) {
                return new ImageKey(p.gridH(), p.gridW(), p.pixelValues(), 31 * (31 * p.gridH() + p.gridW()) + java.util.Arrays.hashCode(p.pixelValues()));
            }

            @Override public boolean equals(Object o) {
                return o instanceof ImageKey k && k.hash == hash && k.gridH == gridH && k.gridW == gridW && java.util.Arrays.equals(k.pixels, pixels);
            }

            @Override public int hashCode() { return hash; }
        }

        /**
         * The frozen tower's merged features [Σ tokens, D] of images, in order, during an RL step ({@link #featureCache}
         * set): each distinct image (by content) is encoded once, as the k sampled answers of a prompt share its image.
         * A tower's output for an image does not depend on the other images packed with it (block-diagonal attention,
         * row-wise products), so this gives the floats of {@code vg.forward(images)}. {@code encoded} is set to the
         * images actually encoded. Other steps' images are distinct, and they call {@code vg.forward} without hashing.
         */
        private float[] frozenFeatures(List<PreprocessedImage> images, List<PreprocessedImage> encoded) {
            int D = cfg.text().hiddenSize();
            ImageKey[] keys = new ImageKey[images.size()];
            Map<ImageKey, PreprocessedImage> todo = new java.util.LinkedHashMap<>();     // not yet encoded, in order
            for (int i = 0; i < keys.length; i++) {
                keys[i] = ImageKey.of(images.get(i));
                if (!featureCache.containsKey(keys[i])) todo.putIfAbsent(keys[i], images.get(i));
            }
            encoded.clear();
            if (!todo.isEmpty()) {
                float[] f = vg.forward(new ArrayList<>(todo.values()));
                int o = 0;
                for (var e : todo.entrySet()) {
                    int n = e.getValue().tokens() * D;
                    featureCache.put(e.getKey(), java.util.Arrays.copyOfRange(f, o, o + n));
                    o += n;
                    encoded.add(e.getValue());
                }
            }
            int total = 0;
            for (PreprocessedImage p : images) total += p.tokens() * D;
            float[] feats = new float[total];
            for (int i = 0, o = 0; i < keys.length; i++) {
                float[] f = featureCache.get(keys[i]);
                System.arraycopy(f, 0, feats, o, f.length);
                o += f.length;
            }
            return feats;
        }

        /** Global-norm clip over what trains, then the optimizers with the schedule's factor for step s. */
        void update(int s, Map<String, float[]> grads) {
            if (Boolean.getBoolean("kimivl.trainProfile")) {
                double vs = 0, ts = 0;
                for (var e : new java.util.TreeMap<>(grads).entrySet()) {
                    double q = 0;
                    for (float g : e.getValue()) q += (double) g * g;
                    if (e.getKey().startsWith(cfg.textPrefix())) ts += q; else vs += q;
                }
                err.printf(Locale.ROOT, "  grad norm: text %.3e, vision side %.3e%n", Math.sqrt(ts), Math.sqrt(vs));
            }
            long t = System.nanoTime();
            optimizerStep(params, grads, this::trains, muon, adam, (float) stage.lrFactor(s));
            phase("optimizer (clip, AdamW, Muon)", t);
        }

        void log(Recipe.Stage stage, int s, StepResult r, double avg, double gflops) {
            ObjectNode line = JSON.createObjectNode();
            line.put("stage", stage.name());
            line.put("kind", stage.kind());
            line.put("step", s);
            line.put("loss", r.loss);
            line.put("loss_avg", avg);
            line.put("token_accuracy", r.accuracy);
            line.put("lr_factor", r.lrFactor);
            line.put("tokens", r.tokens);
            line.put("tokens_per_s", r.tokens / r.seconds);
            line.put("gflop_per_s", gflops);
            line.put("gflop", r.flop / 1e9);                  // this step's counted FLOPs and its own time: StageThroughput
            line.put("step_s", r.seconds);
            line.put("expert_load_max_over_min", r.loadSpread);
            line.put("wall_s", wallSeconds);
            if (!Double.isNaN(r.siglipLoss)) {
                line.put("siglip_loss", r.siglipLoss);
                line.put("retrieval_accuracy", r.retrieval);
            }
            for (var e : r.tokenLabels.entrySet()) {
                String key = e.getKey().equals(BIND) ? e.getKey() : "token_" + e.getKey();
                line.put(key + "_loss", e.getValue().loss());
                line.put(key + "_accuracy", e.getValue().accuracy());
                if (!Double.isNaN(e.getValue().objectAccuracy())) line.put("token_" + e.getKey() + "_object_accuracy", e.getValue().objectAccuracy());
            }
            try {
                Files.writeString(out.resolve("train_log.jsonl"), JSON_LINE.writeValueAsString(line) + "\n",
                        StandardCharsets.UTF_8, StandardOpenOption.CREATE, StandardOpenOption.APPEND);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }

        /** Writes weights, optimizer states and the cursor to current/, atomically. */
        void checkpoint() throws IOException {
            Path tmp = out.resolve("current.tmp");
            deleteTree(tmp);
            Files.createDirectories(tmp);
            try (Stream<Path> files = Files.list(current)) {
                for (Path p : (Iterable<Path>) files::iterator) {
                    String n = p.getFileName().toString();
                    if (Files.isRegularFile(p) && !n.equals("model.safetensors") && !n.equals(OPT) && !n.equals(STATE)) {
                        Files.copy(p, tmp.resolve(n));
                    }
                }
            }
            writeModel(tmp.resolve("model.safetensors"));
            SafeTensorsWriter o = new SafeTensorsWriter();
            for (var e : muon.entrySet()) o.f32("muon." + e.getKey(), e.getValue().buffer(), e.getValue().buffer().length);
            int[] adamSteps = new int[adam.size()];
            int i = 0;
            for (var e : adam.entrySet()) {
                o.f32("adam_m." + e.getKey(), e.getValue().firstMoment(), e.getValue().firstMoment().length);
                o.f32("adam_v." + e.getKey(), e.getValue().secondMoment(), e.getValue().secondMoment().length);
                adamSteps[i++] = e.getValue().steps();
            }
            if (adamSteps.length > 0) o.i32("adam_steps", adamSteps, adamSteps.length);
            for (var e : params.entrySet()) if (isTower(e.getKey())) o.f32("param." + e.getKey(), e.getValue(), e.getValue().length);
            o.write(tmp.resolve(OPT));
            new State(k, step, fingerprint, wallSeconds, tokensSeen).save(tmp.resolve(STATE));
            swapInto(tmp, current);
        }

        void restoreOptimizers(Path file) {
            Map<String, TensorData> t = SafeTensorsFile.open(file).tensors();
            for (var e : muon.entrySet()) copyInto(t, "muon." + e.getKey(), e.getValue().buffer());
            int[] steps = t.containsKey("adam_steps") ? t.get("adam_steps").toInts() : new int[0];
            int i = 0;
            for (var e : adam.entrySet()) {
                copyInto(t, "adam_m." + e.getKey(), e.getValue().firstMoment());
                copyInto(t, "adam_v." + e.getKey(), e.getValue().secondMoment());
                e.getValue().restoreSteps(steps[i++]);
            }
            for (var e : params.entrySet()) if (isTower(e.getKey())) copyInto(t, "param." + e.getKey(), e.getValue());
        }
    }

    private static void copyInto(Map<String, TensorData> t, String name, float[] dst) {
        TensorData d = t.get(name);
        if (d == null) throw new IllegalStateException("optimizer state has no " + name);
        float[] v = d.toFloats();
        if (v.length != dst.length) throw new IllegalStateException("optimizer state " + name + " has " + v.length + " values, expected " + dst.length);
        System.arraycopy(v, 0, dst, 0, v.length);
    }

    /** A stage that changes the RoPE base or the context rewrites config.json before its first step. */
    private void applyStageConfig(Path current, Recipe.Stage stage) throws IOException {
        if (stage.ropeTheta() == null && stage.maxPositions() == null) return;
        ObjectNode root = (ObjectNode) JSON.readTree(current.resolve("config.json").toFile());
        ObjectNode text = (ObjectNode) root.get("text_config");
        if (stage.ropeTheta() != null) text.put("rope_theta", stage.ropeTheta());
        if (stage.maxPositions() != null) text.put("max_position_embeddings", stage.maxPositions());
        Path tmp = current.resolve("config.json.tmp");
        Files.writeString(tmp, JSON.writeValueAsString(root));
        Files.move(tmp, current.resolve("config.json"), StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    }

    // ================================================================================================ FLOP counts

    /** Multiply-adds per token of the language model's products (attention projections, FFN as routed, output head). */
    static double activeTextParams(ModelConfig cfg) {
        var c = cfg.text();
        int D = c.hiddenSize(), H = c.numHeads(), qh = c.qkNopeHeadDim() + c.qkRopeHeadDim();
        double attn = (double) D * H * qh + (double) D * (c.kvLoraRank() + c.qkRopeHeadDim())
                + (double) c.kvLoraRank() * H * (c.qkNopeHeadDim() + c.vHeadDim()) + (double) H * c.vHeadDim() * D;
        double total = (double) c.vocabSize() * D;
        for (int l = 0; l < c.numLayers(); l++) {
            total += attn;
            total += c.isMoeLayer(l)
                    ? 3.0 * D * c.moeIntermediateSize() * (c.numExpertsPerTok() + c.nSharedExperts()) + (double) D * c.nRoutedExperts()
                    : 3.0 * D * c.intermediateSize();
        }
        return total;
    }

    /** Multiply-adds per (query, key) pair of causal attention over all layers: q·k and p·v per head. */
    static double attentionFlopPerPair(ModelConfig cfg) {
        var c = cfg.text();
        return (double) c.numLayers() * c.numHeads() * (c.qkNopeHeadDim() + c.qkRopeHeadDim() + c.vHeadDim());
    }

    /**
     * FLOPs of a step's vision side over the images the tower encoded: 2 per multiply-add forward (patch embedding, the
     * blocks' products, the projector) plus MoonViT's attention within each image (q·k and p·v: 4·n²·d per layer for
     * an image of n patches), and backward twice the forward again through what trains (the tower's backward also
     * takes the projector's input gradient). A frozen tower runs forward only. The caption decoder, SigLIP, the scaffold
     * heads and the optimizers are not counted.
     */
    static double visionFlop(ModelConfig cfg, List<PreprocessedImage> images, boolean towerTrains, boolean projectorTrains) {
        var v = cfg.vision();
        double patches = 0, squares = 0;
        for (PreprocessedImage p : images) {
            patches += p.patches();
            squares += (double) p.patches() * p.patches();
        }
        double tower = towerTrains ? 6 : 2, projector = towerTrains ? 6 : projectorTrains ? 4 : 2;
        return tower * (visionParamsPerPatch(cfg) * patches + 2.0 * v.numLayers() * v.hiddenSize() * squares)
                + projector * projectorParamsPerToken(cfg) * (patches / 4.0);
    }

    static double visionParamsPerPatch(ModelConfig cfg) {
        var v = cfg.vision();
        double d = v.hiddenSize();
        return 14.0 * 14 * 3 * d + v.numLayers() * (4 * d * d + 2 * d * v.intermediateSize());
    }

    static double projectorParamsPerToken(ModelConfig cfg) {
        double sd = 4.0 * cfg.vision().hiddenSize();
        return sd * sd + sd * cfg.text().hiddenSize();
    }

    // ================================================================================================ files

    /** What a checkpoint folder's trainer_state.json holds: the next step to run is (stage, step + 1). */
    record State(int stage, int step, String fingerprint, double wallSeconds, double tokensSeen) {
        static State load(Path f) throws IOException {
            JsonNode n = JSON.readTree(f.toFile());
            return new State(n.get("stage").asInt(), n.get("step").asInt(), n.get("recipe_fingerprint").asText(),
                    n.path("wall_s").asDouble(), n.path("tokens_seen").asDouble());
        }

        void save(Path f) throws IOException {
            ObjectNode n = JSON.createObjectNode();
            n.put("stage", stage);
            n.put("step", step);
            n.put("recipe_fingerprint", fingerprint);
            n.put("wall_s", wallSeconds);
            n.put("tokens_seen", tokensSeen);
            Path tmp = f.resolveSibling(f.getFileName() + ".tmp");
            Files.writeString(tmp, JSON.writeValueAsString(n));
            Files.move(tmp, f, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        }
    }

    /** tmp → dst: the old dst is renamed to dst.old first and removed after, so some complete copy always exists. */
    static void swapInto(Path tmp, Path dst) throws IOException {
        Path old = dst.resolveSibling(dst.getFileName() + ".old");
        deleteTree(old);
        if (Files.exists(dst)) Files.move(dst, old, StandardCopyOption.ATOMIC_MOVE);
        Files.move(tmp, dst, StandardCopyOption.ATOMIC_MOVE);
        deleteTree(old);
    }

    /** A kill between the two renames of {@link #swapInto} leaves only dst.old: it is the last complete checkpoint. */
    static void recoverInterruptedSwap(Path dst) throws IOException {
        Path old = dst.resolveSibling(dst.getFileName() + ".old");
        if (!Files.exists(dst) && Files.exists(old)) Files.move(old, dst, StandardCopyOption.ATOMIC_MOVE);
        else if (Files.exists(dst) && Files.exists(old)) deleteTree(old);
    }

    /** The model files of a checkpoint folder (all but the optimizer state and the cursor) into {@code to}, created. */
    static void copyModelFiles(Path from, Path to) throws IOException {
        Files.createDirectories(to);
        try (Stream<Path> files = Files.list(from)) {
            for (Path p : (Iterable<Path>) files::iterator) {
                String n = p.getFileName().toString();
                if (Files.isRegularFile(p) && !n.equals(OPT) && !n.equals(STATE)) Files.copy(p, to.resolve(n));
            }
        }
    }

    /** The model files of a checkpoint (not its optimizer state) into dst, atomically. */
    static void copyModel(Path from, Path dst) throws IOException {
        Path tmp = dst.resolveSibling(dst.getFileName() + ".tmp");
        deleteTree(tmp);
        copyModelFiles(from, tmp);
        Files.createDirectories(dst.getParent());
        swapInto(tmp, dst);
    }

    static void copyFiles(Path from, Path to) throws IOException {
        Files.createDirectories(to);
        try (Stream<Path> files = Files.list(from)) {
            for (Path p : (Iterable<Path>) files::iterator) if (Files.isRegularFile(p)) Files.copy(p, to.resolve(p.getFileName()), StandardCopyOption.REPLACE_EXISTING);
        }
    }

    /** Deletes a folder and everything in it (nothing when it does not exist). */
    public static void deleteTree(Path p) throws IOException {
        if (!Files.exists(p)) return;
        try (Stream<Path> w = Files.walk(p)) {
            for (Path q : w.sorted(Comparator.reverseOrder()).toList()) Files.delete(q);
        }
    }

    private static String eta(double s) {
        if (!Double.isFinite(s)) return "?";
        long t = Math.round(s);
        return t >= 3600 ? String.format(Locale.ROOT, "%dh%02dm", t / 3600, t % 3600 / 60) : String.format(Locale.ROOT, "%dm%02ds", t / 60, t % 60);
    }
}
