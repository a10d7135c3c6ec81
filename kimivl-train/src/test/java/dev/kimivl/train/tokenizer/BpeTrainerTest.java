package dev.kimivl.train.tokenizer;

import dev.kimivl.text.ChatMessage;
import dev.kimivl.text.ChatTemplate;
import dev.kimivl.text.PromptEncoder;
import dev.kimivl.text.Tokenizer;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class BpeTrainerTest {
    private static final String[] WORDS = {
            "the", "a", "cat", "dog", "sat", "on", "mat", "red", "blue", "green", "circle", "square", "triangle",
            "picture", "image", "what", "is", "in", "this", "shows", "color", "shape", "there", "one", "small", "large"};

    /** A seeded English-like corpus with some numbers, punctuation, accents, CJK and thinking traces mixed in. */
    static List<String> corpus(long seed, int lines) {
        Random r = new Random(seed);
        List<String> out = new ArrayList<>();
        String[] extras = {"café", "naïve", "東京タワー", "привет", "😀", "—", "◁think▷the shape is round◁/think▷A circle."};
        for (int i = 0; i < lines; i++) {
            StringBuilder sb = new StringBuilder();
            int n = 4 + r.nextInt(10);
            for (int k = 0; k < n; k++) {
                if (k > 0) sb.append(' ');
                String w = WORDS[r.nextInt(WORDS.length)];
                sb.append(k == 0 ? Character.toUpperCase(w.charAt(0)) + w.substring(1) : w);
            }
            if (r.nextInt(4) == 0) sb.append(' ').append(r.nextInt(100_000));
            if (r.nextInt(5) == 0) sb.append(' ').append(extras[r.nextInt(extras.length)]);
            sb.append(r.nextBoolean() ? "." : "?");
            out.add(sb.toString());
        }
        return out;
    }

    private static List<byte[]> ranks;
    private static Path dir;
    private static SpecialIds ids;
    private static Tokenizer tok;

    @BeforeAll
    static void trainOnce(@TempDir Path tmp) throws IOException {
        ranks = BpeTrainer.train(corpus(1, 3000), 1024);
        dir = tmp.resolve("tok");
        ids = TokenizerFiles.write(dir, ranks);
        tok = Tokenizer.load(dir);
    }

    @Test
    void writesTheRequestedRanksAndKimisLayout() {
        assertEquals(1024, ranks.size());
        assertEquals(1024, tok.numRanks());
        // Kimi's 256 in-model specials, rounded to a multiple of 64, plus its two trailing tokenizer-only slots.
        assertEquals(1280, ids.vocabSize());
        assertEquals(1282, ids.tokenizerSize());
        assertEquals(ids.tokenizerSize(), tok.vocabSize());
        for (int b = 0; b < 256; b++) assertArrayEquals(new byte[]{(byte) BpeTrainer.BYTE_ORDER[b]}, ranks.get(b), "single bytes take ranks 0..255");
        assertArrayEquals("!".getBytes(StandardCharsets.UTF_8), ranks.get(0), "rank 0 is '!', as in Kimi's vocabulary");
        assertEquals(ids.bos(), tok.specialId("[BOS]"));
        assertEquals(1024, ids.bos());
        assertEquals(ids.eos(), tok.specialId("[EOS]"));
        assertEquals(ids.imEnd(), tok.specialId("<|im_end|>"));
        assertEquals(1024 + 21, ids.mediaPlaceholder());
        assertEquals(ids.mediaPlaceholder(), tok.specialId("<|media_pad|>"));
        assertEquals(ids.mediaPlaceholder(), new PromptEncoder(tok).placeholderId());
        assertEquals(1279, tok.specialId("[PAD]"));
        assertEquals(ids.pad(), tok.specialId("[PAD]"));
        assertEquals(ids.unk(), tok.specialId("[UNK]"));
        assertEquals(1024 + 10, tok.specialId("<|im_system|>"));
        assertEquals(1024 + 17, tok.specialId("<|im_middle|>"));
        assertEquals("<|reserved_token_1281|>", tok.tokenName(1281));
    }

    @Test
    void roundTripsAnyText() {
        String[] samples = {
                "The cat sat on the mat.", "", " ", "  leading and trailing  ", "\n\n\tTabs\tand\r\nnewlines\n",
                "Punctuation!? ,;:'\"()[]{}<>/\\|@#$%^&*-_=+~`", "Numbers 0 7 42 123 4567 89012345 3.14159 -1e-9",
                "Ünïcödé façade Ångström", "日本語のテキストと中文混合", "Привет, мир! Γειά σου κόσμε", "עברית العربية",
                "Emoji 😀🎉👍🏽 👨‍👩‍👧‍👦 🇫🇷", "zero\u200Bwidth", "◁think▷reasoning◁/think▷answer", "it's we're they'll I'D",
                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "xqzjv wkkp never in the corpus", "\u0000\u0001\u007f\u00ad control bytes"};
        for (String s : samples) assertEquals(s, tok.decode(tok.encode(s)), () -> "round trip of \"" + s + "\"");
        Random r = new Random(5);
        for (int i = 0; i < 300; i++) {
            StringBuilder sb = new StringBuilder();
            int n = r.nextInt(40);
            for (int k = 0; k < n; k++) {
                int cp;
                do {
                    cp = switch (r.nextInt(4)) {
                        case 0 -> 0x20 + r.nextInt(0x5F);
                        case 1 -> r.nextInt(0x800);
                        case 2 -> r.nextInt(0x10000);
                        default -> 0x1F300 + r.nextInt(0x300);
                    };
                } while (Character.isSurrogate((char) cp) && cp < 0x10000);
                sb.appendCodePoint(cp);
            }
            String s = sb.toString();
            if (s.contains("<|") || s.contains("[")) continue;   // could spell a special-token name
            assertEquals(s, tok.decode(tok.encode(s)), () -> "round trip of \"" + s + "\"");
        }
    }

    @Test
    void specialTokensEncodeToTheirIdsInAChatPrompt() throws IOException {
        ChatTemplate template = ChatTemplate.load(dir);
        String prompt = template.render(List.of(
                ChatMessage.of("user", ChatMessage.imagePart(), ChatMessage.textPart("What shape is it?")),
                ChatMessage.assistant("◁think▷round◁/think▷A red circle."),
                ChatMessage.user("And the color?")), true);
        int[] got = tok.encode(prompt);
        assertEquals(prompt, tok.decode(got));
        assertEquals(tok.specialId("<|im_system|>"), got[0], "the default system turn opens the prompt");
        assertEquals(4, count(got, ids.imEnd()), "one <|im_end|> per turn, the default system turn included");
        assertEquals(1, count(got, ids.mediaPlaceholder()));
        assertEquals(1, count(got, tok.specialId("<|media_start|>")));
        assertEquals(1, count(got, tok.specialId("<|media_content|>")));
        assertEquals(1, count(got, tok.specialId("<|media_end|>")));
        assertEquals(2, count(got, tok.specialId("<|im_user|>")));
        assertEquals(2, count(got, tok.specialId("<|im_assistant|>")));
        assertEquals(1, count(got, tok.specialId("<|im_system|>")));
        assertEquals(5, count(got, tok.specialId("<|im_middle|>")));
        assertEquals(tok.specialId("<|im_middle|>"), got[got.length - 1]);
        assertEquals(0, count(got, ids.bos()), "Kimi's template adds no BOS");
        int specials = 0;
        for (int id : got) if (tok.isSpecial(id)) specials++;
        assertEquals(5 + 5 + 4 + 4, specials, "openers, <|im_middle|>s, <|im_end|>s and the four media tokens");
        PromptEncoder.EncodedPrompt expanded = new PromptEncoder(tok).encode(prompt, 9);
        assertEquals(9, count(expanded.ids(), ids.mediaPlaceholder()));
    }

    @Test
    void commonWordsOfTheCorpusBecomeSingleTokens() {
        for (String w : new String[]{" the", " cat", " circle", " triangle", " picture", "The", " square", "."}) {
            assertEquals(1, tok.encode(w).length, () -> "\"" + w + "\" encodes to " + Arrays.toString(tok.encode(w)));
        }
        // Words the corpus never saw still split into several pieces.
        assertTrue(tok.encode(" xylophone").length > 1);
    }

    @Test
    void sameCorpusGivesTheSameFilesByteForByte(@TempDir Path tmp) throws IOException {
        List<String> c = corpus(1, 3000);
        TokenizerFiles.write(tmp.resolve("a"), BpeTrainer.train(c, 1024));
        TokenizerFiles.write(tmp.resolve("b"), BpeTrainer.train(c.stream(), 1024));
        for (String f : new String[]{"tiktoken.model", "tokenizer_config.json"}) {
            assertArrayEquals(Files.readAllBytes(tmp.resolve("a").resolve(f)), Files.readAllBytes(tmp.resolve("b").resolve(f)), f);
            assertArrayEquals(Files.readAllBytes(dir.resolve(f)), Files.readAllBytes(tmp.resolve("a").resolve(f)), f);
        }
    }

    @Test
    void tiesGoToTheSmallerBytesAndTrainingStopsWhenPairsRunOut() {
        // Pieces: "ab", " ab" x2, " cd" x2. "ab" (3) first; then " ab", " c" and "cd" tie at 2 and " ab" sorts
        // first; then " c" < "cd"; then " cd"; then nothing is left to merge, so fewer ranks than asked.
        List<byte[]> r = BpeTrainer.train(List.of("ab ab ab cd cd"), 300);
        assertEquals(260, r.size());
        assertEquals(List.of("ab", " ab", " c", " cd"), r.subList(256, 260).stream().map(b -> new String(b, StandardCharsets.UTF_8)).toList());
    }

    @Test
    void specialTokenNamesInTheCorpusAreNotLearned() {
        List<String> chat = new ArrayList<>();
        for (int i = 0; i < 200; i++) chat.add("<|im_user|>user<|im_middle|>hi<|im_end|><|im_assistant|>assistant<|im_middle|>hello<|im_end|>");
        List<byte[]> r = BpeTrainer.train(chat, 400);
        for (byte[] t : r) {
            String s = new String(t, StandardCharsets.ISO_8859_1);
            assertFalse(s.contains("<|") || s.contains("|>") || s.contains("im_"), () -> "learned \"" + s + "\" from a special-token name");
        }
        assertTrue(r.stream().anyMatch(t -> new String(t, StandardCharsets.UTF_8).equals("assistant")));
    }

    @Test
    void aLoneSurrogateIsCountedAsTheEncoderSeesIt() {
        // The encoder turns a lone surrogate into U+FFFD (EF BF BD); the trainer must count those bytes, not '?'.
        List<byte[]> r = BpeTrainer.train(List.of(" \uD800".repeat(50)), 300);
        assertEquals(259, r.size(), "three merges build the only piece");
        assertArrayEquals(" \uFFFD".getBytes(StandardCharsets.UTF_8), r.get(258));
        assertArrayEquals("a\uFFFDb\uD83D\uDE00".getBytes(StandardCharsets.UTF_8), BpeTrainer.utf8("a\uDC00b\uD83D\uDE00"));
    }

    @Test
    void incrementalCountsAgreeWithARecountEveryMerge() {
        List<String> c = new ArrayList<>(corpus(9, 400));
        c.add("aaaaaaa aaaa abababab abab aaabaaab ...... !!!! 1111111 0000");
        c.add("ZZZZZZ zz zzz zzzz");
        List<byte[]> fast = BpeTrainer.train(c, 700);
        List<byte[]> slow = naiveTrain(c, 700);
        assertEquals(slow.size(), fast.size());
        assertTrue(fast.size() > 500, "the corpus gives a few hundred merges to compare, got " + (fast.size() - 256));
        for (int i = 0; i < slow.size(); i++) {
            int at = i;
            assertArrayEquals(slow.get(i), fast.get(i), () -> "rank " + at + ": recount gives \"" + new String(slow.get(at), StandardCharsets.UTF_8)
                    + "\", incremental \"" + new String(fast.get(at), StandardCharsets.UTF_8) + "\"");
        }
    }

    @Test
    void rejectsTooSmallVocabularies(@TempDir Path tmp) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new BpeTrainer(100));
        assertTrue(e.getMessage().contains("256"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> TokenizerFiles.write(tmp, ranks, 1030));
        assertTrue(e.getMessage().contains("1048"), e.getMessage());
        List<byte[]> missingByte = new ArrayList<>(ranks.subList(1, ranks.size()));
        missingByte.add(new byte[]{'!', '!', '!', '?'});
        e = assertThrows(IllegalArgumentException.class, () -> TokenizerFiles.write(tmp.resolve("x"), missingByte));
        assertTrue(e.getMessage().contains("0x21"), e.getMessage());
        assertFalse(Files.exists(tmp.resolve("x")), "nothing is written for invalid ranks");
    }

    @Test
    void givenTotalSetsTheModelVocabulary(@TempDir Path tmp) throws IOException {
        SpecialIds small = TokenizerFiles.write(tmp, ranks, 1088);
        Tokenizer t = Tokenizer.load(tmp);
        assertEquals(1088, small.vocabSize());
        assertEquals(1087, t.specialId("[PAD]"));
        assertEquals(1086, t.specialId("[UNK]"));
        assertEquals(1024 + 258, t.vocabSize(), "the loader's 258-slot table is fully renamed, so no default name collides");
        SpecialIds large = TokenizerFiles.write(tmp, ranks, 1600);
        t = Tokenizer.load(tmp);
        assertEquals(1600, t.vocabSize());
        assertEquals(large.pad(), t.specialId("[PAD]"));
        assertEquals("<|reserved_token_1278|>", t.tokenName(1278));
    }

    private static int count(int[] a, int v) {
        int n = 0;
        for (int x : a) if (x == v) n++;
        return n;
    }

    /** The textbook algorithm: recount every pair before each merge; same tie order as BpeTrainer. */
    static List<byte[]> naiveTrain(List<String> corpus, int numRanks) {
        byte[][] single = new byte[256][];
        for (int b = 0; b < 256; b++) single[b] = new byte[]{(byte) b};
        Tokenizer split = Tokenizer.create(single, Tokenizer.KIMI_PATTERN, Map.of(), "naive");
        Map<String, Integer> freq = new TreeMap<>();
        for (String text : corpus) for (String p : split.pieces(text)) freq.merge(p, 1, Integer::sum);
        List<byte[]> tokens = new ArrayList<>();
        int[] rankOfByte = new int[256];
        for (int b : BpeTrainer.BYTE_ORDER) {
            rankOfByte[b] = tokens.size();
            tokens.add(new byte[]{(byte) b});
        }
        List<List<Integer>> words = new ArrayList<>();
        List<Integer> counts = new ArrayList<>();
        freq.forEach((w, f) -> {
            List<Integer> s = new ArrayList<>();
            for (byte b : w.getBytes(StandardCharsets.UTF_8)) s.add(rankOfByte[b & 0xFF]);
            words.add(s);
            counts.add(f);
        });
        while (tokens.size() < numRanks) {
            Map<List<Integer>, Long> pairs = new HashMap<>();
            for (int w = 0; w < words.size(); w++) {
                List<Integer> s = words.get(w);
                for (int i = 0; i + 1 < s.size(); i++) pairs.merge(List.of(s.get(i), s.get(i + 1)), (long) counts.get(w), Long::sum);
            }
            List<Integer> best = null;
            long bestCount = 0;
            for (var e : pairs.entrySet()) {
                long n = e.getValue();
                List<Integer> p = e.getKey();
                if (n <= 0) continue;
                int cmp = best == null ? -1 : Long.compare(bestCount, n);
                if (cmp == 0) {
                    cmp = Arrays.compareUnsigned(BpeTrainer.concat(tokens.get(p.get(0)), tokens.get(p.get(1))),
                            BpeTrainer.concat(tokens.get(best.get(0)), tokens.get(best.get(1))));
                    if (cmp == 0) cmp = p.get(0) != best.get(0).intValue() ? Integer.compare(p.get(0), best.get(0)) : Integer.compare(p.get(1), best.get(1));
                }
                if (cmp < 0) {
                    best = p;
                    bestCount = n;
                }
            }
            if (best == null) break;
            byte[] joined = BpeTrainer.concat(tokens.get(best.get(0)), tokens.get(best.get(1)));
            int merged = -1;
            for (int i = 0; i < tokens.size(); i++) if (Arrays.equals(tokens.get(i), joined)) merged = i;
            if (merged < 0) {
                merged = tokens.size();
                tokens.add(joined);
            }
            for (List<Integer> s : words) {
                for (int i = 0; i + 1 < s.size(); i++) {
                    if (s.get(i).equals(best.get(0)) && s.get(i + 1).equals(best.get(1))) {
                        s.set(i, merged);
                        s.remove(i + 1);
                    }
                }
            }
        }
        return tokens;
    }
}
