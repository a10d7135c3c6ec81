package dev.kimivl.model;

import java.util.Arrays;
import java.util.Locale;

/**
 * The MLA cache: per layer and position only the 576-float latent (kv_lora_rank normalised ĉ followed by the
 * rope key k_pe after RoPE), shared by all heads (spec §6.8). Grows on demand up to {@code maxTokens}.
 *
 * <p>Stored as f32, f16 or bf16 ({@link Precision}): the 16-bit forms halve the cache (a 128K context of Kimi-VL-A3B
 * takes 4.1 GB instead of 8.2) and the bytes a decoded token streams through attention, as llama.cpp's default f16 KV
 * cache does. f16's rounding (relative 2⁻¹¹) is finer than the bf16 the published model runs in; bf16 (relative 2⁻⁸,
 * f32's range) is the model's own format and, on CPUs with AVX512-BF16, attention over it runs in vdpbf16ps at about
 * twice the f16 kernel's speed. Neither is the f32 oracle's: see {@link Precision#choose}.
 */
public final class KvCache {
    /** How the latents are stored. */
    public enum Precision {
        F32, F16, BF16;

        /** "f16", "bf16" or "f32" (any case). */
        public static Precision parse(String s) {
            return switch (s.toLowerCase(Locale.ROOT)) {
                case "f16" -> F16;
                case "bf16" -> BF16;
                case "f32" -> F32;
                default -> throw new IllegalArgumentException("KV cache type must be f16, bf16 or f32, not '" + s + "'");
            };
        }

        /**
         * The cache for a model: {@code setting} is f16, bf16, f32 or auto. Auto follows the weights and the kernels:
         * for quantized weights a 16-bit cache (their users get approximate numerics anyway, as llama.cpp's f16
         * default gives them), bf16 where attention over it runs in vdpbf16ps ({@code fastBf16}: 1.3-1.4× the decode
         * speed at 8K positions, 1.8× at 128K) and f16 elsewhere; f32 for float weights (the reference's numerics: on
         * the golden models an f16 cache moves the logits by ~1e-3 of their range, bf16 with its kernels by ~1e-2).
         */
        public static Precision choose(String setting, boolean quantizedWeights, boolean fastBf16) {
            if (setting.equalsIgnoreCase("auto")) return !quantizedWeights ? F32 : fastBf16 ? BF16 : F16;
            return parse(setting);
        }
    }

    private final int layers, width, kvLoraRank, maxTokens;
    private final Precision precision;
    private final float[][] data;   // F32: [layer][pos·width + i]
    private final short[][] bits16; // F16 and BF16: the same layout, IEEE half bits or bf16 bits (the top half of an f32)
    private int length;             // positions filled in every layer

    public KvCache(int layers, int kvLoraRank, int ropeDim, int maxTokens, Precision precision) {
        this.layers = layers;
        this.kvLoraRank = kvLoraRank;
        this.width = kvLoraRank + ropeDim;
        this.maxTokens = maxTokens;
        this.precision = precision;
        int initial = Math.min(maxTokens, 256);
        if (precision == Precision.F32) {
            data = new float[layers][];
            bits16 = null;
            for (int l = 0; l < layers; l++) data[l] = new float[initial * width];
        } else {
            data = null;
            bits16 = new short[layers][];
            for (int l = 0; l < layers; l++) bits16[l] = new short[initial * width];
        }
    }

    /**
     * An independent cache holding the same positions (one prefilled prompt continued several ways: an RL group's
     * answers, the server's n choices); the copy has this one's capacity and grows on its own.
     */
    public KvCache copy() {
        return new KvCache(this);
    }

    /** {@link #copy}: the source's dimensions, a clone of each layer's array, its length. */
    private KvCache(KvCache src) {
        this.layers = src.layers;
        this.kvLoraRank = src.kvLoraRank;
        this.width = src.width;
        this.maxTokens = src.maxTokens;
        this.precision = src.precision;
        this.data = src.data == null ? null : new float[layers][];
        this.bits16 = src.bits16 == null ? null : new short[layers][];
        for (int l = 0; l < layers; l++) {
            if (data != null) data[l] = src.data[l].clone();
            else bits16[l] = src.bits16[l].clone();
        }
        this.length = src.length;
    }

    public int length() { return length; }

    public int maxTokens() { return maxTokens; }

    public int width() { return width; }

    public int kvLoraRank() { return kvLoraRank; }

    public Precision precision() { return precision; }

