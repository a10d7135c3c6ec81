/*
 * Helpers shared by the kimivl native kernels (kimivl_kernels.c: Q4_0/Q8_0, attention; kimivl_kquants.c: the other
 * ggml block formats). All static inline: each translation unit gets its own copy, inlined into its kernels.
 */
#ifndef KIMIVL_COMMON_H
#define KIMIVL_COMMON_H
#include <stdint.h>
#include <string.h>
#include <math.h>
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2,fma,f16c")))

/* [Σ a0, Σ a1, ..., Σ a7]: the 8 int32 lanes of each of 8 vectors summed, one vector out (~9 instructions). */
AVX2 static inline __m256i sum8x8(__m256i a0, __m256i a1, __m256i a2, __m256i a3,
                                   __m256i a4, __m256i a5, __m256i a6, __m256i a7) {
    __m256i h01 = _mm256_hadd_epi32(a0, a1), h23 = _mm256_hadd_epi32(a2, a3);
    __m256i h45 = _mm256_hadd_epi32(a4, a5), h67 = _mm256_hadd_epi32(a6, a7);
    __m256i h0123 = _mm256_hadd_epi32(h01, h23), h4567 = _mm256_hadd_epi32(h45, h67);
    return _mm256_add_epi32(_mm256_permute2x128_si256(h0123, h4567, 0x20), _mm256_permute2x128_si256(h0123, h4567, 0x31));
}

AVX2 static inline float hsum_f32(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline uint16_t load_u16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }

/*
 * Software prefetch for the decode matvec, one 4 KB page ahead of the row being read: the hardware stream prefetcher
 * stops at 4 KB page boundaries (the weights are a file mapping in 4 KB pages), so each new page would start cold.
 * Measured (C harness, Q4_0 [16384, 2048] from memory): one core 17.2 -> 19.2 GB/s, two 31 -> 38 GB/s in total.
 * Prefetches past the end of the mapping are harmless hints.
 */
#define PREFETCH_AHEAD 4096
static inline void prefetch_ahead(const uint8_t *p, int lines) {
    for (int i = 0; i < lines; i++) _mm_prefetch((const char *) (p + PREFETCH_AHEAD + 64 * i), _MM_HINT_T0);
}

/* The f16 scales of 8 consecutive blocks (stride bytes apart) as 8 floats. Assembled in general-purpose registers:
 * the integer ALUs are idle in these kernels, while 8 vpinsrw would cost 16 vector uops. */
AVX2 static inline __m256 scales8(const uint8_t *p, int stride) {
    uint64_t lo = (uint64_t) load_u16(p) | (uint64_t) load_u16(p + stride) << 16
                | (uint64_t) load_u16(p + 2 * stride) << 32 | (uint64_t) load_u16(p + 3 * stride) << 48;
    uint64_t hi = (uint64_t) load_u16(p + 4 * stride) | (uint64_t) load_u16(p + 5 * stride) << 16
                | (uint64_t) load_u16(p + 6 * stride) << 32 | (uint64_t) load_u16(p + 7 * stride) << 48;
    return _mm256_cvtph_ps(_mm_set_epi64x((long long) hi, (long long) lo));
}

/*
 * A row's last n = 1..7 blocks (p: the first of them, stride bytes apart) finished as a group of 8 whose missing blocks
 * have zero sums, scales and activation scales: acc + (s − xs8)·(d_w·d_x) lane by lane, as the full groups do and as
 * the GEMM does with its zero-padded groups (so the two stay bit-identical). xs8 is NULL for Q8_0. Masked loads and
 * scales gathered in general-purpose registers: assembling the three vectors in stack arrays cost three failed
 * store-to-load forwards per row (C harness, one thread, in cache: a 128-column row 22 -> 14 ns, a 1408-column row of
 * ffn_down 55 -> 48 ns).
 */
/* As scales8 for the first n = 0..8 blocks, zeros for the others. */
AVX2 static inline __m256 scales_first(const uint8_t *p, int stride, int n) {
    uint64_t lo = 0, hi = 0;
    for (int i = 0; i < n; i++) {
        uint64_t h = load_u16(p + stride * i);
        if (i < 4) lo |= h << (16 * i);
        else hi |= h << (16 * (i - 4));
    }
    return _mm256_cvtph_ps(_mm_set_epi64x((long long) hi, (long long) lo));
}

AVX2 static inline __m256 tail_group(__m256i s, const uint8_t *p, int stride, int n, const float *xd, const int32_t *xs8, __m256 acc) {
    __m256i live = _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    __m256 dw = scales_first(p, stride, n);
    if (xs8 != NULL) s = _mm256_sub_epi32(s, _mm256_maskload_epi32(xs8, live));
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(dw, _mm256_maskload_ps(xd, live)), acc);
}

