/*
 * kimivl native kernels for the other ggml block formats of published GGUF files: the k-quants Q4_K, Q5_K, Q6_K
 * (super-blocks of 256) and the 32-blocks Q4_1, Q5_0, Q5_1. A Q4_K_M file of Kimi-VL-A3B is mostly Q4_K, with Q6_K
 * (output, some ffn_down), and Q5_0 / Q8_0 where a row is not a whole number of 256-blocks (llama.cpp's fallback for
 * ffn_down_exps' 1408 columns and attn_k_b's 128): without these kernels such a file decoded every row in scalar Java.
 *
 * As the Q4_0/Q8_0 kernels of kimivl_kernels.c, the activation comes quantized to int8 and each weight block's dot
 * product is exact in integers. The 32-block formats take it in blocks of 32 (xq int8[cols], xd float[cols / 32] its
 * scales, xs8 int32[cols / 32] = 8 × each block's Σ xq: llama.cpp's q8_0/q8_1). The k-quants take it in llama.cpp's
 * Q8_K form, one scale per 256 values (see the k-quant section): measured in cache on one core, that made Q4_K
 * 9.6-10.3 → 14.0-18.4 GB/s and Q6_K 11.6-12.5 → 20.5-21.5 GB/s against per-32 activation scales, which need a
 * float step and a horizontal sum per 32 values. Offsets (Q4_1/Q5_1's m, the k-quants' mins, Q5_0's −16, Q6_K's
 * −32) are applied through the activation's block sums, so the weights stay unsigned for vpmaddubsw.
 *
 * kv_gemm_kq (prefill) unpacks each row once per 4 tokens over tiles of rows that stay in L1; the matvec is its
 * 1-token case, so each result equals kv_matvec_kq's bit for bit. (kv_gemm_q4_0 goes further: it unpacks a row once
 * for all tokens into a transposed layout, 90 against 68 GFLOP/s for Q4_K here.)
 */
#include "kimivl_common.h"

#define ALWAYS_INLINE __attribute__((always_inline)) inline

/* Type codes shared with dev.kimivl.tensor.NativeKernels. */
enum { KQ_Q4_K = 0, KQ_Q5_K = 1, KQ_Q6_K = 2, KQ_Q4_1 = 3, KQ_Q5_0 = 4, KQ_Q5_1 = 5 };

AVX2 static inline float f16_at(const uint8_t *p) { return _cvtsh_ss(load_u16(p)); }

/* Σ q·x over 32 values as 8 int32 partial sums, q unsigned (≤ 63) and x signed int8 (|x| ≤ 127): vpmaddubsw's pair
 * sums are ≤ 2·63·127 = 16002, no saturation. */
AVX2 static inline __m256i dot32(__m256i q, const int8_t *x) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(q, _mm256_loadu_si256((const __m256i *) x)), _mm256_set1_epi16(1));
}


/* ---------------------------------------------------------------- 32-blocks: Q4_1, Q5_0, Q5_1 */

/*
 * One row of a 32-block format, groups of 8 blocks as the Q4_0 kernel. Per block b: Σ q·x in integers, then
 *   Q5_0: d·d_x·(Σ q·x − 16·Σ x)         (values d·(q − 16))
 *   Q4_1, Q5_1: d·d_x·Σ q·x + m·d_x·Σ x   (values d·q + m)
 * bb: bytes per block; off: where the nibbles start; hb: where the 5th bits start (0: none); mo: where m is (0: none).
 */
