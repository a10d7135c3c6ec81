package dev.kimivl.train.probe;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.kimivl.config.ModelConfig;
import dev.kimivl.io.SafetensorsCheckpoint;
import dev.kimivl.train.AdamW;
import dev.kimivl.train.BindingHead;
import dev.kimivl.train.Muon;
import dev.kimivl.train.TextGrad;
import dev.kimivl.train.data.Example;
import dev.kimivl.train.data.Palette;
import dev.kimivl.train.data.VisualWorld;
import dev.kimivl.train.recipe.ExampleEncoder;
import dev.kimivl.train.recipe.ModelSpec;
import dev.kimivl.train.recipe.RecipeTrainer;
import dev.kimivl.train.tokenizer.SpecialIds;
import dev.kimivl.train.tokenizer.TokenizerFiles;
import dev.kimivl.vision.PreprocessedImage;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeMap;

/**
 * Can a language model learn to find a named object among a frozen tower's image tokens and read its place, in a way
 * that carries to new images? Session 11's {@code RealFeatProbe} (TRAINING.md, runs F1-F4), kept here.
 *
 * <p>The tower and projector of a trained checkpoint encode {@code pool} {@code grounding} scenes and {@code heldout}
 * others (distinct seeds) once. Of each scene's questions the probe keeps those of one form ({@link Question}), each
 * its own one-question sequence through the checkpoint's chat template ({@link ExampleEncoder}). A FRESH language
 * model, initialised as a new run of the recipe would be ({@link ModelSpec#writeInitial}), learns the training
 * questions' answers (answer tokens and the closing {@code <|im_end|>} scored) by {@link TextGrad}, batch 16, Muon for
 * the 2-D hidden matrices and AdamW for the rest at a constant rate, the routing bias balanced as in a recipe run. Every
 * {@code every} steps it prints the training and held-out loss and accuracy.
 *
 * <p>Accuracy is per answer: the share of answers whose every scored token (the answer's tokens and its closing
 * {@code <|im_end|>}) gets probability &gt; 0.5 with the true answer before it (teacher forcing). A model that has
 * learnt the look-up scores high on held-out scenes; one that memorised the training images scores high on training
 * answers only.
 *
 * <p>Everything follows from the seed: the scenes, the initial weights and the order of the training questions, and
 * {@link TextGrad}'s multithreaded passes give the same numbers on every run.
 */
public final class BindingProbe {
    /** Muon's and AdamW's step sizes as the focused-lesson runs of session 11 used them. */
    public static final double DEFAULT_LR = 2e-3;
    /** p &gt; 0.5 for a token is −log p &lt; ln 2. */
    private static final double LOG2 = Math.log(2);

    private BindingProbe() {}

    /** The kinds of grounding scene the probe can draw (their names as recipe mix kinds). */
    public static final List<String> SCENES = VisualWorld.GROUNDING_TYPES;

    /** Which of a {@code grounding} scene's questions the probe keeps, and how it asks them. */
    public enum Question {
        /**
         * "Where is the red shape?" → "At the top left.": the colour alone names the object, the answer is its 3 × 3
         * region. Every "where" turn of a scene is asked this way ("Where is the red circle?" becomes "Where is the red
         * shape?"): a grounding scene's colours are distinct, so the colour names the object and the answer stays
         * true. Session 11's F1-F4 asked so (1,510 questions from 1,150 scenes); the scenes' own colour-alone turns
         * are only a third of their "where" turns.
         */
        WHERE_COLOUR("where-colour"),
        /** "Where is the red circle?" → "At the top left.": colour and shape name it (the scenes' own turns of this form). */
        WHERE("where"),
        /** "What is at the top left?" → "A red circle.": the region names it, the answer is the object. */
        WHAT("what"),
        /**
         * "Where is the red shape?" → "Red at the top left.": {@link #WHERE_COLOUR} with the colour said again first, so
         * the token that names the place comes right after the colour word: the language model can match the colour
         * word's own embedding against the image tokens (one look-up) instead of first carrying the question's colour
         * to the answer (two).
         */
        WHERE_ECHO("where-echo"),
        /**
         * "Where are the red, blue and green shapes?" → "Red at the top left, blue in the centre and green at the bottom
         * right.": every object of the scene with a clear place, one question per scene, each place right after its
         * colour word (as {@link #WHERE_ECHO}), the colours in the question's order.
         */
        WHERE_ALL("where-all");

        public final String flag;

        Question(String flag) { this.flag = flag; }

        /** The question to ask for a scene's turn {@code q}, or null when the turn is not of this form. */
        String ask(String q) {
            VisualWorld.GroundingForm f = VisualWorld.GroundingForm.of(q);
            boolean where = f != VisualWorld.GroundingForm.WHAT_IS_THERE;
            return switch (this) {
                case WHERE_COLOUR -> where ? "Where is the " + q.substring("Where is the ".length()).split(" ")[0] + " shape?" : null;
                case WHERE -> f == VisualWorld.GroundingForm.WHERE_NAMED ? q : null;
                case WHAT -> where ? null : q;
                case WHERE_ECHO -> WHERE_COLOUR.ask(q);
                case WHERE_ALL -> throw new IllegalStateException("where-all asks one question per scene: see sceneQuestion");
            };
        }

        /** The answer to teach for a turn kept by {@link #ask} whose scene answer is {@code answer}. */
        String answer(String q, String answer) {
            if (this != WHERE_ECHO) return answer;
            return Palette.capitalise(colourOf(q)) + " " + Palette.lowerFirst(answer);
        }

