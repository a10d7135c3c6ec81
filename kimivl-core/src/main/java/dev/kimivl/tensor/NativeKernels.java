package dev.kimivl.tensor;

import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * The native AVX2 kernels (kimivl-core/src/main/c/kimivl_kernels.c, built by gcc during the Maven build into the
 * jar) for the integer matvec of token decode (Q4_0 and Q8_0, and the formats of published k-quant files: Q4_K, Q5_K,
 * Q6_K, Q4_1, Q5_0, Q5_1), the batched products of prefill, and attention, called through FFM.
 *
 * <p>Why: the Java Vector API has no byte multiply-add on AVX2, and the Java integer kernels spend ~35 instructions
 * per 32-weight block where one core has time for ~10 at memory speed (kimivl-bench/README.md). The Java kernels
 * stay as the fallback (other CPUs, builds without gcc, {@code -Dkimivl.native=false}) and as the reference that
 * NativeKernelsTest compares these against.
 *
 * <p>Calls are "critical" downcalls: no thread-state transition, and heap arrays (the quantized activation, the
 * output) are passed in place, without copies. A critical call cannot be interrupted by a safepoint, so callers keep
 * each call to milliseconds of work (a range of rows, a range of positions); a GC then waits at most that long.
 */
public final class NativeKernels {
    private static final int ABI_VERSION = 19;
    /** Widest row the native kernels take (their per-call buffers live on the C stack). */
    public static final int MAX_COLS = 32768;
    private static final String RESOURCE = "/dev/kimivl/native/linux-x86_64/libkimivl.so";

    /** True when the native kernels are loaded and this CPU runs them. */
    public static final boolean AVAILABLE;
    /** One line for reports: which kernels run decode, and why not the native ones. */
    public static final String STATUS;

    /**
     * True when the CPU has AVX-VNNI, so the batched Q8_0 product takes kv_gemm_q8_0_vnni (vpdpbusd: half the vector
     * instructions per weight of the vpmaddubsw form; the results are the same bit for bit, NativeKernelsTest).
     */
    public static final boolean VNNI;

    /**
     * True when the CPU has AVX512-BF16 as well as the AVX-512 forms (kv_cpu_bf16: Zen 4 and 5, Sapphire Rapids), so
     * latent attention over a bf16 cache runs in vdpbf16ps ({@link #latentAttentionBf16}).
     */
    public static final boolean BF16;

    /**
     * The instruction sets the native kernels come in. Each form gives the others' results bit for bit (the integer block
     * sums are exact, the float steps the same in the same order; NativeKernelsTest), so the choice changes speed only.
     */
    public enum Isa {
        /** vpmaddubsw + vpmaddwd on 256-bit vectors: every x86-64 CPU with AVX2, FMA and F16C. */
        AVX2,
        /** AVX2, with the Q8_0 GEMM in VEX-encoded vpdpbusd (AVX-VNNI: Zen 5, Alder Lake and later). */
        AVX_VNNI,
        /**
         * 512-bit vpdpbusd / vpdpwssd and byte permutes (AVX-512 F/BW/VL/DQ/VBMI + AVX512-VNNI: Zen 4, Zen 5, Ice Lake
         * and later) for the Q4_0/Q5_0/Q8_0 GEMMs, the Q4_0 matvec and the Q4_K/Q5_K matvec and GEMM.
         */
        AVX512;

        /** The name -Dkimivl.nativeIsa takes. */
        public String id() { return name().toLowerCase(java.util.Locale.ROOT).replace("_", "-"); }

        /** True when this CPU runs this form (and the library is loaded). */
        public boolean supported() {
            return AVAILABLE && switch (this) {
                case AVX2 -> true;
                case AVX_VNNI -> VNNI;
                case AVX512 -> AVX512_OK;
            };
        }

        /**
         * The form a {@code -Dkimivl.nativeIsa} value names: "auto" the best this CPU runs ({@link #BEST}), else that one,
         * refused with the reason where this CPU lacks it.
         */
        public static Isa resolve(String id) {
            if (id.equals("auto")) return BEST;
            for (Isa i : values()) {
                if (i.id().equals(id)) {
                    if (!i.supported()) throw new IllegalArgumentException("-Dkimivl.nativeIsa=" + id + ": this CPU (or build) has no " + i.id()
                            + " kernels; it runs " + BEST.id());
                    return i;
                }
            }
            throw new IllegalArgumentException("-Dkimivl.nativeIsa=" + id + ": expected auto, avx2, avx-vnni or avx512 (docs/tuning.md)");
        }
    }

    /** True when the CPU has AVX-512 F/BW/VL/DQ and AVX512-VNNI (kv_cpu_avx512) for kimivl_avx512.c's kernels. */
    private static final boolean AVX512_OK;
    /** The fastest form this CPU runs (AVX2 where the library is not loaded: it is then never called). */
    public static final Isa BEST;

    private static final MethodHandle Q4_0, Q4_0_512, Q8_0, Q8_0_512, GEMM_Q4_0, GEMM_Q8_0, GEMM_Q8_0_VNNI, GEMM_Q4_0_512, GEMM_Q5_0_512, GEMM_Q8_0_512, GEMM_Q4_K_512, SGEMM, PACK, LATENT, LATENT_F16, LATENT_BF16,
            MHA, STREAM, KQ, GEMM_KQ, KQ_512, GEMM_KQ_512, LATENT_512, LATENT_F16_512, LATENT_BF16_512, MHA_BF16_512, PACK_KV_BF16, MHA_512, R4_PACK, GEMM_Q4_K_R4_512,
            SGEMM_BF16, BF16_PANELS, VIT_ATTENTION, VIT_ATTENTION_BACKWARD;

