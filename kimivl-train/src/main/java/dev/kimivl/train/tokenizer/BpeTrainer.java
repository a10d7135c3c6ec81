package dev.kimivl.train.tokenizer;

import dev.kimivl.text.Tokenizer;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.PriorityQueue;
import java.util.Set;
import java.util.stream.Stream;

/**
 * Trains a byte-level BPE vocabulary in tiktoken's form: token bytes indexed by rank, ready for
 * {@link TokenizerFiles#write}.
 *
 * <p>Text is split exactly as the inference tokenizer splits it before merging ({@link Tokenizer#pieces}: Moonshot's
 * chunking, then Kimi's pre-tokenizer regex), so a merge learned here never spans a boundary that encoding would
 * cut. Special-token names found in the corpus (a rendered chat transcript, say) are left out of the counts, as
 * encoding maps them to their own ids and never merges them.
 *
 * <p>Ranks 0..255 are the single bytes, so any text encodes. Then each step merges the most frequent adjacent pair of
 * tokens over the table of distinct pieces and their counts. Ties go to the pair whose joined bytes sort first
 * (unsigned), then to the lower left and right ranks, so the same corpus always gives the same ranks. Pair counts are
 * kept incrementally: a merge revisits only the pieces that contain the pair, and a max-heap with lazy deletion finds
 * the next pair, so training on a few MB of text takes seconds.
 */
public final class BpeTrainer {
    /**
     * Ranks 0..255: the bytes in the order of GPT-2's {@code bytes_to_unicode} (the printable bytes first, {@code !}
     * at rank 0), the order of tiktoken's published vocabularies and of Kimi's, where {@code !} is id 0 (spec §11).
     */
    static final int[] BYTE_ORDER = byteOrder();

    private final int numRanks;
    private final Tokenizer preTokenizer;
    private final Set<String> specialNames;
    private final Map<String, long[]> pieceCounts = new HashMap<>();

    /**
     * @param numRanks the number of ordinary ranks to produce, single bytes included (at least 256); fewer come out
     *                 only when the corpus runs out of pairs to merge
     */
    public BpeTrainer(int numRanks) {
        if (numRanks < 256) {
            throw new IllegalArgumentException("numRanks is " + numRanks + "; a byte-level BPE needs at least the 256 single bytes");
        }
        this.numRanks = numRanks;
        byte[][] bytes = new byte[256][];
        for (int b = 0; b < 256; b++) bytes[b] = new byte[]{(byte) b};
        Map<String, Integer> specials = new LinkedHashMap<>();
        for (String name : TokenizerFiles.NAMED_SPECIALS.values()) specials.put(name, 256 + specials.size());
        specials.put(TokenizerFiles.UNK, 256 + specials.size());
        specials.put(TokenizerFiles.PAD, 256 + specials.size());
        // A tokenizer over the bare bytes: only its pieces() are used, which is the encoder's own split.
        this.preTokenizer = Tokenizer.create(bytes, Tokenizer.KIMI_PATTERN, specials, "BpeTrainer pre-tokenizer");
        this.specialNames = specials.keySet();
    }

    /** Ranks trained on {@code corpus} (each element a document or a line). */
    public static List<byte[]> train(Iterable<String> corpus, int numRanks) {
        BpeTrainer t = new BpeTrainer(numRanks);
        for (String text : corpus) t.add(text);
        return t.train();
    }

    /** Ranks trained on {@code corpus}; the stream is consumed in order. */
    public static List<byte[]> train(Stream<String> corpus, int numRanks) {
        BpeTrainer t = new BpeTrainer(numRanks);
        corpus.forEachOrdered(t::add);
        return t.train();
    }

    /** Counts the pieces of one text. */
    public void add(String text) {
        for (String piece : preTokenizer.pieces(text)) {
            if (specialNames.contains(piece)) continue;
            pieceCounts.computeIfAbsent(piece, p -> new long[1])[0]++;
        }
    }

    /** Number of distinct pieces counted so far. */
    public int distinctPieces() { return pieceCounts.size(); }

