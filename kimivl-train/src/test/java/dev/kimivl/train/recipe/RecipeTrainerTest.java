package dev.kimivl.train.recipe;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.kimivl.io.SafeTensorsFile;
import dev.kimivl.io.TensorData;
import dev.kimivl.model.KimiVL;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The recipe runner on a tiny config: every implemented stage kind runs and its loss falls; a run stopped mid-stage
 * (and once between the two renames of a checkpoint swap, as a kill can leave it) and resumed ends with exactly the
 * weights of an uninterrupted run; the outputs load through the inference path.
 */
class RecipeTrainerTest {
    static final String RECIPE = """
            {
              "name": "tiny", "seed": 11,
              "model": { "hidden": 32, "layers": 2, "heads": 2, "kvLora": 16, "nopeDim": 8, "ropeDim": 8, "vDim": 8,
                         "denseInter": 64, "moeInter": 16, "experts": 4, "topK": 2, "sharedExperts": 1, "firstDense": 1,
                         "ropeTheta": 10000.0, "maxPositions": 512,
                         "visionHidden": 16, "visionLayers": 1, "visionHeads": 2, "visionInter": 32, "posEmb": 4,
                         "inTokenLimit": 64, "initStd": 0.05 },
              "tokenizer": { "ranks": 320, "corpusExamples": 60 },
              "stages": [
                { "name": "vit", "kind": "pretrain-vit", "steps": 3, "batch": 3, "lr": 0.01, "adamLr": 0.01, "visionLr": 0.01,
                  "warmup": 0, "schedule": "constant", "minLrRatio": 0, "train": ["vision", "projector"],
                  "mix": { "label": 0.5, "caption": 0.5 }, "easyImages": true, "minSide": 64, "maxSide": 96, "visionOptimizer": "muon",
                  "startMaxSide": 64, "captionAttention": true, "tokenLabels": { "colour": 0.5, "place": 0.5 } },
                { "name": "align", "kind": "alignment", "steps": 3, "batch": 2, "lr": 0.01, "adamLr": 0.01, "visionLr": 0.01,
                  "warmup": 1, "schedule": "constant", "minLrRatio": 0, "train": ["vision", "projector"], "mix": { "vqa": 1.0 },
                  "tokenLabels": { "shape": 0.5, "place": 0.25 } },
                { "name": "joint", "kind": "joint", "steps": %d, "batch": 3, "lr": 0.01, "adamLr": 0.01, "visionLr": 0.01,
                  "warmup": 2, "schedule": "cosine", "minLrRatio": 0.1, "train": ["text", "vision", "projector"],
                  "mix": { "vqa": 0.4, "text": 0.2, "caption": 0.1, "ground": 0.3 }, "bindHead": { "layer": 1, "weight": 0.5 } },
                { "name": "long", "kind": "long-context", "steps": 2, "batch": 2, "lr": 0.005, "adamLr": 0.005, "visionLr": 0.005,
                  "warmup": 0, "schedule": "constant", "minLrRatio": 0, "train": ["text"], "ropeTheta": 40000.0, "maxPositions": 1024,
                  "needleChars": 300, "mix": { "needle": 0.25, "vqa": 0.75 } },
                { "name": "cot", "kind": "long-cot-sft", "steps": 2, "batch": 2, "lr": 0.005, "adamLr": 0.005, "visionLr": 0.005,
                  "warmup": 0, "schedule": "linear", "minLrRatio": 0.5, "train": ["text", "vision", "projector"], "thinking": true,
                  "mix": { "reasoning": 1.0 } },
                { "name": "rl", "kind": "rl", "steps": 2, "batch": 2, "lr": 0.005, "adamLr": 0.005, "visionLr": 0.005,
                  "warmup": 0, "schedule": "constant", "minLrRatio": 0, "train": ["text"], "thinking": true,
                  "mix": { "reasoning": 0.5, "object": 0.5 },
                  "rl": { "samples": 3, "tau": 0.5, "lengthPenalty": 0.1, "temperature": 1.0, "maxTokens": 10 } }
              ],
              "outputs": { "instruct": "joint", "thinking": "cot", "rl": "rl" }
            }
            """;

    static Path recipe(Path dir, int jointSteps) throws Exception {
        Path f = dir.resolve("tiny.json");
        Files.writeString(f, RECIPE.formatted(jointSteps));
        return f;
    }

