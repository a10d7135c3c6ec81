/*
 * kimivl native kernels for x86-64 CPUs with AVX-512 and AVX512-VNNI (Zen 4 and 5, Ice Lake and later): the same
 * products as kimivl_kernels.c's AVX2 kernels, with 512-bit vpdpbusd, which multiplies 64 unsigned bytes by 64 signed
 * bytes and adds each group of 4 products into an int32 lane in one instruction. The AVX2 form needs vpmaddubsw (int16
 * pair sums), a 16-bit add and later a vpmaddwd for the same 32 bytes; here one instruction does 64.
 *
 * Every result equals the AVX2 kernel's bit for bit: the integer block sums are exact in both, and the float steps
 * after them (block sums minus the activation's block-sum correction, times d_w·d_x, fused-added per group of 8 blocks
 * in 8 float lanes, then hsum_f32) are the same operations in the same order. So a machine's results do not depend on
 * which of the two it runs, and NativeKernelsTest compares the two forms exactly.
 *
 * Used only where kv_cpu_avx512() is 1 (Zen 4 and 5, Ice Lake and later) (dev.kimivl.tensor.NativeKernels, KernelSettings.nativeIsa).
 */
#include <cpuid.h>
#include "kimivl_common.h"

#define AVX512 __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx512vbmi")))
#include <string.h>
#define ALWAYS_INLINE __attribute__((always_inline)) inline

/* Q4_K rows repacked 4 at a time (the R4 section at the end of this file): the type code kv_matvec_kq_512 and
   kv_gemm_kq_512 take for them, the bytes of a group's super-block, and the row-by-row way back to the Q4_K layout
   that the batched products use */
#define KQ512_Q4_K_R4 8
#define KV_R4_SB 592
int32_t kv_q4k_r4_unpack(const uint8_t *w4, int32_t r0, int32_t r1, int32_t cols, uint8_t *dst);
int32_t kv_matvec_q4k_r4(const uint8_t *w4, int32_t r0, int32_t r1, int32_t cols, const int8_t *xq, const float *xd,
                         const void *xs, float *y, int32_t yo);

/* [32 bytes at a | 32 bytes at b] as one vector, from two 32-byte loads */
AVX512 static ALWAYS_INLINE __m512i load_256_pair(const uint8_t *a, const uint8_t *b) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *) a)), _mm256_loadu_si256((const __m256i *) b), 1);
}

/* 64 bytes at p by two 32-byte loads: where p may sit anywhere in a cache line, a 64-byte load splits lines and the
   row streams from memory slower (measured on Zen 4 for the k-quant matvecs) */
AVX512 static ALWAYS_INLINE __m512i load_2x256(const uint8_t *p) { return load_256_pair(p, p + 32); }


/**
 * 1 when this CPU and OS support what these kernels use: AVX2/FMA/F16C (kv_cpu_ok), AVX512F, BW, VL, DQ, VBMI (byte
 * permutes) and AVX512-VNNI, with the opmask and ZMM state enabled by the OS; else 0.
 */
int32_t kv_cpu_ok(void);
int32_t kv_cpu_avx512(void) {
    if (!kv_cpu_ok()) return 0;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 0xE6) != 0xE6) return 0;                 /* XMM, YMM, opmask, ZMM_Hi256, Hi16_ZMM */
    unsigned a, b, c, d;
    __cpuid_count(7, 0, a, b, c, d);
    int f = (b >> 16) & 1, dq = (b >> 17) & 1, bw = (b >> 30) & 1, vl = (b >> 31) & 1, vbmi = (c >> 1) & 1, vnni = (c >> 11) & 1;
    return f && dq && bw && vl && vbmi && vnni;
}

/* Widest row of the GEMM (as kimivl_kernels.c's GEMM_MAX_COLS). */
#define GEMM512_MAX_COLS 32768

/* Group g of an unpacked row (r[i]: block i's 32 values as bytes) transposed and stored in the pair layout. */
AVX512 static inline void store_group(__m256i *r, uint8_t *row, int g) {
    transpose8x8(r);
    for (int k = 0; k < 8; k++) _mm256_store_si256((__m256i *) (row + gemm_x_at(g, k)), r[k]);
}

/* The 32-block formats of the prefill GEMM. */
enum { G512_Q4_0, G512_Q5_0, G512_Q8_0, G512_Q4_K };

/*
 * Groups [g0, g1) of a row of a 32-block format (fmt: G512_*) unpacked block by block into the activations' pair
 * layout (gemm_x_at), zeros past nb. The values the GEMM multiplies: Q4_0's nibbles q = w + 8 (0..15), Q5_0's
 * q = w + 16 (0..31, the 5th bits added), Q8_0's w + 128 as unsigned bytes (the sign bit flipped); each is corrected
 * through the activation's block sums (tile4_512). Scales ws[b], zero past nb.
 */
AVX512 static ALWAYS_INLINE void unpack_groups512(int fmt, const uint8_t *p, int nb, int g0, int g1, uint8_t *w, float *ws) {
    const int bb = fmt == G512_Q8_0 ? 34 : fmt == G512_Q5_0 ? 22 : 18;
    for (int g = g0; g < g1; g++) {
        __m256i r[8];
        for (int i = 0; i < 8; i++) {
            int b = 8 * g + i;
            if (b < nb) {
                const uint8_t *blk = p + (int64_t) bb * b;
                if (fmt == G512_Q8_0) r[i] = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *) (blk + 2)), _mm256_set1_epi8((char) 0x80));
                else if (fmt == G512_Q5_0) r[i] = q45_values(blk + 6, blk + 2);
                else r[i] = q45_values(blk + 2, NULL);
                ws[b] = _cvtsh_ss(load_u16(blk));
            } else {
                r[i] = _mm256_setzero_si256();
                ws[b] = 0.0f;
            }
        }
        store_group(r, w, g);
    }
}

/*
 * One weight row unpacked in the activations' pair layout (gemm_x_at): 2·P groups (P = ceil(G / 2)), an odd G's last
 * group zero. Q4_0: the nibble values 0..15. Scales ws[16·P], zero past nb.
 *
 * Vector k of a pair holds values 4k..4k+3 of each of its 16 blocks: for k < 4 the low nibbles of the block's nibble
 * bytes 4k..4k+3, for k ≥ 4 the high nibbles of bytes 4(k − 4)... So a pair is a 16 × 4 transpose of the blocks'
 * nibble dwords (16 loads, 12 two-source permutes) and then one AND, or a shift and an AND, per vector: about 55
 * instructions per 16 blocks, against 130 for the AVX2 unpacker's per-block widening and 8 × 8 byte transposes.
 */
AVX512 static void unpack_q4_row512(const uint8_t *p, int nb, uint8_t *wq, float *ws) {
    const __m512i m0f = _mm512_set1_epi8(0x0F);
    /* dword k of blocks 0-3 are lanes k, 4 + k, 8 + k, 12 + k of a vector of 4 blocks; idx_k picks dword k of the 8
     * blocks of two such vectors (lanes 0-7) and dword k + 1 (lanes 8-15) */
    const __m512i idx0 = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 1, 5, 9, 13, 17, 21, 25, 29);
    const __m512i idx2 = _mm512_setr_epi32(2, 6, 10, 14, 18, 22, 26, 30, 3, 7, 11, 15, 19, 23, 27, 31);
    int G = (nb + 7) / 8, P = (G + 1) / 2;
    for (int q = 0; q < P; q++) {
        int b0 = 16 * q;
        uint8_t *o = wq + 512 * q;
        if (b0 + 16 <= nb) {
            const uint8_t *s = p + 18 * b0 + 2;
            __m512i z[4];
            for (int j = 0; j < 4; j++) {
                const uint8_t *t = s + 18 * 4 * j;
                __m512i v = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *) t));
                v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *) (t + 18)), 1);
                v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *) (t + 36)), 2);
                z[j] = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *) (t + 54)), 3);
            }
            /* blocks 0-7: [d0 | d1], [d2 | d3]; blocks 8-15 likewise */
            __m512i a01 = _mm512_permutex2var_epi32(z[0], idx0, z[1]), a23 = _mm512_permutex2var_epi32(z[0], idx2, z[1]);
            __m512i b01 = _mm512_permutex2var_epi32(z[2], idx0, z[3]), b23 = _mm512_permutex2var_epi32(z[2], idx2, z[3]);
            /* dword k of all 16 blocks: the low 256 bits of a with those of b, or the high ones */
            __m512i d[4] = {_mm512_shuffle_i64x2(a01, b01, 0x44), _mm512_shuffle_i64x2(a01, b01, 0xEE),
                            _mm512_shuffle_i64x2(a23, b23, 0x44), _mm512_shuffle_i64x2(a23, b23, 0xEE)};
            for (int k = 0; k < 4; k++) {
                _mm512_store_si512((void *) (o + 64 * k), _mm512_and_si512(d[k], m0f));
                _mm512_store_si512((void *) (o + 64 * (k + 4)), _mm512_and_si512(_mm512_srli_epi16(d[k], 4), m0f));
            }
            _mm256_store_ps(ws + b0, scales8(p + 18 * b0, 18));
            _mm256_store_ps(ws + b0 + 8, scales8(p + 18 * (b0 + 8), 18));
            continue;
        }
        unpack_groups512(G512_Q4_0, p, nb, 2 * q, 2 * q + 2, wq, ws);     /* the last, partial pair */
    }
}

/*
 * One Q4_K row (nsb super-blocks of 144 bytes) unpacked into the activations' pair layout as 32-blocks: a super-block
 * is one group of 8 blocks, its sub-block j block 8s + j (values q 0..15: the low nibbles of quant bytes 32·(j/2)..
 * for even j, the high ones for odd j). A Q4_K value is d·sc_j·q − dmin·m_j, so per block the GEMM takes the scale
 * ws = d·sc_j and the offset wm = dmin·m_j / 8 (against the packed block sums, which are 8·Σx); both products are
 * exact in float (11 + 6 significant bits). An odd last group of a pair is zero, scales and offsets too.
 */
AVX512 static void unpack_q4k_row512(const uint8_t *p, int nsb, uint8_t *wq, float *ws, float *wm) {
    const __m256i m0f = _mm256_set1_epi8(0x0F);
    int P = (nsb + 1) / 2;
    for (int g = 0; g < 2 * P; g++) {
        __m256i r[8];
        if (g < nsb) {
            const uint8_t *b = p + 144 * g;
            uint64_t sc, mn;
            k_scales(b + 4, &sc, &mn);
            float d = _cvtsh_ss(load_u16(b)), dmin = _cvtsh_ss(load_u16(b + 2));
            for (int c = 0; c < 4; c++) {
                __m256i raw = _mm256_loadu_si256((const __m256i *) (b + 16 + 32 * c));
                r[2 * c] = _mm256_and_si256(raw, m0f);
                r[2 * c + 1] = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m0f);
            }
            /* ws_j = d·sc_j, wm_j = dmin·m_j / 8, 8 lanes at a time */
            __m256 scf = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long) sc)));
            __m256 mnf = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long) mn)));
            _mm256_storeu_ps(ws + 8 * g, _mm256_mul_ps(_mm256_set1_ps(d), scf));
            _mm256_storeu_ps(wm + 8 * g, _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(dmin), mnf), _mm256_set1_ps(0.125f)));
        } else {
            for (int j = 0; j < 8; j++) { r[j] = _mm256_setzero_si256(); ws[8 * g + j] = 0.0f; wm[8 * g + j] = 0.0f; }
        }
        store_group(r, wq, g);
    }
}

/*
 * 4 unpacked rows × T = 1..4 packed tokens (T a constant per inlined copy): out[4·i + t] = row i · token t.
 * Per pair of groups, 8 steps of 64 bytes: each weight load feeds T vpdpbusd, each activation load 4; the int32
 * lane j of an accumulator ends as block j's Σ w·x (lanes 0-7 the pair's first group, 8-15 its second). Then, per
 * group, the AVX2 kernel's float step: (Σ w·x − corr)·(d_w·d_x) fused-added into 8 float lanes. corr: the packed
 * block sums xs (8·Σx) shifted left by xs_shift: Q4_0's nibbles are q = w + 8, so Σ w·x = Σ q·x − 8·Σx (shift 0);
 * Q5_0's values are w + 16 (shift 1); Q8_0's unsigned bytes are w + 128 (shift 4: 128·Σx = 16·(8·Σx)). Q4_K (wmc, the
 * rows' per-block offsets; NULL for the others) takes the float step ws·Σ q·x − wm·(8·Σx) instead, times d_x.
 */
