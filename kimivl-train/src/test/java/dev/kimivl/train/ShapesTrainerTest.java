package dev.kimivl.train;

import dev.kimivl.io.SafeTensorsFile;
import dev.kimivl.io.TensorData;
import dev.kimivl.model.KimiVL;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The shapes task and its trainer (kimivl train-shapes) on the repo's tiny-random model. */
class ShapesTrainerTest {
    static final Path TINY_RANDOM = Path.of("../models/tiny-random");

    @Test
    void examplesAreDeterministicAndAnswerTheirQuestion() {
        ShapesData.Example a = ShapesData.next(new Random(5)), b = ShapesData.next(new Random(5));
        assertEquals(a.answer(), b.answer());
        assertEquals(ShapesData.SIZE, a.image().getWidth());
        assertEquals("A red circle.", ShapesData.answer("What is in this picture?", "circle", "red"));
        assertEquals("A triangle.", ShapesData.answer("What shape is it?", "triangle", "blue"));
        assertEquals("Yellow.", ShapesData.answer("What color is it?", "square", "yellow"));
    }

    /** Two steps from tiny-random: a checkpoint in the published layout (every tensor, F32), changed, that loads and runs. */
    @Test
    void trainingWritesALoadableCheckpoint(@TempDir Path out) throws Exception {
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        ShapesTrainer.train(TINY_RANDOM, out, new ShapesTrainer.Options(2, 2, 0.02f, 3e-3f, 1e-3f, 0.01f, 3), new PrintStream(log, true, StandardCharsets.UTF_8));
        assertTrue(log.toString(StandardCharsets.UTF_8).contains("step 1/2"), log.toString(StandardCharsets.UTF_8));
        for (String f : new String[]{"config.json", "preprocessor_config.json", "tiktoken.model", "tokenizer_config.json"}) {
            assertTrue(Files.isRegularFile(out.resolve(f)), f + " copied");
        }
        Map<String, TensorData> before = SafeTensorsFile.open(TINY_RANDOM.resolve("model.safetensors")).tensors();
        Map<String, TensorData> after = SafeTensorsFile.open(out.resolve("model.safetensors")).tensors();
        assertEquals(before.keySet(), after.keySet());
        for (String n : new String[]{"language_model.lm_head.weight", "vision_tower.encoder.blocks.0.wqkv.weight", "multi_modal_projector.linear_1.weight"}) {
            assertEquals("F32", after.get(n).dtype().name());
            assertFalse(java.util.Arrays.equals(before.get(n).toFloats(), after.get(n).toFloats()), n + " trained");
        }
        try (KimiVL m = KimiVL.open(out)) {
            ShapesEval.Score s = ShapesEval.evaluate(m, 2, 11);
            assertEquals(2, s.total());
        }
    }
}