    static boolean run(Path recipe, Path out, boolean resume, long stopAfter) throws Exception {
        return new RecipeTrainer(recipe, out, new PrintStream(new ByteArrayOutputStream()), 2, 1, stopAfter).run(resume);
    }

    @Test
    void killedAndResumedRunEndsWithTheSameWeights(@TempDir Path tmp) throws Exception {
        Path recipe = recipe(tmp, 5);
        Path a = tmp.resolve("a"), b = tmp.resolve("b");
        assertTrue(run(recipe, a, false, -1));
        // b: stopped after 2 steps (mid-vit: the SigLIP towers' state must survive), then after 5 more (mid-joint), the second time left as a kill between
        // the two renames of the checkpoint swap leaves it (only current.old), then run to the end
        assertFalse(run(recipe, b, false, 2));
        assertThrows(IllegalArgumentException.class, () -> run(recipe, b, false, -1), "a second start without --resume must refuse");
        assertFalse(run(recipe, b, true, 5));
        Files.move(b.resolve("current"), b.resolve("current.old"));
        assertTrue(run(recipe, b, true, -1));
        for (String out : List.of("instruct", "thinking", "rl")) {
            assertArrayEquals(Files.readAllBytes(a.resolve(out).resolve("model.safetensors")),
                    Files.readAllBytes(b.resolve(out).resolve("model.safetensors")), out + ": resumed weights differ");
        }
        // a new run started at stage "long" from a's output of the stage before ends with a's weights; outputs of
        // stages it did not run are skipped
        Path c = tmp.resolve("c");
        assertTrue(new RecipeTrainer(recipe, c, new PrintStream(new ByteArrayOutputStream()), 2, 1, -1).startingAt("long", a.resolve("stages/03-joint")).run(false));
        assertFalse(Files.exists(c.resolve("instruct")), "the joint stage did not run in c");
        for (String out : List.of("thinking", "rl")) {
            assertArrayEquals(Files.readAllBytes(a.resolve(out).resolve("model.safetensors")),
                    Files.readAllBytes(c.resolve(out).resolve("model.safetensors")), out + ": the run started at 'long' differs");
        }
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> new RecipeTrainer(recipe, tmp.resolve("d"), System.err, 2, 1, -1).startingAt("nope", a.resolve("stages/03-joint")));
        assertTrue(e.getMessage().contains("no stage 'nope'"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> new RecipeTrainer(recipe, tmp.resolve("d"), System.err, 2, 1, -1).startingAt("long", tmp).run(false));
        assertTrue(e.getMessage().contains("has no config.json"), e.getMessage());
        // the long-context stage rewrote the RoPE base and the context in the published config
        JsonNode cfg = new ObjectMapper().readTree(a.resolve("thinking/config.json").toFile());
        assertEquals(40000.0, cfg.get("text_config").get("rope_theta").asDouble());
        assertEquals(1024, cfg.get("text_config").get("max_position_embeddings").asInt());
        // the outputs are checkpoints the inference path opens and runs
        try (KimiVL m = KimiVL.open(a.resolve("instruct"))) {
            assertEquals(KimiVL.class, m.getClass());
            assertTrue(m.hasVision());
        }
    }

