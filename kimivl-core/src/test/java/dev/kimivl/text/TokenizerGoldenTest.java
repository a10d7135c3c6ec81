package dev.kimivl.text;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.OptionalInt;

import static org.junit.jupiter.api.Assertions.*;

class TokenizerGoldenTest {
    static final ObjectMapper JSON = new ObjectMapper();
    static Tokenizer tok;

    @BeforeAll
    static void load() throws IOException {
        tok = Tokenizer.load(TestFiles.goldenTokenizerDir());
    }

    static JsonNode golden(String file) throws IOException {
        return JSON.readTree(TestFiles.goldenTokenizerDir().resolve(file).toFile());
    }

    static int[] ints(JsonNode array) {
        int[] out = new int[array.size()];
        for (int i = 0; i < out.length; i++) out[i] = array.get(i).asInt();
        return out;
    }

    static List<String> strings(JsonNode array) {
        List<String> out = new ArrayList<>();
        array.forEach(n -> out.add(n.asText()));
        return out;
    }

    @Test
    void encodesAndDecodesAllGoldenCases() throws IOException {
        JsonNode root = golden("encodings.json");
        assertEquals(root.get("n_base_ranks").asInt(), tok.numRanks());
        assertEquals(root.get("vocab_size_with_specials").asInt(), tok.vocabSize());
        JsonNode cases = root.get("cases");
        assertEquals(60, cases.size());
        for (JsonNode c : cases) {
            String text = c.get("text").asText();
            int[] ids = ints(c.get("ids"));
            assertArrayEquals(ids, tok.encode(text), () -> "encode " + text);
            assertEquals(text, tok.decode(ids), () -> "decode " + Arrays.toString(ids));
            assertEquals(strings(c.get("pieces")), tok.pieces(text), () -> "pieces of " + text);
        }
    }

    @Test
    void preTokenizerMatchesHandCheckedSplits() throws IOException {
        JsonNode cases = golden("pretokenizer_hand_checked.json");
        assertEquals(25, cases.size());
        for (JsonNode c : cases) {
            String text = c.get("text").asText();
            assertEquals(strings(c.get("pieces")), tok.pieces(text), () -> "pieces of " + text);
        }
    }

