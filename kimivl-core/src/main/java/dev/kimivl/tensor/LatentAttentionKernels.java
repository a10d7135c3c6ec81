package dev.kimivl.tensor;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * The Java kernel of latent attention (MLA decode and the absorbed prompt form; spec §6.8), behind
 * {@link Kernels#latentAttention}: {@code heads} query rows q [heads, W] (row i at qo + i·W: q̃_h = W_UKᵀ q_h^nope
 * followed by q_h^pe) against cached latent rows lat [S, W] (row j at j·W: [ĉ_j ; k^pe_j]), positions [j0, j1),
 * accumulated into an online-softmax state: per row the running maximum m [heads], the running sum l [heads] of
 * exp(s − m), and the unnormalised output o [heads, R] (the weighted sum of the first R latent columns).
 *
 * <p>Multi-query attention over a 576-wide key: all heads share each cache row, so the kernel loads a row once for
 * several heads (scores) and accumulates several positions per output vector (values), in blocks of {@link #JB}
 * positions that stay in L1 between the two passes. The native kernel (kimivl_kernels.c) does the same in C and is
 * tested against this one (LatentAttentionTest, KernelSeamModelTest).
 */
final class LatentAttentionKernels {
    private static final VectorSpecies<Float> F = Vectors.F;
    private static final int L = F.length();
    /** Positions per block: 16 rows of 576 floats (37 KB) stay in L1 between the score and value passes. */
    static final int JB = 16;
    /** Positions widened per step over an f16 cache (a 590 KB scratch). */
    private static final int HALF_CHUNK = 256;

    private LatentAttentionKernels() {}

    /**
     * As {@link #accumulate(float[], int, float[], int, int, int, int, int, float, float[], float[], float[])} over 16-bit
     * latents (IEEE half bits, or bf16 bits when {@code bf16}), widened HALF_CHUNK positions at a time. Over bf16 the
     * products are f32 ones of the widened values: the native kernel rounds the queries and weights to bf16 as well,
     * so the two differ by that rounding (LatentAttentionTest bounds it).
     */
    static void accumulate(float[] q, int qo, short[] lat, boolean bf16, int W, int R, int heads, int j0, int j1, float scale,
                           float[] m, float[] l, float[] o) {
        float[] chunk = new float[Math.min(HALF_CHUNK, Math.max(0, j1 - j0)) * W];
        for (int c0 = j0; c0 < j1; c0 += HALF_CHUNK) {
            int n = Math.min(HALF_CHUNK, j1 - c0);
            if (bf16) for (int i = 0, src = c0 * W; i < n * W; i++) chunk[i] = Float.intBitsToFloat(lat[src + i] << 16);
            else for (int i = 0, src = c0 * W; i < n * W; i++) chunk[i] = Float.float16ToFloat(lat[src + i]);
            accumulate(q, qo, chunk, W, R, heads, 0, n, scale, m, l, o);
        }
    }

    /** Positions [j0, j1) of f32 latents into the state (m, l, o) of the heads query rows at q[qo ..]. */
    static void accumulate(float[] q, int qo, float[] lat, int W, int R, int heads, int j0, int j1, float scale, float[] m, float[] l, float[] o) {
        float[] s = new float[heads * JB];             // scores of one block [heads, JB]
        for (int jb = j0; jb < j1; jb += JB) {
            int n = Math.min(JB, j1 - jb);
            int i = 0;
            for (; i + 8 <= heads; i += 8) scores8(q, qo + i * W, lat, W, jb, n, scale, s, i * JB);
            for (; i < heads; i++) {
                for (int j = 0; j < n; j++) s[i * JB + j] = VectorMath.dot(q, qo + i * W, lat, (jb + j) * W, W) * scale;
            }
            for (i = 0; i < heads; i++) {
                int so = i * JB;
                float mb = Float.NEGATIVE_INFINITY;
                for (int j = 0; j < n; j++) mb = Math.max(mb, s[so + j]);
                float mOld = m[i], mNew = Math.max(mOld, mb);
                if (mNew > mOld && l[i] != 0f) {
                    float corr = (float) Math.exp(mOld - mNew);
                    l[i] *= corr;
                    VectorMath.scale(o, i * R, R, corr);
                }
                m[i] = mNew;
                l[i] += exp(s, so, n, mNew);
            }
            i = 0;
            if (R % (2 * L) == 0) for (; i + 4 <= heads; i += 4) values4(s, i, n, lat, W, jb, o, R);
            for (; i < heads; i++) values(s, i * JB, n, lat, W, jb, o, i * R, R);
        }
    }

    /** s[i·JB + j] = scale·q_i·lat_{jb+j} for the 8 query rows at q0, q0 + W, .., sharing each latent load. */
    private static void scores8(float[] q, int q0, float[] lat, int W, int jb, int n, float scale, float[] s, int sBase) {
        int bound = F.loopBound(W);
        int q1 = q0 + W, q2 = q1 + W, q3 = q2 + W, q4 = q3 + W, q5 = q4 + W, q6 = q5 + W, q7 = q6 + W;
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
            FloatVector e = VectorMath.exp(FloatVector.fromArray(F, s, so + j).sub(mv));
            e.intoArray(s, so + j);
            sum += VectorMath.sum(e);
        }
        for (; j < n; j++) { float e = (float) Math.exp(s[so + j] - m); s[so + j] = e; sum += e; }
        return sum;
    }
}
