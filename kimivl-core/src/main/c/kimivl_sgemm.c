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
