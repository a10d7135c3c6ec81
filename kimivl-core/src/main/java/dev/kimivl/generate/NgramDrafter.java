package dev.kimivl.generate;

import java.util.Arrays;
import java.util.HashMap;

/**
 * Prompt-lookup drafting (Saxena's "prompt lookup decoding", vLLM's and llama.cpp's n-gram speculation): guesses the
 * next tokens by finding the sequence's last n tokens earlier in the sequence (the prompt and the output so far) and
 * proposing what followed them there. Copy-heavy answers (quoting a passage, editing code, answering from a document
 * in the prompt) repeat long runs of the prompt, so the guesses are often right; elsewhere they are simply rejected.
 *
 * <p>The longest suffix wins: n from {@code maxN} down to {@code minN}; among earlier occurrences of that n-gram the
 * most recent one (the nearest context is the likeliest to continue the same way). Each occurrence is indexed once
 * as the sequence grows (a hash of the n-gram to the last position where it ended), so a draft costs O(maxN) map
 * look-ups however long the sequence is.
 *
 * <p>Not thread-safe: one sequence, one thread.
 */
public final class NgramDrafter {
    /** Bits per token id in a packed n-gram key: 3 × 21 = 63 bits. Ids are stored + 1 so that a shorter n-gram never equals a longer one. */
    private static final int BITS = 21;
    static final int MAX_N = 3;
    static final int MAX_ID = (1 << BITS) - 2;

    private final int maxN, minN;
    private int[] tokens;
    private int length;
    /** index[n - 1]: n-gram key → the last position j such that tokens[j-n+1 .. j] is that n-gram and j + 1 < length. */
    @SuppressWarnings("unchecked")
    private final HashMap<Long, Integer>[] index = new HashMap[MAX_N];

    /**
     * @param history the sequence so far (the prompt's ids); more are added with {@link #append}
     * @param maxN    longest suffix looked up (1..3)
     * @param minN    shortest suffix that may produce a draft (1..maxN): 1 drafts after any repeated token, 2 is
     *                more selective
     */
    public NgramDrafter(int[] history, int maxN, int minN) {
        if (maxN < 1 || maxN > MAX_N) throw new IllegalArgumentException("n-gram length must be in 1.." + MAX_N + ", got " + maxN);
        if (minN < 1 || minN > maxN) throw new IllegalArgumentException("shortest n-gram must be in 1.." + maxN + ", got " + minN);
        this.maxN = maxN;
        this.minN = minN;
        for (int n = 0; n < MAX_N; n++) index[n] = new HashMap<>();
        this.tokens = new int[Math.max(16, history.length + 64)];
        for (int id : history) append(id);
    }

    /** Tokens seen so far. */
    public int length() { return length; }

    /** Adds the next token of the sequence (an accepted or emitted one; never a rejected draft). */
    public void append(int id) {
        if (id < 0 || id > MAX_ID) throw new IllegalArgumentException("token id " + id + " is outside 0.." + MAX_ID + " (n-gram keys pack 21 bits per id)");
        if (length == tokens.length) tokens = Arrays.copyOf(tokens, 2 * length);
        tokens[length++] = id;
        // the n-grams ending at the previous position now have a continuation (this token): index them
        int j = length - 2;
        if (j < 0) return;
        for (int n = 1; n <= maxN && n <= j + 1; n++) index[n - 1].put(key(j, n), j);
    }

    /** Drafted tokens and the length n of the suffix they were found by (0 when none). */
    public record Draft(int n, int[] tokens) {
        static final Draft NONE = new Draft(0, new int[0]);
    }

    /**
     * Up to {@code k} tokens that followed the longest (≤ maxN, ≥ minN) suffix of the sequence at its most recent
     * earlier occurrence; {@link Draft#NONE} when no suffix of at least minN tokens occurred before.
     */
    public Draft draft(int k) {
        if (k <= 0 || length == 0) return Draft.NONE;
        for (int n = Math.min(maxN, length); n >= minN; n--) {
            Integer end = index[n - 1].get(key(length - 1, n));
            if (end == null) continue;
            int from = end + 1, count = Math.min(k, length - from);
            return new Draft(n, Arrays.copyOfRange(tokens, from, from + count));
        }
        return Draft.NONE;
    }

    /** The n tokens ending at position j, packed. */
    private long key(int j, int n) {
        long key = 0;
        for (int i = j - n + 1; i <= j; i++) key = (key << BITS) | (tokens[i] + 1L);
        return key;
    }
}
