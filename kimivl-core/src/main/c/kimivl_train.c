/*
 * Kernels of the training side (dev.kimivl.train): MoonViT's attention forward and backward for one head of one
 * image, in f32 with AVX-512 (called by VisionGrad where NativeKernels.vitAttention holds).
 *
 * Why native: the Java form (LinearOps.dotsT / rowTimes, one query or output row at a time) ran the vision tower's
 * attention at ~30 GFLOP/s on two cores, a quarter of a pretrain-vit step on the wide tower (TrainStepBench --profile,
 * session 32). Here every product is a register tile of 4 rows × up to 64 columns (8-16 accumulators), with the other
 * operand broadcast, so the FMA units stay busy; d = 32 (MoonViT-nano's head) is two vectors a row.
 *
 * Shapes (one head of one image; n positions, d = head dim, d % 16 == 0, d <= 256; np = n rounded up to 16):
 *   q, k, v, dO   [n][d] contiguous rows
 *   p, ds         scratch [n][np]: the probabilities, then dS (padding columns zero)
 *   t             scratch [d][np]: kᵀ or vᵀ (padding columns zero)
 *   out / dq, dk, dv  rows of ldo floats from their offsets (the caller's [L, D] or [L, 3D] arrays in place)
 * The sums run in another order than the Java form's, so the floats differ in the last bits (VisionGradTest holds
 * both to the same tolerances; NativeTrainKernelsTest holds this one to a double reference).
 */
#include "kimivl_common.h"

#define AVX512 __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq")))
#define ALWAYS_INLINE __attribute__((always_inline)) inline

/* t[c][j] = m[j][c] for j < n, zero for n <= j < np: a [d][np] transpose of an [n][d] block. */
static void transpose_pad(const float *m, int n, int d, int np, float *t) {
    for (int c = 0; c < d; c++) {
        float *tc = t + (int64_t) c * np;
        for (int j = 0; j < n; j++) tc[j] = m[(int64_t) j * d + c];
        for (int j = n; j < np; j++) tc[j] = 0.0f;
    }
}

/*
 * s[i][j] = scale · Σ_c a[i][c]·t[c][j] for R rows of a (from row i0) and every column of t (np, in blocks of 32 then
 * 16): R × 2 accumulators, one broadcast of a per row and two loads of t per c.
 */
AVX512 static ALWAYS_INLINE void rows_by_t(const int R, const float *a, int d, const float *t, int np, float scale, float *s) {
    int j = 0;
    for (; j + 32 <= np; j += 32) {
        __m512 acc0[4], acc1[4];
        for (int r = 0; r < R; r++) { acc0[r] = _mm512_setzero_ps(); acc1[r] = _mm512_setzero_ps(); }
        for (int c = 0; c < d; c++) {
            __m512 t0 = _mm512_loadu_ps(t + (int64_t) c * np + j), t1 = _mm512_loadu_ps(t + (int64_t) c * np + j + 16);
            for (int r = 0; r < R; r++) {
                __m512 b = _mm512_set1_ps(a[r * d + c]);
                acc0[r] = _mm512_fmadd_ps(b, t0, acc0[r]);
                acc1[r] = _mm512_fmadd_ps(b, t1, acc1[r]);
            }
        }
        for (int r = 0; r < R; r++) {
            _mm512_storeu_ps(s + (int64_t) r * np + j, _mm512_mul_ps(acc0[r], _mm512_set1_ps(scale)));
            _mm512_storeu_ps(s + (int64_t) r * np + j + 16, _mm512_mul_ps(acc1[r], _mm512_set1_ps(scale)));
        }
    }
    for (; j < np; j += 16) {
        __m512 acc[4];
        for (int r = 0; r < R; r++) acc[r] = _mm512_setzero_ps();
        for (int c = 0; c < d; c++) {
            __m512 t0 = _mm512_loadu_ps(t + (int64_t) c * np + j);
            for (int r = 0; r < R; r++) acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(a[r * d + c]), t0, acc[r]);
        }
        for (int r = 0; r < R; r++) _mm512_storeu_ps(s + (int64_t) r * np + j, _mm512_mul_ps(acc[r], _mm512_set1_ps(scale)));
    }
}