AVX512 static ALWAYS_INLINE void tile4_512(const uint8_t *const *wa, const float *const *wsc, const float *const *wmc,
                                           const int8_t *x, int64_t xbytes, const float *xd, const int32_t *xs, int64_t xfloats,
                                           int G, int T, int xs_shift, float *out) {
    int P = (G + 1) / 2;
    __m256 f[4][4];
    for (int i = 0; i < 4; i++)
        for (int t = 0; t < T; t++) f[i][t] = _mm256_setzero_ps();
    for (int p = 0; p < P; p++) {
        __m512i acc[4][4];
        for (int i = 0; i < 4; i++)
            for (int t = 0; t < T; t++) acc[i][t] = _mm512_setzero_si512();
#pragma GCC unroll 8                                /* measured: 8 steps unrolled 388 GOP/s on one core, 2: 329 */
        for (int k = 0; k < 8; k++) {
            int o = 512 * p + 64 * k;
            __m512i xv[4];
            for (int t = 0; t < T; t++) xv[t] = _mm512_loadu_si512((const void *) (x + t * xbytes + o));
            for (int i = 0; i < 4; i++) {
                __m512i w = _mm512_load_si512((const void *) (wa[i] + o));
                for (int t = 0; t < T; t++) acc[i][t] = _mm512_dpbusd_epi32(acc[i][t], w, xv[t]);
            }
        }
        int second = 2 * p + 1 < G;
        for (int t = 0; t < T; t++) {
            __m512i sums = _mm512_loadu_si512((const void *) (xs + t * xfloats + 16 * p));
            __m512 xdt = _mm512_loadu_ps(xd + t * xfloats + 16 * p);
            if (wmc) {
                /* Q4_K: Σ (ws·q − 8·wm)·x = ws·Σ q·x − wm·(8·Σx), in float per block */
                __m512 sx = _mm512_cvtepi32_ps(sums);
                for (int i = 0; i < 4; i++) {
                    __m512 c = _mm512_cvtepi32_ps(acc[i][t]);
                    __m512 v = _mm512_fnmadd_ps(sx, _mm512_load_ps(wmc[i] + 16 * p), _mm512_mul_ps(c, _mm512_load_ps(wsc[i] + 16 * p)));
                    f[i][t] = _mm256_fmadd_ps(_mm512_castps512_ps256(v), _mm512_castps512_ps256(xdt), f[i][t]);
                    if (second) f[i][t] = _mm256_fmadd_ps(_mm512_extractf32x8_ps(v, 1), _mm512_extractf32x8_ps(xdt, 1), f[i][t]);
                }
                continue;
            }
            __m512i corr = _mm512_slli_epi32(sums, xs_shift);
            for (int i = 0; i < 4; i++) {
                __m512 c = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[i][t], corr));
                __m512 dd = _mm512_mul_ps(_mm512_load_ps(wsc[i] + 16 * p), xdt);
                f[i][t] = _mm256_fmadd_ps(_mm512_castps512_ps256(c), _mm512_castps512_ps256(dd), f[i][t]);
                if (second) f[i][t] = _mm256_fmadd_ps(_mm512_extractf32x8_ps(c, 1), _mm512_extractf32x8_ps(dd, 1), f[i][t]);
            }
        }
    }
    for (int i = 0; i < 4; i++)
        for (int t = 0; t < T; t++) out[4 * i + t] = hsum_f32(f[i][t]);
}

/* Row buffers of one GEMM call (on the stack: 4 rows of the widest supported width). */
typedef struct {
    _Alignas(64) uint8_t a[4][GEMM512_MAX_COLS];
    _Alignas(64) float s[4][GEMM512_MAX_COLS / 32];
    _Alignas(64) float m[4][GEMM512_MAX_COLS / 32];      /* Q4_K's per-block offsets */
} gemm512_rows;

/* Tokens per block of the GEMM: their packed activations (≤ 64 × 2 KB for the model's 2048 columns) stay in L2 while
 * every row tile of the call passes over them. Without blocking, a 512-token prompt's 1 MB of activations streamed
 * from L3 once per 4 rows. */
#define GEMM512_TOKEN_BLOCK 64

/* The GEMM driver of the 32-block formats (fmt: G512_*): tokens in blocks held in L2; per block, rows in tiles of 4
 * unpacked once each, then tokens in fours. */
AVX512 static void gemm512(int fmt, int r4, const uint8_t *w, int32_t r0, int32_t r1, int nb,
                           const int8_t *xp, const float *xdp, const int32_t *xsp, int32_t n, float *y, int32_t ldy) {
    int G = (nb + 7) / 8, P = (G + 1) / 2;
    int64_t rb = fmt == G512_Q4_K ? (int64_t) (nb / 8) * 144 : (int64_t) nb * (fmt == G512_Q8_0 ? 34 : fmt == G512_Q5_0 ? 22 : 18);
    int64_t xbytes = (int64_t) P * 512, xfloats = (int64_t) P * 16;
    int shift = fmt == G512_Q8_0 ? 4 : fmt == G512_Q5_0 ? 1 : 0;
    gemm512_rows buf;
    _Alignas(64) uint8_t plain[GEMM512_MAX_COLS / 256 * 144];    /* an R4 row back in the Q4_K layout */
    float out[16];
    for (int32_t tb = 0; tb < n; tb += GEMM512_TOKEN_BLOCK) {
        int32_t te = n - tb < GEMM512_TOKEN_BLOCK ? n : tb + GEMM512_TOKEN_BLOCK;
        for (int32_t r = r0; r < r1; r += 4) {
            int m = r1 - r < 4 ? r1 - r : 4;
            const uint8_t *wa[4];
            const float *ws[4], *wm[4];
            for (int i = 0; i < 4; i++) {
                if (i < m) {
                    /* Q4_0 by the 16-block transpose; Q4_K super-block by super-block; Q5_0 and Q8_0 block by block
                     * (a row is unpacked once for a block of 64 tokens, so this is a small share of the product) */
                    if (fmt == G512_Q4_K && r4) {
                        kv_q4k_r4_unpack(w, r + i, r + i + 1, nb * 32, plain);
                        unpack_q4k_row512(plain, nb / 8, buf.a[i], buf.s[i], buf.m[i]);
                    } else if (fmt == G512_Q4_K) unpack_q4k_row512(w + (r + i) * rb, nb / 8, buf.a[i], buf.s[i], buf.m[i]);
                    else if (fmt == G512_Q4_0) unpack_q4_row512(w + (r + i) * rb, nb, buf.a[i], buf.s[i]);
                    else if (fmt == G512_Q5_0) unpack_groups512(G512_Q5_0, w + (r + i) * rb, nb, 0, 2 * P, buf.a[i], buf.s[i]);
                    else unpack_groups512(G512_Q8_0, w + (r + i) * rb, nb, 0, 2 * P, buf.a[i], buf.s[i]);
                }
                int k = i < m ? i : m - 1;              /* a missing row repeats the last one, not stored */
                wa[i] = buf.a[k];
                ws[i] = buf.s[k];
                wm[i] = buf.m[k];
            }
            /* the next tile's rows, while this one computes: the hardware prefetcher loses the stream between bursts */
            if (r + 4 < r1) {
                /* R4: the group holding row r + 4 (a tile of 4 rows spans at most two groups: its first is enough) */
                const uint8_t *nx = r4 ? w + (int64_t) ((r + 4) >> 2) * (nb / 8) * KV_R4_SB : w + (int64_t) (r + 4) * rb;
                int64_t len = r4 ? (int64_t) (nb / 8) * KV_R4_SB : (int64_t) (r1 - r - 4 < 4 ? r1 - r - 4 : 4) * rb;
                for (int64_t o = 0; o < len; o += 64) _mm_prefetch((const char *) (nx + o), _MM_HINT_T0);
            }
            for (int32_t t = tb; t < te; t += 4) {
                int T = te - t < 4 ? te - t : 4;
                const int8_t *x = xp + t * xbytes;
                const float *xd = xdp + t * xfloats;
                const int32_t *xs = xsp + t * xfloats;
                const float *const *wmc = fmt == G512_Q4_K ? wm : NULL;      /* Q4_K's offsets; the others correct by shift */
                switch (T) {                             /* a constant T per inlined copy */
                    case 4: tile4_512(wa, ws, wmc, x, xbytes, xd, xs, xfloats, G, 4, shift, out); break;
                    case 3: tile4_512(wa, ws, wmc, x, xbytes, xd, xs, xfloats, G, 3, shift, out); break;
                    case 2: tile4_512(wa, ws, wmc, x, xbytes, xd, xs, xfloats, G, 2, shift, out); break;
                    default: tile4_512(wa, ws, wmc, x, xbytes, xd, xs, xfloats, G, 1, shift, out); break;
                }
                /* Q5_0: kimivl_kquants.c's 32-block rows end with + 0.125·(a sum of zeros), which turns −0 into +0 */
                if (fmt == G512_Q5_0) for (int i = 0; i < 16; i++) out[i] += 0.0f;
                for (int i = 0; i < m; i++)
                    for (int j = 0; j < T; j++) y[(int64_t) (t + j) * ldy + r + i] = out[4 * i + j];
            }
        }
    }
}

/**
 * kv_gemm_q4_0's product with AVX-512 VNNI, the same arguments and results bit for bit: y[t·ldy + r] =
 * Σ_c W[r, c]·x'_t[c] for rows [r0, r1), tokens [0, n), activations packed by kv_pack_act (pair layout).
 * Returns 0, or −1 when cols exceeds GEMM512_MAX_COLS (nothing written).
 */
AVX512 int32_t kv_gemm_q4_0_512(const uint8_t *w, int32_t r0, int32_t r1, int32_t cols,
                                const int8_t *xp, const float *xdp, const int32_t *xsp, int32_t n, float *y, int32_t ldy) {
    if (cols > GEMM512_MAX_COLS) return -1;
    gemm512(G512_Q4_0, 0, w, r0, r1, cols / 32, xp, xdp, xsp, n, y, ldy);
    return 0;
}

/**
 * The batched Q5_0 product with AVX-512 VNNI over activations packed by kv_pack_act: each result equals the AVX2
 * 32-block matvec's (kv_matvec_kq, KQ_Q5_0) bit for bit. (Q4_K_M files store ffn_down_exps, 1408 columns, in Q5_0.)
 */
AVX512 int32_t kv_gemm_q5_0_512(const uint8_t *w, int32_t r0, int32_t r1, int32_t cols,
                                const int8_t *xp, const float *xdp, const int32_t *xsp, int32_t n, float *y, int32_t ldy) {
    if (cols > GEMM512_MAX_COLS) return -1;
    gemm512(G512_Q5_0, 0, w, r0, r1, cols / 32, xp, xdp, xsp, n, y, ldy);
    return 0;
}

/**
 * The batched Q4_K product with AVX-512 VNNI over activations packed by kv_pack_act (int8 blocks of 32, llama.cpp's
 * q8_0 form): each super-block unpacked once per block of 64 tokens as 8 blocks of 32 (scale d·sc_j, offset dmin·m_j),
 * then Q4_0's vpdpbusd tiles. Not kv_gemm_kq's results bit for bit: those take the activation in the per-256 Q8_K
 * form (one scale per 256 values) where this takes one per 32, which rounds the activation more finely; the two agree
 * to the activation's rounding (OtherFormatKernelsTest). Callers use it from 8 tokens (a prompt's products), where
 * it is 1.4-1.9× the per-256 kernel's rate, and keep kv_gemm_kq (= the decode matvec) for fewer. cols a multiple of 256.
 */
AVX512 int32_t kv_gemm_q4_k_512(const uint8_t *w, int32_t r0, int32_t r1, int32_t cols,
                                const int8_t *xp, const float *xdp, const int32_t *xsp, int32_t n, float *y, int32_t ldy) {
    if (cols > GEMM512_MAX_COLS || cols % 256 != 0) return -1;
    gemm512(G512_Q4_K, 0, w, r0, r1, cols / 32, xp, xdp, xsp, n, y, ldy);
    return 0;
}

/** kv_gemm_q4_k_512 over a matrix repacked by kv_q4k_r4_pack (each row taken back to the Q4_K layout once per block of
 * 64 tokens): the same results bit for bit. */
AVX512 int32_t kv_gemm_q4_k_r4_512(const uint8_t *w4, int32_t r0, int32_t r1, int32_t cols,
                                   const int8_t *xp, const float *xdp, const int32_t *xsp, int32_t n, float *y, int32_t ldy) {
    if (cols > GEMM512_MAX_COLS || cols % 256 != 0) return -1;
    gemm512(G512_Q4_K, 1, w4, r0, r1, cols / 32, xp, xdp, xsp, n, y, ldy);
    return 0;
}

/** kv_gemm_q8_0's product with AVX-512 VNNI (needs the packed block sums xsp for the unsigned-weight correction). */
AVX512 int32_t kv_gemm_q8_0_512(const uint8_t *w, int32_t r0, int32_t r1, int32_t cols,
                                const int8_t *xp, const float *xdp, const int32_t *xsp, int32_t n, float *y, int32_t ldy) {
    if (cols > GEMM512_MAX_COLS) return -1;
    gemm512(G512_Q8_0, 0, w, r0, r1, cols / 32, xp, xdp, xsp, n, y, ldy);
    return 0;
}

/* ---------------------------------------------------------------- Q4_0 matvec (decode) */

int32_t kv_matvec_q4_0(const uint8_t *w, int32_t r0, int32_t r1, int32_t cols,
                       const int8_t *xq, const float *xd, const int32_t *xs8, float *y, int32_t yo);

/* Widest row of the matvec (its rearranged activations live on the stack), as kv_matvec_q4_0's. */
#define MATVEC512_MAX_COLS 32768

/*
 * The activation rearranged for q4_row512, whole groups of 8 blocks: per group 256 bytes, per half h (blocks 4h..4h+3)
 * 128 bytes = the four blocks' values 0-15 (16 bytes each, in block order), then their values 16-31. These meet the
 * low and the high nibbles of the same blocks' weight bytes, gathered 64 at a time.
 */
AVX512 static void quad_x(const int8_t *xq, int groups, int8_t *xa) {
    for (int g = 0; g < groups; g++) {
        for (int h = 0; h < 2; h++) {
            int8_t *o = xa + 256 * g + 128 * h;
            for (int i = 0; i < 4; i++) {
                const int8_t *x = xq + 32 * (8 * g + 4 * h + i);
                _mm_storeu_si128((__m128i *) (o + 16 * i), _mm_loadu_si128((const __m128i *) x));
                _mm_storeu_si128((__m128i *) (o + 64 + 16 * i), _mm_loadu_si128((const __m128i *) (x + 16)));
            }
        }
    }
}

/*
 * One Q4_0 row: per group of 8 blocks (144 bytes) three 64-byte loads (bytes 0-63, 64-127, 80-143: nothing past the
 * group), two byte permutes that gather the nibble bytes of blocks 0-3 and 4-7, one word permute that gathers the 8
 * f16 scales, 4 vpdpbusd (low and high nibbles of each half) and a 6-instruction reduction to the 8 block sums in
 * block order: about 28 vector instructions per group against the AVX2 row's 56. Then the AVX2 row's float step, and
 * its tail, so the result is the same bit for bit.
 */
