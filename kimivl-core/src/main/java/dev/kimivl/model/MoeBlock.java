package dev.kimivl.model;

import dev.kimivl.tensor.Kernels;
import dev.kimivl.config.TextConfig;
import dev.kimivl.tensor.Parallel;
import dev.kimivl.tensor.QuantizedInput;
import dev.kimivl.tensor.Matrix;
import dev.kimivl.tensor.QuantMatrix;
import dev.kimivl.tensor.VectorMath;

import java.util.Arrays;

/**
 * DeepSeek MoE (spec §6.6): a float32 router (sigmoid or softmax scores), expert selection by topk_method
 * (noaux_tc: biased scores with group-limited top-k, group score = sum of the top 2; group_limited_greedy: group
 * score = max; greedy), weights from the unbiased scores, optional normalisation, routed_scaling_factor
 * (always for V3, only without normalisation for V2), plus the shared-expert MLP.
 */
public final class MoeBlock {
    private final TextConfig c;
    private final Matrix router;          // [E, D]
    private final float[] scoreBias;      // [E] e_score_correction_bias, or null
    private final SwiGlu[] experts;       // E
    private final SwiGlu shared;          // or null

    /** The experts chosen for one token, in selection order, with their final weights. */
    public record Routing(int[] experts, float[] weights) {}

    MoeBlock(TextConfig c, Matrix router, float[] scoreBias, SwiGlu[] experts, SwiGlu shared) {
        this.c = c;
        this.router = router;
        this.scoreBias = scoreBias;
        this.experts = experts;
        this.shared = shared;
    }

    /** The same weights with their quantized products on other kernels. */
    MoeBlock withKernels(Kernels k) {
        SwiGlu[] e = new SwiGlu[experts.length];
        for (int i = 0; i < e.length; i++) e[i] = experts[i].withKernels(k);
        return new MoeBlock(c, k.bind(router), scoreBias, e, shared == null ? null : shared.withKernels(k));
    }

    void forEachRowProduct(java.util.function.Consumer<Matrix> f) {
        f.accept(router);
        for (SwiGlu e : experts) e.forEachRowProduct(f);
        if (shared != null) shared.forEachRowProduct(f);
    }

    /** x [T, D] (post-attention-normed) → y [T, D]; fills routing[t] when routing is not null. */
    float[] forward(float[] x, int T, Routing[] routing) {
        if (T == 1) return forwardOne(x, routing);
        return grouped(x, T, routing, false);
    }

    /**
     * x [T, D] → y [T, D] for the T tokens of a batched decode step (one per sequence): the tokens grouped by expert
     * as in a prompt, so each selected expert's weights are read once for all of them, with {@link RowProducts} so
     * that a token's result does not depend on the others (nor on T: no one-token shortcut).
     */
    float[] forwardRows(float[] x, int T) {
        return grouped(x, T, null, true);
    }

    /** Router, experts grouped by token, shared expert; {@code rowExact}: every product through {@link RowProducts}. */
    private float[] grouped(float[] x, int T, Routing[] routing, boolean rowExact) {
        int D = c.hiddenSize(), E = c.nRoutedExperts();
        PhaseTimer.begin();
        float[] logits = new float[T * E];
        if (rowExact) RowProducts.matmul(router, x, logits, T); else router.matmul(x, logits, T);
        Routing[] chosen = new Routing[T];
        for (int t = 0; t < T; t++) chosen[t] = route(logits, t * E);
        if (routing != null) System.arraycopy(chosen, 0, routing, 0, T);
        PhaseTimer.lap(PhaseTimer.Phase.ROUTER);

        // group tokens by expert; the experts run in parallel, each one batched product on one thread (one dispatch
        // for all of them instead of three per expert), largest first for balance
        int[][] tokensOf = new int[E][];
        int[] count = new int[E];
        for (int t = 0; t < T; t++) for (int e : chosen[t].experts) count[e]++;
        for (int e = 0; e < E; e++) tokensOf[e] = new int[count[e]];
        int[] fill = new int[E];
        for (int t = 0; t < T; t++) for (int e : chosen[t].experts) tokensOf[e][fill[e]++] = t;
        Integer[] order = new Integer[E];
        for (int e = 0; e < E; e++) order[e] = e;
        java.util.Arrays.sort(order, (a, b) -> Integer.compare(count[b], count[a]));
        int active = 0;
        while (active < E && count[order[active]] > 0) active++;

        float[] y = shared == null ? new float[T * D] : rowExact ? shared.forwardRows(x, T) : shared.forward(x, T);
        PhaseTimer.lap(PhaseTimer.Phase.SHARED_EXPERT);
        float[][] ye = new float[E][];
        RowBlocks.run(active, i -> {
            int e = order[i], n = count[e];
            float[] xe = new float[n * D];
            for (int j = 0; j < n; j++) System.arraycopy(x, tokensOf[e][j] * D, xe, j * D, D);
            ye[e] = rowExact ? experts[e].forwardRows(xe, n) : experts[e].forward(xe, n);
        });
        float[] routed = new float[T * D];
        for (int e = 0; e < E; e++) {
            for (int j = 0; j < count[e]; j++) {
                int t = tokensOf[e][j];
                VectorMath.axpy(weightOf(chosen[t], e), ye[e], j * D, routed, t * D, D);
            }
        }
        VectorMath.add(y, routed);
        PhaseTimer.lap(PhaseTimer.Phase.FFN_UP);
        return y;
    }

