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

    /** a[ao+i] *= c, i in [0, n). */
    public static void scale(float[] a, int ao, int n, float c) {
        int i = 0, bound = F.loopBound(n);
        for (; i < bound; i += F.length()) FloatVector.fromArray(F, a, ao + i).mul(c).intoArray(a, ao + i);
        for (; i < n; i++) a[ao + i] *= c;
    }

    /** y[i] += x[i] over the whole arrays. */
    public static void add(float[] y, float[] x) { add(y, 0, x, 0, y.length); }

    /** y[yo+i] += x[xo+i], i in [0, n). */
    public static void add(float[] y, int yo, float[] x, int xo, int n) {
        int i = 0, bound = F.loopBound(n);
        for (; i < bound; i += F.length()) {
            FloatVector.fromArray(F, y, yo + i).add(FloatVector.fromArray(F, x, xo + i)).intoArray(y, yo + i);
        }
        for (; i < n; i++) y[yo + i] += x[xo + i];
    }

    /** out[oo+i] = w[i] · x[xo+i] / sqrt(mean(x²) + eps): the RMSNorm of HF Llama/DeepSeek, in float32. */
    public static void rmsNorm(float[] x, int xo, float[] w, float eps, float[] out, int oo, int n) {
        float ss = dot(x, xo, x, xo, n);
        float inv = (float) (1.0 / Math.sqrt(ss / n + eps));
        for (int i = 0; i < n; i++) out[oo + i] = w[i] * (x[xo + i] * inv);
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
     * so one exp of a non-positive argument covers both signs; within a few ulp of the scalar form.
     */
    public static void siluMul(float[] g, float[] u, int n) {
        int i = 0, bound = F.loopBound(n);
        for (; i < bound; i += F.length()) {
            FloatVector x = FloatVector.fromArray(F, g, i);
            FloatVector e = exp(x.abs().neg());
            FloatVector num = x.blend(x.mul(e), x.compare(VectorOperators.LT, 0f));
            num.div(e.add(1f)).mul(FloatVector.fromArray(F, u, i)).intoArray(g, i);
        }
        for (; i < n; i++) g[i] = silu(g[i]) * u[i];
    }

    /**
     * e^x on float lanes of any width (the vector's own species: callers pass {@link Vectors#F} or {@link Vectors#F8}
     * vectors), to ~1 ulp; the one vector exp of the engine (SwiGLU's SiLU, both attentions' softmax, MoonViT's GELU
     * and erf). Inputs below −87 give ~e^−87 (not a subnormal), inputs above 88 are clamped. The Vector API's
     * lanewise(EXP) falls back to a slow per-lane Java path on this JDK, so it is not used.
     */
    public static FloatVector exp(FloatVector x) {
        x = x.blend(-87.0f, x.compare(VectorOperators.LT, -87.0f)).blend(88.0f, x.compare(VectorOperators.GT, 88.0f));
        return expNoClamp(x);
    }

    /**
     * {@link #exp} for −87 ≤ x ≤ 88 (the caller guarantees the range; outside it the result is garbage). Cephes expf:
     * x = n·ln2 + r by Cody–Waite, a degree-6 polynomial in r, and 2^n added to the result's exponent bits. n comes
     * from the 1.5·2^23 rounding trick, whose low mantissa bits shifted left by 23 are n·2^23, so there is no
     * float→int conversion. Constants are broadcast from x ({@code x.broadcast}), so the method is width-generic and
     * still intrinsified once inlined into a kernel with a constant species.
     */
    public static FloatVector expNoClamp(FloatVector x) {
        final float magic = 12582912f;                      // 1.5·2^23: adding it rounds to the nearest integer
        FloatVector t = x.fma(x.broadcast(1.44269504088896341f), x.broadcast(magic));
        FloatVector n = t.sub(magic);
        FloatVector r = n.fma(x.broadcast(-0.693359375f), x);
        r = n.fma(x.broadcast(2.12194440e-4f), r);
        FloatVector p = r.fma(x.broadcast(1.9875691500E-4f), x.broadcast(1.3981999507E-3f));
        p = p.fma(r, x.broadcast(8.3334519073E-3f));
        p = p.fma(r, x.broadcast(4.1665795894E-2f));
        p = p.fma(r, x.broadcast(1.6666665459E-1f));
        p = p.fma(r, x.broadcast(5.0000001201E-1f));
        p = p.fma(r.mul(r), r).add(1f);
        jdk.incubator.vector.IntVector e = t.reinterpretAsInts().lanewise(VectorOperators.LSHL, 23);
        return p.reinterpretAsInts().add(e).reinterpretAsFloats();
    }

    public static float silu(float x) { return x / (1f + (float) Math.exp(-x)); }

    public static float sigmoid(float x) { return 1f / (1f + (float) Math.exp(-x)); }

    /**
     * GELU with the tanh approximation on float lanes of any width: 0.5·v·(1 + tanh(u)) = v − v/(e^{2u} + 1),
     * u = √(2/π)(v + 0.044715v³), e^x by {@link #exp}. MoonViT's MLP in inference ({@code PackedLinear}) and in
     * training ({@code VisionGrad}): one formula, so training's forward is inference's to the bit. Lanes are
     * independent, so the width does not change a float.
     */
    public static FloatVector geluTanh(FloatVector v) {
        FloatVector inner = v.mul(v).mul(v).mul(0.044715f).add(v).mul((float) Math.sqrt(2.0 / Math.PI));
        FloatVector e = exp(inner.mul(2f));
        return v.sub(v.div(e.add(1f)));
    }

    /**
     * d/dv of {@link #geluTanh(FloatVector)}: 0.5(1 + t) + 0.5v(1 − t²)·u' with t = tanh(u), u' = √(2/π)(1 + 3·0.044715v²).
     * Written through e = e^{2u} (the forward's) and q = 1/(e + 1), as 1 + t = 2e·q and 1 − t² = 4e·q², to
     * e·q·(1 + 2v·u'·q): no 1 − t² cancelling to nothing where t is near ±1. For training's backward.
     */
    public static FloatVector geluTanhGrad(FloatVector v) {
        final float c = (float) Math.sqrt(2.0 / Math.PI);
        FloatVector v2 = v.mul(v);
        FloatVector inner = v2.mul(v).mul(0.044715f).add(v).mul(c);
        FloatVector e = exp(inner.mul(2f));
        FloatVector q = v.broadcast(1f).div(e.add(1f));
        FloatVector dInner = v2.mul(3 * 0.044715f).add(1f).mul(c);
        return e.mul(q).mul(v.mul(2f).mul(dInner).fma(q, v.broadcast(1f)));
    }

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
