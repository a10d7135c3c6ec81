/*
 * The float32 micro-kernels of the packed GEMM (dev.kimivl.tensor.PackedGemm: prefill of float weights, MoonViT,
 * every training product, Muon's Newton-Schulz iterations), one k-block of a row block per call.
 *
 * Why native: the Java Vector API form of the 12x16 tile (MicroKernel.rows12x16) runs at ~75% of the FMA peak of a
 * Zen 4 core (86.6 of ~116 GFLOP/s, kc = 256, in cache); the same tile written here runs at the peak. The floats are
 * the Java tiles' exactly: each element of C is an FMA chain over k = 0..kc-1 starting from zero (weight row value
 * broadcast, times the input), added to what the tile held before when `load` is set. The tile shape (12 or 6 rows,
 * 8 or 16 lanes) does not change any element's chain, so these and the Java tiles give the same bits
 * (PackedGemmTest compares them).
 *
 * Layouts (PackedGemm.block):
 *   a   the row block's k-block: [mg*6 rows][lda floats], columns 0..kc-1 used (rows past the matrix are zeros)
 *   xp  the inputs' packed panels at this k-block: panel g starts at xp + g*panel_stride, then kc x 16 floats
 *       (16 inputs contiguous per k)
 *   c   the tiles: panel g, 6-row group ir at c + g*ldc + ir*6*16, [6 rows][16 inputs]
 *   lower, diag  with lower set, 6-row groups wholly above the diagonal (every row < the panel's first input: a Gram
 *       matrix's upper half) are skipped, from an even group on in the 512-bit form (PackedGemm's `first & ~1`); diag
 *       is the block's first row minus 16 x the index of panel 0 of this call in the whole product
 */
#include "kimivl_common.h"

#define AVX512 __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq")))
#define ALWAYS_INLINE __attribute__((always_inline)) inline

/*
 * R = 12 or 6 rows x 16 inputs in R zmm accumulators: R FMAs per input vector load and R broadcasts. R is a constant
 * at each call, so the loops unroll and the accumulators stay in registers.
 */
AVX512 static ALWAYS_INLINE void tile_x16(const int R, const float *a, int lda, const float *b, int kc, float *c, int load) {
    __m512 acc[12];
    for (int i = 0; i < R; i++) acc[i] = _mm512_setzero_ps();
    for (int k = 0; k < kc; k++) {
        __m512 b0 = _mm512_loadu_ps(b + 16 * k);
        for (int i = 0; i < R; i++) acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(a[i * lda + k]), b0, acc[i]);
    }
    for (int i = 0; i < R; i++) {
        __m512 v = load ? _mm512_add_ps(acc[i], _mm512_loadu_ps(c + 16 * i)) : acc[i];
        _mm512_storeu_ps(c + 16 * i, v);
    }
}

/* The first 6-row group a panel needs: all of them, or with lower set from the diagonal on (see the header). */
static inline int first_group(int g, int lower, int diag) {
    if (!lower) return 0;
    int f = (g * 16 - diag) / 6;                  /* truncates towards zero, as Java's division does */
    return f > 0 ? f : 0;
}

/* One panel's row groups from 6-row group `first` on, 512-bit: 12-row pairs from an even group, then a lone 6 rows. */
AVX512 static void panel_512(const float *a, int lda, int mg, int first, const float *b, int kc, float *cg, int load) {
    int ir = first & ~1;
    for (; ir + 2 <= mg; ir += 2) tile_x16(12, a + (long) ir * 6 * lda, lda, b, kc, cg + ir * 96, load);
    if (ir < mg) tile_x16(6, a + (long) ir * 6 * lda, lda, b, kc, cg + ir * 96, load);
}

