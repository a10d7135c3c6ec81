package dev.kimivl.vision;

import dev.kimivl.tensor.Parallel;
import dev.kimivl.tensor.VectorMath;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * Element-wise kernels of the vision encoder on 256-bit float lanes: LayerNorm rows and GELU (tanh and erf; their e^x
 * is {@link VectorMath#exp}, the engine's one vector exp); plus the first per-query attention, kept as the reference
 * implementation.
 * The matrix products are in {@link PackedLinear} and {@link VisionAttention}. Activations are row-major float32.
 */
final class VisionKernels {
    /** 256-bit vectors: the 8-lane kernels' width ({@link dev.kimivl.tensor.Vectors#F8}), the packed GEMM's. */
    static final VectorSpecies<Float> F = dev.kimivl.tensor.Vectors.F8;
    private static final int VL = F.length();
    /** Queries processed together so each key/value vector load feeds this many FMAs. */
    private static final int QB = 8;

    private VisionKernels() {}

    /** Exact (erf) GELU on float lanes, erf as in {@link #erf}. */
    static FloatVector geluErf(FloatVector v) {
        return v.mul(0.5f).mul(erf(v.mul((float) (1 / Math.sqrt(2)))).add(1f));
    }

    /** out[t] = LayerNorm(x[t]) over rows of width gamma.length (two-pass mean / biased variance, float lanes). */
    static void layerNorm(float[] x, float[] gamma, float[] beta, float eps, float[] out, int n) {
        int w = gamma.length;
        VisionParallel.forTasks((n + 63) / 64, (task, scratch) -> {
            for (int t = task * 64, end = Math.min(n, t + 64); t < end; t++) layerNormRow(x, t * w, gamma, beta, eps, out, t * w, w);
        });
    }

    /**
     * One row of {@link #layerNorm}. The lane sums add the lanes in lane order ({@link VectorMath#sum}), never
     * {@code reduceLanes(ADD)}, whose order differs between the interpreted Vector API and C2's intrinsic: an image
     * encoded early in a run (interpreted) and again later (compiled) must give the same features, bit for bit, or the
     * server's image cache and batched prompts would change answers (VisionKernelJitDeterminismTest).
     */
    static void layerNormRow(float[] x, int xo, float[] gamma, float[] beta, float eps, float[] out, int oo, int w) {
        int bound = F.loopBound(w), i = 0;
        FloatVector s0 = FloatVector.zero(F), s1 = s0;
        for (; i + 2 * VL <= bound; i += 2 * VL) {
            s0 = s0.add(FloatVector.fromArray(F, x, xo + i));
            s1 = s1.add(FloatVector.fromArray(F, x, xo + i + VL));
        }
        for (; i < bound; i += VL) s0 = s0.add(FloatVector.fromArray(F, x, xo + i));
        float sum = VectorMath.sum(s0.add(s1));
        for (; i < w; i++) sum += x[xo + i];
        float mean = sum / w;
        FloatVector vm = FloatVector.broadcast(F, mean);
        s0 = FloatVector.zero(F); s1 = s0;
        i = 0;
        for (; i + 2 * VL <= bound; i += 2 * VL) {
            FloatVector d0 = FloatVector.fromArray(F, x, xo + i).sub(vm), d1 = FloatVector.fromArray(F, x, xo + i + VL).sub(vm);
            s0 = d0.fma(d0, s0);
            s1 = d1.fma(d1, s1);
        }
        for (; i < bound; i += VL) { FloatVector d0 = FloatVector.fromArray(F, x, xo + i).sub(vm); s0 = d0.fma(d0, s0); }
        float var = VectorMath.sum(s0.add(s1));
        for (; i < w; i++) { float d = x[xo + i] - mean; var += d * d; }
        var /= w;
        float inv = (float) (1.0 / Math.sqrt(var + eps));
        FloatVector vi = FloatVector.broadcast(F, inv);
        i = 0;
        for (; i < bound; i += VL) {
            FloatVector.fromArray(F, x, xo + i).sub(vm).mul(vi).fma(FloatVector.fromArray(F, gamma, i), FloatVector.fromArray(F, beta, i))
                    .intoArray(out, oo + i);
        }
        for (; i < w; i++) out[oo + i] = (x[xo + i] - mean) * inv * gamma[i] + beta[i];
    }

    /**
     * erf on float lanes: PyTorch's own vectorised CPU erf (Abramowitz–Stegun 7.1.26, |error| ≤ 1.5e-7), which is
     * what the reference runs on x86 for the projector's exact GELU.
     */
    static FloatVector erf(FloatVector x) {
        FloatVector ax = x.abs();
        FloatVector t = ax.mul(0.3275911f).add(1f);
        t = FloatVector.broadcast(F, 1f).div(t);
        FloatVector r = t.mul(1.061405429f).add(-1.453152027f)
                .mul(t).add(1.421413741f)
                .mul(t).add(-0.284496736f)
                .mul(t).add(0.254829592f)
                .mul(t);
        FloatVector y = FloatVector.broadcast(F, 1f).sub(r.mul(VectorMath.exp(ax.mul(ax).neg())));
        return y.lanewise(VectorOperators.NEG, x.compare(VectorOperators.LT, 0f));
    }

    /**
     * Multi-head attention restricted to each image (block-diagonal, non-causal), one query block at a time: the
     * first, straightforward implementation, kept as the reference for {@link VisionAttention} in tests and as the
     * baseline of VisionKernelBench.
     *
     * @param qkv     [L, 3·D]: q | k | v, each head-major (head h = columns h·d .. h·d+d−1); RoPE already applied
     * @param starts  first token of each image; counts[m] tokens each
     * @param out     [L, D] the concatenated head outputs
     */
    static void blockDiagonalAttention(float[] qkv, int dim, int heads, int[] starts, int[] counts, float[] out) {
        int d = dim / heads;
        int images = starts.length;
        float scale = (float) (1.0 / Math.sqrt(d));
        // one task per (image, head): each is independent and touches its own output columns
        Parallel.forRange(images * heads, 1, (from, to) -> {
            for (int task = from; task < to; task++) {
                int m = task / heads, h = task % heads;
                attendHead(qkv, dim, d, h, starts[m], counts[m], scale, out);
            }
        });
    }

    private static void attendHead(float[] qkv, int dim, int d, int h, int s, int n, float scale, float[] out) {
        int stride = 3 * dim;
        int np = (n + VL - 1) / VL * VL;                   // key axis padded to whole vectors
        int dp = (d + VL - 1) / VL * VL;                   // head dim padded to whole vectors
        // kt [d, np]: keys transposed, so scores vectorise along the key axis (zeros in the padding)
        // vv [np, dp]: values, so P·V vectorises along the head dim
        float[] kt = new float[d * np], vv = new float[np * dp];
        for (int j = 0; j < n; j++) {
            int ko = (s + j) * stride + dim + h * d, vo = ko + dim;
            for (int c = 0; c < d; c++) kt[c * np + j] = qkv[ko + c];
            System.arraycopy(qkv, vo, vv, j * dp, d);
        }
        float[] sc = new float[QB * np];                   // [QB, np] scores, then softmax numerators
        float[] q = new float[QB * d];
        float[] inv = new float[QB];
        float[] acc = new float[QB * dp];
        for (int i0 = 0; i0 < n; i0 += QB) {
            int qb = Math.min(QB, n - i0);
            for (int r = 0; r < QB; r++) {
                int qo = (s + i0 + Math.min(r, qb - 1)) * stride + h * d;  // pad the last block by repeating a row
                for (int c = 0; c < d; c++) q[r * d + c] = qkv[qo + c] * scale;
            }
            scores(q, d, kt, np, sc);
            // softmax numerators over the n real keys; padded keys get weight 0
            for (int r = 0; r < qb; r++) {
                int o = r * np;
                float max = Float.NEGATIVE_INFINITY;
                for (int j = 0; j < n; j++) max = Math.max(max, sc[o + j]);
                FloatVector vmax = FloatVector.broadcast(F, max), sum = FloatVector.zero(F);
                int j = 0;
                for (int bound = F.loopBound(n); j < bound; j += VL) {
                    FloatVector e = VectorMath.exp(FloatVector.fromArray(F, sc, o + j).sub(vmax));
                    e.intoArray(sc, o + j);
                    sum = sum.add(e);
                }
                float tail = 0;
                for (; j < n; j++) { float e = (float) Math.exp(sc[o + j] - max); sc[o + j] = e; tail += e; }
                for (; j < np; j++) sc[o + j] = 0f;
                inv[r] = 1f / (VectorMath.sum(sum) + tail);
            }
            // out [qb, d] = P·V / Σ P: rows of V are loaded once per key and feed every query of the block
            java.util.Arrays.fill(acc, 0f);
            for (int r = 0; r < qb; r++) {
                int po = r * np, ao = r * dp;
                for (int c0 = 0; c0 < dp; c0 += VL) {
                    FloatVector a0 = FloatVector.zero(F), a1 = a0;
                    int j = 0;
                    for (; j + 1 < n; j += 2) {               // two keys per step: two independent FMA chains
                        a0 = FloatVector.fromArray(F, vv, j * dp + c0).fma(FloatVector.broadcast(F, sc[po + j]), a0);
                        a1 = FloatVector.fromArray(F, vv, (j + 1) * dp + c0).fma(FloatVector.broadcast(F, sc[po + j + 1]), a1);
                    }
                    if (j < n) a0 = FloatVector.fromArray(F, vv, j * dp + c0).fma(FloatVector.broadcast(F, sc[po + j]), a0);
                    a0.add(a1).intoArray(acc, ao + c0);
                }
                int oo = (s + i0 + r) * dim + h * d;
                for (int c = 0; c < d; c++) out[oo + c] = acc[ao + c] * inv[r];
            }
        }
    }

    /** sc[r, j] = Σ_c q[r, c]·kt[c, j] for the QB = 8 queries of a block. */
    private static void scores(float[] q, int d, float[] kt, int np, float[] sc) {
        for (int j = 0; j < np; j += VL) {
            FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
            for (int c = 0; c < d; c++) {
                FloatVector k = FloatVector.fromArray(F, kt, c * np + j);
                a0 = k.fma(FloatVector.broadcast(F, q[c]), a0);
                a1 = k.fma(FloatVector.broadcast(F, q[d + c]), a1);
                a2 = k.fma(FloatVector.broadcast(F, q[2 * d + c]), a2);
                a3 = k.fma(FloatVector.broadcast(F, q[3 * d + c]), a3);
                a4 = k.fma(FloatVector.broadcast(F, q[4 * d + c]), a4);
                a5 = k.fma(FloatVector.broadcast(F, q[5 * d + c]), a5);
                a6 = k.fma(FloatVector.broadcast(F, q[6 * d + c]), a6);
                a7 = k.fma(FloatVector.broadcast(F, q[7 * d + c]), a7);
            }
            a0.intoArray(sc, j); a1.intoArray(sc, np + j); a2.intoArray(sc, 2 * np + j); a3.intoArray(sc, 3 * np + j);
            a4.intoArray(sc, 4 * np + j); a5.intoArray(sc, 5 * np + j); a6.intoArray(sc, 6 * np + j); a7.intoArray(sc, 7 * np + j);
        }
    }
}
