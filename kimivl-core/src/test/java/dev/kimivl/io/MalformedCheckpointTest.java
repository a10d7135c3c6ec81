package dev.kimivl.io;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.kimivl.config.ModelConfig;
import dev.kimivl.model.ExpectedTensors;
import dev.kimivl.testing.Golden;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.function.Consumer;

import static org.junit.jupiter.api.Assertions.*;

/** Each way a checkpoint can be broken gives a CheckpointException that names the file, the tensor and the fault. */
class MalformedCheckpointTest {
    static final ObjectMapper JSON = new ObjectMapper();
    static final String EXPERT = "language_model.model.layers.1.mlp.experts.3.up_proj.weight";

    @TempDir Path dir;
    byte[] original;

    @BeforeEach
    void copyGolden() throws IOException {
        Path src = Golden.root().resolve("a_text_only");
        for (String f : new String[]{"config.json", "model.safetensors"}) Files.copy(src.resolve(f), dir.resolve(f));
        original = Files.readAllBytes(dir.resolve("model.safetensors"));
    }

    Path model() { return dir.resolve("model.safetensors"); }

    /** Rewrites the header JSON of model.safetensors (data section unchanged). */
    void editHeader(Consumer<ObjectNode> edit) throws IOException {
        ByteBuffer b = ByteBuffer.wrap(original).order(ByteOrder.LITTLE_ENDIAN);
        int n = (int) b.getLong(0);
        ObjectNode header = (ObjectNode) JSON.readTree(new String(original, 8, n, StandardCharsets.UTF_8));
        edit.accept(header);
        byte[] h = JSON.writeValueAsBytes(header);
        ByteBuffer out = ByteBuffer.allocate(8 + h.length + original.length - 8 - n).order(ByteOrder.LITTLE_ENDIAN);
        out.putLong(h.length).put(h).put(original, 8 + n, original.length - 8 - n);
        Files.write(model(), out.array());
    }

    String openError() {
        return assertThrows(CheckpointException.class, () -> {
            try (SafetensorsCheckpoint c = SafetensorsCheckpoint.open(dir)) {
                ExpectedTensors.validate(c, ModelConfig.load(dir));
            }
        }).getMessage();
    }

    void assertMentions(String message, String... parts) {
        for (String p : parts) assertTrue(message.contains(p), "message lacks '" + p + "': " + message);
    }

    @Test
    void theUntouchedCopyLoads() {
        try (SafetensorsCheckpoint c = SafetensorsCheckpoint.open(dir)) {
            ExpectedTensors.validate(c, ModelConfig.load(dir));
        }
    }

    @Test
    void fileShorterThanTheHeaderLength() throws IOException {
        Files.write(model(), new byte[]{1, 2, 3, 4});
        assertMentions(openError(), "model.safetensors", "4 bytes is too short");
    }

    @Test
    void headerLengthBeyondTheFile() throws IOException {
        byte[] b = original.clone();
        ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putLong(0, original.length + 100L);
        Files.write(model(), b);
        assertMentions(openError(), "model.safetensors", "header length", "truncated or not safetensors");
    }

    @Test
    void headerThatIsNotJson() throws IOException {
        byte[] b = original.clone();
        b[8] = '[';
        b[9] = '{';
        Files.write(model(), b);
        assertMentions(openError(), "model.safetensors", "header JSON", "does not parse");
    }

    @Test
    void unsupportedDtype() throws IOException {
        editHeader(h -> ((ObjectNode) h.get(EXPERT)).put("dtype", "F8_E9M9"));
        assertMentions(openError(), EXPERT, "unsupported dtype 'F8_E9M9'");
    }

    @Test
    void truncatedData() throws IOException {
        Files.write(model(), Arrays.copyOf(original, original.length - 1000));
        assertMentions(openError(), "model.safetensors", "past the data section", "truncated");
    }

    @Test
    void byteSizeDisagreesWithShape() throws IOException {
        editHeader(h -> ((ObjectNode) h.get(EXPERT)).putArray("shape").add(32).add(65));
        assertMentions(openError(), EXPERT, "[32,65]", "needs 4160");
    }

