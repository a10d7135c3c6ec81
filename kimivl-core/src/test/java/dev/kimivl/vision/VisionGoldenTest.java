package dev.kimivl.vision;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.kimivl.config.ModelConfig;
import dev.kimivl.config.PreprocessorConfig;
import dev.kimivl.io.SafeTensorsFile;
import dev.kimivl.io.SafetensorsCheckpoint;
import dev.kimivl.io.TensorData;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/** Golden cases b, c, d (golden/README.md): every vision stage against the PyTorch oracle. */
class VisionGoldenTest {
    static final float ATOL = 5e-5f;

    static Path golden(String name) throws Exception {
        return Path.of(VisionGoldenTest.class.getResource("/golden/" + name + "/config.json").toURI()).getParent();
    }

    @ParameterizedTest
    @ValueSource(strings = {"b_one_image", "c_two_images", "d_downscale"})
    void matchesGoldenStageByStage(String name) throws Exception {
        Path dir = golden(name);
        JsonNode inputs = new ObjectMapper().readTree(dir.resolve("inputs.json").toFile());
        ModelConfig cfg = ModelConfig.load(dir);
        PreprocessorConfig pre = PreprocessorConfig.load(dir);
        ImageLoader loader = new ImageLoader();
        List<LoadedImage> images = new ArrayList<>();
        for (JsonNode f : inputs.get("images")) images.add(loader.load(dir.resolve(f.asText())));

        SafeTensorsFile expected = SafeTensorsFile.open(dir.resolve("expected.safetensors"));
        VisionOutput out;
        try (SafetensorsCheckpoint ckpt = SafetensorsCheckpoint.open(dir)) {
            out = new VisionEncoder(ckpt, cfg, pre).encode(images, true);
        }

        // token counts: from the output, from inputs.json and from the size-only helper used to build prompts
        JsonNode tok = inputs.get("num_image_tokens");
        for (int m = 0; m < images.size(); m++) {
            assertEquals(tok.get(m).asInt(), out.tokens()[m], name + " image " + m + " tokens");
            assertEquals(tok.get(m).asInt(), VisionEncoder.tokensFor(images.get(m).width(), images.get(m).height(), pre));
        }
        int[] grids = expected.tensors().get("image_grid_hws").toInts();
        for (int m = 0; m < images.size(); m++) {
            assertArrayEquals(new int[]{grids[2 * m], grids[2 * m + 1]}, out.grids()[m], name + " grid " + m);
        }

        StringBuilder report = new StringBuilder(name + " max |Δ|:");
        float[] px = expected.tensors().get("pixel_values").toFloats();
        float[] gotPx = out.stages().get("pixel_values");
        assertEquals(px.length, gotPx.length, "pixel_values length");
        for (int i = 0; i < px.length; i++) {
            if (Float.floatToIntBits(px[i]) != Float.floatToIntBits(gotPx[i])) {
                fail(name + " pixel_values differ at " + i + " (patch " + i / 588 + "): " + gotPx[i] + " vs " + px[i]);
            }
        }
        report.append(" pixel_values 0 (bit-exact)");
        List<String> stages = new ArrayList<>(List.of("vision.patch_embed"));
        for (int b = 0; b < cfg.vision().numLayers(); b++) stages.add("vision.block" + b);
        stages.addAll(List.of("vision_tower_out", "merged", "image_features"));
        for (String s : stages) {
            TensorData e = expected.tensors().get(s);
            assertNotNull(e, s + " missing from expected");
            float[] want = e.toFloats(), got = out.stages().get(s);
            int[] shape = Arrays.stream(e.shape()).mapToInt(Math::toIntExact).toArray();
            assertArrayEquals(shape, out.shapes().get(s), s + " shape");
            double max = 0;
            int at = -1;
            for (int i = 0; i < want.length; i++) {
                double d = Math.abs(want[i] - got[i]);
                if (!(d <= max)) { max = d; at = i; }
            }
            report.append(String.format(" | %s %.2e", s, max));
            assertTrue(max <= ATOL, name + " " + s + ": max |Δ| " + max + " at " + at + " (got " + got[Math.max(at, 0)] + ", want " + want[Math.max(at, 0)] + ")");
        }
        assertArrayEquals(out.stages().get("image_features"), out.features());
        System.out.println(report);
    }
}