/* s [n][np] = scale · a [n][d] · t [d][np], rows in fours. */
AVX512 static void scores(const float *a, int n, int d, const float *t, int np, float scale, float *s) {
    int i = 0;
    for (; i + 4 <= n; i += 4) rows_by_t(4, a + (int64_t) i * d, d, t, np, scale, s + (int64_t) i * np);
    for (; i < n; i++) rows_by_t(1, a + (int64_t) i * d, d, t, np, scale, s + (int64_t) i * np);
}

/* Each row of s [n][np] (n live columns) replaced by its softmax; padding columns stay zero. */
AVX512 static void softmax_rows_vit(float *s, int n, int np) {
    for (int i = 0; i < n; i++) {
        float *row = s + (int64_t) i * np;
        __m512 mx = _mm512_set1_ps(-INFINITY);
        for (int j = 0; j < np; j += 16) {
            __mmask16 m = n - j >= 16 ? 0xFFFF : (__mmask16) ((1u << (n - j)) - 1);
            mx = _mm512_mask_max_ps(mx, m, mx, _mm512_loadu_ps(row + j));
        }
        __m512 max = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
        __m512 sum = _mm512_setzero_ps();
        for (int j = 0; j < np; j += 16) {
            __mmask16 m = n - j >= 16 ? 0xFFFF : (__mmask16) ((1u << (n - j)) - 1);
            __m512 e = _mm512_maskz_mov_ps(m, exp_neg_512(_mm512_sub_ps(_mm512_loadu_ps(row + j), max)));
            sum = _mm512_add_ps(sum, e);
            _mm512_storeu_ps(row + j, e);
        }
        __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(sum));
        for (int j = 0; j < np; j += 16) _mm512_storeu_ps(row + j, _mm512_mul_ps(_mm512_loadu_ps(row + j), inv));
    }
}

/*
 * out[i] = Σ_j w[i][j]·m[j] for R rows i (w rows ldw apart, from wi·ldw + j, stepping wj per j) over n terms,
 * columns [c0, c0 + 16V) of m [n][d]: R × V accumulators, V loads of m and R broadcasts of w per term. With
 * (ldw, wj) = (np, 1) the rows of w are its rows (P·V, dS·K); with (1, np) its columns (Pᵀ·dO, dSᵀ·Q).
 */
AVX512 static ALWAYS_INLINE void weighted_rows(const int R, const int V, const float *w, int64_t ldw, int64_t wj, const float *m, int d, int n,
                                               int c0, float *out, int ldo) {
    __m512 acc[4][4];
    for (int r = 0; r < R; r++) for (int u = 0; u < V; u++) acc[r][u] = _mm512_setzero_ps();
    for (int j = 0; j < n; j++) {
        __m512 mv[4];
        for (int u = 0; u < V; u++) mv[u] = _mm512_loadu_ps(m + (int64_t) j * d + c0 + 16 * u);
        for (int r = 0; r < R; r++) {
            __m512 b = _mm512_set1_ps(w[r * ldw + j * wj]);
            for (int u = 0; u < V; u++) acc[r][u] = _mm512_fmadd_ps(b, mv[u], acc[r][u]);
        }
    }
    for (int r = 0; r < R; r++) {
        for (int u = 0; u < V; u++) {
            _mm512_storeu_ps(out + (int64_t) r * ldo + c0 + 16 * u, acc[r][u]);
        }
    }
}

/*
 * out [rows][ldo] = W·m over n terms, W's row i at w + i·ldw (term j at + j·wj): rows in fours, columns in chunks of
 * up to 64 (4 vectors).
 */
/* weighted_rows for R rows and V = 1..4 vectors (V known only at run time). */
AVX512 static ALWAYS_INLINE void weighted_any(const int R, int V, const float *w, int64_t ldw, int64_t wj, const float *m, int d, int n,
                                              int c0, float *out, int ldo) {
    switch (V) {
        case 1: weighted_rows(R, 1, w, ldw, wj, m, d, n, c0, out, ldo); break;
        case 2: weighted_rows(R, 2, w, ldw, wj, m, d, n, c0, out, ldo); break;
        case 3: weighted_rows(R, 3, w, ldw, wj, m, d, n, c0, out, ldo); break;
        default: weighted_rows(R, 4, w, ldw, wj, m, d, n, c0, out, ldo); break;
    }
}

