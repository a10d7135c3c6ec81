package dev.kimivl.io.gguf;

import dev.kimivl.tensor.Parallel;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.lang.foreign.Arena;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.*;

/** Converters fill large tensors from the thread pool: the writer's mapping must accept writes from any thread. */
class GgufWriterThreadsTest {
    @Test
    void tensorDataWrittenFromPoolThreadsLands(@TempDir Path dir) {
        int rows = 4096, cols = 256;
        ValueLayout.OfFloat f32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
        GgufWriter w = new GgufWriter().putString("general.architecture", "test");
        w.addTensor("t.weight", GgmlType.of(dev.kimivl.tensor.DType.F32), new long[]{cols, rows}, dst ->
                Parallel.forRange(rows, 64, (r0, r1) -> {
                    for (int r = r0; r < r1; r++) for (int c = 0; c < cols; c++) dst.set(f32, 4L * (r * cols + c), r + c / 1000f);
                }));
        Path out = dir.resolve("t.gguf");
        w.write(out, null);
        try (Arena arena = Arena.ofConfined()) {
            GgufFile f = GgufFile.open(out, arena);
            float[] v = f.tensor("t.weight").toFloats();
            assertEquals(rows * cols, v.length);
            assertEquals(4095 + 255 / 1000f, v[rows * cols - 1]);
            assertEquals(17 + 3 / 1000f, v[17 * cols + 3]);
        }
    }
}