AVX512 static float q4_row512(const uint8_t *w, int nb, const int8_t *xq, const int8_t *xa, const float *xd, const int32_t *xs8) {
    const __m512i m0f = _mm512_set1_epi8(0x0F);
    _Alignas(64) int8_t ia[64], ib[64];
    for (int j = 0; j < 64; j++) {
        int i = j / 16, k = j % 16;
        ia[j] = (int8_t) (18 * i + 2 + k);                   /* from bytes 0-127 (z0, z1) */
        int rel = 18 * i + 10 + k;                           /* blocks 4-7, from byte 64: z1 = 64-127, z2 = 80-143 */
        ib[j] = (int8_t) (rel < 64 ? rel : 64 + rel - 16);
    }
    const __m512i idx_a = _mm512_load_si512(ia), idx_b = _mm512_load_si512(ib);
    /* scales: words 0, 9, 18, 27 of z0 (blocks 0-3) and 4, 13, 22, 31 of z1 (blocks 4-7) */
    const __m512i idx_s = _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                           0, 0, 0, 0, 0, 0, 0, 0, 32 + 31, 32 + 22, 32 + 13, 32 + 4, 27, 18, 9, 0);
    const __m512i gather8 = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 0, 0, 0, 0, 0, 0, 0, 0);
    __m256 acc = _mm256_setzero_ps();
    int b = 0;
    for (; b + 8 <= nb; b += 8) {
        const uint8_t *p = w + 18 * b;
        const int8_t *x = xa + 32 * b;
        prefetch_ahead(p, 3);
        __m512i z0 = _mm512_loadu_si512((const void *) p), z1 = _mm512_loadu_si512((const void *) (p + 64));
        __m512i z2 = _mm512_loadu_si512((const void *) (p + 80));
        __m512i v0 = _mm512_permutex2var_epi8(z0, idx_a, z1), v1 = _mm512_permutex2var_epi8(z1, idx_b, z2);
        __m512i a0 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_and_si512(v0, m0f), _mm512_loadu_si512((const void *) x));
        a0 = _mm512_dpbusd_epi32(a0, _mm512_and_si512(_mm512_srli_epi16(v0, 4), m0f), _mm512_loadu_si512((const void *) (x + 64)));
        __m512i a1 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_and_si512(v1, m0f), _mm512_loadu_si512((const void *) (x + 128)));
        a1 = _mm512_dpbusd_epi32(a1, _mm512_and_si512(_mm512_srli_epi16(v1, 4), m0f), _mm512_loadu_si512((const void *) (x + 192)));
        /* per 128-bit lane L: block L's 4 partial sums in a0, block L + 4's in a1 → [L, L + 4, ...] → blocks in order */
        __m512i u = _mm512_add_epi32(_mm512_unpacklo_epi32(a0, a1), _mm512_unpackhi_epi32(a0, a1));
        u = _mm512_add_epi32(u, _mm512_shuffle_epi32(u, 0x4E));
        __m256i s = _mm512_castsi512_si256(_mm512_permutexvar_epi32(gather8, u));
        s = _mm256_sub_epi32(s, _mm256_loadu_si256((const __m256i *) (xs8 + b)));     /* Σ (q − 8)·x */
        __m256 dw = _mm256_cvtph_ps(_mm512_castsi512_si128(_mm512_permutex2var_epi16(z0, idx_s, z1)));
        __m256 dd = _mm256_mul_ps(dw, _mm256_loadu_ps(xd + b));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), dd, acc);
    }
    if (b < nb) {                                      /* the last 1-7 blocks, as the AVX2 row does */
        const uint8_t *p = w + 18 * b;
        const int8_t *x = xq + 32 * b;
        __m256i z = _mm256_setzero_si256(), v[8];
        for (int i = 0; i < 8; i++) v[i] = b + i < nb ? q4_dot(p + 18 * i + 2, x + 32 * i) : z;
        acc = tail_group(sum8x8(v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]), p, 18, nb - b, xd + b, xs8 + b, acc);
    }
    return hsum_f32(acc);
}

/**
 * kv_matvec_q4_0's product with AVX-512 VNNI, the same arguments and results bit for bit. Rows of fewer than 8 blocks
 * (attn_k_b's 128 columns) take the AVX2 kernel, which pairs them.
 */
AVX512 int32_t kv_matvec_q4_0_512(const uint8_t *w, int32_t r0, int32_t r1, int32_t cols,
                                  const int8_t *xq, const float *xd, const int32_t *xs8, float *y, int32_t yo) {
    if (cols > MATVEC512_MAX_COLS) return -1;
    int nb = cols / 32;
    if (nb < 8) return kv_matvec_q4_0(w, r0, r1, cols, xq, xd, xs8, y, yo);
    int64_t rb = (int64_t) nb * 18;
    _Alignas(64) int8_t xa[MATVEC512_MAX_COLS];
    quad_x(xq, nb / 8, xa);
    for (int32_t r = r0; r < r1; r++) y[yo + r] = q4_row512(w + r * rb, nb, xq, xa, xd, xs8);
    return 0;
}

/* ---------------------------------------------------------------- Q8_0 matvec (decode) */

void kv_matvec_q8_0(const uint8_t *w, int32_t r0, int32_t r1, int32_t cols,
                    const int8_t *xq, const float *xd, float *y, int32_t yo);

/*
 * One Q8_0 row (34-byte blocks: f16 d, 32 int8 values). vpdpbusd multiplies unsigned by signed bytes, so the weights
 * are taken as w + 128 (the sign bit flipped: one XOR) and 128·Σx of each block is subtracted after: the block sums
 * are exact, as the AVX2 row's |w|·sign(x, w) products are. Per group of 8 blocks (272 bytes): 8 32-byte loads (two
 * blocks a vector; the activation's two blocks are contiguous and need no rearranging), 4 XOR, 4 vpdpbusd and a
 * 9-instruction reduction to the 8 block sums in block order, about 30 vector instructions against the AVX2 row's 44
 * (8 × sign, sign, vpmaddubsw, vpmaddwd plus sum8x8). Then the AVX2 row's float step and tail, so the result equals
 * kv_matvec_q8_0's bit for bit. xs8: 8·Σx per block (the activation's 32-block sums, as Q4_0's kernels take them).
 */
AVX512 static float q8_row512(const uint8_t *w, int nb, const int8_t *xq, const float *xd, const int32_t *xs8) {
    const __m512i flip = _mm512_set1_epi8((char) 0x80);
    /* after the two unpack steps, 128-bit lane 0 holds blocks 0, 2, 4, 6 and lane 2 blocks 1, 3, 5, 7 */
    const __m512i order = _mm512_setr_epi32(0, 8, 1, 9, 2, 10, 3, 11, 0, 0, 0, 0, 0, 0, 0, 0);
    __m256 acc = _mm256_setzero_ps();
    int b = 0;
    for (; b + 8 <= nb; b += 8) {
        const uint8_t *p = w + 34 * b;
        const int8_t *x = xq + 32 * b;
        prefetch_ahead(p, 5);
        /* v_i = [block 2i | block 2i + 1]: int32 lanes 0-7 its first block's partial sums, 8-15 the second's */
        __m512i v0 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_xor_si512(load_256_pair(p + 2, p + 36), flip), _mm512_loadu_si512((const void *) x));
        __m512i v1 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_xor_si512(load_256_pair(p + 70, p + 104), flip), _mm512_loadu_si512((const void *) (x + 64)));
        __m512i v2 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_xor_si512(load_256_pair(p + 138, p + 172), flip), _mm512_loadu_si512((const void *) (x + 128)));
        __m512i v3 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_xor_si512(load_256_pair(p + 206, p + 240), flip), _mm512_loadu_si512((const void *) (x + 192)));
        /* per 128-bit lane: (a0 + a2, c0 + c2, a1 + a3, c1 + c3) of v0's (a) and v1's (c) dwords, then the halves */
        __m512i t0 = _mm512_add_epi32(_mm512_unpacklo_epi32(v0, v1), _mm512_unpackhi_epi32(v0, v1));
        __m512i t1 = _mm512_add_epi32(_mm512_unpacklo_epi32(v2, v3), _mm512_unpackhi_epi32(v2, v3));
        __m512i u = _mm512_add_epi32(_mm512_unpacklo_epi64(t0, t1), _mm512_unpackhi_epi64(t0, t1));
        u = _mm512_add_epi32(u, _mm512_shuffle_i32x4(u, u, 0xB1));        /* lanes 0 + 1 and 2 + 3 of 128 bits */
        __m256i s = _mm512_castsi512_si256(_mm512_permutexvar_epi32(order, u));
        s = _mm256_sub_epi32(s, _mm256_slli_epi32(_mm256_loadu_si256((const __m256i *) (xs8 + b)), 4));   /* − 128·Σx */
        __m256 dd = _mm256_mul_ps(scales8(p, 34), _mm256_loadu_ps(xd + b));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), dd, acc);
    }
    if (b < nb) acc = q8_tail(w, b, nb, xq, xd, acc);   /* the last 1-7 blocks, as the AVX2 row does */
    return hsum_f32(acc);
}

/**
 * kv_matvec_q8_0's product with AVX-512 VNNI, the same results bit for bit; xs8 as kv_matvec_q4_0's (8·Σx per block).
 * Rows of fewer than 8 blocks (attn_k_b's 128 columns) take the AVX2 kernel, which pairs them.
 */
AVX512 int32_t kv_matvec_q8_0_512(const uint8_t *w, int32_t r0, int32_t r1, int32_t cols,
                                  const int8_t *xq, const float *xd, const int32_t *xs8, float *y, int32_t yo) {
    int nb = cols / 32;
    if (nb < 8) {
        kv_matvec_q8_0(w, r0, r1, cols, xq, xd, y, yo);
        return 0;
    }
    int64_t rb = (int64_t) nb * 34;
    for (int32_t r = r0; r < r1; r++) y[yo + r] = q8_row512(w + r * rb, nb, xq, xd, xs8);
    return 0;
}

/* ---------------------------------------------------------------- Q5_0 matvec (decode) */

/* The index vectors of q5_group: where each byte of the nibble, fifth-bit and scale vectors comes from. */
typedef struct {
    __m512i nib0, nib1, hl0, hh0, hl1, hh1, bit, s0, s1;
} q5_idx;

AVX512 static q5_idx q5_indices(void) {
    _Alignas(64) int8_t n0[64], n1[64], hl0[64], hh0[64], hl1[64], hh1[64], bit[64];
    for (int j = 0; j < 64; j++) {
        int i = j / 16, k = j % 16;
        /* a byte a of the group: from z0:z1 (bytes 0-127) for blocks 0-3, from z1:z2 (64-127, then 112-175) for 4-7 */
        int a0 = 22 * i + 6 + k, a1 = 22 * (i + 4) + 6 + k;
        int l0 = 22 * i + 2 + k / 8, h0 = l0 + 2, l1 = 22 * (i + 4) + 2 + k / 8, h1 = l1 + 2;
        n0[j] = (int8_t) a0;
        n1[j] = (int8_t) (a1 < 128 ? a1 - 64 : a1 - 48);
        hl0[j] = (int8_t) l0;
        hh0[j] = (int8_t) h0;
        hl1[j] = (int8_t) (l1 < 128 ? l1 - 64 : l1 - 48);
        hh1[j] = (int8_t) (h1 < 128 ? h1 - 64 : h1 - 48);
        bit[j] = (int8_t) (1 << (k % 8));
    }
    q5_idx q;
    q.nib0 = _mm512_load_si512(n0); q.nib1 = _mm512_load_si512(n1);
    q.hl0 = _mm512_load_si512(hl0); q.hh0 = _mm512_load_si512(hh0);
    q.hl1 = _mm512_load_si512(hl1); q.hh1 = _mm512_load_si512(hh1);
    q.bit = _mm512_load_si512(bit);
    /* the f16 scales: words 0, 11, 22, 33 of z0:z1 (bytes 0, 22, 44, 66); 12, 23 of z1 (bytes 88, 110) with 10, 21 of
     * z2 (bytes 132, 154) */
    q.s0 = _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 33, 22, 11, 0);
    q.s1 = _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32 + 21, 32 + 10, 23, 12, 0, 0, 0, 0);
    return q;
}

/*
 * A group of 8 Q5_0 blocks (176 bytes as z0 = bytes 0-63, z1 = 64-127, z2 = 112-175) against its arranged activation x
 * (quad_x): the 8 exact integer block sums Σ q·x in block order, and the 8 f16 scales in *dw. The nibble bytes of
 * blocks 0-3 and 4-7 gathered by two byte permutes; the fifth bits by four more (each value's qh byte) and a bit test,
 * added as 16 under the mask; 4 vpdpbusd and q4_row512's reduction.
 */
AVX512 static ALWAYS_INLINE __m256i q5_group(const q5_idx *q, __m512i z0, __m512i z1, __m512i z2, const int8_t *x, __m256 *dw) {
    const __m512i m0f = _mm512_set1_epi8(0x0F), c10 = _mm512_set1_epi8(0x10);
    const __m512i gather8 = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 0, 0, 0, 0, 0, 0, 0, 0);
    __m512i v0 = _mm512_permutex2var_epi8(z0, q->nib0, z1), v1 = _mm512_permutex2var_epi8(z1, q->nib1, z2);
    __mmask64 kl0 = _mm512_test_epi8_mask(_mm512_permutex2var_epi8(z0, q->hl0, z1), q->bit);
    __mmask64 kh0 = _mm512_test_epi8_mask(_mm512_permutex2var_epi8(z0, q->hh0, z1), q->bit);
    __mmask64 kl1 = _mm512_test_epi8_mask(_mm512_permutex2var_epi8(z1, q->hl1, z2), q->bit);
    __mmask64 kh1 = _mm512_test_epi8_mask(_mm512_permutex2var_epi8(z1, q->hh1, z2), q->bit);
    __m512i l0 = _mm512_and_si512(v0, m0f), h0 = _mm512_and_si512(_mm512_srli_epi16(v0, 4), m0f);
    __m512i l1 = _mm512_and_si512(v1, m0f), h1 = _mm512_and_si512(_mm512_srli_epi16(v1, 4), m0f);
    l0 = _mm512_mask_add_epi8(l0, kl0, l0, c10);
    h0 = _mm512_mask_add_epi8(h0, kh0, h0, c10);
    l1 = _mm512_mask_add_epi8(l1, kl1, l1, c10);
    h1 = _mm512_mask_add_epi8(h1, kh1, h1, c10);
    __m512i a0 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), l0, _mm512_loadu_si512((const void *) x));
    a0 = _mm512_dpbusd_epi32(a0, h0, _mm512_loadu_si512((const void *) (x + 64)));
    __m512i a1 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), l1, _mm512_loadu_si512((const void *) (x + 128)));
    a1 = _mm512_dpbusd_epi32(a1, h1, _mm512_loadu_si512((const void *) (x + 192)));
    __m512i u = _mm512_add_epi32(_mm512_unpacklo_epi32(a0, a1), _mm512_unpackhi_epi32(a0, a1));
    u = _mm512_add_epi32(u, _mm512_shuffle_epi32(u, 0x4E));
    __m512i sw = _mm512_mask_blend_epi16(0xF0, _mm512_permutex2var_epi16(z0, q->s0, z1), _mm512_permutex2var_epi16(z1, q->s1, z2));
    *dw = _mm256_cvtph_ps(_mm512_castsi512_si128(sw));
    return _mm512_castsi512_si256(_mm512_permutexvar_epi32(gather8, u));
}

