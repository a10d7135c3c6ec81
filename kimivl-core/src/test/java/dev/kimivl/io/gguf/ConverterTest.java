package dev.kimivl.io.gguf;

import dev.kimivl.config.ModelConfig;
import dev.kimivl.config.PreprocessorConfig;
import dev.kimivl.io.SafetensorsCheckpoint;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.lang.foreign.Arena;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.*;

class ConverterTest {
    static final Path GGUF = GgufReaderTest.GGUF;
    static final Path HF = GgufReaderTest.HF;
    /** Keys the converter does not reproduce: informational names, and the tokenizer (a_text_only has none). */
    static final Set<String> SKIP = Set.of("general.name", "general.size_label");

    static void assertSameTensors(Path golden, Path written, boolean metadata) {
        try (Arena arena = Arena.ofConfined()) {
            GgufFile a = GgufFile.open(golden, arena), b = GgufFile.open(written, arena);
            assertEquals(new ArrayList<>(a.tensorInfos().keySet()), new ArrayList<>(b.tensorInfos().keySet()), "tensor names and order");
            for (GgufFile.TensorInfo ta : a.tensorInfos().values()) {
                GgufFile.TensorInfo tb = b.tensorInfos().get(ta.name());
                assertEquals(ta.type(), tb.type(), ta.name());
                assertArrayEquals(ta.ne(), tb.ne(), ta.name());
                byte[] da = a.rawData().asSlice(a.dataOffset() + ta.offset(), ta.bytes()).toArray(ValueLayout.JAVA_BYTE);
                byte[] db = b.rawData().asSlice(b.dataOffset() + tb.offset(), tb.bytes()).toArray(ValueLayout.JAVA_BYTE);
                assertArrayEquals(da, db, ta.name() + " data");
            }
            if (metadata) {
                List<String> ka = new ArrayList<>(), kb = new ArrayList<>();
                for (String k : a.metadata().keySet()) if (!SKIP.contains(k) && !k.startsWith("tokenizer.")) ka.add(k);
                for (String k : b.metadata().keySet()) if (!SKIP.contains(k) && !k.startsWith("tokenizer.")) kb.add(k);
                assertEquals(ka, kb, "metadata keys in order");
                for (String k : ka) {
                    assertEquals(a.metadataType(k), b.metadataType(k), k);
                    Object va = a.metadata().get(k), vb = b.metadata().get(k);
                    if (va instanceof double[] d) assertArrayEquals(d, (double[]) vb, k);
                    else assertEquals(va, vb, k);
                }
            }
        }
    }

    @Test
    void textF32AndQ8_0EqualTheGoldenFiles(@TempDir Path dir) {
        ModelConfig cfg = ModelConfig.load(HF);
        try (SafetensorsCheckpoint src = SafetensorsCheckpoint.open(HF)) {
            for (Converter.Type t : new Converter.Type[]{Converter.Type.F32, Converter.Type.Q8_0}) {
                Path out = dir.resolve("text-" + t + ".gguf");
                List<String> seen = new ArrayList<>();
                Converter.writeText(src, cfg, null, t, "test", out, (name, i, n, done, total) -> {
                    seen.add(name);
                    assertTrue(done <= total);
                });
                assertFalse(Files.exists(dir.resolve(out.getFileName() + ".tmp")));
                assertSameTensors(GGUF.resolve(t == Converter.Type.F32 ? "text-f32.gguf" : "text-q8_0.gguf"), out, true);
                assertEquals(seen.size(), seen.stream().distinct().count());
            }
        }
    }

    @Test
    void mmprojF32EqualsTheGoldenFile(@TempDir Path dir) {
        ModelConfig cfg = ModelConfig.load(HF);
        try (SafetensorsCheckpoint src = SafetensorsCheckpoint.open(HF)) {
            Path out = dir.resolve("mmproj.gguf");
            Converter.writeMmproj(src, cfg, PreprocessorConfig.load(HF), Converter.Type.F32, "test", out, null);
            assertSameTensors(GGUF.resolve("mmproj-f32.gguf"), out, true);
        }
    }

