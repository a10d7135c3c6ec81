package dev.kimivl.train;

import java.util.SplittableRandom;

/**
 * Random initial values from a splittable stream (Box–Muller), the same on every JVM, unlike {@code Random}'s cached
 * second normal: the model's initial weights ({@code ModelSpec}) and the pretrain-vit stage's towers.
 */
public final class Init {
    private Init() {}

    /** One standard normal. */
    public static double standardNormal(SplittableRandom r) {
        double u1 = r.nextDouble(), u2 = r.nextDouble();
        return Math.sqrt(-2 * Math.log(1 - u1)) * Math.cos(2 * Math.PI * u2);
    }

    /**
     * n values of N(0, std²). The product is taken as std·√(−2 ln(1 − u))·cos(2πv), in that order, not as
     * std·{@link #standardNormal}: the towers of the shipped run were initialised so, and the last bit matters to a
     * bit-identical rerun.
     */
    public static float[] normal(SplittableRandom r, int n, double std) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            double u = r.nextDouble(), v = r.nextDouble();
            a[i] = (float) (std * Math.sqrt(-2 * Math.log(1 - u)) * Math.cos(2 * Math.PI * v));
        }
        return a;
    }
}