/* The first n of 64 bytes as a load mask (n ≤ 0: none). */
static inline __mmask64 first_bytes(int n) { return n <= 0 ? 0 : n >= 64 ? ~(__mmask64) 0 : (((__mmask64) 1 << n) - 1); }

/*
 * One Q5_0 row (22-byte blocks: f16 d, 32 fifth bits qh, 16 nibble bytes; values d·(q − 16)) as q4_row512 takes a Q4_0
 * row, per group of 8 blocks (q5_group), against xa arranged by quad_x with a last partial group zero-padded. Then
 * kimivl_kquants.c's 32-block float step for Q5_0 (Σ q·x − 2·(8·Σx), times d_w·d_x, fused-added per group; its last
 * 1-7 blocks with their scales, activation scales and sums masked to the live blocks, which q5_group's zero-filled
 * loads and zero-padded activations give as well), so the result equals kv_matvec_kq's bit for bit.
 */
AVX512 static float q5_0_row512(const q5_idx *q, const uint8_t *w, int nb, const int8_t *xa, const float *xd, const int32_t *xs8) {
    __m256 acc = _mm256_setzero_ps(), dw;
    int b = 0;
    for (; b + 8 <= nb; b += 8) {
        const uint8_t *p = w + 22 * b;
        prefetch_ahead(p, 3);
        __m512i z0 = _mm512_loadu_si512((const void *) p), z1 = _mm512_loadu_si512((const void *) (p + 64));
        __m512i z2 = _mm512_loadu_si512((const void *) (p + 112));
        __m256i s = q5_group(q, z0, z1, z2, xa + 32 * b, &dw);
        s = _mm256_sub_epi32(s, _mm256_slli_epi32(_mm256_loadu_si256((const __m256i *) (xs8 + b)), 1));     /* Σ (q − 16)·x */
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(dw, _mm256_loadu_ps(xd + b)), acc);
    }
    if (b < nb) {                                      /* the last 1-7 blocks: loads stop at the row's end */
        int n = nb - b, bytes = 22 * n;
        const uint8_t *p = w + 22 * b;
        __m512i z0 = _mm512_maskz_loadu_epi8(first_bytes(bytes), p), z1 = _mm512_maskz_loadu_epi8(first_bytes(bytes - 64), p + 64);
        __m512i z2 = _mm512_maskz_loadu_epi8(first_bytes(bytes - 112), p + 112);
        __m256i s = q5_group(q, z0, z1, z2, xa + 32 * b, &dw);
        __m256i live = _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        s = _mm256_sub_epi32(s, _mm256_slli_epi32(_mm256_maskload_epi32(xs8 + b, live), 1));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(dw, _mm256_maskload_ps(xd + b, live)), acc);
    }
    return hsum_f32(acc) + 0.0f;                       /* as the q32 row's + 0.125·(its zero offset sum): −0 becomes +0 */
}

/* Q5_0 rows of at least 8 blocks (narrower ones, attn_k_b's 128 columns, take the AVX2 kernel, which pairs them). */
AVX512 static void q5_0_rows512(const uint8_t *w, int32_t r0, int32_t r1, int32_t cols, const int8_t *xq, const float *xd,
                                const int32_t *xs8, float *y) {
    int nb = cols / 32, full = nb / 8;
    int64_t rb = (int64_t) nb * 22;
    _Alignas(64) int8_t xa[MATVEC512_MAX_COLS + 256];
    quad_x(xq, full, xa);
    if (nb > 8 * full) {                               /* the partial last group, zero-padded */
        _Alignas(32) int8_t tail[256];
        memset(tail, 0, sizeof tail);
        memcpy(tail, xq + 256 * full, (size_t) 32 * (nb - 8 * full));
        quad_x(tail, 1, xa + 256 * full);
    }
    q5_idx q = q5_indices();
    for (int32_t r = r0; r < r1; r++) y[r] = q5_0_row512(&q, w + r * rb, nb, xa, xd, xs8);
}

/* ---------------------------------------------------------------- k-quants: Q4_K and Q5_K (matvec and GEMM) */

/*
 * kimivl_kquants.c's AVX2 k-quant rows sum, per super-block, 8 int32 lanes: lane l gets, over the four 64-value chunks
 * j, sc_{2j}·(bytes 4l..4l+3 of the low values) + sc_{2j+1}·(the same of the high values), each as
 * vpmaddwd(vpmaddubsw(q, x), scale) plus an add. Here two chunks share a 512-bit vector (chunk 2h in the low half,
 * 2h + 1 in the high half) and vpdpwssd fuses the vpmaddwd and the add: per super-block and token 4 vpmaddubsw and
 * 4 vpdpwssd, against 8, 8 and 8. Adding the two halves gives lane l exactly the AVX2 lane's integer, and the float
 * steps after it are the AVX2 ones, so the results are the same bit for bit.
 */

int32_t kv_matvec_kq(int32_t type, const uint8_t *w, int32_t r0, int32_t r1, int32_t cols,
                     const int8_t *xq, const float *xd, const void *xs, float *y, int32_t yo);
int32_t kv_gemm_kq(int32_t type, const uint8_t *w, int32_t r0, int32_t r1, int32_t cols,
                   const int8_t *xq, const float *xd, const void *xs, int32_t n, float *y, int32_t ldy);

enum { KQ512_Q4_K = 0, KQ512_Q5_K = 1, KQ512_Q6_K = 2, KQ512_Q5_0 = 4 };      /* the type codes of kimivl_kquants.c */


/*
 * An activation's Q8_K values (xk, cols wide) arranged to meet the weight vectors: per super-block 256 bytes, per
 * h = 0, 1: [x 128h + 0..31 | x 128h + 64..95] (the low values of chunks 2h and 2h + 1), then
 * [x 128h + 32..63 | x 128h + 96..127] (their high values).
 */
AVX512 static void kx_arrange(const int8_t *xk, int nsb, int8_t *xa) {
    for (int s = 0; s < nsb; s++) {
        for (int h = 0; h < 2; h++) {
            const int8_t *src = xk + 256 * s + 128 * h;
            int8_t *o = xa + 256 * s + 128 * h;
            __m256i a = _mm256_loadu_si256((const __m256i *) src), b = _mm256_loadu_si256((const __m256i *) (src + 32));
            __m256i c = _mm256_loadu_si256((const __m256i *) (src + 64)), d = _mm256_loadu_si256((const __m256i *) (src + 96));
            _mm256_storeu_si256((__m256i *) o, a);
            _mm256_storeu_si256((__m256i *) (o + 32), c);
            _mm256_storeu_si256((__m256i *) (o + 64), b);
            _mm256_storeu_si256((__m256i *) (o + 96), d);
        }
    }
}

/* Tokens per pass over a row in the batched product: each super-block's weights are unpacked once for this many. */
#define KQ512_T 8

/*
 * One Q4_K (q5 = 0) or Q5_K row against T = 1..KQ512_T activations arranged by kx_arrange (xa[t]), with their per-256
 * scales dk[t] and 16-sums bs[t]: kimivl_kquants.c's qk45_rows, the same result bit for bit.
 */
AVX512 static ALWAYS_INLINE void qk45_rows512(const uint8_t *w, int nsb, int q5, int T, const int8_t *const *xa,
                                              const float *const *dk, const int16_t *const *bs, float *out) {
    const int bb = q5 ? 176 : 144, qs_at = q5 ? 48 : 16;
    const __m512i m0f = _mm512_set1_epi8(0x0F), one = _mm512_set1_epi8(1);
    /* int16 lanes 0-15 take scale a, 16-31 scale b: the index vectors of the four (low/high × h) scale pairs */
    const __m512i i_lo0 = _mm512_set_epi32(0x00020002, 0x00020002, 0x00020002, 0x00020002, 0x00020002, 0x00020002, 0x00020002, 0x00020002,
                                           0, 0, 0, 0, 0, 0, 0, 0);
    const __m512i one16 = _mm512_set1_epi16(1), four16 = _mm512_set1_epi16(4);
    /* Q5_K: the 5th bits of chunk j are bits 2j (low) and 2j + 1 (high) of qh; per half, the chunk's shift */
    const __m512i sh_lo0 = _mm512_set_epi32(0x00020002, 0x00020002, 0x00020002, 0x00020002, 0x00020002, 0x00020002, 0x00020002, 0x00020002,
                                            0, 0, 0, 0, 0, 0, 0, 0);
    __m256 acc[KQ512_T], accm[KQ512_T];
    for (int t = 0; t < T; t++) acc[t] = accm[t] = _mm256_setzero_ps();
    for (int s = 0; s < nsb; s++) {
        const uint8_t *p = w + (int64_t) bb * s;
        prefetch_ahead(p, q5 ? 4 : 3);
        uint64_t sc, mn;
        k_scales(p + 4, &sc, &mn);
        __m512i sc16 = _mm512_castsi128_si512(_mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long) sc)));
        /* chunk j low: sc[2j], high: sc[2j + 1]; zmm h holds chunks 2h (low half) and 2h + 1 */
        __m512i sl0 = _mm512_permutexvar_epi16(i_lo0, sc16);                                 /* sc0 | sc2 */
        __m512i sh0 = _mm512_permutexvar_epi16(_mm512_add_epi16(i_lo0, one16), sc16);      /* sc1 | sc3 */
        __m512i sl1 = _mm512_permutexvar_epi16(_mm512_add_epi16(i_lo0, four16), sc16);     /* sc4 | sc6 */
        __m512i sh1 = _mm512_permutexvar_epi16(_mm512_add_epi16(_mm512_add_epi16(i_lo0, four16), one16), sc16);   /* sc5 | sc7 */
        /* two 32-byte loads a vector, not one of 64: a super-block (144 or 176 bytes) starts anywhere in a line, and
           line-splitting 64-byte loads read rows from memory 10-25% slower on Zen 4 (harness: 13.1-13.9 -> 15.4-16.0
           GB/s one core; 2% slower in cache) */
        __m512i raw0 = load_2x256(p + qs_at), raw1 = load_2x256(p + qs_at + 64);
        __m512i lo0 = _mm512_and_si512(raw0, m0f), hi0 = _mm512_and_si512(_mm512_srli_epi16(raw0, 4), m0f);
        __m512i lo1 = _mm512_and_si512(raw1, m0f), hi1 = _mm512_and_si512(_mm512_srli_epi16(raw1, 4), m0f);
        if (q5) {
            __m512i hq = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *) (p + 16)));
            /* bit 2j of each byte for chunk j's low values: shifts [0 | 2] (h = 0) and [4 | 6] (h = 1), high +1 */
            __m512i s0 = sh_lo0, s1 = _mm512_add_epi16(sh_lo0, four16);
            lo0 = _mm512_or_si512(lo0, _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(hq, s0), one), 4));
            hi0 = _mm512_or_si512(hi0, _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(hq, _mm512_add_epi16(s0, one16)), one), 4));
            lo1 = _mm512_or_si512(lo1, _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(hq, s1), one), 4));
            hi1 = _mm512_or_si512(hi1, _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(hq, _mm512_add_epi16(s1, one16)), one), 4));
        }
        __m128i m8 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long) mn));
        __m256i m16 = _mm256_set_m128i(_mm_unpackhi_epi16(m8, m8), _mm_unpacklo_epi16(m8, m8));
        float d = _cvtsh_ss(load_u16(p)), dmin = _cvtsh_ss(load_u16(p + 2));
        for (int t = 0; t < T; t++) {
            const int8_t *x = xa[t] + 256 * s;
            __m512i a = _mm512_dpwssd_epi32(_mm512_setzero_si512(), _mm512_maddubs_epi16(lo0, _mm512_loadu_si512((const void *) x)), sl0);
            a = _mm512_dpwssd_epi32(a, _mm512_maddubs_epi16(hi0, _mm512_loadu_si512((const void *) (x + 64))), sh0);
            a = _mm512_dpwssd_epi32(a, _mm512_maddubs_epi16(lo1, _mm512_loadu_si512((const void *) (x + 128))), sl1);
            a = _mm512_dpwssd_epi32(a, _mm512_maddubs_epi16(hi1, _mm512_loadu_si512((const void *) (x + 192))), sh1);
            __m256i sumi = _mm256_add_epi32(_mm512_castsi512_si256(a), _mm512_extracti64x4_epi64(a, 1));
            __m256i msum = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *) (bs[t] + 16 * s)), m16);
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi), _mm256_set1_ps(d * dk[t][s]), acc[t]);
            accm[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(msum), _mm256_set1_ps(dmin * dk[t][s]), accm[t]);
        }
    }
    for (int t = 0; t < T; t++) out[t] = hsum_f32(acc[t]) - hsum_f32(accm[t]);
}

/* Widest k-quant row of the 512-bit kernels (their arranged activations live on the stack: 4 tokens). */
#define KQ512_MAX_COLS 16384
#define KQ512_TILE_ROWS 16

