/*
 * kimivl native kernels for x86-64 with AVX2 + FMA + F16C:
 *   - kv_matvec_q4_0 / kv_matvec_q8_0: the quantized matrix-vector products of token decode;
 *   - kv_pack_act + kv_gemm_q4_0 / kv_gemm_q8_0: the same products batched over a prompt's tokens (prefill) and
 *     MoonViT's patches; kv_gemm_q8_0_vnni: Q8_0's with AVX-VNNI where the CPU has it (kv_cpu_vnni), same results;
 *   - kv_latent_attention(_f16): weight-absorbed MLA attention over the f32 or f16 latent KV cache (decode, short
 *     prompts);
 *   - kv_mha_causal: causal attention over decompressed per-head keys and values (prompt processing);
 *   - kv_stream_read: the memory-bandwidth probe of `kimivl bench`;
 * and, in kimivl_kquants.c, the matvec and batched products of the other ggml formats (Q4_K, Q5_K, Q6_K, Q4_1, Q5_0,
 * Q5_1). Helpers both use are in kimivl_common.h.
 *
 * Why native: on AVX2 the Java Vector API has no byte multiply-add (vpmaddubsw / vpmaddwd), so the Java kernels
 * (dev.kimivl.tensor.QuantMatrix) widen bytes to shorts and ints, and C2 adds bounds checks and spills around
 * them: ~35 instructions per 32-weight block, about 2.5x what one core can afford at memory speed; these take ~7-9.
 * Java loads this library through FFM (dev.kimivl.tensor.NativeKernels) and keeps the Vector API kernels as the
 * fallback and as the reference the tests compare against (NativeKernelsTest, LatentAttentionTest).
 *
 * Numerics are those of the Java integer kernels: activations rounded to int8 blocks of 32 (llama.cpp's q8_0),
 * exact integer dot products per block, one float multiply-add per block with scale d_w * d_x. Only the float
 * summation order differs; the GEMM gives the matvec's results bit for bit.
 *
 * Built by Maven (kimivl-core/pom.xml, profile "native") with gcc; every function needing AVX2 carries the target
 * attribute, so the file compiles without -mavx2 and kv_cpu_ok() can run on any x86-64. Callers bound each call to
 * milliseconds of work: FFM critical calls hold off the JVM's safepoints while they run.
 */
#include <stdint.h>
#include <string.h>
#include <math.h>
#include <cpuid.h>
#include <immintrin.h>
#include "kimivl_common.h"


/** ABI version: NativeKernels refuses a library whose version differs from the one it was written for. */
int32_t kv_version(void) { return 19; }

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

/**
 * 1 when this CPU also has AVX-VNNI (VEX-encoded vpdpbusd on ymm registers: CPUID.(EAX=7, ECX=1):EAX bit 4; Zen 5,
 * Alder Lake and later), for kv_gemm_q8_0_vnni; else 0.
 */
int32_t kv_cpu_vnni(void) {
    if (!kv_cpu_ok()) return 0;
    unsigned a, b, c, d;
    __cpuid_count(7, 1, a, b, c, d);
    return (a >> 4) & 1;
}

AVX2 static inline int32_t hsum_i32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}

AVX2 static inline float scale1(const uint8_t *p) { return _cvtsh_ss(load_u16(p)); }

/*
 * Rows of exactly 4 blocks (128 columns: attn_k_b, per head) two at a time: two consecutive rows are one contiguous
 * group of 8 blocks, so one sum8x8 and one scales8 serve both. Each row's result is bit-identical to the one-row
 * path: lanes 0-3 hold row r's products (fmadd onto zero = the product), lanes 4-7 row r + 1's, and each half is
 * summed in hsum_f32's order ((a0 + a2) + (a1 + a3), after adding the +0 of the empty upper lanes). Measured
 * (C harness, one thread, in cache): 14 ns per row one at a time (fixed costs per row), 5.6 ns in pairs.
 */
AVX2 static inline void pair_out(__m256i s, __m256 dd, float *y) {
    __m256 a = _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(s), dd), _mm256_setzero_ps());
    a = _mm256_add_ps(a, _mm256_permute_ps(a, 0x4E));
    a = _mm256_add_ps(a, _mm256_movehdup_ps(a));
    y[0] = _mm256_cvtss_f32(a);
    y[1] = _mm_cvtss_f32(_mm256_extractf128_ps(a, 1));
}

/* ---------------------------------------------------------------- Q4_0: 2-byte f16 d, 16 bytes of nibbles (18 B) */


/*
 * Blocks b and b + 4 of a group at once: their 16 nibble bytes in the two 128-bit halves of one vector, so one AND
 * and one shift+AND unpack 64 weights, and the activations come pre-arranged to match (xp: the 16 low-nibble
 * partners of both blocks, then the 16 high-nibble partners; see pair_x). Returns 8 int32: lanes 0-3 sum to block
 * b's Σ q·x, lanes 4-7 to block b + 4's.
 */
AVX2 static inline __m256i q4_pair(const uint8_t *p, const int8_t *xp) {
    const __m256i m0f = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1);
    __m256i raw = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *) (p + 2))),
                                          _mm_loadu_si128((const __m128i *) (p + 2 + 4 * 18)), 1);
    __m256i lo = _mm256_and_si256(raw, m0f), hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m0f);
    /* pair sums ≤ 2·15·127 each, two of them ≤ 7620: no 16-bit overflow */
    __m256i s = _mm256_add_epi16(_mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *) xp)),
                                 _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *) (xp + 32))));
    return _mm256_madd_epi16(s, ones);
}

/* Activations rearranged for q4_pair, whole groups of 8 blocks: per group and k = 0..3, 64 bytes =
 * x[8g+k][0..16), x[8g+k+4][0..16), x[8g+k][16..32), x[8g+k+4][16..32). */
