package dev.kimivl.model;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.kimivl.config.ModelConfig;
import dev.kimivl.io.SafeTensorsFile;
import dev.kimivl.io.SafeTensorsWriter;
import dev.kimivl.io.SafetensorsCheckpoint;
import dev.kimivl.io.TensorData;
import dev.kimivl.testing.Golden;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/** The same weights in the other published forms (plain DeepSeek-V3 text config, F32 and F16 tensors) give the same model. */
class CheckpointFormsTest {
    static final ObjectMapper JSON = new ObjectMapper();

    static float[] logits(Path dir) {
        Golden g = Golden.load("a_text_only");
        ModelConfig cfg = ModelConfig.load(dir);
        try (SafetensorsCheckpoint c = SafetensorsCheckpoint.open(dir)) {
            ExpectedTensors.validate(c, cfg);
            LanguageModel lm = LanguageModel.load(c, cfg.text(), cfg.textPrefix());
            int[] ids = g.inputIds();
            return lm.allLogits(lm.forward(lm.embed(ids), ids.length, lm.newCache(64), StageSink.NONE, null), ids.length);
        }
    }

    /** Rewrites the golden weights whose names start with dropPrefix, without it, in the given dtype. */
    static void writeWeights(Path out, String dropPrefix, String dtype) throws IOException {
        Map<String, TensorData> all = SafeTensorsFile.open(Golden.root().resolve("a_text_only/model.safetensors")).tensors();
        SafeTensorsWriter w = new SafeTensorsWriter();
        for (var e : all.entrySet()) {
            if (!e.getKey().startsWith(dropPrefix)) continue;     // a text-only checkpoint has no vision tower
            String name = e.getKey().startsWith(dropPrefix) ? e.getKey().substring(dropPrefix.length()) : e.getKey();
            float[] v = e.getValue().toFloats();
            switch (dtype) {
                case "F32" -> w.f32(name, v, e.getValue().shape());
                case "BF16" -> w.bf16(name, v, e.getValue().shape());
                default -> w.f16(name, v, e.getValue().shape());
            }
        }
        w.write(out.resolve("model.safetensors"));
    }

    @Test
    void plainDeepseekV3ConfigLikeMoonlight(@TempDir Path dir) throws IOException {
        ObjectNode nested = (ObjectNode) JSON.readTree(Golden.root().resolve("a_text_only/config.json").toFile());
        ObjectNode text = (ObjectNode) nested.get("text_config");
        text.put("model_type", "deepseek_v3");
        text.putArray("architectures").add("DeepseekV3ForCausalLM");
        Files.writeString(dir.resolve("config.json"), text.toPrettyString());
        writeWeights(dir, "language_model.", "BF16");
        ModelConfig cfg = ModelConfig.load(dir);
        assertNull(cfg.vision());
        assertEquals("", cfg.textPrefix());
        // the same weights and model: equal up to float rounding (the Java Vector API kernels of a build without the
        // native library may sum a vector's lanes in another order once C2 compiles them: 1 ulp seen, and 1.01e-5 on a
        // logit of 2.87 after those ulps went through three layers); a config read wrongly moves logits by far more
        assertArrayEquals(logits(Golden.root().resolve("a_text_only")), logits(dir), 5e-5f);
    }

    @Test
    void f32AndF16TensorsLoad(@TempDir Path dir) throws IOException {
        Files.copy(Golden.root().resolve("a_text_only/config.json"), dir.resolve("config.json"));
        float[] ref = logits(Golden.root().resolve("a_text_only"));
        writeWeights(dir, "", "F32");
        assertArrayEquals(ref, logits(dir), 1e-4f, "F32 holds the BF16 values exactly (only the summation order of the kernels differs)");
        writeWeights(dir, "", "F16");
        double d = Golden.maxAbsDiff(ref, logits(dir));
        assertTrue(d < 0.05, "F16 rounding of the weights moves logits by " + d);
    }

    /**
     * q_lora_rank set: with input_layernorm weights of 1 the attention input already has unit RMS, so q_a = I and
     * q_a_layernorm = 1 make q_b_proj(RMSNorm(q_a_proj x)) equal q_proj x (up to the eps terms, ~1e-6 relative):
     * the LoRA model must then give the plain model's logits.
     */
    @Test
    void qLoraPathEqualsThePlainProjectionWhenTheLoraIsAnIdentity(@TempDir Path root) throws IOException {
        Map<String, TensorData> all = SafeTensorsFile.open(Golden.root().resolve("a_text_only/model.safetensors")).tensors();
        ObjectNode cfg = (ObjectNode) JSON.readTree(Golden.root().resolve("a_text_only/config.json").toFile());
        int D = cfg.get("text_config").get("hidden_size").asInt();
        float[] eye = new float[D * D], ones = new float[D];
        for (int i = 0; i < D; i++) { eye[i * D + i] = 1; ones[i] = 1; }
        Path plain = Files.createDirectories(root.resolve("plain")), lora = Files.createDirectories(root.resolve("lora"));
        SafeTensorsWriter wp = new SafeTensorsWriter(), wl = new SafeTensorsWriter();
        for (var e : all.entrySet()) {
            String n = e.getKey();
            float[] v = n.endsWith("input_layernorm.weight") ? ones : e.getValue().toFloats();
            wp.f32(n, v, e.getValue().shape());
            if (n.endsWith("self_attn.q_proj.weight")) {
                String p = n.substring(0, n.length() - "q_proj.weight".length());
                wl.f32(p + "q_a_proj.weight", eye, D, D).f32(p + "q_a_layernorm.weight", ones, D).f32(p + "q_b_proj.weight", v, e.getValue().shape());
            } else {
                wl.f32(n, v, e.getValue().shape());
            }
        }
        wp.write(plain.resolve("model.safetensors"));
        wl.write(lora.resolve("model.safetensors"));
        Files.writeString(plain.resolve("config.json"), cfg.toPrettyString());
        ((ObjectNode) cfg.get("text_config")).put("q_lora_rank", D);
        Files.writeString(lora.resolve("config.json"), cfg.toPrettyString());
        assertEquals(D, ModelConfig.load(lora).text().qLoraRank());
        double d = Golden.maxAbsDiff(logits(plain), logits(lora));
        assertTrue(d < 1e-3, "q LoRA vs plain q_proj: max |Δlogit| " + d);
    }
}