    /** The ranks: token bytes indexed by rank, the 256 single bytes first. */
    public List<byte[]> train() {
        List<byte[]> tokens = new ArrayList<>(numRanks);
        Map<ByteKey, Integer> idOf = new HashMap<>();
        for (int b : BYTE_ORDER) {
            idOf.put(new ByteKey(new byte[]{(byte) b}), tokens.size());
            tokens.add(new byte[]{(byte) b});
        }
        int[] rankOfByte = new int[256];
        for (int r = 0; r < 256; r++) rankOfByte[BYTE_ORDER[r]] = r;

        // Pieces in sorted order: iteration order then never depends on hashing, only on the corpus.
        String[] keys = pieceCounts.keySet().toArray(String[]::new);
        Arrays.sort(keys);
        int n = keys.length;
        int[][] words = new int[n][];
        long[] freq = new long[n];
        int[] wordLen = new int[n];
        for (int w = 0; w < n; w++) {
            byte[] b = utf8(keys[w]);
            words[w] = new int[b.length];
            for (int i = 0; i < b.length; i++) words[w][i] = rankOfByte[b[i] & 0xFF];
            wordLen[w] = b.length;
            freq[w] = pieceCounts.get(keys[w])[0];
        }

        PairTable pairs = new PairTable(tokens);
        for (int w = 0; w < n; w++) {
            int[] s = words[w];
            for (int i = 0; i + 1 < wordLen[w]; i++) pairs.add(s[i], s[i + 1], freq[w], w);
        }
        pairs.pushAll();

        while (tokens.size() < numRanks) {
            long best = pairs.popBest();
            if (best < 0) break;                       // no pair left: the corpus cannot give more ranks
            int a = (int) (best >>> 32), c = (int) best;
            byte[] joined = concat(tokens.get(a), tokens.get(c));
            ByteKey key = new ByteKey(joined);
            Integer existing = idOf.get(key);
            int merged;
            if (existing != null) {
                // Another pair already built these bytes ("ab"+"c" after "a"+"bc"): same token, no new rank.
                merged = existing;
            } else {
                merged = tokens.size();
                tokens.add(joined);
                idOf.put(key, merged);
            }
            int[] where = pairs.wordsOf(a, c);
            Set<Long> touched = new HashSet<>();
            for (int w : where) {
                int[] s = words[w];
                int len = wordLen[w];
                if (!contains(s, len, a, c)) continue;  // a stale entry: an earlier merge took the pair from this word
                long f = freq[w];
                for (int i = 0; i + 1 < len; i++) pairs.add(s[i], s[i + 1], -f, -1);
                int out = 0;
                for (int i = 0; i < len; ) {
                    if (i + 1 < len && s[i] == a && s[i + 1] == c) {
                        s[out++] = merged;
                        i += 2;
                    } else {
                        s[out++] = s[i++];
                    }
                }
                wordLen[w] = out;
                for (int i = 0; i + 1 < out; i++) {
                    pairs.add(s[i], s[i + 1], f, w);
                    if (s[i] == merged || s[i + 1] == merged) touched.add(PairTable.key(s[i], s[i + 1]));
                }
            }
            pairs.forget(a, c);
            // Only pairs next to the merged token can have grown (the rest netted out or fell); they get fresh heap entries.
            for (long k : touched) pairs.push(k);
        }
        return tokens;
    }

    /** UTF-8 with a lone surrogate as U+FFFD, the bytes the encoder produces for it (getBytes would give '?'). */
    static byte[] utf8(String s) {
        for (int i = 0; i < s.length(); i++) {
            if (Character.isSurrogate(s.charAt(i))) {
                int[] cps = s.codePoints().map(cp -> Character.isSurrogate((char) cp) && cp < 0x10000 ? 0xFFFD : cp).toArray();
                return new String(cps, 0, cps.length).getBytes(StandardCharsets.UTF_8);
            }
        }
        return s.getBytes(StandardCharsets.UTF_8);
    }

    private static boolean contains(int[] s, int len, int a, int c) {
        for (int i = 0; i + 1 < len; i++) if (s[i] == a && s[i + 1] == c) return true;
        return false;
    }

    static byte[] concat(byte[] x, byte[] y) {
        byte[] out = Arrays.copyOf(x, x.length + y.length);
        System.arraycopy(y, 0, out, x.length, y.length);
        return out;
    }