/* One Q8_0 block (32 int8 weights at qs) against 32 activation bytes: 8 int32 lanes of pair sums (AVX2). */
AVX2 static inline __m256i q8_dot(const int8_t *qs, const int8_t *x) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i w = _mm256_loadu_si256((const __m256i *) qs), v = _mm256_loadu_si256((const __m256i *) x);
    /* |w| (unsigned, ≤ 128) times x with w's sign: pair sums ≤ 2·128·127 = 32512, no saturation */
    return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(v, w)), ones);
}

/* A Q8_0 row's last 1-7 blocks (from block b of nb, w the row), finished as a group of 8 padded with zeros
 * (tail_group): the one tail of the AVX2 and AVX-512 Q8_0 rows, so that the two give the same bits. */
AVX2 static inline __m256 q8_tail(const uint8_t *w, int b, int nb, const int8_t *xq, const float *xd, __m256 acc) {
    const uint8_t *p = w + 34 * b;
    const int8_t *x = xq + 32 * b;
    __m256i z = _mm256_setzero_si256(), v[8];
    for (int i = 0; i < 8; i++) v[i] = b + i < nb ? q8_dot((const int8_t *) p + 34 * i + 2, x + 32 * i) : z;
    return tail_group(sum8x8(v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]), p, 34, nb - b, xd + b, NULL, acc);
}

/* ---- 32-value blocks of 4 and 5 bits (Q4_0, Q5_0, Q4_1, Q5_1) */

/* The 32 bits of a little-endian word as 32 bytes, 0x10 where the bit is set (the 5th bit of Q5 values). */
AVX2 static inline __m256i bits_to_0x10(uint32_t bits) {
    /* byte i of the result looks at byte i / 8 of the word, and the bit i % 8 of it */
    const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                            2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x(0x8040201008040201LL);
    __m256i b = _mm256_shuffle_epi8(_mm256_set1_epi32((int) bits), spread);
    return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(b, bit), bit), _mm256_set1_epi8(0x10));
}

/* The 32 values of a 4/5-bit 32-block as bytes 0..31: nibbles at qs (low = values 0..15, high = 16..31), plus the
 * 5th bits when qh is not NULL. */
AVX2 static inline __m256i q45_values(const uint8_t *qs, const uint8_t *qh) {
    __m256i raw = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *) qs));
    __m256i q = _mm256_and_si256(_mm256_srlv_epi64(raw, _mm256_set_epi64x(4, 4, 0, 0)), _mm256_set1_epi8(0x0F));
    if (qh != NULL) {
        uint32_t h;
        memcpy(&h, qh, 4);
        q = _mm256_or_si256(q, bits_to_0x10(h));
    }
    return q;
}

/* ---- k-quants */

/* The 8 6-bit scales and 8 6-bit mins of a Q4_K/Q5_K super-block (12 bytes at p) as bytes: sc[0..7], mn[0..7].
 * Sub-blocks 0-3 keep theirs in the low 6 bits of bytes 0-3 (scales) and 4-7 (mins); 4-7 have their low 4 bits
 * in bytes 8-11 (scale: low nibble, min: high nibble) and their top 2 bits in the top bits of bytes 0-3 / 4-7. */
static inline void k_scales(const uint8_t *p, uint64_t *sc, uint64_t *mn) {
    uint32_t u0, u1, u2;
    memcpy(&u0, p, 4);
    memcpy(&u1, p + 4, 4);
    memcpy(&u2, p + 8, 4);
    uint32_t sc_hi = (u2 & 0x0F0F0F0F) | ((u0 >> 6) & 0x03030303) << 4;
    uint32_t mn_hi = ((u2 >> 4) & 0x0F0F0F0F) | ((u1 >> 6) & 0x03030303) << 4;
    *sc = (uint64_t) (u0 & 0x3F3F3F3F) | (uint64_t) sc_hi << 32;
    *mn = (uint64_t) (u1 & 0x3F3F3F3F) | (uint64_t) mn_hi << 32;
}

/* ---- attention helpers (kimivl_kernels.c's AVX2 attention, kimivl_avx512.c's) */

/*
 * e^x for x ≤ 0, the Cephes expf polynomial of VectorMath.expNeg (about 2 ulp; 0 below −87), for a vector width:
 * P is the intrinsics' prefix (_mm256, _mm512), V the float vector type, I its integer type, ROUND(v) rounds to
 * the nearest integer.
 */