        /**
         * {@link #WHERE_ALL}'s one question about a scene's "where" turns, and its answer; null when it has none.
         * {question, answer}.
         */
        static String[] sceneQuestion(List<Example.Turn> turns) {
            List<String> colours = new ArrayList<>(), places = new ArrayList<>();
            for (Example.Turn t : turns) {
                if (WHERE_COLOUR.ask(t.question()) == null) continue;
                colours.add(colourOf(t.question()));
                String a = Palette.lowerFirst(t.answer());
                places.add(a.endsWith(".") ? a.substring(0, a.length() - 1) : a);
            }
            if (colours.isEmpty()) return null;
            String q = colours.size() == 1 ? "Where is the " + colours.getFirst() + " shape?"
                    : "Where are the " + list(colours) + " shapes?";
            List<String> said = new ArrayList<>();
            for (int i = 0; i < colours.size(); i++) said.add(colours.get(i) + " " + places.get(i));
            return new String[]{q, Palette.capitalise(list(said)) + "."};
        }

        /** "red" of "Where is the red circle?" (a grounding turn's wording). */
        static String colourOf(String q) {
            return q.substring("Where is the ".length()).split(" ")[0];
        }

        /** "a", "a and b", "a, b and c". */
        private static String list(List<String> xs) {
            if (xs.size() == 1) return xs.getFirst();
            return String.join(", ", xs.subList(0, xs.size() - 1)) + " and " + xs.getLast();
        }

        public static Question parse(String s) {
            for (Question q : values()) if (q.flag.equals(s)) return q;
            throw new IllegalArgumentException("question form '" + s + "' is not one of where-colour, where, what, where-echo, where-all");
        }
    }

    /**
     * @param recipe the recipe whose {@code model} section sizes (and initialises) the fresh language model
     * @param every  steps between progress lines (the last step always has one)
     * @param scenes which grounding scenes ({@link #SCENES}): "ground" ({@link VisualWorld#grounding}: 2-4 objects
     *               placed freely), "ground-grid" ({@link VisualWorld#groundingOnGrid}: each filling its own cell of
     *               the 3 × 3 grid) or "ground-one" ({@link VisualWorld#groundingAlone}: one object, nothing to bind)
     * @param idealTokens each image token replaced by the sum of fixed random vectors for its labels (colour, shape,
     *               6 × 6 cell: {@link #idealTokens}) instead of the tower's features: what the language model learns
     *               from tokens that carry exactly what the token-label heads are taught, with the real images'
     *               coverage (objects split over tokens, partly covering them)
     * @param alignColours with idealTokens: a token's colour vector is the fresh language model's own input embedding
     *               of the colour's word (scaled as the other vectors), so "red" in the question and a red image token
     *               start out alike; without, a random vector of its own
     * @param first  null, or a first lesson ({@link FirstLesson}) before the main pool
     * @param bindHead null, or a {@link BindingHead} trained with the language model
     * @param languageModel null: a fresh language model from the recipe's {@code model} section; else a checkpoint
     *               whose trained language model the probe starts from (e.g. a recipe stage's, to ask whether what it
     *               learnt before helps or hinders the look-up)
     */
    public record Settings(Path recipe, int steps, int pool, int heldout, VisualWorld.Options images, Question question, int every,
                           long seed, int batch, double lr, double adamLr, String scenes, boolean idealTokens, boolean alignColours,
                           FirstLesson first, BindingHead.Spec bindHead, Path languageModel) {
        /** Settings whose language model is a fresh one. */
        public Settings(Path recipe, int steps, int pool, int heldout, VisualWorld.Options images, Question question, int every,
                        long seed, int batch, double lr, double adamLr, String scenes, boolean idealTokens, boolean alignColours,
                        FirstLesson first, BindingHead.Spec bindHead) {
            this(recipe, steps, pool, heldout, images, question, every, seed, batch, lr, adamLr, scenes, idealTokens, alignColours, first, bindHead, null);
        }

        /** Settings without a first lesson or a binding head. */
        public Settings(Path recipe, int steps, int pool, int heldout, VisualWorld.Options images, Question question, int every,
                        long seed, int batch, double lr, double adamLr, String scenes, boolean idealTokens, boolean alignColours) {
            this(recipe, steps, pool, heldout, images, question, every, seed, batch, lr, adamLr, scenes, idealTokens, alignColours, null, null, null);
        }

        public Settings {
            if (bindHead != null && question == Question.WHAT) {
                throw new IllegalArgumentException("a binding head reads the place of a colour named in the question: not for 'what' questions");
            }
            if (steps < 1) throw new IllegalArgumentException("steps must be ≥ 1, got " + steps);
            if (pool < 1 || heldout < 1) throw new IllegalArgumentException("need ≥ 1 training and ≥ 1 held-out scene, got " + pool + " and " + heldout);
            if (every < 1) throw new IllegalArgumentException("every must be ≥ 1, got " + every);
            if (batch < 1) throw new IllegalArgumentException("batch must be ≥ 1, got " + batch);
            if (!(lr > 0) || !(adamLr > 0)) throw new IllegalArgumentException("learning rates must be > 0, got " + lr + " and " + adamLr);
            if (!SCENES.contains(scenes)) throw new IllegalArgumentException("scenes '" + scenes + "' is not one of " + SCENES);
            if (alignColours && !idealTokens) throw new IllegalArgumentException("aligned colours are a form of ideal tokens: set both");
        }

        /** Steps of the first lesson (0 without one). */
        int firstSteps() { return first == null ? 0 : first.steps(); }

        /** The first lesson's own settings: its scenes, question form and images (the main ones where it has none), no first lesson. */
        Settings firstLesson() {
            return new Settings(recipe, steps, pool, heldout, first.images() != null ? first.images() : images,
                    first.question() != null ? first.question() : question, every, seed, batch, lr, adamLr, first.scenes(), idealTokens,
                    alignColours, null, bindHead, languageModel);
        }
    }

