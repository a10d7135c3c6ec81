package dev.kimivl.io.gguf;

import dev.kimivl.config.ModelConfig;
import dev.kimivl.config.TextConfig;
import dev.kimivl.io.CheckpointException;
import dev.kimivl.io.SafetensorsCheckpoint;
import dev.kimivl.io.TensorData;
import dev.kimivl.tensor.DType;
import dev.kimivl.tensor.Matrix;
import dev.kimivl.tensor.QuantMatrix;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.*;

class GgufReaderTest {
    static final Path GOLDEN = Path.of("src/test/resources/golden");
    static final Path GGUF = GOLDEN.resolve("gguf");
    static final Path HF = GOLDEN.resolve("a_text_only");

    @Test
    void f32FilesMapBackToTheCheckpointExactly() {
        try (GgufModel g = GgufModel.open(GGUF.resolve("text-f32.gguf"), GGUF.resolve("mmproj-f32.gguf"));
             SafetensorsCheckpoint hf = SafetensorsCheckpoint.open(HF)) {
            Set<String> expected = hf.names().stream().filter(n -> !n.endsWith("rotary_emb.inv_freq")).collect(Collectors.toCollection(TreeSet::new));
            assertEquals(expected, new TreeSet<>(g.names()));
            for (String n : expected) {
                TensorData a = hf.tensor(n), b = g.tensor(n);
                assertArrayEquals(a.shape(), b.shape(), n);
                assertEquals(DType.F32, b.dtype(), n);
                assertArrayEquals(a.toFloats(), b.toFloats(), 0f, n);
            }
            // experts are slices of the mapped 3-D tensor, wqkv a slice spanning q, k, v (no copies)
            assertTrue(g.tensor("language_model.model.layers.1.mlp.experts.5.up_proj.weight").data().isMapped());
            assertTrue(g.tensor("vision_tower.encoder.blocks.0.wqkv.weight").data().isMapped());
        }
    }

    @Test
    void configFromMetadataMatchesConfigJson() {
        ModelConfig hf = ModelConfig.load(HF);
        try (GgufModel g = GgufModel.open(GGUF.resolve("mmproj-f32.gguf"), GGUF.resolve("text-f32.gguf"))) {
            ModelConfig c = g.config();
            assertEquals("kimi_vl", c.modelType());
            assertEquals(hf.textPrefix(), c.textPrefix());
            assertEquals(hf.mediaPlaceholderTokenId(), c.mediaPlaceholderTokenId());
            assertEquals(hf.vision(), c.vision());
            TextConfig a = hf.text(), b = c.text();
            // HF's config.json has max_position_embeddings etc. exactly as the GGUF; q_lora_rank null ↔ 0
            assertEquals(a, b);
        }
    }

    @Test
    void q8FileLoadsWithQuantizedMatrices() {
        try (GgufModel g = GgufModel.open(GGUF.resolve("text-q8_0.gguf"));
             SafetensorsCheckpoint hf = SafetensorsCheckpoint.open(HF)) {
            assertEquals("language_model.", g.config().textPrefix());
            for (String n : g.names()) {
                TensorData t = g.tensor(n);
                float[] ref = hf.tensor(n).toFloats();
                float[] got = t.toFloats();
                float amax = 0;
                for (float v : ref) amax = Math.max(amax, Math.abs(v));
                for (int i = 0; i < ref.length; i++) assertEquals(ref[i], got[i], amax / 100, n + "[" + i + "]");
                if (t.shape().length == 2 && !n.endsWith("mlp.gate.weight") && !n.endsWith("kv_b_proj.weight")) {
                    assertEquals(DType.Q8_0, t.dtype(), n);
                    Matrix m = t.matrix();
                    assertInstanceOf(QuantMatrix.class, m, n);
                }
            }
            assertEquals(DType.F32, g.tensor("language_model.model.layers.1.mlp.gate.weight").dtype());
            assertEquals(DType.F32, g.tensor("language_model.model.layers.1.self_attn.kv_b_proj.weight").dtype());
            assertEquals(DType.F16, g.textFile().tensor("blk.1.attn_k_b.weight").dtype());
        }
    }