AVX2 static ALWAYS_INLINE void q32_rows_t(const uint8_t *w, int nb, int bb, int off, int hb, int mo, int T,
                                          const int8_t *const *xq, const float *const *xd, const int32_t *const *xs8, float *out) {
    __m256 acc[4], accm[4];
    for (int t = 0; t < T; t++) acc[t] = accm[t] = _mm256_setzero_ps();
    for (int b = 0; b < nb; b += 8) {
        int n = nb - b < 8 ? nb - b : 8;
        const uint8_t *p = w + (int64_t) bb * b;
        prefetch_ahead(p, (8 * bb + 63) / 64);
        __m256i q[8];                                  /* the group's values, unpacked once for all T tokens */
        for (int i = 0; i < 8; i++) q[i] = i < n ? q45_values(p + bb * i + off, hb ? p + bb * i + hb : NULL) : _mm256_setzero_si256();
        __m256i live = _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        /* the scales gathered in general-purpose registers (stack arrays would cost failed store forwards) */
        __m256 dw = n == 8 ? scales8(p, bb) : scales_first(p, bb, n), mw = _mm256_setzero_ps();
        if (mo) mw = n == 8 ? scales8(p + mo, bb) : scales_first(p + mo, bb, n);
        for (int t = 0; t < T; t++) {
            const int8_t *x = xq[t] + 32 * b;
            __m256i v[8];                              /* a last group reads no activation past the row */
            for (int i = 0; i < 8; i++) v[i] = i < n ? dot32(q[i], x + 32 * i) : _mm256_setzero_si256();
            __m256i s = sum8x8(v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]);
            __m256i xs = _mm256_maskload_epi32(xs8[t] + b, live);
            __m256 xdv = _mm256_maskload_ps(xd[t] + b, live);
            if (!mo) s = _mm256_sub_epi32(s, _mm256_slli_epi32(xs, 1));          /* 16·Σx = 2 · (8·Σx) */
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(dw, xdv), acc[t]);
            if (mo) accm[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(xs), _mm256_mul_ps(mw, xdv), accm[t]);
        }
    }
    for (int t = 0; t < T; t++) out[t] = hsum_f32(acc[t]) + 0.125f * hsum_f32(accm[t]);
}

/* q32_rows_t for one activation (decode). Measured alternating with a copy that unpacks each block next to its use
 * (C harness, 1408-column Q5_0 rows): within noise once the layout is a literal (see kv_matvec_kq). */
AVX2 static ALWAYS_INLINE float q32_row(const uint8_t *w, int nb, int bb, int off, int hb, int mo,
                                       const int8_t *xq, const float *xd, const int32_t *xs8) {
    float out;
    q32_rows_t(w, nb, bb, off, hb, mo, 1, &xq, &xd, &xs8, &out);
    return out;
}

/* Lanes 0-3 and 4-7 of v each summed in hsum_f32's order for a vector whose other half is zero. */
AVX2 static inline void hsum_halves(__m256 v, float *lo, float *hi) {
    v = _mm256_add_ps(v, _mm256_setzero_ps());
    v = _mm256_add_ps(v, _mm256_permute_ps(v, 0x4E));
    v = _mm256_add_ps(v, _mm256_movehdup_ps(v));
    *lo = _mm256_cvtss_f32(v);
    *hi = _mm_cvtss_f32(_mm256_extractf128_ps(v, 1));
}

/*
 * Two rows of exactly 4 blocks (128 columns: attn_k_b, per head, in Q4_K_M files) as one contiguous group of 8,
 * y[0] = row r, y[1] = row r + 1, each bit-identical to q32_row's (its 4-block tail: products onto zero lane by lane,
 * then the same summation order). Measured (C harness, one thread, in cache): 14 ns per row alone, ~6 in pairs.
 */
AVX2 static ALWAYS_INLINE void q32_rowpair4(const uint8_t *p, int bb, int off, int hb, int mo,
                              const int8_t *xq, const float *xd, const int32_t *xs8, float *y) {
    __m256i v[8];
    for (int i = 0; i < 8; i++) v[i] = dot32(q45_values(p + bb * i + off, hb ? p + bb * i + hb : NULL), xq + 32 * (i & 3));
    __m256i s = sum8x8(v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]);
    __m256i xs = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *) xs8));
    __m256 xdv = _mm256_broadcast_ps((const __m128 *) xd);
    if (!mo) s = _mm256_sub_epi32(s, _mm256_slli_epi32(xs, 1));
    __m256 acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(scales8(p, bb), xdv), _mm256_setzero_ps());
    float a0, a1, m0 = 0, m1 = 0;
    hsum_halves(acc, &a0, &a1);
    if (mo) {
        __m256 accm = _mm256_fmadd_ps(_mm256_cvtepi32_ps(xs), _mm256_mul_ps(scales8(p + mo, bb), xdv), _mm256_setzero_ps());
        hsum_halves(accm, &m0, &m1);
    }
    y[0] = a0 + 0.125f * m0;
    y[1] = a1 + 0.125f * m1;
}

