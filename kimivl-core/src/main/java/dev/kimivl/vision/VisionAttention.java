package dev.kimivl.vision;

import dev.kimivl.tensor.MicroKernel;
import dev.kimivl.tensor.VectorMath;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

import static dev.kimivl.vision.PackedLinear.MR;
import static dev.kimivl.vision.PackedLinear.NR;

/**
 * Block-diagonal multi-head attention of MoonViT computed as two small GEMMs per (head, 16-query panel) on the
 * 6×16 micro-kernel of {@link PackedLinear} ({@link MicroKernel#gemm6x16}), transposed so the softmax runs along
 * whole vectors:
 * <pre>
 *   Sᵀ [n keys, 16 queries] = K_h [n, d] · (scale·Q_panel)ᵀ      A = keys packed [n/6][d][6], B = Q packed [d][16]
 *   P = exp(Sᵀ − max over keys), column sums                     (one vector pass per 16 queries)
 *   Oᵀ [d, 16] = V_hᵀ [d, n] · P [n, 16]                          A = values packed [d/6][n][6], B = P as is
 * </pre>
 * Sᵀ for 16 queries is 16·n floats (256 KB at n = 4096), so it stays in L2 between the three passes; K and V of one
 * head (2.4 MB) are packed once per layer and shared by both threads from L3.
 */
final class VisionAttention {
    private static final VectorSpecies<Float> F = dev.kimivl.tensor.Vectors.F8;   // 6-wide panels of 8-lane vectors

    /**
     * Keys per chunk of the exp + P·V pass: P's chunk [256][16] (16 KB) and V's [256][6] stay in L1 for the 12 head-dim
     * panels (A/B runs against one unchunked pass were within the noise of the shared machine; kept for locality).
     */
    static final int PV_CHUNK = dev.kimivl.tensor.KernelSettings.SYSTEM.vitPvChunk();

    private VisionAttention() {}

    /**
     * The packed K and V of all heads of one image, kept by the caller across layers: allocated per layer they were
     * 2 × 19 MB of garbage per layer at 4096 patches, which made the young generation grow by that much.
     */
    static final class Buffers {
        private float[] kp = new float[0], vp = new float[0];

        float[] kp(int n) { if (kp.length < n) kp = new float[n]; return kp; }
        float[] vp(int n) { if (vp.length < n) vp = new float[n]; return vp; }
    }

    /**
     * @param qkv    [L, 3·D]: q | k | v, each head-major (head h = columns h·d .. h·d+d−1); RoPE already applied
     * @param starts first token of each image; counts[m] tokens each
     * @param out    [L, D] the concatenated head outputs
     * @param buf    scratch for the packed K and V (any contents; grown as needed)
     */
    static void blockDiagonal(float[] qkv, int dim, int heads, int[] starts, int[] counts, float[] out, Buffers buf) {
        int d = dim / heads;
        float scale = (float) (1.0 / Math.sqrt(d));
        for (int m = 0; m < starts.length; m++) image(qkv, dim, heads, d, starts[m], counts[m], scale, out, buf);
    }