AVX2 static void pair_x(const int8_t *xq, int groups, int8_t *xp) {
    for (int g = 0; g < groups; g++) {
        for (int k = 0; k < 4; k++) {
            const int8_t *a = xq + 32 * (8 * g + k), *b = a + 4 * 32;
            int8_t *o = xp + 256 * g + 64 * k;
            _mm_storeu_si128((__m128i *) o, _mm_loadu_si128((const __m128i *) a));
            _mm_storeu_si128((__m128i *) (o + 16), _mm_loadu_si128((const __m128i *) b));
            _mm_storeu_si128((__m128i *) (o + 32), _mm_loadu_si128((const __m128i *) (a + 16)));
            _mm_storeu_si128((__m128i *) (o + 48), _mm_loadu_si128((const __m128i *) (b + 16)));
        }
    }
}

/* xp: the activations arranged by pair_x (whole groups), xq: as given (for the last partial group). */
AVX2 static float q4_row(const uint8_t *w, int nb, const int8_t *xq, const int8_t *xp, const float *xd, const int32_t *xs8) {
    __m256 acc = _mm256_setzero_ps();
    int b = 0;
    for (; b + 8 <= nb; b += 8) {
        const uint8_t *p = w + 18 * b;
        const int8_t *x = xp + 32 * b;
        prefetch_ahead(p, 3);                          /* this group's 144 bytes, PREFETCH_AHEAD further on */
        /* per 128-bit half, two rounds of hadd leave [blocks b..b+3 | blocks b+4..b+7] in order */
        __m256i s = _mm256_hadd_epi32(_mm256_hadd_epi32(q4_pair(p, x), q4_pair(p + 18, x + 64)),
                                      _mm256_hadd_epi32(q4_pair(p + 36, x + 128), q4_pair(p + 54, x + 192)));
        s = _mm256_sub_epi32(s, _mm256_loadu_si256((const __m256i *) (xs8 + b)));     /* Σ (q − 8)·x */
        __m256 dd = _mm256_mul_ps(scales8(p, 18), _mm256_loadu_ps(xd + b));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), dd, acc);
    }
    if (b < nb) {                                      /* the last 1-7 blocks, as a group padded with zeros */
        const uint8_t *p = w + 18 * b;
        const int8_t *x = xq + 32 * b;
        __m256i z = _mm256_setzero_si256(), v[8];
        for (int i = 0; i < 8; i++) v[i] = b + i < nb ? q4_dot(p + 18 * i + 2, x + 32 * i) : z;
        acc = tail_group(sum8x8(v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]), p, 18, nb - b, xd + b, xs8 + b, acc);
    }
    return hsum_f32(acc);
}

/* Widest row of the Q4_0 matvec (its rearranged activations live on the stack; the model's widest is 11264). */
#define MATVEC_MAX_COLS 32768

/**
 * y[yo + r] = Σ_c W[r, c]·x'[c] for rows r in [r0, r1) of a Q4_0 matrix of cols columns whose row r starts at
 * w + r·(cols / 32)·18. x' is the quantized activation: xq int8[cols], xd float[cols / 32] (its block
 * scales), xs8 int32[cols / 32] (8 × the sum of each block's xq). Returns 0, or −1 (nothing written) when cols
 * exceeds MATVEC_MAX_COLS.
 */
AVX2 int32_t kv_matvec_q4_0(const uint8_t *w, int32_t r0, int32_t r1, int32_t cols,
                            const int8_t *xq, const float *xd, const int32_t *xs8, float *y, int32_t yo) {
    if (cols > MATVEC_MAX_COLS) return -1;
    int nb = cols / 32;
    int64_t rb = (int64_t) nb * 18;
    _Alignas(32) int8_t xp[MATVEC_MAX_COLS];
    pair_x(xq, nb / 8, xp);
    int32_t r = r0;
    if (nb == 4) {                                     /* two rows of 4 blocks = one group (see pair_out) */
        __m256 xd2 = _mm256_broadcast_ps((const __m128 *) xd);
        __m256i xs2 = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *) xs8));
        for (; r + 2 <= r1; r += 2) {
            const uint8_t *p = w + r * rb;
            __m256i s = sum8x8(q4_dot(p + 2, xq), q4_dot(p + 20, xq + 32), q4_dot(p + 38, xq + 64), q4_dot(p + 56, xq + 96),
                               q4_dot(p + 74, xq), q4_dot(p + 92, xq + 32), q4_dot(p + 110, xq + 64), q4_dot(p + 128, xq + 96));
            pair_out(_mm256_sub_epi32(s, xs2), _mm256_mul_ps(scales8(p, 18), xd2), y + yo + r);
        }
    }
    for (; r < r1; r++) y[yo + r] = q4_row(w + r * rb, nb, xq, xp, xd, xs8);
    return 0;
}

/* ---------------------------------------------------------------- Q8_0: 2-byte f16 d, 32 int8 (34 B) */

AVX2 static float q8_row(const uint8_t *w, int nb, const int8_t *xq, const float *xd) {
    __m256 acc = _mm256_setzero_ps();
    int b = 0;
    for (; b + 8 <= nb; b += 8) {
        const uint8_t *p = w + 34 * b;
        const int8_t *q = (const int8_t *) p, *x = xq + 32 * b;
        prefetch_ahead(p, 5);                          /* this group's 272 bytes, PREFETCH_AHEAD further on */
        __m256i s = sum8x8(q8_dot(q + 2, x), q8_dot(q + 36, x + 32), q8_dot(q + 70, x + 64), q8_dot(q + 104, x + 96),
                           q8_dot(q + 138, x + 128), q8_dot(q + 172, x + 160), q8_dot(q + 206, x + 192), q8_dot(q + 240, x + 224));
        __m256 dd = _mm256_mul_ps(scales8(p, 34), _mm256_loadu_ps(xd + b));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), dd, acc);
    }
    if (b < nb) acc = q8_tail(w, b, nb, xq, xd, acc);   /* the last 1-7 blocks, as a group padded with zeros */
    return hsum_f32(acc);
}