    @Test
    void specialTokenTableMatchesGolden() throws IOException {
        JsonNode root = golden("special_tokens.json");
        int first = root.get("first_special_id").asInt();
        int count = root.get("count").asInt();
        assertEquals(first, tok.numRanks());
        assertEquals(first + count, tok.vocabSize());
        assertEquals(count, tok.specialTokens().size());
        root.get("named").fields().forEachRemaining(e -> {
            assertEquals(e.getValue().asInt(), tok.specialId(e.getKey()), e.getKey());
            assertEquals(e.getKey(), tok.tokenName(e.getValue().asInt()));
        });
        for (int id = first; id < first + count; id++) {
            assertTrue(tok.isSpecial(id));
            String name = tok.tokenName(id);
            if (!name.startsWith("[") && !root.get("named").has(name)) assertEquals("<|reserved_token_" + id + "|>", name);
            assertArrayEquals(new int[] {id}, tok.encode(name), name);
        }
        assertFalse(tok.isSpecial(first - 1));
        assertFalse(tok.isSpecial(first + count));
        assertEquals(OptionalInt.of(2258), tok.tokenId("<|im_end|>"));
        assertTrue(tok.tokenId("<|no_such_token|>").isEmpty());
        var e = assertThrows(IllegalArgumentException.class, () -> tok.specialId("<|no_such_token|>"));
        assertTrue(e.getMessage().contains("<|no_such_token|>"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> tok.tokenName(first + count));
        assertThrows(IllegalArgumentException.class, () -> tok.decode(new int[] {-1}));
    }

    @Test
    void ordinaryTokenNamesAndIds() {
        int hello = tok.encode("Hello")[0];
        assertEquals("Hello", tok.tokenName(hello));
        assertEquals(OptionalInt.of(hello), tok.tokenId("Hello"));
        int[] han = tok.encode("\u5b66");  // 3 UTF-8 bytes; the vocabulary may split them
        String names = String.join("", Arrays.stream(han).mapToObj(tok::tokenName).toList());
        assertTrue(names.equals("\u5b66") || names.contains("<0xE5>"), names);
    }

    @Test
    void decodeCanSkipSpecialTokens() {
        int[] ids = tok.encode("<|im_user|>user<|im_middle|>hi<|im_end|>");
        assertEquals("userhi", tok.decode(ids, true));
        assertEquals("<|im_user|>user<|im_middle|>hi<|im_end|>", tok.decode(ids, false));
    }

    /** Encoding the chunks one by one, as the reference does, must give the same ids as one call. */
    private static int[] encodeSeparately(String... chunks) {
        return Arrays.stream(chunks).flatMapToInt(c -> Arrays.stream(tok.encode(c))).toArray();
    }

    @Test
    void longWhitespaceRunIsCutAt25000() {
        String spaces = " ".repeat(60_000);
        int[] ids = tok.encode(spaces);
        assertArrayEquals(encodeSeparately(" ".repeat(25_000), " ".repeat(25_000), " ".repeat(10_000)), ids);
        assertEquals(spaces, tok.decode(ids));
        // Without the cut, the regex would end the run one space early ("\s+(?!\S)") and differ.
        String text = "a" + " ".repeat(30_000) + "b";
        assertArrayEquals(encodeSeparately("a" + " ".repeat(25_000), " ".repeat(5_000) + "b"), tok.encode(text));
        assertEquals(text, tok.decode(tok.encode(text)));
    }

    @Test
    void longLetterRunIsCutAt25000() {
        String letters = "abcdefghij".repeat(3_000);  // 30,000 letters
        int[] ids = tok.encode(letters);
        assertArrayEquals(encodeSeparately(letters.substring(0, 25_000), letters.substring(25_000)), ids);
        assertEquals(letters, tok.decode(ids));
    }

    @Test
    void runLengthCountsCodePointsNotUtf16Units() {
        String emoji = "\uD83D\uDE00".repeat(30_000);  // 30,000 code points, 60,000 chars
        int[] ids = tok.encode(emoji);
        assertArrayEquals(encodeSeparately(emoji.substring(0, 50_000), emoji.substring(50_000)), ids);
        assertEquals(emoji, tok.decode(ids));
    }

    @Test
    void runOfExactly25000IsNotCut() {
        String letters = "x".repeat(25_000);
        String text = letters + " " + letters;
        assertArrayEquals(encodeSeparately(letters, " " + letters), tok.encode(text));
        assertEquals(tok.pieces(letters + " ").size(), tok.pieces(letters).size() + 1);
    }

    @Test
    void slicesOf400000CodePoints() {
        String words = "ab ".repeat(150_000);  // 450,000 chars: runs never pass 25,000, only the slice cut applies
        int[] ids = tok.encode(words);
        assertArrayEquals(encodeSeparately(words.substring(0, 400_000), words.substring(400_000)), ids);
        assertEquals(words, tok.decode(ids));
    }

    @Test
    void pythonWhitespaceClassificationDrivesTheCut() {
        // U+00A0 is whitespace for Python (and not for Character.isWhitespace): 30,000 of them are one run, cut at 25,000.
        String nbsp = "\u00a0".repeat(30_000);
        assertArrayEquals(encodeSeparately(nbsp.substring(0, 25_000), nbsp.substring(25_000)), tok.encode(nbsp));
        // U+200B is not whitespace for Python: it extends a non-whitespace run of letters.
        String mixed = "a\u200b".repeat(15_000);
        assertArrayEquals(encodeSeparately(mixed.substring(0, 25_000), mixed.substring(25_000)), tok.encode(mixed));
    }

    @Test
    void loadsSpecialNamesFromTokenizerConfig(@TempDir Path dir) throws IOException {
        Files.copy(TestFiles.goldenTokenizerDir().resolve("tiktoken.model"), dir.resolve("tiktoken.model"));
        Files.writeString(dir.resolve("tokenizer_config.json"), """
                {"added_tokens_decoder": {
                   "2258": {"content": "<|im_end|>", "special": true},
                   "2261": {"content": "<|custom|>", "special": true},
                   "3000": {"content": "<|far_away|>", "special": true}},
                 "bos_token": "[BOS]"}
                """);
        Tokenizer t = Tokenizer.load(dir);
        assertEquals(2261, t.specialId("<|custom|>"));
        assertEquals(2258, t.specialId("<|im_end|>"));
        assertEquals(2256, t.specialId("[BOS]"));  // ids the file does not name keep the default table
        assertEquals(3000, t.specialId("<|far_away|>"));
        assertEquals(3001, t.vocabSize());
        assertFalse(t.isSpecial(2999));
        assertArrayEquals(new int[] {2261, 3000}, t.encode("<|custom|><|far_away|>"));

        Files.writeString(dir.resolve("tokenizer_config.json"), "{\"added_tokens_decoder\": {\"x\": {\"content\": \"a\"}}}");
        var e = assertThrows(IOException.class, () -> Tokenizer.load(dir));
        assertTrue(e.getMessage().contains("tokenizer_config.json") && e.getMessage().contains("\"x\""), e.getMessage());
    }

    @Test
    void missingModelFileIsNamed(@TempDir Path dir) {
        var e = assertThrows(IOException.class, () -> Tokenizer.load(dir));
        assertTrue(e.getMessage().contains("tiktoken.model") && e.getMessage().contains(dir.toString()), e.getMessage());
    }
}