    private static void image(float[] qkv, int dim, int heads, int d, int s, int n, float scale, float[] out, Buffers buf) {
        if (n == 0) return;
        final int stride = 3 * dim;
        final int keyPanels = (n + MR - 1) / MR, dimPanels = (d + MR - 1) / MR;
        final int kSize = keyPanels * MR * d, vSize = dimPanels * MR * n;
        float[] kp = buf.kp(heads * kSize), vp = buf.vp(heads * vSize);
        // pack K as [n/6][d][6] and V as [n/PV_CHUNK][d/6][PV_CHUNK][6] per head (zero padding past n keys / d dims)
        VisionParallel.forTasks(heads, (h, scratch) -> {
            int kb = h * kSize, vb = h * vSize;
            for (int j = 0; j < n; j++) {
                int ko = (s + j) * stride + dim + h * d, vo = ko + dim;
                int kpo = kb + (j / MR) * d * MR + j % MR;
                for (int c = 0; c < d; c++) kp[kpo + c * MR] = qkv[ko + c];
                // V chunk by chunk of PV_CHUNK keys: [chunk][d/6][keys of the chunk][6], so the 12 head-dim panels of
                // one chunk are one contiguous stream for the hardware prefetcher
                int j0 = j / PV_CHUNK * PV_CHUNK, kn = Math.min(PV_CHUNK, n - j0), vc = vb + j0 * dimPanels * MR + (j - j0) * MR;
                for (int c = 0; c < d; c++) vp[vc + (c / MR) * kn * MR + c % MR] = qkv[vo + c];
                for (int c = d; c < dimPanels * MR; c++) vp[vc + (c / MR) * kn * MR + c % MR] = 0f;
            }
            // the buffers are reused: clear the padding rows (their products land only in unused rows, kept finite)
            for (int j = n; j < keyPanels * MR; j++) {
                int kpo = kb + (j / MR) * d * MR + j % MR;
                for (int c = 0; c < d; c++) kp[kpo + c * MR] = 0f;
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
            // Sᵀ and its column maxima: full key panels in the kernel, the ragged last one (zero rows past n) here
            float[] mx = scratch.f3(NR);
            java.util.Arrays.fill(mx, 0, NR, Float.NEGATIVE_INFINITY);
            int full = n / MR;
            // (the micro-kernel raises mx to the column maxima from its registers; see MicroKernel on why not a later pass)
            for (int p = 0; p < full; p++) MicroKernel.gemm6x16(kp, kb + p * d * MR, qp, 0, d, st, p * MR * NR, NR, false, mx);
            if (full < keyPanels) PackedLinear.kernel(kp, kb + full * d * MR, qp, 0, d, st, full * MR * NR, NR, false);
            FloatVector m0 = FloatVector.fromArray(F, mx, 0), m1 = FloatVector.fromArray(F, mx, 8);
            for (int j = full * MR; j < n; j++) {
                FloatVector s0 = FloatVector.fromArray(F, st, j * NR), s1 = FloatVector.fromArray(F, st, j * NR + 8);
                m0 = m0.blend(s0, m0.compare(VectorOperators.LT, s0));
                m1 = m1.blend(s1, m1.compare(VectorOperators.LT, s1));
            }
            // softmax numerators along the keys, per query lane, and Oᵀ [d/6·6][16] = Vᵀ·P, in chunks of keys so each
            // chunk of P is multiplied while it is still in L1
            // exp(s − max) over −87 ≤ s − max ≤ 0 without clamps: raise the floor of s − max to −87
            FloatVector f0 = m0.sub(87f), f1 = m1.sub(87f);
            FloatVector z0 = FloatVector.zero(F), z1 = z0;
            int vb = h * vSize;
            for (int j0 = 0; j0 < n; j0 += PV_CHUNK) {
                int j1 = Math.min(n, j0 + PV_CHUNK);
                for (int j = j0; j < j1; j++) {
                    FloatVector s0 = FloatVector.fromArray(F, st, j * NR), s1 = FloatVector.fromArray(F, st, j * NR + 8);
                    s0 = s0.blend(f0, s0.compare(VectorOperators.LT, f0));
                    s1 = s1.blend(f1, s1.compare(VectorOperators.LT, f1));
                    FloatVector e0 = VectorMath.expNoClamp(s0.sub(m0)), e1 = VectorMath.expNoClamp(s1.sub(m1));
                    e0.intoArray(st, j * NR);
                    e1.intoArray(st, j * NR + 8);
                    z0 = z0.add(e0);
                    z1 = z1.add(e1);
                }
                for (int p = 0; p < dimPanels; p++) {
                    PackedLinear.kernel(vp, vb + j0 * dimPanels * MR + p * (j1 - j0) * MR, st, j0 * NR, j1 - j0, o, p * MR * NR, NR, j0 > 0);
                }
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
