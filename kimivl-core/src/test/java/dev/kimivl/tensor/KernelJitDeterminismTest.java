package dev.kimivl.tensor;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

/**
 * The Java quantized kernels give the same floats before and after the JIT compiles them. A float
 * {@code reduceLanes(ADD)} does not: its order is unspecified, and the Vector API's interpreted fallback adds the lanes
 * in order while C2's intrinsic adds them as a tree, so a product computed early in a run (interpreted) and the same
 * product later (compiled) differed in the last bit. That is what made a sequence's logits alone and in a batch differ
 * with Q8_0/Q4_0 weights (BatchedDecodeTest, the server's "same tokens alone and batched"): the two were computed at
 * different moments of the JIT's warm-up. The kernels now sum their lanes in lane order ({@link VectorMath#sum}).
 *
 * <p>Run alone (a fresh JVM) this compares interpreted against compiled results; after other tests have warmed the
 * kernels it compares compiled against compiled, which must hold too.
 */
class KernelJitDeterminismTest {
    /** Enough calls (each with its loop's back-edges) for C2 to compile the kernels. */
    private static final int CALLS = 20_000;

    @ParameterizedTest
    @ValueSource(strings = {"Q8_0", "Q4_0"})
    void quantizedKernelsGiveTheSameFloatsInterpretedAndCompiled(String type) {
        int rows = 8, cols = 256;
        Random r = new Random(11);
        float[] w = new float[rows * cols], x = new float[cols];
        for (int i = 0; i < w.length; i++) w[i] = (float) r.nextGaussian();
        for (int i = 0; i < x.length; i++) x[i] = (float) r.nextGaussian();
        // the Java integer kernels (the native ones are C: always the same)
        QuantMatrix m = QuantMatrix.quantize(w, rows, cols, DType.valueOf(type)).withKernels(Kernels.java());
        QuantizedInput xq = QuantizedInput.of(x, 0, cols);
        {
            float[] exact0 = new float[rows], int0 = new float[rows];
            m.matvecExact(x, 0, exact0, 0);         // float activations (-Dkimivl.intMatvec=false, the tests' setting)
            m.matvec(xq, int0, 0);                  // int8 activations, Java kernels
            float[] exact = new float[rows], integer = new float[rows];
            for (int i = 0; i < CALLS; i++) {
                m.matvecExact(x, 0, exact, 0);
                m.matvec(xq, integer, 0);
            }
            assertArrayEquals(exact0, exact, type + ": the float-activation kernel's result changed once compiled");
            assertArrayEquals(int0, integer, type + ": the Java integer kernel's result changed once compiled");
        }
    }
}