/** As kv_matvec_q4_0 for a Q8_0 matrix (rows of (cols / 32)·34 bytes); no block sums needed. */
AVX2 void kv_matvec_q8_0(const uint8_t *w, int32_t r0, int32_t r1, int32_t cols,
                         const int8_t *xq, const float *xd, float *y, int32_t yo) {
    int nb = cols / 32;
    int64_t rb = (int64_t) nb * 34;
    int32_t r = r0;
    if (nb == 4) {                                     /* two rows of 4 blocks = one group (see pair_out) */
        __m256 xd2 = _mm256_broadcast_ps((const __m128 *) xd);
        for (; r + 2 <= r1; r += 2) {
            const int8_t *p = (const int8_t *) (w + r * rb);
            __m256i s = sum8x8(q8_dot(p + 2, xq), q8_dot(p + 36, xq + 32), q8_dot(p + 70, xq + 64), q8_dot(p + 104, xq + 96),
                               q8_dot(p + 138, xq), q8_dot(p + 172, xq + 32), q8_dot(p + 206, xq + 64), q8_dot(p + 240, xq + 96));
            pair_out(s, _mm256_mul_ps(scales8((const uint8_t *) p, 34), xd2), y + yo + r);
        }
    }
    for (; r < r1; r++) y[yo + r] = q8_row(w + r * rb, nb, xq, xd);
}

/* ---------------------------------------------------------------- batched products (prefill) */

/*
 * The prefill GEMM works on a transposed block layout so that no horizontal sums are needed: a group of 8 blocks
 * (256 values) is stored as 8 vectors of 32 bytes, vector s holding bytes 4s..4s+3 of each of the 8 blocks (lane i =
 * block i). vpmaddubsw + vpmaddwd over the 8 vectors then leave, in int32 lane i, the dot product of block i, and
 * one multiply by the 8 block scales finishes the group. For Q4_0 the 16-bit pair sums of all 8 steps still fit in
 * int16 (8 · 2 · 15 · 127 = 30480), so one vpmaddwd per group suffices.
 *
 * Activations are packed once per matmul (kv_pack_act); each weight row is unpacked once into an L1 buffer and then
 * used for every token; tiles of 2 rows × 2 tokens share every load.
 */


/**
 * Packs n quantized activations (xq int8[n·cols], xd float[n·nb], xs8 int32[n·nb], nb = cols / 32) into the GEMM
 * layout: G = ceil(nb / 8) groups per token, transposed as above, in pairs of groups so that a 512-bit kernel reads
 * both halves of a pair with one load: P = ceil(G / 2) pairs per token, xp int8[n·P·512] with group g's vector k at
 * 512·(g / 2) + 64·k + 32·(g % 2) (gemm_x_at), xdp float[n·P·16] and xsp int32[n·P·16] (group g's 8 values at 8·g,
 * as if unpaired). Blocks past nb, and the missing half of an odd last pair, are zero (they then add nothing).
 */
AVX2 void kv_pack_act(const int8_t *xq, const float *xd, const int32_t *xs8, int32_t n, int32_t cols,
                      int8_t *xp, float *xdp, int32_t *xsp) {
    int nb = cols / 32, G = (nb + 7) / 8, P = (G + 1) / 2;
    for (int32_t t = 0; t < n; t++) {
        const int8_t *x = xq + (int64_t) t * cols;
        int8_t *o = xp + (int64_t) t * P * 512;
        for (int g = 0; g < 2 * P; g++) {
            __m256i r[8];
            for (int i = 0; i < 8; i++) {
                int b = 8 * g + i;
                r[i] = b < nb ? _mm256_loadu_si256((const __m256i *) (x + 32 * b)) : _mm256_setzero_si256();
            }
            transpose8x8(r);
            for (int k = 0; k < 8; k++) _mm256_storeu_si256((__m256i *) (o + gemm_x_at(g, k)), r[k]);
        }
        for (int b = 0; b < 16 * P; b++) {
            xdp[(int64_t) t * P * 16 + b] = b < nb ? xd[(int64_t) t * nb + b] : 0.0f;
            xsp[(int64_t) t * P * 16 + b] = b < nb ? xs8[(int64_t) t * nb + b] : 0;
        }
    }
}

/* Widest row the GEMM unpacks on the stack (the model's widest is 11264). */
#define GEMM_MAX_COLS 32768

/* Q4_0 row → transposed nibble values 0..15 (wq, G·256 bytes) and scales (ws, G·8 floats, padding zero). */
AVX2 static void unpack_q4_row(const uint8_t *p, int nb, uint8_t *wq, float *ws) {
    const __m256i m0f = _mm256_set1_epi8(0x0F);
    int G = (nb + 7) / 8;
    for (int g = 0; g < G; g++) {
        __m256i r[8];
        for (int i = 0; i < 8; i++) {
            int b = 8 * g + i;
            if (b < nb) {
                __m128i raw = _mm_loadu_si128((const __m128i *) (p + 18 * b + 2));
                r[i] = _mm256_and_si256(_mm256_inserti128_si256(_mm256_castsi128_si256(raw), _mm_srli_epi16(raw, 4), 1), m0f);
                ws[b] = scale1(p + 18 * b);
            } else {
                r[i] = _mm256_setzero_si256();
                ws[b] = 0.0f;
            }
        }
        transpose8x8(r);
        for (int k = 0; k < 8; k++) _mm256_store_si256((__m256i *) (wq + 256 * g + 32 * k), r[k]);
    }
}

