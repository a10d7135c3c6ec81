package dev.kimivl.fuzz;

import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.kimivl.generate.ContextOverflowException;
import dev.kimivl.io.CheckpointException;
import dev.kimivl.io.TensorData;
import dev.kimivl.io.gguf.GgufFile;
import dev.kimivl.io.gguf.GgufModel;
import dev.kimivl.io.gguf.GgufTokenizer;
import dev.kimivl.model.KimiVL;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Timeout;

import java.lang.foreign.Arena;
import java.nio.file.Path;
import java.util.Arrays;

import static dev.kimivl.fuzz.FuzzSupport.*;

/**
 * GGUF files from strangers. {@link #file}: a whole small file (metadata of every value type, nested arrays, strings,
 * tensor infos of every quantized block type, alignment), read tensor by tensor. {@link #textHeader},
 * {@link #mixedHeader}, {@link #mmprojHeader}: the header (magic .. tensor infos) of the golden config-A GGUFs is the
 * input and their real data section follows it at the next 32-byte boundary, so a mutated header meets real weights;
 * the model is opened through {@link KimiVL#open(Path, Path)} (GgufModel, GgufConfig, GgufTokenizer, the chat template
 * from the metadata) and run for a first forward.
 */
class GgufFuzzTest {
    private static final Path GGUF = GOLDEN.resolve("gguf");
    private static byte[] q8Data, mixedData, mmprojData, q8File;

    @BeforeAll
    static void fixtures() {
        q8File = read(GGUF.resolve("text-q8_0.gguf"));
        q8Data = dataSection(GGUF.resolve("text-q8_0.gguf"));
        mixedData = dataSection(GGUF.resolve("text-mixed.gguf"));
        mmprojData = dataSection(GGUF.resolve("mmproj-f32.gguf"));
    }

    private static byte[] dataSection(Path p) {
        try (Arena arena = Arena.ofConfined()) {
            GgufFile f = GgufFile.open(p, arena);
            byte[] all = read(p);
            return Arrays.copyOfRange(all, (int) f.dataOffset(), all.length);
        }
    }

    /** A whole file, every tensor read (dequantized when small). */
    @FuzzTest
    @Timeout(10)
    void file(byte[] data) {
        Path f = scratch("gguf-file").resolve("fuzz.gguf");
        write(f, data);
        try (Arena arena = Arena.ofConfined()) {
            GgufFile g = GgufFile.open(f, arena);
            for (String name : g.tensorInfos().keySet()) {
                if (g.tensorInfos().get(name).numel() > (1 << 16)) continue;
                TensorData t = g.tensor(name);
                t.toFloats();
            }
            if (g.string("general.architecture", "").equals("deepseek2")) GgufTokenizer.load(g);
        } catch (CheckpointException e) {
            requireNamed(e, f.toString(), "fuzz.gguf");
        }
        // the same bytes as a model: GgufModel's name mapping and GgufConfig
        try (GgufModel m = GgufModel.open(f)) {
            for (String name : m.names()) {
                TensorData t = m.tensor(name);
                if (t.numel() <= (1 << 16)) t.toFloats();
            }
        } catch (CheckpointException e) {
            requireNamed(e, f.toString(), "fuzz.gguf");
        }
    }

    /** The Q8_0 text model's header over its data, opened and run. */
    @FuzzTest
    @Timeout(60)
    void textHeader(byte[] header) {
        openAndRun(withData(header, q8Data, "text.gguf"), null);
    }

    /** The Q4_1/Q5_0/Q5_1 text model's header over its data, opened and run. */
    @FuzzTest
    @Timeout(60)
    void mixedHeader(byte[] header) {
        openAndRun(withData(header, mixedData, "mixed.gguf"), null);
    }

    /** The mmproj's header over its data, opened with the Q8_0 text model and run on an image. */
    @FuzzTest
    @Timeout(60)
    void mmprojHeader(byte[] header) {
        Path text = scratch("gguf-mmproj").resolve("text-q8_0.gguf");
        if (!java.nio.file.Files.exists(text)) write(text, q8File);
        openAndRun(text, withData(header, mmprojData, "mmproj.gguf"));
    }

    private static Path withData(byte[] header, byte[] data, String name) {
        int start = (header.length + 31) / 32 * 32;
        byte[] file = new byte[start + data.length];
        System.arraycopy(header, 0, file, 0, header.length);
        System.arraycopy(data, 0, file, start, data.length);
        Path p = scratch("gguf-" + name).resolve(name);
        write(p, file);
        return p;
    }

    private static void openAndRun(Path text, Path mmproj) {
        try (KimiVL model = KimiVL.open(text, mmproj)) {
            firstForward(model);
        } catch (CheckpointException e) {
            requireNamed(e, text.getFileName().toString(), mmproj == null ? text.getFileName().toString() : mmproj.getFileName().toString());
        } catch (ContextOverflowException e) {
            requireNamed(e, "context");
        }
    }
}