    /**
     * A first lesson: the first {@code steps} steps draw their questions from {@code pool} scenes of the kind
     * {@code scenes} ({@link #SCENES}, other seeds than the main pool's), the rest from the main pool; the held-out
     * score is always the main kind's.
     *
     * @param question null, or the first lesson's own question form (else the main one)
     * @param images   null, or how the first lesson's images are drawn (else as the main pool's)
     */
    public record FirstLesson(String scenes, int steps, Question question, VisualWorld.Options images) {
        public FirstLesson {
            if (scenes == null || steps < 1) {
                throw new IllegalArgumentException("a first lesson needs both its scenes and a number of steps ≥ 1, got " + scenes + " for " + steps + " steps");
            }
            if (!SCENES.contains(scenes)) throw new IllegalArgumentException("first-lesson scenes '" + scenes + "' is not one of " + SCENES);
        }

        /** A first lesson that asks the main form on images drawn as the main pool's. */
        public FirstLesson(String scenes, int steps) { this(scenes, steps, null, null); }
    }

    /**
     * One progress line. Training numbers are over the batches since the previous line, each scored before its
     * update; held-out numbers over every held-out question after the step.
     */
    public record Report(int step, double trainLoss, double trainAccuracy, int trainAnswers, double heldoutLoss, double heldoutAccuracy,
                         double seconds, double bindAccuracy) {}

    /**
     * @param answers         distinct answers among the training questions
     * @param commonShare     the held-out share of the training questions' most common answer
     * @param chanceLoss      the loss per scored token of a model that ignores the image but knows the answers'
     *                        frequencies: H(answer) in nats over the mean scored tokens per answer (the rest of an
     *                        answer follows from its first words)
     */
    public record Summary(Settings settings, Path vision, int trainQuestions, int heldoutQuestions, int trainScenes, int heldoutScenes,
                          int answers, double commonShare, double chanceLoss, List<Report> reports, double seconds) {
        public Report last() { return reports.getLast(); }

        public Report bestHeldout() {
            return reports.stream().max(Comparator.comparingDouble(Report::heldoutAccuracy)).orElseThrow();
        }

        public String line() {
            Report l = last(), b = bestHeldout();
            return String.format(Locale.ROOT, "binding %s: %d steps on %d questions (%d scenes): held-out acc %.3f (best %.3f at step %d), "
                            + "loss %.3f; training acc %.3f, loss %.3f; chance acc 1/%d = %.3f (most common answer %.3f), loss %.3f; %.0f s",
                    settings.question().flag, l.step(), trainQuestions, trainScenes, l.heldoutAccuracy(), b.heldoutAccuracy(), b.step(),
                    l.heldoutLoss(), l.trainAccuracy(), l.trainLoss(), answers, 1.0 / answers, commonShare, chanceLoss, seconds);
        }

        public ObjectNode toJson() {
            ObjectNode o = new ObjectMapper().createObjectNode();
            o.put("probe", "binding");
            o.put("vision", vision.toString());
            o.put("recipe", settings.recipe().toString());
            o.put("question", settings.question().flag);
            o.put("steps", settings.steps());
            o.put("pool_scenes", settings.pool());
            o.put("heldout_scenes", settings.heldout());
            o.put("min_side", settings.images().minSide());
            o.put("max_side", settings.images().maxSide());
            o.put("easy_images", settings.images().easy());
            o.put("scenes", settings.scenes());
            if (settings.languageModel() != null) o.put("language_model", settings.languageModel().toString());
            o.put("ideal_tokens", settings.idealTokens());
            o.put("aligned_colours", settings.alignColours());
            if (settings.bindHead() != null) {
                o.put("binding_head_layer", settings.bindHead().layer());
                o.put("binding_head_weight", settings.bindHead().weight());
            }
            if (settings.first() != null) {
                o.put("first_lesson_scenes", settings.first().scenes());
                o.put("first_lesson_steps", settings.first().steps());
                o.put("first_lesson_question", settings.firstLesson().question().flag);
                o.put("first_lesson_min_side", settings.firstLesson().images().minSide());
                o.put("first_lesson_max_side", settings.firstLesson().images().maxSide());
            }
            o.put("seed", settings.seed());
            o.put("batch", settings.batch());
            o.put("lr", settings.lr());
            o.put("adam_lr", settings.adamLr());
            o.put("train_questions", trainQuestions);
            o.put("heldout_questions", heldoutQuestions);
            o.put("train_scenes_with_questions", trainScenes);
            o.put("heldout_scenes_with_questions", heldoutScenes);
            o.put("accuracy_definition", "share of answers whose every scored token (answer and closing <|im_end|>) has p > 0.5, teacher-forced");
            o.put("distinct_answers", answers);
            o.put("chance_accuracy_uniform", 1.0 / answers);
            o.put("chance_accuracy_most_common_answer", commonShare);
            o.put("chance_loss", chanceLoss);
            o.put("seconds", seconds);
            ArrayNode a = o.putArray("reports");
            for (Report r : reports) {
                ObjectNode x = a.addObject();
                x.put("step", r.step());
                x.put("train_loss", r.trainLoss());
                x.put("train_accuracy", r.trainAccuracy());
                x.put("train_answers", r.trainAnswers());
                x.put("heldout_loss", r.heldoutLoss());
                x.put("heldout_accuracy", r.heldoutAccuracy());
                x.put("seconds", r.seconds());
                if (!Double.isNaN(r.bindAccuracy())) x.put("binding_head_heldout_accuracy", r.bindAccuracy());
            }
            return o;
        }
    }

