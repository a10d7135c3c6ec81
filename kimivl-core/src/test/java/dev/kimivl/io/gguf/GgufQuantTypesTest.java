package dev.kimivl.io.gguf;

import dev.kimivl.io.CheckpointException;
import dev.kimivl.tensor.Matrix;
import dev.kimivl.tensor.QuantMatrix;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The block types llama.cpp mixes into Q4_K_M / Q5_K_M files next to Q4_K, Q6_K and Q8_0 (Q5_0 and Q5_1 where a row
 * is not a multiple of 256 long, Q4_1, Q5_K): written into a GGUF, validated on open and read back as matrices whose
 * rows equal gguf-py's dequantization (the random blocks of QuantTest's reference data, src/test/resources/quant).
 */
class GgufQuantTypesTest {
    /** Resource name, type, rows, cols; Q5_K last, so that its data ends the file (see {@link #truncatedLastTensor}). */
    static final Object[][] TENSORS = {
            {"b_2x64.q4_1", GgmlType.Q4_1, 2, 64}, {"b_2x64.q5_0", GgmlType.Q5_0, 2, 64},
            {"b_2x64.q5_1", GgmlType.Q5_1, 2, 64}, {"k_2x512.q2_k", GgmlType.Q2_K, 2, 512},
            {"k_2x512.q3_k", GgmlType.Q3_K, 2, 512}, {"k_2x512.iq4_xs", GgmlType.IQ4_XS, 2, 512},
            {"b_2x64.iq4_nl", GgmlType.IQ4_NL, 2, 64}, {"k_2x512.q5_k", GgmlType.Q5_K, 2, 512},
    };

    static byte[] resource(String name) { return dev.kimivl.testing.TestData.quantResource(name); }

    static float[] floats(byte[] b) { return dev.kimivl.testing.TestData.floats(b); }

    static Path write(Path dir) {
        GgufWriter w = new GgufWriter().putString("general.architecture", "test");
        for (Object[] t : TENSORS) {
            byte[] data = resource((String) t[0]);
            // ggml dims are fastest first: ne = {cols, rows}
            w.addTensor((String) t[0], (GgmlType) t[1], new long[]{(int) t[3], (int) t[2]},
                    dst -> MemorySegment.copy(MemorySegment.ofArray(data), 0, dst, 0, data.length));
        }
        Path out = dir.resolve("quant-types.gguf");
        w.write(out, null);
        return out;
    }

    @Test
    void blockTypesReadBackAsMatrices(@TempDir Path dir) {
        Path p = write(dir);
        try (Arena arena = Arena.ofConfined()) {
            GgufFile f = GgufFile.open(p, arena);
            for (Object[] t : TENSORS) {
                String name = (String) t[0];
                GgmlType type = (GgmlType) t[1];
                int rows = (int) t[2], cols = (int) t[3];
                float[] expect = floats(resource(name + ".f32"));
                // the sizes GgufFile validated the file with are llama.cpp's: 22 bytes per 32 for Q5_0, 176 per 256 for Q5_K, ...
                assertEquals(resource(name).length, f.tensorInfos().get(name).bytes(), name);
                Matrix m = f.tensor(name).matrix();
                assertInstanceOf(QuantMatrix.class, m, name);
                assertEquals(type.dtype, m.dtype(), name);
                assertEquals(rows, m.rows(), name);
                assertEquals(cols, m.cols(), name);
                for (int r = 0; r < rows; r++) {
                    float[] row = new float[cols];
                    m.row(r, row, 0);
                    assertArrayEquals(Arrays.copyOfRange(expect, r * cols, (r + 1) * cols), row, 0f, name + " row " + r);
                }
                assertArrayEquals(expect, f.tensor(name).toFloats(), 0f, name + " toFloats");
            }
        }
    }

    @Test
    void truncatedLastTensor(@TempDir Path dir) throws IOException {
        Path p = write(dir);
        byte[] b = Files.readAllBytes(p);
        // the Q5_K data (4 blocks of 176 bytes, a multiple of the alignment) ends the file exactly, so one byte less
        // is caught only if GgufFile sizes Q5_K blocks as llama.cpp does
        try (Arena arena = Arena.ofConfined()) {
            GgufFile f = GgufFile.open(p, arena);
            GgufFile.TensorInfo t = f.tensorInfos().get("k_2x512.q5_k");
            assertEquals(4 * 176, t.bytes());
            assertEquals(b.length, f.dataOffset() + t.offset() + t.bytes());
        }
        Files.write(p, Arrays.copyOf(b, b.length - 1));
        try (Arena arena = Arena.ofConfined()) {
            CheckpointException e = assertThrows(CheckpointException.class, () -> GgufFile.open(p, arena));
            assertTrue(e.getMessage().contains("'k_2x512.q5_k'") && e.getMessage().contains("file ends at"), e.getMessage());
        }
    }

    /** A Q5_0 row of 48 elements is not a whole number of 32-element blocks: rejected when the file opens. */
    @Test
    void rowNotAWholeNumberOfBlocks(@TempDir Path dir) throws IOException {
        Path p = write(dir);
        byte[] b = Files.readAllBytes(p);
        String name = "b_2x64.q5_0";
        int ne0 = GgufReaderTest.infoOffset(b, name) + 8 + name.length() + 4; // past the name and n_dims
        ByteBuffer bb = ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN);
        assertEquals(64, bb.getLong(ne0));
        bb.putLong(ne0, 48);
        Files.write(p, b);
        try (Arena arena = Arena.ofConfined()) {
            CheckpointException e = assertThrows(CheckpointException.class, () -> GgufFile.open(p, arena));
            assertTrue(e.getMessage().contains("'" + name + "'") && e.getMessage().contains("Q5_0")
                    && e.getMessage().contains("not a multiple of the block size 32"), e.getMessage());
        }
    }
}
