package dev.kimivl.model;

import dev.kimivl.tensor.KernelSettings;
import dev.kimivl.tensor.Kernels;
import dev.kimivl.config.TextConfig;
import dev.kimivl.io.WeightSource;
import dev.kimivl.tensor.Matrix;
import dev.kimivl.tensor.VectorMath;

/**
 * The DeepSeek-V2/V3 decoder (Moonlight, the Kimi-VL language model): embeddings, decoder layers with MLA and
 * dense/MoE FFNs, final RMSNorm, lm_head. A forward pass of T tokens runs as a batch (matrix-matrix products);
 * a single token continuing a non-empty cache runs the weight-absorbed decode path.
 */
public final class LanguageModel {
    private final TextConfig config;
    private final Matrix embedTokens;   // [V, D]
    private final Matrix lmHead;        // [V, D]
    private final float[] finalNorm;    // [D]
    private final DecoderLayer[] layers;
    private final Kernels kernels;
    private volatile KvCache.Precision kvPrecision;

    /** Outputs of one forward pass: the final-normed hidden states of every position. */
    public record Forward(float[] finalNormed, int tokens) {}

    private LanguageModel(TextConfig config, Matrix embedTokens, Matrix lmHead, float[] finalNorm, DecoderLayer[] layers, Kernels kernels) {
        this.config = config;
        this.embedTokens = embedTokens;
        this.lmHead = lmHead;
        this.finalNorm = finalNorm;
        this.layers = layers;
        this.kernels = kernels;
        this.kvPrecision = KvCache.Precision.choose(kernels.settings().kvCache(), lmHead.dtype().isQuantized(), kernels.fastBf16Attention());
    }

    /** Binds the weights (mapped, not copied; only norm vectors and routing biases are read onto the heap). */
    public static LanguageModel load(WeightSource w, TextConfig c, String prefix) {
        return load(w, c, prefix, Kernels.DEFAULT);
    }

    /**
     * The same model (weights shared, not copied) on other kernels and settings: every quantized product and the
     * attention kernels run on k, and the forward pass reads k's settings (the prefill chunk, MLA's prompt form and
     * decode split). Tests compare the Java and native kernels this way, and pin a setting, without globals.
     */
    public LanguageModel withKernels(Kernels k) {
        DecoderLayer[] ls = new DecoderLayer[layers.length];
        for (int i = 0; i < ls.length; i++) {
            DecoderLayer l = layers[i];
            ls[i] = new DecoderLayer(l.index, l.hidden, l.eps, l.inputNorm, l.postNorm, l.attention.withKernels(k),
                    l.dense == null ? null : l.dense.withKernels(k), l.moe == null ? null : l.moe.withKernels(k));
        }
        Matrix embed = k.bind(embedTokens);
        LanguageModel m = new LanguageModel(config, embed, lmHead == embedTokens ? embed : k.bind(lmHead), finalNorm, ls, k);
        m.kvPrecision = kvPrecision;
        return m;
    }

    /** The kernels (and settings) this model's attention and forward pass run with. */
    public Kernels kernels() { return kernels; }