    /**
     * One question about one scene, encoded; its image's features are the scene's. bindPos: the positions of the
     * question's colour words; bindLabel: the region of each one's object ({@link VisualWorld#REGIONS}), what a
     * {@link BindingHead} is asked.
     */
    record Item(int scene, int[] ids, int[] targets, boolean[] isText, String answer, int[] bindPos, int[] bindLabel) {}

    /**
     * The scene seeds of set {@code set} (0: training, 1: held-out): disjoint ranges below one 64-bit base per probe
     * seed, so the two sets never share a scene.
     */
    static long[] seeds(long seed, int set, int n) {
        long base = seed * 0x1_0000_0000L + set * 0x8000_0000L;
        long[] s = new long[n];
        for (int i = 0; i < n; i++) s[i] = base + i;
        return s;
    }

    /** Runs the probe, printing progress to {@code out}; returns every report. */
    public static Summary run(FrozenVision v, Settings s, PrintStream out) throws IOException {
        long t0 = System.nanoTime();
        ModelSpec spec = dev.kimivl.train.recipe.Recipe.load(s.recipe()).model();
        TextGrad tg = s.languageModel() == null ? freshLanguageModel(v, spec, s.seed()) : trainedLanguageModel(v, s.languageModel());
        VisualWorld world = new VisualWorld(s.images());
        List<float[]> trainFeats = new ArrayList<>(), heldFeats = new ArrayList<>();
        float[][] colours = s.alignColours() ? colourWords(tg, v) : null;
        List<Item> train = questions(v, world, seeds(s.seed(), 0, s.pool()), s, colours, trainFeats);
        List<Item> held = questions(v, world, seeds(s.seed(), 1, s.heldout()), s, colours, heldFeats);
        List<float[]> warmFeats = new ArrayList<>();
        List<Item> warm = s.first() == null ? List.of()
                : questions(v, new VisualWorld(s.firstLesson().images()), seeds(s.seed(), 2, s.pool()), s.firstLesson(), colours, warmFeats);
        if (train.isEmpty() || held.isEmpty()) {
            throw new IllegalArgumentException("the " + s.pool() + " training and " + s.heldout() + " held-out scenes hold " + train.size() + " and "
                    + held.size() + " '" + s.question().flag + "' questions: take more scenes");
        }
        // chance: an image-blind model that knows the answers' frequencies
        Map<String, Integer> freq = new TreeMap<>();
        long scoredTokens = 0;
        for (Item it : train) {
            freq.merge(it.answer(), 1, Integer::sum);
            for (int t : it.targets()) if (t != -100) scoredTokens++;
        }
        double entropy = 0;
        for (int c : freq.values()) entropy -= (double) c / train.size() * Math.log((double) c / train.size());
        String common = freq.entrySet().stream().max(Map.Entry.comparingByValue()).orElseThrow().getKey();
        double commonShare = held.stream().filter(it -> it.answer().equals(common)).count() / (double) held.size();
        double chanceLoss = entropy / ((double) scoredTokens / train.size());
        out.printf(Locale.ROOT, "binding probe: %s on %s%n",
                s.languageModel() == null ? String.format(Locale.ROOT, "a fresh %d-layer language model (hidden %d, %s)", spec.layers(), spec.hidden(), s.recipe())
                        : "the trained language model of " + s.languageModel(), s.idealTokens() ? "ideal image tokens (fixed vectors of each token's colour, shape and cell labels"
                        + (s.alignColours() ? "; a colour's vector is its word's input embedding)" : ")")
                        : "the frozen image tokens of " + v.dir);
        out.printf(Locale.ROOT, "  '%s' questions: %d from %d training scenes, %d from %d held-out scenes%s; images %s; %d distinct answers, "
                        + "e.g. \"%s\"; %.1f s to render and encode%n",
                s.question().flag, train.size(), countScenes(train), held.size(), countScenes(held),
                s.scenes().equals("ground") ? "" : " (" + s.scenes() + ")", TokenProbe.describe(s.images()),
                freq.size(), common, (System.nanoTime() - t0) / 1e9);
        out.printf(Locale.ROOT, "  batch %d, Muon %.1e (2-D hidden matrices) and AdamW %.1e (the rest), constant; seed %d%n",
                s.batch(), s.lr(), s.adamLr(), s.seed());
        if (!warm.isEmpty()) {
            out.printf(Locale.ROOT, "  first lesson: steps 1-%d on %d '%s' questions from %d %s scenes%s%n", s.first().steps(), warm.size(),
                    s.firstLesson().question().flag, countScenes(warm), s.first().scenes(),
                    s.first().images() == null ? "" : ", images " + TokenProbe.describe(s.first().images()));
        }
        out.println("  acc = share of answers whose every token (and the closing <|im_end|>) gets p > 0.5, teacher-forced;"
                + " train = the batches since the last line, before each update");
        out.printf(Locale.ROOT, "  chance: acc 1/%d = %.3f (the most common answer, \"%s\", is %.3f of the held-out ones), loss %.3f%n",
                freq.size(), 1.0 / freq.size(), common, commonShare, chanceLoss);

        Optimizers opt = new Optimizers(tg, s.lr(), s.adamLr());
        Binder binder = s.bindHead() == null ? null : new Binder(s.bindHead(), spec.hidden(), s.adamLr(), s.seed());
        if (binder != null) {
            out.printf(Locale.ROOT, "  binding head: the residual stream after layer %d names each question colour word's 3 × 3 region, weight %.2f (bind = its accuracy)%n",
                    s.bindHead().layer(), s.bindHead().weight());
        }
        SplittableRandom order = new SplittableRandom(s.seed() ^ 0x6A09E667F3BCC909L);
        Pool main = new Pool(train, trainFeats), first = new Pool(warm, warmFeats);
        List<Report> reports = new ArrayList<>();
        double lossSum = 0;
        int lossSteps = 0, answers = 0, right = 0;
        long tRun = System.nanoTime();
        for (int step = 1; step <= s.steps(); step++) {
            Pool pool = step <= s.firstSteps() ? first : main;
            List<Item> batch = pool.batch(s.batch(), order);
            Scored sc = score(tg, batch, pool.feats, binder);
            lossSum += sc.result.loss();
            lossSteps++;
            answers += batch.size();
            right += sc.right;
            opt.step(sc.result);
            if (binder != null) binder.step();
            if (step % s.every() == 0 || step == s.steps()) {
                double[] h = heldout(tg, held, heldFeats, s.batch(), binder);
                Report r = new Report(step, lossSum / lossSteps, (double) right / answers, answers, h[0], h[1], (System.nanoTime() - tRun) / 1e9, h[2]);
                reports.add(r);
                out.printf(Locale.ROOT, "step %5d  train loss %.4f acc %.3f (%d answers)  held-out loss %.4f acc %.3f (%d answers)%s  %.0f s%n",
                        step, r.trainLoss(), r.trainAccuracy(), r.trainAnswers(), r.heldoutLoss(), r.heldoutAccuracy(), held.size(),
                        Double.isNaN(r.bindAccuracy()) ? "" : String.format(Locale.ROOT, " bind %.3f", r.bindAccuracy()), r.seconds());
                out.flush();
                lossSum = 0;
                lossSteps = answers = right = 0;
            }
        }
        Summary sum = new Summary(s, v.dir, train.size(), held.size(), countScenes(train), countScenes(held), freq.size(), commonShare,
                chanceLoss, List.copyOf(reports), (System.nanoTime() - t0) / 1e9);
        out.println(sum.line());
        return sum;
    }

