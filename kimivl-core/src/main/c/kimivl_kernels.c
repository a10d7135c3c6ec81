/*
 * kimivl native kernels: the quantized matrix-vector products of token decode, for x86-64 with AVX2 + FMA + F16C.
 *
 * Why native: on AVX2 the Java Vector API has no byte multiply-add (vpmaddubsw / vpmaddwd), so the Java kernels
 * (dev.kimivl.tensor.QuantMatrix) widen bytes to shorts and ints, and C2 adds bounds checks and spills around
 * them: ~35 instructions per 32-weight block, about 2.5x what one core can afford at memory speed. These kernels
 * take ~9 per block. Java loads this library through FFM (dev.kimivl.tensor.NativeKernels) and keeps the Vector
 * API kernels as the fallback and as the reference the tests compare against.
 *
 * Numerics are those of the Java integer kernels: activations rounded to int8 blocks of 32 (llama.cpp's q8_0),
 * exact integer dot products per block, one float multiply-add per block with scale d_w * d_x. Only the float
 * summation order differs.
 *
 * Built by Maven (kimivl-core/pom.xml, profile "native") with gcc; every function needing AVX2 carries the target
 * attribute, so the file compiles without -mavx2 and kv_cpu_ok() can run on any x86-64.
 */
#include <stdint.h>
#include <string.h>
#include <cpuid.h>
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2,fma,f16c")))

/** ABI version: NativeKernels refuses a library whose version differs from the one it was written for. */
int32_t kv_version(void) { return 1; }

/** 1 when this CPU and OS support AVX2, FMA and F16C (with the YMM state enabled by the OS), else 0. */
int32_t kv_cpu_ok(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    int fma = (c >> 12) & 1, osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, f16c = (c >> 29) & 1;
    if (!(fma && osxsave && avx && f16c)) return 0;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 6) != 6) return 0;                       /* XMM and YMM state saved by the OS */
    if (__get_cpuid_max(0, 0) < 7) return 0;
    __cpuid_count(7, 0, a, b, c, d);
    return (b >> 5) & 1;                               /* AVX2 */
}

/* [Σ a0, Σ a1, ..., Σ a7]: the 8 int32 lanes of each of 8 vectors summed, one vector out (~9 instructions). */
AVX2 static inline __m256i sum8x8(__m256i a0, __m256i a1, __m256i a2, __m256i a3,
                                   __m256i a4, __m256i a5, __m256i a6, __m256i a7) {
    __m256i h01 = _mm256_hadd_epi32(a0, a1), h23 = _mm256_hadd_epi32(a2, a3);
    __m256i h45 = _mm256_hadd_epi32(a4, a5), h67 = _mm256_hadd_epi32(a6, a7);
    __m256i h0123 = _mm256_hadd_epi32(h01, h23), h4567 = _mm256_hadd_epi32(h45, h67);
    return _mm256_add_epi32(_mm256_permute2x128_si256(h0123, h4567, 0x20), _mm256_permute2x128_si256(h0123, h4567, 0x31));
}

AVX2 static inline int32_t hsum_i32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}

AVX2 static inline float hsum_f32(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline uint16_t load_u16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }

/* The f16 scales of 8 consecutive blocks (stride bytes apart) as 8 floats. */
AVX2 static inline __m256 scales8(const uint8_t *p, int stride) {
    __m128i h = _mm_cvtsi32_si128(load_u16(p));
    h = _mm_insert_epi16(h, load_u16(p + stride), 1);
    h = _mm_insert_epi16(h, load_u16(p + 2 * stride), 2);
    h = _mm_insert_epi16(h, load_u16(p + 3 * stride), 3);
    h = _mm_insert_epi16(h, load_u16(p + 4 * stride), 4);
    h = _mm_insert_epi16(h, load_u16(p + 5 * stride), 5);
    h = _mm_insert_epi16(h, load_u16(p + 6 * stride), 6);
    h = _mm_insert_epi16(h, load_u16(p + 7 * stride), 7);
    return _mm256_cvtph_ps(h);
}

AVX2 static inline float scale1(const uint8_t *p) { return _cvtsh_ss(load_u16(p)); }

/* ---------------------------------------------------------------- Q4_0: 2-byte f16 d, 16 bytes of nibbles (18 B) */

/* Σ q·x over one Q4_0 block as 8 int32 partial sums, q the unsigned nibble 0..15 (the −8 is applied per block
 * through the activation block sums). Low nibbles are elements 0-15, high nibbles 16-31 (llama.cpp's layout). */