/*
 * Q6_K on 512-bit vectors (a Q4_K_M file's output head and some attention tensors), bit for bit kimivl_kquants.c's
 * q6k_rows. Layout per super-block (210 bytes): ql[128], qh[64], int8 scales[16] at 192, f16 d at 208. With
 * L0 = ql[0..64) = [A0 | B0], L1 = ql[64..128) = [A1 | B1] and H = qh[0..64) = [H0 | H1], the AVX2 kernel's four
 * value vectors of both halves come from AA = [A0 | A1] and BB = [B0 | B1] at once: vector i holds block i (values
 * 32i..32i+31) in its low 256 bits and block 4 + i (128 + 32i..) in its high ones. The activation is arranged to match
 * (q6_arrange). Per vector, vpmaddubsw pair sums (exact: ≤ 2·63·127) then vpdpwssd by the blocks' 16-value scales
 * into 16 int32 lanes; the two 256-bit halves added give the AVX2 kernel's 8 lanes (lane l: quad l of every block)
 * exactly, and its float steps follow unchanged.
 */
AVX512 static void q6_arrange(const int8_t *xk, int nsb, int8_t *xa) {
    for (int s = 0; s < nsb; s++) {
        const int8_t *x = xk + 256 * s;
        int8_t *o = xa + 256 * s;
        for (int i = 0; i < 4; i++) {
            _mm256_storeu_si256((__m256i *) (o + 64 * i), _mm256_loadu_si256((const __m256i *) (x + 32 * i)));
            _mm256_storeu_si256((__m256i *) (o + 64 * i + 32), _mm256_loadu_si256((const __m256i *) (x + 128 + 32 * i)));
        }
    }
}

AVX512 static ALWAYS_INLINE float q6k_row512(const uint8_t *w, int nsb, const int8_t *xa, const float *dk, const int16_t *bs) {
    const __m512i m0f = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30);
    /* int16 scale indices of vector i: lanes 0-7 scale 2i, 8-15 2i + 1 (block i), 16-23 8 + 2i, 24-31 9 + 2i (block 4 + i) */
    const __m512i idx0 = _mm512_set_epi16(9, 9, 9, 9, 9, 9, 9, 9, 8, 8, 8, 8, 8, 8, 8, 8,
                                          1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m512i two = _mm512_set1_epi16(2);
    __m256 acc = _mm256_setzero_ps();
    for (int s = 0; s < nsb; s++) {
        const uint8_t *p = w + (int64_t) 210 * s;
        prefetch_ahead(p, 4);
        __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *) (p + 192)));
        __m512i sc = _mm512_castsi256_si512(sc16);
        __m256i corr = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *) (bs + 16 * s)), sc16);
        /* 32-byte loads, as qk45_rows512's (64-byte ones split lines and read 10% slower from memory) */
        __m512i AA = load_256_pair(p, p + 64), BB = load_256_pair(p + 32, p + 96), H = load_2x256(p + 128);
        __m512i q[4] = {
            _mm512_or_si512(_mm512_and_si512(AA, m0f), _mm512_and_si512(_mm512_slli_epi16(H, 4), m30)),
            _mm512_or_si512(_mm512_and_si512(BB, m0f), _mm512_and_si512(_mm512_slli_epi16(H, 2), m30)),
            _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(AA, 4), m0f), _mm512_and_si512(H, m30)),
            _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(BB, 4), m0f), _mm512_and_si512(_mm512_srli_epi16(H, 2), m30)),
        };
        const int8_t *x = xa + 256 * s;
        __m512i a = _mm512_setzero_si512(), idx = idx0;
        for (int i = 0; i < 4; i++) {
            __m512i pairs = _mm512_maddubs_epi16(q[i], _mm512_loadu_si512((const void *) (x + 64 * i)));
            a = _mm512_dpwssd_epi32(a, pairs, _mm512_permutexvar_epi16(idx, sc));
            idx = _mm512_add_epi16(idx, two);
        }
        __m256i sumi = _mm256_add_epi32(_mm512_castsi512_si256(a), _mm512_extracti64x4_epi64(a, 1));
        sumi = _mm256_sub_epi32(sumi, _mm256_slli_epi32(corr, 5));
        float d = _cvtsh_ss(load_u16(p + 208));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi), _mm256_set1_ps(d * dk[s]), acc);
    }
    return hsum_f32(acc);
}

/**
 * kv_matvec_kq with AVX-512 for Q4_K, Q5_K, Q6_K and Q5_0 (the other types, and rows wider than KQ512_MAX_COLS, take kv_matvec_kq
 * itself): the same arguments and results bit for bit.
 */
AVX512 int32_t kv_matvec_kq_512(int32_t type, const uint8_t *w, int32_t r0, int32_t r1, int32_t cols,
                                const int8_t *xq, const float *xd, const void *xs, float *y, int32_t yo) {
    if (type == KQ512_Q5_0 && cols % 32 == 0 && cols >= 256 && cols <= MATVEC512_MAX_COLS) {
        q5_0_rows512(w, r0, r1, cols, xq, xd, (const int32_t *) xs, y + yo);
        return 0;
    }
    if (type == KQ512_Q6_K && cols % 256 == 0 && cols <= KQ512_MAX_COLS) {
        int nsb = cols / 256;
        _Alignas(64) int8_t xa[KQ512_MAX_COLS];
        q6_arrange(xq, nsb, xa);
        for (int32_t r = r0; r < r1; r++) y[yo + r] = q6k_row512(w + (int64_t) r * nsb * 210, nsb, xa, xd, (const int16_t *) xs);
        return 0;
    }
    if (type == KQ512_Q4_K_R4) return kv_matvec_q4k_r4(w, r0, r1, cols, xq, xd, xs, y, yo);
    if ((type != KQ512_Q4_K && type != KQ512_Q5_K) || cols % 256 != 0 || cols > KQ512_MAX_COLS) {
        return kv_matvec_kq(type, w, r0, r1, cols, xq, xd, xs, y, yo);
    }
    int nsb = cols / 256, q5 = type == KQ512_Q5_K;
    int64_t rb = (int64_t) nsb * (q5 ? 176 : 144);
    _Alignas(64) int8_t xa[KQ512_MAX_COLS];
    kx_arrange(xq, nsb, xa);
    const int8_t *xt = xa;
    const int16_t *bs = (const int16_t *) xs;
    for (int32_t r = r0; r < r1; r++) {
        if (q5) qk45_rows512(w + r * rb, nsb, 1, 1, &xt, &xd, &bs, y + yo + r);
        else qk45_rows512(w + r * rb, nsb, 0, 1, &xt, &xd, &bs, y + yo + r);
    }
    return 0;
}

/* The batched form for one k-quant type (q5 a constant per inlined copy): tiles of rows held in L1, KQ512_T tokens
 * at a time, each group of tokens arranged once per tile. */
AVX512 static ALWAYS_INLINE void gemm_kq512(int q5, int r4, const uint8_t *w, int32_t r0, int32_t r1, int cols, const int8_t *xq,
                                            const float *xd, const int16_t *xs, int32_t n, float *y, int32_t ldy) {
    int nsb = cols / 256;
    int64_t rb = (int64_t) nsb * (q5 ? 176 : 144);
    _Alignas(64) int8_t xa[KQ512_T][KQ512_MAX_COLS];
    _Alignas(64) uint8_t plain[KQ512_MAX_COLS / 256 * 144];
    for (int32_t r = r0; r < r1; r += KQ512_TILE_ROWS) {
        int32_t re = r + KQ512_TILE_ROWS < r1 ? r + KQ512_TILE_ROWS : r1;
        for (int32_t t0 = 0; t0 < n; t0 += KQ512_T) {
            int T = n - t0 < KQ512_T ? n - t0 : KQ512_T;
            const int8_t *xt[KQ512_T];
            const float *dk[KQ512_T];
            const int16_t *bs[KQ512_T];
            for (int t = 0; t < T; t++) {
                kx_arrange(xq + (int64_t) (t0 + t) * cols, nsb, xa[t]);
                xt[t] = xa[t];
                dk[t] = xd + (int64_t) (t0 + t) * nsb;
                bs[t] = xs + (int64_t) (t0 + t) * nsb * 16;
            }
            for (int32_t i = r; i < re; i++) {
                float out[KQ512_T];
                const uint8_t *row = w + i * rb;
                if (r4) {                     /* an R4 row back in the Q4_K layout (1 KB per 2048 columns) */
                    kv_q4k_r4_unpack(w, i, i + 1, cols, plain);
                    row = plain;
                }
                switch (T) {                  /* a constant T per inlined copy */
                    case 8: qk45_rows512(row, nsb, q5, 8, xt, dk, bs, out); break;
                    case 7: qk45_rows512(row, nsb, q5, 7, xt, dk, bs, out); break;
                    case 6: qk45_rows512(row, nsb, q5, 6, xt, dk, bs, out); break;
                    case 5: qk45_rows512(row, nsb, q5, 5, xt, dk, bs, out); break;
                    case 4: qk45_rows512(row, nsb, q5, 4, xt, dk, bs, out); break;
                    case 3: qk45_rows512(row, nsb, q5, 3, xt, dk, bs, out); break;
                    case 2: qk45_rows512(row, nsb, q5, 2, xt, dk, bs, out); break;
                    default: qk45_rows512(row, nsb, q5, 1, xt, dk, bs, out); break;
                }
                for (int t = 0; t < T; t++) y[(int64_t) (t0 + t) * ldy + i] = out[t];
            }
        }
    }
}

/** kv_gemm_kq with AVX-512 for Q4_K and Q5_K (other types, and wider rows, take kv_gemm_kq): same results bit for bit. */
AVX512 int32_t kv_gemm_kq_512(int32_t type, const uint8_t *w, int32_t r0, int32_t r1, int32_t cols,
                              const int8_t *xq, const float *xd, const void *xs, int32_t n, float *y, int32_t ldy) {
    if (type == KQ512_Q4_K_R4 && (cols % 256 != 0 || cols > KQ512_MAX_COLS)) return 1;      /* R4 is only made for these */
    if ((type != KQ512_Q4_K && type != KQ512_Q5_K && type != KQ512_Q4_K_R4) || cols % 256 != 0 || cols > KQ512_MAX_COLS) {
        return kv_gemm_kq(type, w, r0, r1, cols, xq, xd, xs, n, y, ldy);
    }
    if (type == KQ512_Q5_K) gemm_kq512(1, 0, w, r0, r1, cols, xq, xd, (const int16_t *) xs, n, y, ldy);
    else if (type == KQ512_Q4_K_R4) gemm_kq512(0, 1, w, r0, r1, cols, xq, xd, (const int16_t *) xs, n, y, ldy);
    else gemm_kq512(0, 0, w, r0, r1, cols, xq, xd, (const int16_t *) xs, n, y, ldy);
    return 0;
}

/* ---------------------------------------------------------------- attention (MLA decode, prompt attention) */

/*
 * The AVX2 attention (kimivl_kernels.c) with 512-bit FMAs, the same results bit for bit: every float lane does the
 * same operations in the same order. Scores: a 512-bit accumulator holds two of the AVX2 kernel's 8-lane ones (one
 * head, two positions: the query's 8 values broadcast to both halves, the two key rows side by side), 4 heads × 8
 * positions per tile, and each
 * (head, position)'s 8 lanes are summed by fsum8x8 as there. Values: each output column's chain of FMAs over the
 * positions is the AVX2 one, 16 columns per instruction. The softmax step between them is softmax_rows, shared.
 */

/* 8 values of key rows a and b at element i, side by side: [a[i..i+8) | b[i..i+8)] (f16 rows widened). */
#define LAT8X2(a, b, i) (f16 ? _mm512_cvtph_ps(_mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *) ((const uint16_t *) (a) + (i)))), \
                                                                      _mm_loadu_si128((const __m128i *) ((const uint16_t *) (b) + (i))), 1)) \
                            : _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_loadu_ps((const float *) (a) + (i))), _mm256_loadu_ps((const float *) (b) + (i)), 1))
/* 16 values of a row at element i as floats. */
#define LAT16(p, i) (f16 ? _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *) ((const uint16_t *) (p) + (i)))) \
                         : _mm512_loadu_ps((const float *) (p) + (i)))

/*
 * A block's key rows as floats, two positions side by side for the scores (kp_pack): pair P, 8-column step k at
 * kp[(P·steps + k)·16 ..] = [row 2P, columns 8k..8k+8 | row 2P + 1, the same]; a missing odd row repeats row n − 1
 * (its scores are not stored), and the pairs up to the next multiple of 4 are zeros. Widened from f16 once per block instead of once per 4 heads, and each step of the
 * scores is then one aligned load per pair of positions.
 */
AVX512 static ALWAYS_INLINE void kp_pack(const uint8_t *kb, int64_t krow, int n, int D, float *kp, int f16) {
    int steps = D / 8;
    for (int P = 0; 2 * P < n; P++) {
        const uint8_t *a = kb + (int64_t) (2 * P) * krow, *b = 2 * P + 1 < n ? a + krow : kb + (int64_t) (n - 1) * krow;
        for (int k = 0; k < steps; k++) _mm512_store_ps(kp + ((int64_t) P * steps + k) * 16, LAT8X2(a, b, 8 * k));
    }
    /* the pairs a last, partial tile of 8 positions reads past the block's rows: zeros (scored, never stored) */
    int used = (n + 1) / 2;
    for (int P = used; P < (used + 3) / 4 * 4; P++)
        for (int k = 0; k < steps; k++) _mm512_store_ps(kp + ((int64_t) P * steps + k) * 16, _mm512_setzero_ps());
}

/*
 * Scores of 4 heads × 8 positions (pairs P0..P0 + 3 of kp): s[i·ATT_JB + jj + k] = scale · q_i · lat_k over D (k < cnt;
 * rows past cnt are not stored). Accumulator [i][p] = head i against positions 2p (low half) and 2p + 1 (high half).
 * 8 positions divide ATT_JB: no tile scores rows past the block.
 */
