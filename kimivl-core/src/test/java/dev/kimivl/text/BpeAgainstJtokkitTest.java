package dev.kimivl.text;

import com.knuddels.jtokkit.Encodings;
import com.knuddels.jtokkit.api.Encoding;
import com.knuddels.jtokkit.api.EncodingType;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The BPE core and the regex splitting, with cl100k_base's ranks and pattern, against jtokkit's independent
 * implementation of cl100k_base (a hand-written splitter and its own merge loops).
 */
class BpeAgainstJtokkitTest {
    /** tiktoken's cl100k_base pat_str. */
    static final String CL100K_PATTERN = "'(?i:[sdmt]|ll|ve|re)|[^\\r\\n\\p{L}\\p{N}]?+\\p{L}+|\\p{N}{1,3}"
            + "| ?[^\\s\\p{L}\\p{N}]++[\\r\\n]*|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+";

    static Tokenizer ours;
    static Encoding reference;

    @BeforeAll
    static void load() throws IOException {
        try (InputStream in = Encoding.class.getResourceAsStream("/com/knuddels/jtokkit/cl100k_base.tiktoken")) {
            assertNotNull(in, "jtokkit's cl100k_base.tiktoken resource");
            byte[][] ranks = Tokenizer.readTiktokenModel(in, "cl100k_base.tiktoken");
            ours = Tokenizer.create(ranks, CL100K_PATTERN, Map.of(), "cl100k_base.tiktoken");
        }
        reference = Encodings.newDefaultEncodingRegistry().getEncoding(EncodingType.CL100K_BASE);
    }

    @Test
    void sameIdsOnAMixedCorpus() {
        List<String> docs = Corpus.documents(new Random(20250501L), 1500);
        int chars = 0;
        for (int i = 0; i < docs.size(); i++) {
            String doc = docs.get(i);
            chars += doc.length();
            int[] expected = reference.encodeOrdinary(doc).toArray();
            int[] actual = ours.encode(doc);
            int index = i;
            assertArrayEquals(expected, actual, () -> "document " + index + ": " + doc);
            assertEquals(doc, ours.decode(actual));
        }
        assertTrue(chars > 300_000, "corpus is only " + chars + " chars");
        String all = String.join("", docs.subList(0, 400));
        assertArrayEquals(reference.encodeOrdinary(all).toArray(), ours.encode(all));
    }

    @Test
    void sameIdsOnLongPieces() {
        // Long pieces go through many heap merges; jtokkit switches to its separate large-piece encoder here too.
        Random r = new Random(7);
        StringBuilder letters = new StringBuilder();
        for (int i = 0; i < 20_000; i++) letters.append((char) ('a' + r.nextInt(26)));
        StringBuilder symbols = new StringBuilder();
        String alphabet = "!@#$%^&*()_+-=[]{};:,./<>?|~`\"";
        for (int i = 0; i < 20_000; i++) symbols.append(alphabet.charAt(r.nextInt(alphabet.length())));
        for (String piece : List.of(letters.toString(), symbols.toString(), "=".repeat(24_000), "ab".repeat(12_000),
                "\u00e9".repeat(12_000), " " + "\u3042\u3044".repeat(6_000))) {
            assertArrayEquals(reference.encodeOrdinary(piece).toArray(), ours.encode(piece),
                    () -> "piece starting " + piece.substring(0, 20));
        }
    }

    @Test
    void longPromptEncodesInLinearishTime() {
        String prompt = String.join("", Corpus.documents(new Random(99), 600));
        ours.encode(prompt);  // warm-up
        long start = System.nanoTime();
        int[] ids = ours.encode(prompt);
        long ms = (System.nanoTime() - start) / 1_000_000;
        assertTrue(ids.length > 50_000, "only " + ids.length + " tokens");
        // Generous bound for a loaded 2-core machine; a quadratic merge takes far longer on the long pieces.
        assertTrue(ms < 5_000, ids.length + " tokens took " + ms + " ms");
        String worst = "x".repeat(24_000) + "=".repeat(24_000);
        start = System.nanoTime();
        ours.encode(worst);
        ms = (System.nanoTime() - start) / 1_000_000;
        assertTrue(ms < 2_000, "48,000 characters of two long pieces took " + ms + " ms");
    }

    /** Deterministic varied text: English, code, numbers, CJK, emoji, other scripts, whitespace runs. */
    static final class Corpus {
        static final String[] WORDS = ("the of and to in is it you that he was for on are with as I his they be at one have "
                + "this from or had by hot word but what some we can out other were all there when up use your how said an "
                + "each she which do their time if will way about many then them write would like so these her long make "
                + "thing see him two has look more day could go come did number sound no most people my over know water "
                + "than call first who may down side been now find any new work part take get place made live where after "
                + "back little only round man year came show every good me give our under name very through just form "
                + "Transformer attention MoE vision-language multimodal encoder decoder tokenizer Kimi Moonshot HTTPServer "
                + "XMLHttpRequest camelCase snake_case naïve café résumé Zürich façade").split(" ");
        static final String[] CONTRACTIONS = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'LL", "'Re", "'x"};
        static final String[] CODE = {
            "public static void main(String[] args) {\n", "    for (int i = 0; i < n; i++) {\n", "\t\treturn x * 2;\n",
            "def foo(x, y=None):\n    return {'a': [1, 2, 3]}\n", "}\n\n", "if (a != b && c >= d) { throw new Error(\"bad\"); }\n",
            "    // TODO: fix this\n", "#include <stdio.h>\n", "SELECT * FROM t WHERE id = 42;\n", "x = y ** 2 - 3.5e-10\n",
            "<div class=\"row\">&nbsp;</div>\r\n", "    \n", "lambda: (yield)\n", "arr[i][j] += 1;\n"};
        static final String[] SPACES = {" ", "  ", "   ", "\t", "\n", "\r\n", "\n\n", "    ", " \n ", "\u00a0", "\u3000",
            "\u2003", "\n\t\t", " \t \n"};

