package dev.kimivl.tensor;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * The one place the float vector width is chosen. Kernels hold these in their own {@code static final} fields (a
 * species must be a JIT constant, or the Vector API calls stay boxed and run ~10x slower).
 *
 * <ul>
 *   <li>{@link #F}: the machine's width, for the kernels written for any width: 256 bits (8 lanes) with AVX2, 512
 *       (16) with AVX-512; {@code -Dkimivl.vectorBits=256|512} forces one (to test the other kernels: a width the
 *       CPU lacks runs very slowly).</li>
 *   <li>{@link #F8}: 256 bits whatever the machine, for the kernels whose register blocking is written for 8 lanes
 *       and 16 registers (the integer kernels, the 6×16 GEMM micro-kernels).</li>
 * </ul>
 */
public final class Vectors {
    /** The machine-width float species ({@link KernelSettings#vectorBits}). */
    public static final VectorSpecies<Float> F = KernelSettings.SYSTEM.vectorBits() >= 512 ? FloatVector.SPECIES_512 : FloatVector.SPECIES_256;
    /** Lanes of {@link #F}. */
    public static final int FL = F.length();
    /** 8 float lanes, for the kernels blocked for AVX2's 16 registers. */
    public static final VectorSpecies<Float> F8 = FloatVector.SPECIES_256;

    private Vectors() {}
}