    @Test
    void metadataOfAllKinds() {
        try (Arena arena = Arena.ofConfined()) {
            GgufFile f = GgufFile.open(GGUF.resolve("text-f32.gguf"), arena);
            assertEquals(3, f.version());
            assertEquals("deepseek2", f.string("general.architecture", null));
            assertEquals(1e-5, f.number("deepseek2.attention.layer_norm_rms_epsilon", 0));
            assertEquals(2.446, f.number("deepseek2.expert_weights_scale", 0));
            assertTrue(f.bool("deepseek2.expert_weights_norm", false));
            String[] tokens = (String[]) f.metadata().get("tokenizer.ggml.tokens");
            assertEquals(1024, tokens.length);
            assertEquals("<|media_pad|>", tokens[1000]);
            long[] types = (long[]) f.metadata().get("tokenizer.ggml.token_type");
            assertEquals(3, types[1000]);
            assertEquals(5, types[300]);
            assertEquals(1009, f.integer("tokenizer.ggml.bos_token_id", 0));
            assertEquals(0, f.integer("deepseek2.attention.q_lora_rank", -1));
            GgufFile m = GgufFile.open(GGUF.resolve("mmproj-f32.gguf"), arena);
            assertArrayEquals(new double[]{0.5, 0.5, 0.5}, (double[]) m.metadata().get("clip.vision.image_mean"));
            assertArrayEquals(new long[]{48, 64}, m.tensorInfos().get("v.position_embd.weight").ne());
        }
    }

    // ---- malformed files

    static byte[] golden() throws IOException { return Files.readAllBytes(GGUF.resolve("mmproj-f32.gguf")); }

    static String openError(Path dir, byte[] bytes) throws IOException {
        Path p = dir.resolve("bad.gguf");
        Files.write(p, bytes);
        try (Arena arena = Arena.ofConfined()) {
            CheckpointException e = assertThrows(CheckpointException.class, () -> GgufFile.open(p, arena));
            assertTrue(e.getMessage().startsWith(p.toString()), e.getMessage());
            return e.getMessage();
        }
    }

    @Test
    void badMagic(@TempDir Path dir) throws IOException {
        byte[] b = golden();
        b[0] = 'X';
        assertTrue(openError(dir, b).contains("not a GGUF file"));
        assertTrue(openError(dir, new byte[5]).contains("too short"));
    }

    @Test
    void badVersion(@TempDir Path dir) throws IOException {
        byte[] b = golden();
        b[4] = 9;
        assertTrue(openError(dir, b).contains("version 9"));
    }

    @Test
    void truncated(@TempDir Path dir) throws IOException {
        byte[] b = golden();
        String m = openError(dir, Arrays.copyOf(b, 300));
        assertTrue(m.contains("truncated") && m.contains("offset"), m);
        m = openError(dir, Arrays.copyOf(b, b.length - 100));
        assertTrue(m.contains("tensor '") && m.contains("file ends at " + (b.length - 100)), m);
    }

    /** Offset of the tensor info of {@code name} (its name's length field). */
    static int infoOffset(byte[] b, String name) {
        byte[] n = name.getBytes();
        outer:
        for (int i = 8; i < b.length - n.length; i++) {
            for (int j = 0; j < n.length; j++) if (b[i + j] != n[j]) continue outer;
            long len = ByteBuffer.wrap(b, i - 8, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
            if (len == n.length) return i - 8;
        }
        throw new AssertionError(name);
    }

    @Test
    void unknownTypeAndDataPastEnd(@TempDir Path dir) throws IOException {
        byte[] b = golden();
        String name = "mm.2.bias";
        int at = infoOffset(b, name) + 8 + name.length(); // n_dims
        ByteBuffer bb = ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN);
        int nd = bb.getInt(at);
        int typeAt = at + 4 + 8 * nd, offAt = typeAt + 4;
        byte[] c = b.clone();
        ByteBuffer.wrap(c).order(ByteOrder.LITTLE_ENDIAN).putInt(typeAt, 99);
        String m = openError(dir, c);
        assertTrue(m.contains("'" + name + "'") && m.contains("unknown ggml type 99"), m);
        c = b.clone();
        ByteBuffer.wrap(c).order(ByteOrder.LITTLE_ENDIAN).putLong(offAt, 1L << 30);
        m = openError(dir, c);
        assertTrue(m.contains("'" + name + "'") && m.contains("file ends at"), m);
        c = b.clone();
        ByteBuffer.wrap(c).order(ByteOrder.LITTLE_ENDIAN).putLong(offAt, 8);
        m = openError(dir, c);
        assertTrue(m.contains("overlaps") || m.contains("aligned"), m);
    }
}
