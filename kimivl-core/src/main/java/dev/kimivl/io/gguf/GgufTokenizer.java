package dev.kimivl.io.gguf;

import dev.kimivl.io.CheckpointException;
import dev.kimivl.text.Tokenizer;

import java.io.ByteArrayOutputStream;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The tokenizer stored in a GGUF text file as llama.cpp's converter writes Kimi's tiktoken vocabulary
 * ({@code tokenizer.ggml.model} gpt2, {@code pre} kimi-k2): each token's bytes in GPT-2's byte-to-unicode
 * spelling, id = rank, no merges (tiktoken merges by rank). The leading run of normal tokens are the BPE ranks;
 * every later id (control, unused) becomes a special token recognised by its name.
 */
public final class GgufTokenizer {
    private static final int NORMAL = 1;
    private static final int[] UNICODE_TO_BYTE = gpt2ByteDecoder();

    private GgufTokenizer() {}

    /** The tokenizer of a deepseek2 GGUF, or null when the file has no tokenizer section. */
    public static Tokenizer load(GgufFile f) {
        if (!(f.metadata().get("tokenizer.ggml.tokens") instanceof String[] tokens)) return null;
        String model = f.string("tokenizer.ggml.model", "");
        String pre = f.string("tokenizer.ggml.pre", "");
        if (!model.equals("gpt2") || !pre.equals("kimi-k2")) {
            throw new CheckpointException(f.path() + ": tokenizer.ggml.model '" + model + "' with pre-tokenizer '" + pre
                    + "' is not supported (Kimi's vocabulary is gpt2 + kimi-k2)");
        }
        long[] types = f.metadata().get("tokenizer.ggml.token_type") instanceof long[] t ? t : null;
        int ranks = 0;
        if (types != null && types.length != tokens.length) {
            throw new CheckpointException(f.path() + ": tokenizer.ggml.token_type has " + types.length + " entries but tokenizer.ggml.tokens has " + tokens.length);
        }
        while (ranks < tokens.length && (types == null || types[ranks] == NORMAL)) ranks++;
        byte[][] bytes = new byte[ranks][];
        for (int i = 0; i < ranks; i++) bytes[i] = decode(tokens[i], f, i);
        Map<String, Integer> specials = new LinkedHashMap<>();
        for (int i = ranks; i < tokens.length; i++) {
            // a name given twice would leave the first id without one: a hole the model can still sample, which
            // failed the decoder mid-answer (GgufFuzzTest#mixedHeader's regress-duplicate-special)
            Integer earlier = specials.put(tokens[i], i);
            if (earlier != null) {
                throw new CheckpointException(f.path() + ": tokenizer.ggml.tokens names special tokens " + earlier + " and " + i + " both '"
                        + tokens[i] + "'");
            }
        }
        try {
            return Tokenizer.create(bytes, Tokenizer.KIMI_PATTERN, specials, f.path().toString());
        } catch (IllegalArgumentException e) {
            // a vocabulary Tokenizer refuses (duplicate or missing bytes, an empty special name): a bad checkpoint
            throw new CheckpointException(e.getMessage() + " (tokenizer.ggml.tokens)", e);
        }
    }

    private static byte[] decode(String token, GgufFile f, int id) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(token.length());
        for (int i = 0; i < token.length(); i++) {
            char c = token.charAt(i);
            int b = c < UNICODE_TO_BYTE.length ? UNICODE_TO_BYTE[c] : -1;
            if (b < 0) throw new CheckpointException(f.path() + ": token " + id + " '" + token + "' has character U+" + Integer.toHexString(c) + ", not in GPT-2's byte alphabet");
            out.write(b);
        }
        return out.toByteArray();
    }

    /** GPT-2's bytes_to_unicode, inverted: printable Latin-1 bytes stand for themselves, the rest map to 256 + n. */
    private static int[] gpt2ByteDecoder() {
        int[] dec = new int[512];
        java.util.Arrays.fill(dec, -1);
        int n = 0;
        for (int b = 0; b < 256; b++) {
            boolean printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            if (printable) dec[b] = b;
            else dec[256 + n++] = b;
        }
        return dec;
    }
}