/* ---------------------------------------------------------------- k-quants: Q4_K, Q5_K, Q6_K (super-blocks of 256) */

/*
 * The k-quants take the activation in llama.cpp's Q8_K form (QuantizedInput.k8): int8 values xk with one scale dk per
 * 256, and bs, the int16 sum of every 16 values. With one activation scale per super-block, the weights' integer
 * sub-block scales are applied in 16-bit multiply-adds and the whole super-block is summed in int32: one float
 * multiply-add per 256 values.
 */


/* pshufb masks: int16 element k of each 128-bit half repeated over the half (k = 0..7) */
#define REP16(k) _mm256_set1_epi16((short) ((2 * (k)) | (2 * (k) + 1) << 8))

/*
 * One Q4_K (q5 = 0) or Q5_K row against T = 1..4 activations (xk[t], dk[t], bs[t]): per super-block, values
 * d·sc_k·q − dmin·m_k on sub-block k (32 values), so
 *   Σ = d·dk · Σ_k sc_k·(Σ q·xk)_k − dmin·dk · Σ_k m_k·(Σ xk)_k.
 * Layout: d, dmin (f16), 12 scale bytes, [Q5_K: 32 bytes of 5th bits], 128 nibble bytes; nibble byte l of 64-chunk j
 * holds value 64j + l (low) and 64j + 32 + l (high); Q5_K's 5th bits of those are bits 2j and 2j + 1 of qh[l].
 * The weights are unpacked once per super-block for all T tokens (the prefill GEMM passes 4, the matvec 1: with
 * T a constant in each inlined copy, both compute every token's sum in the same order, bit for bit).
 * Integer ranges: vpmaddubsw pair sums ≤ 2·31·127 = 7874, times a 6-bit scale and paired by vpmaddwd ≤ 992124 per
 * lane, 8 sub-blocks ≤ 7.9e6; the mins' Σ m·bs ≤ 2·63·2032 per lane.
 */
AVX2 static ALWAYS_INLINE void qk45_rows(const uint8_t *w, int nsb, int q5, int T, const int8_t *const *xk,
                                         const float *const *dk, const int16_t *const *bs, float *out) {
    const int bb = q5 ? 176 : 144, qs_at = q5 ? 48 : 16;
    const __m256i m0f = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
    __m256 acc[4], accm[4];
    for (int t = 0; t < T; t++) acc[t] = accm[t] = _mm256_setzero_ps();
    for (int s = 0; s < nsb; s++) {
        const uint8_t *p = w + (int64_t) bb * s;
        prefetch_ahead(p, q5 ? 4 : 3);
        uint64_t sc, mn;
        k_scales(p + 4, &sc, &mn);
        __m256i sc16 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long) sc)));
        __m256i h = q5 ? _mm256_loadu_si256((const __m256i *) (p + 16)) : _mm256_setzero_si256();
        __m256i sumi[4];
        for (int t = 0; t < T; t++) sumi[t] = _mm256_setzero_si256();
        for (int j = 0; j < 4; j++) {
            __m256i raw = _mm256_loadu_si256((const __m256i *) (p + qs_at + 32 * j));
            __m256i lo = _mm256_and_si256(raw, m0f), hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m0f);
            if (q5) {
                /* bit 2j (low values) and 2j + 1 (high values) of each qh byte, moved to bit 4 */
                lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(h, one), 4));
                hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 1), one), 4));
                h = _mm256_srli_epi16(h, 2);
            }
            __m256i sl = _mm256_shuffle_epi8(sc16, REP16(2 * j)), sh = _mm256_shuffle_epi8(sc16, REP16(2 * j + 1));
            for (int t = 0; t < T; t++) {
                const int8_t *x = xk[t] + 256 * s + 64 * j;
                __m256i pl = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *) x)), sl);
                __m256i ph = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *) (x + 32))), sh);
                sumi[t] = _mm256_add_epi32(sumi[t], _mm256_add_epi32(pl, ph));
            }
        }
        /* mins: m_k against the two 16-sums of sub-block k */
        __m128i m8 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long) mn));
        __m256i m16 = _mm256_set_m128i(_mm_unpackhi_epi16(m8, m8), _mm_unpacklo_epi16(m8, m8));
        float d = f16_at(p), dmin = f16_at(p + 2);
        for (int t = 0; t < T; t++) {
            __m256i msum = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *) (bs[t] + 16 * s)), m16);
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi[t]), _mm256_set1_ps(d * dk[t][s]), acc[t]);
            accm[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(msum), _mm256_set1_ps(dmin * dk[t][s]), accm[t]);
        }
    }
    for (int t = 0; t < T; t++) out[t] = hsum_f32(acc[t]) - hsum_f32(accm[t]);
}

