package dev.kimivl.bench;

import dev.kimivl.config.ModelConfig;
import dev.kimivl.config.TextConfig;
import dev.kimivl.io.gguf.GgufFile;
import dev.kimivl.io.gguf.GgufWriter;
import dev.kimivl.text.Tokenizer;

import java.lang.foreign.Arena;
import java.nio.file.Path;
import java.util.Map;

/**
 * The tokenizer section of the bench's random text GGUFs: llama.cpp (and ik_llama.cpp) refuse a text model without
 * one ("key not found in model: tokenizer.ggml.model"), so {@code kimivl bench --llama-bench} could not run them on the
 * same file. Kimi's layout with dummy entries: {@code tokenizer.ggml.model} gpt2, pre-tokenizer {@code kimi-k2}, one
 * token per vocabulary row (the logits have their real width): the 256 byte tokens in GPT-2's byte-to-unicode spelling
 * (so any text tokenizes, a byte at a time), {@code [PAD<id>]} (type unused) up to the special range, then Kimi's
 * special names ({@link Tokenizer#defaultSpecials}, spec §7.1) from {@code vocab - 256} on, with [BOS], [EOS] and
 * {@code <|media_pad|>} at the config's ids; an empty merges list (llama.cpp's BPE loader requires the key; tiktoken
 * vocabularies merge by rank, and there is nothing to merge here).
 */
public final class BenchTokenizer {
    private BenchTokenizer() {}

    static final int NORMAL = 1, CONTROL = 3, UNUSED = 5;

    /** Adds the tokenizer keys for cfg's vocabulary to w, which holds Converter's text metadata (with the bos/eos ids). */
    public static void put(GgufWriter w, ModelConfig cfg) {
        TextConfig c = cfg.text();
        int vocab = c.vocabSize();
        if (vocab < 256) throw new IllegalArgumentException("benchmark tokenizer: vocab_size " + vocab + " < 256 byte tokens");
        String[] tokens = new String[vocab];
        long[] types = new long[vocab];
        String[] byteChars = gpt2ByteChars();
        for (int b = 0; b < 256; b++) { tokens[b] = byteChars[b]; types[b] = NORMAL; }
        // Kimi's special block starts 256 ids before the end of the vocabulary (163584 for 163840); smaller test
        // configs put it where there is room after the byte tokens
        int first = Math.max(256, vocab - 256);
        for (Map.Entry<String, Integer> e : Tokenizer.defaultSpecials(first).entrySet()) {
            if (e.getValue() < vocab) { tokens[e.getValue()] = e.getKey(); types[e.getValue()] = CONTROL; }
        }
        // the config's own ids win (a test config may place [BOS] elsewhere); the slot a name moves away from gets a reserved name
        special(tokens, types, c.bosTokenId(), "[BOS]");
        special(tokens, types, c.eosTokenId(), "[EOS]");
        special(tokens, types, cfg.mediaPlaceholderTokenId(), "<|media_pad|>");
        for (int i = 256; i < vocab; i++) if (tokens[i] == null) { tokens[i] = "[PAD" + i + "]"; types[i] = UNUSED; }
        w.putString("tokenizer.ggml.model", "gpt2").putString("tokenizer.ggml.pre", "kimi-k2")
                .putStrings("tokenizer.ggml.tokens", tokens).putI32s("tokenizer.ggml.token_type", types)
                .putStrings("tokenizer.ggml.merges", new String[0]);
        // tokenizer.ggml.bos_token_id / eos_token_id: Converter's metadata already has them, from the same config
        w.putBool("tokenizer.ggml.add_bos_token", false);
    }

    private static void special(String[] tokens, long[] types, int id, String name) {
        if (id < 256 || id >= tokens.length) return;
        for (int i = 256; i < tokens.length; i++) {
            if (i != id && name.equals(tokens[i])) tokens[i] = "<|reserved_token_" + i + "|>";
        }
        tokens[id] = name;
        types[id] = CONTROL;
    }

    /** True when the GGUF file has a tokenizer section (tokenizer.ggml.model); false for bench files written before it. */
    public static boolean present(Path gguf) {
        try (Arena arena = Arena.ofConfined()) {
            GgufFile g = GgufFile.open(gguf, arena);
            return g.metadata().containsKey("tokenizer.ggml.model") && g.metadata().get("tokenizer.ggml.tokens") instanceof String[];
        } catch (RuntimeException e) {
            return false;
        }
    }

    /** GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the other 68 map to U+0100 + n in byte order. */
    static String[] gpt2ByteChars() {
        String[] out = new String[256];
        int n = 0;
        for (int b = 0; b < 256; b++) {
            boolean printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            out[b] = String.valueOf((char) (printable ? b : 256 + n++));
        }
        return out;
    }
}
