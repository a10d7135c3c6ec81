package dev.kimivl.bench;

import dev.kimivl.config.ModelConfig;
import dev.kimivl.io.gguf.Converter;
import dev.kimivl.io.gguf.GgufConfig;
import dev.kimivl.io.gguf.GgufFile;
import dev.kimivl.io.gguf.GgufTokenizer;
import dev.kimivl.text.Tokenizer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.lang.foreign.Arena;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The bench's text GGUFs carry a tokenizer section (llama.cpp refuses a text model without one), in every mix, and
 * {@code kimivl bench --llama-bench} runs llama-bench on exactly the file kimivl benchmarked.
 */
class BenchTokenizerTest {

    @Test
    void everyMixCarriesKimisTokenizerLayout(@TempDir Path dir) throws Exception {
        String json = QuantMixTest.tinyConfig();
        ModelConfig cfg = ModelConfig.parse(json, "tiny");
        for (QuantMix mix : QuantMix.values()) {
            Path text = RandomGguf.ensure(dir, mix, json, 42, null)[0];
            assertTrue(BenchTokenizer.present(text), mix + ": " + text);
            try (Arena arena = Arena.ofConfined()) {
                GgufFile g = GgufFile.open(text, arena);
                assertEquals("gpt2", g.string("tokenizer.ggml.model", null), mix.label());
                assertEquals("kimi-k2", g.string("tokenizer.ggml.pre", null));
                String[] tokens = (String[]) g.metadata().get("tokenizer.ggml.tokens");
                long[] types = (long[]) g.metadata().get("tokenizer.ggml.token_type");
                assertEquals(cfg.text().vocabSize(), tokens.length, "one token per logit");
                assertEquals(tokens.length, types.length);
                assertArrayEquals(new String[0], (String[]) g.metadata().get("tokenizer.ggml.merges"), "llama.cpp's BPE loader needs the key");
                assertEquals("[BOS]", tokens[cfg.text().bosTokenId()]);
                assertEquals("[EOS]", tokens[cfg.text().eosTokenId()]);
                assertEquals("<|media_pad|>", tokens[cfg.mediaPlaceholderTokenId()]);
                assertEquals(3L, types[cfg.text().bosTokenId()], "control");
                assertEquals(1000L, g.integer("tokenizer.ggml.bos_token_id", -1));
                assertEquals("Ċ", tokens['\n'], "GPT-2's spelling of byte 10");
                assertEquals(List.of(1L), java.util.Arrays.stream(types, 0, 256).boxed().distinct().toList(), "256 normal byte tokens");
                assertEquals(5L, types[256], "filler: unused");

                // kimivl reads the same file: the same media id as the config, and a tokenizer that spells bytes
                assertEquals(cfg.mediaPlaceholderTokenId(), GgufConfig.modelConfig(g, null).mediaPlaceholderTokenId());
                Tokenizer tok = GgufTokenizer.load(g);
                assertArrayEquals(new int[]{'h', 'i', '\n'}, tok.encode("hi\n"));
                assertEquals(1000, tok.specialId("[BOS]"));
            }
        }
    }

    @Test
    void aTextFileWrittenWithoutOneIsRewrittenOnlyWhenLlamaBenchNeedsIt(@TempDir Path dir) throws Exception {
        String json = QuantMixTest.tinyConfig();
        ModelConfig cfg = ModelConfig.parse(json, "tiny");
        Path[] f = RandomGguf.files(dir, QuantMix.Q8_0, json);
        Files.createDirectories(dir);
        // the text file as the bench wrote it before: Converter's metadata, no tokenizer
        try (RandomGguf.Source src = new RandomGguf.Source(cfg, dev.kimivl.tensor.DType.Q8_0, 42, true)) {
            Converter.writeText(src, cfg, null, Converter.Type.Q8_0, "old bench file", f[0], null);
        }
        assertFalse(BenchTokenizer.present(f[0]));
        RandomGguf.ensure(dir, QuantMix.Q8_0, json, 42, null);
        assertFalse(BenchTokenizer.present(f[0]), "left alone without --llama-bench");
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        RandomGguf.ensure(dir, QuantMix.Q8_0, json, 42, true, new PrintStream(log, true, StandardCharsets.UTF_8));
        assertTrue(BenchTokenizer.present(f[0]));
        assertTrue(log.toString(StandardCharsets.UTF_8).contains(f[0] + " has no tokenizer section"), log.toString(StandardCharsets.UTF_8));
    }

    /** The real bench on a tiny config, then the stub llama-bench on the file it wrote: the same path, a file it accepts. */
    @Test
    void sideBySideRunsOnTheFileKimivlBenchmarked(@TempDir Path dir) throws Exception {
        String json = QuantMixTest.tinyConfig();
        Path cache = dir.resolve("cache");
        Path log = dir.resolve("order.log");
        LlamaBench stub = LlamaBench.probe(LlamaBenchTest.stub(dir, "llama-bench", LlamaBenchTest.MAINLINE_HELP, LlamaBenchTest.Mode.OK, 8.0, 4.0, 2.0, log));
        ModelBench.Options o = new ModelBench.Options(QuantMix.Q8_0, cache, 16, 4, java.util.List.of(32), ModelBench.ContextFill.RANDOM, java.util.List.of(), 56, false, 32.0, 42, false, true, true);
        Path text = RandomGguf.ensure(cache, QuantMix.Q8_0, json, 42, true, null)[0];
        assertEquals(RandomGguf.files(cache, QuantMix.Q8_0, json)[0], text);
        PrintStream quiet = new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8);
        List<SideBySide.Round> rounds = SideBySide.run(() -> ModelBench.run(o, json, quiet), List.of(stub), text, 16, 4, 32, 1, quiet);
        ModelBench.Result r = rounds.getFirst().kimivl();
        assertTrue(r.file().startsWith(text + " + "), "kimivl benchmarked this text file (and the mmproj): " + r.file());
        List<String> calls = Files.readAllLines(log);
        assertEquals(4, calls.size(), calls.toString());
        int t = r.threads();
        assertEquals("llama-bench -m " + text + " -t " + t + " -p 16 -n 0 -r 1 -o json", calls.get(1));
        assertEquals("llama-bench -m " + text + " -t " + t + " -p 0 -n 4 -d 32 -r 1 -o json", calls.get(3));
        LlamaBench.Figures f = rounds.getFirst().theirs().getFirst().figures();
        String report = ModelBench.text(r, rounds);
        System.out.print(report);
        assertTrue(report.contains(String.format(java.util.Locale.ROOT, "%.2fx", r.prefillTokPerSec() / 8.0)), report);
        assertEquals(2.0, f.depth().avgTs());
    }
}