/*
 * One Q6_K row against T = 1..4 activations: per super-block (ql[128] low nibbles, qh[64] top 2 bits, int8
 * scales[16], f16 d at 208), values d·sc·(q − 32), one scale per 16 values. Per half h (128 values): with
 * A = ql[64h..+32), B = ql[64h+32..+32), H = qh[32h..+32), value l + 32i (l < 32) of the half is, for i = 0..3,
 * (A & 15 | H bits 0-1), (B & 15 | bits 2-3), (A >> 4 | bits 4-5), (B >> 4 | bits 6-7), the 2 bits on top. The two
 * 16-value halves of 32-block 4h + i take scales[8h + 2i] and scales[8h + 2i + 1]. The −32 goes through the
 * 16-sums: Σ sc·(q − 32)·x = Σ sc·q·x − 32·Σ sc·bs. As qk45_rows, the weights are unpacked once for all T tokens.
 * Integer ranges: pair sums ≤ 2·63·127 = 16002, times |sc| ≤ 128 paired ≤ 4.1e6 per lane, 8 blocks ≤ 3.3e7.
 */
AVX2 static ALWAYS_INLINE void q6k_rows(const uint8_t *w, int nsb, int T, const int8_t *const *xk,
                                        const float *const *dk, const int16_t *const *bs, float *out) {
    const __m256i m0f = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
    __m256 acc[4];
    for (int t = 0; t < T; t++) acc[t] = _mm256_setzero_ps();
    for (int s = 0; s < nsb; s++) {
        const uint8_t *p = w + (int64_t) 210 * s;
        prefetch_ahead(p, 4);
        __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *) (p + 192)));   /* 16 scales as int16 */
        __m256i sumi[4];
        for (int t = 0; t < T; t++) {
            __m256i corr = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *) (bs[t] + 16 * s)), sc16);
            sumi[t] = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(corr, 5));
        }
        for (int h = 0; h < 2; h++) {
            __m256i A = _mm256_loadu_si256((const __m256i *) (p + 64 * h));
            __m256i B = _mm256_loadu_si256((const __m256i *) (p + 64 * h + 32));
            __m256i H = _mm256_loadu_si256((const __m256i *) (p + 128 + 32 * h));
            /* this half's 8 scales in both 128-bit halves: pair i of them is (2i, 2i + 1) */
            __m256i sch = _mm256_permute2x128_si256(sc16, sc16, h ? 0x11 : 0x00);
            __m256i q[4] = {
                _mm256_or_si256(_mm256_and_si256(A, m0f), _mm256_and_si256(_mm256_slli_epi16(H, 4), m30)),
                _mm256_or_si256(_mm256_and_si256(B, m0f), _mm256_and_si256(_mm256_slli_epi16(H, 2), m30)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(A, 4), m0f), _mm256_and_si256(H, m30)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(B, 4), m0f), _mm256_and_si256(_mm256_srli_epi16(H, 2), m30)),
            };
            for (int i = 0; i < 4; i++) {
                /* lanes 0-7 (values 0-15 of the block) scale 2i, lanes 8-15 scale 2i + 1 */
                __m256i scp = _mm256_shuffle_epi8(sch, _mm256_setr_epi8(4 * i, 4 * i + 1, 4 * i, 4 * i + 1, 4 * i, 4 * i + 1, 4 * i, 4 * i + 1,
                                                                        4 * i, 4 * i + 1, 4 * i, 4 * i + 1, 4 * i, 4 * i + 1, 4 * i, 4 * i + 1,
                                                                        4 * i + 2, 4 * i + 3, 4 * i + 2, 4 * i + 3, 4 * i + 2, 4 * i + 3, 4 * i + 2, 4 * i + 3,
                                                                        4 * i + 2, 4 * i + 3, 4 * i + 2, 4 * i + 3, 4 * i + 2, 4 * i + 3, 4 * i + 2, 4 * i + 3));
                for (int t = 0; t < T; t++) {
                    __m256i xv = _mm256_loadu_si256((const __m256i *) (xk[t] + 256 * s + 32 * (4 * h + i)));
                    sumi[t] = _mm256_add_epi32(sumi[t], _mm256_madd_epi16(_mm256_maddubs_epi16(q[i], xv), scp));
                }
            }
        }
        float d = f16_at(p + 208);
        for (int t = 0; t < T; t++) acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi[t]), _mm256_set1_ps(d * dk[t][s]), acc[t]);
    }
    for (int t = 0; t < T; t++) out[t] = hsum_f32(acc[t]);
}