/* AVX2: 6 rows x 16 inputs in 12 ymm accumulators (MicroKernel.rows6x16's shape). */
AVX2 static ALWAYS_INLINE void tile6x16(const float *a, int lda, const float *b, int kc, float *c, int load) {
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    const float *a1 = a + lda, *a2 = a + 2 * lda, *a3 = a + 3 * lda, *a4 = a + 4 * lda, *a5 = a + 5 * lda;
    for (int k = 0; k < kc; k++) {
        __m256 b0 = _mm256_loadu_ps(b + 16 * k), b1 = _mm256_loadu_ps(b + 16 * k + 8), v;
        v = _mm256_broadcast_ss(a + k);  c00 = _mm256_fmadd_ps(v, b0, c00); c01 = _mm256_fmadd_ps(v, b1, c01);
        v = _mm256_broadcast_ss(a1 + k); c10 = _mm256_fmadd_ps(v, b0, c10); c11 = _mm256_fmadd_ps(v, b1, c11);
        v = _mm256_broadcast_ss(a2 + k); c20 = _mm256_fmadd_ps(v, b0, c20); c21 = _mm256_fmadd_ps(v, b1, c21);
        v = _mm256_broadcast_ss(a3 + k); c30 = _mm256_fmadd_ps(v, b0, c30); c31 = _mm256_fmadd_ps(v, b1, c31);
        v = _mm256_broadcast_ss(a4 + k); c40 = _mm256_fmadd_ps(v, b0, c40); c41 = _mm256_fmadd_ps(v, b1, c41);
        v = _mm256_broadcast_ss(a5 + k); c50 = _mm256_fmadd_ps(v, b0, c50); c51 = _mm256_fmadd_ps(v, b1, c51);
    }
    __m256 acc[12] = {c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51};
    for (int i = 0; i < 12; i++) {
        __m256 v = load ? _mm256_add_ps(acc[i], _mm256_loadu_ps(c + 8 * i)) : acc[i];
        _mm256_storeu_ps(c + 8 * i, v);
    }
}

/* One panel's row groups from 6-row group `first` on, 8-lane: 6 rows at a time. */
AVX2 static void panel_256(const float *a, int lda, int mg, int first, const float *b, int kc, float *cg, int load) {
    for (int ir = first; ir < mg; ir++) tile6x16(a + (long) ir * 6 * lda, lda, b, kc, cg + ir * 96, load);
}

/*
 * The entry point: wide = 1 takes the 512-bit tiles (only where the CPU has AVX-512: NativeKernels checks), 0 the
 * 8-lane ones. Both compute the same floats (the header).
 */
int32_t kv_sgemm_kblock(int32_t wide, const float *a, int32_t ao, int32_t lda, int32_t mg, int32_t kc,
                        const float *xp, int32_t xo, int32_t panel_stride, int32_t groups,
                        float *c, int32_t co, int32_t ldc, int32_t load, int32_t lower, int32_t diag) {
    if (mg <= 0 || kc <= 0 || groups <= 0) return 0;
    void (*panel)(const float *, int, int, int, const float *, int, float *, int) = wide ? panel_512 : panel_256;
    a += ao; xp += xo; c += co;
    for (int g = 0; g < groups; g++) panel(a, lda, mg, first_group(g, lower, diag), xp + (long) g * panel_stride, kc, c + (long) g * ldc, load);
    return 0;
}

/*
 * The bf16 form of the tiles, for training products that opt into it (Gemm.Products.BF16; a recipe's "products"):
 * vdpbf16ps multiplies pairs of bf16 values and adds both products to f32 accumulators, twice the multiply-adds per
 * instruction of the f32 FMA (one Zen 5 core, 12x16 tiles in cache: 450 against 220 GFLOP/s). Each operand is rounded
 * to bf16 (nearest, ties to even) once; products and sums stay f32, as PyTorch's bf16 autocast products do. So these
 * floats are not the f32 tiles': a different precision, chosen per run, not a faster way to the same bits.
 *
 * Layouts (besides kv_sgemm_kblock's):
 *   xpb  the inputs' panels as k-pairs: panel g, pair p holds 16 dwords, dword j = (bf16 of input j at k = 2p in the
 *        low half, at k = 2p + 1 in the high half), ⌈cols/2⌉ pairs a panel, k past cols as zero (kv_bf16_panels)
 *   a    as kv_sgemm_kblock's, converted here to bf16 pairs per call: row i, pair p = (a[i][2p], a[i][2p + 1])
 */
#define AVX512BF16 __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))
/* The widest k-block (PackedGemm.KC) and the most rows of one call's block (PackedGemm.MC): the bf16 copy of the
 * block lives on the stack. */
#define BF16_KC 256
#define BF16_ROWS 96