/* Q8_0 row → transposed |w| (wa), w (wv, the signs) and scales. */
AVX2 static void unpack_q8_row(const uint8_t *p, int nb, uint8_t *wa, int8_t *wv, float *ws) {
    int G = (nb + 7) / 8;
    for (int g = 0; g < G; g++) {
        __m256i r[8];
        for (int i = 0; i < 8; i++) {
            int b = 8 * g + i;
            if (b < nb) {
                r[i] = _mm256_loadu_si256((const __m256i *) (p + 34 * b + 2));
                ws[b] = scale1(p + 34 * b);
            } else {
                r[i] = _mm256_setzero_si256();
                ws[b] = 0.0f;
            }
        }
        transpose8x8(r);
        for (int k = 0; k < 8; k++) {
            _mm256_store_si256((__m256i *) (wv + 256 * g + 32 * k), r[k]);
            _mm256_store_si256((__m256i *) (wa + 256 * g + 32 * k), _mm256_sign_epi8(r[k], r[k]));
        }
    }
}

/* 4 rows × 2 tokens of Q4_0: out[2·i + j] = row i · token j (each activation load feeds four rows). */
/* One unpacked weight row of the GEMM: the transposed bytes (Q4_0: nibble values; Q8_0: |w|), Q8_0's signed bytes
 * (for the signs; unused for Q4_0) and the block scales. */
typedef struct { const uint8_t *a; const int8_t *v; const float *s; } urow;

AVX2 static void q4_tile4(const urow *rw, const int8_t *x0, const int8_t *x1,
                          const float *d0, const float *d1, const int32_t *s0, const int32_t *s1, int G, float *out) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 f[8];
    for (int i = 0; i < 8; i++) f[i] = _mm256_setzero_ps();
    const uint8_t *w0 = rw[0].a, *w1 = rw[1].a, *w2 = rw[2].a, *w3 = rw[3].a;
    for (int g = 0; g < G; g++) {
        __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
#pragma GCC unroll 1
        for (int k = 0; k < 8; k++) {
            int o = 256 * g + 32 * k, ox = gemm_x_at(g, k);
            __m256i xa = _mm256_loadu_si256((const __m256i *) (x0 + ox)), xb = _mm256_loadu_si256((const __m256i *) (x1 + ox));
            __m256i v = _mm256_load_si256((const __m256i *) (w0 + o));
            a0 = _mm256_add_epi16(a0, _mm256_maddubs_epi16(v, xa)); a1 = _mm256_add_epi16(a1, _mm256_maddubs_epi16(v, xb));
            v = _mm256_load_si256((const __m256i *) (w1 + o));
            a2 = _mm256_add_epi16(a2, _mm256_maddubs_epi16(v, xa)); a3 = _mm256_add_epi16(a3, _mm256_maddubs_epi16(v, xb));
            v = _mm256_load_si256((const __m256i *) (w2 + o));
            a4 = _mm256_add_epi16(a4, _mm256_maddubs_epi16(v, xa)); a5 = _mm256_add_epi16(a5, _mm256_maddubs_epi16(v, xb));
            v = _mm256_load_si256((const __m256i *) (w3 + o));
            a6 = _mm256_add_epi16(a6, _mm256_maddubs_epi16(v, xa)); a7 = _mm256_add_epi16(a7, _mm256_maddubs_epi16(v, xb));
        }
        __m256 xd0 = _mm256_loadu_ps(d0 + 8 * g), xd1 = _mm256_loadu_ps(d1 + 8 * g);
        __m256i xs0 = _mm256_loadu_si256((const __m256i *) (s0 + 8 * g)), xs1 = _mm256_loadu_si256((const __m256i *) (s1 + 8 * g));
        __m256i acc[8] = {a0, a1, a2, a3, a4, a5, a6, a7};
        for (int i = 0; i < 4; i++) {
            __m256 sw = _mm256_load_ps(rw[i].s + 8 * g);
            f[2 * i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_madd_epi16(acc[2 * i], ones), xs0)), _mm256_mul_ps(sw, xd0), f[2 * i]);
            f[2 * i + 1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_madd_epi16(acc[2 * i + 1], ones), xs1)), _mm256_mul_ps(sw, xd1), f[2 * i + 1]);
        }
    }
    for (int i = 0; i < 8; i++) out[i] = hsum_f32(f[i]);
}

/* 4 rows × 2 tokens of Q8_0 (|w| times x with w's sign; the pair sums need int32 every step). */
AVX2 static void q8_tile4(const urow *rw, const int8_t *x0, const int8_t *x1,
                          const float *d0, const float *d1, const int32_t *s0, const int32_t *s1, int G, float *out) {
    (void) s0; (void) s1;                              /* Q8_0 weights are signed: no block-sum correction */
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 f[8];
    for (int i = 0; i < 8; i++) f[i] = _mm256_setzero_ps();
    for (int g = 0; g < G; g++) {
        __m256i a[8];
        for (int i = 0; i < 8; i++) a[i] = _mm256_setzero_si256();
#pragma GCC unroll 1
        for (int k = 0; k < 8; k++) {
            int o = 256 * g + 32 * k, ox = gemm_x_at(g, k);
            __m256i xa = _mm256_loadu_si256((const __m256i *) (x0 + ox)), xb = _mm256_loadu_si256((const __m256i *) (x1 + ox));
            for (int i = 0; i < 4; i++) {
                __m256i u = _mm256_load_si256((const __m256i *) (rw[i].a + o)), v = _mm256_load_si256((const __m256i *) (rw[i].v + o));
                a[2 * i] = _mm256_add_epi32(a[2 * i], _mm256_madd_epi16(_mm256_maddubs_epi16(u, _mm256_sign_epi8(xa, v)), ones));
                a[2 * i + 1] = _mm256_add_epi32(a[2 * i + 1], _mm256_madd_epi16(_mm256_maddubs_epi16(u, _mm256_sign_epi8(xb, v)), ones));
            }
        }
        __m256 xd0 = _mm256_loadu_ps(d0 + 8 * g), xd1 = _mm256_loadu_ps(d1 + 8 * g);
        for (int i = 0; i < 4; i++) {
            __m256 sw = _mm256_load_ps(rw[i].s + 8 * g);
            f[2 * i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(a[2 * i]), _mm256_mul_ps(sw, xd0), f[2 * i]);
            f[2 * i + 1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(a[2 * i + 1]), _mm256_mul_ps(sw, xd1), f[2 * i + 1]);
        }
    }
    for (int i = 0; i < 8; i++) out[i] = hsum_f32(f[i]);
}