        static List<String> documents(Random r, int count) {
            List<String> docs = new ArrayList<>();
            for (int d = 0; d < count; d++) {
                StringBuilder sb = new StringBuilder();
                int parts = 5 + r.nextInt(40);
                for (int p = 0; p < parts; p++) appendPart(r, sb);
                docs.add(sb.toString());
            }
            return docs;
        }

        static void appendPart(Random r, StringBuilder sb) {
            switch (r.nextInt(12)) {
                case 0, 1, 2 -> {
                    int n = 1 + r.nextInt(12);
                    for (int i = 0; i < n; i++) {
                        String w = WORDS[r.nextInt(WORDS.length)];
                        if (r.nextInt(5) == 0) w = w.toUpperCase();
                        else if (r.nextInt(4) == 0) w = Character.toUpperCase(w.charAt(0)) + w.substring(1);
                        sb.append(i == 0 && r.nextBoolean() ? "" : " ").append(w);
                        if (r.nextInt(8) == 0) sb.append(CONTRACTIONS[r.nextInt(CONTRACTIONS.length)]);
                        if (r.nextInt(6) == 0) sb.append(",.;:!?\"')".charAt(r.nextInt(9)));
                    }
                }
                case 3 -> sb.append(CODE[r.nextInt(CODE.length)]);
                case 4 -> {
                    int digits = 1 + r.nextInt(r.nextInt(10) == 0 ? 40 : 8);
                    for (int i = 0; i < digits; i++) sb.append((char) ('0' + r.nextInt(10)));
                    if (r.nextBoolean()) sb.append(".,%$ -/".charAt(r.nextInt(7)));
                }
                case 5 -> {
                    int n = 1 + r.nextInt(20);
                    for (int i = 0; i < n; i++) sb.appendCodePoint(0x4E00 + r.nextInt(0x9FFF - 0x4E00));
                    if (r.nextBoolean()) sb.append("，。、！？「」".charAt(r.nextInt(7)));
                }
                case 6 -> {
                    int[][] ranges = {{0x3041, 0x3096}, {0x30A1, 0x30FA}, {0xAC00, 0xD7A3}, {0x0410, 0x044F}, {0x0391, 0x03C9},
                        {0x0627, 0x064A}, {0x0905, 0x0939}, {0x00C0, 0x00FF}, {0x1EA0, 0x1EF9}, {0x0E01, 0x0E30}};
                    int[] range = ranges[r.nextInt(ranges.length)];
                    int n = 1 + r.nextInt(15);
                    for (int i = 0; i < n; i++) {
                        int cp = range[0] + r.nextInt(range[1] - range[0] + 1);
                        if (Character.isDefined(cp)) sb.appendCodePoint(cp);
                    }
                }
                case 7 -> {
                    int n = 1 + r.nextInt(6);
                    for (int i = 0; i < n; i++) {
                        sb.appendCodePoint((r.nextBoolean() ? 0x1F300 : 0x1F900) + r.nextInt(0x4F));
                        switch (r.nextInt(5)) {
                            case 0 -> sb.append("\u200d").appendCodePoint(0x1F466 + r.nextInt(4));
                            case 1 -> sb.appendCodePoint(0x1F3FB + r.nextInt(5));
                            case 2 -> sb.append("\ufe0f");
                            default -> { }
                        }
                    }
                }
                case 8, 9 -> {
                    int n = 1 + r.nextInt(r.nextInt(8) == 0 ? 60 : 4);
                    for (int i = 0; i < n; i++) sb.append(SPACES[r.nextInt(SPACES.length)]);
                }
                case 10 -> {
                    int n = 1 + r.nextInt(r.nextInt(6) == 0 ? 200 : 10);
                    String sym = "=-*#_~+.!?/\\|<>()[]{}'\"`^&@$%";
                    char c = sym.charAt(r.nextInt(sym.length()));
                    for (int i = 0; i < n; i++) sb.append(r.nextInt(3) == 0 ? sym.charAt(r.nextInt(sym.length())) : c);
                }
                default -> {
                    int n = 1 + r.nextInt(10);
                    for (int i = 0; i < n; i++) {
                        int cp;
                        do {
                            cp = r.nextInt(0x3000);
                        } while (!Character.isDefined(cp) || Character.isSurrogate((char) cp) || cp < 0x20 && cp != '\n' && cp != '\t');
                        sb.appendCodePoint(cp);
                    }
                }
            }
        }
    }
}
