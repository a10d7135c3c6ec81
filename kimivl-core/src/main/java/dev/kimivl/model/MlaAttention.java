package dev.kimivl.model;

import dev.kimivl.config.TextConfig;
import dev.kimivl.tensor.QuantizedInput;
import dev.kimivl.tensor.DType;
import dev.kimivl.tensor.KernelSettings;
import dev.kimivl.tensor.Kernels;
import dev.kimivl.tensor.Matrix;
import dev.kimivl.tensor.Parallel;
import dev.kimivl.tensor.Quant;
import dev.kimivl.tensor.QuantMatrix;
import dev.kimivl.tensor.SegmentMatrix;
import dev.kimivl.tensor.VectorMath;

/**
 * Multi-head latent attention (DeepSeek-V2/V3, spec §6.4 and §6.8).
 * Prompts use the decompressed form (every cached latent expanded to per-head k_nope and v through kv_b_proj, as
 * the reference computes) or, when short, the weight-absorbed one (see {@link #prefill}); decode uses the
 * weight-absorbed form directly on the 576-float latent cache.
 */
public final class MlaAttention {
    /** kv_a_layernorm and q_a_layernorm are built without eps in the reference: the RMSNorm default 1e-6. */
    static final float LATENT_NORM_EPS = 1e-6f;

    private final int heads, nope, rope, vDim, kvLora, qHead, hidden;
    private final float scale;
    private final Matrix qProj;          // [H·(nope+rope), D], or null with q LoRA
    private final Matrix qA, qB;         // [qLora, D], [H·(nope+rope), qLora]
    private final float[] qANorm;        // [qLora]
    private final Matrix kvA;            // [kvLora + rope, D]
    private final float[] kvANorm;       // [kvLora]
    private final Matrix kvB;            // [H·(nope + v), kvLora]: per head nope rows then v rows
    private final Matrix oProj;          // [D, H·v]
    private final RotaryEmbedding rotary;
    private final RowBlocks qFirst, kvABlocks;
    /**
     * Per-head W_UKᵀ [kvLora, nope] and W_UV [v, kvLora]: the weight-absorbed form multiplies by these (two small
     * matvecs per head in decode). GGUF files store them (llama.cpp's attn_k_b / attn_v_b, possibly quantized;
     * {@link #useSplitKvB}); from kv_b_proj they are derived at load ({@link #splitKvB}).
     */
    private Matrix[] kB, vB;
    /**
     * The attention kernels (native or Java) and the knobs read here: {@link KernelSettings#mlaSplit()} (above this
     * many cached positions decode splits the positions, not the heads, across threads),
     * {@link KernelSettings#mlaPrefillTokens()} (prompt tokens attended together in the absorbed prefill: query rows per
     * kernel call, this × heads ≤ 64) and {@link KernelSettings#mlaPromptForm()}.
     */
    private final Kernels kernels;

    MlaAttention(TextConfig c, RotaryEmbedding rotary, Matrix qProj, Matrix qA, float[] qANorm, Matrix qB,
                 Matrix kvA, float[] kvANorm, Matrix kvB, Matrix oProj, Kernels kernels) {
        this.kernels = java.util.Objects.requireNonNull(kernels, "kernels");
        this.heads = c.numHeads();
        this.nope = c.qkNopeHeadDim();
        this.rope = c.qkRopeHeadDim();
        this.vDim = c.vHeadDim();
        this.kvLora = c.kvLoraRank();
        this.qHead = nope + rope;
        this.hidden = c.hiddenSize();
        double s = Math.pow(qHead, -0.5);
        if (c.ropeScaling() != null && c.ropeScaling().mscaleAllDim() != 0) {
            double m = RotaryEmbedding.yarnMscale(c.ropeScaling().factor(), c.ropeScaling().mscaleAllDim());
            s *= m * m;
        }
        this.scale = (float) s;
        this.rotary = rotary;
        this.qProj = qProj;
        this.qA = qA;
        this.qANorm = qANorm;
        this.qB = qB;
        this.kvA = kvA;
        this.kvANorm = kvANorm;
        this.kvB = kvB;                  // null when only the per-head form exists (useSplitKvB; GGUF files)
        this.oProj = oProj;
        this.qFirst = new RowBlocks(qProj != null ? qProj : qA);
        this.kvABlocks = new RowBlocks(kvA);
        if (kvB != null) splitKvB();
    }