    /** As {@link #load(WeightSource, TextConfig, String)} with the given kernels and settings. */
    public static LanguageModel load(WeightSource w, TextConfig c, String prefix, Kernels kernels) {
        String m = prefix + "model.";
        int D = c.hiddenSize();
        RotaryEmbedding rotary = new RotaryEmbedding(c);
        DecoderLayer[] layers = new DecoderLayer[c.numLayers()];
        for (int l = 0; l < layers.length; l++) {
            String p = m + "layers." + l + ".";
            Matrix qProj = null, qA = null, qB = null;
            float[] qANorm = null;
            if (c.qLoraRank() > 0) {
                qA = w.tensor(p + "self_attn.q_a_proj.weight").matrix();
                qANorm = w.tensor(p + "self_attn.q_a_layernorm.weight").toFloats();
                qB = w.tensor(p + "self_attn.q_b_proj.weight").matrix();
            } else {
                qProj = w.tensor(p + "self_attn.q_proj.weight").matrix();
            }
            // GGUF keeps kv_b per head in its own type; the full kv_b (rebuilt in f32, 8 MB a layer) is then not needed
            WeightSource.KvBHeads split = w.kvBHeads(l, c.numHeads());
            MlaAttention attn = new MlaAttention(c, rotary, qProj, qA, qANorm, qB,
                    w.tensor(p + "self_attn.kv_a_proj_with_mqa.weight").matrix(),
                    w.tensor(p + "self_attn.kv_a_layernorm.weight").toFloats(),
                    split != null ? null : w.tensor(p + "self_attn.kv_b_proj.weight").matrix(),
                    w.tensor(p + "self_attn.o_proj.weight").matrix(), Kernels.DEFAULT);
            if (split != null) attn.useSplitKvB(split.ukT(), split.uv());
            SwiGlu dense = null;
            MoeBlock moe = null;
            if (c.isMoeLayer(l)) {
                SwiGlu[] experts = new SwiGlu[c.nRoutedExperts()];
                for (int e = 0; e < experts.length; e++) experts[e] = mlp(w, p + "mlp.experts." + e + ".");
                SwiGlu shared = c.nSharedExperts() > 0 ? mlp(w, p + "mlp.shared_experts.") : null;
                String bias = p + "mlp.gate.e_score_correction_bias";
                moe = new MoeBlock(c, w.tensor(p + "mlp.gate.weight").matrix(), w.has(bias) ? w.tensor(bias).toFloats() : null, experts, shared);
            } else {
                dense = mlp(w, p + "mlp.");
            }
            layers[l] = new DecoderLayer(l, D, (float) c.rmsNormEps(),
                    w.tensor(p + "input_layernorm.weight").toFloats(), w.tensor(p + "post_attention_layernorm.weight").toFloats(),
                    attn, dense, moe);
        }
        Matrix embed = w.tensor(m + "embed_tokens.weight").matrix();
        Matrix head = c.tieWordEmbeddings() && !w.has(prefix + "lm_head.weight") ? embed : w.tensor(prefix + "lm_head.weight").matrix();
        LanguageModel lm = new LanguageModel(c, embed, head, w.tensor(m + "norm.weight").toFloats(), layers, Kernels.DEFAULT);
        return kernels == Kernels.DEFAULT ? lm : lm.withKernels(kernels);     // the weights' matrices are built with the default
    }

    private static SwiGlu mlp(WeightSource w, String p) {
        return new SwiGlu(w.tensor(p + "gate_proj.weight").matrix(), w.tensor(p + "up_proj.weight").matrix(), w.tensor(p + "down_proj.weight").matrix());
    }

    public TextConfig config() { return config; }

    /**
     * Bytes of weights one decoded token reads: every layer's attention, the dense FFN or router + shared expert +
     * on average top-k of the routed experts, lm_head and one embedding row (the KV cache comes on top).
     */
    public double bytesPerDecodedToken() {
        double b = lmHead.bytes() + (double) embedTokens.bytes() / config.vocabSize();
        for (DecoderLayer l : layers) b += l.decodeBytes();
        return b;
    }

    /** A cache for up to maxTokens positions, stored as {@link #kvCachePrecision()}. */
    public KvCache newCache(int maxTokens) {
        return newCache(maxTokens, kvPrecision);
    }

    public KvCache newCache(int maxTokens, KvCache.Precision precision) {
        return new KvCache(config.numLayers(), config.kvLoraRank(), config.qkRopeHeadDim(), maxTokens, precision);
    }

    /**
     * How {@link #newCache(int)} stores the latents: {@code -Dkimivl.kvCache=f16|bf16|f32|auto}, by default auto (for
     * quantized weights bf16 where the kernels run it in vdpbf16ps, else f16; f32 for float ones; {@link KvCache.Precision#choose}).
     */
    public KvCache.Precision kvCachePrecision() { return kvPrecision; }

    public void kvCachePrecision(KvCache.Precision p) { kvPrecision = java.util.Objects.requireNonNull(p); }

    /** Bytes the KV cache of {@link #newCache(int)} holds per position (all layers). */
    public long kvBytesPerPosition() {
        return KvCache.bytesPerPosition(config.numLayers(), config.kvLoraRank() + config.qkRopeHeadDim(), kvPrecision);
    }

    /** Token embeddings [T, D]. */
    public float[] embed(int[] ids) {
        int D = config.hiddenSize();
        float[] out = new float[ids.length * D];
        for (int t = 0; t < ids.length; t++) {
            int id = ids[t];
            if (id < 0 || id >= config.vocabSize()) {
                throw new IllegalArgumentException("token id " + id + " at position " + t + " is outside the vocabulary (0.." + (config.vocabSize() - 1) + ")");
            }
            embedTokens.row(id, out, t * D);
        }
        return out;
    }