    @Test
    void overlappingTensors() throws IOException {
        String other = "language_model.model.layers.1.mlp.experts.3.gate_proj.weight";
        editHeader(h -> ((ObjectNode) h.get(EXPERT)).set("data_offsets", h.get(other).get("data_offsets").deepCopy()));
        assertMentions(openError(), "overlap", EXPERT, other);
    }

    @Test
    void missingAndUnexpectedTensors() throws IOException {
        editHeader(h -> h.set(EXPERT.replace("experts.3", "experts.9"), h.remove(EXPERT)));
        assertMentions(openError(), "missing tensor(s): [" + EXPERT + "]", "unexpected tensor(s)", "experts.9.up_proj.weight");
    }

    @Test
    void shapeDisagreesWithConfig() throws IOException {
        String cfg = Files.readString(dir.resolve("config.json")).replace("\"intermediate_size\": 128", "\"intermediate_size\": 256");
        Files.writeString(dir.resolve("config.json"), cfg);
        assertMentions(openError(), "language_model.model.layers.0.mlp.gate_proj.weight", "has shape [128, 64]", "implies [256, 64]");
    }

    @Test
    void configFieldOfTheWrongType() throws IOException {
        String cfg = Files.readString(dir.resolve("config.json")).replace("\"num_hidden_layers\": 3", "\"num_hidden_layers\": \"three\"");
        Files.writeString(dir.resolve("config.json"), cfg);
        assertMentions(openError(), "config.json", "text_config", "num_hidden_layers", "must be an integer");
    }

    @Test
    void indexNamingAMissingShard() throws IOException {
        Files.move(model(), dir.resolve("model-00001-of-00002.safetensors"));
        Files.writeString(dir.resolve("model.safetensors.index.json"),
                "{\"metadata\":{},\"weight_map\":{\"" + EXPERT + "\":\"model-00002-of-00002.safetensors\"}}");
        assertMentions(openError(), "model.safetensors.index.json", "model-00002-of-00002.safetensors", "missing");
    }

    @Test
    void shardHoldingATensorTheIndexDoesNotList() throws IOException {
        Files.move(model(), dir.resolve("model-00001-of-00001.safetensors"));
        Files.writeString(dir.resolve("model.safetensors.index.json"),
                "{\"metadata\":{},\"weight_map\":{\"" + EXPERT + "\":\"model-00001-of-00001.safetensors\"}}");
        assertMentions(openError(), "model-00001-of-00001.safetensors", "is not listed in model.safetensors.index.json");
    }

    @Test
    void shardedCheckpointLoadsLikeTheSingleFile() throws IOException {
        // split the golden file into two shards with an index, as HF does for the real 7-shard model
        var all = SafeTensorsFile.open(model()).tensors();
        SafeTensorsWriter a = new SafeTensorsWriter(), b = new SafeTensorsWriter();
        StringBuilder map = new StringBuilder("{\"metadata\":{\"total_size\":0},\"weight_map\":{");
        int i = 0;
        for (var e : all.entrySet()) {
            SafeTensorsWriter w = i++ % 2 == 0 ? a : b;
            w.bf16(e.getKey(), e.getValue().toFloats(), e.getValue().shape());
            map.append(i > 1 ? "," : "").append('"').append(e.getKey()).append("\":\"model-0000").append(w == a ? 1 : 2).append("-of-00002.safetensors\"");
        }
        a.write(dir.resolve("model-00001-of-00002.safetensors"));
        b.write(dir.resolve("model-00002-of-00002.safetensors"));
        Files.writeString(dir.resolve("model.safetensors.index.json"), map.append("}}").toString());
        Files.delete(model());
        try (SafetensorsCheckpoint c = SafetensorsCheckpoint.open(dir)) {
            ExpectedTensors.validate(c, ModelConfig.load(dir));
            assertArrayEquals(all.get(EXPERT).toFloats(), c.tensor(EXPERT).toFloats());
            String origin = c.tensor(EXPERT).origin();   // the shard's whole path
            assertTrue(origin.equals(dir.resolve("model-00001-of-00002.safetensors").toString())
                    || origin.equals(dir.resolve("model-00002-of-00002.safetensors").toString()), origin);
        }
    }

    @Test
    void noWeightsAtAll() throws IOException {
        Files.delete(model());
        assertMentions(openError(), "no model.safetensors.index.json or model.safetensors");
    }
}
