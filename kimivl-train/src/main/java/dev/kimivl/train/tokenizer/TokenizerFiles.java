package dev.kimivl.train.tokenizer;

import dev.kimivl.text.Tokenizer;

import java.io.IOException;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Writes a trained vocabulary as a model directory's tokenizer: {@code tiktoken.model} and
 * {@code tokenizer_config.json}, the two files {@link Tokenizer#load} reads.
 *
 * <p>The special tokens follow the ordinary ranks in Kimi's layout (spec §7.1): at the same offsets from the first
 * special id as in the published vocabulary ({@code [BOS]} +0, {@code [EOS]} +1, {@code <|im_end|>} +2, ...,
 * {@code <|media_pad|>} +21), then {@code <|reserved_token_N|>}, with {@code [UNK]} and {@code [PAD]} as the last two
 * rows of the model's vocabulary, as 163838 and 163839 are in Kimi's. The chat template uses {@code <|im_system|>},
 * {@code <|im_user|>}, {@code <|im_assistant|>}, {@code <|im_middle|>}, {@code <|im_end|>} and the four media tokens;
 * the Thinking variant's {@code ◁think▷}/{@code ◁/think▷} are ordinary text, not special tokens (spec §7.1).
 *
 * <p>The tokenizer always knows at least {@value Tokenizer#DEFAULT_SPECIAL_COUNT} specials after the ranks, because
 * {@link Tokenizer#load} starts from Kimi's default table of that size and lets the config rename its ids: every one
 * of those ids is named here, so none keeps a default name that would collide with ours.
 */
public final class TokenizerFiles {
    /** Offset from the first special id to name, Kimi's published numbering; the rest are reserved. */
    static final Map<Integer, String> NAMED_SPECIALS = named();

    public static final String BOS = "[BOS]", EOS = "[EOS]", UNK = "[UNK]", PAD = "[PAD]";
    public static final String IM_END = "<|im_end|>", MEDIA_PAD = "<|media_pad|>";

    private TokenizerFiles() {}

    private static Map<Integer, String> named() {
        Map<Integer, String> m = new LinkedHashMap<>();
        m.put(0, BOS);
        m.put(1, EOS);
        m.put(2, IM_END);
        m.put(3, "<|im_user|>");
        m.put(4, "<|im_assistant|>");
        // 6, 7, 9: in Moonlight's and K2's tables and in the loader's defaults; kept so the ids match Kimi's (spec §7.1).
        m.put(6, "<|start_header_id|>");
        m.put(7, "<|end_header_id|>");
        m.put(9, "[EOT]");
        m.put(10, "<|im_system|>");
        m.put(17, "<|im_middle|>");
        m.put(18, "<|media_start|>");
        m.put(19, "<|media_content|>");
        m.put(20, "<|media_end|>");
        m.put(21, MEDIA_PAD);
        return m;
    }

    /** The smallest model vocabulary: the named specials (offsets 0..21) plus [UNK] and [PAD]. */
    static int minSpecials() { return 24; }

    /**
     * The default model vocabulary for {@code numRanks} ranks: room for Kimi's 256 in-model specials, rounded up to a
     * multiple of 64 (embedding rows in whole SIMD-friendly blocks; Kimi's 163,584 + 256 = 163,840 is one).
     */
    public static int defaultVocabSize(int numRanks) {
        return (numRanks + 256 + 63) / 64 * 64;
    }

    /** Writes the files with {@link #defaultVocabSize}. */
    public static SpecialIds write(Path dir, List<byte[]> ranks) throws IOException {
        return write(dir, ranks, defaultVocabSize(ranks.size()));
    }

    /**
     * Writes {@code tiktoken.model} and {@code tokenizer_config.json} into {@code dir} (created if needed, files
     * replaced).
     *
     * @param ranks     token bytes indexed by rank, every single byte among them (as {@link BpeTrainer} makes them)
     * @param vocabSize the model's vocabulary: ranks plus in-model specials, at least {@code ranks.size() + 24}
     */
    public static SpecialIds write(Path dir, List<byte[]> ranks, int vocabSize) throws IOException {
        int numRanks = ranks.size();
        SpecialIds ids = layout(numRanks, vocabSize);
        String[] names = specialNames(ids);
        // Checks every rank (non-empty, no duplicates, all 256 bytes) before anything is written.
        Tokenizer.create(ranks.toArray(byte[][]::new), Tokenizer.KIMI_PATTERN, Map.of(), "the ranks to write to " + dir);
        Files.createDirectories(dir);
        Base64.Encoder base64 = Base64.getEncoder();
        try (Writer w = Files.newBufferedWriter(dir.resolve("tiktoken.model"), StandardCharsets.UTF_8)) {
            for (int r = 0; r < numRanks; r++) {
                w.write(base64.encodeToString(ranks.get(r)));
                w.write(' ');
                w.write(Integer.toString(r));
                w.write('\n');
            }
        }
        Files.writeString(dir.resolve("tokenizer_config.json"), config(numRanks, names), StandardCharsets.UTF_8);
        return ids;
    }

    /** The ranks of a trained tokenizer in {@code dir}: the lines of its tiktoken.model (one rank a line). */
    public static int ranksIn(Path dir) throws IOException {
        try (java.util.stream.Stream<String> lines = Files.lines(dir.resolve("tiktoken.model"))) { return (int) lines.count(); }
    }

    /** Where the specials go for {@code numRanks} ranks and a model vocabulary of {@code vocabSize}. */
    public static SpecialIds layout(int numRanks, int vocabSize) {
        if (numRanks < 256) throw new IllegalArgumentException("only " + numRanks + " ranks; a byte-level vocabulary has at least the 256 single bytes");
        if (vocabSize < numRanks + minSpecials()) {
            throw new IllegalArgumentException("vocabulary size " + vocabSize + " leaves no room for the special tokens: " + numRanks
                    + " ranks need at least " + (numRanks + minSpecials()) + " (" + minSpecials() + " specials: offsets 0..21 plus [UNK] and [PAD])");
        }
        int tokenizerSize = Math.max(vocabSize, numRanks + Tokenizer.DEFAULT_SPECIAL_COUNT);
        return new SpecialIds(numRanks, vocabSize, tokenizerSize, numRanks, numRanks + 1, vocabSize - 1, vocabSize - 2,
                numRanks + 2, numRanks + 21);
    }

    /** Names of ids numRanks..tokenizerSize-1. */
    static String[] specialNames(SpecialIds ids) {
        String[] names = new String[ids.tokenizerSize() - ids.numRanks()];
        for (int i = 0; i < names.length; i++) {
            int id = ids.numRanks() + i;
            String name = NAMED_SPECIALS.get(i);
            if (id == ids.unk()) name = UNK;
            else if (id == ids.pad()) name = PAD;
            names[i] = name != null ? name : "<|reserved_token_" + id + "|>";
        }
        return names;
    }

    /** The Hugging Face form of the published file: added_tokens_decoder by id, then the named tokens. */
    private static String config(int numRanks, String[] names) {
        StringBuilder sb = new StringBuilder();
        sb.append("{\n  \"added_tokens_decoder\": {\n");
        for (int i = 0; i < names.length; i++) {
            sb.append("    \"").append(numRanks + i).append("\": {\n")
                    .append("      \"content\": ").append(json(names[i])).append(",\n")
                    .append("      \"lstrip\": false,\n")
                    .append("      \"normalized\": false,\n")
                    .append("      \"rstrip\": false,\n")
                    .append("      \"single_word\": false,\n")
                    .append("      \"special\": true\n")
                    .append(i + 1 < names.length ? "    },\n" : "    }\n");
        }
        sb.append("  },\n");
        List<String> additional = new ArrayList<>();
        for (String name : NAMED_SPECIALS.values()) if (!name.equals(BOS) && !name.equals(EOS)) additional.add(name);
        sb.append("  \"additional_special_tokens\": [\n");
        for (int i = 0; i < additional.size(); i++) {
            sb.append("    ").append(json(additional.get(i))).append(i + 1 < additional.size() ? ",\n" : "\n");
        }
        sb.append("  ],\n");
        sb.append("  \"bos_token\": ").append(json(BOS)).append(",\n");
        sb.append("  \"clean_up_tokenization_spaces\": false,\n");
        sb.append("  \"eos_token\": ").append(json(EOS)).append(",\n");
        sb.append("  \"pad_token\": ").append(json(PAD)).append(",\n");
        sb.append("  \"tokenizer_class\": \"TikTokenTokenizer\",\n");
        sb.append("  \"unk_token\": ").append(json(UNK)).append("\n");
        sb.append("}\n");
        return sb.toString();
    }

    /** A JSON string literal; the names are ASCII, but quote and backslash are escaped all the same. */
    private static String json(String s) {
        StringBuilder sb = new StringBuilder("\"");
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '"' || c == '\\') sb.append('\\').append(c);
            else if (c < 0x20) sb.append(String.format("\\u%04x", (int) c));
            else sb.append(c);
        }
        return sb.append('"').toString();
    }
}