/* ---------------------------------------------------------------- entry points */

static int is_k(int type) { return type == KQ_Q4_K || type == KQ_Q5_K || type == KQ_Q6_K; }

/* A k-quant row against T activations in the per-256 form (token t: xk[t], dk[t], bs[t]); T a constant per call site. */
AVX2 static ALWAYS_INLINE void k_rows(int type, const uint8_t *row, int cols, int T, const int8_t *const *xk,
                                      const float *const *dk, const int16_t *const *bs, float *out) {
    if (type == KQ_Q6_K) q6k_rows(row, cols / 256, T, xk, dk, bs, out);
    else qk45_rows(row, cols / 256, type == KQ_Q5_K, T, xk, dk, bs, out);
}

/* Rows [r, r1) of a 32-block format against one activation; rows of 4 blocks two at a time (q32_rowpair4). */
AVX2 static ALWAYS_INLINE void q32_rows(int bb, int off, int hb, int mo, const uint8_t *w, int64_t rb, int32_t r, int32_t r1,
                                        int cols, const int8_t *xq, const float *xd, const int32_t *xs8, float *y, int64_t ystride) {
    if (cols == 128) {
        for (; r + 2 <= r1; r += 2) {
            float two[2];
            q32_rowpair4(w + r * rb, bb, off, hb, mo, xq, xd, xs8, two);
            y[r * ystride] = two[0];
            y[(r + 1) * ystride] = two[1];
        }
    }
    for (; r < r1; r++) y[r * ystride] = q32_row(w + r * rb, cols / 32, bb, off, hb, mo, xq, xd, xs8);
}

static int64_t kq_row_bytes(int type, int cols) {
    switch (type) {
        case KQ_Q4_K: return (int64_t) cols / 256 * 144;
        case KQ_Q5_K: return (int64_t) cols / 256 * 176;
        case KQ_Q6_K: return (int64_t) cols / 256 * 210;
        case KQ_Q4_1: return (int64_t) cols / 32 * 20;
        case KQ_Q5_0: return (int64_t) cols / 32 * 22;
        case KQ_Q5_1: return (int64_t) cols / 32 * 24;
        default: return -1;
    }
}

