package dev.kimivl.vision;

import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

/**
 * The vision encoder's kernels that reduce across lanes (LayerNorm's mean and variance, the reference attention's
 * softmax denominator) give the same floats before and after the JIT compiles them, as the language model's kernels do
 * ({@code dev.kimivl.tensor.KernelJitDeterminismTest}): a float {@code reduceLanes(ADD)} adds the lanes in order when
 * interpreted and as a tree once C2 compiles it, so the same image encoded early in a run and later differed in the
 * last bits. The kernels sum their lanes in lane order ({@code VectorMath.sum}).
 *
 * <p>Run alone (a fresh JVM) this compares interpreted against compiled results; after other tests have warmed the
 * kernels it compares compiled against compiled, which must hold too.
 */
class VisionKernelJitDeterminismTest {
    /** Enough calls (each with its loops' back-edges) for C2 to compile the kernels. */
    private static final int CALLS = 100_000;

    private static float[] gaussian(Random r, int n, float scale, float shift) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) a[i] = shift + scale * (float) r.nextGaussian();
        return a;
    }

    @Test
    void layerNormGivesTheSameFloatsInterpretedAndCompiled() {
        Random r = new Random(3);
        // A row whose lane sums round differently in lane order and as a tree: the lanes of the vector sum are
        // [2, 2, 2, 2, 1e8, 0, 0, 0] (in order 1e8 + 8; as a tree each 2 is lost against 1e8). Then random rows of
        // 72 (vectors and a scalar tail) and 1152 (MoonViT's width, two accumulators).
        float[] designed = new float[72];
        java.util.Arrays.fill(designed, 0, 4, 2f);
        designed[4] = 1e8f;
        List<float[]> rows = List.of(designed, gaussian(r, 72, 3f, 0.7f), gaussian(r, 1152, 3f, 0.7f));
        for (float[] x : rows) {
            int w = x.length;
            float[] gamma = gaussian(r, w, 0.2f, 1f), beta = gaussian(r, w, 0.1f, 0f);
            float[] first = new float[w], later = new float[w];
            VisionKernels.layerNormRow(x, 0, gamma, beta, 1e-5f, first, 0, w);
            for (int i = 0; i < CALLS; i++) VisionKernels.layerNormRow(x, 0, gamma, beta, 1e-5f, later, 0, w);
            assertArrayEquals(first, later, "width " + w + ": LayerNorm's result changed once compiled");
        }
    }

    @Test
    void referenceAttentionGivesTheSameFloatsInterpretedAndCompiled() {
        Random r = new Random(4);
        int dim = 16, heads = 2, L = 21;                     // 21 keys: vectors and a scalar tail in the softmax sum
        float[] qkv = gaussian(r, L * 3 * dim, 1f, 0f);
        int[] starts = {0, 13}, counts = {13, 8};
        float[] first = new float[L * dim], later = new float[L * dim];
        VisionKernels.blockDiagonalAttention(qkv, dim, heads, starts, counts, first);
        for (int i = 0; i < CALLS / 10; i++) VisionKernels.blockDiagonalAttention(qkv, dim, heads, starts, counts, later);
        assertArrayEquals(first, later, "the reference attention's result changed once compiled");
    }
}
