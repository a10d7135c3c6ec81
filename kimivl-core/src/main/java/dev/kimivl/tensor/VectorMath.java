package dev.kimivl.tensor;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/** Element-wise and reduction kernels on float arrays (activations live on the heap; weights may not). */
public final class VectorMath {
    public static final VectorSpecies<Float> F = Vectors.F;

    private VectorMath() {}

    /** Σ a[ao+i]·b[bo+i], i in [0, n). */
    public static float dot(float[] a, int ao, float[] b, int bo, int n) {
        int i = 0;
        FloatVector acc = FloatVector.zero(F);
        int bound = F.loopBound(n);
        for (; i < bound; i += F.length()) {
            acc = FloatVector.fromArray(F, a, ao + i).fma(FloatVector.fromArray(F, b, bo + i), acc);
        }
        float s = sum(acc);
        for (; i < n; i++) s += a[ao + i] * b[bo + i];
        return s;
    }

    /**
     * Σ of the lanes in lane order. Not reduceLanes(ADD): its order is unspecified and differs between the interpreted
     * fallback and the C2 intrinsic, so a result would depend on whether the JIT had compiled the loop yet; training
     * (an exactly resumable run) and the f32 products need the same float every time.
     */
    public static float sum(FloatVector v) {
        float s = v.lane(0);
        for (int i = 1; i < v.length(); i++) s += v.lane(i);
        return s;
    }

    /** y[yo+i] += alpha·x[xo+i]. */
    public static void axpy(float alpha, float[] x, int xo, float[] y, int yo, int n) {
        int i = 0;
        int bound = F.loopBound(n);
        FloatVector va = FloatVector.broadcast(F, alpha);
        for (; i < bound; i += F.length()) {
            FloatVector.fromArray(F, x, xo + i).fma(va, FloatVector.fromArray(F, y, yo + i)).intoArray(y, yo + i);
        }
        for (; i < n; i++) y[yo + i] += alpha * x[xo + i];
    }

    /** y[i] += x[i] over the whole arrays. */
    public static void add(float[] y, float[] x) {
        int n = y.length, i = 0, bound = F.loopBound(n);
        for (; i < bound; i += F.length()) {
            FloatVector.fromArray(F, y, i).add(FloatVector.fromArray(F, x, i)).intoArray(y, i);
        }
        for (; i < n; i++) y[i] += x[i];
    }

    /** out[oo+i] = w[i] · x[xo+i] / sqrt(mean(x²) + eps): the RMSNorm of HF Llama/DeepSeek, in float32. */
    public static void rmsNorm(float[] x, int xo, float[] w, float eps, float[] out, int oo, int n) {
        float ss = dot(x, xo, x, xo, n);
        float inv = (float) (1.0 / Math.sqrt(ss / n + eps));
        for (int i = 0; i < n; i++) out[oo + i] = w[i] * (x[xo + i] * inv);
    }

    /** LayerNorm with biased variance: out = (x − mean)/sqrt(var + eps)·γ + β. */
    public static void layerNorm(float[] x, int xo, float[] gamma, float[] beta, float eps, float[] out, int oo, int n) {
        double mean = 0;
        for (int i = 0; i < n; i++) mean += x[xo + i];
        mean /= n;
        double var = 0;
        for (int i = 0; i < n; i++) { double d = x[xo + i] - mean; var += d * d; }
        var /= n;
        float m = (float) mean;
        float inv = (float) (1.0 / Math.sqrt(var + eps));
        for (int i = 0; i < n; i++) out[oo + i] = (x[xo + i] - m) * inv * gamma[i] + beta[i];
    }

    /** In-place softmax of a[ao..ao+n) (max-subtracted, float32). */
    public static void softmax(float[] a, int ao, int n) {
        float max = Float.NEGATIVE_INFINITY;
        for (int i = 0; i < n; i++) max = Math.max(max, a[ao + i]);
        float sum = 0;
        for (int i = 0; i < n; i++) { float e = (float) Math.exp(a[ao + i] - max); a[ao + i] = e; sum += e; }
        float inv = 1f / sum;
        for (int i = 0; i < n; i++) a[ao + i] *= inv;
    }

    /**
     * g[i] = silu(g[i])·u[i] for i in [0, n): SwiGLU's gate, vectorised (the scalar {@link #silu} calls Math.exp per
     * element, ~10% of a 512-token prefill). silu(x) = x / (1 + e^−x) = x·e / (1 + e) for x < 0 with e = e^−|x| ≤ 1,
     * so expNeg covers both signs; within a few ulp of the scalar form.
     */
    public static void siluMul(float[] g, float[] u, int n) {
        int i = 0, bound = F.loopBound(n);
        for (; i < bound; i += F.length()) {
            FloatVector x = FloatVector.fromArray(F, g, i);
            FloatVector e = expNeg(x.abs().neg());
            FloatVector num = x.blend(x.mul(e), x.compare(VectorOperators.LT, 0f));
            num.div(e.add(1f)).mul(FloatVector.fromArray(F, u, i)).intoArray(g, i);
        }
        for (; i < n; i++) g[i] = silu(g[i]) * u[i];
    }