/* Row buffers of one GEMM call (on the stack: 4 rows of the widest supported width). */
typedef struct {
    _Alignas(32) uint8_t a[4][GEMM_MAX_COLS];
    _Alignas(32) int8_t v[4][GEMM_MAX_COLS];
    _Alignas(32) float s[4][GEMM_MAX_COLS / 32];
} gemm_rows;

/*
 * The GEMM driver of both formats: rows in tiles of 4 (unpacked once each), tokens in pairs; a missing 4th row or
 * 2nd token repeats the last one and is not stored. q8 selects the Q8_0 unpacker and tile, else Q4_0's.
 */
AVX2 static void gemm(int q8, const uint8_t *w, int32_t r0, int32_t r1, int nb,
                      const int8_t *xp, const float *xdp, const int32_t *xsp, int32_t n, float *y, int32_t ldy) {
    int G = (nb + 7) / 8, X = 16 * ((G + 1) / 2);          /* X: 32-byte vectors per packed token (16 per pair) */
    int64_t rb = (int64_t) nb * (q8 ? 34 : 18);
    gemm_rows buf;
    float out[8];
    for (int32_t r = r0; r < r1; r += 4) {
        int m = r1 - r < 4 ? r1 - r : 4;
        urow rw[4];
        for (int i = 0; i < 4; i++) {
            if (i < m) {
                if (q8) unpack_q8_row(w + (r + i) * rb, nb, buf.a[i], buf.v[i], buf.s[i]);
                else unpack_q4_row(w + (r + i) * rb, nb, buf.a[i], buf.s[i]);
            }
            int k = i < m ? i : m - 1;
            rw[i] = (urow) {buf.a[k], buf.v[k], buf.s[k]};
        }
        for (int32_t t = 0; t < n; t += 2) {
            int32_t u = t + 1 < n ? t + 1 : t;
            const int8_t *x0 = xp + (int64_t) t * X * 32, *x1 = xp + (int64_t) u * X * 32;
            const float *d0 = xdp + (int64_t) t * X, *d1 = xdp + (int64_t) u * X;
            const int32_t *s0 = xsp ? xsp + (int64_t) t * X : 0, *s1 = xsp ? xsp + (int64_t) u * X : 0;
            if (q8) q8_tile4(rw, x0, x1, d0, d1, s0, s1, G, out);
            else q4_tile4(rw, x0, x1, d0, d1, s0, s1, G, out);
            for (int i = 0; i < m; i++) {
                y[(int64_t) t * ldy + r + i] = out[2 * i];
                if (u != t) y[(int64_t) u * ldy + r + i] = out[2 * i + 1];
            }
        }
    }
}

/**
 * y[t·ldy + r] = Σ_c W[r, c]·x'_t[c] for rows r in [r0, r1) and tokens t in [0, n), W Q4_0 with rows of
 * (cols / 32)·18 bytes from w, the activations packed by kv_pack_act. Returns 0, or −1 when cols exceeds
 * GEMM_MAX_COLS (nothing written).
 */
AVX2 int32_t kv_gemm_q4_0(const uint8_t *w, int32_t r0, int32_t r1, int32_t cols,
                          const int8_t *xp, const float *xdp, const int32_t *xsp, int32_t n, float *y, int32_t ldy) {
    if (cols > GEMM_MAX_COLS) return -1;
    gemm(0, w, r0, r1, cols / 32, xp, xdp, xsp, n, y, ldy);
    return 0;
}

/** As kv_gemm_q4_0 for Q8_0 weights (rows of (cols / 32)·34 bytes; no block sums needed). */
AVX2 int32_t kv_gemm_q8_0(const uint8_t *w, int32_t r0, int32_t r1, int32_t cols,
                          const int8_t *xp, const float *xdp, int32_t n, float *y, int32_t ldy) {
    if (cols > GEMM_MAX_COLS) return -1;
    gemm(1, w, r0, r1, cols / 32, xp, xdp, 0, n, y, ldy);
    return 0;
}

/* ---------------------------------------------------------------- Q8_0 GEMM with AVX-VNNI */

/*
 * vpdpbusd multiplies unsigned bytes by signed bytes and adds each group of 4 products into an int32 lane, in one
 * instruction and without vpmaddubsw's int16 saturation. Q8_0 weights are signed, so the unpacked row holds w + 128
 * (unsigned 1..255; the xor flips the sign bit) and the product is corrected per block:
 *     Σ (w + 128)·x = Σ w·x + 128·Σ x,   128·Σ x = 16 · (8·Σ x) = 16 · xs8   (kv_pack_act's block sums)
 * The int32 block sums are then exactly those of q8_tile4 (sign trick, vpmaddubsw + vpmaddwd), and the float steps
 * after them are the same instructions in the same order, so the results equal kv_gemm_q8_0's bit for bit. Per 32
 * weights and 2 tokens: 1 weight load and 2 vpdpbusd, against 2 loads, 2 vpsignb, 2 vpmaddubsw, 2 vpmaddwd, 2 vpaddd.
 */
#define VNNI __attribute__((target("avx2,fma,f16c,avxvnni")))