    /** Training questions and their scenes' features, drawn in epochs, each in a fresh order. */
    private static final class Pool {
        final List<Item> items;
        final List<float[]> feats;
        final int[] perm;
        int next;

        Pool(List<Item> items, List<float[]> feats) {
            this.items = items;
            this.feats = feats;
            perm = new int[items.size()];
            next = perm.length;
        }

        List<Item> batch(int size, SplittableRandom order) {
            List<Item> batch = new ArrayList<>(size);
            for (int b = 0; b < size; b++) {
                if (next == perm.length) {                 // a new epoch: the training questions in a fresh order
                    for (int i = 0; i < perm.length; i++) perm[i] = i;
                    for (int i = perm.length - 1; i > 0; i--) { int j = order.nextInt(i + 1), t = perm[i]; perm[i] = perm[j]; perm[j] = t; }
                    next = 0;
                }
                batch.add(items.get(perm[next++]));
            }
            return batch;
        }
    }

    private static int countScenes(List<Item> items) {
        return (int) items.stream().mapToInt(Item::scene).distinct().count();
    }

    /**
     * The language model a new run of {@code spec} starts from, with the checkpoint's tokenizer: the recipe's own
     * initialisation ({@link ModelSpec#writeInitial}) into a scratch folder, read back. Only its language model is
     * used; the image tokens come from the frozen tower.
     */
    /** The language model of a checkpoint, refused unless it reads the tower's tokens and the tokenizer's ids. */
    static TextGrad trainedLanguageModel(FrozenVision v, Path dir) throws IOException {
        ModelConfig cfg = ModelConfig.load(dir);
        if (cfg.text().hiddenSize() != v.hidden() || cfg.text().vocabSize() != v.config.text().vocabSize()
                || cfg.mediaPlaceholderTokenId() != v.config.mediaPlaceholderTokenId()) {
            throw new IllegalArgumentException(dir + ": its language model (hidden " + cfg.text().hiddenSize() + ", vocabulary " + cfg.text().vocabSize()
                    + ") does not read the tokens of " + v.dir + " (hidden " + v.hidden() + ", vocabulary " + v.config.text().vocabSize() + ")");
        }
        try (SafetensorsCheckpoint ck = SafetensorsCheckpoint.open(dir)) {
            return new TextGrad(ck, cfg.text(), cfg.textPrefix());
        }
    }

