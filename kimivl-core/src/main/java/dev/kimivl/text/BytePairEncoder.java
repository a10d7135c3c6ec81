package dev.kimivl.text;

import java.util.Arrays;

/**
 * The mergeable ranks of a tiktoken vocabulary and the byte-pair merge over them.
 *
 * <p>Token bytes live in one pool in rank order, and an open-addressing hash table maps a byte range to its
 * rank, so a lookup during merging allocates nothing. The merge keeps the parts of a piece in a linked list and
 * the candidate pairs in a min-heap keyed by (rank, start), which picks the lowest rank and the leftmost pair
 * on ties exactly like tiktoken's quadratic loop, but in O(n log n) for the long pieces (a 25,000-character run
 * of digits or symbols) that a real prompt can contain.
 */
final class BytePairEncoder {
    static final int NO_RANK = Integer.MAX_VALUE;

    private final byte[] pool;
    private final int[] offsets;      // token r is pool[offsets[r], offsets[r + 1])
    private final int[] slots;        // rank + 1, 0 = empty
    private final int mask;
    private final int[] byteRank = new int[256];

    /** @param tokens token bytes indexed by rank; every single byte must be among them */
    BytePairEncoder(byte[][] tokens, String source) {
        int total = 0;
        for (byte[] t : tokens) total += t.length;
        pool = new byte[total];
        offsets = new int[tokens.length + 1];
        int capacity = Integer.highestOneBit(Math.max(16, tokens.length * 2 - 1)) << 1;
        slots = new int[capacity];
        mask = capacity - 1;
        int at = 0;
        for (int r = 0; r < tokens.length; r++) {
            System.arraycopy(tokens[r], 0, pool, at, tokens[r].length);
            offsets[r] = at;
            at += tokens[r].length;
        }
        offsets[tokens.length] = at;
        for (int r = 0; r < tokens.length; r++) {
            int len = tokens[r].length;
            if (len == 0) throw new IllegalArgumentException(source + ": rank " + r + " has an empty token");
            int slot = hash(pool, offsets[r], len) & mask;
            while (slots[slot] != 0) {
                int other = slots[slot] - 1;
                if (sameBytes(other, pool, offsets[r], len)) {
                    throw new IllegalArgumentException(source + ": ranks " + other + " and " + r + " have the same bytes");
                }
                slot = (slot + 1) & mask;
            }
            slots[slot] = r + 1;
        }
        byte[] one = new byte[1];
        for (int b = 0; b < 256; b++) {
            one[0] = (byte) b;
            byteRank[b] = rank(one, 0, 1);
            if (byteRank[b] == NO_RANK) {
                throw new IllegalArgumentException(source + ": the single byte 0x" + String.format("%02x", b)
                        + " has no rank; a byte-level BPE vocabulary must contain all 256 bytes");
            }
        }
    }

    int size() { return offsets.length - 1; }

    byte[] bytes(int rank) { return Arrays.copyOfRange(pool, offsets[rank], offsets[rank + 1]); }

    /** Appends the bytes of {@code rank} to {@code out} at {@code at}; returns the new end (caller sizes out). */
    int copyBytes(int rank, byte[] out, int at) {
        int len = offsets[rank + 1] - offsets[rank];
        System.arraycopy(pool, offsets[rank], out, at, len);
        return at + len;
    }

    int length(int rank) { return offsets[rank + 1] - offsets[rank]; }

    /** The rank of {@code b[off, off + len)}, or {@link #NO_RANK}. */
    int rank(byte[] b, int off, int len) {
        int slot = hash(b, off, len) & mask;
        int v;
        while ((v = slots[slot]) != 0) {
            if (sameBytes(v - 1, b, off, len)) return v - 1;
            slot = (slot + 1) & mask;
        }
        return NO_RANK;
    }

    private boolean sameBytes(int rank, byte[] b, int off, int len) {
        int start = offsets[rank];
        return offsets[rank + 1] - start == len && Arrays.equals(pool, start, start + len, b, off, off + len);
    }

    private static int hash(byte[] b, int off, int len) {
        int h = 0x811C9DC5;
        for (int i = off, end = off + len; i < end; i++) h = (h ^ (b[i] & 0xFF)) * 0x01000193;
        h ^= h >>> 16;
        h *= 0x85EBCA6B;
        return h ^ (h >>> 13);
    }

    /** Encodes the piece {@code b[0, len)} and appends its ranks to {@code out}. */
    void encode(byte[] b, int len, IntList out) {
        if (len == 1) {
            out.add(byteRank[b[0] & 0xFF]);
            return;
        }
        int whole = rank(b, 0, len);
        if (whole != NO_RANK) {
            out.add(whole);
            return;
        }
        // Part i starts at byte i while alive[i]; its end is next[i]. pairRank[i] ranks part i joined with its successor.
        int[] next = new int[len];
        int[] prev = new int[len];
        int[] pairRank = new int[len];
        boolean[] dead = new boolean[len];
        LongHeap heap = new LongHeap(len);
        for (int i = 0; i < len; i++) {
            next[i] = i + 1;
            prev[i] = i - 1;
        }
        for (int i = 0; i + 1 < len; i++) {
            pairRank[i] = rank(b, i, 2);
            if (pairRank[i] != NO_RANK) heap.push(key(pairRank[i], i));
        }
        pairRank[len - 1] = NO_RANK;
        while (!heap.isEmpty()) {
            long k = heap.pop();
            int i = (int) k;
            int r = (int) (k >>> 32);
            // A pair's byte string only grows when a neighbour merges, so a stale entry never matches the current rank.
            if (dead[i] || pairRank[i] != r) continue;
            int j = next[i];
            dead[j] = true;
            next[i] = next[j];
            if (next[i] < len) prev[next[i]] = i;
            pairRank[i] = next[i] < len ? rank(b, i, next[next[i]] - i) : NO_RANK;
            if (pairRank[i] != NO_RANK) heap.push(key(pairRank[i], i));
            int p = prev[i];
            if (p >= 0) {
                pairRank[p] = rank(b, p, next[i] - p);
                if (pairRank[p] != NO_RANK) heap.push(key(pairRank[p], p));
            }
        }
        for (int i = 0; i < len; i = next[i]) out.add(rank(b, i, next[i] - i));
    }

    private static long key(int rank, int start) { return ((long) rank << 32) | start; }

    /** A binary min-heap of longs. */
    private static final class LongHeap {
        private long[] a;
        private int n;

        LongHeap(int capacity) { a = new long[Math.max(4, capacity)]; }

        boolean isEmpty() { return n == 0; }

        void push(long v) {
            if (n == a.length) a = Arrays.copyOf(a, n * 2);
            int i = n++;
            while (i > 0) {
                int parent = (i - 1) >>> 1;
                if (a[parent] <= v) break;
                a[i] = a[parent];
                i = parent;
            }
            a[i] = v;
        }

        long pop() {
            long top = a[0];
            long v = a[--n];
            int i = 0;
            while (true) {
                int c = 2 * i + 1;
                if (c >= n) break;
                if (c + 1 < n && a[c + 1] < a[c]) c++;
                if (a[c] >= v) break;
                a[i] = a[c];
                i = c;
            }
            a[i] = v;
            return top;
        }
    }
}