/* Q8_0 row → transposed w + 128 as unsigned bytes (wu) and the block scales (ws, padding zero). */
VNNI static void unpack_q8_row_vnni(const uint8_t *p, int nb, uint8_t *wu, float *ws) {
    const __m256i flip = _mm256_set1_epi8((char) 0x80);
    int G = (nb + 7) / 8;
    for (int g = 0; g < G; g++) {
        __m256i r[8];
        for (int i = 0; i < 8; i++) {
            int b = 8 * g + i;
            if (b < nb) {
                r[i] = _mm256_loadu_si256((const __m256i *) (p + 34 * b + 2));
                ws[b] = _cvtsh_ss(load_u16(p + 34 * b));
            } else {
                r[i] = _mm256_setzero_si256();   /* padding: 128 after the flip, times zero activations, scale 0 */
                ws[b] = 0.0f;
            }
        }
        /* the transpose only moves dwords: flipping before or after it is the same */
        for (int i = 0; i < 8; i++) r[i] = _mm256_xor_si256(r[i], flip);
        transpose8x8(r);
        for (int k = 0; k < 8; k++) _mm256_store_si256((__m256i *) (wu + 256 * g + 32 * k), r[k]);
    }
}

/* 4 rows × 2 tokens of Q8_0 with vpdpbusd: out as q8_tile4's, bit for bit. */
VNNI static void q8_tile4_vnni(const urow *rw, const int8_t *x0, const int8_t *x1,
                               const float *d0, const float *d1, const int32_t *s0, const int32_t *s1, int G, float *out) {
    __m256 f[8];
    for (int i = 0; i < 8; i++) f[i] = _mm256_setzero_ps();
    for (int g = 0; g < G; g++) {
        __m256i a[8];
        for (int i = 0; i < 8; i++) a[i] = _mm256_setzero_si256();
#pragma GCC unroll 1
        for (int k = 0; k < 8; k++) {
            int o = 256 * g + 32 * k, ox = gemm_x_at(g, k);
            __m256i xa = _mm256_loadu_si256((const __m256i *) (x0 + ox)), xb = _mm256_loadu_si256((const __m256i *) (x1 + ox));
            for (int i = 0; i < 4; i++) {
                __m256i u = _mm256_load_si256((const __m256i *) (rw[i].a + o));
                a[2 * i] = _mm256_dpbusd_avx_epi32(a[2 * i], u, xa);
                a[2 * i + 1] = _mm256_dpbusd_avx_epi32(a[2 * i + 1], u, xb);
            }
        }
        /* − 128·Σx per block: 16 × the packed 8·Σx */
        __m256i c0 = _mm256_slli_epi32(_mm256_loadu_si256((const __m256i *) (s0 + 8 * g)), 4);
        __m256i c1 = _mm256_slli_epi32(_mm256_loadu_si256((const __m256i *) (s1 + 8 * g)), 4);
        __m256 xd0 = _mm256_loadu_ps(d0 + 8 * g), xd1 = _mm256_loadu_ps(d1 + 8 * g);
        for (int i = 0; i < 4; i++) {
            __m256 sw = _mm256_load_ps(rw[i].s + 8 * g);
            f[2 * i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(a[2 * i], c0)), _mm256_mul_ps(sw, xd0), f[2 * i]);
            f[2 * i + 1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(a[2 * i + 1], c1)), _mm256_mul_ps(sw, xd1), f[2 * i + 1]);
        }
    }
    for (int i = 0; i < 8; i++) out[i] = hsum_f32(f[i]);
}

/**
 * As kv_gemm_q8_0, with AVX-VNNI (only where kv_cpu_vnni() is 1); xsp: the packed block sums of kv_pack_act, which
 * the unsigned-weight form needs. The same driver: rows in tiles of 4 unpacked once, tokens in pairs.
 */
VNNI int32_t kv_gemm_q8_0_vnni(const uint8_t *w, int32_t r0, int32_t r1, int32_t cols,
                               const int8_t *xp, const float *xdp, const int32_t *xsp, int32_t n, float *y, int32_t ldy) {
    if (cols > GEMM_MAX_COLS) return -1;
    int nb = cols / 32, G = (nb + 7) / 8, X = 16 * ((G + 1) / 2);    /* as gemm() */
    int64_t rb = (int64_t) nb * 34;
    gemm_rows buf;
    float out[8];
    for (int32_t r = r0; r < r1; r += 4) {
        int m = r1 - r < 4 ? r1 - r : 4;
        urow rw[4];
        for (int i = 0; i < 4; i++) {
            if (i < m) unpack_q8_row_vnni(w + (r + i) * rb, nb, buf.a[i], buf.s[i]);
            int k = i < m ? i : m - 1;
            rw[i] = (urow) {buf.a[k], 0, buf.s[k]};
        }
        for (int32_t t = 0; t < n; t += 2) {
            int32_t u = t + 1 < n ? t + 1 : t;
            q8_tile4_vnni(rw, xp + (int64_t) t * X * 32, xp + (int64_t) u * X * 32, xdp + (int64_t) t * X, xdp + (int64_t) u * X,
                          xsp + (int64_t) t * X, xsp + (int64_t) u * X, G, out);
            for (int i = 0; i < m; i++) {
                y[(int64_t) t * ldy + r + i] = out[2 * i];
                if (u != t) y[(int64_t) u * ldy + r + i] = out[2 * i + 1];
            }
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- latent attention (decode) */


/*
 * The latent cache holds f32, f16 (IEEE half) or bf16 values: LAT8(p, i) loads 8 of them from element i as floats
 * (f16 is 0 for f32, 1 for f16, 2 for bf16). The kernels below are always inlined into one entry point per format, so
 * f16 is a compile-time constant there. The 16-bit formats halve the cache's memory and the bytes each decoded token
 * streams; vcvtph2ps, or a zero-extend and shift for bf16 (its bits are an f32's top half), widens next to the FMAs.
 * (CPUs with AVX512-BF16 multiply bf16 directly: kimivl_avx512.c's kv_latent_attention_bf16_512.)
 */
#define ALWAYS_INLINE __attribute__((always_inline)) inline
#define LAT8(p, i) (f16 == 2 ? _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *) ((const uint16_t *) (p) + (i)))), 16)) \
                    : f16 ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) ((const uint16_t *) (p) + (i)))) \
                    : _mm256_loadu_ps((const float *) (p) + (i)))

