package dev.kimivl.generate;

import java.util.Arrays;
import java.util.SplittableRandom;

/** Turns logits into the next token: repetition penalty, then greedy or temperature / top-k / top-p / min-p sampling. */
public final class Sampler {
    private final SamplingParams p;
    private final SplittableRandom random;

    public Sampler(SamplingParams p) {
        this.p = p;
        this.random = new SplittableRandom(p.seed());
    }

    /** Picks a token; {@code logits} is modified. {@code seen} are the tokens so far (prompt and generated). */
    public int sample(float[] logits, int[] seen, int seenCount) {
        if (p.repetitionPenalty() != 1) {
            float rp = (float) p.repetitionPenalty();
            boolean[] done = new boolean[logits.length];
            for (int i = 0; i < seenCount; i++) {
                int id = seen[i];
                if (id < 0 || id >= logits.length || done[id]) continue;
                done[id] = true;
                logits[id] = logits[id] > 0 ? logits[id] / rp : logits[id] * rp;
            }
        }
        if (p.isGreedy()) return argmax(logits);

        int n = logits.length;
        // candidates sorted by logit, cut to top-k first (cheap for the 163840-token vocabulary)
        int k = p.topK() > 0 ? Math.min(p.topK(), n) : n;
        int[] idx = topIndices(logits, k);
        double max = logits[idx[0]];
        double[] prob = new double[k];
        double sum = 0;
        for (int i = 0; i < k; i++) { prob[i] = Math.exp((logits[idx[i]] - max) / p.temperature()); sum += prob[i]; }
        for (int i = 0; i < k; i++) prob[i] /= sum;
        int keep = k;
        if (p.minP() > 0) {
            double floor = p.minP() * prob[0];
            while (keep > 1 && prob[keep - 1] < floor) keep--;
        }
        if (p.topP() < 1) {
            double cum = 0;
            for (int i = 0; i < keep; i++) {
                cum += prob[i];
                if (cum >= p.topP()) { keep = i + 1; break; }
            }
        }
        double total = 0;
        for (int i = 0; i < keep; i++) total += prob[i];
        double r = random.nextDouble() * total;
        for (int i = 0; i < keep; i++) {
            r -= prob[i];
            if (r < 0) return idx[i];
        }
        return idx[keep - 1];
    }

    public static int argmax(float[] v) {
        int b = 0;
        for (int i = 1; i < v.length; i++) if (v[i] > v[b]) b = i;
        return b;
    }

    /** Indices of the k largest logits, largest first. */
    static int[] topIndices(float[] logits, int k) {
        int n = logits.length;
        if (k == n) {
            // the whole vocabulary in order: a primitive sort of (descending logit, ascending index) keys, the
            // order Float.compare gives, without boxing 163,840 Integers per sampled token
            long[] keys = new long[n];
            for (int i = 0; i < n; i++) {
                int bits = Float.floatToIntBits(logits[i]);
                int ascending = bits ^ ((bits >> 31) & 0x7fffffff);      // int order = float order (−0 < +0, NaN last)
                keys[i] = ((long) ~ascending << 32) | i;                  // ~ reverses it: largest logit first
            }
            Arrays.sort(keys);
            int[] out = new int[n];
            for (int i = 0; i < n; i++) out[i] = (int) keys[i];
            return out;
        }
        // bounded selection: a min-heap of size k
        int[] heap = new int[k];
        int size = 0;
        for (int i = 0; i < n; i++) {
            if (size < k) {
                heap[size] = i;
                siftUp(heap, size++, logits);
            } else if (logits[i] > logits[heap[0]]) {
                heap[0] = i;
                siftDown(heap, size, logits);
            }
        }
        int[] out = new int[k];
        for (int i = k - 1; i >= 0; i--) {
            out[i] = heap[0];
            heap[0] = heap[--size];
            siftDown(heap, size, logits);
        }
        return out;
    }

    private static void siftUp(int[] h, int i, float[] v) {
        while (i > 0) {
            int parent = (i - 1) / 2;
            if (v[h[i]] >= v[h[parent]]) break;
            int t = h[i]; h[i] = h[parent]; h[parent] = t;
            i = parent;
        }
    }

    private static void siftDown(int[] h, int size, float[] v) {
        int i = 0;
        while (true) {
            int l = 2 * i + 1, r = l + 1, m = i;
            if (l < size && v[h[l]] < v[h[m]]) m = l;
            if (r < size && v[h[r]] < v[h[m]]) m = r;
            if (m == i) return;
            int t = h[i]; h[i] = h[m]; h[m] = t;
            i = m;
        }
    }
}