/**
 * y[yo + r] = Σ_c W[r, c]·x'[c] for rows r in [r0, r1) of a matrix of the given type (KQ_*) whose row r starts at
 * w + r·(row bytes). x' is the quantized activation: for the k-quants its per-256 form (xq = int8 values, xd = their
 * scales, one per 256, xs = int16 sums of every 16 values), for the 32-block formats its per-32 form (xq, xd one
 * scale per 32, xs = int32 8 × each block's sum). Returns 0, or −1 (nothing written) for an unknown type or a column
 * count the type cannot hold.
 */
AVX2 int32_t kv_matvec_kq(int32_t type, const uint8_t *w, int32_t r0, int32_t r1, int32_t cols,
                          const int8_t *xq, const float *xd, const void *xs, float *y, int32_t yo) {
    int64_t rb = kq_row_bytes(type, cols);
    if (rb < 0 || cols % (is_k(type) ? 256 : 32) != 0) return -1;
    if (is_k(type)) {
        const int16_t *bs = (const int16_t *) xs;
        for (int32_t r = r0; r < r1; r++) k_rows(type, w + r * rb, cols, 1, &xq, &xd, &bs, y + yo + r);
    } else {
        const int32_t *xs8 = (const int32_t *) xs;
        /* literal layouts, so that each inlined copy is specialised for its format */
        switch (type) {
            case KQ_Q4_1: q32_rows(20, 4, 0, 2, w, rb, r0, r1, cols, xq, xd, xs8, y + yo, 1); break;
            case KQ_Q5_0: q32_rows(22, 6, 2, 0, w, rb, r0, r1, cols, xq, xd, xs8, y + yo, 1); break;
            default:      q32_rows(24, 8, 4, 2, w, rb, r0, r1, cols, xq, xd, xs8, y + yo, 1); break;     /* KQ_Q5_1 */
        }
    }
    return 0;
}

/* Rows per tile of the batched product: 16 rows of 2048 Q4_K columns are 18 KB, in L1 for every token. */
#define KQ_TILE_ROWS 16

/* The batched product of a 32-block format (layout bb, off, hb, mo as q32_row): rows unpacked once per 4 tokens over
 * tiles of rows held in L1; 128-column rows (two at a time) per token. */
AVX2 static ALWAYS_INLINE void q32_gemm(int bb, int off, int hb, int mo, const uint8_t *w, int64_t rb, int32_t r0, int32_t r1,
                                        int cols, const int8_t *xq, const float *xd, const int32_t *xs, int32_t n, float *y, int32_t ldy) {
    int nb = cols / 32;
    if (cols != 128) {                                /* 128: q32_rows' two-rows path per token below */
        for (int32_t r = r0; r < r1; r += KQ_TILE_ROWS) {      /* a tile of rows stays in L1 over all tokens */
            int32_t re = r + KQ_TILE_ROWS < r1 ? r + KQ_TILE_ROWS : r1;
            for (int32_t t0 = 0; t0 < n; t0 += 4) {
                int T = n - t0 < 4 ? n - t0 : 4;
                const int8_t *xt[4];
                const float *dt[4];
                const int32_t *st[4];
                for (int t = 0; t < T; t++) {
                    xt[t] = xq + (int64_t) (t0 + t) * cols;
                    dt[t] = xd + (int64_t) (t0 + t) * nb;
                    st[t] = xs + (int64_t) (t0 + t) * nb;
                }
                for (int32_t i = r; i < re; i++) {
                    float out[4];
                    switch (T) {              /* a constant T per inlined copy */
                        case 4: q32_rows_t(w + i * rb, nb, bb, off, hb, mo, 4, xt, dt, st, out); break;
                        case 3: q32_rows_t(w + i * rb, nb, bb, off, hb, mo, 3, xt, dt, st, out); break;
                        case 2: q32_rows_t(w + i * rb, nb, bb, off, hb, mo, 2, xt, dt, st, out); break;
                        default: q32_rows_t(w + i * rb, nb, bb, off, hb, mo, 1, xt, dt, st, out); break;
                    }
                    for (int t = 0; t < T; t++) y[(int64_t) (t0 + t) * ldy + i] = out[t];
                }
            }
        }
        return;
    }
    for (int32_t r = r0; r < r1; r += KQ_TILE_ROWS) {
        int32_t re = r + KQ_TILE_ROWS < r1 ? r + KQ_TILE_ROWS : r1;
        for (int32_t t = 0; t < n; t++) {
            const int8_t *x = xq + (int64_t) t * cols;
            const float *d = xd + (int64_t) t * nb;
            const int32_t *s8 = xs + (int64_t) t * nb;
            q32_rows(bb, off, hb, mo, w, rb, r, re, cols, x, d, s8, y + (int64_t) t * ldy, 1);
        }
    }
}

