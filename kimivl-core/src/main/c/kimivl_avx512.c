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
#define ALWAYS_INLINE __attribute__((always_inline)) inline

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
        /* the last, partial pair: block by block, zeros past nb */
        for (int g = 2 * q; g < 2 * q + 2; g++) {
            __m256i r[8];
            for (int i = 0; i < 8; i++) {
                int b = 8 * g + i;
                if (b < nb) {
                    __m128i raw = _mm_loadu_si128((const __m128i *) (p + 18 * b + 2));
                    r[i] = _mm256_and_si256(_mm256_inserti128_si256(_mm256_castsi128_si256(raw), _mm_srli_epi16(raw, 4), 1),
                                            _mm256_set1_epi8(0x0F));
                    ws[b] = _cvtsh_ss(load_u16(p + 18 * b));
                } else {
                    r[i] = _mm256_setzero_si256();
                    ws[b] = 0.0f;
                }
            }
            transpose8x8(r);
            for (int k = 0; k < 8; k++) _mm256_store_si256((__m256i *) (wq + gemm_x_at(g, k)), r[k]);
        }
    }
}

/* As unpack_q4_row512 for Q8_0: w + 128 as unsigned bytes (the sign bit flipped), corrected by 128·Σx per block. */
AVX512 static void unpack_q8_row512(const uint8_t *p, int nb, uint8_t *wu, float *ws) {
    const __m256i flip = _mm256_set1_epi8((char) 0x80);
    int G = (nb + 7) / 8, P = (G + 1) / 2;
    for (int g = 0; g < 2 * P; g++) {
        __m256i r[8];
        for (int i = 0; i < 8; i++) {
            int b = 8 * g + i;
            if (b < nb) {
                r[i] = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *) (p + 34 * b + 2)), flip);
                ws[b] = _cvtsh_ss(load_u16(p + 34 * b));
            } else {
                r[i] = _mm256_setzero_si256();
                ws[b] = 0.0f;
            }
        }
        transpose8x8(r);
        for (int k = 0; k < 8; k++) _mm256_store_si256((__m256i *) (wu + gemm_x_at(g, k)), r[k]);
    }
}

/*
 * 4 unpacked rows × T = 1..4 packed tokens (T a constant per inlined copy): out[4·i + t] = row i · token t.
 * Per pair of groups, 8 steps of 64 bytes: each weight load feeds T vpdpbusd, each activation load 4; the int32
 * lane j of an accumulator ends as block j's Σ w·x (lanes 0-7 the pair's first group, 8-15 its second). Then, per
 * group, the AVX2 kernel's float step: (Σ w·x − corr)·(d_w·d_x) fused-added into 8 float lanes. corr: the packed
 * block sums xs (8·Σx) shifted left by xs_shift: Q4_0's nibbles are q = w + 8, so Σ w·x = Σ q·x − 8·Σx (shift 0);
 * Q8_0's unsigned bytes are w + 128 (shift 4: 128·Σx = 16·(8·Σx)).
 */
AVX512 static ALWAYS_INLINE void tile4_512(const uint8_t *const *wa, const float *const *wsc, const int8_t *x, int64_t xbytes,
                                           const float *xd, const int32_t *xs, int64_t xfloats, int G, int T, int xs_shift,
                                           float *out) {
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
            __m512i corr = _mm512_slli_epi32(_mm512_loadu_si512((const void *) (xs + t * xfloats + 16 * p)), xs_shift);
            __m512 xdt = _mm512_loadu_ps(xd + t * xfloats + 16 * p);
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
} gemm512_rows;

/* Tokens per block of the GEMM: their packed activations (≤ 64 × 2 KB for the model's 2048 columns) stay in L2 while
 * every row tile of the call passes over them. Without blocking, a 512-token prompt's 1 MB of activations streamed
 * from L3 once per 4 rows. */
#define GEMM512_TOKEN_BLOCK 64

/* The GEMM driver of both formats (q8 selects Q8_0): tokens in blocks held in L2; per block, rows in tiles of 4
 * unpacked once each, then tokens in fours. */
AVX512 static void gemm512(int q8, const uint8_t *w, int32_t r0, int32_t r1, int nb,
                           const int8_t *xp, const float *xdp, const int32_t *xsp, int32_t n, float *y, int32_t ldy) {
    int G = (nb + 7) / 8, P = (G + 1) / 2;
    int64_t rb = (int64_t) nb * (q8 ? 34 : 18), xbytes = (int64_t) P * 512, xfloats = (int64_t) P * 16;
    int shift = q8 ? 4 : 0;
    gemm512_rows buf;
    float out[16];
    for (int32_t tb = 0; tb < n; tb += GEMM512_TOKEN_BLOCK) {
        int32_t te = n - tb < GEMM512_TOKEN_BLOCK ? n : tb + GEMM512_TOKEN_BLOCK;
        for (int32_t r = r0; r < r1; r += 4) {
            int m = r1 - r < 4 ? r1 - r : 4;
            const uint8_t *wa[4];
            const float *ws[4];
            for (int i = 0; i < 4; i++) {
                if (i < m) {
                    if (q8) unpack_q8_row512(w + (r + i) * rb, nb, buf.a[i], buf.s[i]);
                    else unpack_q4_row512(w + (r + i) * rb, nb, buf.a[i], buf.s[i]);
                }
                int k = i < m ? i : m - 1;              /* a missing row repeats the last one, not stored */
                wa[i] = buf.a[k];
                ws[i] = buf.s[k];
            }
            /* the next tile's rows, while this one computes: the hardware prefetcher loses the stream between bursts */
            if (r + 4 < r1) {
                const uint8_t *nx = w + (int64_t) (r + 4) * rb;
                int64_t len = (int64_t) (r1 - r - 4 < 4 ? r1 - r - 4 : 4) * rb;
                for (int64_t o = 0; o < len; o += 64) _mm_prefetch((const char *) (nx + o), _MM_HINT_T0);
            }
            for (int32_t t = tb; t < te; t += 4) {
                int T = te - t < 4 ? te - t : 4;
                const int8_t *x = xp + t * xbytes;
                const float *xd = xdp + t * xfloats;
                const int32_t *xs = xsp + t * xfloats;
                switch (T) {                             /* a constant T per inlined copy */
                    case 4: tile4_512(wa, ws, x, xbytes, xd, xs, xfloats, G, 4, shift, out); break;
                    case 3: tile4_512(wa, ws, x, xbytes, xd, xs, xfloats, G, 3, shift, out); break;
                    case 2: tile4_512(wa, ws, x, xbytes, xd, xs, xfloats, G, 2, shift, out); break;
                    default: tile4_512(wa, ws, x, xbytes, xd, xs, xfloats, G, 1, shift, out); break;
                }
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
    gemm512(0, w, r0, r1, cols / 32, xp, xdp, xsp, n, y, ldy);
    return 0;
}

/** kv_gemm_q8_0's product with AVX-512 VNNI (needs the packed block sums xsp for the unsigned-weight correction). */
AVX512 int32_t kv_gemm_q8_0_512(const uint8_t *w, int32_t r0, int32_t r1, int32_t cols,
                                const int8_t *xp, const float *xdp, const int32_t *xsp, int32_t n, float *y, int32_t ldy) {
    if (cols > GEMM512_MAX_COLS) return -1;
    gemm512(1, w, r0, r1, cols / 32, xp, xdp, xsp, n, y, ldy);
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