    @Test
    void q4_0Q4_K_MAndBf16RoundTripThroughTheReader(@TempDir Path dir) {
        ModelConfig cfg = ModelConfig.load(HF);
        try (SafetensorsCheckpoint src = SafetensorsCheckpoint.open(HF)) {
            for (Converter.Type t : new Converter.Type[]{Converter.Type.BF16, Converter.Type.Q4_0, Converter.Type.Q4_K_M}) {
                Path text = dir.resolve("t-" + t + ".gguf"), mm = dir.resolve("m-" + t + ".gguf");
                Converter.writeText(src, cfg, null, t, null, text, null);
                Converter.writeMmproj(src, cfg, null, t, null, mm, null);
                try (GgufModel g = GgufModel.open(text, mm)) {
                    assertEquals(cfg.text(), g.config().text());
                    for (String n : g.names()) {
                        float[] ref = src.tensor(n).toFloats(), got = g.tensor(n).toFloats();
                        float amax = 0;
                        for (float v : ref) amax = Math.max(amax, Math.abs(v));
                        float tol = t == Converter.Type.BF16 ? 0 : amax / 6;
                        for (int i = 0; i < ref.length; i++) assertEquals(ref[i], got[i], tol, t + " " + n + "[" + i + "]");
                    }
                }
            }
        }
    }

    @Test
    void tokenizerFromTiktokenModel(@TempDir Path dir) throws Exception {
        Path tok = dir.resolve("tok");
        Files.createDirectories(tok);
        Files.copy(GgufReaderTest.GOLDEN.resolve("tokenizer/tiktoken.model"), tok.resolve("tiktoken.model"));
        Files.writeString(tok.resolve("tokenizer_config.json"),
                "{\"added_tokens_decoder\": {\"1000\": {\"content\": \"<|media_pad|>\", \"special\": true}}}");
        ModelConfig cfg = ModelConfig.load(HF);
        Path out = dir.resolve("t.gguf");
        try (SafetensorsCheckpoint src = SafetensorsCheckpoint.open(HF)) {
            Converter.writeText(src, cfg, tok, Converter.Type.F32, null, out, null);
        }
        String[] byteChars = Converter.gpt2ByteChars();
        List<String> lines = Files.readAllLines(tok.resolve("tiktoken.model"));
        try (GgufModel g = GgufModel.open(out)) {
            String[] tokens = (String[]) g.textFile().metadata().get("tokenizer.ggml.tokens");
            long[] types = (long[]) g.textFile().metadata().get("tokenizer.ggml.token_type");
            assertEquals(1024, tokens.length);
            for (String line : lines.subList(0, 1000)) {
                String[] p = line.split(" ");
                int rank = Integer.parseInt(p[1]);
                StringBuilder sb = new StringBuilder();
                for (byte b : java.util.Base64.getDecoder().decode(p[0])) sb.append(byteChars[b & 0xFF]);
                assertEquals(sb.toString(), tokens[rank], "token " + rank);
                assertEquals(1, types[rank]);
            }
            assertEquals("<|media_pad|>", tokens[1000]);
            assertEquals(3, types[1000]);
            assertEquals(1, types[1001]); // rank 1001 of this (synthetic, 2256-rank) tiktoken.model
            assertEquals(1000, g.config().mediaPlaceholderTokenId());
            assertEquals("kimi-k2", g.textFile().string("tokenizer.ggml.pre", null));
            assertEquals(1009, g.config().text().bosTokenId());
        }
    }

    @Test
    void writerRoundTripsAllMetadataKinds(@TempDir Path dir) {
        Path p = dir.resolve("kv.gguf");
        new GgufWriter().putString("s", "héllo").putU32("u", 4000000000L).putI32("i", -5).putF32("f", 0.1).putBool("b", true)
                .putU64("big", 1L << 40).putStrings("sa", new String[]{"a", "", "ü"}).putI32s("ia", new long[]{1, -2})
                .putF32s("fa", new double[]{1.5, -2})
                .addTensor("t", GgmlType.F32, new long[]{3}, d -> d.copyFrom(java.lang.foreign.MemorySegment.ofArray(new float[]{1, 2, 3})))
                .write(p, null);
        try (Arena arena = Arena.ofConfined()) {
            GgufFile f = GgufFile.open(p, arena);
            Map<String, Object> m = f.metadata();
            assertEquals("héllo", m.get("s"));
            assertEquals(4000000000L, m.get("u"));
            assertEquals(-5L, m.get("i"));
            assertEquals(0.1, m.get("f"));
            assertEquals(true, m.get("b"));
            assertEquals(1L << 40, m.get("big"));
            assertArrayEquals(new String[]{"a", "", "ü"}, (String[]) m.get("sa"));
            assertArrayEquals(new long[]{1, -2}, (long[]) m.get("ia"));
            assertArrayEquals(new double[]{1.5, -2}, (double[]) m.get("fa"));
            assertArrayEquals(new float[]{1, 2, 3}, f.tensor("t").toFloats());
            assertEquals(0, f.dataOffset() % 32);
        }
    }
}