    static TextGrad freshLanguageModel(FrozenVision v, ModelSpec spec, long seed) throws IOException {
        if (spec.hidden() != v.hidden()) {
            throw new IllegalArgumentException("the recipe's language model has hidden size " + spec.hidden() + ", but " + v.dir
                    + "'s projector gives image tokens of width " + v.hidden());
        }
        Path ranks = v.dir.resolve("tiktoken.model");
        if (!Files.isRegularFile(ranks)) throw new IllegalArgumentException(v.dir + " has no tiktoken.model: the probe needs the checkpoint's own tokenizer");
        int numRanks = TokenizerFiles.ranksIn(v.dir);
        SpecialIds ids = TokenizerFiles.layout(numRanks, v.config.text().vocabSize());
        if (ids.mediaPlaceholder() != v.config.mediaPlaceholderTokenId()) {
            throw new IllegalArgumentException(v.dir + ": media_placeholder_token_id " + v.config.mediaPlaceholderTokenId() + " is not where a trained tokenizer of "
                    + numRanks + " ranks puts it (" + ids.mediaPlaceholder() + "): not a checkpoint of this trainer");
        }
        Path tmp = Files.createTempDirectory("kimivl-probe-init-");
        try {
            spec.writeInitial(tmp, ids, seed);
            ModelConfig cfg = ModelConfig.load(tmp);
            try (SafetensorsCheckpoint ck = SafetensorsCheckpoint.open(tmp)) {
                return new TextGrad(ck, cfg.text(), cfg.textPrefix());
            }
        } finally {
            RecipeTrainer.deleteTree(tmp);
        }
    }

    /**
     * The questions of the chosen form in the scenes of the seeds, each its own one-question example; the features
     * of the scenes that have any are appended to {@code feats} (the items' scene indices point into it).
     */
    static List<Item> questions(FrozenVision v, VisualWorld world, long[] seeds, Settings s, float[][] colours, List<float[]> feats) {
        Question form = s.question();
        List<Item> items = new ArrayList<>();
        List<PreprocessedImage> pending = new ArrayList<>();
        List<java.awt.image.BufferedImage> sources = new ArrayList<>();
        List<Example> scenes = List.of();
        for (int i = 0; i < seeds.length; i++) {
            if (i % RENDER_CHUNK == 0) scenes = render(world, seeds, i, Math.min(seeds.length, i + RENDER_CHUNK), s.scenes());
            Example ex = scenes.get(i % RENDER_CHUNK);
            List<Example.Turn> turns = new ArrayList<>();
            turns.add(new Example.Turn(ex.question(), ex.answer()));
            turns.addAll(ex.followUps());
            List<Example.Turn> sceneTurns = turns;
            if (form == Question.WHERE_ALL) {
                String[] qa = Question.sceneQuestion(turns);
                turns = qa == null ? List.of() : List.of(new Example.Turn(qa[0], qa[1]));
            }
            PreprocessedImage image = null;
            for (Example.Turn t : turns) {
                String q = form == Question.WHERE_ALL ? t.question() : form.ask(t.question());
                if (q == null) continue;
                String answer = form.answer(t.question(), t.answer());
                ExampleEncoder.Encoded e = v.encoder.encode(new Example(ex.type(), ex.images(), q, answer, null), false);
                int[][] bind = form == Question.WHAT ? new int[2][0] : colourWordPlaces(v, e.ids(), sceneTurns, form == Question.WHERE_ALL ? null : t);
                if (image == null) {
                    image = e.images().getFirst();
                    pending.add(image);
                    sources.add(ex.images().getFirst());
                }
                items.add(new Item(feats.size() + pending.size() - 1, e.ids(), e.targets(), e.isText(), answer, bind[0], bind[1]));
            }
            if (pending.size() == 16 || (i == seeds.length - 1 && !pending.isEmpty())) {   // the pixels are not kept
                if (s.idealTokens()) {
                    for (int k = 0; k < pending.size(); k++) feats.add(idealTokens(pending.get(k), sources.get(k), v.preprocessorConfig, v.hidden(), s.seed(), colours));
                } else {
                    feats.addAll(v.features(pending));
                }
                pending.clear();
                sources.clear();
            }
        }
        return items;
    }

    /**
     * {positions, regions} of the colour words in a question's tokens: for {@code turn} alone (its colour and its
     * answer's region), or with {@code turn} null for every "where" turn of the scene ({@link Question#WHERE_ALL}).
     * A colour word is its last token in the text after the image (" red" inside a question); the first match is taken.
     */
    static int[][] colourWordPlaces(FrozenVision v, int[] ids, List<Example.Turn> turns, Example.Turn turn) {
        int start = 0;
        for (int t = 0; t < ids.length; t++) if (ids[t] == v.config.mediaPlaceholderTokenId()) start = t + 1;
        List<Integer> pos = new ArrayList<>(), label = new ArrayList<>();
        for (Example.Turn t : turn != null ? List.of(turn) : turns) {
            if (Question.WHERE_COLOUR.ask(t.question()) == null) continue;
            String colour = Question.colourOf(t.question());
            String a = t.answer().endsWith(".") ? t.answer().substring(0, t.answer().length() - 1) : t.answer();
            int region = VisualWorld.REGIONS.indexOf(Palette.lowerFirst(a));
            if (region < 0) throw new IllegalStateException("'" + t.answer() + "' is not one of the regions " + VisualWorld.REGIONS);
            int[] word = v.tokenizer.encode(" " + colour);
            int tok = word[word.length - 1], at = -1;
            for (int k = start; k < ids.length && at < 0; k++) if (ids[k] == tok) at = k;
            if (at < 0) throw new IllegalStateException("the colour word '" + colour + "' is not among the question's tokens");
            pos.add(at);
            label.add(region);
        }
        return new int[][]{pos.stream().mapToInt(Integer::intValue).toArray(), label.stream().mapToInt(Integer::intValue).toArray()};
    }