/**
 * y[t·ldy + r] = Σ_c W[r, c]·x'_t[c] for rows r in [r0, r1) and tokens t in [0, n), the n activations stored one
 * after another in the form kv_matvec_kq takes. Each row is unpacked once per 4 tokens (k_rows, q32_gemm), over tiles
 * of rows held in L1. Each result equals kv_matvec_kq's bit for bit.
 */
AVX2 int32_t kv_gemm_kq(int32_t type, const uint8_t *w, int32_t r0, int32_t r1, int32_t cols,
                        const int8_t *xq, const float *xd, const void *xs, int32_t n, float *y, int32_t ldy) {
    int64_t rb = kq_row_bytes(type, cols);
    if (rb < 0 || cols % (is_k(type) ? 256 : 32) != 0) return -1;
    if (is_k(type)) {
        int nsb = cols / 256;
        for (int32_t r = r0; r < r1; r += KQ_TILE_ROWS) {          /* a tile of rows stays in L1 over all tokens */
            int32_t re = r + KQ_TILE_ROWS < r1 ? r + KQ_TILE_ROWS : r1;
            for (int32_t t0 = 0; t0 < n; t0 += 4) {
                int T = n - t0 < 4 ? n - t0 : 4;
                const int8_t *xk[4];
                const float *dk[4];
                const int16_t *bs[4];
                for (int t = 0; t < T; t++) {
                    xk[t] = xq + (int64_t) (t0 + t) * cols;
                    dk[t] = xd + (int64_t) (t0 + t) * nsb;
                    bs[t] = (const int16_t *) xs + (int64_t) (t0 + t) * nsb * 16;
                }
                for (int32_t i = r; i < re; i++) {
                    float out[4];
                    switch (T) {              /* a constant T per inlined copy */
                        case 4: k_rows(type, w + i * rb, cols, 4, xk, dk, bs, out); break;
                        case 3: k_rows(type, w + i * rb, cols, 3, xk, dk, bs, out); break;
                        case 2: k_rows(type, w + i * rb, cols, 2, xk, dk, bs, out); break;
                        default: k_rows(type, w + i * rb, cols, 1, xk, dk, bs, out); break;
                    }
                    for (int t = 0; t < T; t++) y[(int64_t) (t0 + t) * ldy + i] = out[t];
                }
            }
        }
        return 0;
    }
    switch (type) {                                   /* literal layouts, as in kv_matvec_kq */
        case KQ_Q4_1: q32_gemm(20, 4, 0, 2, w, rb, r0, r1, cols, xq, xd, (const int32_t *) xs, n, y, ldy); break;
        case KQ_Q5_0: q32_gemm(22, 6, 2, 0, w, rb, r0, r1, cols, xq, xd, (const int32_t *) xs, n, y, ldy); break;
        default:      q32_gemm(24, 8, 4, 2, w, rb, r0, r1, cols, xq, xd, (const int32_t *) xs, n, y, ldy); break;
    }
    return 0;
}
