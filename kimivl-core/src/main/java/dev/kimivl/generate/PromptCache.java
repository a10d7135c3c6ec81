package dev.kimivl.generate;

import dev.kimivl.model.KvCache;
import dev.kimivl.model.LanguageModel;

import java.util.Arrays;

/**
 * A conversation's KV cache kept from one generation to the next, so that each turn of a chat computes only what
 * is new: the next prompt's longest prefix that is already cached (the earlier turns, as far as the chat template
 * renders them the same) is reused and only the rest is prefilled.
 *
 * <p>A position is the same when its token id and its input embedding are: image placeholders share one id, so the
 * embedding (a hash of its row, which carries the image's features) tells two images apart. Not thread-safe: one
 * conversation, one generation at a time.
 */
public final class PromptCache {
    private KvCache kv;
    private int[] ids = new int[0];
    private long[] rows = new long[0];        // [position] hash of the input embedding row
    private int length;                       // positions in kv that ids/rows describe
    private int reused;

    /** Forgets everything (a new conversation). */
    public void clear() {
        length = 0;
        reused = 0;
        if (kv != null) kv.truncate(0);
    }

    /** Positions cached now. */
    public int cachedTokens() { return length; }

    /** Prompt positions the last generation took from the cache instead of computing them. */
    public int reusedTokens() { return reused; }

    /**
     * Prepares the cache for a prompt: keeps its longest matching prefix (at most T-1 positions: the last prompt
     * token must run to give the first logits) and returns that length; the caller prefills from there.
     */
    KvCache prepare(LanguageModel lm, int contextLength, int[] promptIds, float[] embeddings, int D) {
        if (kv == null || kv.maxTokens() != contextLength) {
            kv = lm.newCache(contextLength);
            length = 0;
        }
        int T = promptIds.length;
        int n = 0, limit = Math.min(length, T - 1);
        while (n < limit && ids[n] == promptIds[n] && rows[n] == rowHash(embeddings, n, D)) n++;
        kv.truncate(n);
        length = n;
        reused = n;
        for (int t = n; t < T; t++) record(promptIds[t], rowHash(embeddings, t, D));
        return kv;
    }

    /** A position appended to the cache (prompt rows in {@link #prepare}, generated tokens by the generator). */
    void record(int id, long rowHash) {
        if (length == ids.length) {
            int cap = Math.max(64, 2 * length);
            ids = Arrays.copyOf(ids, cap);
            rows = Arrays.copyOf(rows, cap);
        }
        ids[length] = id;
        rows[length++] = rowHash;
    }

    /** Drops described positions the cache does not hold (the last sampled token is never run through the model). */
    void sync() { length = Math.min(length, kv.length()); }

    static long rowHash(float[] x, int t, int D) {
        long h = 1125899906842597L;
        for (int i = t * D, end = i + D; i < end; i++) h = 31 * h + Float.floatToRawIntBits(x[i]);
        return h;
    }
}
