package dev.kimivl.model;

import dev.kimivl.tensor.Kernels;
import dev.kimivl.tensor.VectorMath;
import dev.kimivl.tensor.Vectors;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * The core of weight-absorbed MLA (spec §6.8; decode and short prompts): H query rows of width W (q̃_h = W_UKᵀ
 * q_h^nope followed by q_h^pe) against the latent cache rows [ĉ_j ; k^pe_j] (width W, f32 or f16), softmax over
 * positions, and the weighted sum of the first R (kv_lora_rank) latent columns. This is multi-query attention over a
 * 576-wide key, so all heads share each cache row: the kernels load a row once for several heads (scores) and
 * accumulate several positions per output vector (values), streaming the cache once per call. The {@link Kernels}
 * passed in run the native kernel when they are the native set and it takes the shapes; the Java ones below are the
 * fallback and the test reference (LatentAttentionTest passes {@link Kernels#java()} and {@link Kernels#nativeKernels()}).
 *
 * <p>Softmax is computed online (flash-decoding): a {@link State} holds, per head, the running maximum m, the
 * running sum l of exp(s − m) and the unnormalised output o; partial states over disjoint position ranges (one per
 * thread) are merged exactly.
 */
final class LatentAttention {
    private static final VectorSpecies<Float> F = Vectors.F;
    private static final int L = F.length();
    /** Positions per block: 16 rows of 576 floats (37 KB) stay in L1 between the score and value passes. */
    static final int JB = 16;

    private LatentAttention() {}

    /** Per-head partial softmax state over some positions. */
    static final class State {
        final int h0, heads, r;
        final float[] m, l, o;         // [H], [H], [H·R] for heads h0..h0+H-1
        final float[] s;               // scratch scores [H·JB]

        State(int h0, int heads, int r) {
            this.h0 = h0;
            this.heads = heads;
            this.r = r;
            m = new float[heads];
            l = new float[heads];
            o = new float[heads * r];
            s = new float[heads * JB];
            java.util.Arrays.fill(m, Float.NEGATIVE_INFINITY);
        }
    }

    /**
     * Accumulates positions [j0, j1) for heads [h0, h1) into st.
     * q [H·W] (row h at h·W), lat [S·W] (row j at j·W); scores are scaled by {@code scale}.
     */
    static void accumulate(Kernels k, float[] q, float[] lat, int W, int R, int j0, int j1, float scale, State st) {
        accumulate(k, q, lat, W, R, j0, j1, scale, st, 0);
    }

    /** As below over layer {@code layer} of the cache, f32 or f16. */
    static void accumulate(Kernels k, float[] q, KvCache cache, int layer, int W, int R, int j0, int j1, float scale, State st, int qBase) {
        if (cache.precision() == KvCache.Precision.F32) accumulate(k, q, cache.layer(layer), W, R, j0, j1, scale, st, qBase);
        else accumulate(k, q, cache.half(layer), W, R, j0, j1, scale, st, qBase);
    }

    /** Positions widened per step of the Java fallback over an f16 cache (a 590 KB scratch). */
    private static final int HALF_CHUNK = 256;

    /**
     * As below over f16 latents (IEEE half bits, same layout): the native kernel widens them as it goes; the Java
     * fallback widens HALF_CHUNK positions at a time and runs the float kernel on them (online softmax: the chunks
     * accumulate into the same state).
     */
    static void accumulate(Kernels k, float[] q, short[] lat, int W, int R, int j0, int j1, float scale, State st, int qBase) {
        if (k.latentAttentionF16(q, qBase + st.h0 * W, lat, W, R, st.heads, j0, j1, scale, st.m, st.l, st.o)) return;
        float[] chunk = new float[Math.min(HALF_CHUNK, Math.max(0, j1 - j0)) * W];
        for (int c0 = j0; c0 < j1; c0 += HALF_CHUNK) {
            int n = Math.min(HALF_CHUNK, j1 - c0);
            for (int i = 0, src = c0 * W; i < n * W; i++) chunk[i] = Float.float16ToFloat(lat[src + i]);
            accumulateFloats(q, chunk, W, R, 0, n, scale, st, qBase);
        }
    }

    /** Positions [j0, j1) of f32 latents, with the query rows at q[qBase + h·W ..] (one token's rows inside a batch). */
    static void accumulate(Kernels k, float[] q, float[] lat, int W, int R, int j0, int j1, float scale, State st, int qBase) {
        if (k.latentAttention(q, qBase + st.h0 * W, lat, W, R, st.heads, j0, j1, scale, st.m, st.l, st.o)) return;
        accumulateFloats(q, lat, W, R, j0, j1, scale, st, qBase);
    }

    /** The Java kernel of {@link #accumulate(Kernels, float[], float[], int, int, int, int, float, State, int)}. */
    private static void accumulateFloats(float[] q, float[] lat, int W, int R, int j0, int j1, float scale, State st, int qBase) {
        if (qBase != 0) {
            q = java.util.Arrays.copyOfRange(q, qBase, qBase + (st.h0 + st.heads) * W);
        }
        float[] s = st.s;
        int h0 = st.h0, h1 = st.h0 + st.heads;
        for (int jb = j0; jb < j1; jb += JB) {
            int n = Math.min(JB, j1 - jb);
            // scores s[h·JB + j] for this block
            int h = h0;
            for (; h + 8 <= h1; h += 8) scores8(q, h, lat, W, jb, n, scale, s, (h - h0) * JB);
            for (; h < h1; h++) {
                for (int j = 0; j < n; j++) s[(h - h0) * JB + j] = dot(q, h * W, lat, (jb + j) * W, W) * scale;
            }
            for (int i = 0; i < st.heads; i++) {
                int so = i * JB;
                float mb = Float.NEGATIVE_INFINITY;
                for (int j = 0; j < n; j++) mb = Math.max(mb, s[so + j]);
                float mOld = st.m[i], mNew = Math.max(mOld, mb);
                if (mNew > mOld && st.l[i] != 0f) {
                    float corr = (float) Math.exp(mOld - mNew);
                    st.l[i] *= corr;
                    scale(st.o, i * R, R, corr);
                }
                st.m[i] = mNew;
                st.l[i] += exp(s, so, n, mNew);
            }
            int i = 0;
            if (R % (2 * L) == 0) for (; i + 4 <= st.heads; i += 4) values4(s, i, n, lat, W, jb, st.o, R);
            for (; i < st.heads; i++) values(s, i * JB, n, lat, W, jb, st.o, i * R, R);
        }
    }

    /** s[h·JB + j] = scale·q_h·lat_{jb+j} for 8 heads h0..h0+7, sharing each latent load. */
    private static void scores8(float[] q, int h0, float[] lat, int W, int jb, int n, float scale, float[] s, int sBase) {
        int bound = F.loopBound(W);
        int q0 = h0 * W, q1 = q0 + W, q2 = q1 + W, q3 = q2 + W, q4 = q3 + W, q5 = q4 + W, q6 = q5 + W, q7 = q6 + W;
        for (int j = 0; j < n; j++) {
            int lo = (jb + j) * W;
            FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
            int d = 0;
            for (; d < bound; d += L) {
                FloatVector k = FloatVector.fromArray(F, lat, lo + d);
                a0 = FloatVector.fromArray(F, q, q0 + d).fma(k, a0);
                a1 = FloatVector.fromArray(F, q, q1 + d).fma(k, a1);
                a2 = FloatVector.fromArray(F, q, q2 + d).fma(k, a2);
                a3 = FloatVector.fromArray(F, q, q3 + d).fma(k, a3);
                a4 = FloatVector.fromArray(F, q, q4 + d).fma(k, a4);
                a5 = FloatVector.fromArray(F, q, q5 + d).fma(k, a5);
                a6 = FloatVector.fromArray(F, q, q6 + d).fma(k, a6);
                a7 = FloatVector.fromArray(F, q, q7 + d).fma(k, a7);
            }
            float t0 = VectorMath.sum(a0), t1 = VectorMath.sum(a1);
            float t2 = VectorMath.sum(a2), t3 = VectorMath.sum(a3);
            float t4 = VectorMath.sum(a4), t5 = VectorMath.sum(a5);
            float t6 = VectorMath.sum(a6), t7 = VectorMath.sum(a7);
            for (; d < W; d++) {
                float k = lat[lo + d];
                t0 += q[q0 + d] * k; t1 += q[q1 + d] * k; t2 += q[q2 + d] * k; t3 += q[q3 + d] * k;
                t4 += q[q4 + d] * k; t5 += q[q5 + d] * k; t6 += q[q6 + d] * k; t7 += q[q7 + d] * k;
            }
            int so = sBase + j;
            s[so] = t0 * scale; s[so + JB] = t1 * scale; s[so + 2 * JB] = t2 * scale; s[so + 3 * JB] = t3 * scale;
            s[so + 4 * JB] = t4 * scale; s[so + 5 * JB] = t5 * scale; s[so + 6 * JB] = t6 * scale; s[so + 7 * JB] = t7 * scale;
        }
    }

    /**
     * Heads i0..i0+3 at once: o_h[0..R) += Σ_j s[h·JB + j]·lat_{jb+j}[0..R). Register-blocked 4 heads × 2 vectors:
     * per position two latent loads and four broadcasts feed eight FMAs (R a multiple of two vectors).
     */
    private static void values4(float[] s, int i0, int n, float[] lat, int W, int jb, float[] o, int R) {
        int s0 = i0 * JB, s1 = s0 + JB, s2 = s1 + JB, s3 = s2 + JB;
        int o0 = i0 * R, o1 = o0 + R, o2 = o1 + R, o3 = o2 + R;
        for (int d = 0; d < R; d += 2 * L) {
            FloatVector a0 = FloatVector.fromArray(F, o, o0 + d), b0 = FloatVector.fromArray(F, o, o0 + d + L);
            FloatVector a1 = FloatVector.fromArray(F, o, o1 + d), b1 = FloatVector.fromArray(F, o, o1 + d + L);
            FloatVector a2 = FloatVector.fromArray(F, o, o2 + d), b2 = FloatVector.fromArray(F, o, o2 + d + L);
            FloatVector a3 = FloatVector.fromArray(F, o, o3 + d), b3 = FloatVector.fromArray(F, o, o3 + d + L);
            for (int j = 0; j < n; j++) {
                int lo = (jb + j) * W + d;
                FloatVector u = FloatVector.fromArray(F, lat, lo), v = FloatVector.fromArray(F, lat, lo + L);
                FloatVector p = FloatVector.broadcast(F, s[s0 + j]);
                a0 = u.fma(p, a0); b0 = v.fma(p, b0);
                p = FloatVector.broadcast(F, s[s1 + j]);
                a1 = u.fma(p, a1); b1 = v.fma(p, b1);
                p = FloatVector.broadcast(F, s[s2 + j]);
                a2 = u.fma(p, a2); b2 = v.fma(p, b2);
                p = FloatVector.broadcast(F, s[s3 + j]);
                a3 = u.fma(p, a3); b3 = v.fma(p, b3);
            }
            a0.intoArray(o, o0 + d); b0.intoArray(o, o0 + d + L);
            a1.intoArray(o, o1 + d); b1.intoArray(o, o1 + d + L);
            a2.intoArray(o, o2 + d); b2.intoArray(o, o2 + d + L);
            a3.intoArray(o, o3 + d); b3.intoArray(o, o3 + d + L);
        }
    }

    /** o[oo..oo+R) += Σ_j s[so+j]·lat_{jb+j}[0..R), 8 positions per pass over o. */
    private static void values(float[] s, int so, int n, float[] lat, int W, int jb, float[] o, int oo, int R) {
        int bound = F.loopBound(R);
        int j = 0;
        for (; j + 8 <= n; j += 8) {
            FloatVector p0 = FloatVector.broadcast(F, s[so + j]), p1 = FloatVector.broadcast(F, s[so + j + 1]);
            FloatVector p2 = FloatVector.broadcast(F, s[so + j + 2]), p3 = FloatVector.broadcast(F, s[so + j + 3]);
            FloatVector p4 = FloatVector.broadcast(F, s[so + j + 4]), p5 = FloatVector.broadcast(F, s[so + j + 5]);
            FloatVector p6 = FloatVector.broadcast(F, s[so + j + 6]), p7 = FloatVector.broadcast(F, s[so + j + 7]);
            int l0 = (jb + j) * W, l1 = l0 + W, l2 = l1 + W, l3 = l2 + W, l4 = l3 + W, l5 = l4 + W, l6 = l5 + W, l7 = l6 + W;
            int d = 0;
            for (; d < bound; d += L) {
                // two dependency chains of four FMAs (one chain of eight would wait on the FMA latency)
                FloatVector a = FloatVector.fromArray(F, lat, l0 + d).fma(p0, FloatVector.fromArray(F, o, oo + d));
                FloatVector b = FloatVector.fromArray(F, lat, l1 + d).mul(p1);
                a = FloatVector.fromArray(F, lat, l2 + d).fma(p2, a);
                b = FloatVector.fromArray(F, lat, l3 + d).fma(p3, b);
                a = FloatVector.fromArray(F, lat, l4 + d).fma(p4, a);
                b = FloatVector.fromArray(F, lat, l5 + d).fma(p5, b);
                a = FloatVector.fromArray(F, lat, l6 + d).fma(p6, a);
                b = FloatVector.fromArray(F, lat, l7 + d).fma(p7, b);
                a.add(b).intoArray(o, oo + d);
            }
            for (; d < R; d++) {
                float acc = o[oo + d];
                for (int k = 0; k < 8; k++) acc += s[so + j + k] * lat[(jb + j + k) * W + d];
                o[oo + d] = acc;
            }
        }
        for (; j < n; j++) {
            float p = s[so + j];
            int lo = (jb + j) * W;
            FloatVector pv = FloatVector.broadcast(F, p);
            int d = 0;
            for (; d < bound; d += L) FloatVector.fromArray(F, lat, lo + d).fma(pv, FloatVector.fromArray(F, o, oo + d)).intoArray(o, oo + d);
            for (; d < R; d++) o[oo + d] += p * lat[lo + d];
        }
    }

    /** s[so..so+n) = exp(s − m) in place; returns their sum. */
    private static float exp(float[] s, int so, int n, float m) {
        float sum = 0;
        int j = 0, bound = F.loopBound(n);
        FloatVector mv = FloatVector.broadcast(F, m);
        for (; j < bound; j += L) {
            FloatVector e = VectorMath.expNeg(FloatVector.fromArray(F, s, so + j).sub(mv));
            e.intoArray(s, so + j);
            sum += VectorMath.sum(e);
        }
        for (; j < n; j++) { float e = (float) Math.exp(s[so + j] - m); s[so + j] = e; sum += e; }
        return sum;
    }

    private static void scale(float[] o, int oo, int n, float c) {
        int d = 0, bound = F.loopBound(n);
        for (; d < bound; d += L) FloatVector.fromArray(F, o, oo + d).mul(c).intoArray(o, oo + d);
        for (; d < n; d++) o[oo + d] *= c;
    }

    static float dot(float[] a, int ao, float[] b, int bo, int n) {
        return dev.kimivl.tensor.VectorMath.dot(a, ao, b, bo, n);
    }

    /**
     * Merges the partial states of head h (one per position range) into out[oo..oo+R) = softmax-weighted values.
     */
    static void finish(State[] parts, int h, float[] out, int oo) {
        int R = parts[0].r;
        float M = Float.NEGATIVE_INFINITY;
        for (State p : parts) M = Math.max(M, p.m[h - p.h0]);
        java.util.Arrays.fill(out, oo, oo + R, 0f);
        float l = 0;
        for (State p : parts) {
            int i = h - p.h0;
            if (p.l[i] == 0f) continue;
            float c = (float) Math.exp(p.m[i] - M);
            l += p.l[i] * c;
            int d = 0, bound = F.loopBound(R);
            FloatVector cv = FloatVector.broadcast(F, c);
            for (; d < bound; d += L) {
                FloatVector.fromArray(F, p.o, i * R + d).fma(cv, FloatVector.fromArray(F, out, oo + d)).intoArray(out, oo + d);
            }
            for (; d < R; d++) out[oo + d] += p.o[i * R + d] * c;
        }
        scale(out, oo, R, 1f / l);
    }
}