#define EXP_NEG_BODY(P, V, I, ROUND)                                                                            \
    x = P##_max_ps(x, P##_set1_ps(-87.0f));                                                                    \
    V n = ROUND(P##_mul_ps(x, P##_set1_ps(1.44269504088896341f)));                                              \
    V r = P##_fnmadd_ps(n, P##_set1_ps(0.693359375f), x);                                                      \
    r = P##_fnmadd_ps(n, P##_set1_ps(-2.12194440e-4f), r);                                                     \
    V r2 = P##_mul_ps(r, r);                                                                                   \
    V p = P##_set1_ps(1.9875691500e-4f);                                                                       \
    p = P##_fmadd_ps(p, r, P##_set1_ps(1.3981999507e-3f));                                                     \
    p = P##_fmadd_ps(p, r, P##_set1_ps(8.3334519073e-3f));                                                     \
    p = P##_fmadd_ps(p, r, P##_set1_ps(4.1665795894e-2f));                                                     \
    p = P##_fmadd_ps(p, r, P##_set1_ps(1.6666665459e-1f));                                                     \
    p = P##_fmadd_ps(p, r, P##_set1_ps(5.0000001201e-1f));                                                     \
    p = P##_add_ps(P##_fmadd_ps(p, r2, r), P##_set1_ps(1.0f));                                                 \
    I e = P##_slli_epi32(P##_add_epi32(P##_cvtps_epi32(n), P##_set1_epi32(127)), 23);                          \
    return P##_mul_ps(p, (V) e);

#define ROUND_256(v) _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define ROUND_512(v) _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)

AVX2 static inline __m256 exp_neg(__m256 x) { EXP_NEG_BODY(_mm256, __m256, __m256i, ROUND_256) }

/* exp_neg on 16 lanes (the AVX-512 kernels; kimivl_train.c's softmax). */
__attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq")))
static inline __m512 exp_neg_512(__m512 x) { EXP_NEG_BODY(_mm512, __m512, __m512i, ROUND_512) }

/* [Σ a0, ..., Σ a7] of 8 float vectors. */
AVX2 static inline __m256 fsum8x8(__m256 a0, __m256 a1, __m256 a2, __m256 a3, __m256 a4, __m256 a5, __m256 a6, __m256 a7) {
    __m256 h01 = _mm256_hadd_ps(a0, a1), h23 = _mm256_hadd_ps(a2, a3), h45 = _mm256_hadd_ps(a4, a5), h67 = _mm256_hadd_ps(a6, a7);
    __m256 h0123 = _mm256_hadd_ps(h01, h23), h4567 = _mm256_hadd_ps(h45, h67);
    return _mm256_add_ps(_mm256_permute2f128_ps(h0123, h4567, 0x20), _mm256_permute2f128_ps(h0123, h4567, 0x31));
}

#define ATT_JB 32   /* positions per block: 32 rows of 576 floats (74 KB) stay in L2 between scores and values */

/* Query rows h..h+3 (q + i·qs, D wide) as one contiguous [4, D] block: in place when qs == D, else copied to qbuf. */
static inline const float *quad_rows(const float *q, int h, int32_t qs, int32_t D, float *qbuf) {
    const float *q4 = q + (int64_t) h * qs;
    if (qs == D) return q4;
    for (int i = 0; i < 4; i++) memcpy(qbuf + i * D, q + (int64_t) (h + i) * qs, (size_t) D * sizeof(float));
    return qbuf;
}

/*
 * The online-softmax step of one block of n positions (from jb) for H query rows, between the scores and the values:
 * s[h·stride + j] holds row h's scaled scores and becomes its weights e^(s − m); the running max m[h], sum l[h] and
 * unnormalised output o[h·R ..] are rescaled where the max grows. With maskBase ≥ 0 row h sees keys j ≤ maskBase + h
 * (the others' weights become 0). Shared by the AVX2 and AVX-512 attention kernels, so both give the same results.
 */
AVX2 static inline void softmax_rows(float *s, int stride, int n, int H, int32_t jb, int32_t maskBase, int32_t R,
                                     float *m, float *l, float *o) {
    for (int h = 0; h < H; h++) {
        float *sh = s + h * stride;
        int nv = n;                                /* keys of this block that row h sees */
        if (maskBase >= 0) {
            int64_t lim = (int64_t) maskBase + h + 1 - jb;
            nv = lim < 0 ? 0 : lim < n ? (int) lim : n;
        }
        for (int j = nv; j < n; j++) sh[j] = 0.0f;
        if (nv == 0) continue;
        float mb = -INFINITY;
        for (int j = 0; j < nv; j++) mb = sh[j] > mb ? sh[j] : mb;
        float mOld = m[h], mNew = mOld > mb ? mOld : mb;
        if (mNew > mOld && l[h] != 0.0f) {
            float corr = expf(mOld - mNew);
            l[h] *= corr;
            __m256 c = _mm256_set1_ps(corr);
            for (int d = 0; d < R; d += 8) _mm256_storeu_ps(o + (int64_t) h * R + d, _mm256_mul_ps(_mm256_loadu_ps(o + (int64_t) h * R + d), c));
        }
        m[h] = mNew;
        __m256 mv = _mm256_set1_ps(mNew), sum = _mm256_setzero_ps();
        int j = 0;
        for (; j + 8 <= nv; j += 8) {
            __m256 e = exp_neg(_mm256_sub_ps(_mm256_loadu_ps(sh + j), mv));
            _mm256_storeu_ps(sh + j, e);
            sum = _mm256_add_ps(sum, e);
        }
        float ls = hsum_f32(sum);
        for (; j < nv; j++) { float e = expf(sh[j] - mNew); sh[j] = e; ls += e; }
        l[h] += ls;
    }
}

/* ---- Q4_0: 2-byte f16 d, 16 bytes of nibbles (18 B) */

/* Σ q·x over one Q4_0 block as 8 int32 partial sums, q the unsigned nibble 0..15 (the −8 is applied per block
 * through the activation block sums). Low nibbles are elements 0-15, high nibbles 16-31 (llama.cpp's layout). */
AVX2 static inline __m256i q4_dot(const uint8_t *qs, const int8_t *x) {
    const __m256i m0f = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1), shift = _mm256_set_epi64x(4, 4, 0, 0);
    /* the 16 bytes in both halves (one load), the upper half shifted right by 4: low nibbles, then high nibbles */
    __m256i raw = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *) qs));
    __m256i q = _mm256_and_si256(_mm256_srlv_epi64(raw, shift), m0f);
    /* unsigned 0..15 times signed −127..127: pair sums ≤ 3810, no saturation */
    return _mm256_madd_epi16(_mm256_maddubs_epi16(q, _mm256_loadu_si256((const __m256i *) x)), ones);
}