/* Keeps v in a register: without it gcc folds the load into every FMA that uses it (twice the loads). */
#define IN_REG(v) __asm__("" : "+x"(v))

/*
 * Scores of 4 heads × 3 positions: s[i·ATT_JB + jj + k] = scale · q_i · lat_{jj + k} over W (k < cnt; the rows past
 * cnt repeat the last one and are not stored). Every k step loads 3 latent and 4 query vectors for 12 FMAs.
 */
AVX2 static ALWAYS_INLINE void scores_4x3(const float *q0, int W, const void *l0, const void *l1, const void *l2, float scale,
                                          float *s, int jj, int cnt, int f16) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0, a9 = a0, a10 = a0, a11 = a0;
    for (int d = 0; d < W; d += 8) {
        __m256 u = LAT8(l0, d), v = LAT8(l1, d), w = LAT8(l2, d);
        IN_REG(u); IN_REG(v); IN_REG(w);
        __m256 x = _mm256_loadu_ps(q0 + d);
        IN_REG(x);
        a0 = _mm256_fmadd_ps(x, u, a0); a1 = _mm256_fmadd_ps(x, v, a1); a2 = _mm256_fmadd_ps(x, w, a2);
        x = _mm256_loadu_ps(q0 + W + d);
        IN_REG(x);
        a3 = _mm256_fmadd_ps(x, u, a3); a4 = _mm256_fmadd_ps(x, v, a4); a5 = _mm256_fmadd_ps(x, w, a5);
        x = _mm256_loadu_ps(q0 + 2 * W + d);
        IN_REG(x);
        a6 = _mm256_fmadd_ps(x, u, a6); a7 = _mm256_fmadd_ps(x, v, a7); a8 = _mm256_fmadd_ps(x, w, a8);
        x = _mm256_loadu_ps(q0 + 3 * W + d);
        IN_REG(x);
        a9 = _mm256_fmadd_ps(x, u, a9); a10 = _mm256_fmadd_ps(x, v, a10); a11 = _mm256_fmadd_ps(x, w, a11);
    }
    _Alignas(32) float t[16];
    __m256 sc = _mm256_set1_ps(scale), z = _mm256_setzero_ps();
    _mm256_store_ps(t, _mm256_mul_ps(fsum8x8(a0, a1, a2, a3, a4, a5, a6, a7), sc));
    _mm256_store_ps(t + 8, _mm256_mul_ps(fsum8x8(a8, a9, a10, a11, z, z, z, z), sc));
    for (int i = 0; i < 4; i++) {
        for (int k = 0; k < cnt; k++) s[i * ATT_JB + jj + k] = t[3 * i + k];
    }
}

/* o_i[0..R) += Σ_j p_i[j] · lat_j[0..R) for 4 heads (p_i = s + i·ATT_JB), 16 columns at a time. */
AVX2 static ALWAYS_INLINE void values_4(const float *s, int n, const void *lat, int W, float *o0, int R, int f16) {
    for (int d = 0; d < R; d += 16) {
        __m256 a0 = _mm256_loadu_ps(o0 + d), b0 = _mm256_loadu_ps(o0 + d + 8);
        __m256 a1 = _mm256_loadu_ps(o0 + R + d), b1 = _mm256_loadu_ps(o0 + R + d + 8);
        __m256 a2 = _mm256_loadu_ps(o0 + 2 * R + d), b2 = _mm256_loadu_ps(o0 + 2 * R + d + 8);
        __m256 a3 = _mm256_loadu_ps(o0 + 3 * R + d), b3 = _mm256_loadu_ps(o0 + 3 * R + d + 8);
        for (int j = 0; j < n; j++) {
            int64_t lj = (int64_t) j * W + d;
            __m256 u = LAT8(lat, lj), v = LAT8(lat, lj + 8), p;
            p = _mm256_broadcast_ss(s + j);              a0 = _mm256_fmadd_ps(u, p, a0); b0 = _mm256_fmadd_ps(v, p, b0);
            p = _mm256_broadcast_ss(s + ATT_JB + j);     a1 = _mm256_fmadd_ps(u, p, a1); b1 = _mm256_fmadd_ps(v, p, b1);
            p = _mm256_broadcast_ss(s + 2 * ATT_JB + j); a2 = _mm256_fmadd_ps(u, p, a2); b2 = _mm256_fmadd_ps(v, p, b2);
            p = _mm256_broadcast_ss(s + 3 * ATT_JB + j); a3 = _mm256_fmadd_ps(u, p, a3); b3 = _mm256_fmadd_ps(v, p, b3);
        }
        _mm256_storeu_ps(o0 + d, a0); _mm256_storeu_ps(o0 + d + 8, b0);
        _mm256_storeu_ps(o0 + R + d, a1); _mm256_storeu_ps(o0 + R + d + 8, b1);
        _mm256_storeu_ps(o0 + 2 * R + d, a2); _mm256_storeu_ps(o0 + 2 * R + d + 8, b2);
        _mm256_storeu_ps(o0 + 3 * R + d, a3); _mm256_storeu_ps(o0 + 3 * R + d + 8, b3);
    }
}

/*
 * Online-softmax attention of H query rows (q + h·qs, D wide) over key rows k + j·ks (D wide) and value rows
 * v + j·vs (the first R columns), j in [j0, j1): the state per row (running max m, running sum l, unnormalised
 * output o[h·R ..]) is updated in place, so partial ranges can be merged by the caller. With maskBase ≥ 0, row h sees
 * only keys j ≤ maskBase + h (causal prompt attention, one row per prompt token). Keys and values are f32, or
 * f16 (f16 == 1) or bf16 (f16 == 2): a compile-time constant, this is inlined into each entry point.
 */