    /** The same weights (shared; quantized ones rebound to the given kernels) with other kernels or settings. */
    private MlaAttention(MlaAttention o, Kernels kernels) {
        this.kernels = java.util.Objects.requireNonNull(kernels, "kernels");
        this.heads = o.heads;
        this.nope = o.nope;
        this.rope = o.rope;
        this.vDim = o.vDim;
        this.kvLora = o.kvLora;
        this.qHead = o.qHead;
        this.hidden = o.hidden;
        this.scale = o.scale;
        this.rotary = o.rotary;
        this.qProj = kernels.bind(o.qProj);
        this.qA = kernels.bind(o.qA);
        this.qANorm = o.qANorm;
        this.qB = kernels.bind(o.qB);
        this.kvA = kernels.bind(o.kvA);
        this.kvANorm = o.kvANorm;
        this.kvB = kernels.bind(o.kvB);
        this.oProj = kernels.bind(o.oProj);
        this.qFirst = new RowBlocks(qProj != null ? qProj : qA);
        this.kvABlocks = new RowBlocks(kvA);
        this.kB = bindAll(kernels, o.kB);
        this.vB = bindAll(kernels, o.vB);
    }

    private static Matrix[] bindAll(Kernels k, Matrix[] ms) {
        if (ms == null) return null;
        Matrix[] out = new Matrix[ms.length];
        for (int i = 0; i < ms.length; i++) out[i] = k.bind(ms[i]);
        return out;
    }

    MlaAttention withKernels(Kernels k) { return k == kernels ? this : new MlaAttention(this, k); }

    /**
     * kB and vB from kv_b_proj (safetensors): W_UV^h is a view of kv_b's rows; W_UKᵀ^h is a transposed copy, in kv_b's
     * own type when that is F16/BF16/F32 (the values are exact), else F32 (2 MB a layer for Kimi-VL-A3B in BF16).
     * Decode then absorbs through the matvec kernels instead of decoding kv_b row by row.
     */
    private void splitKvB() {
        kB = new Matrix[heads];
        vB = new Matrix[heads];
        DType t = kvB.dtype() == DType.BF16 || kvB.dtype() == DType.F16 ? kvB.dtype() : DType.F32;
        float[] row = new float[kvLora], ukT = new float[kvLora * nope];
        for (int h = 0; h < heads; h++) {
            int base = h * (nope + vDim);
            for (int d = 0; d < nope; d++) {
                kvB.row(base + d, row, 0);
                for (int r = 0; r < kvLora; r++) ukT[r * nope + d] = row[r];
            }
            kB[h] = new SegmentMatrix(Quant.quantize(ukT, kvLora, nope, t), t, kvLora, nope);
            vB[h] = RowBlocks.slice(kvB, base + nope, vDim);
        }
    }

    /** Bytes of weights one decoded token reads here. */
    long bytes() {
        long kv = 0;
        for (int h = 0; h < heads; h++) kv += kB[h].bytes() + vB[h].bytes();
        return (qProj != null ? qProj.bytes() : qA.bytes() + qB.bytes()) + kvA.bytes() + kv + oProj.bytes();
    }

    /**
     * The matrices {@link #decodeBatch} multiplies by through {@link RowProducts} where {@link #decode} uses the matvec:
     * the projections. The per-head kB/vB are not among them: both run {@link #attendOne}, the same products.
     */
    void forEachRowProduct(java.util.function.Consumer<Matrix> f) {
        for (Matrix m : new Matrix[]{qProj, qA, qB, kvA, oProj}) if (m != null) f.accept(m);
    }

    /** Uses per-head W_UKᵀ [kvLora, nope] and W_UV [v, kvLora] matrices for decode (see {@link #kB}). */
    void useSplitKvB(Matrix[] kB, Matrix[] vB) {
        if (kB.length != heads || vB.length != heads) throw new IllegalArgumentException("need " + heads + " per-head k_b/v_b matrices");
        for (int h = 0; h < heads; h++) {
            if (kB[h].rows() != kvLora || kB[h].cols() != nope || vB[h].rows() != vDim || vB[h].cols() != kvLora) {
                throw new IllegalArgumentException("k_b/v_b head " + h + " is [" + kB[h].rows() + ", " + kB[h].cols() + "] / ["
                        + vB[h].rows() + ", " + vB[h].cols() + "], expected [" + kvLora + ", " + nope + "] / [" + vDim + ", " + kvLora + "]");
            }
        }
        this.kB = kB;
        this.vB = vB;
    }