    /**
     * Runs T input embeddings x [T, D] (consumed) through every layer, appending them to the cache after its
     * current length. Returns the final-normed hidden states [T, D].
     *
     * @param routing when not null, routing[l][t] receives the experts chosen for token t in MoE layer l
     */
    public float[] forward(float[] x, int T, KvCache cache, StageSink sink, MoeBlock.Routing[][] routing) {
        int D = config.hiddenSize();
        int pos0 = cache.length();
        if (pos0 + T > cache.maxTokens()) {
            throw new IllegalArgumentException(T + " new tokens after " + pos0 + " cached exceed the context of " + cache.maxTokens() + " tokens");
        }
        sink.accept("embeddings", x, T, D);
        for (DecoderLayer layer : layers) {
            layer.forward(x, T, pos0, cache, routing == null || layer.moe == null ? null : routing[layer.index]);
            if (sink.enabled()) sink.accept("hidden.layer" + layer.index, x, T, D);
        }
        cache.advance(pos0 + T);
        float[] out = new float[T * D];
        for (int t = 0; t < T; t++) VectorMath.rmsNorm(x, t * D, finalNorm, (float) config.rmsNormEps(), out, t * D, D);
        sink.accept("final_norm", out, T, D);
        return out;
    }

    /**
     * One decode step of several sequences at once: x [B, D] (consumed) holds the embedding of each sequence's next
     * token, which goes to position {@code caches[b].length()} of its own cache (the caches may be at different
     * lengths). Every per-token part (norms, projections, router, shared and routed experts) runs on the B rows
     * together, as a prompt's tokens do, so each weight (each selected expert) is read from memory once per step for
     * all sequences; attention is each sequence's own over its own cache. Returns the final-normed hidden states
     * [B, D] (logits: {@link #logitsRows}).
     *
     * <p>A row's result depends only on its own sequence, bit for bit: the same whichever and however many
     * sequences share the step ({@link RowProducts}; the experts sum a token's outputs in expert order). It equals
     * {@link #forward} of that one token to float rounding (that path multiplies by other kernels).
     */
    public float[] decodeBatch(float[] x, KvCache[] caches) {
        int D = config.hiddenSize(), B = caches.length;
        if (x.length != B * D) throw new IllegalArgumentException("decodeBatch: x has " + x.length + " floats, expected " + B + " rows of " + D);
        int[] positions = new int[B];
        for (int b = 0; b < B; b++) {
            for (int a = 0; a < b; a++) {
                if (caches[a] == caches[b]) throw new IllegalArgumentException("decodeBatch: sequences " + a + " and " + b + " share one KV cache");
            }
            positions[b] = caches[b].length();
            if (positions[b] + 1 > caches[b].maxTokens()) {
                throw new IllegalArgumentException("decodeBatch: sequence " + b + "'s cache is full (" + positions[b] + " of " + caches[b].maxTokens() + " tokens)");
            }
        }
        for (DecoderLayer layer : layers) layer.forwardBatch(x, B, positions, caches);
        for (int b = 0; b < B; b++) caches[b].advance(positions[b] + 1);
        float[] out = new float[B * D];
        for (int b = 0; b < B; b++) VectorMath.rmsNorm(x, b * D, finalNorm, (float) config.rmsNormEps(), out, b * D, D);
        return out;
    }

    /**
     * T consecutive tokens of ONE sequence, x [T, D] (consumed), at positions cache.length() .. + T - 1, computed as T
     * single-token decode steps would compute them but in one pass: every row goes through {@link #decodeBatch}'s
     * per-row path (each weight read once for all T rows, {@link RowProducts}), and row t's attention sees the cache
     * up to its own position (rows before it included). Returns the final-normed states [T, D] (logits:
     * {@link #logitsRows}). Speculative decoding verifies drafted tokens with it
     * ({@link dev.kimivl.generate.Speculative}); the caller rolls rejected rows back with {@link KvCache#truncate}.
     *
     * <p>With float weights (F32, BF16) a row's logits equal {@link #forward} of that one token bit for bit (tested:
     * the same dot kernels in the same order); see {@link dev.kimivl.generate.Speculative#exactFor} for other types.
     */
    public float[] forwardRows(float[] x, int T, KvCache cache) {
        int D = config.hiddenSize(), pos0 = cache.length();
        if (x.length != T * D) throw new IllegalArgumentException("forwardRows: x has " + x.length + " floats, expected " + T + " rows of " + D);
        if (pos0 == 0) throw new IllegalArgumentException("forwardRows continues a sequence; its first position is a prompt's (prefill)");
        if (pos0 + T > cache.maxTokens()) {
            throw new IllegalArgumentException(T + " new tokens after " + pos0 + " cached exceed the context of " + cache.maxTokens() + " tokens");
        }
        int[] positions = new int[T];
        KvCache[] caches = new KvCache[T];
        for (int t = 0; t < T; t++) { positions[t] = pos0 + t; caches[t] = cache; }
        // the latents of rows 0..T-1 are all written before any row attends, and row t reads only positions ≤ pos0 + t
        for (DecoderLayer layer : layers) layer.forwardBatch(x, T, positions, caches);
        cache.advance(pos0 + T);
        float[] out = new float[T * D];
        for (int t = 0; t < T; t++) VectorMath.rmsNorm(x, t * D, finalNorm, (float) config.rmsNormEps(), out, t * D, D);
        return out;
    }