    /**
     * [tokens, dim] one image's ideal tokens: per merged token E_colour[c] + E_shape[s] + E_cell[p] over its
     * {@link dev.kimivl.train.data.TokenColours}, {@link dev.kimivl.train.data.TokenShapes} and
     * {@link dev.kimivl.train.data.TokenPlaces} labels, each table N(0, 1/3) per component from the seed (so a token
     * has about unit RMS), the same tables for every image. Session 11's oracle tokens, with the real images' labels.
     * {@code colours}: null, or the colour table to use instead of a random one (rows in {@code TokenColours} order).
     */
    static float[] idealTokens(PreprocessedImage im, java.awt.image.BufferedImage source, dev.kimivl.config.PreprocessorConfig pc, int dim, long seed,
                               float[][] colours) {
        int[] colour = dev.kimivl.train.data.TokenColours.of(im, pc), shape = dev.kimivl.train.data.TokenShapes.of(im, source),
                cell = dev.kimivl.train.data.TokenPlaces.of(im);
        float[][] cTable = colours != null ? colours : table(dev.kimivl.train.data.TokenColours.CLASSES, dim, seed ^ 0xC010L),
                sTable = table(dev.kimivl.train.data.TokenShapes.CLASSES, dim, seed ^ 0x5A4EL),
                pTable = table(dev.kimivl.train.data.TokenPlaces.CLASSES, dim, seed ^ 0x91ACEL);
        float[] out = new float[colour.length * dim];
        for (int t = 0; t < colour.length; t++) {
            int sh = shape[t] < 0 ? dev.kimivl.train.data.TokenShapes.NONE : shape[t];
            for (int d = 0; d < dim; d++) out[t * dim + d] = cTable[colour[t]][d] + sTable[sh][d] + pTable[cell[t]][d];
        }
        return out;
    }

    /**
     * The colour table of aligned ideal tokens: for each palette colour the language model's input embedding of the
     * first token of " red" (as the word appears inside a question), scaled to RMS 1/√3 per component like the random
     * tables; the "none" row random.
     */
    static float[][] colourWords(TextGrad tg, FrozenVision v) {
        int dim = v.hidden();
        float[] embed = tg.parameters().entrySet().stream().filter(e -> e.getKey().endsWith("model.embed_tokens.weight")).findFirst()
                .orElseThrow(() -> new IllegalStateException("the language model has no embed_tokens")).getValue();
        List<String> names = dev.kimivl.train.data.TokenColours.names();
        float[][] t = table(dev.kimivl.train.data.TokenColours.CLASSES, dim, 0xC010L);
        for (int c = 0; c < names.size(); c++) {
            int id = v.tokenizer.encode(" " + names.get(c))[0];
            double sq = 0;
            for (int d = 0; d < dim; d++) sq += (double) embed[id * dim + d] * embed[id * dim + d];
            double scale = 1 / Math.sqrt(3) / Math.sqrt(sq / dim);
            for (int d = 0; d < dim; d++) t[c][d] = (float) (embed[id * dim + d] * scale);
        }
        return t;
    }

    private static float[][] table(int rows, int dim, long seed) {
        java.util.SplittableRandom r = new java.util.SplittableRandom(seed);
        float[][] t = new float[rows][dim];
        for (float[] row : t) for (int d = 0; d < dim; d++) row[d] = (float) (dev.kimivl.train.Init.standardNormal(r) / Math.sqrt(3));
        return t;
    }

    /** Scenes drawn at a time, on every core (drawing is most of the set-up: ~0.1 CPU-s a scene). */
    static final int RENDER_CHUNK = 64;

    /**
     * The grounding scenes of a kind ({@link #SCENES}) of seeds[from, to), drawn in parallel; each depends on its seed
     * alone, so the order and result are fixed.
     */
    static List<Example> render(VisualWorld world, long[] seeds, int from, int to, String kind) {
        java.util.function.LongFunction<Example> draw = switch (kind) {
            case "ground-grid" -> world::groundingOnGrid;
            case "ground-one" -> world::groundingAlone;
            default -> world::grounding;
        };
        return java.util.Arrays.stream(seeds, from, to).parallel().mapToObj(draw).toList();
    }

    /**
     * A pass over some items packed into one row, how many of them were answered (every token p &gt; 0.5), and how
     * many colour words the binding head named the region of, of how many (0 of 0 without a head).
     */
    private record Scored(TextGrad.Result result, int right, int bindRight, int bindScored) {}

    /** A {@link BindingHead} trained beside the fresh language model, with its own AdamW. */
    static final class Binder {
        final BindingHead head;
        private final Map<String, AdamW> adam = new LinkedHashMap<>();

        Binder(BindingHead.Spec cfg, int dim, double lr, long seed) {
            this.head = new BindingHead(cfg, dim, seed ^ 0xB14DL);
            for (var e : head.parameters().entrySet()) {
                adam.put(e.getKey(), new AdamW(e.getValue().length, (float) lr, 0.9f, 0.95f, 1e-8f, e.getKey().endsWith(".bias") ? 0f : 0.01f));
            }
        }

