package dev.kimivl.cli;

import dev.kimivl.io.SafeTensorsFile;
import dev.kimivl.io.TensorData;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/** The commands end to end on the golden checkpoints (shared with kimivl-core's test resources). */
class CliTest {
    static final Path GOLDEN = Path.of("../kimivl-core/src/test/resources/golden").toAbsolutePath().normalize();
    static final Path TINY = Path.of("../models/tiny-random").toAbsolutePath().normalize();

    record Run(int exit, String out, String err) {}

    static Run run(String... args) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        PrintStream old = System.out;
        // before the CommandLine exists: picocli's execution strategy remembers System.out when it is created and, if
        // that differs at execute(), points the commands' writer (tokenize prints through it) back at the old stream
        System.setOut(new PrintStream(out, true, StandardCharsets.UTF_8));
        CommandLine cl = Main.commandLine();
        StringWriter err = new StringWriter();
        cl.setErr(new PrintWriter(err, true));
        try {
            int code = cl.execute(args);
            return new Run(code, out.toString(StandardCharsets.UTF_8), err.toString());
        } finally {
            System.setOut(old);
        }
    }

    /** Runs `kimivl forward` on a golden case and checks the named stages (vision stages at 5e-5, the rest at 3e-4). */
    static Map<String, TensorData> forwardMatches(String caseName, Path tmp, String... stages) {
        Path out = tmp.resolve("out.safetensors");
        Path caseDir = GOLDEN.resolve(caseName);
        Run r = run("forward", "--model", caseDir.toString(), "--inputs", caseDir.resolve("inputs.json").toString(), "--out", out.toString());
        assertEquals(0, r.exit, r.err);
        Map<String, TensorData> got = SafeTensorsFile.open(out).tensors();
        Map<String, TensorData> want = SafeTensorsFile.open(caseDir.resolve("expected.safetensors")).tensors();
        for (String name : stages) {
            assertArrayEquals(want.get(name).shape(), got.get(name).shape(), name);
            float[] a = want.get(name).toFloats(), b = got.get(name).toFloats();
            boolean vision = name.startsWith("pixel") || name.startsWith("vision") || name.equals("merged") || name.equals("image_features");
            for (int i = 0; i < a.length; i++) assertEquals(a[i], b[i], vision ? 5e-5 : 3e-4, name + "[" + i + "]");
        }
        assertArrayEquals(want.get("input_ids").toInts(), got.get("input_ids").toInts());
        if (want.containsKey("image_grid_hws")) assertArrayEquals(want.get("image_grid_hws").toInts(), got.get("image_grid_hws").toInts());
        return got;
    }

    @Test
    void forwardWritesEveryStageAndTheGoldenGreedyTokens(@TempDir Path tmp) {
        Map<String, TensorData> got = forwardMatches("a_text_only", tmp, "embeddings", "hidden.layer0", "hidden.layer1", "hidden.layer2", "final_norm", "logits");
        assertArrayEquals(new int[]{54, 95, 63, 736, 509, 730, 530, 14}, got.get("generated_ids").toInts());
    }

    @Test
    void forwardRunsTheVisionStagesOfTheTwoImageCase(@TempDir Path tmp) {
        Map<String, TensorData> got = forwardMatches("c_two_images", tmp, "pixel_values", "vision_tower_out", "merged", "image_features", "embeddings", "logits");
        assertArrayEquals(new int[]{103, 373, 561, 315, 833, 762, 916, 701}, got.get("generated_ids").toInts());
    }

    @Test
    void runTakesSeveralImages() {
        Path c = GOLDEN.resolve("c_two_images");
        Run r = run("run", "--model", TINY.toString(), "-n", "8", "--seed", "1", "-i", c.resolve("image0.png").toString(),
                "-i", c.resolve("image1.png").toString(), "What differs?");
        assertEquals(0, r.exit, r.err);
    }

    @Test
    void aCorruptImageIsOneClearLine(@TempDir Path tmp) throws Exception {
        Path bad = tmp.resolve("broken.png");
        java.nio.file.Files.write(bad, new byte[]{(byte) 0x89, 'P', 'N', 'G', 1, 2, 3});
        Run r = run("run", "--model", TINY.toString(), "-n", "4", "-i", bad.toString(), "What is this?");
        assertEquals(1, r.exit);
        assertTrue(r.err.contains("broken.png") && !r.err.contains("\tat "), r.err);
    }

    @Test
    void runStreamsAnAnswerFromTheDefaultModel() {
        Run r = run("run", "--model", TINY.toString(), "-n", "12", "--temperature", "0", "Hello there");
        assertEquals(0, r.exit, r.err);
        assertFalse(r.out.isBlank(), "some text is printed");
    }

    @Test
    void aPromptOverTheContextIsAnErrorNotATruncation() {
        Run r = run("run", "--model", TINY.toString(), "--ctx", "20", "-n", "5", "a prompt that is surely longer than twenty tokens once the chat template wraps it");
        assertEquals(1, r.exit);
        assertTrue(r.err.contains("the prompt has") && r.err.contains("context holds 20"), r.err);
    }

    @Test
    void infoCountsParameters() {
        Run r = run("info", "--model", TINY.toString());
        assertEquals(0, r.exit, r.err);
        assertTrue(r.out.contains("449,664 total"), r.out);
        assertTrue(r.out.contains("weights      BF16 0.9 MB"), r.out);          // 449,664 BF16 values
    }

    @Test
    void aMissingModelDirectoryIsOneClearLine() {
        Run r = run("info", "--model", "/nonexistent/model");
        assertEquals(1, r.exit);
        assertTrue(r.err.contains("/nonexistent/model") && !r.err.contains("\tat "), r.err);
    }

    @Test
    void generationConfigSetsTheDefaultsAndOptionsOverrideThem(@TempDir Path tmp) throws Exception {
        Path m = tmp.resolve("model");
        java.nio.file.Files.createDirectories(m);
        try (var files = java.nio.file.Files.list(TINY)) {
            for (Path f : files.toList()) java.nio.file.Files.copy(f, m.resolve(f.getFileName()));
        }
        // an invalid checkpoint default is reported before the model loads, naming the value
        java.nio.file.Files.writeString(m.resolve("generation_config.json"), "{\"temperature\": -3, \"max_new_tokens\": 5}");
        Run bad = run("run", "--model", m.toString(), "Hello");
        assertEquals(1, bad.exit);
        assertTrue(bad.err.contains("temperature must be ≥ 0, got -3.0"), bad.err);
        // the option wins over the file; max_new_tokens from the file caps the answer
        Run ok = run("run", "--model", m.toString(), "-t", "0", "Hello");
        assertEquals(0, ok.exit, ok.err);
        // 5 tokens of the 766-rank test vocabulary are at most a few dozen characters (512 would be ~1-2 KB)
        assertTrue(ok.out.strip().length() < 120, "answer not capped by max_new_tokens: " + ok.out.length() + " chars");
    }
}