    private static final float LOG2E = 1.44269504088896341f, LN2_HI = 0.693359375f, LN2_LO = -2.12194440e-4f;
    private static final jdk.incubator.vector.VectorSpecies<Integer> I = F.vectorShape().withLanes(int.class);

    /**
     * e^x for x ≤ 0 (scores minus their maximum), Cephes expf: x = n·ln2 + r, |r| ≤ ln2/2, a degree-6 polynomial for
     * e^r, 2^n through the exponent bits; below −87 the result is 0. About 2 ulp; the Vector API's EXP falls back to
     * a slow per-lane path on some JDK builds.
     */
    public static FloatVector expNeg(FloatVector x) {
        x = x.max(-87.0f);
        // round(x·log2 e) for x ≤ 0: truncation of (t − 0.5) rounds toward zero, i.e. up, for negative values
        jdk.incubator.vector.IntVector ni = (jdk.incubator.vector.IntVector) x.mul(LOG2E).sub(0.5f).convertShape(VectorOperators.F2I, I, 0);
        FloatVector n = (FloatVector) ni.convertShape(VectorOperators.I2F, F, 0);
        FloatVector r = n.fma(FloatVector.broadcast(F, -LN2_HI), x);
        r = n.fma(FloatVector.broadcast(F, -LN2_LO), r);
        FloatVector r2 = r.mul(r);
        FloatVector p = FloatVector.broadcast(F, 1.9875691500e-4f);
        p = p.fma(r, FloatVector.broadcast(F, 1.3981999507e-3f));
        p = p.fma(r, FloatVector.broadcast(F, 8.3334519073e-3f));
        p = p.fma(r, FloatVector.broadcast(F, 4.1665795894e-2f));
        p = p.fma(r, FloatVector.broadcast(F, 1.6666665459e-1f));
        p = p.fma(r, FloatVector.broadcast(F, 5.0000001201e-1f));
        p = p.fma(r2, r).add(1f);
        jdk.incubator.vector.IntVector bits = ni.add(127).lanewise(VectorOperators.LSHL, 23);
        return p.mul(bits.reinterpretAsFloats());
    }

    public static float silu(float x) { return x / (1f + (float) Math.exp(-x)); }

    public static float sigmoid(float x) { return 1f / (1f + (float) Math.exp(-x)); }

    /** GELU with the tanh approximation (PyTorch gelu(approximate='tanh')), used by the MoonViT MLP. */
    public static float geluTanh(float x) {
        double inner = Math.sqrt(2.0 / Math.PI) * (x + 0.044715 * x * x * x);
        return (float) (0.5 * x * (1.0 + Math.tanh(inner)));
    }

    /** Exact GELU 0.5·x·(1 + erf(x/√2)), used by the projector. */
    public static float geluErf(float x) {
        return (float) (0.5 * x * (1.0 + erf(x / Math.sqrt(2.0))));
    }

    /** erf to ~1e-15 (W. J. Cody's rational approximations via erfc for |x| ≥ 0.5). */
    public static double erf(double x) {
        double ax = Math.abs(x);
        if (ax < 0.5) {
            // Taylor series, converges fast for small |x|
            double x2 = x * x, term = x, sum = x;
            for (int n = 1; n < 30; n++) {
                term *= -x2 / n;
                double add = term / (2 * n + 1);
                sum += add;
                if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
            }
            return 2.0 / Math.sqrt(Math.PI) * sum;
        }
        double r = 1.0 - erfcLarge(ax);
        return x < 0 ? -r : r;
    }

    /** erfc(x) for x ≥ 0.5 by a continued fraction (Lentz), accurate to double precision. */
    private static double erfcLarge(double x) {
        if (x > 27) return 0.0;
        // erfc(x) = exp(-x²)/√π · 1/(x + 1/2/(x + 1/(x + 3/2/(x + 2/(x + ...)))))
        double tiny = 1e-300;
        double f = x, c = x, d = 0;
        for (int n = 1; n < 500; n++) {
            double a = n * 0.5;
            d = x + a * d; if (d == 0) d = tiny; d = 1 / d;
            c = x + a / c; if (c == 0) c = tiny;
            double delta = c * d;
            f *= delta;
            if (Math.abs(delta - 1) < 1e-16) break;
        }
        return Math.exp(-x * x) / Math.sqrt(Math.PI) / f;
    }

    public static float bf16ToFloat(short bits) { return Float.intBitsToFloat((bits & 0xFFFF) << 16); }

    /** Round-to-nearest-even float → bf16 bits (NaN kept quiet). */
    public static short floatToBf16(float f) {
        int bits = Float.floatToRawIntBits(f);
        if ((bits & 0x7fffffff) > 0x7f800000) return (short) ((bits >>> 16) | 0x40);
        int rounding = 0x7fff + ((bits >>> 16) & 1);
        return (short) ((bits + rounding) >>> 16);
    }
}