    /** q [T, H·qHead] for the normed inputs x [T, D]. */
    private float[] queries(float[] x, int T) {
        float[] q = new float[T * heads * qHead];
        if (qProj != null) {
            qProj.matmul(x, q, T);
        } else {
            int r = qA.rows();
            float[] a = new float[T * r];
            qA.matmul(x, a, T);
            for (int t = 0; t < T; t++) VectorMath.rmsNorm(a, t * r, qANorm, LATENT_NORM_EPS, a, t * r, r);
            qB.matmul(a, q, T);
        }
        return q;
    }

    /**
     * Projects x [T, D] to queries (RoPE applied) and writes the T new latents into the cache at pos0..pos0+T-1.
     * Returns q [T, H·qHead].
     */
    private float[] project(float[] x, int T, int pos0, KvCache cache, int layer) {
        float[] q = queries(x, T);
        int w = kvLora + rope;
        float[] kva = new float[T * w];
        kvA.matmul(x, kva, T);
        cache.ensure(layer, pos0 + T);
        for (int t = 0; t < T; t++) {
            latent(kva, t * w, pos0 + t);
            cache.write(layer, pos0 + t, kva, t * w);
            for (int h = 0; h < heads; h++) rotary.apply(q, (t * heads + h) * qHead + nope, pos0 + t);
        }
        return q;
    }

    /** kv_a_proj's output at kva[o .. o + kvLora + rope) → the cached latent in place: [rmsnorm(ĉ) ; RoPE(k_pe)]. */
    private void latent(float[] kva, int o, int pos) {
        VectorMath.rmsNorm(kva, o, kvANorm, LATENT_NORM_EPS, kva, o, kvLora);
        rotary.apply(kva, o + kvLora, pos);
    }

    /**
     * Causal attention of T new tokens (positions pos0..) over the cache. x: normed input [T, D]; returns the
     * attention output after o_proj [T, D].
     *
     * <p>Two forms. Decompressed (multi-head): every cached latent goes through kv_b to per-head keys and values, then
     * ordinary causal attention, 2·(192 + 128) FLOPs per head, query and key, plus the decompression (2·512·4096 per
     * key). Weight-absorbed ({@link #absorbedPrefill}): queries absorbed into the latent space, 2·(576 + 512) per head,
     * query and key, nothing decompressed. The decompressed form is taken when the attention work it saves outweighs
     * the decompression ({@link #decompressionPays}: long prompts, as llama.cpp does for prompts; at 2048 tokens it is
     * ~2.4x fewer FLOPs) and the native kernels are loaded; short prompts, and short turns after a long context, take
     * the absorbed form, as decode does.
     */
    float[] prefill(float[] x, int T, int pos0, KvCache cache, int layer) {
        PhaseTimer.begin();
        float[] q = project(x, T, pos0, cache, layer);
        PhaseTimer.lap(PhaseTimer.Phase.QKV);
        boolean decompress = switch (kernels.settings().mlaPromptForm()) {
            case DECOMPRESSED -> true;
            case ABSORBED -> false;
            case AUTO -> kernels.isNative() && decompressionPays(T, pos0);
        };
        float[] o = decompress ? decompressedPrefill(q, T, pos0, cache, layer) : absorbedPrefill(q, T, pos0, cache, layer);
        PhaseTimer.lap(PhaseTimer.Phase.ATTENTION);
        float[] out = new float[T * hidden];
        oProj.matmul(o, out, T);
        PhaseTimer.lap(PhaseTimer.Phase.O_PROJ);
        return out;
    }

    /**
     * True when decompressing the S = pos0 + T cached latents (kvLora·H·(nope + v) MACs each: 2.1M for Kimi-VL-A3B,
     * counted at half because those products run ~2x faster than the attention kernels) costs less than what the
     * cheaper attention saves (H·(W + kvLora − qHead − vDim) MACs per causal query-key pair: 12288). A fresh prompt
     * qualifies from ~171 tokens; a 40-token turn after 8000 cached positions does not.
     *
     * <p>A turn of fewer than {@link #SHORT_TURN} new tokens after a cached context always takes the absorbed form: its
     * decompression would expand every cached position for a handful of queries, and on small attention dimensions
     * (the nano and tiny models, where the MAC count above says it pays) its per-position costs dominate: measured on
     * tiny-random, 34 new tokens after 1,966 cached took 21 ms of CPU decompressed and 3.9 ms absorbed (a second chat
     * turn's time to first token; docs/server.md). On Kimi-VL-A3B's dimensions the MAC count already picks the absorbed
     * form for every continuation this short, so the rule changes nothing there.
     */
    boolean decompressionPays(int T, int pos0) { return decompressionPays(T, pos0, heads, kvLora, rope, nope, vDim); }

