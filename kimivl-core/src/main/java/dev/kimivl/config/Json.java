package dev.kimivl.config;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.kimivl.io.CheckpointException;

import java.io.IOException;
import java.nio.file.Path;

/** Typed reads from a config JSON object; each failure names the file and the field. */
final class Json {
    static final ObjectMapper MAPPER = new ObjectMapper();

    private final JsonNode node;
    private final String where;

    Json(JsonNode node, String where) {
        this.node = node;
        this.where = where;
    }

    static Json read(Path file) {
        try {
            JsonNode n = MAPPER.readTree(file.toFile());
            if (n == null || !n.isObject()) throw new CheckpointException(file + ": not a JSON object");
            return new Json(n, file.toString());
        } catch (IOException e) {
            throw new CheckpointException(file + ": cannot parse JSON: " + dev.kimivl.io.JsonErrors.describe(e), e);
        }
    }

    boolean has(String key) { return node.has(key) && !node.get(key).isNull(); }

    JsonNode raw(String key) { return node.get(key); }

    Json child(String key) {
        JsonNode c = node.get(key);
        if (c == null || !c.isObject()) throw new CheckpointException(where + ": field '" + key + "' must be an object");
        return new Json(c, where + " → " + key);
    }

    int integer(String key) {
        JsonNode v = node.get(key);
        if (v == null || v.isNull()) throw new CheckpointException(where + ": missing field '" + key + "'");
        if (!v.isIntegralNumber() || !v.canConvertToInt()) throw new CheckpointException(where + ": field '" + key + "' must be an integer, is " + v);
        return v.asInt();
    }

    int integer(String key, int dflt) { return has(key) ? integer(key) : dflt; }

    double number(String key) {
        JsonNode v = node.get(key);
        if (v == null || v.isNull()) throw new CheckpointException(where + ": missing field '" + key + "'");
        if (!v.isNumber()) throw new CheckpointException(where + ": field '" + key + "' must be a number, is " + v);
        return v.asDouble();
    }

    double number(String key, double dflt) { return has(key) ? number(key) : dflt; }

    boolean bool(String key, boolean dflt) {
        if (!has(key)) return dflt;
        JsonNode v = node.get(key);
        if (!v.isBoolean()) throw new CheckpointException(where + ": field '" + key + "' must be true or false, is " + v);
        return v.asBoolean();
    }

    String text(String key, String dflt) {
        if (!has(key)) return dflt;
        JsonNode v = node.get(key);
        if (!v.isTextual()) throw new CheckpointException(where + ": field '" + key + "' must be a string, is " + v);
        return v.asText();
    }

    double[] numbers(String key, double[] dflt) {
        if (!has(key)) return dflt;
        JsonNode v = node.get(key);
        if (!v.isArray()) throw new CheckpointException(where + ": field '" + key + "' must be an array, is " + v);
        double[] out = new double[v.size()];
        for (int i = 0; i < out.length; i++) {
            if (!v.get(i).isNumber()) throw new CheckpointException(where + ": field '" + key + "'[" + i + "] must be a number");
            out[i] = v.get(i).asDouble();
        }
        return out;
    }

    /** Fails when value is not positive. */
    int positive(String key, int value) {
        if (value <= 0) throw new CheckpointException(where + ": field '" + key + "' must be positive, is " + value);
        return value;
    }

    String where() { return where; }
}