AVX512 static ALWAYS_INLINE void scores_4x8_512(const float *q0, int D, const float *kp, int P0, float scale, float *s, int jj, int cnt) {
    int steps = D / 8;
    const float *k0 = kp + (int64_t) P0 * steps * 16, *k1 = k0 + steps * 16, *k2 = k1 + steps * 16, *k3 = k2 + steps * 16;
    __m512 a[4][4];
    for (int i = 0; i < 4; i++)
        for (int p = 0; p < 4; p++) a[i][p] = _mm512_setzero_ps();
    for (int k = 0; k < steps; k++) {
        __m512 L0 = _mm512_load_ps(k0 + 16 * k), L1 = _mm512_load_ps(k1 + 16 * k);
        __m512 L2 = _mm512_load_ps(k2 + 16 * k), L3 = _mm512_load_ps(k3 + 16 * k);
        for (int i = 0; i < 4; i++) {
            __m512 x = _mm512_broadcast_f32x8(_mm256_loadu_ps(q0 + i * D + 8 * k));
            a[i][0] = _mm512_fmadd_ps(x, L0, a[i][0]);
            a[i][1] = _mm512_fmadd_ps(x, L1, a[i][1]);
            a[i][2] = _mm512_fmadd_ps(x, L2, a[i][2]);
            a[i][3] = _mm512_fmadd_ps(x, L3, a[i][3]);
        }
    }
    /* the AVX2 kernel's 8-lane accumulators, head-major: v[8·i + k] = head i, position k; fsum8x8 per head */
    _Alignas(32) float t[32];
    __m256 sc = _mm256_set1_ps(scale);
    for (int i = 0; i < 4; i++) {
        __m256 v[8];
        for (int p = 0; p < 4; p++) {
            v[2 * p] = _mm512_castps512_ps256(a[i][p]);
            v[2 * p + 1] = _mm512_extractf32x8_ps(a[i][p], 1);
        }
        _mm256_store_ps(t + 8 * i, _mm256_mul_ps(fsum8x8(v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]), sc));
    }
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < cnt; k++) s[i * ATT_JB + jj + k] = t[8 * i + k];
}

/*
 * o_i[0..R) += Σ_j p_i[j] · lat_j[0..R) for NH = 4 or 8 heads (p_i = s + i·ATT_JB), 32 columns at a time (R % 32 == 0):
 * each value row's 32 columns are loaded (and widened) once for all NH heads.
 */
AVX512 static ALWAYS_INLINE void values_512(const float *s, int n, const void *lat, int W, float *o0, int R, int NH, int f16) {
    for (int d = 0; d < R; d += 32) {
        __m512 a[8], b[8];
        for (int i = 0; i < NH; i++) {
            a[i] = _mm512_loadu_ps(o0 + i * R + d);
            b[i] = _mm512_loadu_ps(o0 + i * R + d + 16);
        }
        for (int j = 0; j < n; j++) {
            int64_t lj = (int64_t) j * W + d;
            __m512 u = LAT16(lat, lj), w = LAT16(lat, lj + 16);
            for (int i = 0; i < NH; i++) {
                __m512 p = _mm512_set1_ps(s[i * ATT_JB + j]);
                a[i] = _mm512_fmadd_ps(u, p, a[i]);
                b[i] = _mm512_fmadd_ps(w, p, b[i]);
            }
        }
        for (int i = 0; i < NH; i++) {
            _mm512_storeu_ps(o0 + i * R + d, a[i]);
            _mm512_storeu_ps(o0 + i * R + d + 16, b[i]);
        }
    }
}

/* kimivl_kernels.c's attention() with the 512-bit scores and values (R % 32 == 0 here; the callers check). */
AVX512 static ALWAYS_INLINE int32_t attention512(const float *q, int32_t qs, int32_t D, const void *k, int32_t ks,
                                                 const void *v, int32_t vs, int32_t R, int32_t H, int32_t j0, int32_t j1,
                                                 float scale, int32_t maskBase, float *m, float *l, float *o, int f16) {
    if (H % 4 != 0 || D % 8 != 0 || R % 32 != 0 || H > 64) return -1;
    _Alignas(64) float s[64 * ATT_JB];
    const int es = f16 ? 2 : 4;
    const int64_t krow = (int64_t) ks * es;
    _Alignas(64) float qbuf[4 * 576];                 /* 4 query rows made contiguous when qs != D */
    /* the block's keys widened, in pairs, padded with zeros to whole tiles (kp_pack) */
    _Alignas(64) float kp[(ATT_JB / 2) * 576 / 8 * 16];
    for (int32_t jb = j0; jb < j1; jb += ATT_JB) {
        int n = j1 - jb < ATT_JB ? j1 - jb : ATT_JB;
        const uint8_t *kb = (const uint8_t *) k + (int64_t) jb * krow;
        const uint8_t *vb = (const uint8_t *) v + (int64_t) jb * vs * es;
        kp_pack(kb, krow, n, D, kp, f16);
        for (int h = 0; h < H; h += 4) {
            const float *q4 = quad_rows(q, h, qs, D, qbuf);
            for (int j = 0; j < n; j += 8) scores_4x8_512(q4, D, kp, j / 2, scale, s + h * ATT_JB, j, n - j < 8 ? n - j : 8);
        }
        softmax_rows(s, ATT_JB, n, H, jb, maskBase, R, m, l, o);
        int h = 0;
        for (; h + 8 <= H; h += 8) values_512(s + h * ATT_JB, n, vb, vs, o + (int64_t) h * R, R, 8, f16);
        for (; h < H; h += 4) values_512(s + h * ATT_JB, n, vb, vs, o + (int64_t) h * R, R, 4, f16);
    }
    return 0;
}

int32_t kv_latent_attention(const float *q, int32_t qo, const float *lat, int32_t W, int32_t R, int32_t H,
                            int32_t j0, int32_t j1, float scale, float *m, float *l, float *o);
int32_t kv_latent_attention_f16(const float *q, int32_t qo, const uint16_t *lat, int32_t W, int32_t R, int32_t H,
                                int32_t j0, int32_t j1, float scale, float *m, float *l, float *o);
int32_t kv_mha_causal(const float *q, int32_t qo, int32_t qs, int32_t D, const float *k, int32_t ks, const float *v, int32_t vs,
                      int32_t R, int32_t H, int32_t j0, int32_t j1, float scale, int32_t maskBase,
                      float *m, float *l, float *o);

/** kv_latent_attention with AVX-512, the same results bit for bit (value widths not a multiple of 32 take the AVX2 one). */
AVX512 int32_t kv_latent_attention_512(const float *q, int32_t qo, const float *lat, int32_t W, int32_t R, int32_t H,
                                       int32_t j0, int32_t j1, float scale, float *m, float *l, float *o) {
    if (R % 32 != 0) return kv_latent_attention(q, qo, lat, W, R, H, j0, j1, scale, m, l, o);
    return attention512(q + qo, W, W, lat, W, lat, W, R, H, j0, j1, scale, -1, m, l, o, 0);
}

/** kv_latent_attention_f16 with AVX-512, the same results bit for bit. */
AVX512 int32_t kv_latent_attention_f16_512(const float *q, int32_t qo, const uint16_t *lat, int32_t W, int32_t R, int32_t H,
                                           int32_t j0, int32_t j1, float scale, float *m, float *l, float *o) {
    if (R % 32 != 0) return kv_latent_attention_f16(q, qo, lat, W, R, H, j0, j1, scale, m, l, o);
    return attention512(q + qo, W, W, lat, W, lat, W, R, H, j0, j1, scale, -1, m, l, o, 1);
}

/** kv_mha_causal with AVX-512, the same results bit for bit. */
AVX512 int32_t kv_mha_causal_512(const float *q, int32_t qo, int32_t qs, int32_t D, const float *k, int32_t ks, const float *v, int32_t vs,
                                 int32_t R, int32_t H, int32_t j0, int32_t j1, float scale, int32_t maskBase,
                                 float *m, float *l, float *o) {
    if (D > 576) return -1;
    if (R % 32 != 0) return kv_mha_causal(q, qo, qs, D, k, ks, v, vs, R, H, j0, j1, scale, maskBase, m, l, o);
    return attention512(q + qo, qs, D, k, ks, v, vs, R, H, j0, j1, scale, maskBase, m, l, o, 0);
}

/* ---------------------------------------------------------------- Q4_K rows repacked 4 at a time (R4) */

/*
 * A Q4_K matrix whose rows are regrouped 4 at a time for the decode matvec. Per group of 4 rows and super-block
 * (256 columns), KV_R4_SB = 592 bytes (the 4 rows' 576, plus 16 for the scales kept unpacked):
 *   [0, 8)     d of rows 0..3 (f16)            [8, 16)  dmin of rows 0..3 (f16)
 *   [16, 80)   row r at 16 + 16r: its 8 sub-block scales, then its 8 mins (bytes, 6-bit values)
 *   [80, 592)  for 64-value chunk j = 0..3, at 80 + 128j: A_j = rows 0..3 × nibble bytes 0..15 of the chunk
 *              (16 bytes a row), then B_j = rows 0..3 × nibble bytes 16..31.
 * So a 512-bit load of A_j holds row r in its 128-bit lane r, every lane meets the same 16 activations (one
 * broadcast), and one scale vector per sub-block serves the 4 rows. Per 4 rows and super-block: 16 vpmaddubsw and 16
 * vpdpwssd for the values, 8 byte shuffles for the scales and one float step, where qk45_rows512 pays its
 * per-super-block scale work (permutes, the f16 and min steps, the lane reduction) once per row: measured on one
 * core (C harness, [1.3M, 2048]): 17 → 33 GB/s in cache.
 *
 * The integers are qk45_rows512's: row r's int32 lane i of A (of B) is the AVX2 kernel's lane i (4 + i), and the float
 * steps per lane and the final reduction are its own, so each result equals kv_matvec_kq's bit for bit.
 *
 * Every line of the super-block 8 KB ahead is prefetched into L2. Neither form streamed at the read rate without it on
 * the Intel (Sapphire Rapids class) VM of session 29: there memory and compute barely overlap on a core, and the R4
 * kernel with this prefetch went from 8.1-8.7 to 12-13 GB/s on one core and 15-17 to 25 GB/s on two (stream read 26-30),
 * against 7 and 12.5-14.5 for qk45_rows512.
 */
#define KV_R4_PREFETCH 8192

/* rows 4g..4g+3 of a Q4_K matrix (cols/256 super-blocks a row) into R4 groups [g0, g1) at dst (group g at dst + g·nsb·592) */
int32_t kv_q4k_r4_pack(const uint8_t *src, int32_t g0, int32_t g1, int32_t cols, uint8_t *dst) {
    if (cols <= 0 || cols % 256 != 0) return 1;
    int nsb = cols / 256;
    for (int32_t g = g0; g < g1; g++) {
        uint8_t *o = dst + (int64_t) g * nsb * KV_R4_SB;
        for (int s = 0; s < nsb; s++, o += KV_R4_SB) {
            for (int r = 0; r < 4; r++) {
                const uint8_t *p = src + ((int64_t) 4 * g + r) * nsb * 144 + 144 * s;
                uint64_t sc, mn;
                k_scales(p + 4, &sc, &mn);
                memcpy(o + 2 * r, p, 2);
                memcpy(o + 8 + 2 * r, p + 2, 2);
                memcpy(o + 16 + 16 * r, &sc, 8);
                memcpy(o + 24 + 16 * r, &mn, 8);
                for (int j = 0; j < 4; j++) {
                    memcpy(o + 80 + 128 * j + 16 * r, p + 16 + 32 * j, 16);
                    memcpy(o + 80 + 128 * j + 64 + 16 * r, p + 16 + 32 * j + 16, 16);
                }
            }
        }
    }
    return 0;
}

/* rows [r0, r1) of an R4 matrix back in the Q4_K layout, row r0 + i at dst + i·(cols/256)·144: the bytes packed */
int32_t kv_q4k_r4_unpack(const uint8_t *w4, int32_t r0, int32_t r1, int32_t cols, uint8_t *dst) {
    if (cols <= 0 || cols % 256 != 0) return 1;
    int nsb = cols / 256;
    for (int32_t row = r0; row < r1; row++) {
        int r = row & 3;
        const uint8_t *g = w4 + (int64_t) (row >> 2) * nsb * KV_R4_SB;
        uint8_t *p = dst + (int64_t) (row - r0) * nsb * 144;
        for (int s = 0; s < nsb; s++, p += 144) {
            const uint8_t *o = g + (int64_t) s * KV_R4_SB, *sc = o + 16 + 16 * r, *mn = sc + 8;
            memcpy(p, o + 2 * r, 2);
            memcpy(p + 2, o + 8 + 2 * r, 2);
            /* k_scales inverted: bytes 0-3 sc 0-3 with sc 4-7's top 2 bits, 4-7 the mins alike, 8-11 both low nibbles */
            for (int k = 0; k < 4; k++) {
                p[4 + k] = (uint8_t) ((sc[k] & 63) | (sc[k + 4] >> 4) << 6);
                p[8 + k] = (uint8_t) ((mn[k] & 63) | (mn[k + 4] >> 4) << 6);
                p[12 + k] = (uint8_t) ((sc[k + 4] & 15) | (mn[k + 4] & 15) << 4);
            }
            for (int j = 0; j < 4; j++) {
                memcpy(p + 16 + 32 * j, o + 80 + 128 * j + 16 * r, 16);
                memcpy(p + 16 + 32 * j + 16, o + 80 + 128 * j + 64 + 16 * r, 16);
            }
        }
    }
    return 0;
}

/* int16 element k of each 128-bit lane's bytes, zero-extended, over every int16 of the lane (k < 16) */
AVX512 static ALWAYS_INLINE __m512i r4_rep16(int k) { return _mm512_set1_epi16((short) (0x8000 | k)); }

