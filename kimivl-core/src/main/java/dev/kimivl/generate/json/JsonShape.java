package dev.kimivl.generate.json;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;

/**
 * The part of a JSON Schema that constrained decoding enforces, compiled from the schema's JSON
 * ({@link #fromSchema}). Supported: {@code type} (object, array, string, number, integer, boolean, null, or a list of
 * them), {@code properties} + {@code required} (an object's properties are written in the schema's order; the optional
 * ones may be left out; no other keys), {@code items}, {@code enum}, {@code const}, {@code anyOf}/{@code oneOf},
 * {@code $ref} into {@code $defs}/{@code definitions} (not recursive). A schema without {@code type} is any value.
 * Anything else in a schema (formats, patterns, bounds) is not enforced: the output still parses and has the
 * schema's structure and types.
 */
public sealed interface JsonShape {
    /** Any JSON value. */
    record Any() implements JsonShape {}

    /** An object: {@code properties} in order (a null list: any keys with any values). */
    record Obj(List<Property> properties) implements JsonShape {
        public boolean open() { return properties == null; }
    }

    /** @param key the property name as JSON text, quotes included, as UTF-8 */
    record Property(String name, byte[] key, JsonShape shape, boolean required) {}

    record Arr(JsonShape items) implements JsonShape {}

    record Str() implements JsonShape {}

    record Num(boolean integer) implements JsonShape {}

    record Bool() implements JsonShape {}

    record Null() implements JsonShape {}

    /** One of these exact JSON texts (compact, as UTF-8). */
    record Literals(List<byte[]> texts) implements JsonShape {}

    record AnyOf(List<JsonShape> options) implements JsonShape {}

    JsonShape ANY = new Any();

    /** OpenAI's {@code json_object} mode: an object with any keys. */
    JsonShape ANY_OBJECT = new Obj(null);

    /** Compiles a JSON Schema given as JSON text. */
    static JsonShape fromSchema(String schemaJson) {
        try {
            return fromSchema(new ObjectMapper().readTree(schemaJson));
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new IllegalArgumentException("the JSON schema is not valid JSON: " + e.getOriginalMessage());
        }
    }

    /** Compiles a JSON Schema; an error names the schema path of anything it cannot enforce. */
    static JsonShape fromSchema(JsonNode schema) {
        return new Compiler(schema).compile(schema, "#", 0);
    }

    /** Fewest bytes a value of this shape can take (compact JSON). */
    static int minLength(JsonShape s) {
        return switch (s) {
            case Any a -> 1;                                        // 0
            case Obj o -> 1 + Matcher.closeFrom(o, 0, true);         // { + required properties + }
            case Arr a -> 2;
            case Str st -> 2;
            case Num n -> 1;
            case Bool b -> 4;
            case Null n -> 4;
            case Literals l -> l.texts().stream().mapToInt(t -> t.length).min().orElse(Integer.MAX_VALUE / 4);
            case AnyOf a -> a.options().stream().mapToInt(JsonShape::minLength).min().orElse(Integer.MAX_VALUE / 4);
        };
    }

    final class Compiler {
        private static final ObjectMapper JSON = new ObjectMapper();
        private final JsonNode root;

        Compiler(JsonNode root) { this.root = root; }

        JsonShape compile(JsonNode s, String path, int depth) {
            if (depth > 32) throw new IllegalArgumentException("JSON schema " + path + ": nested deeper than 32 levels (a recursive $ref?); constrained decoding supports non-recursive schemas");
            if (s == null || s.isNull() || (s.isBoolean() && s.asBoolean())) return ANY;
            if (!s.isObject()) throw new IllegalArgumentException("JSON schema " + path + ": expected an object, got " + s.getNodeType());
            if (s.has("$ref")) return compile(resolve(s.get("$ref").asText(), path), s.get("$ref").asText(), depth + 1);
            if (s.has("const")) return new Literals(List.of(compact(s.get("const"))));
            if (s.has("enum")) {
                List<byte[]> texts = new ArrayList<>();
                for (JsonNode v : s.get("enum")) texts.add(compact(v));
                if (texts.isEmpty()) throw new IllegalArgumentException("JSON schema " + path + ".enum: empty, so no value can match");
                return new Literals(texts);
            }
            for (String key : new String[]{"anyOf", "oneOf"}) {
                if (s.has(key)) {
                    List<JsonShape> options = new ArrayList<>();
                    int i = 0;
                    for (JsonNode o : s.get(key)) options.add(compile(o, path + "." + key + "[" + i++ + "]", depth + 1));
                    return options.size() == 1 ? options.getFirst() : new AnyOf(options);
                }
            }
            JsonNode type = s.get("type");
            if (type == null) return s.has("properties") ? object(s, path, depth) : ANY;
            if (type.isArray()) {
                List<JsonShape> options = new ArrayList<>();
                for (JsonNode t : type) options.add(ofType(t.asText(), s, path, depth));
                return options.size() == 1 ? options.getFirst() : new AnyOf(options);
            }
            return ofType(type.asText(), s, path, depth);
        }

        private JsonShape ofType(String type, JsonNode s, String path, int depth) {
            return switch (type) {
                case "object" -> object(s, path, depth);
                case "array" -> new Arr(compile(s.get("items"), path + ".items", depth + 1));
                case "string" -> new Str();
                case "number" -> new Num(false);
                case "integer" -> new Num(true);
                case "boolean" -> new Bool();
                case "null" -> new Null();
                default -> throw new IllegalArgumentException("JSON schema " + path + ".type: '" + type + "' is not a JSON type (object, array, string, number, integer, boolean, null)");
            };
        }

        private JsonShape object(JsonNode s, String path, int depth) {
            JsonNode props = s.get("properties");
            if (props == null || props.isEmpty()) return ANY_OBJECT;
            List<String> required = new ArrayList<>();
            if (s.has("required")) for (JsonNode r : s.get("required")) required.add(r.asText());
            List<Property> out = new ArrayList<>();
            for (Iterator<Map.Entry<String, JsonNode>> it = props.properties().iterator(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                byte[] key = JSON.valueToTree(e.getKey()).toString().getBytes(StandardCharsets.UTF_8);
                out.add(new Property(e.getKey(), key, compile(e.getValue(), path + ".properties." + e.getKey(), depth + 1), required.contains(e.getKey())));
            }
            for (String r : required) {
                if (!props.has(r)) throw new IllegalArgumentException("JSON schema " + path + ".required: '" + r + "' is not among the properties");
            }
            return new Obj(List.copyOf(out));
        }

        private JsonNode resolve(String ref, String path) {
            if (!ref.startsWith("#")) throw new IllegalArgumentException("JSON schema " + path + ".$ref: only references inside the schema (#/...) are supported, got '" + ref + "'");
            JsonNode target = root.at(ref.substring(1));
            if (target.isMissingNode()) throw new IllegalArgumentException("JSON schema " + path + ".$ref: '" + ref + "' points at nothing");
            return target;
        }

        private static byte[] compact(JsonNode v) {
            return v.toString().getBytes(StandardCharsets.UTF_8);
        }
    }
}