/*
 * out [rows][ldo] = W·m over n terms, W's row i at w + i·ldw (term j at + j·wj): rows in fours, columns in chunks of
 * up to 64 (4 vectors).
 */
AVX512 static void weighted(const float *w, int64_t ldw, int64_t wj, int rows, const float *m, int d, int n, float *out, int ldo) {
    for (int c0 = 0; c0 < d; c0 += 64) {
        int V = (d - c0) / 16 < 4 ? (d - c0) / 16 : 4;
        int i = 0;
        for (; i + 4 <= rows; i += 4) weighted_any(4, V, w + i * ldw, ldw, wj, m, d, n, c0, out + (int64_t) i * ldo, ldo);
        for (; i < rows; i++) weighted_any(1, V, w + i * ldw, ldw, wj, m, d, n, c0, out + (int64_t) i * ldo, ldo);
    }
}

static int bad_shape(int32_t n, int32_t d) { return n <= 0 || d <= 0 || d % 16 != 0 || d > 256; }

/*
 * Forward: P = softmax(scale · q·kᵀ) into p [n][np], out[o + i·ldo + c] = Σ_j P[i][j]·v[j][c]. t: scratch [d][np].
 * Returns 1 for a shape it does not take (d not a multiple of 16 or over 256), else 0.
 */
AVX512 int32_t kv_vit_attention(const float *q, const float *k, const float *v, int32_t n, int32_t d, float scale,
                                float *p, float *t, float *out, int32_t o, int32_t ldo) {
    if (bad_shape(n, d)) return 1;
    int np = (n + 15) & ~15;
    transpose_pad(k, n, d, np, t);
    scores(q, n, d, t, np, scale, p);
    softmax_rows_vit(p, n, np);
    weighted(p, np, 1, n, v, d, n, out + o, ldo);
    return 0;
}

/*
 * Backward, P recomputed: dV = Pᵀ·dO, dP = dO·Vᵀ, dS = P ∘ (dP − rowsum(dP ∘ P))·scale, dq = dS·K, dk = dSᵀ·Q; dq, dk
 * and dv written (not added) to rows ldo apart from their offsets. Scratch p, ds [n][np], t [d][np].
 */
AVX512 int32_t kv_vit_attention_backward(const float *q, const float *k, const float *v, const float *dO, int32_t n, int32_t d, float scale,
                                         float *p, float *ds, float *t, float *g, int32_t oq, int32_t ok, int32_t ov, int32_t ldo) {
    if (bad_shape(n, d)) return 1;
    int np = (n + 15) & ~15;
    transpose_pad(k, n, d, np, t);
    scores(q, n, d, t, np, scale, p);
    softmax_rows_vit(p, n, np);
    transpose_pad(v, n, d, np, t);
    scores(dO, n, d, t, np, 1.0f, ds);                          /* dP */
    for (int i = 0; i < n; i++) {
        float *pr = p + (int64_t) i * np, *dr = ds + (int64_t) i * np;
        __m512 acc = _mm512_setzero_ps();
        for (int j = 0; j < np; j += 16) acc = _mm512_fmadd_ps(_mm512_loadu_ps(pr + j), _mm512_loadu_ps(dr + j), acc);
        __m512 rowdot = _mm512_set1_ps(_mm512_reduce_add_ps(acc)), sc = _mm512_set1_ps(scale);
        for (int j = 0; j < np; j += 16) {
            __m512 pv = _mm512_loadu_ps(pr + j);
            _mm512_storeu_ps(dr + j, _mm512_mul_ps(_mm512_mul_ps(pv, _mm512_sub_ps(_mm512_loadu_ps(dr + j), rowdot)), sc));
        }
    }
    weighted(ds, np, 1, n, k, d, n, g + oq, ldo);              /* dq_i = Σ_j dS_ij k_j */
    weighted(ds, 1, np, n, q, d, n, g + ok, ldo);              /* dk_j = Σ_i dS_ij q_i */
    weighted(p, 1, np, n, dO, d, n, g + ov, ldo);              /* dv_j = Σ_i P_ij dO_i */
    return 0;
}