    static boolean decompressionPays(int T, int pos0, int heads, int kvLora, int rope, int nope, int vDim) {
        if (pos0 > 0 && T < SHORT_TURN) return false;
        return decompressionSavesMacs(T, pos0, heads, kvLora, rope, nope, vDim);
    }

    /** The multiply-add count of {@link #decompressionPays} alone. */
    static boolean decompressionSavesMacs(int T, int pos0, int heads, int kvLora, int rope, int nope, int vDim) {
        double pairs = (double) T * (pos0 + (T + 1) / 2.0);
        double saved = (double) heads * (kvLora + rope + kvLora - (nope + rope) - vDim);
        double perKey = 0.5 * kvLora * heads * (nope + vDim);
        return pairs * saved > (pos0 + (double) T) * perKey;
    }

    /** New tokens below which a continuation of a cached context always takes the absorbed form ({@link #decompressionPays}). */
    static final int SHORT_TURN = 64;

    /** Query rows per native call of the decompressed form (a head's block of prompt tokens). */
    private static final int MHA_ROWS = 32;

    /**
     * The decompressed form of {@link #prefill}; returns o [T, H·vDim] (before o_proj). The cached positions are taken
     * in key blocks: the context before the chunk in blocks of kimivl.mla.keyBlock positions, then the chunk's own T
     * positions. A block's latents are widened once; then for each head its keys [n, nope + rope] (k_nope = W_UK^h·ĉ_j,
     * then the shared k_pe) and values [n, v] (W_UV^h·ĉ_j), one product each over the block, and the head's attention
     * goes on over them in blocks of MHA_ROWS prompt tokens across the threads, the online-softmax state of every head
     * and query kept between key blocks (the chunk's own block causal). The transient memory is thus set by the key
     * block and the chunk, not by the context: decompressing the whole context at once held 0.6 GB of f32 latents,
     * keys and values at 128K (docs/long-inputs.md).
     */
    private float[] decompressedPrefill(float[] q, int T, int pos0, KvCache cache, int layer) {
        if (!kernels.hasCausalAttention(qHead, vDim)) return decompressedPrefillJava(q, T, pos0, cache, layer);
        int S = pos0 + T, B = kernels.settings().mlaKeyBlock(), Tp = (T + 3) & ~3;
        int rowsMax = Math.max(T, Math.min(B, pos0));
        KvCache.PromptScratch w = cache.promptScratch();     // shared by every layer of this pass
        float[] c = w.floats(0, rowsMax * kvLora), pe = w.floats(1, rowsMax * rope), kh = w.floats(2, rowsMax * nope),
                keys = w.floats(3, rowsMax * qHead), values = w.floats(4, rowsMax * vDim);
        // over a bf16 cache, each head's keys and values of a block go to bf16 once, for the vdpbf16ps kernel
        boolean bf16 = cache.precision() == KvCache.Precision.BF16 && kernels.hasCausalAttentionBf16(qHead, vDim);
        int[] kt = bf16 ? w.ints(0, (rowsMax + 15) / 16 * 16 * (qHead / 2)) : null, vp = bf16 ? w.ints(1, (rowsMax + 1) / 2 * vDim) : null;
        // each head's queries contiguous [Tp, qHead] (whole groups of 4 rows; the padding rows zero), and the
        // online-softmax state of each head's queries: running max m, sum l [heads, Tp], unnormalised output [heads, Tp, v]
        float[] qs = w.floats(5, heads * Tp * qHead), m = w.floats(6, heads * Tp), l = w.floats(7, heads * Tp),
                acc = w.floats(8, heads * Tp * vDim);
        java.util.Arrays.fill(qs, 0f);
        for (int h = 0; h < heads; h++) {
            for (int t = 0; t < T; t++) System.arraycopy(q, (t * heads + h) * qHead, qs, (h * Tp + t) * qHead, qHead);
        }
        java.util.Arrays.fill(m, Float.NEGATIVE_INFINITY);
        java.util.Arrays.fill(l, 0f);
        java.util.Arrays.fill(acc, 0f);
        Matrix[] uk = new Matrix[heads];
        for (int h = 0; h < heads; h++) uk[h] = wUK(h);
        for (int b0 = 0; b0 < S; ) {
            boolean own = b0 >= pos0;
            int b1 = own ? S : Math.min(b0 + B, pos0), n = b1 - b0;
            cache.columns(layer, b0, b1, 0, kvLora, c);            // ĉ [n, kvLora]
            cache.columns(layer, b0, b1, kvLora, rope, pe);        // k_pe [n, rope] (RoPE applied), shared by the heads
            QuantizedInput cq = null;
            if (vB[0] instanceof QuantMatrix qm0 && qm0.usesIntegerMatmul()) {
                int slot = own ? 2 : n == B ? 0 : 1;                // one rounding of the block for every head's v_b
                cq = w.latentsQ[slot] = QuantizedInput.ofRows(c, n, kvLora, w.latentsQ[slot]);
            }
            for (int h = 0; h < heads; h++) {
                headKeysValues(h, uk[h], c, pe, cq, n, kh, keys, values);
                if (bf16) kernels.packKeysValuesBf16(keys, qHead, qHead, values, vDim, vDim, n, kt, vp);
                attendKeyBlock(qs, T, Tp, h, keys, values, kt, vp, n, pos0 - b0, m, l, acc);
            }
            b0 = b1;
        }
        float[] o = new float[T * heads * vDim];
        for (int h = 0; h < heads; h++) {
            for (int t = 0; t < T; t++) {
                int s = h * Tp + t, oo = (t * heads + h) * vDim;
                float inv = 1f / l[s];
                for (int d = 0; d < vDim; d++) o[oo + d] = acc[s * vDim + d] * inv;
            }
        }
        return o;
    }