/*
 * The prefill GEMM's transposed block layout (kimivl_kernels.c, kv_pack_act): a group of 8 blocks (256 values) as 8
 * vectors of 32 bytes, vector k holding bytes 4k..4k+3 of each of the 8 blocks (lane i = block i), so that each int32
 * lane of a multiply-add accumulates one block.
 */
/* In place: r[i] = 8 dwords of row i  →  r[s] = dword s of rows 0..7 (an 8×8 transpose of 32-bit elements). */
AVX2 static inline void transpose8x8(__m256i *r) {
    __m256i t0 = _mm256_unpacklo_epi32(r[0], r[1]), t1 = _mm256_unpackhi_epi32(r[0], r[1]);
    __m256i t2 = _mm256_unpacklo_epi32(r[2], r[3]), t3 = _mm256_unpackhi_epi32(r[2], r[3]);
    __m256i t4 = _mm256_unpacklo_epi32(r[4], r[5]), t5 = _mm256_unpackhi_epi32(r[4], r[5]);
    __m256i t6 = _mm256_unpacklo_epi32(r[6], r[7]), t7 = _mm256_unpackhi_epi32(r[6], r[7]);
    __m256i u0 = _mm256_unpacklo_epi64(t0, t2), u1 = _mm256_unpackhi_epi64(t0, t2);
    __m256i u2 = _mm256_unpacklo_epi64(t1, t3), u3 = _mm256_unpackhi_epi64(t1, t3);
    __m256i u4 = _mm256_unpacklo_epi64(t4, t6), u5 = _mm256_unpackhi_epi64(t4, t6);
    __m256i u6 = _mm256_unpacklo_epi64(t5, t7), u7 = _mm256_unpackhi_epi64(t5, t7);
    r[0] = _mm256_permute2x128_si256(u0, u4, 0x20); r[4] = _mm256_permute2x128_si256(u0, u4, 0x31);
    r[1] = _mm256_permute2x128_si256(u1, u5, 0x20); r[5] = _mm256_permute2x128_si256(u1, u5, 0x31);
    r[2] = _mm256_permute2x128_si256(u2, u6, 0x20); r[6] = _mm256_permute2x128_si256(u2, u6, 0x31);
    r[3] = _mm256_permute2x128_si256(u3, u7, 0x20); r[7] = _mm256_permute2x128_si256(u3, u7, 0x31);
}

/* Where a packed activation keeps group g's vector k (bytes from the token's start): groups in pairs, so that the
 * 512-bit kernels (kimivl_avx512.c) load vector k of groups 2p and 2p + 1 as one 64-byte vector. */
static inline int gemm_x_at(int g, int k) { return 512 * (g >> 1) + 64 * k + 32 * (g & 1); }

#endif