    static {
        MethodHandle q4 = null, q4w = null, q8 = null, q8w = null, g4 = null, g8 = null, g8v = null, g4w = null, g5w = null, g8w = null, g4kw = null, sg = null, pack = null, latent = null, latentF16 = null, latentBf16 = null, mha = null, stream = null,
                kq = null, gkq = null, kqw = null, gkqw = null, latentW = null, latentF16W = null, latentBf16W = null, mhaBf16W = null, packKvBf16 = null, mhaW = null, r4pack = null, g4kr4 = null, sgBf16 = null, bf16Panels = null, vitAtt = null, vitAttBwd = null;
        String status;
        boolean ok = false, vnni = false, avx512 = false, bf16 = false;
        if (!KernelSettings.SYSTEM.nativeKernels()) {
            status = "Java Vector API kernels (native kernels turned off by -Dkimivl.native=false)";
        } else {
            try {
                SymbolLookup lib = load();
                Linker linker = Linker.nativeLinker();
                Linker.Option critical = Linker.Option.critical(true);
                int version = (int) linker.downcallHandle(lib.findOrThrow("kv_version"), FunctionDescriptor.of(JAVA_INT)).invokeExact();
                int cpuOk = (int) linker.downcallHandle(lib.findOrThrow("kv_cpu_ok"), FunctionDescriptor.of(JAVA_INT)).invokeExact();
                if (version != ABI_VERSION) {
                    status = "Java Vector API kernels (native library has ABI version " + version + ", expected " + ABI_VERSION + ")";
                } else if (cpuOk == 0) {
                    status = "Java Vector API kernels (this CPU lacks AVX2/FMA/F16C for the native kernels)";
                } else {
                    q4 = linker.downcallHandle(lib.findOrThrow("kv_matvec_q4_0"), FunctionDescriptor.of(JAVA_INT,
                            ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_INT), critical);
                    q8 = linker.downcallHandle(lib.findOrThrow("kv_matvec_q8_0"), FunctionDescriptor.ofVoid(
                            ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS, ADDRESS, ADDRESS, JAVA_INT), critical);
                    g4 = linker.downcallHandle(lib.findOrThrow("kv_gemm_q4_0"), FunctionDescriptor.of(JAVA_INT,
                            ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS, ADDRESS, ADDRESS, JAVA_INT, ADDRESS, JAVA_INT), critical);
                    g8 = linker.downcallHandle(lib.findOrThrow("kv_gemm_q8_0"), FunctionDescriptor.of(JAVA_INT,
                            ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS, ADDRESS, JAVA_INT, ADDRESS, JAVA_INT), critical);
                    vnni = (int) linker.downcallHandle(lib.findOrThrow("kv_cpu_vnni"), FunctionDescriptor.of(JAVA_INT)).invokeExact() == 1;
                    if (vnni) {
                        g8v = linker.downcallHandle(lib.findOrThrow("kv_gemm_q8_0_vnni"), FunctionDescriptor.of(JAVA_INT,
                                ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS, ADDRESS, ADDRESS, JAVA_INT, ADDRESS, JAVA_INT), critical);
                    }
                    avx512 = (int) linker.downcallHandle(lib.findOrThrow("kv_cpu_avx512"), FunctionDescriptor.of(JAVA_INT)).invokeExact() == 1;
                    if (avx512) {
                        FunctionDescriptor gemm512 = FunctionDescriptor.of(JAVA_INT,
                                ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS, ADDRESS, ADDRESS, JAVA_INT, ADDRESS, JAVA_INT);
                        g4w = linker.downcallHandle(lib.findOrThrow("kv_gemm_q4_0_512"), gemm512, critical);
                        g8w = linker.downcallHandle(lib.findOrThrow("kv_gemm_q8_0_512"), gemm512, critical);
                        g5w = linker.downcallHandle(lib.findOrThrow("kv_gemm_q5_0_512"), gemm512, critical);
                        g4kw = linker.downcallHandle(lib.findOrThrow("kv_gemm_q4_k_512"), gemm512, critical);
                        g4kr4 = linker.downcallHandle(lib.findOrThrow("kv_gemm_q4_k_r4_512"), gemm512, critical);
                        r4pack = linker.downcallHandle(lib.findOrThrow("kv_q4k_r4_pack"), FunctionDescriptor.of(JAVA_INT,
                                ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS), critical);
                        kqw = linker.downcallHandle(lib.findOrThrow("kv_matvec_kq_512"), FunctionDescriptor.of(JAVA_INT,
                                JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_INT), critical);
                        gkqw = linker.downcallHandle(lib.findOrThrow("kv_gemm_kq_512"), FunctionDescriptor.of(JAVA_INT,
                                JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS, ADDRESS, ADDRESS, JAVA_INT, ADDRESS, JAVA_INT), critical);
                        q4w = linker.downcallHandle(lib.findOrThrow("kv_matvec_q4_0_512"), FunctionDescriptor.of(JAVA_INT,
                                ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_INT), critical);
                        q8w = linker.downcallHandle(lib.findOrThrow("kv_matvec_q8_0_512"), FunctionDescriptor.of(JAVA_INT,
                                ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_INT), critical);
                    }
                    sg = linker.downcallHandle(lib.findOrThrow("kv_sgemm_kblock"), FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT,
                            JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT), critical);
                    pack = linker.downcallHandle(lib.findOrThrow("kv_pack_act"), FunctionDescriptor.ofVoid(
                            ADDRESS, ADDRESS, ADDRESS, JAVA_INT, JAVA_INT, ADDRESS, ADDRESS, ADDRESS), critical);
                    FunctionDescriptor latentD = FunctionDescriptor.of(JAVA_INT,
                            ADDRESS, JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_FLOAT, ADDRESS, ADDRESS, ADDRESS);
                    FunctionDescriptor mhaD = FunctionDescriptor.of(JAVA_INT,
                            ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT,
                            JAVA_FLOAT, JAVA_INT, ADDRESS, ADDRESS, ADDRESS);
                    latent = linker.downcallHandle(lib.findOrThrow("kv_latent_attention"), latentD, critical);
                    latentF16 = linker.downcallHandle(lib.findOrThrow("kv_latent_attention_f16"), latentD, critical);
                    latentBf16 = linker.downcallHandle(lib.findOrThrow("kv_latent_attention_bf16"), latentD, critical);
                    mha = linker.downcallHandle(lib.findOrThrow("kv_mha_causal"), mhaD, critical);
                    if (avx512) {
                        latentW = linker.downcallHandle(lib.findOrThrow("kv_latent_attention_512"), latentD, critical);
                        latentF16W = linker.downcallHandle(lib.findOrThrow("kv_latent_attention_f16_512"), latentD, critical);
                        bf16 = (int) linker.downcallHandle(lib.findOrThrow("kv_cpu_bf16"), FunctionDescriptor.of(JAVA_INT)).invokeExact() == 1;
                        if (bf16) {
                            latentBf16W = linker.downcallHandle(lib.findOrThrow("kv_latent_attention_bf16_512"), latentD, critical);
                            mhaBf16W = linker.downcallHandle(lib.findOrThrow("kv_mha_causal_bf16_512"), FunctionDescriptor.of(JAVA_INT,
                                    ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS, ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT,
                                    JAVA_FLOAT, JAVA_INT, ADDRESS, ADDRESS, ADDRESS), critical);
                            packKvBf16 = linker.downcallHandle(lib.findOrThrow("kv_pack_kv_bf16"), FunctionDescriptor.of(JAVA_INT,
                                    ADDRESS, JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS, ADDRESS), critical);
                            sgBf16 = linker.downcallHandle(lib.findOrThrow("kv_sgemm_kblock_bf16"), FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT,
                                    JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT), critical);
                            bf16Panels = linker.downcallHandle(lib.findOrThrow("kv_bf16_panels"), FunctionDescriptor.of(JAVA_INT,
                                    ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS), critical);
                        }
                        mhaW = linker.downcallHandle(lib.findOrThrow("kv_mha_causal_512"), mhaD, critical);
                        vitAtt = linker.downcallHandle(lib.findOrThrow("kv_vit_attention"), FunctionDescriptor.of(JAVA_INT,
                                ADDRESS, ADDRESS, ADDRESS, JAVA_INT, JAVA_INT, JAVA_FLOAT, ADDRESS, ADDRESS, ADDRESS, JAVA_INT, JAVA_INT), critical);
                        vitAttBwd = linker.downcallHandle(lib.findOrThrow("kv_vit_attention_backward"), FunctionDescriptor.of(JAVA_INT,
                                ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_INT, JAVA_INT, JAVA_FLOAT, ADDRESS, ADDRESS, ADDRESS, ADDRESS,
                                JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT), critical);
                    }
                    stream = linker.downcallHandle(lib.findOrThrow("kv_stream_read"), FunctionDescriptor.of(JAVA_LONG, ADDRESS, JAVA_LONG), critical);
                    kq = linker.downcallHandle(lib.findOrThrow("kv_matvec_kq"), FunctionDescriptor.of(JAVA_INT,
                            JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_INT), critical);
                    gkq = linker.downcallHandle(lib.findOrThrow("kv_gemm_kq"), FunctionDescriptor.of(JAVA_INT,
                            JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS, ADDRESS, ADDRESS, JAVA_INT, ADDRESS, JAVA_INT), critical);
                    ok = true;
                    status = "native kernels (libkimivl.so; forms this CPU has: avx2" + (vnni ? ", avx-vnni" : "") + (avx512 ? ", avx512" : "") + (bf16 ? ", avx512-bf16" : "")
                            + "): Q4_0/Q8_0/Q4_K/Q5_K/Q6_K/Q4_1/Q5_0/Q5_1 matvec and prefill GEMM, float GEMM tiles, latent attention (f32/f16/bf16 cache), causal prompt attention";
                }
            } catch (Throwable t) {
                status = "Java Vector API kernels (native kernels unavailable: " + t.getMessage() + ")";
            }
        }
        Q4_0 = q4;
        Q4_0_512 = q4w;
        Q8_0 = q8;
        Q8_0_512 = q8w;
        GEMM_Q4_0 = g4;
        GEMM_Q8_0 = g8;
        GEMM_Q8_0_VNNI = g8v;
        GEMM_Q4_0_512 = g4w;
        GEMM_Q8_0_512 = g8w;
        GEMM_Q5_0_512 = g5w;
        GEMM_Q4_K_512 = g4kw;
        SGEMM = sg;
        VNNI = vnni;
        AVX512_OK = avx512;
        BF16 = bf16;
        BEST = avx512 ? Isa.AVX512 : vnni ? Isa.AVX_VNNI : Isa.AVX2;
        PACK = pack;
        LATENT = latent;
        LATENT_F16 = latentF16;
        LATENT_BF16 = latentBf16;
        MHA = mha;
        LATENT_512 = latentW;
        LATENT_F16_512 = latentF16W;
        LATENT_BF16_512 = latentBf16W;
        MHA_BF16_512 = mhaBf16W;
        PACK_KV_BF16 = packKvBf16;
        MHA_512 = mhaW;
        STREAM = stream;
        KQ = kq;
        GEMM_KQ = gkq;
        KQ_512 = kqw;
        GEMM_KQ_512 = gkqw;
        R4_PACK = r4pack;
        GEMM_Q4_K_R4_512 = g4kr4;
        SGEMM_BF16 = sgBf16;
        BF16_PANELS = bf16Panels;
        VIT_ATTENTION = vitAtt;
        VIT_ATTENTION_BACKWARD = vitAttBwd;
        AVAILABLE = ok;
        STATUS = status;
    }

    private NativeKernels() {}

    /**
     * Whether {@link #sgemmKblock} runs for the 512-bit tiles ({@code wide}, MicroKernel.rows12x16's) or the 8-lane
     * ones: the library is loaded and, for the wide form, this CPU has AVX-512.
     */
    static boolean sgemmTiles(boolean wide) { return SGEMM != null && (!wide || AVX512_OK); }

    /**
     * One k-block of a PackedGemm row block, all panels: the tiles c[co + g·ldc + ir·96 ..] (+)= the packed weight rows
     * a[ao + (6·ir + i)·lda + k] × panel g's inputs xp[xo + g·panelStride + 16k + j], k &lt; kc; 6-row groups wholly
     * above the diagonal skipped where {@code lower} (PackedGemm's lower form; diag = the block's first row − 16 × the
     * whole product's index of this call's panel 0). The Java tiles' floats bit for bit
     * (kimivl_sgemm.c). Callers keep a call to ~2^26 multiply-adds (a critical call holds off safepoints).
     */
    static void sgemmKblock(boolean wide, float[] a, int ao, int lda, int mg, int kc, float[] xp, int xo, int panelStride, int groups,
                            float[] c, int co, int ldc, boolean load, boolean lower, int diag) {
        try {
            int rc = (int) SGEMM.invokeExact(wide ? 1 : 0, MemorySegment.ofArray(a), ao, lda, mg, kc, MemorySegment.ofArray(xp), xo, panelStride, groups,
                    MemorySegment.ofArray(c), co, ldc, load ? 1 : 0, lower ? 1 : 0, diag);
            if (rc != 0) throw new IllegalStateException("kv_sgemm_kblock returned " + rc);
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
    }

    /**
     * Whether the bf16 form of the float GEMM tiles runs here ({@link #sgemmKblockBf16}: vdpbf16ps, a CPU with
     * AVX512-BF16): the products of a training run that asks for bf16 ({@code Gemm.Products#BF16}).
     */
    static boolean bf16GemmTiles() { return SGEMM_BF16 != null; }

    /**
     * Panels g0..g1 of a PackedGemm input packing (xp from xo: [groups][cols][16] floats) as bf16 k-pairs into out
     * ([groups][⌈cols/2⌉][16] ints: int j of pair p holds input j at k = 2p in its low half, 2p + 1 in its high half;
     * rounded to nearest, ties to even; kimivl_sgemm.c kv_bf16_panels).
     */
    static void bf16Panels(float[] xp, int xo, int cols, int g0, int g1, int[] out) {
        try {
            int rc = (int) BF16_PANELS.invokeExact(MemorySegment.ofArray(xp), xo, cols, g0, g1, MemorySegment.ofArray(out));
            if (rc != 0) throw new IllegalStateException("kv_bf16_panels returned " + rc);
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
    }

    /**
     * {@link #sgemmKblock}'s 512-bit form in bf16 products (kimivl_sgemm.c kv_sgemm_kblock_bf16): the block's rows are
     * rounded to bf16 in the call, the inputs come as {@link #bf16Panels} (xo and panelStride in ints), products and
     * sums are f32. The block is at most 96 rows × 256 columns.
     */
    static void sgemmKblockBf16(float[] a, int ao, int lda, int mg, int kc, int[] xpb, int xo, int panelStride, int groups,
                                float[] c, int co, int ldc, boolean load, boolean lower, int diag) {
        try {
            int rc = (int) SGEMM_BF16.invokeExact(MemorySegment.ofArray(a), ao, lda, mg, kc, MemorySegment.ofArray(xpb), xo, panelStride, groups,
                    MemorySegment.ofArray(c), co, ldc, load ? 1 : 0, lower ? 1 : 0, diag);
            if (rc != 0) throw new IllegalStateException("kv_sgemm_kblock_bf16 returned " + rc + " (block of " + mg * 6 + " rows × " + kc + " columns: at most 96 × 256)");
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
    }

    /**
     * Whether {@link #vitAttention} and {@link #vitAttentionBackward} run for heads of width d: the library is loaded
     * on a CPU with the AVX-512 forms, and d is a multiple of 16 up to 256 (kimivl_train.c).
     */
    public static boolean vitAttention(int d) { return VIT_ATTENTION != null && d > 0 && d % 16 == 0 && d <= 256; }

    /**
     * One head of one image of MoonViT's attention, forward (kimivl_train.c kv_vit_attention): P = softmax(scale·q·kᵀ)
     * into p, out[o + i·ldo + c] = Σ_j P[i][j]·v[j][c]. q, k, v: [n][d] contiguous; scratch p [n][np] and t [d][np],
     * np = n rounded up to 16. A critical call: callers keep n to a few thousand.
     */
    public static void vitAttention(float[] q, float[] k, float[] v, int n, int d, float scale, float[] p, float[] t, float[] out, int o, int ldo) {
        int np = (n + 15) & ~15;
        checkScratch(n, d, np, p, t, q, k, v);
        if ((long) o + (long) (n - 1) * ldo + d > out.length) throw new IllegalArgumentException("out holds " + out.length + " floats, rows need " + ((long) o + (long) (n - 1) * ldo + d));
        try {
            int rc = (int) VIT_ATTENTION.invokeExact(MemorySegment.ofArray(q), MemorySegment.ofArray(k), MemorySegment.ofArray(v), n, d, scale,
                    MemorySegment.ofArray(p), MemorySegment.ofArray(t), MemorySegment.ofArray(out), o, ldo);
            if (rc != 0) throw new IllegalArgumentException("kv_vit_attention: head width " + d + " is not a multiple of 16 up to 256");
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable x) {
            throw new IllegalStateException(x);
        }
    }

    /**
     * Its backward, P recomputed (kv_vit_attention_backward): dq = dS·k, dk = dSᵀ·q, dv = Pᵀ·dO with
     * dS = P ∘ (dO·vᵀ − rowsum)·scale, written to g at rows ldo apart from oq, ok, ov. Scratch p, ds [n][np], t [d][np].
     */
    public static void vitAttentionBackward(float[] q, float[] k, float[] v, float[] dO, int n, int d, float scale,
                                            float[] p, float[] ds, float[] t, float[] g, int oq, int ok, int ov, int ldo) {
        int np = (n + 15) & ~15;
        checkScratch(n, d, np, p, t, q, k, v, dO);
        if ((long) ds.length < (long) n * np) throw new IllegalArgumentException("scratch ds holds " + ds.length + " floats, needs " + (long) n * np);
        long last = Math.max(oq, Math.max(ok, ov)) + (long) (n - 1) * ldo + d;
        if (last > g.length) throw new IllegalArgumentException("g holds " + g.length + " floats, rows need " + last);
        try {
            int rc = (int) VIT_ATTENTION_BACKWARD.invokeExact(MemorySegment.ofArray(q), MemorySegment.ofArray(k), MemorySegment.ofArray(v), MemorySegment.ofArray(dO),
                    n, d, scale, MemorySegment.ofArray(p), MemorySegment.ofArray(ds), MemorySegment.ofArray(t), MemorySegment.ofArray(g), oq, ok, ov, ldo);
            if (rc != 0) throw new IllegalArgumentException("kv_vit_attention_backward: head width " + d + " is not a multiple of 16 up to 256");
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable x) {
            throw new IllegalStateException(x);
        }
    }

    private static void checkScratch(int n, int d, int np, float[] p, float[] t, float[]... rows) {
        for (float[] r : rows) if ((long) r.length < (long) n * d) throw new IllegalArgumentException("an input block holds " + r.length + " floats, [" + n + ", " + d + "] needs " + (long) n * d);
        if ((long) p.length < (long) n * np) throw new IllegalArgumentException("scratch p holds " + p.length + " floats, needs " + (long) n * np);
        if ((long) t.length < (long) d * np) throw new IllegalArgumentException("scratch t holds " + t.length + " floats, needs " + (long) d * np);
    }

    /** Copies the library out of the jar (dlopen needs a file) and opens it; the file is deleted once opened. */
    private static SymbolLookup load() throws IOException {
        String os = System.getProperty("os.name", "").toLowerCase(), arch = System.getProperty("os.arch", "");
        if (!os.contains("linux") || !(arch.equals("amd64") || arch.equals("x86_64"))) {
            throw new IOException("built for linux x86-64 only, this is " + os + " " + arch);
        }
        try (InputStream in = NativeKernels.class.getResourceAsStream(RESOURCE)) {
            if (in == null) throw new IOException("no " + RESOURCE + " in the build (gcc was not found when it was built)");
            Path tmp = Files.createTempFile("libkimivl", ".so");
            try {
                Files.copy(in, tmp, StandardCopyOption.REPLACE_EXISTING);
                return SymbolLookup.libraryLookup(tmp, Arena.global());
            } finally {
                Files.deleteIfExists(tmp);
            }
        }
    }

    /**
     * y[yo + r] = Σ_c W[r, c]·x'[c] for r in [r0, r1), W a matrix of a type with a native kernel ({@link #hasKernel})
     * and {@code cols} columns whose rows start at byte 0 of w, x' the quantized activation, in the form {@code isa}
     * (Q4_0, Q8_0, Q4_K, Q5_K, Q6_K and Q5_0 have an AVX-512 one; the others run AVX2 in every form). Only when {@link #AVAILABLE}, and for Q4_0/Q8_0
     * cols ≤ {@link #MAX_COLS}.
     */
    static void matvec(DType type, MemorySegment w, int r0, int r1, int cols, QuantizedInput x, float[] y, int yo, Isa isa) {
        boolean k = type.blockSize == 256;             // the k-quants take the activation's per-256 form
        MemorySegment xq = k ? x.k8Segment : x.q8Segment, xd = k ? x.kdSegment : x.dSegment, xs8 = k ? x.kbsSegment : x.s8Segment;
        try {
            if (type == DType.Q4_0) {
                MethodHandle kernel = isa == Isa.AVX512 ? Q4_0_512 : Q4_0;
                if ((int) kernel.invokeExact(w, r0, r1, cols, xq, xd, xs8, MemorySegment.ofArray(y), yo) != 0) {
                    throw new IllegalArgumentException("native matvec refused " + cols + " columns (at most " + MAX_COLS + ")");
                }
            } else if (type == DType.Q8_0 && isa == Isa.AVX512) {
                int alwaysZero = (int) Q8_0_512.invokeExact(w, r0, r1, cols, xq, xd, xs8, MemorySegment.ofArray(y), yo);  // no width limit of its own
            } else if (type == DType.Q8_0) {
                Q8_0.invokeExact(w, r0, r1, cols, xq, xd, MemorySegment.ofArray(y), yo);
            } else if (otherFormatCode(type) >= 0) {
                MethodHandle kernel = isa == Isa.AVX512 ? KQ_512 : KQ;     // kv_matvec_kq_512 takes Q4_K/Q5_K/Q6_K/Q5_0, hands on the rest
                if ((int) kernel.invokeExact(otherFormatCode(type), w, r0, r1, cols, xq, xd, xs8, MemorySegment.ofArray(y), yo) != 0) {
                    throw new IllegalArgumentException("native " + type + " matvec refused " + cols + " columns");
                }
            } else {
                throw new IllegalArgumentException("no native matvec for " + type);
            }
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
    }

    /**
     * The code of a format with a kimivl_kquants.c kernel (its KQ_* enum), or −1: Q4_0 and Q8_0 have their own
     * kernels in kimivl_kernels.c, and other types none.
     */
    static int otherFormatCode(DType type) {
        return switch (type) {
            case Q4_K -> 0;
            case Q5_K -> 1;
            case Q6_K -> 2;
            case Q4_1 -> 3;
            case Q5_0 -> 4;
            case Q5_1 -> 5;
            default -> -1;
        };
    }

    /** kimivl_avx512.c's type code of Q4_K rows in the R4 layout (KQ512_Q4_K_R4), for kv_matvec_kq_512 and kv_gemm_kq_512. */
    private static final int Q4_K_R4_CODE = 8;

    /** True when the AVX-512 kernels of Q4_K rows regrouped 4 at a time ({@link Q4KRows4}) are loaded. */
    static boolean hasQ4KRows4() { return AVAILABLE && AVX512_OK && R4_PACK != null && GEMM_Q4_K_R4_512 != null; }

    /** Groups [g0, g1) (rows 4·g0 .. 4·g1) of a plain Q4_K matrix of cols columns into the R4 segment dst (kv_q4k_r4_pack). */
    static void packQ4KRows4(MemorySegment plain, int g0, int g1, int cols, MemorySegment dst) {
        long need = (long) g1 * 4 * (cols / 256) * 144, have = plain.byteSize();
        if (g0 < 0 || g1 < g0 || have < need || dst.byteSize() < g1 * Q4KRows4.groupBytes(cols)) {
            throw new IndexOutOfBoundsException("R4 groups [" + g0 + ", " + g1 + ") of " + cols + " columns: plain " + have + " bytes, R4 " + dst.byteSize());
        }
        try {
            if ((int) R4_PACK.invokeExact(plain, g0, g1, cols, dst) != 0) throw new IllegalArgumentException("R4 packing refused " + cols + " columns");
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
    }

    /**
     * y[yo + r] for physical rows r in [r0, r1) of an R4 segment (rows counted from its first group), the decode matvec
     * kv_matvec_q4k_r4: equal to {@link #matvec}'s Q4_K result on the plain rows bit for bit.
     */
    static void matvecQ4KRows4(MemorySegment w4, int r0, int r1, int cols, QuantizedInput x, float[] y, int yo) {
        try {
            if ((int) KQ_512.invokeExact(Q4_K_R4_CODE, w4, r0, r1, cols, x.k8Segment, x.kdSegment, x.kbsSegment, MemorySegment.ofArray(y), yo) != 0) {
                throw new IllegalArgumentException("native R4 Q4_K matvec refused " + cols + " columns");
            }
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
    }

    /**
     * The batched products over physical rows [r0, r1) of an R4 segment into y[t·ldy + r] (r physical): {@code packed},
     * kv_gemm_q4_k_r4_512 over activations packed for the 32-block GEMM (= {@link #gemm}'s Q4_K result); else
     * kv_gemm_kq_512 over the per-256 form (= {@link #gemmOtherFormat}'s, the matvec's bits).
     */
    static void gemmQ4KRows4(MemorySegment w4, int r0, int r1, QuantizedInput x, boolean packed, float[] y, int ldy) {
        int rc;
        try {
            if (packed) {
                PackedActivations p = x.nativePacked();
                rc = (int) GEMM_Q4_K_R4_512.invokeExact(w4, r0, r1, p.cols, p.xp, p.xd, p.xs, p.n, MemorySegment.ofArray(y), ldy);
            } else {
                rc = (int) GEMM_KQ_512.invokeExact(Q4_K_R4_CODE, w4, r0, r1, x.cols, x.k8Segment, x.kdSegment, x.kbsSegment, x.rows,
                        MemorySegment.ofArray(y), ldy);
            }
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
        if (rc != 0) throw new IllegalArgumentException("native R4 Q4_K GEMM refused " + x.cols + " columns");
    }

    /** True when the native library has an integer matvec and batched product for matrices of this type. */
    public static boolean hasKernel(DType type) {
        return AVAILABLE && (type == DType.Q4_0 || type == DType.Q8_0 || otherFormatCode(type) >= 0);
    }

    /**
     * y[t·ldy + r] = Σ_c W[r, c]·x'_t[c] for r in [r0, r1), t in [0, x.rows) for the formats of kimivl_kquants.c
     * (kv_gemm_kq: the row kernel of {@link #matvec} for each token over tiles of rows held in L1, so each result
     * equals the matvec's bit for bit).
     */
    static void gemmOtherFormat(DType type, MemorySegment w, int r0, int r1, QuantizedInput x, float[] y, int ldy, Isa isa) {
        int rc;
        try {
            boolean k = type.blockSize == 256;      // as in matvec
            MemorySegment v = k ? x.k8Segment : x.q8Segment, sc = k ? x.kdSegment : x.dSegment, sums = k ? x.kbsSegment : x.s8Segment;
            MethodHandle kernel = isa == Isa.AVX512 ? GEMM_KQ_512 : GEMM_KQ;
            rc = (int) kernel.invokeExact(otherFormatCode(type), w, r0, r1, x.cols, v, sc, sums, x.rows, MemorySegment.ofArray(y), ldy);
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
        if (rc != 0) throw new IllegalArgumentException("native " + type + " GEMM refused " + x.cols + " columns");
    }

    /**
     * n quantized activations in the GEMM's layout (kimivl_kernels.c, kv_pack_act): groups of 8 blocks transposed so
     * that each int32 lane accumulates one block, stored in pairs of groups (a 512-bit kernel loads both halves of a
     * pair at once), padded to whole pairs with zeros. Per token: {@link #vectors} · 32 bytes of values and as many
     * block scales and block sums.
     */
    static final class PackedActivations {
        final int n, cols;
        final MemorySegment xp, xd, xs;

        PackedActivations(QuantizedInput x) {
            n = x.rows;
            cols = x.cols;
            int v = vectors(cols);
            xp = MemorySegment.ofArray(new byte[Math.multiplyExact(n, v * 32)]);
            xd = MemorySegment.ofArray(new float[Math.multiplyExact(n, v)]);
            xs = MemorySegment.ofArray(new int[n * v]);
            pack(x);
        }

        /** 32-byte vectors per packed token: 16 per pair of groups of 8 blocks (also its scales and sums per token). */
        static int vectors(int cols) {
            int groups = (cols / 32 + 7) / 8;
            return 16 * ((groups + 1) / 2);
        }

        /** Packs x (of this shape) into these arrays: a reused batch's new values. */
        void pack(QuantizedInput x) {
            if (x.rows != n || x.cols != cols) throw new IllegalArgumentException("packing [" + x.rows + ", " + x.cols + "] into [" + n + ", " + cols + "]");
            int v = vectors(cols), nb = cols / 32;
            // a vision layer's batch (thousands of patches) is packed over the pool, in token ranges of ≥ 64 KB; a
            // prompt's in one call, as before
            Parallel.forRange(n, Math.max(1, (1 << 16) / cols), (t0, t1) -> {
                try {
                    PACK.invokeExact(x.q8Segment.asSlice((long) t0 * cols), x.dSegment.asSlice(4L * t0 * nb),
                            x.s8Segment.asSlice(4L * t0 * nb), t1 - t0, cols, xp.asSlice((long) t0 * v * 32),
                            xd.asSlice(4L * t0 * v), xs.asSlice(4L * t0 * v));
                } catch (Throwable t) {
                    throw t instanceof RuntimeException r ? r : new IllegalStateException(t);
                }
            });
        }
    }

    /**
     * A tile of the batched product, on the calling thread: y[yo + (t − t0)·ldy + (r − r0)] = Σ_c W[r, c]·x'_t[c] for
     * rows r in [r0, r1) of w (rows of rowBytes bytes from byte 0) and tokens t in [t0, t1) of x. The same kernel as
     * {@link #gemm} over slices (the weight rows from r0, the packed tokens from t0, y from yo), so each value equals
     * the matvec kernel's bit for bit. Callers keep a tile to milliseconds of work (a critical call).
     */
    static void gemmTile(DType type, MemorySegment w, long rowBytes, int r0, int r1, PackedActivations x, int t0, int t1,
                         float[] y, int yo, int ldy, Isa isa) {
        if (!isa.supported()) throw new IllegalStateException("this CPU has no " + isa.id() + " kernels");
        int v = PackedActivations.vectors(x.cols);
        if (r0 < 0 || r1 < r0 || t0 < 0 || t1 < t0 || t1 > x.n || w.byteSize() < r1 * rowBytes) {
            throw new IndexOutOfBoundsException("GEMM tile rows [" + r0 + ", " + r1 + ") tokens [" + t0 + ", " + t1 + ") of " + x.n);
        }
        if (t1 == t0 || r1 == r0) return;
        if (yo < 0 || ldy < r1 - r0 || (long) yo + (long) (t1 - t0 - 1) * ldy + (r1 - r0) > y.length) {
            throw new IndexOutOfBoundsException("GEMM tile: y [" + y.length + "] too short for " + (t1 - t0) + " rows of stride " + ldy + " from " + yo);
        }
        MemorySegment ws = w.asSlice(r0 * rowBytes), ys = MemorySegment.ofArray(y).asSlice(4L * yo);
        MemorySegment xp = x.xp.asSlice((long) t0 * v * 32), xd = x.xd.asSlice(4L * t0 * v), xs = x.xs.asSlice(4L * t0 * v);
        callGemm(type, isa, ws, 0, r1 - r0, x.cols, xp, xd, xs, t1 - t0, ys, ldy);
    }

    /**
     * y[t·ldy + r] = Σ_c W[r, c]·x'_t[c] for r in [r0, r1), t in [0, n): the batched form of {@link #matvec}, in the
     * form {@code isa}. Only when {@link #AVAILABLE}, cols ≤ {@link #MAX_COLS}. Each result equals the matvec kernel's
     * bit for bit.
     */
    static void gemm(DType type, MemorySegment w, int r0, int r1, PackedActivations x, float[] y, int ldy, Isa isa) {
        callGemm(type, isa, w, r0, r1, x.cols, x.xp, x.xd, x.xs, x.n, MemorySegment.ofArray(y), ldy);
    }

    /**
     * The native batched product over weight rows [r0, r1) of {@code w} and {@code n} packed tokens, by weight type and
     * instruction set: kv_gemm_q4_0 / kv_gemm_q8_0 (AVX2), kv_gemm_q8_0_vnni (AVX-VNNI, Q8_0 only), kv_gemm_q4_0_512 /
     * kv_gemm_q5_0_512 / kv_gemm_q8_0_512 / kv_gemm_q4_k_512 (AVX-512 VNNI); the block sums {@code xs} only where the kernel corrects by
     * them.
     */
    private static void callGemm(DType type, Isa isa, MemorySegment w, int r0, int r1, int cols, MemorySegment xp, MemorySegment xd,
                                 MemorySegment xs, int n, MemorySegment y, int ldy) {
        int rc;
        try {
            if (type == DType.Q4_0 && isa == Isa.AVX512) {
                rc = (int) GEMM_Q4_0_512.invokeExact(w, r0, r1, cols, xp, xd, xs, n, y, ldy);
            } else if (type == DType.Q4_0) {
                rc = (int) GEMM_Q4_0.invokeExact(w, r0, r1, cols, xp, xd, xs, n, y, ldy);
            } else if (type == DType.Q5_0 && isa == Isa.AVX512) {
                rc = (int) GEMM_Q5_0_512.invokeExact(w, r0, r1, cols, xp, xd, xs, n, y, ldy);
            } else if (type == DType.Q4_K && isa == Isa.AVX512) {
                rc = (int) GEMM_Q4_K_512.invokeExact(w, r0, r1, cols, xp, xd, xs, n, y, ldy);
            } else if (type == DType.Q8_0 && isa == Isa.AVX512) {
                rc = (int) GEMM_Q8_0_512.invokeExact(w, r0, r1, cols, xp, xd, xs, n, y, ldy);
            } else if (type == DType.Q8_0 && isa == Isa.AVX_VNNI) {
                rc = (int) GEMM_Q8_0_VNNI.invokeExact(w, r0, r1, cols, xp, xd, xs, n, y, ldy);
            } else if (type == DType.Q8_0) {
                rc = (int) GEMM_Q8_0.invokeExact(w, r0, r1, cols, xp, xd, n, y, ldy);
            } else {
                throw new IllegalArgumentException("native packed GEMM needs Q4_0 or Q8_0 (or Q5_0, Q4_K in the AVX-512 form), not " + type + " in " + isa.id());
            }
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
        if (rc != 0) throw new IllegalArgumentException("native GEMM refused " + cols + " columns (at most " + MAX_COLS + ")");
    }

    /**
     * Weight-absorbed MLA decode over cache positions [j0, j1) for heads rows q[qo + h·w ..] (h in [0, heads)):
     * updates the online-softmax state m [heads], l [heads], o [heads·r] in place (see model.LatentAttention).
     * Returns false, touching nothing, when the native kernels are not loaded or the shapes are not supported
     * (heads % 4, w % 8, r % 16, heads ≤ 64).
     */
    public static boolean latentAttention(float[] q, int qo, float[] lat, int w, int r, int heads, int j0, int j1, float scale,
                                          float[] m, float[] l, float[] o) {
        return latentAttention(q, qo, lat, w, r, heads, j0, j1, scale, m, l, o, BEST);
    }

    /** {@link #latentAttention} in the form {@code isa} (the AVX-512 one gives the same results bit for bit). */
    public static boolean latentAttention(float[] q, int qo, float[] lat, int w, int r, int heads, int j0, int j1, float scale,
                                          float[] m, float[] l, float[] o, Isa isa) {
        return latent(isa == Isa.AVX512 ? LATENT_512 : LATENT, q, qo, MemorySegment.ofArray(lat), lat.length, w, r, heads, j0, j1, scale, m, l, o);
    }

    /** {@link #latentAttention} over an f16 latent cache (IEEE half bits, same layout). */
    public static boolean latentAttentionF16(float[] q, int qo, short[] lat, int w, int r, int heads, int j0, int j1, float scale,
                                             float[] m, float[] l, float[] o) {
        return latentAttentionF16(q, qo, lat, w, r, heads, j0, j1, scale, m, l, o, BEST);
    }

    /** {@link #latentAttentionF16} in the form {@code isa}. */
    public static boolean latentAttentionF16(float[] q, int qo, short[] lat, int w, int r, int heads, int j0, int j1, float scale,
                                             float[] m, float[] l, float[] o, Isa isa) {
        return latent(isa == Isa.AVX512 ? LATENT_F16_512 : LATENT_F16, q, qo, MemorySegment.ofArray(lat), lat.length, w, r, heads, j0, j1,
                scale, m, l, o);
    }

    /**
     * {@link #latentAttention} over a bf16 latent cache (the top 16 bits of each f32, same layout) in vdpbf16ps: the
     * queries and the softmax weights rounded to bf16 for the products, so its results are close to, not equal to, the
     * f32 kernel's over the widened cache. False (nothing done) where the CPU lacks AVX512-BF16 ({@link #BF16}) or the
     * kernel declines the shape (heads % 4, width even and ≤ 576, R % 32 == 0).
     */
    public static boolean latentAttentionBf16(float[] q, int qo, short[] lat, int w, int r, int heads, int j0, int j1, float scale,
                                              float[] m, float[] l, float[] o) {
        if (!BF16 || r % 32 != 0 || w > 576) return false;
        return latent(LATENT_BF16_512, q, qo, MemorySegment.ofArray(lat), lat.length, w, r, heads, j0, j1, scale, m, l, o);
    }

    /**
     * {@link #latentAttention} over a bf16 cache widened to f32 (kv_latent_attention_bf16, AVX2): the f32 kernel's
     * float work on the widened values, for CPUs without AVX512-BF16. False where the library is not loaded or the
     * shape is not taken (as {@link #latentAttention}).
     */
    public static boolean latentAttentionBf16Widened(float[] q, int qo, short[] lat, int w, int r, int heads, int j0, int j1, float scale,
                                                     float[] m, float[] l, float[] o) {
        return latent(LATENT_BF16, q, qo, MemorySegment.ofArray(lat), lat.length, w, r, heads, j0, j1, scale, m, l, o);
    }

    /** One of the latent-attention entry points (a call takes microseconds to milliseconds: a non-constant handle is fine). */
    private static boolean latent(MethodHandle kernel, float[] q, int qo, MemorySegment lat, int latLength, int w, int r, int heads,
                                  int j0, int j1, float scale, float[] m, float[] l, float[] o) {
        if (!AVAILABLE || heads % 4 != 0 || w % 8 != 0 || r % 16 != 0 || heads > 64 || r > w) return false;
        if (qo < 0 || (long) qo + (long) heads * w > q.length || j0 < 0 || j1 < j0 || (long) j1 * w > latLength
                || m.length < heads || l.length < heads || (long) heads * r > o.length) {
            throw new IndexOutOfBoundsException("latent attention: arrays too short for " + heads + " heads, width " + w + ", positions " + j1);
        }
        int rc;
        try {
            rc = (int) kernel.invokeExact(MemorySegment.ofArray(q), qo, lat, w, r, heads, j0, j1, scale,
                    MemorySegment.ofArray(m), MemorySegment.ofArray(l), MemorySegment.ofArray(o));
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
        return rc == 0;
    }

    /**
     * Causal prompt attention for one head (decompressed MLA; kv_mha_causal): {@code rows} query rows at
     * q[qo + i·qs ..] (d wide) over key rows k[ko + j·ks ..] (d wide) and value rows v[vo + j·vs ..] (r wide), j in
     * [j0, j1); row i sees keys j ≤ maskBase + i. Online-softmax state m, l [rows], o [rows·r] updated in place. False
     * (nothing done) when the library is unavailable or the shape unsupported (rows % 4, rows ≤ 64, d % 8, d ≤ 576,
     * r % 16).
     */
    public static boolean mhaCausal(float[] q, int qo, int qs, int d, float[] k, int ko, int ks, float[] v, int vo, int vs, int r,
                                    int rows, int j0, int j1, float scale, int maskBase, float[] m, float[] l, float[] o) {
        return mhaCausal(q, qo, qs, d, k, ko, ks, v, vo, vs, r, rows, j0, j1, scale, maskBase, m, l, o, BEST);
    }

    /** {@link #mhaCausal} in the form {@code isa} (the AVX-512 one gives the same results bit for bit). */
    public static boolean mhaCausal(float[] q, int qo, int qs, int d, float[] k, int ko, int ks, float[] v, int vo, int vs, int r,
                                    int rows, int j0, int j1, float scale, int maskBase, float[] m, float[] l, float[] o, Isa isa) {
        if (!AVAILABLE || rows % 4 != 0 || rows > 64 || d % 8 != 0 || d > 576 || r % 16 != 0) return false;
        if (qo < 0 || (long) qo + (long) (rows - 1) * qs + d > q.length || j0 < 0 || j1 < j0
                || (j1 > j0 && ((long) ko + (long) (j1 - 1) * ks + d > k.length || (long) vo + (long) (j1 - 1) * vs + r > v.length))
                || m.length < rows || l.length < rows || (long) rows * r > o.length || ko < 0 || vo < 0) {
            throw new IndexOutOfBoundsException("causal attention: arrays too short for " + rows + " rows, width " + d + ", positions " + j1);
        }
        int rc;
        try {
            MethodHandle kernel = isa == Isa.AVX512 ? MHA_512 : MHA;
            rc = (int) kernel.invokeExact(MemorySegment.ofArray(q), qo, qs, d, MemorySegment.ofArray(k).asSlice(4L * ko), ks,
                    MemorySegment.ofArray(v).asSlice(4L * vo), vs, r, rows, j0, j1, scale, maskBase,
                    MemorySegment.ofArray(m), MemorySegment.ofArray(l), MemorySegment.ofArray(o));
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
        return rc == 0;
    }

    /**
     * n keys k[j·ks ..] (width d, even) and values v[j·vs ..] (width r) of one head as bf16 in kv_mha_causal_bf16_512's
     * layouts: kt [⌈n/16⌉][d/2][16] (a group of 16 positions, pair p = columns 2p, 2p + 1, one int per position, zero
     * past n), vp [⌈n/2⌉][r] (the pair (v[2P][c], v[2P + 1][c]) per int, a missing odd partner zero).
     */
    public static void packKeysValuesBf16(float[] k, int ks, int d, float[] v, int vs, int r, int n, int[] kt, int[] vp) {
        if (PACK_KV_BF16 == null) throw new IllegalStateException("no AVX512-BF16 kernels here (" + STATUS + ")");
        long groups = (n + 15) / 16, pairs = (n + 1) / 2;
        if (d % 2 != 0 || n < 0 || (n > 0 && ((long) (n - 1) * ks + d > k.length || (long) (n - 1) * vs + r > v.length))
                || groups * 16 * (d / 2) > kt.length || pairs * r > vp.length) {
            throw new IndexOutOfBoundsException("bf16 key/value packing: arrays too short for " + n + " positions, widths " + d + ", " + r);
        }
        try {
            int rc = (int) PACK_KV_BF16.invokeExact(MemorySegment.ofArray(k), ks, d, MemorySegment.ofArray(v), vs, r, n,
                    MemorySegment.ofArray(kt), MemorySegment.ofArray(vp));
            if (rc != 0) throw new IllegalStateException("kv_pack_kv_bf16 returned " + rc);
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
    }

    /**
     * {@link #mhaCausal} over keys and values packed by {@link #packKeysValuesBf16} (j0 % 16 == 0), in vdpbf16ps: the
     * queries and weights rounded to bf16 for the products. False where the CPU lacks AVX512-BF16 or the shape is not
     * taken (rows % 4, rows ≤ 64, d even ≤ 576, r % 16 == 0, r ≤ 512).
     */
    public static boolean mhaCausalBf16(float[] q, int qo, int qs, int d, int[] kt, int[] vp, int r, int rows, int j0, int j1,
                                        float scale, int maskBase, float[] m, float[] l, float[] o) {
        if (MHA_BF16_512 == null || rows % 4 != 0 || rows > 64 || d % 2 != 0 || d > 576 || r % 16 != 0 || r > 512 || j0 % 16 != 0) return false;
        if (qo < 0 || (long) qo + (long) (rows - 1) * qs + d > q.length || j0 < 0 || j1 < j0
                || (long) (j1 + 15) / 16 * 16 * (d / 2) > kt.length || (long) (j1 + 1) / 2 * r > vp.length
                || m.length < rows || l.length < rows || (long) rows * r > o.length) {
            throw new IndexOutOfBoundsException("bf16 causal attention: arrays too short for " + rows + " rows, width " + d + ", positions " + j1);
        }
        try {
            return (int) MHA_BF16_512.invokeExact(MemorySegment.ofArray(q), qo, qs, d, MemorySegment.ofArray(kt), MemorySegment.ofArray(vp),
                    r, rows, j0, j1, scale, maskBase, MemorySegment.ofArray(m), MemorySegment.ofArray(l), MemorySegment.ofArray(o)) == 0;
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
    }

    /** Reads the bytes of s as fast as one core can (the bench's bandwidth probe); returns a checksum. */
    public static long streamRead(MemorySegment s) {
        if (!AVAILABLE) throw new IllegalStateException(STATUS);
        try {
            return (long) STREAM.invokeExact(s, s.byteSize() & ~127L);
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
    }
}