    /** Bytes per cached position (all layers). */
    public long bytesPerPosition() { return bytesPerPosition(layers, width, precision); }

    /**
     * Work arrays of a prompt's decompressed attention ({@link MlaAttention}): one block of cached latents widened to
     * f32, each head's keys and values for that block, the heads' queries and their online-softmax state. Every layer
     * of a prefill pass needs the same sizes, so they are made once per pass and reused by the 27 layers instead of
     * made 27 times. Sized by the key block (kimivl.mla.keyBlock) and the chunk, not by the context: ~65 MB for a
     * 2,048-token chunk of Kimi-VL-A3B at any context (a block's f32 latents 8 MB, one head's keys and values for it
     * 5 MB, every head's queries 25 MB and output state 17 MB, the int8 latents), where the whole context decompressed
     * at once held 0.6 GB at 128K. Null between prompts:
     * {@link #endPrompt()} drops it.
     */
    private PromptScratch scratch;

    /** The arrays of {@link #scratch}, each exactly the size last asked for (a pass asks the same sizes in every layer). */
    static final class PromptScratch {
        private final float[][] floats = new float[9][];
        private final int[][] ints = new int[2][];
        /** ĉ of a block rounded for the integer v_b products: [0] full key blocks, [1] a shorter last one, [2] the chunk's own keys. */
        final dev.kimivl.tensor.QuantizedInput[] latentsQ = new dev.kimivl.tensor.QuantizedInput[3];

        /** Slot i as an array of exactly n ints (the previous one when it has that size; contents undefined). */
        int[] ints(int i, int n) {
            int[] a = ints[i];
            if (a == null || a.length != n) ints[i] = a = new int[n];
            return a;
        }

        /** Slot i as an array of exactly n floats (the previous one when it has that size; contents undefined). */
        float[] floats(int i, int n) {
            float[] a = floats[i];
            if (a == null || a.length != n) floats[i] = a = new float[n];
            return a;
        }
    }

    /** The prompt's work arrays (made on first use). */
    PromptScratch promptScratch() {
        if (scratch == null) scratch = new PromptScratch();
        return scratch;
    }

    /** Drops the prompt's work arrays: called when a prefill ends, so they live only while a prompt runs. */
    public void endPrompt() { scratch = null; }

    /** Whether the prompt's work arrays are held now (tests: a prefill must not leave them behind). */
    boolean holdsPromptScratch() { return scratch != null; }

    /** Bytes the cache's arrays hold now (all layers; capacity, not only the filled positions: it grows by doubling up to maxTokens). */
    public long bytesHeld() {
        long n = 0;
        for (int l = 0; l < layers; l++) n += data != null ? 4L * data[l].length : 2L * bits16[l].length;
        return n;
    }

    /** Bytes a cache of these dimensions holds per position (all layers). */
    static long bytesPerPosition(int layers, int width, Precision precision) {
        return (long) layers * width * (precision == Precision.F32 ? 4 : 2);
    }

    /** F32 caches: layer l's latent rows [0, capacity) × width, in place. */
    float[] layer(int l) {
        if (data == null) throw new IllegalStateException("a 16-bit cache has no float rows; use bits16(l) or columns(..)");
        return data[l];
    }

    /** F16 and BF16 caches: layer l's latent rows as 16-bit values (IEEE half or bf16 bits), in place. */
    short[] bits16(int l) {
        if (bits16 == null) throw new IllegalStateException("an f32 cache has no 16-bit rows; use layer(l)");
        return bits16[l];
    }

    /** Columns [c0, c0 + n) of positions [0, positions) of layer l as floats, dst [positions·n] (widened for F16). */
    float[] columns(int l, int positions, int c0, int n) {
        return columns(l, 0, positions, c0, n, new float[positions * n]);
    }

    /** Columns [c0, c0 + n) of positions [j0, j1) of layer l into dst [(j1 − j0)·n] (widened for F16); returns dst. */
    float[] columns(int l, int j0, int j1, int c0, int n, float[] dst) {
        for (int j = j0; j < j1; j++) {
            int src = j * width + c0, d = (j - j0) * n;
            if (data != null) System.arraycopy(data[l], src, dst, d, n);
            else if (precision == Precision.BF16) for (int i = 0; i < n; i++) dst[d + i] = Float.intBitsToFloat(bits16[l][src + i] << 16);
            else for (int i = 0; i < n; i++) dst[d + i] = Float.float16ToFloat(bits16[l][src + i]);
        }
        return dst;
    }

