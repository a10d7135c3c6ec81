package dev.kimivl.vision;

import dev.kimivl.tensor.Parallel;
import dev.kimivl.tensor.VectorMath;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * Kernels the vision encoder needs beyond {@code dev.kimivl.tensor}: row-parallel bias/LayerNorm/GELU and
 * the packed block-diagonal attention. Activations are row-major float32 [n, width].
 */
final class VisionKernels {
    private static final VectorSpecies<Float> F = VectorMath.F;
    private static final int VL = F.length();
    /** Queries processed together so each key/value vector load feeds this many FMAs. */
    private static final int QB = 4;

    private VisionKernels() {}

    /** x[t, :] += b for t in [0, n). */
    static void addBias(float[] x, float[] b, int n) {
        int w = b.length;
        Parallel.forRange(n, 16, (from, to) -> {
            for (int t = from; t < to; t++) addInto(x, t * w, b, 0, w);
        });
    }

    /** y[yo + i] += x[xo + i]. */
    static void addInto(float[] y, int yo, float[] x, int xo, int n) {
        int i = 0;
        for (int bound = F.loopBound(n); i < bound; i += VL) {
            FloatVector.fromArray(F, y, yo + i).add(FloatVector.fromArray(F, x, xo + i)).intoArray(y, yo + i);
        }
        for (; i < n; i++) y[yo + i] += x[xo + i];
    }

    /** out[t] = LayerNorm(x[t]) over rows of width gamma.length, rows in parallel. */
    static void layerNorm(float[] x, float[] gamma, float[] beta, float eps, float[] out, int n) {
        int w = gamma.length;
        Parallel.forRange(n, 16, (from, to) -> {
            for (int t = from; t < to; t++) VectorMath.layerNorm(x, t * w, gamma, beta, eps, out, t * w, w);
        });
    }

    /** In place: x = bias + x, then GELU with the tanh approximation (PyTorch gelu(approximate='tanh'), float32). */
    static void biasGeluTanh(float[] x, float[] b, int n) {
        int w = b.length;
        final float k0 = (float) Math.sqrt(2.0 / Math.PI), k1 = 0.044715f;
        Parallel.forRange(n, 8, (from, to) -> {
            for (int t = from; t < to; t++) {
                int o = t * w, i = 0;
                for (int bound = F.loopBound(w); i < bound; i += VL) {
                    FloatVector v = FloatVector.fromArray(F, x, o + i).add(FloatVector.fromArray(F, b, i));
                    FloatVector inner = v.mul(v).mul(v).mul(k1).add(v).mul(k0);
                    // 0.5·v·(1 + tanh(u)) = v·(1 − 1/(e^{2u} + 1))
                    FloatVector e = exp(inner.mul(2f));
                    v.sub(v.div(e.add(1f))).intoArray(x, o + i);
                }
                for (; i < w; i++) {
                    float v = x[o + i] + b[i];
                    float inner = k0 * (v + k1 * v * v * v);
                    x[o + i] = 0.5f * v * (1f + (float) Math.tanh(inner));
                }
            }
        });
    }

    /**
     * e^x for float lanes, to ~2 ulp (Cephes expf: x = n·ln2 + r, degree-6 polynomial in r, scale by 2^n).
     * The Vector API's lanewise(EXP/TANH) falls back to a slow per-lane Java path on this JDK, so it is not used.
     */
    static FloatVector exp(FloatVector x) {
        x = x.max(-87.33f).min(88.37f);
        final float magic = 12582912f;                      // 1.5·2^23: adding it rounds to the nearest integer
        FloatVector n = x.mul(1.44269504088896341f).add(magic).sub(magic);
        FloatVector r = x.sub(n.mul(0.693359375f)).sub(n.mul(-2.12194440e-4f));
        FloatVector p = r.mul(1.9875691500E-4f).add(1.3981999507E-3f)
                .mul(r).add(8.3334519073E-3f)
                .mul(r).add(4.1665795894E-2f)
                .mul(r).add(1.6666665459E-1f)
                .mul(r).add(5.0000001201E-1f)
                .mul(r.mul(r)).add(r).add(1f);
        jdk.incubator.vector.IntVector ni = (jdk.incubator.vector.IntVector) n.convert(VectorOperators.F2I, 0);
        FloatVector scale = ni.add(127).lanewise(VectorOperators.LSHL, 23).reinterpretAsFloats();
        return p.mul(scale);
    }