    /**
     * Head h's queries over one key block with the native kernel, in blocks of MHA_ROWS prompt tokens across the
     * threads (later blocks, with more keys, first). Key j of the block is position b0 + j, and {@code offset} = pos0 −
     * b0, so query t (position pos0 + t) sees the block's keys j ≤ offset + t: all of a block before the chunk, the
     * causal part of the chunk's own. The state m, l, acc of head h's rows [h·Tp, h·Tp + Tp) goes on from the blocks
     * before. With kt and vp (the block's keys and values packed as bf16) the bf16 kernel runs, else the f32 one.
     */
    private void attendKeyBlock(float[] qs, int T, int Tp, int h, float[] keys, float[] values, int[] kt, int[] vp, int n, int offset,
                                float[] m, float[] l, float[] acc) {
        // blocks of MHA_ROWS tokens, smaller for short prompts so that the threads still get ≥ 32 blocks to balance
        int bs = Math.max(4, Math.min(MHA_ROWS, (T / 32 + 3) & ~3)), blocks = (T + bs - 1) / bs;
        Parallel.forRange(blocks, 1, (from, to) -> {
            float[] mb = new float[bs], lb = new float[bs], ob = new float[bs * vDim];
            for (int i = from; i < to; i++) {
                int t0 = (blocks - 1 - i) * bs;
                int rows = (Math.min(bs, T - t0) + 3) & ~3, s = h * Tp + t0;
                int j1 = Math.min(n, offset + t0 + rows);
                System.arraycopy(m, s, mb, 0, rows);
                System.arraycopy(l, s, lb, 0, rows);
                System.arraycopy(acc, s * vDim, ob, 0, rows * vDim);
                boolean ran = kt != null
                        ? kernels.causalAttentionBf16(qs, s * qHead, qHead, qHead, kt, vp, vDim, rows, 0, j1, scale, offset + t0, mb, lb, ob)
                        : kernels.causalAttention(qs, s * qHead, qHead, qHead, keys, 0, qHead, values, 0, vDim,
                        vDim, rows, 0, j1, scale, offset + t0, mb, lb, ob);
                if (!ran) {
                    throw new IllegalStateException("native causal attention declined " + rows + " rows of width " + qHead);
                }
                System.arraycopy(mb, 0, m, s, rows);
                System.arraycopy(lb, 0, l, s, rows);
                System.arraycopy(ob, 0, acc, s * vDim, rows * vDim);
            }
        });
    }

    /**
     * The decompressed form without the native attention kernel: every cached position's keys and values for one head
     * at a time [S, ·], then {@link #causalJava}. The plain form the blocked one is tested against; its arrays grow
     * with the context.
     */
    private float[] decompressedPrefillJava(float[] q, int T, int pos0, KvCache cache, int layer) {
        int S = pos0 + T;
        float[] c = cache.columns(layer, S, 0, kvLora);          // ĉ [S, kvLora]
        float[] pe = cache.columns(layer, S, kvLora, rope);      // k_pe [S, rope] (RoPE applied), shared by the heads
        QuantizedInput cq = vB[0] instanceof QuantMatrix qm0 && qm0.usesIntegerMatmul() ? QuantizedInput.ofRows(c, S, kvLora) : null;
        float[] o = new float[T * heads * vDim], kh = new float[S * nope], keys = new float[S * qHead], values = new float[S * vDim];
        for (int h = 0; h < heads; h++) {
            headKeysValues(h, wUK(h), c, pe, cq, S, kh, keys, values);
            causalJava(q, T, pos0, h, keys, values, o);
        }
        return o;
    }