    /** Stores row[off .. off + width) as position pos of layer l (rounded to nearest, even on ties, for the 16-bit caches). */
    void write(int l, int pos, float[] row, int off) {
        ensure(l, pos + 1);
        int dst = pos * width;
        if (data != null) {
            System.arraycopy(row, off, data[l], dst, width);
        } else if (precision == Precision.BF16) {
            short[] h = bits16[l];
            for (int i = 0; i < width; i++) {
                float v = row[off + i];
                short b = toBf16(v);
                if (!Float.isFinite(v) || !Float.isFinite(Float.intBitsToFloat(b << 16))) {
                    throw new IllegalStateException("KV cache: latent value " + v + " (layer " + l + ", position " + pos + ", column " + i
                            + ") does not fit a bf16 cache (finite, |x| < 3.39e38)");
                }
                h[dst + i] = b;
            }
        } else {
            short[] h = bits16[l];
            for (int i = 0; i < width; i++) {
                float v = row[off + i];
                if (!(Math.abs(v) <= F16_MAX)) {
                    throw new IllegalStateException("KV cache: latent value " + v + " (layer " + l + ", position " + pos + ", column " + i
                            + ") does not fit an f16 cache (|x| ≤ 65504); run with --kv-cache f32");
                }
                h[dst + i] = Float.floatToFloat16(v);
            }
        }
    }

    /** v rounded to bf16 (nearest, ties to even): the top 16 bits of the f32 after adding half an ulp of bf16. */
    public static short toBf16(float v) {
        int bits = Float.floatToRawIntBits(v);
        return (short) ((bits + 0x7FFF + ((bits >>> 16) & 1)) >>> 16);
    }

    /** The largest finite f16 value: latents beyond it (or NaN) would poison attention, so writing one is an error. */
    private static final float F16_MAX = 65504f;

    /** Makes room for positions up to {@code tokens} in layer l. */
    void ensure(int l, int tokens) {
        if (tokens > maxTokens) throw new IllegalStateException("KV cache holds at most " + maxTokens + " tokens, asked for " + tokens);
        int capacity = capacity(l);
        if (tokens > capacity) grow(l, (int) Math.min(maxTokens, Math.max(tokens, 2L * capacity)));
    }

    /** Positions layer l's array has room for. */
    private int capacity(int l) { return (data != null ? data[l].length : bits16[l].length) / width; }

    /** Layer l's array copied into one of room for {@code positions}. */
    private void grow(int l, int positions) {
        if (data != null) data[l] = Arrays.copyOf(data[l], positions * width);
        else bits16[l] = Arrays.copyOf(bits16[l], positions * width);
    }

    /**
     * Makes room in every layer for {@code tokens} positions (at most maxTokens) now, in one step: a generation that
     * knows its prompt and answer lengths allocates once, instead of doubling (and copying the whole cache) at 256,
     * 512, ... while it runs; at a 32K context one doubling copies 1 GB in the middle of the answer. llama.cpp likewise
     * allocates its cache before it decodes.
     */
    public void reserve(int tokens) {
        int want = Math.min(tokens, maxTokens);
        for (int l = 0; l < layers; l++) if (want > capacity(l)) grow(l, want);
    }

    /** Called once a forward pass has written positions [length, newLength) in every layer. */
    void advance(int newLength) { length = newLength; }

    /** Drops positions ≥ n (to reuse a shared prompt prefix). */
    public void truncate(int n) {
        if (n < 0 || n > length) throw new IllegalArgumentException("cannot truncate a cache of " + length + " to " + n);
        length = n;
    }

    public int layers() { return layers; }

    /**
     * Fills positions [0, n) of every layer with random latents of the right scale (unit-RMS ĉ and k_pe) and sets
     * the length to n: a stand-in for a long prefill in benchmarks (speed does not depend on the values).
     */
    public void fillRandom(int n, long seed) {
        if (n > maxTokens) throw new IllegalArgumentException("cannot fill " + n + " positions of a cache of " + maxTokens);
        java.util.SplittableRandom rnd = new java.util.SplittableRandom(seed);
        float[] row = new float[width];
        for (int l = 0; l < layers; l++) {
            ensure(l, n);
            for (int j = 0; j < n; j++) {
                for (int i = 0; i < width; i++) row[i] = (float) ((rnd.nextDouble() - 0.5) * 3.4641016);
                write(l, j, row, 0);
            }
        }
        length = n;
    }
}