    /** In place: x = GELU_erf(x + bias), the exact GELU of the projector. */
    static void biasGeluErf(float[] x, float[] b, int n) {
        int w = b.length;
        Parallel.forRange(n, 4, (from, to) -> {
            for (int t = from; t < to; t++) {
                for (int i = 0; i < w; i++) x[t * w + i] = VectorMath.geluErf(x[t * w + i] + b[i]);
            }
        });
    }

    /**
     * Multi-head attention restricted to each image (block-diagonal, non-causal).
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
        int np = (n + VL - 1) / VL * VL;                   // key axis padded to whole vectors (zeros)
        // kt, vt [d, np]: keys and values transposed, so scores and outputs vectorise along the key axis
        float[] kt = new float[d * np], vt = new float[d * np];
        for (int j = 0; j < n; j++) {
            int ko = (s + j) * stride + dim + h * d, vo = ko + dim;
            for (int c = 0; c < d; c++) { kt[c * np + j] = qkv[ko + c]; vt[c * np + j] = qkv[vo + c]; }
        }
        float[] sc = new float[QB * np];
        float[] q = new float[QB * d];
        float[] inv = new float[QB];
        for (int i0 = 0; i0 < n; i0 += QB) {
            int qb = Math.min(QB, n - i0);
            for (int r = 0; r < QB; r++) {
                int qo = (s + i0 + Math.min(r, qb - 1)) * stride + h * d;  // pad the last block by repeating a row
                for (int c = 0; c < d; c++) q[r * d + c] = qkv[qo + c] * scale;
            }
            // scores [QB, np] = q·Kᵀ / sqrt(d)
            for (int j = 0; j < np; j += VL) {
                FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
                for (int c = 0; c < d; c++) {
                    FloatVector k = FloatVector.fromArray(F, kt, c * np + j);
                    a0 = k.fma(FloatVector.broadcast(F, q[c]), a0);
                    a1 = k.fma(FloatVector.broadcast(F, q[d + c]), a1);
                    a2 = k.fma(FloatVector.broadcast(F, q[2 * d + c]), a2);
                    a3 = k.fma(FloatVector.broadcast(F, q[3 * d + c]), a3);
                }
                a0.intoArray(sc, j); a1.intoArray(sc, np + j); a2.intoArray(sc, 2 * np + j); a3.intoArray(sc, 3 * np + j);
            }
            // softmax numerators over the n real keys; padded keys get weight 0
            for (int r = 0; r < QB; r++) {
                int o = r * np;
                float max = Float.NEGATIVE_INFINITY;
                for (int j = 0; j < n; j++) max = Math.max(max, sc[o + j]);
                FloatVector vmax = FloatVector.broadcast(F, max), sum = FloatVector.zero(F);
                int j = 0;
                for (int bound = F.loopBound(n); j < bound; j += VL) {
                    FloatVector e = exp(FloatVector.fromArray(F, sc, o + j).sub(vmax));
                    e.intoArray(sc, o + j);
                    sum = sum.add(e);
                }
                float tail = 0;
                for (; j < n; j++) { float e = (float) Math.exp(sc[o + j] - max); sc[o + j] = e; tail += e; }
                for (; j < np; j++) sc[o + j] = 0f;
                inv[r] = 1f / (sum.reduceLanes(VectorOperators.ADD) + tail);
            }
            // out [QB, d] = P·V / Σ P
            for (int c = 0; c < d; c++) {
                FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
                int vo = c * np;
                for (int j = 0; j < np; j += VL) {
                    FloatVector v = FloatVector.fromArray(F, vt, vo + j);
                    a0 = FloatVector.fromArray(F, sc, j).fma(v, a0);
                    a1 = FloatVector.fromArray(F, sc, np + j).fma(v, a1);
                    a2 = FloatVector.fromArray(F, sc, 2 * np + j).fma(v, a2);
                    a3 = FloatVector.fromArray(F, sc, 3 * np + j).fma(v, a3);
                }
                int oo = (s + i0) * dim + h * d + c;
                out[oo] = a0.reduceLanes(VectorOperators.ADD) * inv[0];
                if (qb > 1) out[oo + dim] = a1.reduceLanes(VectorOperators.ADD) * inv[1];
                if (qb > 2) out[oo + 2 * dim] = a2.reduceLanes(VectorOperators.ADD) * inv[2];
                if (qb > 3) out[oo + 3 * dim] = a3.reduceLanes(VectorOperators.ADD) * inv[3];
            }
        }
    }
}