    /**
     * Head h's keys [n, nope + rope] (k_nope = W_UK^h·ĉ_j into kh [n, nope], then the shared k_pe [n, rope]) and values
     * [n, v] (W_UV^h·ĉ_j, through the int8 latents cq when the head's v_b takes them) of n cached latents ĉ [n, kvLora].
     */
    private void headKeysValues(int h, Matrix uk, float[] c, float[] pe, QuantizedInput cq, int n, float[] kh, float[] keys, float[] values) {
        uk.matmul(c, kh, n);
        for (int j = 0; j < n; j++) {
            System.arraycopy(kh, j * nope, keys, j * qHead, nope);
            System.arraycopy(pe, j * rope, keys, j * qHead + nope, rope);
        }
        if (cq != null && vB[h] instanceof QuantMatrix qm && qm.usesIntegerMatmul()) qm.matmul(cq, values);
        else vB[h].matmul(c, values, n);
    }

    /**
     * W_UK^h [nope, kvLora]: a view of kv_b_proj's rows when the checkpoint has it, else k_b (stored transposed, as
     * W_UKᵀ) transposed back here, 256 KB a call.
     */
    private Matrix wUK(int h) {
        if (kvB != null) return RowBlocks.slice(kvB, h * (nope + vDim), nope);
        float[] uk = new float[nope * kvLora], row = new float[nope];
        for (int r = 0; r < kvLora; r++) {
            kB[h].row(r, row, 0);
            for (int d = 0; d < nope; d++) uk[d * kvLora + r] = row[d];
        }
        return SegmentMatrix.ofFloats(uk, nope, kvLora);
    }

    /** The same in Java, one token per step: the fallback, and the plain form the kernels are tested against. */
    private void causalJava(float[] q, int T, int pos0, int h, float[] keys, float[] values, float[] o) {
        int S = pos0 + T;
        Parallel.forRange(T, 1, (from, to) -> {
            float[] scores = new float[S];
            for (int t = from; t < to; t++) {
                int qo = (t * heads + h) * qHead;
                int last = pos0 + t;                     // causal: keys 0..last
                for (int j = 0; j <= last; j++) scores[j] = VectorMath.dot(q, qo, keys, j * qHead, qHead) * scale;
                VectorMath.softmax(scores, 0, last + 1);
                int oo = (t * heads + h) * vDim;
                for (int j = 0; j <= last; j++) VectorMath.axpy(scores[j], values, j * vDim, o, oo, vDim);
            }
        });
    }

