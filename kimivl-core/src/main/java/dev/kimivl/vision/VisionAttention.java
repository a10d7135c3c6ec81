package dev.kimivl.vision;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

import static dev.kimivl.vision.PackedLinear.MR;
import static dev.kimivl.vision.PackedLinear.NR;

/**
 * Block-diagonal multi-head attention of MoonViT computed as two small GEMMs per (head, 16-query panel) on the
 * {@link PackedLinear#kernel 6×16 micro-kernel}, transposed so the softmax runs along whole vectors:
 * <pre>
 *   Sᵀ [n keys, 16 queries] = K_h [n, d] · (scale·Q_panel)ᵀ      A = keys packed [n/6][d][6], B = Q packed [d][16]
 *   P = exp(Sᵀ − max over keys), column sums                     (one vector pass per 16 queries)
 *   Oᵀ [d, 16] = V_hᵀ [d, n] · P [n, 16]                          A = values packed [d/6][n][6], B = P as is
 * </pre>
 * Sᵀ for 16 queries is 16·n floats (256 KB at n = 4096), so it stays in L2 between the three passes; K and V of one
 * head (2.4 MB) are packed once per layer and shared by both threads from L3.
 */
final class VisionAttention {
    private static final VectorSpecies<Float> F = VisionKernels.F;

    private VisionAttention() {}

    static int STAGES = 7; // TEMP experiment: 1 = scores, 2 = softmax, 4 = P·V

    /**
     * @param qkv    [L, 3·D]: q | k | v, each head-major (head h = columns h·d .. h·d+d−1); RoPE already applied
     * @param starts first token of each image; counts[m] tokens each
     * @param out    [L, D] the concatenated head outputs
     */
    static void blockDiagonal(float[] qkv, int dim, int heads, int[] starts, int[] counts, float[] out) {
        int d = dim / heads;
        float scale = (float) (1.0 / Math.sqrt(d));
        for (int m = 0; m < starts.length; m++) image(qkv, dim, heads, d, starts[m], counts[m], scale, out);
    }

    private static void image(float[] qkv, int dim, int heads, int d, int s, int n, float scale, float[] out) {
        if (n == 0) return;
        final int stride = 3 * dim;
        final int keyPanels = (n + MR - 1) / MR, dimPanels = (d + MR - 1) / MR;
        final int kSize = keyPanels * MR * d, vSize = dimPanels * MR * n;
        float[] kp = new float[heads * kSize], vp = new float[heads * vSize];
        // pack K as [n/6][d][6] and V as [d/6][n][6] per head (zero padding past n keys / d dims)
        VisionParallel.forTasks(heads, (h, scratch) -> {
            int kb = h * kSize, vb = h * vSize;
            for (int j = 0; j < n; j++) {
                int ko = (s + j) * stride + dim + h * d, vo = ko + dim;
                int kpo = kb + (j / MR) * d * MR + j % MR;
                for (int c = 0; c < d; c++) kp[kpo + c * MR] = qkv[ko + c];
                for (int c = 0; c < d; c++) vp[vb + (c / MR) * n * MR + j * MR + c % MR] = qkv[vo + c];
            }
        });
        final int queryPanels = (n + NR - 1) / NR;
        VisionParallel.forTasks(heads * queryPanels, (task, scratch) -> {
            int h = task / queryPanels, q0 = (task % queryPanels) * NR, nq = Math.min(NR, n - q0);
            float[] qp = scratch.f0(d * NR);
            float[] st = scratch.f1(keyPanels * MR * NR);
            float[] o = scratch.f2(dimPanels * MR * NR + 2 * NR);
            // Q panel [d][16], scaled; missing queries are zero
            for (int qq = 0; qq < NR; qq++) {
                if (qq < nq) {
                    int qo = (s + q0 + qq) * stride + h * d;
                    for (int c = 0; c < d; c++) qp[c * NR + qq] = qkv[qo + c] * scale;
                } else {
                    for (int c = 0; c < d; c++) qp[c * NR + qq] = 0f;
                }
            }
            int kb = h * kSize;
            if ((STAGES & 1) != 0) for (int p = 0; p < keyPanels; p++) {
                PackedLinear.kernel(kp, kb + p * d * MR, qp, 0, d, st, p * MR * NR, NR, false);
            }
            // softmax numerators along the keys, per query lane
            FloatVector m0 = FloatVector.broadcast(F, Float.NEGATIVE_INFINITY), m1 = m0;
            if ((STAGES & 2) != 0) for (int j = 0; j < n; j++) {
                // compare + blend: Java's max() also orders −0/+0 and NaN, which costs several instructions on AVX2
                FloatVector s0 = FloatVector.fromArray(F, st, j * NR), s1 = FloatVector.fromArray(F, st, j * NR + 8);
                m0 = m0.blend(s0, m0.compare(VectorOperators.LT, s0));
                m1 = m1.blend(s1, m1.compare(VectorOperators.LT, s1));
            }
            // exp(s − max) over −87 ≤ s − max ≤ 0 without clamps: raise the floor of s − max to −87
            FloatVector f0 = m0.sub(87f), f1 = m1.sub(87f);
            FloatVector z0 = FloatVector.zero(F), z1 = z0;
            if ((STAGES & 2) != 0) for (int j = 0; j < n; j++) {
                FloatVector s0 = FloatVector.fromArray(F, st, j * NR), s1 = FloatVector.fromArray(F, st, j * NR + 8);
                s0 = s0.blend(f0, s0.compare(VectorOperators.LT, f0));
                s1 = s1.blend(f1, s1.compare(VectorOperators.LT, f1));
                FloatVector e0 = VisionKernels.expNoClamp(s0.sub(m0)), e1 = VisionKernels.expNoClamp(s1.sub(m1));
                e0.intoArray(st, j * NR);
                e1.intoArray(st, j * NR + 8);
                z0 = z0.add(e0);
                z1 = z1.add(e1);
            }
            // Oᵀ [d/6·6][16] = Vᵀ·P
            int vb = h * vSize;
            if ((STAGES & 4) != 0) for (int p = 0; p < dimPanels; p++) {
                PackedLinear.kernel(vp, vb + p * n * MR, st, 0, n, o, p * MR * NR, NR, false);
            }
            int so = dimPanels * MR * NR;
            FloatVector.broadcast(F, 1f).div(z0).intoArray(o, so);
            FloatVector.broadcast(F, 1f).div(z1).intoArray(o, so + 8);
            for (int qq = 0; qq < nq; qq++) {
                float inv = o[so + qq];
                int oo = (s + q0 + qq) * dim + h * d;
                for (int c = 0; c < d; c++) out[oo + c] = o[c * NR + qq] * inv;
            }
        });
    }
}