    @Test
    void everyStageRunsAndTheJointLossFalls(@TempDir Path tmp) throws Exception {
        Path recipe = recipe(tmp, 14);
        Path out = tmp.resolve("run");
        assertTrue(run(recipe, out, false, -1));
        ObjectMapper om = new ObjectMapper();
        Map<String, List<Double>> losses = new java.util.LinkedHashMap<>();
        int bindLines = 0;
        for (String line : Files.readAllLines(out.resolve("train_log.jsonl"))) {
            JsonNode n = om.readTree(line);
            losses.computeIfAbsent(n.get("stage").asText(), k -> new ArrayList<>()).add(n.get("loss").asDouble());
            assertTrue(n.get("gflop_per_s").asDouble() > 0);
            // the token-label losses are logged in the stages that have heads: colour and place in vit, shape and place in align
            String st = n.get("stage").asText();
            assertEquals(st.equals("vit"), n.has("token_colour_loss"), line);
            assertEquals(st.equals("vit") || st.equals("align"), n.has("token_place_accuracy"), line);
            assertEquals(st.equals("align"), n.has("token_shape_loss") && n.get("token_shape_accuracy").asDouble() >= 0, line);
            // the binding head's loss is logged in the joint stage, whose grounding conversations ask it something
            if (n.has("bind_loss")) assertEquals("joint", st, line);
            if (st.equals("joint") && n.has("bind_accuracy")) bindLines++;
            // the ViT pre-training stage logs its contrastive loss and retrieval accuracy; no other stage does
            assertEquals(n.get("stage").asText().equals("vit"), n.has("siglip_loss") && n.get("retrieval_accuracy").asDouble() >= 0, line);
        }
        assertEquals(List.of("vit", "align", "joint", "long", "cot", "rl"), List.copyOf(losses.keySet()));
        assertTrue(bindLines > 0, "the joint stage's binding head was never asked");
        List<Double> joint = losses.get("joint");
        double first = (joint.get(0) + joint.get(1) + joint.get(2)) / 3, last = (joint.get(11) + joint.get(12) + joint.get(13)) / 3;
        System.out.printf("tiny recipe: joint loss %.3f -> %.3f over 14 steps; stages %s%n", first, last, losses.keySet());
        assertTrue(last < first * 0.8, "joint loss did not fall: " + joint);
        for (String c : List.of("curves/01-vit.png", "curves/02-align.png", "curves/03-joint.png", "curves/04-long.png", "curves/05-cot.png", "curves/06-rl.png")) {
            byte[] png = Files.readAllBytes(out.resolve(c));
            assertTrue(png.length > 1000 && png[1] == 'P' && png[2] == 'N' && png[3] == 'G', c + " is not a PNG");
        }
        for (String s : List.of("stages/01-vit", "stages/02-align", "stages/03-joint", "stages/04-long", "stages/05-cot", "stages/06-rl", "instruct", "thinking", "rl")) {
            assertTrue(Files.isRegularFile(out.resolve(s).resolve("model.safetensors")), s);
            assertFalse(Files.exists(out.resolve(s).resolve("optimizer.safetensors")), s + " must hold only the model");
            assertFalse(dev.kimivl.io.SafeTensorsFile.open(out.resolve(s).resolve("model.safetensors")).tensors().keySet().stream().anyMatch(n -> n.startsWith("siglip.") || n.startsWith("binding.")),
                    s + ": the SigLIP towers and the binding head are scaffolding, not part of the model");
        }
        assertFalse(Files.exists(out.resolve("rl-policy")), "the RL sampler's scratch checkpoint is removed at the stage's end");
        // the RL stage changed the weights it trains, and only those
        var cot = dev.kimivl.io.SafeTensorsFile.open(out.resolve("stages/05-cot/model.safetensors")).tensors();
        var rl = dev.kimivl.io.SafeTensorsFile.open(out.resolve("stages/06-rl/model.safetensors")).tensors();
        boolean textMoved = false;
        for (var e : cot.entrySet()) {
            boolean same = java.util.Arrays.equals(e.getValue().toFloats(), rl.get(e.getKey()).toFloats());
            if (e.getKey().startsWith("vision_tower.") || e.getKey().startsWith("multi_modal_projector.")) assertTrue(same, e.getKey() + " moved in a text-only RL stage");
            else if (!same) textMoved = true;
        }
        assertTrue(textMoved, "RL changed no weight");
    }