    /**
     * Causal attention of T new tokens in the weight-absorbed form of {@link #decode}: for short prompts (see
     * {@link #decompressionPays}) and short turns after a long context, with the per-head k_b/v_b of GGUF files.
     * Returns o [T, H·vDim] (before o_proj).
     */
    private float[] absorbedPrefill(float[] q, int T, int pos0, KvCache cache, int layer) {
        int W = kvLora + rope;
        // q̃ for every token and head: one batched product per head, qa [T, H·W]
        float[] qa = new float[T * heads * W];
        float[] qn = new float[T * nope], qt = new float[T * kvLora];
        for (int h = 0; h < heads; h++) {
            for (int t = 0; t < T; t++) System.arraycopy(q, (t * heads + h) * qHead, qn, t * nope, nope);
            kB[h].matmul(qn, qt, T);
            for (int t = 0; t < T; t++) {
                int dst = (t * heads + h) * W;
                System.arraycopy(qt, t * kvLora, qa, dst, kvLora);
                System.arraycopy(q, (t * heads + h) * qHead + nope, qa, dst + kvLora, rope);
            }
        }
        // attention over the latents, mlaPrefillTokens tokens per task: their query rows (consecutive in qa) go through
        // the kernel together over the positions all of them see, so each cached latent is read once per group
        // instead of once per token (at 2048 tokens the per-token form streamed ~5 GB of latents per layer); each
        // later token of the group then adds its few extra positions as a second partial state. Groups with more
        // positions (later ones) are claimed first.
        float[] obar = new float[T * heads * kvLora];
        int G = Math.max(1, Math.min(kernels.settings().mlaPrefillTokens(), 64 / heads)), groups = (T + G - 1) / G;   // the native kernel takes ≤ 64 rows
        Parallel.forRange(groups, 1, (from, to) -> {
            for (int i = from; i < to; i++) {
                int t0 = (groups - 1 - i) * G, n = Math.min(G, T - t0);
                LatentAttention.State all = new LatentAttention.State(0, n * heads, kvLora);
                LatentAttention.accumulate(kernels, qa, cache, layer, W, kvLora, 0, pos0 + t0 + 1, scale, all, t0 * heads * W);
                for (int k = 0; k < n; k++) {
                    LatentAttention.State[] parts = {all};
                    if (k > 0) {
                        LatentAttention.State own = new LatentAttention.State(k * heads, heads, kvLora);
                        LatentAttention.accumulate(kernels, qa, cache, layer, W, kvLora, pos0 + t0 + 1, pos0 + t0 + k + 1, scale, own, t0 * heads * W);
                        parts = new LatentAttention.State[]{all, own};
                    }
                    for (int h = 0; h < heads; h++) LatentAttention.finish(parts, k * heads + h, obar, ((t0 + k) * heads + h) * kvLora);
                }
            }
        });
        // o_h = W_UV^h ō_h: one batched product per head, o [T, H·vDim]
        float[] o = new float[T * heads * vDim];
        float[] ob = new float[T * kvLora], oh = new float[T * vDim];
        for (int h = 0; h < heads; h++) {
            for (int t = 0; t < T; t++) System.arraycopy(obar, (t * heads + h) * kvLora, ob, t * kvLora, kvLora);
            vB[h].matmul(ob, oh, T);
            for (int t = 0; t < T; t++) System.arraycopy(oh, t * vDim, o, (t * heads + h) * vDim, vDim);
        }
        return o;
    }

    /**
     * One new token at position pos over the cache, weight-absorbed form (spec §6.8):
     * q̃_h = W_UKᵀ q_h^nope (kvLora), scores against the latents [ĉ_j ; k^pe_j] directly (one 576-wide dot with
     * [q̃_h ; q_h^pe]), ō_h = Σ p_j ĉ_j, o_h = W_UV ō_h. Up to {@link KernelSettings#mlaSplit()} cached positions the heads
     * are spread over the threads (one dispatch); beyond, the positions are (the cache is then streamed once).
     */
    float[] decode(float[] x, int pos, KvCache cache, int layer) {
        PhaseTimer.begin();
        float[] q = projectOne(x, pos, cache, layer);
        PhaseTimer.lap(PhaseTimer.Phase.QKV);
        float[] o = new float[heads * vDim];
        attendOne(q, 0, pos, cache, layer, o, 0);
        PhaseTimer.lap(PhaseTimer.Phase.ATTENTION);
        float[] out = new float[hidden];
        oProj.matvec(o, 0, out, 0);
        PhaseTimer.lap(PhaseTimer.Phase.O_PROJ);
        return out;
    }

    /**
     * One decode step of B sequences, one new token each: x [B, D] normed inputs, token b at position
     * {@code positions[b]} of {@code caches[b]} (its latent is written there). The projections (q, kv_a, o_proj) run
     * on all B rows at once through {@link RowProducts} (each weight read once per step, each row's result
     * independent of the others); the attention is each sequence's own weight-absorbed pass over its own cache, as
     * {@link #decode}. Returns [B, D].
     */
    float[] decodeBatch(float[] x, int B, int[] positions, KvCache[] caches, int layer) {
        PhaseTimer.begin();
        int w = kvLora + rope, qRow = heads * qHead;
        float[] q = new float[B * qRow];
        if (qProj != null) {
            RowProducts.matmul(qProj, x, q, B);
        } else {
            int r = qA.rows();
            float[] a = new float[B * r];
            RowProducts.matmul(qA, x, a, B);
            for (int b = 0; b < B; b++) VectorMath.rmsNorm(a, b * r, qANorm, LATENT_NORM_EPS, a, b * r, r);
            RowProducts.matmul(qB, a, q, B);
        }
        float[] kva = new float[B * w];
        RowProducts.matmul(kvA, x, kva, B);
        for (int b = 0; b < B; b++) {
            int pos = positions[b];
            latent(kva, b * w, pos);
            caches[b].ensure(layer, pos + 1);
            caches[b].write(layer, pos, kva, b * w);
            for (int h = 0; h < heads; h++) rotary.apply(q, b * qRow + h * qHead + nope, pos);
        }
        PhaseTimer.lap(PhaseTimer.Phase.QKV);
        float[] o = new float[B * heads * vDim];
        for (int b = 0; b < B; b++) attendOne(q, b * qRow, positions[b], caches[b], layer, o, b * heads * vDim);
        PhaseTimer.lap(PhaseTimer.Phase.ATTENTION);
        float[] out = new float[B * hidden];
        RowProducts.matmul(oProj, o, out, B);
        PhaseTimer.lap(PhaseTimer.Phase.O_PROJ);
        return out;
    }