    private static int[] byteOrder() {
        int[] order = new int[256];
        boolean[] used = new boolean[256];
        int at = 0;
        for (int b = 0; b < 256; b++) {
            if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) {
                order[at++] = b;
                used[b] = true;
            }
        }
        for (int b = 0; b < 256; b++) if (!used[b]) order[at++] = b;
        return order;
    }

    /** Byte strings as hash keys. */
    private record ByteKey(byte[] b) {
        @Override public boolean equals(Object o) { return o instanceof ByteKey k && Arrays.equals(b, k.b); }
        @Override public int hashCode() { return Arrays.hashCode(b); }
    }

    /**
     * Pair counts, the words each pair occurs in, and a max-heap over (count, joined bytes, left, right).
     *
     * <p>The heap holds at least one entry per live pair whose count is at least the pair's current count; an entry
     * is valid when its count equals the current one. Counts that fall leave their old entry in place, to be
     * re-pushed at the lower count when it surfaces; counts that grow get a new entry. So the first valid entry
     * popped is the true maximum, ties included.
     */
    private static final class PairTable {
        private final List<byte[]> tokens;
        private final Map<Long, long[]> counts = new HashMap<>();
        private final Map<Long, int[]> words = new HashMap<>();   // [size, w0, w1, ...]
        private final PriorityQueue<Entry> heap = new PriorityQueue<>();

        PairTable(List<byte[]> tokens) { this.tokens = tokens; }

        static long key(int a, int c) { return ((long) a << 32) | (c & 0xFFFFFFFFL); }

        /** Adds {@code delta} to the pair's count and, for {@code word >= 0}, notes that the word holds it. */
        void add(int a, int c, long delta, int word) {
            long k = key(a, c);
            long[] cnt = counts.computeIfAbsent(k, x -> new long[1]);
            cnt[0] += delta;
            if (word >= 0) {
                int[] list = words.get(k);
                if (list == null) {
                    list = new int[]{0, 0, 0, 0};
                    words.put(k, list);
                }
                // Words are added in increasing order within one pass, so checking the last avoids most duplicates.
                if (list[0] == 0 || list[list[0]] != word) {
                    if (list[0] + 1 == list.length) {
                        list = Arrays.copyOf(list, list.length * 2);
                        words.put(k, list);
                    }
                    list[++list[0]] = word;
                }
            }
        }

        void pushAll() {
            List<Long> keys = new ArrayList<>(counts.keySet());
            for (long k : keys) push(k);
        }

        void push(long k) {
            long[] cnt = counts.get(k);
            if (cnt != null && cnt[0] > 0) heap.add(entry(k, cnt[0]));
        }

        private Entry entry(long k, long count) {
            int a = (int) (k >>> 32), c = (int) k;
            return new Entry(count, concat(tokens.get(a), tokens.get(c)), a, c);
        }

        /** The best pair as {@code key(a, c)}, or -1 when none is left; the caller merges it. */
        long popBest() {
            Entry e;
            while ((e = heap.poll()) != null) {
                long k = key(e.a, e.c);
                long[] cnt = counts.get(k);
                long now = cnt == null ? 0 : cnt[0];
                if (now == e.count) return k;
                if (now > 0 && now < e.count) heap.add(new Entry(now, e.joined, e.a, e.c));
                // now > e.count: a newer entry with the higher count is in the heap already.
            }
            return -1;
        }

        int[] wordsOf(int a, int c) {
            int[] list = words.get(key(a, c));
            return list == null ? new int[0] : Arrays.copyOfRange(list, 1, list[0] + 1);
        }

        /** Drops a merged pair: its count is zero now (every occurrence became the new token). */
        void forget(int a, int c) {
            long k = key(a, c);
            long[] cnt = counts.remove(k);
            words.remove(k);
            if (cnt != null && cnt[0] != 0) {
                throw new IllegalStateException("BPE bookkeeping: pair (" + a + ", " + c + ") still counts " + cnt[0] + " after its merge");
            }
        }
    }

    /** Heap order: higher count first, then joined bytes (unsigned) ascending, then left, then right rank. */
    private record Entry(long count, byte[] joined, int a, int c) implements Comparable<Entry> {
        @Override public int compareTo(Entry o) {
            if (count != o.count) return Long.compare(o.count, count);
            int cmp = Arrays.compareUnsigned(joined, o.joined);
            if (cmp != 0) return cmp;
            if (a != o.a) return Integer.compare(a, o.a);
            return Integer.compare(c, o.c);
        }
    }
}