/* One group of 4 rows (nsb super-blocks at w) against one activation: out[0..3], bit for bit qk45_rows512's. */
AVX512 static void r4_rows(const uint8_t *w, int nsb, const int8_t *xq, const float *dk, const int16_t *bs, float *out) {
    const __m512i m0f = _mm512_set1_epi8(0x0F);
    /* the mins as int16 pairs [m_i, m_i], i = 0..3 for A's lanes, 4..7 for B's: bytes 8 + i of each lane */
    const __m512i cmA = _mm512_set1_epi64(0x800b800b800a800aLL) , cmA0 = _mm512_set1_epi64(0x8009800980088008LL);
    const __m512i cmAll = _mm512_unpacklo_epi64(cmA0, cmA);      /* per 128-bit lane: [m8 m8 m9 m9 | m10 m10 m11 m11] */
    const __m512i cmBll = _mm512_add_epi16(cmAll, _mm512_set1_epi16(4));
    const __m512i gd = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0), gm = _mm512_add_epi32(gd, _mm512_set1_epi32(4));
    __m512 accA = _mm512_setzero_ps(), accB = accA, amA = accA, amB = accA;
    for (int s = 0; s < nsb; s++) {
        const uint8_t *p = w + (int64_t) KV_R4_SB * s;
        const int8_t *x = xq + 256 * s;
        for (int l = 0; l < KV_R4_SB; l += 64) _mm_prefetch((const char *) (p + KV_R4_PREFETCH + l), _MM_HINT_T1);
        __m512i scm = _mm512_loadu_si512((const void *) (p + 16));
        __m512i pA = _mm512_setzero_si512(), pB = pA;
        for (int j = 0; j < 4; j++) {
            __m512i rA = _mm512_loadu_si512((const void *) (p + 80 + 128 * j)), rB = _mm512_loadu_si512((const void *) (p + 144 + 128 * j));
            __m512i sl = _mm512_shuffle_epi8(scm, r4_rep16(2 * j)), sh = _mm512_shuffle_epi8(scm, r4_rep16(2 * j + 1));
            __m512i xl0 = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *) (x + 64 * j)));
            __m512i xl1 = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *) (x + 64 * j + 16)));
            __m512i xh0 = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *) (x + 64 * j + 32)));
            __m512i xh1 = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *) (x + 64 * j + 48)));
            pA = _mm512_dpwssd_epi32(pA, _mm512_maddubs_epi16(_mm512_and_si512(rA, m0f), xl0), sl);
            pA = _mm512_dpwssd_epi32(pA, _mm512_maddubs_epi16(_mm512_and_si512(_mm512_srli_epi16(rA, 4), m0f), xh0), sh);
            pB = _mm512_dpwssd_epi32(pB, _mm512_maddubs_epi16(_mm512_and_si512(rB, m0f), xl1), sl);
            pB = _mm512_dpwssd_epi32(pB, _mm512_maddubs_epi16(_mm512_and_si512(_mm512_srli_epi16(rB, 4), m0f), xh1), sh);
        }
        /* mins: lane i of row r gets (bs[2i] + bs[2i + 1])·m_i, as the AVX2 vpmaddwd of the 16-sums */
        __m512i bsA = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *) (bs + 16 * s)));
        __m512i bsB = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *) (bs + 16 * s + 8)));
        __m512i msA = _mm512_madd_epi16(bsA, _mm512_shuffle_epi8(scm, cmAll)), msB = _mm512_madd_epi16(bsB, _mm512_shuffle_epi8(scm, cmBll));
        /* d·dk and dmin·dk per row, each the float product the AVX2 kernel rounds, spread over the row's lanes */
        __m512 dz = _mm512_castps256_ps512(_mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) p)), _mm256_set1_ps(dk[s])));
        __m512 dv = _mm512_permutexvar_ps(gd, dz), dmv = _mm512_permutexvar_ps(gm, dz);
        accA = _mm512_fmadd_ps(_mm512_cvtepi32_ps(pA), dv, accA);
        accB = _mm512_fmadd_ps(_mm512_cvtepi32_ps(pB), dv, accB);
        amA = _mm512_fmadd_ps(_mm512_cvtepi32_ps(msA), dmv, amA);
        amB = _mm512_fmadd_ps(_mm512_cvtepi32_ps(msB), dmv, amB);
    }
    /* row r: hsum_f32 of its 8 lanes [A lanes | B lanes] adds the halves first (A + B), then as hsum_f32 */
    __m512 v = _mm512_add_ps(accA, accB), vm = _mm512_add_ps(amA, amB);
    _Alignas(64) float a[16], m[16];
    _mm512_store_ps(a, v);
    _mm512_store_ps(m, vm);
    for (int r = 0; r < 4; r++) {
        __m128 q = _mm_load_ps(a + 4 * r), qm = _mm_load_ps(m + 4 * r);
        q = _mm_add_ps(q, _mm_movehl_ps(q, q));
        q = _mm_add_ss(q, _mm_movehdup_ps(q));
        qm = _mm_add_ps(qm, _mm_movehl_ps(qm, qm));
        qm = _mm_add_ss(qm, _mm_movehdup_ps(qm));
        out[r] = _mm_cvtss_f32(q) - _mm_cvtss_f32(qm);
    }
}

/**
 * y[yo + r] for rows [r0, r1) of a Q4_K matrix packed by kv_q4k_r4_pack, against one activation in kv_matvec_kq's
 * per-256 form (also kv_matvec_kq_512's type KQ512_Q4_K_R4): the same results bit for bit. A range that starts or ends
 * inside a group computes the whole group and stores only its rows.
 */