/* Word index for the pair interleave: out word 2j = row k's input j (word j), out word 2j + 1 = row k+1's (word 16 + j). */
AVX512BF16 static inline __m512i pair_index(void) {
    static const uint16_t idx[32] = {0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23,
                                     8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
    return _mm512_loadu_si512(idx);
}

/*
 * Panels g0..g1 of xp (f32, [groups][cols][16] from xo, panel stride cols*16) as bf16 k-pairs into out
 * ([groups][⌈cols/2⌉][16] dwords, panel g at g*⌈cols/2⌉*16): once per product, before its k-blocks.
 */
AVX512BF16 int32_t kv_bf16_panels(const float *xp, int32_t xo, int32_t cols, int32_t g0, int32_t g1, uint32_t *out) {
    if (cols <= 0) return 0;
    const __m512i idx = pair_index();
    int pairs = (cols + 1) / 2;
    xp += xo;
    for (int g = g0; g < g1; g++) {
        const float *x = xp + (int64_t) g * cols * 16;
        uint32_t *o = out + (int64_t) g * pairs * 16;
        for (int p = 0; p < pairs; p++) {
            __m512 r0 = _mm512_loadu_ps(x + 32 * p);
            __m512 r1 = 2 * p + 1 < cols ? _mm512_loadu_ps(x + 32 * p + 16) : _mm512_setzero_ps();
            __m512i words = (__m512i) _mm512_cvtne2ps_pbh(r1, r0);          /* [row k: 16 words | row k+1: 16 words] */
            _mm512_storeu_si512(o + 16 * p, _mm512_permutexvar_epi16(idx, words));
        }
    }
    return 0;
}

/* R = 12 or 6 rows x 16 inputs: one panel load and R pair broadcasts per k-pair, R vdpbf16ps. */
AVX512BF16 static ALWAYS_INLINE void tile_bf16_x16(const int R, const uint32_t *a, int ldp, const uint32_t *b, int kp, float *c, int load) {
    __m512 acc[12];
    for (int i = 0; i < R; i++) acc[i] = _mm512_setzero_ps();
    for (int p = 0; p < kp; p++) {
        __m512bh b0 = (__m512bh) _mm512_loadu_si512(b + 16 * p);
        for (int i = 0; i < R; i++) acc[i] = _mm512_dpbf16_ps(acc[i], (__m512bh) _mm512_set1_epi32((int) a[i * ldp + p]), b0);
    }
    for (int i = 0; i < R; i++) {
        __m512 v = load ? _mm512_add_ps(acc[i], _mm512_loadu_ps(c + 16 * i)) : acc[i];
        _mm512_storeu_ps(c + 16 * i, v);
    }
}

/*
 * kv_sgemm_kblock in bf16: the same block, panels, tiles and lower form, with xpb (kv_bf16_panels) for xp, its offset
 * xo and panel_stride in dwords, and the block's rows converted to bf16 pairs here. Returns 1 when the block is larger
 * than BF16_ROWS x BF16_KC (the caller's MC or KC changed), 0 otherwise.
 */
AVX512BF16 int32_t kv_sgemm_kblock_bf16(const float *a, int32_t ao, int32_t lda, int32_t mg, int32_t kc,
                                         const uint32_t *xpb, int32_t xo, int32_t panel_stride, int32_t groups,
                                         float *c, int32_t co, int32_t ldc, int32_t load, int32_t lower, int32_t diag) {
    if (mg <= 0 || kc <= 0 || groups <= 0) return 0;
    if (mg * 6 > BF16_ROWS || kc > BF16_KC) return 1;
    uint32_t ab[BF16_ROWS * BF16_KC / 2] __attribute__((aligned(64)));
    int kp = (kc + 1) / 2;
    a += ao; xpb += xo; c += co;
    for (int i = 0; i < mg * 6; i++) {
        const float *row = a + (int64_t) i * lda;
        uint32_t *dst = ab + i * kp;
        for (int k = 0; k < kc; k += 32) {
            int left = kc - k;
            __mmask16 m0 = left >= 16 ? 0xFFFF : (__mmask16) ((1u << left) - 1);
            __mmask16 m1 = left >= 32 ? 0xFFFF : left <= 16 ? 0 : (__mmask16) ((1u << (left - 16)) - 1);
            __m512i v = (__m512i) _mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(m1, row + k + 16), _mm512_maskz_loadu_ps(m0, row + k));
            int dw = left >= 32 ? 16 : (left + 1) / 2;                     /* dwords of this chunk inside the row */
            _mm512_mask_storeu_epi32(dst + k / 2, (__mmask16) (dw >= 16 ? 0xFFFF : (1u << dw) - 1), v);
        }
    }
    for (int g = 0; g < groups; g++) {
        const uint32_t *b = xpb + (int64_t) g * panel_stride;
        float *cg = c + (int64_t) g * ldc;
        int ir = first_group(g, lower, diag) & ~1;
        for (; ir + 2 <= mg; ir += 2) tile_bf16_x16(12, ab + ir * 6 * kp, kp, b, kp, cg + ir * 96, load);
        if (ir < mg) tile_bf16_x16(6, ab + ir * 6 * kp, kp, b, kp, cg + ir * 96, load);
    }
    return 0;
}
