package dev.kimivl.train.recipe;

import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.kimivl.tensor.Gemm;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A training recipe: one JSON file naming the model's sizes, the tokenizer and the stages in order, as the Kimi-VL
 * paper runs them (see {@code recipes/*.json} and the README's Training section). Every stage trains the checkpoint
 * the previous one wrote, unless it names another with {@code from} (a branch).
 *
 * @param seed      the seed of everything: initial weights, every example (example b of step s of a stage is drawn
 *                  from a seed derived from (seed, {@link #depth}, s, b)), so a run is reproducible and resumable exactly
 * @param outputs   model folders to publish: output name → the stage whose checkpoint it is
 * @param tokenizer BPE ranks to train (the vocabulary is ranks + Kimi's specials) and how many synthetic examples
 *                  make its corpus
 * @param products  the precision of every training product on the packed GEMM: f32 (null: the default; the gradient
 *                  goldens' floats) or bf16 (operands rounded to bf16, f32 products and sums: twice the multiply-adds
 *                  per instruction where the CPU has AVX512-BF16, f32 elsewhere; {@link Gemm.Products})
 */
public record Recipe(String name, long seed, ModelSpec model, TokenizerSpec tokenizer, List<Stage> stages, Map<String, String> outputs,
                     String products) {

    /** {@link #products} as the GEMM's choice (F32 when unset). */
    public Gemm.Products gemmProducts() {
        return products == null || products.equals("f32") ? Gemm.Products.F32 : Gemm.Products.BF16;
    }

    public record TokenizerSpec(int ranks, int corpusExamples) {}

    /**
     * One stage.
     *
     * @param kind      pretrain-vit | alignment | joint | cooldown | long-context | sft | long-cot-sft | rl:
     *                  what the paper calls it (the log and model card use it); the other fields say what it does.
     *                  pretrain-vit trains the vision side alone, CoCa-style as Kimi-VL's first stage:
     *                  L = L_siglip + 2·L_caption, SigLIP's contrastive loss between each image and its answer text
     *                  ({@link dev.kimivl.train.SigLip}) and a small caption decoder's loss
     *                  ({@link dev.kimivl.train.CaptionDecoder}); the language model does not run
     * @param steps     optimizer steps
     * @param batch     examples per step (packed into one sequence, no padding)
     * @param lr        peak learning rate of Muon (2-D hidden matrices of the language model)
     * @param adamLr    peak learning rate of AdamW (embeddings, output head, norms, router, biases)
     * @param visionLr  peak learning rate of the vision tower and projector (AdamW)
     * @param warmup    linear warm-up steps
     * @param schedule  cosine | constant | linear (decay to {@code minLrRatio} of the peak after warm-up)
     * @param train     which parts train: any of text, vision, projector
     * @param mix       relative weights of the example kinds ({@link ExampleSource#KINDS}: vqa, object, ground, text,
     *                  reasoning, needle, repeat, passkey-sweep, …)
     * @param thinking  answers carry their reasoning in ◁think▷…◁/think▷ (the Thinking model's format)
     * @param ropeTheta RoPE base from this stage on (long-context activation raises it), null: unchanged
     * @param maxPositions context length from this stage on, null: unchanged
     * @param needleChars length of the needle task's filler text in characters
     * @param vqaTypes  the VQA question types this stage draws (null: all), e.g. a curriculum's first stage
     * @param easyImages plain backgrounds and larger objects ({@code VisualWorld.Options#easy}): a curriculum's start
     * @param minSide   the smallest image side in pixels (null: 64); with maxSide a curriculum's first, small images
     * @param maxSide   the largest image side in pixels (null: 512). Small images have few tokens: a model from
     *                  scratch attends nearly uniformly, so an object's signal is diluted by every background token
     * @param rl        the RL stage's sampling and objective (kind rl only)
     * @param visionOptimizer adamw (null: the default) | muon: Muon at {@code visionLr} for the vision side's matrices
     *                  (patch embedding, attention, MLP, projector; not the position table), AdamW for the rest. From
     *                  scratch, Muon taught the nano ViT shapes about twice as fast per step (TRAINING.md, session 7)
     * @param startMaxSide progressive resolution (null: off): the largest image side at the stage's first step, rising
     *                  linearly to {@code maxSide} at its last, as Kimi-VL's ViT pre-training raises its resolution: the
     *                  early steps are cheap (few patches) and the late ones see the detail
     * @param captionAttention pretrain-vit only (null: false): the caption decoder also attends to the image's tokens,
     *                  as CoCa's does, instead of seeing only their mean (the mean-only decoder trained the shipped
     *                  nano model; the attending one gave the same accuracy in run V5, TRAINING.md session 8)
     * @param tokenLabels null: none; per-token losses and their weights, added to the stage's loss
     *                  (L_siglip + 2·L_caption, or the language model's): {@code colour}, each merged token names the
     *                  colour under it ({@code TokenColours}), {@code place}, its cell of a 6 × 6 grid over the image
     *                  ({@code TokenPlaces}), and {@code shape}, the shape of the drawn object covering it
     *                  ({@code TokenShapes}); a linear head on the projector's output each (TRAINING.md, sessions
     *                  11-13). Any stage that trains the vision side or the projector, except rl
     * @param bindHead  null: none; a scaffold head on the language model's residual stream after {@code layer} that
     *                  names, at each colour word of a grounding conversation, the 3 × 3 region of that colour's object
     *                  ({@link dev.kimivl.train.BindingHead}), its loss times {@code weight} added to the answers'.
     *                  Any stage that trains the language model, except rl and pretrain-vit; never published
     * @param continueHeads null or false: the stage's scaffold heads ({@code tokenLabels}, {@code bindHead}) start
     *                  fresh; true: each starts from the previous stage's final weights of the same head where that
     *                  stage had it (in the same run, or in the run whose {@code current/} a {@code --start-at} run
     *                  began from; a stage output folder holds no heads). A fresh binding head on a trained model's
     *                  residual stream starts at a loss of ~46 against ln 9 ≈ 2.2 at chance and mis-steers the layers
     *                  below it while it learns (TRAINING.md, session 15)
     * @param from      null: the stage trains the checkpoint the stage before it wrote; the name of an earlier stage:
     *                  that stage's final checkpoint instead (a branch: nano.json's Thinking stages start from the
     *                  instruct model's `easy` stage while its trunk goes on to the long-context stages). Its examples
     *                  are those it would draw in a recipe holding only the stages it descends from ({@link #depth})
     * @param easyShare null: every image is as {@code easyImages} says; a share in (0, 1): that share of the examples
     *                  (chosen from each example's seed) draws the easy images and the rest the full variety, so a stage
     *                  can teach busy grounds without forgetting plain ones (TRAINING.md, session 23: a stage of busy
     *                  images alone cost plain-ground answers, and easy steps after it gave the busy ones back).
     *                  Needs {@code easyImages} false
     */
    public record Stage(String name, String kind, int steps, int batch, double lr, double adamLr, double visionLr, int warmup,
                        String schedule, double minLrRatio, List<String> train, Map<String, Double> mix, boolean thinking,
                        Double ropeTheta, Integer maxPositions, Integer needleChars, List<String> vqaTypes,
                        boolean easyImages, Integer minSide, Integer maxSide, Rl rl, String visionOptimizer, Integer startMaxSide,
                        Boolean captionAttention, Map<String, Double> tokenLabels, dev.kimivl.train.BindingHead.Spec bindHead,
                        Boolean continueHeads, String from, Double easyShare) {
        static final Set<String> PARTS = Set.of("text", "vision", "projector");
        static final Set<String> KINDS = Set.of("pretrain-vit", "alignment", "joint", "cooldown", "long-context", "sft", "long-cot-sft", "rl");

        void validate(String where) {
            if (name == null || name.isBlank()) throw new IllegalArgumentException(where + ": a stage needs a name");
            if (!KINDS.contains(kind)) throw new IllegalArgumentException(where + " '" + name + "': kind '" + kind + "' is not one of " + KINDS);
            if (kind.equals("pretrain-vit") && mix != null) {
                // SigLIP pairs each image with its own caption: every example must hold exactly one image
                for (String m : mix.keySet()) {
                    if (!ExampleSource.ONE_IMAGE_KINDS.contains(m)) {
                        throw new IllegalArgumentException(where + " '" + name + "': a pretrain-vit stage pairs one image with its caption; mix kind '"
                                + m + "' is not one of " + new java.util.TreeSet<>(ExampleSource.ONE_IMAGE_KINDS));
                    }
                }
                if (train == null || !train.contains("vision") || train.contains("text")) {
                    // the language model does not run in this stage: its caption decoder is a small one of its own
                    throw new IllegalArgumentException(where + " '" + name + "': a pretrain-vit stage trains the vision tower and optionally the projector"
                            + " (train: [vision] or [vision, projector]), got " + train);
                }
            }
            if (tokenLabels != null) {
                if (kind.equals("rl") || train == null || !(train.contains("vision") || train.contains("projector"))) {
                    // the heads read the projector's output and train it: a stage whose vision side is frozen has
                    // nothing for them to shape (and RL's samples are scored by the answer checker alone)
                    throw new IllegalArgumentException(where + " '" + name + "': tokenLabels train the vision side through per-token losses; a "
                            + kind + " stage training " + train + " cannot take them (train vision or projector, not in an rl stage)");
                }
                for (var e : tokenLabels.entrySet()) {
                    if (!dev.kimivl.train.TokenLabelHead.KINDS.contains(e.getKey())) {
                        throw new IllegalArgumentException(where + " '" + name + "': tokenLabels names '" + e.getKey() + "', not one of "
                                + dev.kimivl.train.TokenLabelHead.KINDS);
                    }
                    Double w = e.getValue();
                    if (w == null || !(w >= 0) || w.isInfinite()) {
                        throw new IllegalArgumentException(where + " '" + name + "': tokenLabels." + e.getKey() + " is a loss weight, a finite number ≥ 0; got " + w);
                    }
                }
            }
            if (bindHead != null && (kind.equals("rl") || kind.equals("pretrain-vit") || train == null || !train.contains("text"))) {
                // the head reads the language model's hidden states and shapes them: it needs the language model to run and train
                throw new IllegalArgumentException(where + " '" + name + "': bindHead trains the language model through a loss on its hidden states; a "
                        + kind + " stage training " + train + " cannot take it (train text, not in an rl or pretrain-vit stage)");
            }
            if (Boolean.TRUE.equals(continueHeads) && tokenLabels == null && bindHead == null) {
                throw new IllegalArgumentException(where + " '" + name + "': continueHeads carries the previous stage's scaffold heads into this one's"
                        + " tokenLabels or bindHead; this stage has neither");
            }
            if (captionAttention != null && !kind.equals("pretrain-vit")) {
                throw new IllegalArgumentException(where + " '" + name + "': captionAttention applies to a pretrain-vit stage's caption decoder only");
            }
            if (kind.equals("rl") != (rl != null)) {
                throw new IllegalArgumentException(where + " '" + name + "': " + (rl == null ? "kind rl needs an \"rl\" object (samples, tau, lengthPenalty, temperature, maxTokens)"
                        : "only kind rl takes an \"rl\" object"));
            }
            if (rl != null) rl.validate(where + " '" + name + "'");
            if (steps < 0 || batch <= 0) throw new IllegalArgumentException(where + " '" + name + "': steps must be ≥ 0 and batch > 0");
            if (train == null || train.isEmpty() || !PARTS.containsAll(train)) {
                throw new IllegalArgumentException(where + " '" + name + "': train must list some of " + PARTS + ", got " + train);
            }
            if (mix == null || mix.isEmpty()) throw new IllegalArgumentException(where + " '" + name + "': mix is empty");
            for (var e : mix.entrySet()) {
                if (!ExampleSource.KINDS.contains(e.getKey())) {
                    throw new IllegalArgumentException(where + " '" + name + "': mix kind '" + e.getKey() + "' is not one of " + ExampleSource.KINDS);
                }
                if (!(e.getValue() >= 0)) throw new IllegalArgumentException(where + " '" + name + "': mix weight of " + e.getKey() + " is " + e.getValue());
            }
            if (vqaTypes != null && !dev.kimivl.train.data.VisualWorld.vqaTypes().containsAll(vqaTypes)) {
                throw new IllegalArgumentException(where + " '" + name + "': vqaTypes " + vqaTypes + " are not all among " + dev.kimivl.train.data.VisualWorld.vqaTypes());
            }
            try {
                imageOptions();
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException(where + " '" + name + "': image sides: " + e.getMessage());
            }
            if (startMaxSide != null && (startMaxSide < imageOptions().minSide() || startMaxSide > imageOptions().maxSide())) {
                throw new IllegalArgumentException(where + " '" + name + "': startMaxSide " + startMaxSide + " must lie between minSide "
                        + imageOptions().minSide() + " and maxSide " + imageOptions().maxSide());
            }
            if (easyShare != null && (!(easyShare > 0 && easyShare < 1) || easyImages)) {
                throw new IllegalArgumentException(where + " '" + name + "': easyShare is the share of examples on easy images, a number"
                        + " between 0 and 1 exclusive, with easyImages false; got " + easyShare + (easyImages ? " with easyImages true" : ""));
            }
            if (visionOptimizer != null && !Set.of("adamw", "muon").contains(visionOptimizer)) {
                throw new IllegalArgumentException(where + " '" + name + "': visionOptimizer '" + visionOptimizer + "' is not adamw or muon");
            }
            if (schedule != null && !Set.of("cosine", "constant", "linear").contains(schedule)) {
                throw new IllegalArgumentException(where + " '" + name + "': schedule '" + schedule + "' is not cosine, constant or linear");
            }
        }

        /** The images this stage draws: its sides (default 64-512 px) and whether they are the easy ones. */
        public dev.kimivl.train.data.VisualWorld.Options imageOptions() {
            var d = dev.kimivl.train.data.VisualWorld.Options.defaults();
            return new dev.kimivl.train.data.VisualWorld.Options(minSide == null ? d.minSide() : minSide,
                    maxSide == null ? d.maxSide() : maxSide, easyImages);
        }

        /**
         * The images of step s (1-based): {@link #imageOptions()}, with the largest side at {@code startMaxSide} on the
         * first step rising linearly to {@code maxSide} on the last when progressive resolution is on.
         */
        public dev.kimivl.train.data.VisualWorld.Options imageOptionsAt(int s) {
            var o = imageOptions();
            if (startMaxSide == null || steps <= 1) return o;
            double p = Math.min(1, Math.max(0, (double) (s - 1) / (steps - 1)));
            int max = (int) Math.round(startMaxSide + p * (o.maxSide() - startMaxSide));
            return new dev.kimivl.train.data.VisualWorld.Options(o.minSide(), max, o.easy());
        }

        /** The learning-rate factor at step s (1-based) of this stage: linear warm-up, then the schedule. */
        public double lrFactor(int s) {
            if (warmup > 0 && s <= warmup) return (double) s / warmup;
            if (schedule == null || schedule.equals("constant") || steps <= warmup) return 1;
            double p = (double) (s - warmup) / Math.max(1, steps - warmup), floor = minLrRatio;
            return switch (schedule) {
                case "cosine" -> floor + (1 - floor) * 0.5 * (1 + Math.cos(Math.PI * p));
                case "linear" -> floor + (1 - floor) * (1 - p);
                default -> 1;
            };
        }
    }

    /**
     * Online policy mirror descent ({@link PolicyMirrorDescent}): per prompt {@code samples} answers sampled at
     * {@code temperature} (at most {@code maxTokens} each) from the policy at the step's start, rewarded 1/0 by the
     * exact answer checker plus Kimi k1.5's length reward of weight {@code lengthPenalty}; each step then takes two
     * optimizer updates on them (the first at θ = π_old, the second with the τ-regularised residuals).
     * {@code optimizer} muon (null: the default) trains the hidden matrices with Muon at the stage's {@code lr}, as the
     * other stages do; adamw trains every language-model tensor with AdamW at {@code adamLr}. Muon's update has the
     * same size whatever the gradient's, so on a batch whose groups are nearly all right or all wrong (a gradient of
     * little but noise) it still takes a full step.
     */
    public record Rl(int samples, double tau, double lengthPenalty, double temperature, int maxTokens, String optimizer) {
        /** True when the language model's hidden matrices train with AdamW instead of Muon. */
        public boolean adamOnly() { return "adamw".equals(optimizer); }

        void validate(String where) {
            if (optimizer != null && !Set.of("adamw", "muon").contains(optimizer)) {
                throw new IllegalArgumentException(where + ": rl.optimizer '" + optimizer + "' is not adamw or muon");
            }
            if (samples < 2) throw new IllegalArgumentException(where + ": rl.samples must be ≥ 2 (the mean of a prompt's answers is the baseline), got " + samples);
            if (!(tau > 0)) throw new IllegalArgumentException(where + ": rl.tau must be > 0, got " + tau);
            if (!(lengthPenalty >= 0)) throw new IllegalArgumentException(where + ": rl.lengthPenalty must be ≥ 0, got " + lengthPenalty);
            if (!(temperature > 0)) throw new IllegalArgumentException(where + ": rl.temperature must be > 0 (answers are sampled), got " + temperature);
            if (maxTokens <= 0) throw new IllegalArgumentException(where + ": rl.maxTokens must be > 0, got " + maxTokens);
        }
    }

    private static final ObjectMapper JSON = new ObjectMapper().configure(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES, true);

    public static Recipe load(Path file) throws IOException {
        Recipe r;
        try {
            r = JSON.readValue(file.toFile(), Recipe.class);
        } catch (NoSuchFileException | java.io.FileNotFoundException e) {
            throw new IllegalArgumentException("recipe " + file + " not found");
        } catch (com.fasterxml.jackson.core.JacksonException e) {
            throw new IllegalArgumentException("recipe " + file + ": " + e.getOriginalMessage()
                    + (e.getLocation() != null ? " (line " + e.getLocation().getLineNr() + ")" : ""));
        }
        if (r.model() == null || r.tokenizer() == null || r.stages() == null || r.stages().isEmpty()) {
            throw new IllegalArgumentException("recipe " + file + ": needs model, tokenizer and stages");
        }
        if (r.products() != null && !r.products().equals("f32") && !r.products().equals("bf16")) {
            throw new IllegalArgumentException("recipe " + file + ": products '" + r.products() + "' is not f32 or bf16");
        }
        for (int i = 0; i < r.stages().size(); i++) {
            Stage s = r.stages().get(i);
            String where = "recipe " + file + " stage " + (i + 1);
            s.validate(where);
            if (s.from() == null) continue;
            int from = r.stageIndex(s.from());
            if (from < 0 || from >= i) {
                throw new IllegalArgumentException(where + " '" + s.name() + "': from '" + s.from() + "' must name a stage before it; the stages before it: "
                        + r.stages().subList(0, i).stream().map(Stage::name).toList());
            }
            if (Boolean.TRUE.equals(s.continueHeads())) {
                // the heads continueHeads carries are the previous stage's in run order, not the branch point's
                throw new IllegalArgumentException(where + " '" + s.name() + "': a stage that starts from another stage's checkpoint (from) cannot continueHeads");
            }
        }
        return r;
    }

    /** The index of the stage with this name, or -1. */
    public int stageIndex(String name) {
        for (int i = 0; i < stages.size(); i++) if (stages.get(i).name().equals(name)) return i;
        return -1;
    }

    /**
     * Stage k's depth: its position along the chain of stages it descends from (through {@code from} or the stage
     * before it), which numbers its examples and seeds. In a recipe without branches it is k, so a branch stage draws
     * exactly what it draws in the recipe of its own chain alone, and a branch added to a recipe changes no weights.
     */
    public int depth(int k) {
        if (k == 0) return 0;
        String from = stages.get(k).from();
        return 1 + depth(from == null ? k - 1 : stageIndex(from));
    }

    /** The recipe's bytes as a stable fingerprint: a resumed run must continue the same recipe. */
    public static String fingerprint(Path file) throws IOException {
        return Integer.toHexString(java.util.Arrays.hashCode(Files.readAllBytes(file)));
    }
}
