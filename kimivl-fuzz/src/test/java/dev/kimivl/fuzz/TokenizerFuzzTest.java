package dev.kimivl.fuzz;

import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.kimivl.text.IncrementalDecoder;
import dev.kimivl.text.Tokenizer;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Timeout;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;

import static dev.kimivl.fuzz.FuzzSupport.*;

/**
 * Tokenizer files and the tokenizer itself. {@link #tiktokenFile} and {@link #tokenizerConfig} load a model directory
 * whose {@code tiktoken.model} or {@code tokenizer_config.json} is the input: errors are {@link IOException} or
 * {@link IllegalArgumentException} naming that file (the file at fault, not its neighbour). {@link #roundTrip}:
 * decode(encode(s)) == s for every well-formed string, on tiny-random's vocabulary and on the golden tokenizer's
 * (Kimi's regex over a real BPE merge table). {@link #decodeIds}: any ids decode or are refused naming the id, and the
 * incremental decoder's pieces always add up to {@link Tokenizer#decode}.
 */
class TokenizerFuzzTest {
    private static Tokenizer tiny, golden;

    @BeforeAll
    static void load() throws IOException {
        tiny = Tokenizer.load(TINY);
        Path g = scratch("tok-golden");
        Files.copy(GOLDEN.resolve("tokenizer/tiktoken.model"), g.resolve("tiktoken.model"), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        golden = Tokenizer.load(g);
        // tiktokenFile's directory has no tokenizer_config.json: the ranks alone, with Kimi's default special tokens
        Files.copy(TINY.resolve("tiktoken.model"), scratch("tok-config").resolve("tiktoken.model"), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
    }

    @FuzzTest
    @Timeout(10)
    void tiktokenFile(byte[] data) {
        Path dir = scratch("tok-file");
        write(dir.resolve("tiktoken.model"), data);
        loadAndUse(dir, "tiktoken.model");
    }

    @FuzzTest
    @Timeout(10)
    void tokenizerConfig(byte[] data) {
        Path dir = scratch("tok-config");
        write(dir.resolve("tokenizer_config.json"), data);
        loadAndUse(dir, "tokenizer_config.json");
    }

    private static void loadAndUse(Path dir, String file) {
        Tokenizer t;
        try {
            t = Tokenizer.load(dir);
        } catch (IOException | IllegalArgumentException e) {
            requireNamed(e, dir.resolve(file).toString());
            return;
        }
        requireRoundTrip(t, "Hello <|im_end|> wörld 123 ✓ 😀\n\n  x");
    }

    @FuzzTest
    @Timeout(10)
    void roundTrip(byte[] utf8) {
        // raw bytes (seed files stay readable text); malformed UTF-8 becomes U+FFFD, so every s here is well-formed
        String s = new String(utf8, java.nio.charset.StandardCharsets.UTF_8);
        requireRoundTrip(tiny, s);
        requireRoundTrip(golden, s);
    }

    @FuzzTest
    @Timeout(10)
    void decodeIds(byte[] data) {
        // two bytes per id, spread over the vocabulary and a few ids on either side of it
        int[] ids = new int[data.length / 2];
        for (int i = 0; i < ids.length; i++) ids[i] = ((data[2 * i] & 0xFF) | (data[2 * i + 1] & 0xFF) << 8) % (tiny.vocabSize() + 16) - 8;
        String whole;
        try {
            whole = tiny.decode(ids);
        } catch (IllegalArgumentException e) {
            requireNamed(e, "token id");
            return;
        }
        IncrementalDecoder d = tiny.incrementalDecoder(false);
        StringBuilder sb = new StringBuilder();
        for (int id : ids) sb.append(d.push(id));
        sb.append(d.flush());
        if (!sb.toString().equals(whole)) {
            throw new AssertionError("the incremental decoder's pieces " + escape(sb.toString()) + " differ from decode's " + escape(whole));
        }
    }

    /** decode(encode(s)) == s when s is well-formed UTF-16 (a lone surrogate has no UTF-8 and becomes U+FFFD, as in tiktoken). */
    private static void requireRoundTrip(Tokenizer t, String s) {
        if (s == null || !wellFormed(s)) return;
        int[] ids = t.encode(s);
        String back = t.decode(ids);
        if (!back.equals(s)) throw new AssertionError(t + ": decode(encode(s)) != s for s = " + escape(s) + ": " + escape(back));
    }

    private static boolean wellFormed(String s) {
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (Character.isHighSurrogate(c)) {
                if (i + 1 >= s.length() || !Character.isLowSurrogate(s.charAt(i + 1))) return false;
                i++;
            } else if (Character.isLowSurrogate(c)) {
                return false;
            }
        }
        return true;
    }

    private static String escape(String s) {
        StringBuilder sb = new StringBuilder("\"");
        for (char c : s.toCharArray()) sb.append(c >= 0x20 && c < 0x7F ? String.valueOf(c) : String.format("\\u%04x", (int) c));
        return sb.append('"').toString();
    }
}