    /**
     * One token: the router, then gate and up of the shared expert and of the k chosen experts in one dispatch, then
     * one dispatch over blocks of output rows that sums the down projections (routed ones in ascending expert order,
     * weighted, then the shared one: the same order and rounding as the batched path).
     */
    private float[] forwardOne(float[] x, Routing[] routing) {
        int D = c.hiddenSize(), E = c.nRoutedExperts();
        PhaseTimer.begin();
        float[] logits = new float[E];
        router.matvec(x, 0, logits, 0);
        Routing r = route(logits, 0);
        if (routing != null) routing[0] = r;
        PhaseTimer.lap(PhaseTimer.Phase.ROUTER);

        int k = r.experts().length;
        int[] ids = r.experts().clone();
        java.util.Arrays.sort(ids);
        int parts = k + (shared != null ? 1 : 0);
        SwiGlu[] mlp = new SwiGlu[parts];
        float[] w = new float[parts];
        for (int i = 0; i < k; i++) { mlp[i] = experts[ids[i]]; w[i] = weightOf(r, ids[i]); }
        if (shared != null) mlp[k] = shared;
        if (parts >= 2 * Parallel.THREADS) return partPerThread(x, mlp, w, k, parts);
        // items: for each part, its gate blocks then its up blocks
        int[] first = new int[parts + 1];
        for (int p = 0; p < parts; p++) first[p + 1] = first[p] + mlp[p].gateBlocks.count() + mlp[p].upBlocks.count();
        float[][] g = new float[parts][], u = new float[parts][];
        for (int p = 0; p < parts; p++) { g[p] = new float[mlp[p].inter()]; u[p] = new float[mlp[p].inter()]; }
        QuantizedInput xq = mlp[0].gateBlocks.quantized(x, 0);
        RowBlocks.run(first[parts], i -> {
            int p = 0;
            while (i >= first[p + 1]) p++;
            int b = i - first[p], ng = mlp[p].gateBlocks.count();
            if (b < ng) mlp[p].gateBlocks.block(b, xq, x, 0, g[p], 0);
            else mlp[p].upBlocks.block(b - ng, xq, x, 0, u[p], 0);
        });
        for (int p = 0; p < parts; p++) {
            float[] gp = g[p], up = u[p];
            VectorMath.siluMul(gp, up, gp.length);
        }
        PhaseTimer.lap(PhaseTimer.Phase.FFN_UP);
        float[] y = new float[D];
        RowBlocks down0 = mlp[0].downBlocks;
        QuantizedInput[] gq = new QuantizedInput[parts];
        for (int p = 0; p < parts; p++) gq[p] = mlp[p].downBlocks.quantized(g[p], 0);
        RowBlocks.run(down0.count(), b -> {
            int r0 = down0.start[b], n = Math.min(RowBlocks.BLOCK_ROWS, D - r0);
            float[] acc = new float[D], tmp = new float[D];
            for (int p = 0; p < k; p++) {
                mlp[p].downBlocks.block(b, gq[p], g[p], 0, tmp, 0);
                for (int i = r0; i < r0 + n; i++) acc[i] = Math.fma(tmp[i], w[p], acc[i]);
            }
            if (shared != null) {
                shared.downBlocks.block(b, gq[k], g[k], 0, tmp, 0);
                for (int i = r0; i < r0 + n; i++) y[i] = tmp[i] + acc[i];
            } else {
                System.arraycopy(acc, r0, y, r0, n);
            }
        });
        PhaseTimer.lap(PhaseTimer.Phase.FFN_DOWN);
        return y;
    }