AVX2 static inline __m256i q4_dot(const uint8_t *qs, const int8_t *x) {
    const __m256i m0f = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1);
    __m128i raw = _mm_loadu_si128((const __m128i *) qs);
    __m256i q = _mm256_and_si256(_mm256_inserti128_si256(_mm256_castsi128_si256(raw), _mm_srli_epi16(raw, 4), 1), m0f);
    /* unsigned 0..15 times signed −127..127: pair sums ≤ 3810, no saturation */
    return _mm256_madd_epi16(_mm256_maddubs_epi16(q, _mm256_loadu_si256((const __m256i *) x)), ones);
}

AVX2 static float q4_row(const uint8_t *w, int nb, const int8_t *xq, const float *xd, const int32_t *xs8) {
    __m256 acc = _mm256_setzero_ps();
    int b = 0;
    for (; b + 8 <= nb; b += 8) {
        const uint8_t *p = w + 18 * b;
        const int8_t *x = xq + 32 * b;
        __m256i s = sum8x8(q4_dot(p + 2, x), q4_dot(p + 20, x + 32), q4_dot(p + 38, x + 64), q4_dot(p + 56, x + 96),
                           q4_dot(p + 74, x + 128), q4_dot(p + 92, x + 160), q4_dot(p + 110, x + 192), q4_dot(p + 128, x + 224));
        s = _mm256_sub_epi32(s, _mm256_loadu_si256((const __m256i *) (xs8 + b)));     /* Σ (q − 8)·x */
        __m256 dd = _mm256_mul_ps(scales8(p, 18), _mm256_loadu_ps(xd + b));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), dd, acc);
    }
    float y = hsum_f32(acc);
    for (; b < nb; b++) {
        const uint8_t *p = w + 18 * b;
        y += scale1(p) * xd[b] * (float) (hsum_i32(q4_dot(p + 2, xq + 32 * b)) - xs8[b]);
    }
    return y;
}

/**
 * y[yo + r] = Σ_c W[r, c]·x'[c] for rows r in [r0, r1) of a Q4_0 matrix of cols columns whose row r starts at
 * w + woff + r·(cols / 32)·18. x' is the quantized activation: xq int8[cols], xd float[cols / 32] (its block
 * scales), xs8 int32[cols / 32] (8 × the sum of each block's xq).
 */
AVX2 void kv_matvec_q4_0(const uint8_t *w, int64_t woff, int32_t r0, int32_t r1, int32_t cols,
                         const int8_t *xq, const float *xd, const int32_t *xs8, float *y, int32_t yo) {
    int nb = cols / 32;
    int64_t rb = (int64_t) nb * 18;
    for (int32_t r = r0; r < r1; r++) y[yo + r] = q4_row(w + woff + r * rb, nb, xq, xd, xs8);
}

/* ---------------------------------------------------------------- Q8_0: 2-byte f16 d, 32 int8 (34 B) */

AVX2 static inline __m256i q8_dot(const int8_t *qs, const int8_t *x) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i w = _mm256_loadu_si256((const __m256i *) qs), v = _mm256_loadu_si256((const __m256i *) x);
    /* |w| (unsigned, ≤ 128) times x with w's sign: pair sums ≤ 2·128·127 = 32512, no saturation */
    return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(v, w)), ones);
}

AVX2 static float q8_row(const uint8_t *w, int nb, const int8_t *xq, const float *xd) {
    __m256 acc = _mm256_setzero_ps();
    int b = 0;
    for (; b + 8 <= nb; b += 8) {
        const uint8_t *p = w + 34 * b;
        const int8_t *q = (const int8_t *) p, *x = xq + 32 * b;
        __m256i s = sum8x8(q8_dot(q + 2, x), q8_dot(q + 36, x + 32), q8_dot(q + 70, x + 64), q8_dot(q + 104, x + 96),
                           q8_dot(q + 138, x + 128), q8_dot(q + 172, x + 160), q8_dot(q + 206, x + 192), q8_dot(q + 240, x + 224));
        __m256 dd = _mm256_mul_ps(scales8(p, 34), _mm256_loadu_ps(xd + b));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), dd, acc);
    }
    float y = hsum_f32(acc);
    for (; b < nb; b++) {
        const uint8_t *p = w + 34 * b;
        y += scale1(p) * xd[b] * (float) hsum_i32(q8_dot((const int8_t *) p + 2, xq + 32 * b));
    }
    return y;
}

/** As kv_matvec_q4_0 for a Q8_0 matrix (rows of (cols / 32)·34 bytes); no block sums needed. */
AVX2 void kv_matvec_q8_0(const uint8_t *w, int64_t woff, int32_t r0, int32_t r1, int32_t cols,
                         const int8_t *xq, const float *xd, float *y, int32_t yo) {
    int nb = cols / 32;
    int64_t rb = (int64_t) nb * 34;
    for (int32_t r = r0; r < r1; r++) y[yo + r] = q8_row(w + woff + r * rb, nb, xq, xd);
}
