package dev.kimivl.fuzz;

import com.code_intelligence.jazzer.api.FuzzedDataProvider;
import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.kimivl.io.CheckpointException;
import dev.kimivl.io.Matrices;
import dev.kimivl.io.TensorData;
import dev.kimivl.tensor.DType;
import dev.kimivl.tensor.Matrix;
import dev.kimivl.tensor.NativeKernels;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Timeout;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

import static dev.kimivl.fuzz.FuzzSupport.requireNamed;

/**
 * The native boundary: a stored tensor of any shape, dtype and byte length, as a file could declare it, handed to
 * {@link Matrices#of} and then to the kernels (the AVX2 C kernels behind FFM where they load; the Java ones
 * otherwise): decode a row, matrix-vector (decode) and the batched product (prefill). A shape that does not fit its
 * bytes must be refused in Java, naming the tensor, before any kernel runs; a shape that fits must compute without
 * a crash. The data lives in native memory, as a mapped file's does, so a read past its end is not caught by the
 * JVM's array bounds check but by the segment's (Java) or not at all (C): a JVM crash here is the finding.
 */
class NativeBoundaryFuzzTest {
    private static final DType[] TYPES = {DType.F32, DType.BF16, DType.F16, DType.Q8_0, DType.Q4_0, DType.Q4_1, DType.Q5_0,
            DType.Q5_1, DType.Q4_K, DType.Q5_K, DType.Q6_K, DType.I32, DType.I8};

    @BeforeAll
    static void say() {
        System.err.println("NativeBoundaryFuzzTest: native kernels " + (NativeKernels.AVAILABLE ? "loaded" : "not loaded") + " (" + NativeKernels.STATUS + ")");
    }

    @FuzzTest
    @Timeout(10)
    void matrix(FuzzedDataProvider in) {
        DType dtype = in.pickValue(TYPES);
        int rank = in.consumeInt(0, 3);
        long[] shape = new long[rank];
        for (int i = 0; i < rank; i++) shape[i] = in.consumeBoolean() ? in.consumeLong(-2, 1L << 40) : in.consumeInt(0, 1100);
        int bytes = in.consumeInt(0, 1 << 16);
        int n = in.consumeInt(1, 5);                        // tokens of the prefill product
        byte[] raw = in.consumeBytes(bytes);
        try (Arena arena = Arena.ofShared()) {        // shared, as a model's mapping: the kernels run on the pool's threads
            MemorySegment seg = arena.allocate(Math.max(1, raw.length), 64).asSlice(0, raw.length);
            MemorySegment.copy(raw, 0, seg, java.lang.foreign.ValueLayout.JAVA_BYTE, 0, raw.length);
            TensorData t = new TensorData("fuzz.weight", dtype, shape, seg, "fuzz.gguf");
            Matrix m;
            try {
                m = Matrices.of(t);
            } catch (CheckpointException e) {
                requireNamed(e, "fuzz.weight");
                return;
            }
            // only a matrix whose bytes cover its shape gets here: every kernel must run on it. Its size is bounded by
            // the bytes (at most 64 KiB) now that an empty dimension is refused (regress-empty-rows: [2^24, 0] F16,
            // no bytes, timed out looping over 16M empty rows)
            float[] x = new float[m.cols() * n];
            for (int i = 0; i < x.length; i++) x[i] = (float) Math.sin(i * 0.37) * 2;
            if (m.rows() > 0) m.row(m.rows() - 1, new float[m.cols()], 0);
            float[] y = new float[m.rows() * n];
            m.matvec(x, 0, y, 0);
            m.matmul(x, y, n);
        }
    }
}