AVX2 static ALWAYS_INLINE int32_t attention(const float *q, int32_t qs, int32_t D, const void *k, int32_t ks,
                                           const void *v, int32_t vs, int32_t R, int32_t H, int32_t j0, int32_t j1,
                                           float scale, int32_t maskBase, float *m, float *l, float *o, int f16) {
    if (H % 4 != 0 || D % 8 != 0 || R % 16 != 0 || H > 64) return -1;
    _Alignas(32) float s[64 * ATT_JB];
    const int es = f16 ? 2 : 4;
    const int64_t krow = (int64_t) ks * es;
    _Alignas(32) float qbuf[4 * 576];                 /* 4 query rows made contiguous when qs != D */
    for (int32_t jb = j0; jb < j1; jb += ATT_JB) {
        int n = j1 - jb < ATT_JB ? j1 - jb : ATT_JB;
        const uint8_t *kb = (const uint8_t *) k + (int64_t) jb * krow;
        const uint8_t *vb = (const uint8_t *) v + (int64_t) jb * vs * es;
        for (int h = 0; h < H; h += 4) {
            const float *q4 = quad_rows(q, h, qs, D, qbuf);
            for (int j = 0; j < n; j += 3) {
                int cnt = n - j < 3 ? n - j : 3;
                const uint8_t *l0 = kb + j * krow, *l1 = cnt > 1 ? l0 + krow : l0, *l2 = cnt > 2 ? l0 + 2 * krow : l1;
                scores_4x3(q4, D, l0, l1, l2, scale, s + h * ATT_JB, j, cnt, f16);
            }
        }
        softmax_rows(s, ATT_JB, n, H, jb, maskBase, R, m, l, o);
        for (int h = 0; h < H; h += 4) values_4(s + h * ATT_JB, n, vb, vs, o + (int64_t) h * R, R, f16);
    }
    return 0;
}

/**
 * Weight-absorbed MLA decode over positions [j0, j1) of the latent cache (dev.kimivl.model.LatentAttention):
 * H query rows q[qo + h·W ..] (W wide) against cache rows lat[j·W ..] (f32), scores scaled by scale, online softmax
 * state per head (running max m[h], running sum l[h], unnormalised output o[h·R ..] over the first R columns) updated
 * in place. Needs H % 4 == 0, W % 8 == 0, R % 16 == 0 (returns −1 otherwise, state untouched), else 0.
 */
AVX2 int32_t kv_latent_attention(const float *q, int32_t qo, const float *lat, int32_t W, int32_t R, int32_t H,
                                 int32_t j0, int32_t j1, float scale, float *m, float *l, float *o) {
    return attention(q + qo, W, W, lat, W, lat, W, R, H, j0, j1, scale, -1, m, l, o, 0);
}

/** kv_latent_attention over an f16 cache (lat: IEEE half bits, same layout); the float work is identical. */
AVX2 int32_t kv_latent_attention_f16(const float *q, int32_t qo, const uint16_t *lat, int32_t W, int32_t R, int32_t H,
                                     int32_t j0, int32_t j1, float scale, float *m, float *l, float *o) {
    return attention(q + qo, W, W, lat, W, lat, W, R, H, j0, j1, scale, -1, m, l, o, 1);
}

/**
 * kv_latent_attention over a bf16 cache (lat: the top 16 bits of each f32, same layout), widened to f32: the float
 * work of the f32 kernel on the widened values. For CPUs without AVX512-BF16 (with it, kv_latent_attention_bf16_512).
 */
AVX2 int32_t kv_latent_attention_bf16(const float *q, int32_t qo, const uint16_t *lat, int32_t W, int32_t R, int32_t H,
                                      int32_t j0, int32_t j1, float scale, float *m, float *l, float *o) {
    return attention(q + qo, W, W, lat, W, lat, W, R, H, j0, j1, scale, -1, m, l, o, 2);
}

/**
 * Causal prompt attention in the decompressed (multi-head) form of MLA, for one head: H query rows q[qo + h·qs ..]
 * (D = nope + rope wide, RoPE applied) over key rows k[j·ks ..] (D wide: k_nope then k_pe) and value rows v[j·vs ..]
 * (R wide), j in [j0, j1); row h (the prompt token at position maskBase + h) sees keys j ≤ maskBase + h. Online
 * softmax state as kv_latent_attention's. Needs H % 4 == 0, H ≤ 64, D % 8 == 0, D ≤ 576, R % 16 == 0, else −1.
 */
AVX2 int32_t kv_mha_causal(const float *q, int32_t qo, int32_t qs, int32_t D, const float *k, int32_t ks, const float *v, int32_t vs,
                           int32_t R, int32_t H, int32_t j0, int32_t j1, float scale, int32_t maskBase,
                           float *m, float *l, float *o) {
    if (D > 576) return -1;
    return attention(q + qo, qs, D, k, ks, v, vs, R, H, j0, j1, scale, maskBase, m, l, o, 0);
}

/* ---------------------------------------------------------------- memory bandwidth probe (kimivl bench) */

/** Reads n bytes (a multiple of 128) from p as fast as the core can and returns a checksum (so nothing is skipped). */
AVX2 int64_t kv_stream_read(const uint8_t *p, int64_t n) {
    __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
    for (int64_t i = 0; i + 128 <= n; i += 128) {
        prefetch_ahead(p + i, 2);                      /* as the kernels do, so the probe is not the slower reader */
        a = _mm256_add_epi64(a, _mm256_loadu_si256((const __m256i *) (p + i)));
        b = _mm256_add_epi64(b, _mm256_loadu_si256((const __m256i *) (p + i + 32)));
        c = _mm256_add_epi64(c, _mm256_loadu_si256((const __m256i *) (p + i + 64)));
        d = _mm256_add_epi64(d, _mm256_loadu_si256((const __m256i *) (p + i + 96)));
    }
    __m256i s = _mm256_add_epi64(_mm256_add_epi64(a, b), _mm256_add_epi64(c, d));
    return _mm256_extract_epi64(s, 0) + _mm256_extract_epi64(s, 1) + _mm256_extract_epi64(s, 2) + _mm256_extract_epi64(s, 3);
}
