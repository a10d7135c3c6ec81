package dev.kimivl.testing;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.kimivl.io.SafeTensorsFile;
import dev.kimivl.io.TensorData;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URISyntaxException;
import java.nio.file.Path;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** A golden case from src/test/resources/golden (copied from the oracle's shared/golden). */
public final class Golden {
    private static final ObjectMapper JSON = new ObjectMapper();

    public final Path dir;
    public final JsonNode inputs;
    public final JsonNode expected;
    public final Map<String, TensorData> tensors;

    private Golden(Path dir) {
        this.dir = dir;
        try {
            this.inputs = JSON.readTree(dir.resolve("inputs.json").toFile());
            this.expected = JSON.readTree(dir.resolve("expected.json").toFile());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        this.tensors = SafeTensorsFile.open(dir.resolve("expected.safetensors")).tensors();
    }

    public static Path root() {
        try {
            return Path.of(Golden.class.getResource("/golden").toURI());
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    public static Golden load(String name) { return new Golden(root().resolve(name)); }

    public float[] floats(String name) {
        TensorData t = tensors.get(name);
        if (t == null) throw new AssertionError("golden has no tensor " + name);
        return t.toFloats();
    }

    public int[] inputIds() {
        JsonNode a = inputs.get("input_ids");
        int[] ids = new int[a.size()];
        for (int i = 0; i < ids.length; i++) ids[i] = a.get(i).asInt();
        return ids;
    }

    public int[] ints(JsonNode array) {
        int[] out = new int[array.size()];
        for (int i = 0; i < out.length; i++) out[i] = array.get(i).asInt();
        return out;
    }

    /** Max |a − b| (asserting equal lengths). */
    public static double maxAbsDiff(float[] a, float[] b) {
        assertEquals(b.length, a.length, "length");
        double m = 0;
        for (int i = 0; i < a.length; i++) m = Math.max(m, Math.abs((double) a[i] - b[i]));
        return m;
    }

    /** Asserts element-wise |actual − expected| ≤ atol and returns the max difference. */
    public static double assertClose(String what, float[] expected, float[] actual, double atol) {
        double d = maxAbsDiff(actual, expected);
        assertTrue(d <= atol, what + ": max |Δ| = " + d + " > " + atol);
        return d;
    }
}