AVX512 int32_t kv_matvec_q4k_r4(const uint8_t *w4, int32_t r0, int32_t r1, int32_t cols, const int8_t *xq, const float *xd,
                                const void *xs, float *y, int32_t yo) {
    if (cols <= 0 || cols % 256 != 0) return 1;
    int nsb = cols / 256;
    for (int32_t g = r0 >> 2; 4 * g < r1; g++) {
        const uint8_t *wg = w4 + (int64_t) g * nsb * KV_R4_SB;
        if (4 * g >= r0 && 4 * g + 4 <= r1) {
            r4_rows(wg, nsb, xq, xd, (const int16_t *) xs, y + yo + 4 * g);
        } else {
            float out[4];
            r4_rows(wg, nsb, xq, xd, (const int16_t *) xs, out);
            for (int i = 0; i < 4; i++) if (4 * g + i >= r0 && 4 * g + i < r1) y[yo + 4 * g + i] = out[i];
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- latent attention over a bf16 cache (vdpbf16ps) */

/*
 * MLA decode over a bf16 latent cache (the published model's own number format) with AVX512-BF16's vdpbf16ps, which
 * multiplies 16 pairs of bf16 values and adds each pair's two products into an f32 lane: twice the multiply-adds of
 * an f32 FMA per instruction, from half the bytes of an f32 cache. The query rows and the softmax weights are
 * rounded to bf16 (round to nearest even) for the products; scores, the softmax and the accumulators stay f32. So the
 * results are not the f32 kernels' bit for bit: LatentAttentionTest bounds the difference.
 *
 * Scores: 4 heads × 4 positions of 16-lane accumulators over 32 columns a step (4 key loads and 4 query loads feed
 * 16 vdpbf16ps), then one horizontal reduction per (head, position). Values: the pair a vdpbf16ps lane multiplies
 * must be two positions of one column, so rows 2p and 2p + 1 are interleaved by word (vpunpcklwd / vpunpckhwd, per
 * 128-bit lane), and the accumulators hold each 32 output columns in the order those unpacks give (lo: columns 0-3,
 * 8-11, 16-19, 24-27; hi: the others). o is permuted into that order once per call and back at its end (the
 * softmax's rescaling of o is per element, so it does not mind the order).
 *
 * Blocks of BF_JB = 64 positions (72 KB of rows, in L2 between the scores and the values): the per-block work that
 * does not scale with positions (o loaded and stored per head and 32 columns, the softmax step) is half of what 32
 * would cost. Measured on one Zen 5 core, 16 heads over 576-wide rows: the scores alone reach 447 GFLOP/s and the
 * values 470 in cache; the whole kernel 335 (310 with 32-position blocks and o permuted per block).
 */
#define BF_JB 64
#define AVX512BF16 __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx512vbmi,avx512bf16")))

/** 1 when kv_cpu_avx512() holds and the CPU has AVX512-BF16 (CPUID.(EAX=7, ECX=1):EAX bit 5; Zen 4 and 5, Sapphire Rapids), else 0. */
int32_t kv_cpu_bf16(void) {
    if (!kv_cpu_avx512()) return 0;
    unsigned a, b, c, d;
    __cpuid_count(7, 1, a, b, c, d);
    return (a >> 5) & 1;
}

/*
 * x[0..D) as bf16 pairs (round to nearest even): dst[p] = (x[2p], x[2p + 1]) for p < D/2, zeros on to the next 32 values
 * (⌈D/32⌉·16 dwords, dst 64-byte aligned). The queries of both bf16 kernels and the keys kv_pack_kv_bf16 packs.
 */
AVX512BF16 static ALWAYS_INLINE void bf16_pairs(const float *x, int D, uint32_t *dst) {
    for (int d = 0; d < D; d += 32) {
        int left = D - d;
        __mmask16 m0 = left >= 16 ? 0xFFFF : (__mmask16) ((1u << left) - 1);
        __mmask16 m1 = left >= 32 ? 0xFFFF : left <= 16 ? 0 : (__mmask16) ((1u << (left - 16)) - 1);
        _mm512_store_si512(dst + d / 2, (__m512i) _mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(m1, x + d + 16), _mm512_maskz_loadu_ps(m0, x + d)));
    }
}

/*
 * The softmax weights of a block (H rows of s, stride apart, n of them live) as bf16 pairs, stride / 2 dwords a row
 * of pw: pw[h·stride/2 + P] = (w_h[2P], w_h[2P + 1]); the weights past n are zeroed first. stride % 32 == 0.
 */
AVX512BF16 static ALWAYS_INLINE void weights_bf16(float *s, int stride, int n, int H, uint32_t *pw) {
    for (int h = 0; h < H; h++) {
        float *sh = s + h * stride;
        for (int j = n; j < stride; j++) sh[j] = 0.0f;
        for (int j = 0; j < stride; j += 32)
            _mm512_store_si512(pw + h * (stride / 2) + j / 2, (__m512i) _mm512_cvtne2ps_pbh(_mm512_load_ps(sh + j + 16), _mm512_load_ps(sh + j)));
    }
}

/* Σ of each of 16 vectors, as two 8-lane vectors: out[0] = sums of v[0..7], out[1] = sums of v[8..15]. */
AVX512BF16 static ALWAYS_INLINE void fsum16x16(const __m512 *v, __m256 *out) {
    __m256 h[16];
    for (int i = 0; i < 16; i++) h[i] = _mm256_add_ps(_mm512_castps512_ps256(v[i]), _mm512_extractf32x8_ps(v[i], 1));
    out[0] = fsum8x8(h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]);
    out[1] = fsum8x8(h[8], h[9], h[10], h[11], h[12], h[13], h[14], h[15]);
}

/*
 * s[i·BF_JB + jj + p] = scale · q_i · k_p for heads i < 4 (qb: their bf16 rows, Dp apart, zero past D) and key rows
 * k_p = kb + p·krow (p < cnt ≤ 4; rows past cnt repeat the last, their scores are not stored), over D columns.
 */
AVX512BF16 static ALWAYS_INLINE void scores_bf16_4x4(const uint16_t *qb, int Dp, const uint16_t *kb, int64_t krow, int D, int cnt,
                                                     float scale, float *s, int jj) {
    const uint16_t *k[4];
    for (int p = 0; p < 4; p++) k[p] = kb + (p < cnt ? p : cnt - 1) * krow;
    __m512 a[16];
    for (int i = 0; i < 16; i++) a[i] = _mm512_setzero_ps();
    int d = 0;
    for (; d + 32 <= D; d += 32) {
        __m512bh K0 = (__m512bh) _mm512_loadu_si512(k[0] + d), K1 = (__m512bh) _mm512_loadu_si512(k[1] + d);
        __m512bh K2 = (__m512bh) _mm512_loadu_si512(k[2] + d), K3 = (__m512bh) _mm512_loadu_si512(k[3] + d);
        for (int i = 0; i < 4; i++) {
            __m512bh Q = (__m512bh) _mm512_load_si512(qb + i * Dp + d);
            a[4 * i] = _mm512_dpbf16_ps(a[4 * i], Q, K0);
            a[4 * i + 1] = _mm512_dpbf16_ps(a[4 * i + 1], Q, K1);
            a[4 * i + 2] = _mm512_dpbf16_ps(a[4 * i + 2], Q, K2);
            a[4 * i + 3] = _mm512_dpbf16_ps(a[4 * i + 3], Q, K3);
        }
    }
    if (d < D) {                                        /* the last D − d < 32 columns: masked key loads, zero queries past D */
        __mmask32 mk = (__mmask32) (((uint64_t) 1 << (D - d)) - 1);
        __m512bh K[4];
        for (int p = 0; p < 4; p++) K[p] = (__m512bh) _mm512_maskz_loadu_epi16(mk, k[p] + d);
        for (int i = 0; i < 4; i++) {
            __m512bh Q = (__m512bh) _mm512_load_si512(qb + i * Dp + d);
            for (int p = 0; p < 4; p++) a[4 * i + p] = _mm512_dpbf16_ps(a[4 * i + p], Q, K[p]);
        }
    }
    __m256 t[2];
    fsum16x16(a, t);
    _Alignas(32) float u[16];
    _mm256_store_ps(u, _mm256_mul_ps(t[0], _mm256_set1_ps(scale)));
    _mm256_store_ps(u + 8, _mm256_mul_ps(t[1], _mm256_set1_ps(scale)));
    for (int i = 0; i < 4; i++)
        for (int p = 0; p < cnt; p++) s[i * BF_JB + jj + p] = u[4 * i + p];
}

/*
 * o_i[0..R) += Σ_j w_i[j] · v_j[0..R) for NH ≤ 12 heads, o in the unpacks' column order, w_i as bf16 pairs
 * pw[i·BF_JB/2 + P] = (w_i[2P], w_i[2P + 1]), rows v_j = vb + j·vrow (j < n; the missing partner of an odd last row is
 * zeros). R % 32 == 0.
 */
AVX512BF16 static ALWAYS_INLINE void values_bf16(const uint32_t *pw, int n, const uint16_t *vb, int64_t vrow, float *o0, int R, int NH) {
    int pairs = n / 2;
    for (int d = 0; d < R; d += 32) {
        __m512 lo[12], hi[12];
        for (int i = 0; i < NH; i++) {
            lo[i] = _mm512_loadu_ps(o0 + i * R + d);
            hi[i] = _mm512_loadu_ps(o0 + i * R + d + 16);
        }
        for (int P = 0; P <= pairs; P++) {
            __m512i A, B;
            if (P < pairs) {
                A = _mm512_loadu_si512(vb + 2 * P * vrow + d);
                B = _mm512_loadu_si512(vb + (2 * P + 1) * vrow + d);
            } else {
                if (2 * P >= n) break;                  /* n even: no odd last row */
                A = _mm512_loadu_si512(vb + 2 * P * vrow + d);
                B = _mm512_setzero_si512();
            }
            __m512bh L = (__m512bh) _mm512_unpacklo_epi16(A, B), H = (__m512bh) _mm512_unpackhi_epi16(A, B);
            for (int i = 0; i < NH; i++) {
                __m512bh w = (__m512bh) _mm512_set1_epi32((int) pw[i * (BF_JB / 2) + P]);
                lo[i] = _mm512_dpbf16_ps(lo[i], L, w);
                hi[i] = _mm512_dpbf16_ps(hi[i], H, w);
            }
        }
        for (int i = 0; i < NH; i++) {
            _mm512_storeu_ps(o0 + i * R + d, lo[i]);
            _mm512_storeu_ps(o0 + i * R + d + 16, hi[i]);
        }
    }
}

/* o [H, R] between o's column order and values_bf16's (to: each 32 columns as [lo | hi]; back: the inverse). */
AVX512BF16 static void unpack_order(float *o, int H, int R, int back) {
    const __m512i toLo = _mm512_setr_epi32(0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27);
    const __m512i toHi = _mm512_setr_epi32(4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31);
    const __m512i backX = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
    const __m512i backY = _mm512_setr_epi32(8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31);
    for (int64_t c = 0; c < (int64_t) H * R; c += 32) {
        __m512 X = _mm512_loadu_ps(o + c), Y = _mm512_loadu_ps(o + c + 16);
        _mm512_storeu_ps(o + c, _mm512_permutex2var_ps(X, back ? backX : toLo, Y));
        _mm512_storeu_ps(o + c + 16, _mm512_permutex2var_ps(X, back ? backY : toHi, Y));
    }
}

/**
 * kv_latent_attention over bf16 latents (lat: rows of W bf16 values, row j at j·W): H query rows of width W (q + qo,
 * row i at i·W, f32) against positions [j0, j1), accumulated into the online-softmax state (m, l, o [H, R]).
 * Returns -1 for shapes it does not take (H % 4 != 0, H > 64, W > 576, W odd, R % 32 != 0, R > W).
 */
AVX512BF16 int32_t kv_latent_attention_bf16_512(const float *q, int32_t qo, const uint16_t *lat, int32_t W, int32_t R, int32_t H,
                                               int32_t j0, int32_t j1, float scale, float *m, float *l, float *o) {
    if (H % 4 != 0 || H > 64 || W > 576 || W % 2 != 0 || R % 32 != 0 || R > W) return -1;
    if (j1 <= j0) return 0;
    const int Dp = (W + 31) / 32 * 32;
    _Alignas(64) uint16_t qb[64 * 576];                /* the query rows in bf16, Dp apart, zeros past W */
    for (int i = 0; i < H; i++) bf16_pairs(q + qo + (int64_t) i * W, W, (uint32_t *) (qb + i * Dp));
    _Alignas(64) float s[64 * BF_JB];
    _Alignas(64) uint32_t pw[64 * (BF_JB / 2)];       /* each head's weights as bf16 pairs */
    unpack_order(o, H, R, 0);
    for (int32_t jb = j0; jb < j1; jb += BF_JB) {
        int n = j1 - jb < BF_JB ? j1 - jb : BF_JB;
        const uint16_t *kb = lat + (int64_t) jb * W;
        /* the next block's rows into cache while this one is computed (one core's demand misses alone stream the
           cache below the rate the products take: 28.4 against 31.6 ms for 27 layers of 8,192 positions) */
        if (jb + BF_JB < j1) {                          /* (two or four blocks ahead measured slower) */
            const char *nb = (const char *) (kb + (int64_t) BF_JB * W);
            int64_t left = j1 - jb - BF_JB;
            int64_t bytes = (left < BF_JB ? left : BF_JB) * W * 2;
            for (int64_t b = 0; b < bytes; b += 64) _mm_prefetch(nb + b, _MM_HINT_T0);   /* T1, T2: slower */
        }
        for (int h = 0; h < H; h += 4)
            for (int j = 0; j < n; j += 4) scores_bf16_4x4(qb + h * Dp, Dp, kb + (int64_t) j * W, W, W, n - j < 4 ? n - j : 4, scale, s + h * BF_JB, j);
        softmax_rows(s, BF_JB, n, H, jb, -1, R, m, l, o);
        weights_bf16(s, BF_JB, n, H, pw);
        int h = 0;
        for (; h + 8 <= H; h += 8) values_bf16(pw + h * (BF_JB / 2), n, kb, W, o + (int64_t) h * R, R, 8);
        for (; h < H; h += 4) values_bf16(pw + h * (BF_JB / 2), n, kb, W, o + (int64_t) h * R, R, 4);
    }
    unpack_order(o, H, R, 1);
    return 0;
}

/* ---------------------------------------------------------------- causal prompt attention over bf16 keys and values */

/*
 * The decompressed prompt form (kv_mha_causal) in vdpbf16ps, for a bf16 cache: a head's keys and values of one key
 * block are packed once (kv_pack_kv_bf16) into the layouts the products want, then every block of prompt rows reads
 * them. Keys in groups of 16 positions, the group's pair p (columns 2p, 2p + 1) as 16 dwords, one per position
 * (KT: [n/16][D/2][16]), so a score tile's lanes are 16 positions and each step broadcasts a query's pair: no
 * horizontal sums. Values as pairs of positions, column by column (VP: [n/2][R] dwords (v[2P][c], v[2P + 1][c])),
 * so a value tile's lanes are 16 output columns in their own order. Queries and weights are rounded to bf16 for the
 * products, as in kv_latent_attention_bf16_512; scores, softmax and accumulators stay f32.
 */

/**
 * Packs n keys k[j·ks ..] (D wide, D even) and values v[j·vs ..] (R wide) of one head as bf16: kt [⌈n/16⌉·16/16 groups]
 * × [D/2] × 16 dwords (positions past n zero), vp [⌈n/2⌉] × [R] dwords (a missing odd partner zero). Returns 0, or −1
 * for widths it does not take (D odd or > 576, R % 16 != 0).
 */
AVX512BF16 int32_t kv_pack_kv_bf16(const float *k, int32_t ks, int32_t D, const float *v, int32_t vs, int32_t R, int32_t n,
                                   uint32_t *kt, uint32_t *vp) {
    if (D % 2 != 0 || D > 576 || R % 16 != 0) return -1;
    int groups = (n + 15) / 16, pairs = D / 2;
    /* keys: each row's pairs converted 32 values at a time, then written to their 16-dword rows of the group */
    _Alignas(64) uint32_t row[288 + 16];
    for (int g = 0; g < groups; g++)
        for (int i = 0; i < 16; i++) {
            int j = 16 * g + i;
            if (j < n) bf16_pairs(k + (int64_t) j * ks, D, row);
            else memset(row, 0, sizeof(row));
            uint32_t *dst = kt + (int64_t) g * pairs * 16 + i;
            for (int p = 0; p < pairs; p++) dst[16 * p] = row[p];
        }
    /* values: rows 2P and 2P + 1, 16 columns at a time, their bf16 words interleaved (a missing odd row zeros) */
    static const uint16_t interleave[32] __attribute__((aligned(64))) = {0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23,
                                                                        8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
    const __m512i inter = _mm512_load_si512(interleave);
    for (int P = 0; 2 * P < n; P++) {
        const float *a = v + (int64_t) (2 * P) * vs, *b = 2 * P + 1 < n ? a + vs : NULL;
        for (int c = 0; c < R; c += 16) {
            __m512 A = _mm512_loadu_ps(a + c), B = b ? _mm512_loadu_ps(b + c) : _mm512_setzero_ps();
            __m512i ab = (__m512i) _mm512_cvtne2ps_pbh(B, A);      /* words 0-15: A's, 16-31: B's */
            _mm512_storeu_si512(vp + (int64_t) P * R + c, _mm512_permutexvar_epi16(inter, ab));
        }
    }
    return 0;
}

#define MB_JB 64   /* key positions per softmax block */

/*
 * Scores of NR rows (bf16 query pairs qp, 288 apart) against key groups G and G + 1 (two: G + 1 exists) of kt:
 * s[i·MB_JB + 0..16) for group G and s[i·MB_JB + 16..32) for G + 1, scaled.
 */
AVX512BF16 static ALWAYS_INLINE void scores_rows_bf16(const uint32_t *qp, const uint32_t *kt, int pairs, int G, int two, int NR,
                                                      float scale, float *s) {
    const uint32_t *k0 = kt + (int64_t) G * pairs * 16, *k1 = two ? k0 + (int64_t) pairs * 16 : k0;
    __m512 a[16];
    for (int i = 0; i < 2 * NR; i++) a[i] = _mm512_setzero_ps();
    for (int p = 0; p < pairs; p++) {
        __m512bh K0 = (__m512bh) _mm512_loadu_si512(k0 + 16 * p), K1 = (__m512bh) _mm512_loadu_si512(k1 + 16 * p);   /* Java arrays: 16-byte aligned */
        for (int i = 0; i < NR; i++) {
            __m512bh Q = (__m512bh) _mm512_set1_epi32((int) qp[i * 288 + p]);
            a[2 * i] = _mm512_dpbf16_ps(a[2 * i], K0, Q);
            a[2 * i + 1] = _mm512_dpbf16_ps(a[2 * i + 1], K1, Q);
        }
    }
    __m512 sc = _mm512_set1_ps(scale);
    for (int i = 0; i < NR; i++) {
        _mm512_store_ps(s + i * MB_JB, _mm512_mul_ps(a[2 * i], sc));
        if (two) _mm512_store_ps(s + i * MB_JB + 16, _mm512_mul_ps(a[2 * i + 1], sc));
    }
}

/**
 * kv_mha_causal over kv_pack_kv_bf16's layouts: H query rows q[qo + h·qs ..] (f32, D wide) over keys [j0, j1) of the
 * packed block (kt, vp as packed for n ≥ j1 positions; j0 % 16 == 0), row h seeing keys j ≤ maskBase + h. Online
 * softmax state (m, l, o [H, R]) as kv_mha_causal's. Needs H % 4 == 0, H ≤ 64, D even ≤ 576, R % 16 == 0, R ≤ 512,
 * else −1.
 */
AVX512BF16 int32_t kv_mha_causal_bf16_512(const float *q, int32_t qo, int32_t qs, int32_t D, const uint32_t *kt,
                                         const uint32_t *vp, int32_t R, int32_t H, int32_t j0, int32_t j1, float scale,
                                         int32_t maskBase, float *m, float *l, float *o) {
    if (H % 4 != 0 || H > 64 || D % 2 != 0 || D > 576 || R % 16 != 0 || R > 512 || j0 % 16 != 0) return -1;
    if (j1 <= j0) return 0;
    const int pairs = D / 2;
    _Alignas(64) uint32_t qp[64 * 288];               /* each row's query as bf16 pairs, 288 apart */
    for (int h = 0; h < H; h++) bf16_pairs(q + qo + (int64_t) h * qs, D, qp + h * 288);
    _Alignas(64) float s[64 * MB_JB];
    _Alignas(64) uint32_t pw[64 * (MB_JB / 2)];
    for (int32_t jb = j0; jb < j1; jb += MB_JB) {
        int n = j1 - jb < MB_JB ? j1 - jb : MB_JB, groups = (n + 15) / 16;
        /* scores: 8 (or 4) rows × 2 groups of 16 positions a tile, one accumulator each (16 in flight cover the
           instruction's latency; 8 measured slower) */
        int h = 0;
        for (; h + 8 <= H; h += 8)
            for (int g = 0; g < groups; g += 2) scores_rows_bf16(qp + h * 288, kt, pairs, jb / 16 + g, g + 1 < groups, 8, scale, s + h * MB_JB + 16 * g);
        for (; h < H; h += 4)
            for (int g = 0; g < groups; g += 2) scores_rows_bf16(qp + h * 288, kt, pairs, jb / 16 + g, g + 1 < groups, 4, scale, s + h * MB_JB + 16 * g);
        softmax_rows(s, MB_JB, n, H, jb, maskBase, R, m, l, o);
        weights_bf16(s, MB_JB, n, H, pw);
        /* values: 4 rows × up to 64 columns a tile (16 accumulators), over the block's position pairs */
        int npairs = (n + 1) / 2;
        const uint32_t *vb = vp + (int64_t) (jb / 2) * R;
        for (h = 0; h < H; h += 4) {
            for (int c = 0; c < R; c += 64) {
                int nu = R - c >= 64 ? 4 : (R - c) / 16;
                __m512 a[16];
                for (int i = 0; i < 4; i++)
                    for (int u = 0; u < nu; u++) a[4 * i + u] = _mm512_loadu_ps(o + (int64_t) (h + i) * R + c + 16 * u);
                for (int P = 0; P < npairs; P++) {
                    const uint32_t *row = vb + (int64_t) P * R + c;
                    __m512bh V[4];
                    for (int u = 0; u < nu; u++) V[u] = (__m512bh) _mm512_loadu_si512(row + 16 * u);
                    for (int i = 0; i < 4; i++) {
                        __m512bh w = (__m512bh) _mm512_set1_epi32((int) pw[(h + i) * (MB_JB / 2) + P]);
                        for (int u = 0; u < nu; u++) a[4 * i + u] = _mm512_dpbf16_ps(a[4 * i + u], V[u], w);
                    }
                }
                for (int i = 0; i < 4; i++)
                    for (int u = 0; u < nu; u++) _mm512_storeu_ps(o + (int64_t) (h + i) * R + c + 16 * u, a[4 * i + u]);
            }
        }
    }
    return 0;
}