    /**
     * The weight-absorbed attention of one query (all heads, q at q[qBase ..], RoPE applied) at position pos over
     * positions [0, pos] of the cache (pos already written); o[oBase .. + H·vDim) before o_proj.
     */
    private void attendOne(float[] q, int qBase, int pos, KvCache cache, int layer, float[] o, int oBase) {
        int S = pos + 1, W = kvLora + rope;
        float[] qa = new float[heads * W];
        RowBlocks.run(heads, h -> absorb(q, qBase, h, qa));
        if (S <= kernels.settings().mlaSplit()) {
            // heads in groups of 4 (what the native kernel takes), one group per task
            int per = heads % 4 == 0 ? 4 : 1;
            RowBlocks.run(heads / per, g -> {
                LatentAttention.State st = new LatentAttention.State(g * per, per, kvLora);
                LatentAttention.accumulate(kernels, qa, cache, layer, W, kvLora, 0, S, scale, st, 0);
                float[] obar = new float[kvLora];
                LatentAttention.State[] one = {st};
                for (int h = g * per; h < (g + 1) * per; h++) {
                    LatentAttention.finish(one, h, obar, 0);
                    unabsorb(obar, h, o, oBase);
                }
            });
        } else {
            // 2 ranges per thread, and at most 8192 positions per range (one native call: a few ms without safepoints)
            int chunks = Math.max(1, Math.min(Math.max(Parallel.THREADS * 2, (S + 8191) / 8192), S / 256));
            LatentAttention.State[] parts = new LatentAttention.State[chunks];
            RowBlocks.run(chunks, c -> {
                int j0 = (int) ((long) S * c / chunks), j1 = (int) ((long) S * (c + 1) / chunks);
                LatentAttention.State st = new LatentAttention.State(0, heads, kvLora);
                LatentAttention.accumulate(kernels, qa, cache, layer, W, kvLora, j0, j1, scale, st, 0);
                parts[c] = st;
            });
            RowBlocks.run(heads, h -> {
                float[] obar = new float[kvLora];
                LatentAttention.finish(parts, h, obar, 0);
                unabsorb(obar, h, o, oBase);
            });
        }
    }

    /** qa[h·W ..] = [W_UK^hᵀ q_h^nope ; q_h^pe], q_h read at q[qBase + h·qHead ..]. */
    private void absorb(float[] q, int qBase, int h, float[] qa) {
        int W = kvLora + rope, qo = h * W, qh = qBase + h * qHead;
        kB[h].matvec(q, qh, qa, qo);
        System.arraycopy(q, qh + nope, qa, qo + kvLora, rope);
    }

    /** o[oBase + h·vDim + d] = W_UV^h[d]·ō. */
    private void unabsorb(float[] obar, int h, float[] o, int oBase) {
        vB[h].matvec(obar, 0, o, oBase + h * vDim);
    }

    /** {@link #project} for one token, with q_proj (or q_a_proj) and kv_a_proj computed in one dispatch. */
    private float[] projectOne(float[] x, int pos, KvCache cache, int layer) {
        int w = kvLora + rope;
        float[] first = new float[qFirst.rows()];
        float[] kva = new float[w];
        int nq = qFirst.count();
        QuantizedInput xq = qFirst.quantized(x, 0);
        RowBlocks.run(nq + kvABlocks.count(), i -> {
            if (i < nq) qFirst.block(i, xq, x, 0, first, 0);
            else kvABlocks.block(i - nq, xq, x, 0, kva, 0);
        });
        float[] q;
        if (qProj != null) {
            q = first;
        } else {
            int r = qA.rows();
            VectorMath.rmsNorm(first, 0, qANorm, LATENT_NORM_EPS, first, 0, r);
            q = new float[heads * qHead];
            qB.matvec(first, 0, q, 0);
        }
        latent(kva, 0, pos);
        cache.write(layer, pos, kva, 0);
        for (int h = 0; h < heads; h++) rotary.apply(q, h * qHead + nope, pos);
        return q;
    }
}
