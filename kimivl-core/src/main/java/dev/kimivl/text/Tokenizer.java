package dev.kimivl.text;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collections;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.OptionalInt;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Kimi's tiktoken-style byte-level BPE tokenizer ({@code tokenization_moonshot.py}, spec §8).
 *
 * <p>Encoding follows the reference exactly: the text is cut into chunks (400,000 code points, then runs of
 * whitespace or non-whitespace of at most 25,000 code points), special-token names found in a chunk map to their
 * ids (tiktoken's {@code allowed_special="all"}), the rest is split by the pre-tokenizer regex, and each piece is
 * byte-pair merged. No BOS or EOS is added. Instances are immutable and thread-safe.
 */
public final class Tokenizer {
    /** Kimi's {@code pat_str} (spec §8.2) in Java syntax: {@code \p{Han}} becomes {@code \p{IsHan}}. */
    public static final String KIMI_PATTERN = String.join("|",
            "[\\p{IsHan}]+",
            "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}&&[^\\p{IsHan}]]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}&&[^\\p{IsHan}]]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
            "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}&&[^\\p{IsHan}]]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}&&[^\\p{IsHan}]]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
            "\\p{N}{1,3}",
            " ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*",
            "\\s*[\\r\\n]+",
            "\\s+(?!\\S)",
            "\\s+");

    /** The reference reserves 256 special ids plus 2 trailing slots after the last rank. */
    public static final int DEFAULT_SPECIAL_COUNT = 258;

    /** Named offsets (from the first special id) of spec §7.1; every other slot is {@code <|reserved_token_{id}|>}. */
    private static final Map<Integer, String> DEFAULT_SPECIAL_OFFSETS = Map.ofEntries(
            Map.entry(0, "[BOS]"), Map.entry(1, "[EOS]"), Map.entry(2, "<|im_end|>"), Map.entry(3, "<|im_user|>"),
            Map.entry(4, "<|im_assistant|>"), Map.entry(6, "<|start_header_id|>"), Map.entry(7, "<|end_header_id|>"),
            Map.entry(9, "[EOT]"), Map.entry(10, "<|im_system|>"), Map.entry(17, "<|im_middle|>"),
            Map.entry(18, "<|media_start|>"), Map.entry(19, "<|media_content|>"), Map.entry(20, "<|media_end|>"),
            Map.entry(21, "<|media_pad|>"), Map.entry(254, "[UNK]"), Map.entry(255, "[PAD]"));

    static final int MAX_ENCODE_CHARS = 400_000;
    static final int MAX_RUN_CHARS = 25_000;

    private final String source;
    private final BytePairEncoder bpe;
    private final Pattern pattern;
    private final Map<String, Integer> specialIds;
    private final String[] specialNames;     // indexed by id - bpe.size(); null for an unused id
    private final byte[][] specialBytes;
    private final Map<Character, String[]> specialsByFirstChar;
    /** The longest special-token name, in chars: how far back a name that crosses a cut could start. */
    private final int longestSpecialName;

    private Tokenizer(String source, BytePairEncoder bpe, String regex, Map<String, Integer> specials) {
        this.source = source;
        this.bpe = bpe;
        this.pattern = Pattern.compile(regex, Pattern.UNICODE_CHARACTER_CLASS);
        int base = bpe.size();
        int top = base;
        for (var e : specials.entrySet()) {
            if (e.getValue() < base) {
                throw new IllegalArgumentException(source + ": special token " + e.getKey() + " has id " + e.getValue()
                        + ", which is an ordinary rank (ranks are 0.." + (base - 1) + ")");
            }
            if (e.getKey().isEmpty()) throw new IllegalArgumentException(source + ": special token " + e.getValue() + " has an empty name");
            if (e.getValue() - base >= MAX_SPECIAL_SPAN) {
                throw new IllegalArgumentException(source + ": special token " + e.getKey() + " has id " + e.getValue()
                        + ", more than " + MAX_SPECIAL_SPAN + " ids after the last rank " + (base - 1));
            }
            top = Math.max(top, e.getValue() + 1);
        }
        specialNames = new String[top - base];
        specialBytes = new byte[top - base][];
        for (var e : specials.entrySet()) {
            int slot = e.getValue() - base;
            if (specialNames[slot] != null) {
                throw new IllegalArgumentException(source + ": id " + e.getValue() + " is named both "
                        + specialNames[slot] + " and " + e.getKey());
            }
            specialNames[slot] = e.getKey();
            specialBytes[slot] = e.getKey().getBytes(StandardCharsets.UTF_8);
        }
        this.specialIds = Collections.unmodifiableMap(new LinkedHashMap<>(specials));
        Map<Character, List<String>> byFirst = new HashMap<>();
        for (String name : specials.keySet()) byFirst.computeIfAbsent(name.charAt(0), c -> new ArrayList<>()).add(name);
        this.specialsByFirstChar = new HashMap<>();
        // Longest first, so that a name that is a prefix of another never hides it.
        byFirst.forEach((c, names) -> specialsByFirstChar.put(c, names.stream()
                .sorted((a, b) -> b.length() - a.length()).toArray(String[]::new)));
        this.longestSpecialName = specials.keySet().stream().mapToInt(String::length).max().orElse(0);
    }

    /**
     * Loads the tokenizer of a model directory: {@code tiktoken.model}, plus the special tokens of
     * {@code tokenizer_config.json}'s {@code added_tokens_decoder} where that file exists; ids it does not name
     * keep the default Kimi names of spec §7.1.
     */
    public static Tokenizer load(Path modelDir) throws IOException {
        Path model = modelDir.resolve("tiktoken.model");
        if (!Files.isRegularFile(model)) {
            throw new IOException("model directory " + modelDir + " has no tiktoken.model (the tokenizer's BPE ranks)");
        }
        byte[][] ranks;
        try (InputStream in = Files.newInputStream(model)) {
            ranks = readTiktokenModel(in, model.toString());
        }
        Map<String, Integer> specials = defaultSpecials(ranks.length);
        Path config = modelDir.resolve("tokenizer_config.json");
        if (Files.isRegularFile(config)) specials = applyAddedTokens(specials, config);
        return create(ranks, KIMI_PATTERN, specials, model.toString());
    }

    /**
     * A tokenizer over any tiktoken vocabulary (used with cl100k_base to test the BPE core against jtokkit).
     *
     * @param ranks    token bytes indexed by rank (0..n-1), all 256 single bytes among them
     * @param regex    pre-tokenizer pattern, compiled with {@link Pattern#UNICODE_CHARACTER_CLASS}
     * @param specials special-token name to id; ids must be at least {@code ranks.length}
     * @param source   where the ranks came from, for error messages
     */
    public static Tokenizer create(byte[][] ranks, String regex, Map<String, Integer> specials, String source) {
        return new Tokenizer(source, new BytePairEncoder(ranks, source), regex, specials);
    }

    /** Kimi's default table: {@value #DEFAULT_SPECIAL_COUNT} ids right after the last rank (spec §7.1). */
    public static Map<String, Integer> defaultSpecials(int firstId) {
        Map<String, Integer> specials = new LinkedHashMap<>();
        for (int offset = 0; offset < DEFAULT_SPECIAL_COUNT; offset++) {
            int id = firstId + offset;
            specials.put(DEFAULT_SPECIAL_OFFSETS.getOrDefault(offset, "<|reserved_token_" + id + "|>"), id);
        }
        return specials;
    }

    private static Map<String, Integer> applyAddedTokens(Map<String, Integer> defaults, Path config) throws IOException {
        JsonNode root;
        try {
            root = new ObjectMapper().readTree(config.toFile());
        } catch (IOException e) {
            // Jackson's own text names no file and spans two lines (found by fuzzing); also its CharConversionException,
            // not a JsonProcessingException, for bytes its encoding detection takes for UTF-32 (leading zero bytes:
            // TokenizerFuzzTest#tokenizerConfig's regress-utf32-detected)
            throw new IOException(config + ": cannot parse JSON: " + dev.kimivl.io.JsonErrors.describe(e), e);
        }
        JsonNode added = root == null ? null : root.get("added_tokens_decoder");
        if (added == null || added.isNull()) return defaults;
        if (!added.isObject()) throw new IOException(config + ": added_tokens_decoder must be an object of id -> {content, ...}");
        Map<Integer, String> byId = new HashMap<>();
        defaults.forEach((name, id) -> byId.put(id, name));
        for (Iterator<Map.Entry<String, JsonNode>> it = added.fields(); it.hasNext(); ) {
            var e = it.next();
            int id;
            try {
                id = Integer.parseInt(e.getKey());
            } catch (NumberFormatException ex) {
                throw new IOException(config + ": added_tokens_decoder key \"" + e.getKey() + "\" is not a token id");
            }
            JsonNode content = e.getValue().get("content");
            if (content == null || !content.isTextual()) {
                throw new IOException(config + ": added_tokens_decoder[\"" + e.getKey() + "\"] has no string \"content\"");
            }
            byId.put(id, content.asText());
        }
        int firstSpecial = defaults.values().stream().mapToInt(Integer::intValue).min().orElse(0);
        for (var e : byId.entrySet()) {
            // the file at fault is this one, not tiktoken.model: say so here, before Tokenizer's own checks
            if (e.getKey() < firstSpecial || e.getKey() - firstSpecial >= MAX_SPECIAL_SPAN) {
                throw new IOException(config + ": added_tokens_decoder id " + e.getKey() + " (\"" + e.getValue() + "\") is outside the special ids "
                        + firstSpecial + ".." + (firstSpecial + MAX_SPECIAL_SPAN - 1) + " that follow tiktoken.model's " + firstSpecial + " ranks");
            }
            if (e.getValue().isEmpty()) throw new IOException(config + ": added_tokens_decoder[\"" + e.getKey() + "\"] has an empty \"content\"");
        }
        Map<String, Integer> specials = new LinkedHashMap<>();
        for (var e : byId.entrySet().stream().sorted(Map.Entry.comparingByKey()).toList()) {
            Integer previous = specials.put(e.getValue(), e.getKey());
            if (previous != null) {
                throw new IOException(config + ": added_tokens_decoder gives ids " + previous + " and " + e.getKey()
                        + " the same name \"" + e.getValue() + "\"");
            }
        }
        return specials;
    }

    /**
     * Reads a {@code tiktoken.model}: one {@code <base64 bytes> <rank>} per non-empty line, ranks 0..n-1 once each.
     *
     * @return token bytes indexed by rank
     * @throws IllegalArgumentException naming {@code source} and the line on malformed input
     */
    public static byte[][] readTiktokenModel(InputStream in, String source) throws IOException {
        List<byte[]> byRank = new ArrayList<>();
        List<Integer> lineOfRank = new ArrayList<>();
        Base64.Decoder base64 = Base64.getDecoder();
        BufferedReader reader = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8), 1 << 16);
        String line;
        int lineNo = 0;
        while ((line = reader.readLine()) != null) {
            lineNo++;
            String trimmed = line.strip();
            if (trimmed.isEmpty()) continue;
            String[] fields = trimmed.split("\\s+");
            if (fields.length != 2) {
                throw new IllegalArgumentException(source + ":" + lineNo + ": expected \"<base64 token> <rank>\", found "
                        + fields.length + " field(s): \"" + abbreviate(line) + "\"");
            }
            byte[] token;
            try {
                token = base64.decode(fields[0]);
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException(source + ":" + lineNo + ": token \"" + abbreviate(fields[0])
                        + "\" is not valid base64 (" + e.getMessage() + ")");
            }
            int rank;
            try {
                rank = Integer.parseInt(fields[1]);
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException(source + ":" + lineNo + ": rank \"" + abbreviate(fields[1]) + "\" is not an integer");
            }
            if (rank < 0) throw new IllegalArgumentException(source + ":" + lineNo + ": rank " + rank + " is negative");
            // ranks are 0..n-1 over n lines, so a rank past the lines read so far plus the bytes left is impossible;
            // without this bound one line "QQ== 2000000000" grew the table to 2e9 slots (review, kept as a fuzz seed)
            if (rank > lineNo + MAX_RANK_AHEAD) {
                throw new IllegalArgumentException(source + ":" + lineNo + ": rank " + rank + " is far past the " + lineNo
                        + " lines read so far (ranks must be 0..n-1 for n lines)");
            }
            if (token.length == 0) throw new IllegalArgumentException(source + ":" + lineNo + ": the token is empty");
            while (byRank.size() <= rank) {
                byRank.add(null);
                lineOfRank.add(0);
            }
            if (byRank.get(rank) != null) {
                throw new IllegalArgumentException(source + ":" + lineNo + ": rank " + rank + " already appeared at line " + lineOfRank.get(rank));
            }
            byRank.set(rank, token);
            lineOfRank.set(rank, lineNo);
        }
        if (byRank.isEmpty()) throw new IllegalArgumentException(source + ": no ranks (empty file)");
        for (int r = 0; r < byRank.size(); r++) {
            if (byRank.get(r) == null) {
                throw new IllegalArgumentException(source + ": rank " + r + " is missing (ranks must be 0.." + (byRank.size() - 1)
                        + " without gaps, since the special tokens follow the last rank)");
            }
        }
        return byRank.toArray(byte[][]::new);
    }

    /**
     * How far ahead of its line a rank may be. Files list ranks in order (tiktoken writes them so); a shuffled file
     * still loads as long as no rank comes more than this many lines early.
     */
    static final int MAX_RANK_AHEAD = 1 << 20;

    /** Special ids may leave gaps after the last rank, but not more than this many ids (Kimi's table has 258). */
    static final int MAX_SPECIAL_SPAN = 1 << 20;

    private static String abbreviate(String s) {
        return s.length() <= 60 ? s : s.substring(0, 60) + "...";
    }

    // ---------------------------------------------------------------------------------------------- encoding

    /** Token ids of {@code text}, every special-token name recognised (spec §8.3). */
    public int[] encode(String text) {
        IntList out = new IntList();
        byte[][] buf = {new byte[256]};
        forEachChunk(text, (start, end) -> encodeChunk(text, start, end, out, buf));
        return out.toArray();
    }

    /**
     * The ids of {@code prefix + suffix} from {@code prefixIds}, the ids of {@code prefix} (as {@link #encode} gave
     * them), and an encoding of {@code suffix} alone: the work is proportional to the suffix, so that a conversation's
     * next turn tokenizes only its new text. Null where the two encodings are not provably the concatenation of the
     * whole text's (the caller then encodes the whole text), which needs all of:
     * <ol>
     *   <li>{@code prefix} ends with a special token that its encoding matched ({@code prefixIds} ends with that
     *       special's id): there the scan for special names restarts and the regex split has a boundary, so nothing
     *       before the cut can merge with anything after it;</li>
     *   <li>no special name starting in the prefix's last characters runs past the cut and matches the joined text
     *       (the whole text's scan would then match that longer name instead);</li>
     *   <li>the joined text is one 400,000-code-point slice, and the run of whitespace or non-whitespace that
     *       crosses the cut (when one does) is at most {@value #MAX_RUN_CHARS} code points, so that the whole text
     *       is cut into the same chunks as the prefix and the suffix are, plus the cut itself.</li>
     * </ol>
     * Under these conditions the whole text's chunking, special matches and regex pieces are the prefix's followed
     * by the suffix's (see {@code TokenizerContinuationTest}, which compares both on random and adversarial texts).
     */
    public int[] encodeContinuation(String prefix, int[] prefixIds, String suffix) {
        int k = prefix.length();
        if (k == 0 || prefixIds.length == 0) return null;
        int last = prefixIds[prefixIds.length - 1];
        if (!isSpecial(last) || !prefix.endsWith(specialNames[last - bpe.size()])) return null;
        if ((long) k + suffix.length() > MAX_ENCODE_CHARS
                && (long) prefix.codePointCount(0, k) + suffix.codePointCount(0, suffix.length()) > MAX_ENCODE_CHARS) {
            return null;
        }
        // 2. a special name that starts before the cut and ends after it
        for (int p = Math.max(0, k - longestSpecialName + 1); p < k; p++) {
            String[] candidates = specialsByFirstChar.get(prefix.charAt(p));
            if (candidates == null) continue;
            for (String name : candidates) {
                int inPrefix = k - p;
                if (name.length() > inPrefix && prefix.startsWith(name.substring(0, inPrefix), p)
                        && suffix.startsWith(name.substring(inPrefix))) {
                    return null;
                }
            }
        }
        // 3. the run that crosses the cut: prefix's trailing run + suffix's leading run of the same class
        if (!suffix.isEmpty()) {
            boolean space = PythonText.isSpace(prefix.codePointBefore(k));
            if (PythonText.isSpace(suffix.codePointAt(0)) == space) {
                int run = 0;
                for (int i = k; i > 0 && run <= MAX_RUN_CHARS; ) {
                    int cp = prefix.codePointBefore(i);
                    if (PythonText.isSpace(cp) != space) break;
                    run++;
                    i -= Character.charCount(cp);
                }
                for (int i = 0; i < suffix.length() && run <= MAX_RUN_CHARS; ) {
                    int cp = suffix.codePointAt(i);
                    if (PythonText.isSpace(cp) != space) break;
                    run++;
                    i += Character.charCount(cp);
                }
                if (run > MAX_RUN_CHARS) return null;
            }
        }
        int[] tail = encode(suffix);
        int[] ids = java.util.Arrays.copyOf(prefixIds, prefixIds.length + tail.length);
        System.arraycopy(tail, 0, ids, prefixIds.length, tail.length);
        return ids;
    }

    /**
     * The pre-tokenizer pieces of {@code text}: chunking, then special tokens as their own pieces, then the regex
     * split of the text between them. Concatenated, they give back {@code text}.
     */
    public List<String> pieces(String text) {
        List<String> out = new ArrayList<>();
        forEachChunk(text, (start, end) -> forEachSegment(text, start, end,
                id -> out.add(specialNames[id - bpe.size()]),
                m -> out.add(text.substring(m.start(), m.end()))));
        return out;
    }

    private interface Range { void accept(int start, int end); }

    /**
     * Moonshot's chunking: slices of {@value #MAX_ENCODE_CHARS} code points, each cut further wherever a run of
     * whitespace or of non-whitespace ({@code str.isspace()}) would pass {@value #MAX_RUN_CHARS} code points.
     */
    private static void forEachChunk(String text, Range range) {
        int sliceStart = 0;
        while (true) {
            int sliceEnd = sliceStart;
            for (int n = 0; n < MAX_ENCODE_CHARS && sliceEnd < text.length(); n++) sliceEnd += Character.charCount(text.codePointAt(sliceEnd));
            splitRuns(text, sliceStart, sliceEnd, range);
            if (sliceEnd >= text.length()) return;
            sliceStart = sliceEnd;
        }
    }

    private static void splitRuns(String s, int start, int end, Range range) {
        boolean runIsSpace = start < end && PythonText.isSpace(s.codePointAt(start));
        int runLength = 0;
        int pieceStart = start;
        for (int i = start; i < end; ) {
            int cp = s.codePointAt(i);
            boolean space = PythonText.isSpace(cp);
            if (space != runIsSpace) {
                runLength = 1;
                runIsSpace = space;
            } else if (++runLength > MAX_RUN_CHARS) {
                range.accept(pieceStart, i);
                pieceStart = i;
                runLength = 1;
            }
            i += Character.charCount(cp);
        }
        range.accept(pieceStart, end);
    }

    private interface SpecialSink { void accept(int id); }

    private interface PieceSink { void accept(Matcher m); }

    /** Splits text[start, end) at special-token names, and the ordinary text between them with the regex. */
    private void forEachSegment(String text, int start, int end, SpecialSink specials, PieceSink pieces) {
        Matcher m = pattern.matcher(text);
        int ordinaryStart = start;
        for (int i = start; i < end; i++) {
            String[] candidates = specialsByFirstChar.get(text.charAt(i));
            if (candidates == null) continue;
            for (String name : candidates) {
                if (i + name.length() <= end && text.startsWith(name, i)) {
                    splitOrdinary(m, ordinaryStart, i, pieces);
                    specials.accept(specialIds.get(name));
                    i += name.length() - 1;
                    ordinaryStart = i + 1;
                    break;
                }
            }
        }
        splitOrdinary(m, ordinaryStart, end, pieces);
    }

    private static void splitOrdinary(Matcher m, int start, int end, PieceSink pieces) {
        if (start >= end) return;
        // Opaque region bounds: lookahead cannot see past the segment, as when tiktoken runs on the substring.
        m.region(start, end);
        while (m.find()) pieces.accept(m);
    }

    private void encodeChunk(String text, int start, int end, IntList out, byte[][] buf) {
        forEachSegment(text, start, end, out::add, m -> {
            int maxBytes = (m.end() - m.start()) * 3;
            if (buf[0].length < maxBytes) buf[0] = new byte[Math.max(maxBytes, buf[0].length * 2)];
            int len = utf8(text, m.start(), m.end(), buf[0]);
            bpe.encode(buf[0], len, out);
        });
    }

    /** UTF-8 of s[start, end) into out; a lone surrogate becomes U+FFFD as tiktoken's fallback does. */
    private static int utf8(String s, int start, int end, byte[] out) {
        int n = 0;
        for (int i = start; i < end; i++) {
            char c = s.charAt(i);
            if (c < 0x80) {
                out[n++] = (byte) c;
            } else if (c < 0x800) {
                out[n++] = (byte) (0xC0 | (c >> 6));
                out[n++] = (byte) (0x80 | (c & 0x3F));
            } else if (Character.isHighSurrogate(c) && i + 1 < end && Character.isLowSurrogate(s.charAt(i + 1))) {
                int cp = Character.toCodePoint(c, s.charAt(++i));
                out[n++] = (byte) (0xF0 | (cp >> 18));
                out[n++] = (byte) (0x80 | ((cp >> 12) & 0x3F));
                out[n++] = (byte) (0x80 | ((cp >> 6) & 0x3F));
                out[n++] = (byte) (0x80 | (cp & 0x3F));
            } else {
                int cp = Character.isSurrogate(c) ? 0xFFFD : c;
                out[n++] = (byte) (0xE0 | (cp >> 12));
                out[n++] = (byte) (0x80 | ((cp >> 6) & 0x3F));
                out[n++] = (byte) (0x80 | (cp & 0x3F));
            }
        }
        return n;
    }

    // ---------------------------------------------------------------------------------------------- decoding

    /** The text of {@code ids}: token bytes (a special contributes its name) decoded as UTF-8 with replacement. */
    public String decode(int[] ids) { return decode(ids, false); }

    /** Like {@link #decode(int[])}; with {@code skipSpecial} the special ids contribute nothing. */
    public String decode(int[] ids, boolean skipSpecial) {
        int total = 0;
        for (int id : ids) total += isSpecial(id) ? (skipSpecial ? 0 : specialBytes[id - bpe.size()].length) : tokenLength(id);
        byte[] out = new byte[total];
        int at = 0;
        for (int id : ids) {
            if (!isSpecial(id)) {
                at = bpe.copyBytes(id, out, at);
            } else if (!skipSpecial) {
                byte[] name = specialBytes[id - bpe.size()];
                System.arraycopy(name, 0, out, at, name.length);
                at += name.length;
            }
        }
        return new String(out, StandardCharsets.UTF_8);
    }

    private int tokenLength(int id) {
        checkId(id);
        return bpe.length(id);
    }

    /** The raw bytes of a token (a special token's name in UTF-8). */
    public byte[] tokenBytes(int id) {
        checkId(id);
        return isSpecial(id) ? specialBytes[id - bpe.size()].clone() : bpe.bytes(id);
    }

    /** A decoder for generated ids that only ever emits complete characters. */
    public IncrementalDecoder incrementalDecoder(boolean skipSpecial) {
        return new IncrementalDecoder(this, skipSpecial);
    }

    // ---------------------------------------------------------------------------------------------- vocabulary

    /** Number of ids, ranks plus specials (Kimi: 163,842; the model's embedding has 163,840 rows). */
    public int vocabSize() { return bpe.size() + specialNames.length; }

    /** Number of ordinary BPE ranks; the first special id of Kimi's table. */
    public int numRanks() { return bpe.size(); }

    public boolean isSpecial(int id) {
        int slot = id - bpe.size();
        return slot >= 0 && slot < specialNames.length && specialNames[slot] != null;
    }

    /** Where the ranks came from (a tiktoken.model path, a GGUF), as error messages name it. */
    public String source() { return source; }

    /** Whether the tokenizer has this special token (a plain DeepSeek GGUF's has no {@code <|media_pad|>}). */
    public boolean hasSpecial(String name) { return specialIds.containsKey(name); }

    /** The id of a special token, e.g. {@code specialId("<|im_end|>")}. */
    public int specialId(String name) {
        Integer id = specialIds.get(name);
        if (id == null) {
            throw new IllegalArgumentException("the tokenizer (" + source + ") has no special token " + name
                    + (name.startsWith("<|") || name.startsWith("[") ? "" : " (special names look like <|im_end|> or [EOS])"));
        }
        return id;
    }

    /** The id of a special-token name, or of an ordinary token whose bytes are the UTF-8 of {@code token}. */
    public OptionalInt tokenId(String token) {
        Integer special = specialIds.get(token);
        if (special != null) return OptionalInt.of(special);
        byte[] b = token.getBytes(StandardCharsets.UTF_8);
        int rank = b.length == 0 ? BytePairEncoder.NO_RANK : bpe.rank(b, 0, b.length);
        return rank == BytePairEncoder.NO_RANK ? OptionalInt.empty() : OptionalInt.of(rank);
    }

    /**
     * A readable name: the special's name, the token's text when its bytes are valid UTF-8, else the text with
     * each byte that is not part of a complete character written as {@code <0xNN>}.
     */
    public String tokenName(int id) {
        checkId(id);
        if (isSpecial(id)) return specialNames[id - bpe.size()];
        byte[] b = bpe.bytes(id);
        var decoder = StandardCharsets.UTF_8.newDecoder();
        try {
            return decoder.decode(java.nio.ByteBuffer.wrap(b)).toString();
        } catch (java.nio.charset.CharacterCodingException e) {
            StringBuilder sb = new StringBuilder();
            int i = 0;
            while (i < b.length) {
                int n = Utf8.completeSequenceLength(b, i, b.length);
                if (n > 0) {
                    sb.append(new String(b, i, n, StandardCharsets.UTF_8));
                    i += n;
                } else {
                    sb.append(String.format("<0x%02X>", b[i] & 0xFF));
                    i++;
                }
            }
            return sb.toString();
        }
    }

    /** All special tokens, name to id, in id order. */
    public Map<String, Integer> specialTokens() { return specialIds; }

    private void checkId(int id) {
        if (id < 0 || id >= vocabSize() || (id >= bpe.size() && !isSpecial(id))) {
            throw new IllegalArgumentException("token id " + id + " is not in the vocabulary of " + source
                    + " (ranks 0.." + (bpe.size() - 1) + ", specials " + bpe.size() + ".." + (vocabSize() - 1) + ")");
        }
    }

    @Override public String toString() {
        return "Tokenizer[" + source + ", " + bpe.size() + " ranks, " + specialIds.size() + " specials]";
    }

    /** Appends the bytes of one token (nothing for a skipped special) at {@code at}; returns the new end. */
    int appendBytes(int id, boolean skipSpecial, byte[] out, int at) {
        checkId(id);
        if (!isSpecial(id)) return bpe.copyBytes(id, out, at);
        if (skipSpecial) return at;
        byte[] name = specialBytes[id - bpe.size()];
        System.arraycopy(name, 0, out, at, name.length);
        return at + name.length;
    }

    int maxTokenBytes(int id) {
        checkId(id);
        return isSpecial(id) ? specialBytes[id - bpe.size()].length : bpe.length(id);
    }
}
