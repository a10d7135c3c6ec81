package dev.kimivl.train;

import jdk.incubator.vector.DoubleVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * Dot products and axpys on double lanes, for the training code that keeps its products in double (the caption
 * decoder, whose finite-difference test needs double-precision losses). Each result is deterministic: the lanes are
 * summed in a fixed order (not by reduceLanes, whose order the intrinsic and the Java fallback may take differently),
 * so a run and its resumed copy compute the same bits.
 */
final class Doubles {
    private static final VectorSpecies<Double> D = DoubleVector.SPECIES_PREFERRED;
    private static final int L = D.length();

    private Doubles() {}

    /** A double copy of a. */
    static double[] of(float[] a) {
        double[] d = new double[a.length];
        for (int i = 0; i < a.length; i++) d[i] = a[i];
        return d;
    }

    /**
     * Σ_i a[ao + i]·b[bo + i] for i in [0, n): two vectors of fused partial sums (lane l of each takes i ≡ l mod L of
     * alternate vectors), their lanes added in order, then the scalar tail.
     */
    static double dot(double[] a, int ao, double[] b, int bo, int n) {
        int i = 0;
        double r = 0;
        if (n >= 2 * L) {
            DoubleVector s0 = DoubleVector.zero(D), s1 = DoubleVector.zero(D);
            for (int bound = n - n % (2 * L); i < bound; i += 2 * L) {
                s0 = DoubleVector.fromArray(D, a, ao + i).fma(DoubleVector.fromArray(D, b, bo + i), s0);
                s1 = DoubleVector.fromArray(D, a, ao + i + L).fma(DoubleVector.fromArray(D, b, bo + i + L), s1);
            }
            double[] lanes = new double[L];
            s0.add(s1).intoArray(lanes, 0);
            for (int l = 0; l < L; l++) r += lanes[l];
        }
        for (; i < n; i++) r += a[ao + i] * b[bo + i];
        return r;
    }

    /** y[yo + i] += c·x[xo + i] for i in [0, n), each fused. */
    static void axpy(double c, double[] x, int xo, double[] y, int yo, int n) {
        int i = 0;
        DoubleVector cv = DoubleVector.broadcast(D, c);
        for (int bound = D.loopBound(n); i < bound; i += L) {
            DoubleVector.fromArray(D, x, xo + i).fma(cv, DoubleVector.fromArray(D, y, yo + i)).intoArray(y, yo + i);
        }
        for (; i < n; i++) y[yo + i] = Math.fma(c, x[xo + i], y[yo + i]);
    }

    /** out[i] = (float) a[i]. */
    static float[] toFloats(double[] a) {
        float[] f = new float[a.length];
        for (int i = 0; i < a.length; i++) f[i] = (float) a[i];
        return f;
    }
}