        /** AdamW on the head with the last pass's gradients, weighted as its loss is. */
        void step() {
            Map<String, float[]> g = head.weightedGrads();
            for (var e : head.parameters().entrySet()) adam.get(e.getKey()).step(e.getValue(), g.get(e.getKey()));
        }
    }

    private static Scored score(TextGrad tg, List<Item> items, List<float[]> feats) {
        return score(tg, items, feats, null);
    }

    private static Scored score(TextGrad tg, List<Item> items, List<float[]> feats, Binder binder) {
        int T = 0, F = 0;
        for (Item it : items) { T += it.ids().length; F += feats.get(it.scene()).length; }
        int[] ids = new int[T], targets = new int[T], seg = new int[T];
        boolean[] isText = new boolean[T];
        float[] image = new float[F];                      // [image tokens of the row, D] in order
        int o = 0, f = 0;
        for (Item it : items) {
            int n = it.ids().length;
            System.arraycopy(it.ids(), 0, ids, o, n);
            System.arraycopy(it.targets(), 0, targets, o, n);
            System.arraycopy(it.isText(), 0, isText, o, n);
            java.util.Arrays.fill(seg, o, o + n, o);
            float[] x = feats.get(it.scene());
            System.arraycopy(x, 0, image, f, x.length);
            f += x.length;
            o += n;
        }
        TextGrad.HiddenLoss hidden = null;
        if (binder != null) {
            int[] labels = new int[T];
            java.util.Arrays.fill(labels, -1);
            o = 0;
            for (Item it : items) {
                for (int k = 0; k < it.bindPos().length; k++) labels[o + it.bindPos()[k]] = it.bindLabel()[k];
                o += it.ids().length;
            }
            hidden = binder.head.loss(labels);
        }
        TextGrad.Result r = tg.lossAndGrads(tg.embed(ids, isText, image), ids, isText, targets, seg, TextGrad.Objective.MEAN_CROSS_ENTROPY, hidden);
        int right = 0;
        o = 0;
        for (Item it : items) {
            boolean ok = true;
            for (int t = o; t < o + it.ids().length; t++) if (targets[t] != -100 && !(r.tokenLoss()[t] < LOG2)) ok = false;
            if (ok) right++;
            o += it.ids().length;
        }
        if (binder == null || binder.head.last().scored() == 0) return new Scored(r, right, 0, 0);
        var last = binder.head.last();
        return new Scored(r, right, (int) Math.round(last.accuracy() * last.scored()), last.scored());
    }

    /**
     * {loss per scored token, accuracy, the binding head's accuracy (NaN without one)} over every held-out item, in
     * packed rows of {@code batch}.
     */
    private static double[] heldout(TextGrad tg, List<Item> held, List<float[]> feats, int batch, Binder binder) {
        double loss = 0;
        long tokens = 0;
        int right = 0, bindRight = 0, bindScored = 0;
        for (int i = 0; i < held.size(); i += batch) {
            Scored sc = score(tg, held.subList(i, Math.min(held.size(), i + batch)), feats, binder);
            bindRight += sc.bindRight;
            bindScored += sc.bindScored;
            double[] tl = sc.result.tokenLoss();
            for (double x : tl) loss += x;               // 0 at unscored positions
            for (Item it : held.subList(i, Math.min(held.size(), i + batch))) for (int t : it.targets()) if (t != -100) tokens++;
            right += sc.right;
        }
        return new double[]{loss / tokens, (double) right / held.size(), bindScored == 0 ? Double.NaN : (double) bindRight / bindScored};
    }

    /**
     * A recipe stage's optimizers for a language model that trains alone: Muon for the 2-D hidden matrices
     * ({@link Muon#takesLanguageModelTensor}), AdamW (β 0.9/0.95, decay 0.01 on matrices, none on vectors) for the
     * embeddings, output head, router and norms; the global gradient norm clipped to 1 (summed in name order); the
     * routing bias moved by the aux-loss-free rule, not by a gradient (it has none).
     */
    static final class Optimizers {
        private final Map<String, float[]> params;
        private final Map<String, Muon> muon = new LinkedHashMap<>();
        private final Map<String, AdamW> adam = new LinkedHashMap<>();
        /** The language model's tensor-name prefix ("language_model."), as the routing biases' names carry it. */
        private String prefix = "";

        Optimizers(TextGrad tg, double lr, double adamLr) {
            this.params = tg.parameters();
            for (var e : params.entrySet()) {
                String n = e.getKey();
                if (n.endsWith("e_score_correction_bias")) {       // moved by the load rule, not by a gradient
                    prefix = n.substring(0, n.indexOf("model.layers."));
                    continue;
                }
                long[] s = tg.shape(n);
                if (Muon.takesLanguageModelTensor(n, s)) muon.put(n, new Muon((int) s[0], (int) s[1], (float) lr, 0.01f));
                else adam.put(n, new AdamW(e.getValue().length, (float) adamLr, 0.9f, 0.95f, 1e-8f, s.length == 1 ? 0f : 0.01f));
            }
        }

        /** The recipe's own optimizer step (clip, AdamW, Muon) and aux-loss-free balancing, at the constant rate. */
        void step(TextGrad.Result r) {
            RecipeTrainer.optimizerStep(params, r.grads(), n -> muon.containsKey(n) || adam.containsKey(n), muon, adam, 1f);
            RecipeTrainer.balanceExperts(params, prefix, r.expertLoad(), true);
        }
    }
}