    /**
     * One token with each part (a chosen expert, the shared expert) whole on one thread: gate, up, SiLU and down with no
     * barrier between the up and the down projections, so each core streams its experts' 4.9 MB (Q4_0) without
     * waiting for the other. Taken where the parts keep every thread busy (at least two per thread: 7 parts on 2
     * cores, the shared expert counting double and going first). Measured on the Q4_0 bench, alternating 3 rounds in one
     * session: the MoE phases 1.75-1.95 → 1.66-1.75 s per 64 tokens, decode +3-5%. The sum is forwardOne's: routed
     * parts in ascending expert order, weighted, then the shared one, so the result is the same bit for bit. (The
     * profile counts the whole experts under ffn_up here, and the sum under ffn_down.)
     */
    private float[] partPerThread(float[] x, SwiGlu[] mlp, float[] w, int k, int parts) {
        int D = c.hiddenSize();
        QuantizedInput xq = mlp[0].gateBlocks.quantized(x, 0);
        float[][] yp = new float[parts][];
        RowBlocks.run(parts, i -> {
            int p = shared != null ? (i + parts - 1) % parts : i;     // the shared expert (twice an expert's rows) first
            yp[p] = mlp[p].forwardOne(x, xq);
        });
        PhaseTimer.lap(PhaseTimer.Phase.FFN_UP);
        float[] acc = new float[D], y = new float[D];
        for (int p = 0; p < k; p++) for (int i = 0; i < D; i++) acc[i] = Math.fma(yp[p][i], w[p], acc[i]);
        if (shared != null) for (int i = 0; i < D; i++) y[i] = yp[k][i] + acc[i];
        else System.arraycopy(acc, 0, y, 0, D);
        PhaseTimer.lap(PhaseTimer.Phase.FFN_DOWN);
        return y;
    }

    /** Bytes of weights one token reads on average: router, shared expert, k of the E routed experts. */
    double decodeBytes() {
        double routed = 0;
        for (SwiGlu e : experts) routed += e.bytes();
        return router.bytes() + (shared != null ? shared.bytes() : 0) + routed * c.numExpertsPerTok() / experts.length;
    }

    private static float weightOf(Routing r, int e) {
        for (int k = 0; k < r.experts.length; k++) if (r.experts[k] == e) return r.weights[k];
        throw new IllegalStateException("expert " + e + " not selected");
    }

    /** Selection for one token from its router logits at logits[off .. off+E). */
    Routing route(float[] logits, int off) {
        int E = c.nRoutedExperts(), k = c.numExpertsPerTok();
        float[] scores = new float[E];
        if (c.scoringFunc().equals("sigmoid")) {
            for (int e = 0; e < E; e++) scores[e] = VectorMath.sigmoid(logits[off + e]);
        } else {
            System.arraycopy(logits, off, scores, 0, E);
            VectorMath.softmax(scores, 0, E);
        }
        float[] choice = scores.clone();
        if (c.topkMethod().equals("noaux_tc") && scoreBias != null) {
            for (int e = 0; e < E; e++) choice[e] = scores[e] + scoreBias[e];
        }
        if (!c.topkMethod().equals("greedy") && c.nGroup() > 1) maskGroups(choice);
        int[] idx = topK(choice, k);
        float[] w = new float[k];
        float sum = 0;
        for (int i = 0; i < k; i++) { w[i] = scores[idx[i]]; sum += w[i]; }
        boolean normalize = k > 1 && c.normTopkProb();
        if (normalize) for (int i = 0; i < k; i++) w[i] = w[i] / (sum + 1e-20f);
        if (c.v3Gate() || !normalize) for (int i = 0; i < k; i++) w[i] *= (float) c.routedScalingFactor();
        return new Routing(idx, w);
    }

    /** Keeps the topk_group best groups and sets the other groups' scores to 0.0 (as HF's gate does). */
    private void maskGroups(float[] choice) {
        int G = c.nGroup(), per = choice.length / G;
        float[] groupScore = new float[G];
        for (int g = 0; g < G; g++) {
            float[] part = Arrays.copyOfRange(choice, g * per, (g + 1) * per);
            if (c.topkMethod().equals("noaux_tc")) {
                int[] top2 = topK(part, Math.min(2, per));
                for (int i : top2) groupScore[g] += part[i];
            } else {
                float m = Float.NEGATIVE_INFINITY;
                for (float v : part) m = Math.max(m, v);
                groupScore[g] = m;
            }
        }
        boolean[] keep = new boolean[G];
        for (int g : topK(groupScore, c.topkGroup())) keep[g] = true;
        for (int g = 0; g < G; g++) if (!keep[g]) Arrays.fill(choice, g * per, (g + 1) * per, 0f);
    }

    /** Indices of the k largest values, largest first (ties: lower index first). */
    static int[] topK(float[] v, int k) {
        int[] idx = new int[k];
        boolean[] used = new boolean[v.length];
        for (int i = 0; i < k; i++) {
            int best = -1;
            for (int j = 0; j < v.length; j++) {
                if (!used[j] && (best < 0 || v[j] > v[best])) best = j;
            }
            used[best] = true;
            idx[i] = best;
        }
        return idx;
    }
}