    /**
     * True when {@link #forwardRows} gives single-token decode's logits bit for bit for these weights and kernels
     * (ForwardRowsTest), i.e. when every matrix the rows multiply by through {@link RowProducts} where single decode
     * uses the matvec (the projections, experts, router and lm_head; not the attention's per-head k_b/v_b, which both
     * paths multiply by alike) is one of:
     * <ul>
     *   <li>F32 or BF16: every row runs the same dot kernel as the matvec;</li>
     *   <li>quantized with the integer matvec (int8 activations, the CLI's default, llama.cpp's numerics): the rows
     *       take the integer GEMM in the form whose result for each row equals the matvec's
     *       ({@link dev.kimivl.tensor.QuantMatrix#matmulAsMatvec}), or one matvec per row.</li>
     * </ul>
     * Not: F16 (its matvec sums in another order than the batched dot), and quantized weights with exact float
     * activations ({@code kimivl.intMatvec=false}, or a type the kernel set has no integer matvec for, as the Java set
     * for the k-quants): their matvec is another kernel than the rows' product.
     */
    public boolean rowsMatchDecode() {
        boolean[] exact = {rowExact(lmHead)};
        for (DecoderLayer l : layers) l.forEachRowProduct(m -> exact[0] &= rowExact(m));
        return exact[0];
    }

    private static boolean rowExact(Matrix m) {
        if (m instanceof dev.kimivl.tensor.QuantMatrix q) return q.usesIntegerMatvec();
        return m.dtype() == dev.kimivl.tensor.DType.F32 || m.dtype() == dev.kimivl.tensor.DType.BF16;
    }

    /** Logits [B, V] of the final-normed states h [B, D] of a {@link #decodeBatch} step, lm_head read once, each row alone. */
    public float[] logitsRows(float[] h, int B) {
        PhaseTimer.begin();
        float[] out = new float[B * config.vocabSize()];
        RowProducts.matmul(lmHead, h, out, B);
        PhaseTimer.lap(PhaseTimer.Phase.LM_HEAD);
        return out;
    }


    /**
     * Runs a prompt x [T, D] (consumed) through the model in passes of at most {@link KernelSettings#prefillChunk()} tokens
     * (default 2048: it bounds the transient memory of long prompts, ~0.5 GB at 2048 for Kimi-VL-A3B, at no cost in
     * speed since every pass is a full batch),
     * appending it to the cache; returns the final-normed hidden state of its last token [D]. {@code progress}
     * (may be null) hears (tokens done, T) before the first pass and after each.
     */
    public float[] prefill(float[] x, int T, KvCache cache, java.util.function.BiConsumer<Integer, Integer> progress) {
        int D = config.hiddenSize();
        float[] last = null;
        if (progress != null) progress.accept(0, T);
        int chunk = kernels.settings().prefillChunk();
        try {
            for (int t0 = 0; t0 < T; t0 += chunk) {
                int n = Math.min(chunk, T - t0);
                float[] part = n == T ? x : java.util.Arrays.copyOfRange(x, t0 * D, (t0 + n) * D);
                float[] h = forward(part, n, cache, StageSink.NONE, null);
                last = java.util.Arrays.copyOfRange(h, (n - 1) * D, n * D);
                if (progress != null) progress.accept(t0 + n, T);
            }
        } finally {
            cache.endPrompt();      // the attention's work arrays (sized by its key block and the chunk) live only while a prompt runs
        }
        if (last == null) throw new IllegalArgumentException("empty prompt");
        return last;
    }

    /** Logits [V] of position t of the final-normed states h [T, D]. */
    public float[] logits(float[] h, int t) {
        PhaseTimer.begin();
        float[] out = new float[config.vocabSize()];
        if (h.length == config.hiddenSize() && t == 0) {
            lmHead.matvec(h, 0, out, 0);
        } else {
            float[] row = java.util.Arrays.copyOfRange(h, t * config.hiddenSize(), (t + 1) * config.hiddenSize());
            lmHead.matvec(row, 0, out, 0);
        }
        PhaseTimer.lap(PhaseTimer.Phase.LM_HEAD);
        return out;
    }

    /** Logits of every position [T, V]. */
    public float[] allLogits(float[] h, int T) {
        float[] out = new float[T * config.vocabSize()];
        lmHead.matmul(h, out, T);
        return out;
    }
}
