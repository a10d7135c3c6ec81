package dev.kimivl.fuzz;

import dev.kimivl.io.CheckpointException;
import dev.kimivl.io.Matrices;
import dev.kimivl.io.TensorData;
import dev.kimivl.tensor.DType;
import dev.kimivl.tensor.Matrix;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The native boundary with named malformed shapes (NativeBoundaryFuzzTest explores the rest): every shape and byte
 * length a file can declare is refused in Java, naming the tensor, before a kernel sees it; a shape that fits runs.
 */
class NativeBoundaryTest {
    private static TensorData tensor(Arena arena, DType dtype, long bytes, long... shape) {
        MemorySegment seg = arena.allocate(Math.max(1, bytes), 64).asSlice(0, bytes);
        return new TensorData("blk.0.ffn_down.weight", dtype, shape, seg, "fuzz.gguf");
    }

    private static void refused(TensorData t, String why) {
        CheckpointException e = assertThrows(CheckpointException.class, () -> Matrices.of(t), why);
        assertTrue(e.getMessage().contains("blk.0.ffn_down.weight") && e.getMessage().contains("fuzz.gguf"), e.getMessage());
    }

    @Test
    void shapesThatDoNotFitTheirBytesAreRefusedNamingTheTensor() {
        try (Arena arena = Arena.ofShared()) {
            refused(tensor(arena, DType.Q4_K, 287, 2, 256), "one byte short of two Q4_K rows (288)");
            refused(tensor(arena, DType.Q6_K, 210, 2, 256), "one Q6_K row for two");
            refused(tensor(arena, DType.Q8_0, 3 * 34 * 2, 3, 33), "rows that are not whole 32-blocks");
            refused(tensor(arena, DType.F32, 60, 4, 4), "an F32 matrix short of 4 bytes (was SegmentMatrix's IllegalArgumentException, unnamed)");
            refused(tensor(arena, DType.F16, 64, 1L << 40, 2), "rows past an int (was ArithmeticException)");
            refused(tensor(arena, DType.BF16, 64, -1, 32), "a negative dimension");
            refused(tensor(arena, DType.Q4_0, 18, 1, 32, 1), "not 2-D");
            refused(tensor(arena, DType.I32, 64, 4, 4), "a type with no matrix kernel");
            refused(tensor(arena, DType.F16, 0, 1L << 24, 0), "16M empty rows, no bytes (NativeBoundaryFuzzTest's regress-empty-rows timed out on them)");
            refused(tensor(arena, DType.Q8_0, 0, 0, Integer.MAX_VALUE / 32 * 32), "no rows of 2^31 columns (a caller's input vector of 8 GB)");
        }
    }

    @Test
    void everyQuantizedTypeThatFitsRunsThroughTheKernels() {
        DType[] types = {DType.Q8_0, DType.Q4_0, DType.Q4_1, DType.Q5_0, DType.Q5_1, DType.Q4_K, DType.Q5_K, DType.Q6_K, DType.F32, DType.BF16, DType.F16};
        try (Arena arena = Arena.ofShared()) {
            for (DType t : types) {
                int rows = 5, cols = t.blockSize == 1 ? 48 : 2 * t.blockSize;
                TensorData td = tensor(arena, t, t.bytesFor((long) rows * cols), rows, cols);   // zero bytes: scales 0, all finite
                Matrix m = Matrices.of(td);
                float[] x = new float[cols * 3], y = new float[rows * 3];
                java.util.Arrays.fill(x, 1f);
                m.matvec(x, 0, y, 0);
                m.matmul(x, y, 3);
                for (float v : y) assertTrue(v == 0f, t + ": zero weights gave " + v);
            }
        }
    }
}
