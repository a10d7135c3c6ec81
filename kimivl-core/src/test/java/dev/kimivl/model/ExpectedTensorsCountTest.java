package dev.kimivl.model;

import dev.kimivl.config.ModelConfig;
import dev.kimivl.config.VisionConfig;
import dev.kimivl.io.CheckpointException;
import dev.kimivl.io.SafetensorsCheckpoint;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.*;

/**
 * {@link ExpectedTensors#count} counts what {@link ExpectedTensors#of} lists without listing it, so that a layer,
 * block or expert count from a file (GgufFuzzTest's regress-vision-block-count: 196,610 vision blocks, a 2.4-million
 * name list, 18 s) is refused against the tensors the checkpoint holds before any list is built.
 */
class ExpectedTensorsCountTest {

    /**
     * Every config.json in the repository (models, golden cases), and tiny-random's changed in each way the list
     * depends on (their shapes are all alike): q_lora_rank, greedy routing (no correction bias), no shared experts,
     * tied embeddings, MoE every second layer, and the plain DeepSeek-V3 form without vision.
     */
    static List<ModelConfig> configs() throws Exception {
        List<ModelConfig> out = new ArrayList<>();
        for (Path root : List.of(Path.of("../models"), Path.of("src/test/resources/golden"))) {
            try (Stream<Path> s = Files.walk(root)) {
                for (Path p : s.filter(f -> f.getFileName().toString().equals("config.json")).sorted().toList()) {
                    out.add(ModelConfig.load(p.getParent()));
                }
            }
        }
        var json = new com.fasterxml.jackson.databind.ObjectMapper();
        String tiny = Files.readString(Path.of("../models/tiny-random/config.json"));
        for (String change : List.of("{\"q_lora_rank\": 16}", "{\"topk_method\": \"greedy\"}", "{\"n_shared_experts\": 0}",
                "{\"tie_word_embeddings\": true}", "{\"moe_layer_freq\": 2, \"num_hidden_layers\": 5}")) {
            var root = (com.fasterxml.jackson.databind.node.ObjectNode) json.readTree(tiny);
            ((com.fasterxml.jackson.databind.node.ObjectNode) root.get("text_config")).setAll(
                    (com.fasterxml.jackson.databind.node.ObjectNode) json.readTree(change));
            out.add(ModelConfig.parse(root.toString(), "tiny-random + " + change));
        }
        var plain = (com.fasterxml.jackson.databind.node.ObjectNode) json.readTree(tiny).get("text_config");
        plain.put("model_type", "deepseek_v3");
        out.add(ModelConfig.parse(plain.toString(), "tiny-random's text_config as a DeepSeek-V3 config"));
        return out;
    }

    @Test
    void theCountIsTheListsSizeForEveryConfigInTheRepository() throws Exception {
        List<ModelConfig> configs = configs();
        assertTrue(configs.size() >= 6, configs.size() + " configs");
        boolean moe = false, dense = false, vision = false, textOnly = false, qLora = false, tied = false;
        for (ModelConfig c : configs) {
            int n = ExpectedTensors.of(c).size();
            assertEquals(n, ExpectedTensors.count(c, Long.MAX_VALUE), c.toString());
            assertEquals(n, ExpectedTensors.count(c, n), "exactly at the limit");
            assertEquals(-1, ExpectedTensors.count(c, n - 1), "one past the limit");
            for (int l = 0; l < c.text().numLayers(); l++) {
                if (c.text().isMoeLayer(l)) moe = true;
                else dense = true;
            }
            if (c.vision() != null) vision = true;
            else textOnly = true;
            qLora |= c.text().qLoraRank() > 0;
            tied |= c.text().tieWordEmbeddings();
        }
        assertTrue(moe && dense && vision && textOnly && qLora && tied, "the configs cover MoE and dense layers, with and without vision, q_lora, tied embeddings");
    }

    @Test
    void aHugeBlockCountIsRefusedAtOnceNamingTheCounts() throws Exception {
        Path tiny = Path.of("../models/tiny-random");
        ModelConfig real = ModelConfig.load(tiny);
        VisionConfig v = real.vision();
        // clip.vision.block_count / num_hidden_layers as a fuzzed file could say: 2^31 - 1 blocks
        ModelConfig huge = new ModelConfig(real.modelType(), real.text(),
                new VisionConfig(v.patchSize(), v.hiddenSize(), Integer.MAX_VALUE, v.numHeads(), v.intermediateSize(),
                        v.posEmbHeight(), v.posEmbWidth(), v.mergeH(), v.mergeW()),
                real.textPrefix(), real.mediaPlaceholderTokenId());
        try (SafetensorsCheckpoint w = SafetensorsCheckpoint.open(tiny)) {
            ExpectedTensors.validate(w, real);                                 // the real config: no error
            // without the count, this list would need ~25 billion names: the heap would run out first
            CheckpointException e = assertThrows(CheckpointException.class, () -> ExpectedTensors.validate(w, huge));
            assertTrue(e.getMessage().contains("the config asks for more tensors than the " + w.names().size() + " the checkpoint holds")
                    && e.getMessage().contains(Integer.MAX_VALUE + " vision blocks") && e.getMessage().contains(tiny.toString()), e.getMessage());
        }
    }
}