    @Test
    void badRecipesAreNamed(@TempDir Path tmp) throws Exception {
        Path f = tmp.resolve("bad.json");
        Files.writeString(f, RECIPE.formatted(3).replace("\"kind\": \"joint\"", "\"kind\": \"jointt\""));
        var e = assertThrows(IllegalArgumentException.class, () -> Recipe.load(f));
        assertTrue(e.getMessage().contains("jointt") && e.getMessage().contains("stage 3"), e.getMessage());
        Files.writeString(f, RECIPE.formatted(3).replace("\"mix\": { \"vqa\": 1.0 }", "\"mix\": { \"vqaa\": 1.0 }"));
        e = assertThrows(IllegalArgumentException.class, () -> Recipe.load(f));
        assertTrue(e.getMessage().contains("vqaa"), e.getMessage());
        Files.writeString(f, RECIPE.formatted(3).replace("\"mix\": { \"vqa\": 1.0 }", "\"mix\": { \"object\": 1.0 }, \"minSide\": 20"));
        e = assertThrows(IllegalArgumentException.class, () -> Recipe.load(f));
        assertTrue(e.getMessage().contains("image sides") && e.getMessage().contains("20"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> Recipe.load(tmp.resolve("missing.json")));
        // SigLIP pairs one image with one caption: a two-image kind in a pretrain-vit stage is refused by name
        Files.writeString(f, RECIPE.formatted(3).replace("\"mix\": { \"label\": 0.5, \"caption\": 0.5 }", "\"mix\": { \"label\": 0.5, \"compare\": 0.5 }"));
        e = assertThrows(IllegalArgumentException.class, () -> Recipe.load(f));
        assertTrue(e.getMessage().contains("'compare'") && e.getMessage().contains("one image"), e.getMessage());
        Files.writeString(f, RECIPE.formatted(3).replace("\"train\": [\"vision\", \"projector\"]", "\"train\": [\"text\", \"vision\"]"));
        e = assertThrows(IllegalArgumentException.class, () -> Recipe.load(f));
        assertTrue(e.getMessage().contains("pretrain-vit stage trains the vision tower"), e.getMessage());
        // progressive resolution: the largest side rises from startMaxSide on step 1 to maxSide on the last step
        Files.writeString(f, RECIPE.formatted(3));
        Recipe.Stage vit = Recipe.load(f).stages().getFirst();
        assertEquals(List.of(64, 80, 96), java.util.stream.IntStream.rangeClosed(1, 3).mapToObj(s -> vit.imageOptionsAt(s).maxSide()).toList());
        assertEquals(64, vit.imageOptionsAt(2).minSide());
        Recipe.Stage align = Recipe.load(f).stages().get(1);          // no startMaxSide: the same images at every step
        assertEquals(align.imageOptions(), align.imageOptionsAt(1));
        assertEquals(align.imageOptions(), align.imageOptionsAt(3));
        Files.writeString(f, RECIPE.formatted(3).replace("\"startMaxSide\": 64", "\"startMaxSide\": 200"));
        e = assertThrows(IllegalArgumentException.class, () -> Recipe.load(f));
        assertTrue(e.getMessage().contains("startMaxSide 200") && e.getMessage().contains("maxSide 96"), e.getMessage());
        // RL's optimizer for the hidden matrices: muon (the default) or adamw, nothing else
        Files.writeString(f, RECIPE.formatted(3).replace("\"maxTokens\": 10 }", "\"maxTokens\": 10, \"optimizer\": \"sgd\" }"));
        e = assertThrows(IllegalArgumentException.class, () -> Recipe.load(f));
        assertTrue(e.getMessage().contains("rl.optimizer 'sgd'"), e.getMessage());
        Files.writeString(f, RECIPE.formatted(3).replace("\"maxTokens\": 10 }", "\"maxTokens\": 10, \"optimizer\": \"adamw\" }"));
        assertTrue(Recipe.load(f).stages().getLast().rl().adamOnly());
        Files.writeString(f, RECIPE.formatted(3));
        assertFalse(Recipe.load(f).stages().getLast().rl().adamOnly());
        // the products' precision: f32 (unset) or bf16, nothing else
        assertEquals(dev.kimivl.tensor.Gemm.Products.F32, Recipe.load(f).gemmProducts());
        Files.writeString(f, bf16(RECIPE.formatted(3)).replace("\"bf16\"", "\"fp8\""));
        e = assertThrows(IllegalArgumentException.class, () -> Recipe.load(f));
        assertTrue(e.getMessage().contains("products 'fp8' is not f32 or bf16"), e.getMessage());
    }

    /** The tiny recipe with bf16 training products. */
    private static String bf16(String recipe) {
        return recipe.replace("\"name\": \"tiny\",", "\"name\": \"tiny\", \"products\": \"bf16\",");
    }

    /**
     * A recipe with bf16 products: its weights are not the f32 run's (the products really are bf16), and a run stopped
     * mid-stage and resumed ends with exactly the weights of an unbroken bf16 run. Skipped (and said so) on CPUs
     * without AVX512-BF16, where such a recipe trains in f32.
     */
    @Test
    void bf16ProductsTrainDifferentlyAndResumeExactly(@TempDir Path tmp) throws Exception {
        org.junit.jupiter.api.Assumptions.assumeTrue(dev.kimivl.tensor.Gemm.bf16Available(), "no bf16 GEMM tiles on this CPU");
        Path f32 = recipe(tmp, 5), bf = tmp.resolve("bf16.json");
        Files.writeString(bf, bf16(RECIPE.formatted(5)));
        assertEquals(dev.kimivl.tensor.Gemm.Products.BF16, Recipe.load(bf).gemmProducts());
        Path a = tmp.resolve("f32"), b = tmp.resolve("bf"), c = tmp.resolve("bf-resumed");
        assertTrue(run(f32, a, false, -1));
        assertTrue(run(bf, b, false, -1));
        assertFalse(run(bf, c, false, 6));
        assertTrue(run(bf, c, true, -1));
        for (String out : List.of("instruct", "thinking", "rl")) {
            byte[] wb = Files.readAllBytes(b.resolve(out).resolve("model.safetensors"));
            assertArrayEquals(wb, Files.readAllBytes(c.resolve(out).resolve("model.safetensors")), out + ": resumed bf16 weights differ");
            assertFalse(java.util.Arrays.equals(wb, Files.readAllBytes(a.resolve(out).resolve("model.safetensors"))), out + ": bf16 weights equal the f32 ones");
        }
    }

    @Test
    void aBindingHeadNeedsATrainedLanguageModelAndALayerItHas(@TempDir Path tmp) throws Exception {
        String head = "\"bindHead\": { \"layer\": 1, \"weight\": 0.5 }";
        String base = RECIPE.formatted(3);
        Path f = tmp.resolve("bad.json");
        // the align stage trains only the vision side; RL's samples are scored by the checker alone; a layer must be ≥ 1
        for (String text : List.of(base.replace("\"tokenLabels\": { \"shape\": 0.5, \"place\": 0.25 }", "\"tokenLabels\": { \"shape\": 0.5 }, " + head),
                base.replace("\"rl\": { \"samples\": 3", head + ", \"rl\": { \"samples\": 3"),
                base.replace(head, "\"bindHead\": { \"layer\": 0, \"weight\": 0.5 }"))) {
            assertTrue(!text.equals(base), "the recipe was changed");
            Files.writeString(f, text);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Recipe.load(f));
            assertTrue(e.getMessage().contains("bindHead") || e.getMessage().contains("binding head"), e.getMessage());
        }
        // a layer past the model's is refused when the stage starts, naming both
        Files.writeString(f, base.replace(head, "\"bindHead\": { \"layer\": 3, \"weight\": 0.5 }"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> run(f, tmp.resolve("out"), false, -1));
        assertTrue(e.getMessage().contains("bindHead.layer 3") && e.getMessage().contains("2 layers"), e.getMessage());
    }

    @Test
    void aBranchStageTrainsTheNamedStagesCheckpointAsInARecipeOfItsOwnChain(@TempDir Path tmp) throws Exception {
        String cot = "{ \"name\": \"cot\", \"kind\": \"long-cot-sft\"";
        String base = RECIPE.formatted(3);
        assertTrue(base.contains(cot));
        // branched: vit, align, joint, long, cot (from joint), rl; linear: the same without long
        Path branched = tmp.resolve("branched.json"), linear = tmp.resolve("linear.json");
        Files.writeString(branched, base.replace(cot, cot + ", \"from\": \"joint\""));
        int longAt = base.indexOf("{ \"name\": \"long\""), longEnd = base.indexOf(cot);
        Files.writeString(linear, base.substring(0, longAt) + base.substring(longEnd));
        Recipe r = Recipe.load(branched);
        assertEquals(List.of(0, 1, 2, 3, 3, 4), java.util.stream.IntStream.range(0, 6).map(r::depth).boxed().toList());
        Path b = tmp.resolve("b"), l = tmp.resolve("l"), k = tmp.resolve("k");
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        assertTrue(new RecipeTrainer(branched, b, new PrintStream(log), 2, 1, -1).run(false));
        assertTrue(log.toString().contains("[cot] starts from stage joint's checkpoint"), log.toString());
        assertTrue(run(linear, l, false, -1));
        for (String out : List.of("instruct", "thinking", "rl")) {
            assertArrayEquals(Files.readAllBytes(l.resolve(out).resolve("model.safetensors")),
                    Files.readAllBytes(b.resolve(out).resolve("model.safetensors")), out + ": the branch differs from its own chain");
        }
        assertFalse(java.util.Arrays.equals(Files.readAllBytes(b.resolve("stages/04-long/model.safetensors")),
                Files.readAllBytes(b.resolve("stages/05-cot/model.safetensors"))));
        // killed at the end of long (the stage before the branch) and resumed: the same weights
        assertFalse(run(branched, k, false, 3 + 3 + 3 + 2));
        assertTrue(run(branched, k, true, -1));
        assertArrayEquals(Files.readAllBytes(b.resolve("rl/model.safetensors")), Files.readAllBytes(k.resolve("rl/model.safetensors")));
        // a run started after the branch point has no checkpoint of it to branch from: it stops before the branch,
        // says so, and publishes what it ran
        ByteArrayOutputStream lateLog = new ByteArrayOutputStream();
        Path late = tmp.resolve("late");
        assertTrue(new RecipeTrainer(branched, late, new PrintStream(lateLog), 2, 1, -1).startingAt("long", b.resolve("stages/03-joint")).run(false));
        assertTrue(lateLog.toString().contains("[cot] not run, nor the stages after it: it starts from stage joint's checkpoint")
                && lateLog.toString().contains("--start-at cot --from"), lateLog.toString());
        assertArrayEquals(Files.readAllBytes(b.resolve("stages/04-long/model.safetensors")), Files.readAllBytes(late.resolve("stages/04-long/model.safetensors")));
        assertFalse(Files.exists(late.resolve("stages/05-cot")) || Files.exists(late.resolve("thinking")) || Files.exists(late.resolve("rl")));
        IllegalArgumentException e;
        // from must name an earlier stage, and cannot go with continueHeads
        for (String bad : List.of("\"rl\"", "\"cot\"", "\"nope\"")) {
            Files.writeString(branched, base.replace(cot, cot + ", \"from\": " + bad));
            e = assertThrows(IllegalArgumentException.class, () -> Recipe.load(branched));
            assertTrue(e.getMessage().contains("must name a stage before it"), e.getMessage());
        }
        Files.writeString(branched, base.replace(cot, cot + ", \"from\": \"joint\", \"continueHeads\": true, \"bindHead\": { \"layer\": 1, \"weight\": 0.5 }"));
        e = assertThrows(IllegalArgumentException.class, () -> Recipe.load(branched));
        assertTrue(e.getMessage().contains("cannot continueHeads"), e.getMessage());
    }

    @Test
    void continuedHeadsStartFromThePreviousStagesAndOnlyTheirs(@TempDir Path tmp) throws Exception {
        String alignHeads = "\"tokenLabels\": { \"shape\": 0.5, \"place\": 0.25 }";
        Path f = tmp.resolve("carry.json");
        Files.writeString(f, RECIPE.formatted(3).replace(alignHeads, alignHeads + ", \"continueHeads\": true"));
        Path out = tmp.resolve("run");
        // stopped at the end of the vit stage: its heads (colour, place) are in the checkpoint the align stage opens on
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        assertFalse(new RecipeTrainer(f, out, new PrintStream(log), 2, 1, 3).run(false));
        Map<String, TensorData> vit = SafeTensorsFile.open(out.resolve("current/optimizer.safetensors")).tensors();
        assertTrue(log.toString().contains("[align] scaffold heads from the previous stage: [place.weight, place.bias]; fresh: [shape.weight, shape.bias]"),
                log.toString());
        var carried = new RecipeTrainer(f, out, new PrintStream(new ByteArrayOutputStream()), 2, 1, -1).openStage(1, out.resolve("current"));
        assertArrayEquals(vit.get("param.place.weight").toFloats(), carried.params.get("place.weight"), "the place head goes on from the vit stage's");
        assertArrayEquals(vit.get("param.place.bias").toFloats(), carried.params.get("place.bias"));
        // a new run started at align from that run's current/ (optimizer state and all) carries the same heads
        ByteArrayOutputStream startLog = new ByteArrayOutputStream();
        assertFalse(new RecipeTrainer(f, tmp.resolve("started"), new PrintStream(startLog), 2, 1, 0).startingAt("align", out.resolve("current")).run(false));
        assertTrue(startLog.toString().contains("[align] scaffold heads from the previous stage: [place.weight, place.bias]"), startLog.toString());
        var started = new RecipeTrainer(f, tmp.resolve("started"), new PrintStream(new ByteArrayOutputStream()), 2, 1, -1)
                .openStage(1, tmp.resolve("started/current"));
        assertArrayEquals(vit.get("param.place.weight").toFloats(), started.params.get("place.weight"));
        // without continueHeads the same stage starts the head afresh (and the vit stage did train it away from that start)
        Path g = tmp.resolve("fresh.json");
        Files.writeString(g, RECIPE.formatted(3));
        var fresh = new RecipeTrainer(g, tmp.resolve("other"), new PrintStream(new ByteArrayOutputStream()), 2, 1, -1).openStage(1, out.resolve("current"));
        assertFalse(java.util.Arrays.equals(vit.get("param.place.weight").toFloats(), fresh.params.get("place.weight")));
        // a stage without heads cannot continue them
        Files.writeString(f, RECIPE.formatted(3).replace("\"needleChars\": 300,", "\"needleChars\": 300, \"continueHeads\": true,"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Recipe.load(f));
        assertTrue(e.getMessage().contains("continueHeads") && e.getMessage().contains("'long'"), e.getMessage());
    }

    @Test
    void tokenLabelsNeedATrainedVisionSideAndKnownWeights(@TempDir Path tmp) throws Exception {
        String labels = "\"tokenLabels\": { \"colour\": 0.5, \"place\": 0.5 }";
        String longStage = "\"needleChars\": 300,";
        String rlStage = "\"rl\": { \"samples\": 3";
        // the long stage trains the text side only, and RL's samples are scored by the checker alone
        String frozenVision = RECIPE.formatted(3).replace(longStage, longStage + " \"tokenLabels\": { \"colour\": 0.5 },");
        String inRl = RECIPE.formatted(3).replace(rlStage, "\"tokenLabels\": { \"place\": 1 }, " + rlStage);
        String negative = RECIPE.formatted(3).replace(labels, "\"tokenLabels\": { \"colour\": -1 }");
        String unknown = RECIPE.formatted(3).replace(labels, "\"tokenLabels\": { \"size\": 1 }");
        for (String text : List.of(frozenVision, inRl, negative, unknown)) {
            assertTrue(!text.equals(RECIPE.formatted(3)), "the recipe was changed");
            Path f = tmp.resolve("bad.json");
            Files.writeString(f, text);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Recipe.load(f));
            assertTrue(e.getMessage().contains("tokenLabels"), e.getMessage());
        }
    }

    /**
     * The vision side's FLOP count: a frozen tower and projector run forward only (a third of what training them
     * costs), a trained projector on a frozen tower adds its weights' gradient, and MoonViT's attention is counted per
     * image by its patches squared (two packed images do not attend to each other).
     */
    @Test
    void visionFlopsCountForwardOnlyWhatIsFrozenAndAttentionPerImage() throws Exception {
        dev.kimivl.config.ModelConfig cfg = dev.kimivl.config.ModelConfig.load(Path.of("..", "models", "kimivl-nano-instruct"));
        var v = cfg.vision();
        List<dev.kimivl.vision.PreprocessedImage> two = List.of(patchGrid(8, 8), patchGrid(4, 6));     // 64 + 24 patches, 16 + 6 tokens
        double products = RecipeTrainer.visionParamsPerPatch(cfg) * 88, projector = RecipeTrainer.projectorParamsPerToken(cfg) * 22;
        double attention = 2.0 * v.numLayers() * v.hiddenSize() * (64.0 * 64 + 24.0 * 24);
        double trained = RecipeTrainer.visionFlop(cfg, two, true, true);
        assertEquals(6 * (products + attention) + 6 * projector, trained, 1e-9 * trained);
        assertEquals(2 * (products + attention) + 2 * projector, RecipeTrainer.visionFlop(cfg, two, false, false), 1e-9 * trained);
        assertEquals(2 * (products + attention) + 4 * projector, RecipeTrainer.visionFlop(cfg, two, false, true), 1e-9 * trained);
        assertTrue(trained < RecipeTrainer.visionFlop(cfg, List.of(patchGrid(8, 11)), true, true), "88 patches in one image attend more");
    }

    private static dev.kimivl.vision.PreprocessedImage patchGrid(int gh, int gw) {
        return new dev.kimivl.vision.PreprocessedImage("grid", gw * 14, gh * 14, gw * 14, gh * 14, gw * 14, gh * 14, gh, gw, new float[0]);
    }
}
