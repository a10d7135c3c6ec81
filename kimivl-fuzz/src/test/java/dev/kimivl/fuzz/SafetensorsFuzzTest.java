package dev.kimivl.fuzz;

import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.kimivl.generate.ContextOverflowException;
import dev.kimivl.io.CheckpointException;
import dev.kimivl.io.SafeTensorsFile;
import dev.kimivl.io.SafeTensorsWriter;
import dev.kimivl.io.TensorData;
import dev.kimivl.model.KimiVL;
import dev.kimivl.tensor.DType;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Timeout;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static dev.kimivl.fuzz.FuzzSupport.*;

/**
 * Safetensors checkpoints from strangers: a whole file's bytes; a header over tiny-random's real data section, opened
 * as a model and run; the shard index; config.json in the nested Kimi-VL form and the plain DeepSeek form.
 * Seeds: {@code src/test/resources/dev/kimivl/fuzz/SafetensorsFuzzTestInputs/<method>/} (made by make_seeds.py).
 */
class SafetensorsFuzzTest {
    private static byte[] tinyData;               // tiny-random's data section (after its header)

    @BeforeAll
    static void fixtures() throws IOException {
        byte[] all = read(TINY.resolve("model.safetensors"));
        long n = ByteBuffer.wrap(all, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
        tinyData = java.util.Arrays.copyOfRange(all, 8 + (int) n, all.length);

        // header: tiny-random's files, model.safetensors rewritten per input
        copyDir(TINY, scratch("st-header"));
        // config: the same weights, config.json rewritten per input
        copyDir(TINY, scratch("st-config"));
        // index: tiny-random split into two shards, model.safetensors.index.json rewritten per input
        Path sharded = scratch("st-index");
        copyDir(TINY, sharded);
        Files.delete(sharded.resolve("model.safetensors"));
        SafeTensorsFile src = SafeTensorsFile.open(TINY.resolve("model.safetensors"));
        SafeTensorsWriter a = new SafeTensorsWriter(), b = new SafeTensorsWriter();
        int i = 0;
        for (TensorData t : src.tensors().values()) {
            SafeTensorsWriter w = i++ % 2 == 0 ? a : b;
            if (t.dtype() == DType.BF16) w.bf16(t.name(), t.toFloats(), t.shape());
            else w.f32(t.name(), t.toFloats(), t.shape());
        }
        a.write(sharded.resolve("model-00001-of-00002.safetensors"));
        b.write(sharded.resolve("model-00002-of-00002.safetensors"));
    }

    /** A whole file: the 8-byte length, the header JSON (dtypes, shapes, offsets, __metadata__), the data. */
    @FuzzTest
    @Timeout(10)
    void file(byte[] data) {
        Path f = scratch("st-file").resolve("fuzz.safetensors");
        write(f, data);
        try (Arena arena = Arena.ofConfined()) {
            SafeTensorsFile st = SafeTensorsFile.open(f, arena);
            for (TensorData t : st.tensors().values()) {
                // what the loader does with a tensor: read it as floats (vectors, norms) or as a matrix
                if (t.numel() > (1 << 16)) continue;
                if (t.dtype().isQuantized() || t.dtype() == DType.F32 || t.dtype() == DType.BF16 || t.dtype() == DType.F16 || t.dtype() == DType.F64) t.toFloats();
                if (t.shape().length == 2 && t.numel() > 0) t.matrix().row(0, new float[(int) t.shape()[1]], 0);
            }
        } catch (CheckpointException e) {
            requireNamed(e, f.toString());
        }
    }

    /** A header over tiny-random's data section, in its model directory: opened as a model and run. */
    @FuzzTest
    @Timeout(60)
    void header(byte[] header) {
        Path dir = scratch("st-header");
        byte[] file = new byte[8 + header.length + tinyData.length];
        ByteBuffer.wrap(file).order(ByteOrder.LITTLE_ENDIAN).putLong(header.length);
        System.arraycopy(header, 0, file, 8, header.length);
        System.arraycopy(tinyData, 0, file, 8 + header.length, tinyData.length);
        write(dir.resolve("model.safetensors"), file);
        openAndRun(dir);
    }

    /** model.safetensors.index.json of a two-shard tiny-random. */
    @FuzzTest
    @Timeout(60)
    void index(byte[] json) {
        Path dir = scratch("st-index");
        write(dir.resolve("model.safetensors.index.json"), json);
        openAndRun(dir);
    }

    /** config.json (nested Kimi-VL or plain DeepSeek) over tiny-random's weights, up to a forward. */
    @FuzzTest
    @Timeout(60)
    void config(byte[] json) {
        Path dir = scratch("st-config");
        write(dir.resolve("config.json"), json);
        openAndRun(dir);
    }

    private static void openAndRun(Path dir) {
        try (KimiVL model = KimiVL.open(dir)) {
            firstForward(model);
        } catch (CheckpointException e) {
            requireNamed(e, dir.toString());
        } catch (ContextOverflowException e) {
            requireNamed(e, "context");    // a max_position_embeddings too small for the prompt: said, never cut
        }
    }
}
