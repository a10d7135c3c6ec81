package dev.kimivl.generate.json;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.math.BigDecimal;
import java.math.RoundingMode;
import java.nio.charset.StandardCharsets;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.Iterator;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The part of a JSON Schema that constrained decoding enforces, compiled from the schema's JSON ({@link #fromSchema}).
 *
 * <p>Enforced: {@code type} (object, array, string, number, integer, boolean, null, or a list of them),
 * {@code properties} + {@code required} (an object's properties are written in the schema's order; the optional ones
 * may be left out; no other keys), {@code additionalProperties} {@code false}/{@code true} (either way no key outside
 * {@code properties} is written, which satisfies both), {@code items}, {@code enum}, {@code const} (values that break
 * the schema's other keywords are dropped), {@code anyOf}/{@code oneOf} (oneOf is decoded as anyOf: exactly-one is
 * not checked when options overlap), {@code $ref} into the schema (not recursive), and the bounds
 * {@code minLength}/{@code maxLength} (strings, in code points), {@code minItems}/{@code maxItems} (arrays),
 * {@code minimum}/{@code maximum}/{@code exclusiveMinimum}/{@code exclusiveMaximum} (integers; numbers or the
 * draft-4 boolean form). A schema without {@code type} is any value, or the one type its keywords imply.
 *
 * <p>Annotations are accepted and have no effect: {@code title}, {@code description}, {@code default},
 * {@code examples}, {@code $schema}, {@code $id}, {@code $comment}, {@code deprecated}, {@code readOnly},
 * {@code writeOnly}, {@code $defs}/{@code definitions}, and {@code format}, which JSON Schema 2020-12 makes an
 * annotation by default (a {@code "format": "date"} string is any string). Every other keyword ({@code pattern},
 * {@code patternProperties}, {@code allOf}, {@code not}, {@code multipleOf}, {@code uniqueItems}, bounds on
 * {@code type: number}, ...) is refused with an {@link UnsupportedSchemaException} naming its path.
 */
public sealed interface JsonShape {
    /** Any JSON value. */
    record Any() implements JsonShape {}

    /** An object: {@code properties} in order (a null list: any keys with any values; empty: only {@code {}}). */
    record Obj(List<Property> properties) implements JsonShape {
        public boolean open() { return properties == null; }
    }

    /** @param key the property name as JSON text, quotes included, as UTF-8 */
    record Property(String name, byte[] key, JsonShape shape, boolean required) {}

    /** An array of {@code minItems..maxItems} items. */
    record Arr(JsonShape items, int minItems, int maxItems) implements JsonShape {
        public Arr(JsonShape items) { this(items, 0, Integer.MAX_VALUE); }
    }

    /** A string of {@code minLength..maxLength} code points (of the decoded string: an escape is one). */
    record Str(int minLength, int maxLength) implements JsonShape {
        public Str() { this(0, Integer.MAX_VALUE); }
        public boolean bounded() { return minLength > 0 || maxLength < Integer.MAX_VALUE; }
    }

    /** A number; an integer within {@code min..max} (inclusive; only integers carry bounds). */
    record Num(boolean integer, long min, long max) implements JsonShape {
        public Num(boolean integer) { this(integer, Long.MIN_VALUE, Long.MAX_VALUE); }
        public boolean bounded() { return min != Long.MIN_VALUE || max != Long.MAX_VALUE; }
    }

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

    /** Compiles a JSON Schema; an error names the schema path ({@code #.properties.x...}) of what it cannot enforce. */
    static JsonShape fromSchema(JsonNode schema) { return fromSchema(schema, "#"); }

    /**
     * Compiles a JSON Schema; errors name paths from {@code rootPath} (the caller's name for the schema, e.g.
     * {@code response_format.json_schema.schema}).
     */
    static JsonShape fromSchema(JsonNode schema, String rootPath) {
        return new Compiler(schema).compile(schema, rootPath);
    }

    /** Fewest bytes a value of this shape can take (compact JSON). */
    static int minLength(JsonShape s) {
        return switch (s) {
            case Any a -> 1;                                        // 0
            case Obj o -> 1 + Matcher.closeFrom(o, 0, true);         // { + required properties + }
            case Arr a -> 2 + a.minItems() * minLength(a.items()) + Math.max(0, a.minItems() - 1);
            case Str st -> 2 + st.minLength();
            case Num n -> n.bounded() ? Long.toString(n.min() > 0 ? n.min() : n.max() < 0 ? n.max() : 0).length() : 1;
            case Bool b -> 4;
            case Null n -> 4;
            case Literals l -> l.texts().stream().mapToInt(t -> t.length).min().orElse(Integer.MAX_VALUE / 4);
            case AnyOf a -> a.options().stream().mapToInt(JsonShape::minLength).min().orElse(Integer.MAX_VALUE / 4);
        };
    }

    final class Compiler {
        private static final ObjectMapper JSON = new ObjectMapper();
        /** Keywords with no effect on which values are valid (format: an annotation by default in 2020-12). */
        static final Set<String> ANNOTATIONS = Set.of("title", "description", "default", "examples", "$schema", "$id",
                "$comment", "deprecated", "readOnly", "writeOnly", "$defs", "definitions", "format");
        static final Set<String> OBJECT = Set.of("properties", "required", "additionalProperties");
        static final Set<String> ARRAY = Set.of("items", "minItems", "maxItems");
        static final Set<String> STRING = Set.of("minLength", "maxLength");
        static final Set<String> NUMBER = Set.of("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum");
        static final Set<String> OTHER = Set.of("type", "enum", "const", "anyOf", "oneOf", "$ref");
        /** Bounds above this could never be written within a token budget anyway. */
        static final int MAX_BOUND = 1_000_000;

        private final JsonNode root;
        /** The $refs being expanded (a ref met again is recursive). */
        private final Deque<String> refs = new ArrayDeque<>();

        Compiler(JsonNode root) { this.root = root; }

        private static UnsupportedSchemaException unsupported(String path, String why) {
            return new UnsupportedSchemaException(path + " is not supported by constrained decoding" + (why == null ? "" : " (" + why + ")"));
        }

        private static boolean known(String k) {
            return ANNOTATIONS.contains(k) || OBJECT.contains(k) || ARRAY.contains(k) || STRING.contains(k) || NUMBER.contains(k) || OTHER.contains(k);
        }

        /** The keywords of s that constrain values (annotations left out). */
        private static Set<String> constraining(JsonNode s) {
            Set<String> out = new LinkedHashSet<>();
            for (Iterator<String> it = s.fieldNames(); it.hasNext(); ) {
                String k = it.next();
                if (!ANNOTATIONS.contains(k)) out.add(k);
            }
            return out;
        }

        JsonShape compile(JsonNode s, String path) {
            if (s == null || s.isNull() || (s.isBoolean() && s.asBoolean())) return ANY;
            if (!s.isObject()) throw new IllegalArgumentException(path + ": expected a schema object, got " + s.getNodeType());
            Set<String> keys = constraining(s);
            for (String k : keys) {
                if (!known(k)) throw unsupported(path + "." + k, null);
            }
            if (s.has("$ref")) {
                if (keys.size() > 1) throw unsupported(path + ".$ref", "$ref alongside " + without(keys, "$ref"));
                String ref = s.get("$ref").asText();
                if (refs.contains(ref)) throw unsupported(path + ".$ref", "'" + ref + "' is recursive");
                refs.push(ref);
                try {
                    return compile(resolve(ref, path), path + ".$ref(" + ref + ")");
                } finally {
                    refs.pop();
                }
            }
            if (s.has("const") || s.has("enum")) return literals(s, path, keys);
            for (String key : new String[]{"anyOf", "oneOf"}) {
                if (!s.has(key)) continue;
                if (keys.size() > 1) throw unsupported(path + "." + key, key + " alongside " + without(keys, key));
                if (!s.get(key).isArray() || s.get(key).isEmpty()) throw new IllegalArgumentException(path + "." + key + ": expected a non-empty list of schemas");
                List<JsonShape> options = new ArrayList<>();
                int i = 0;
                for (JsonNode o : s.get(key)) options.add(compile(o, path + "." + key + "[" + i++ + "]"));
                return options.size() == 1 ? options.getFirst() : new AnyOf(options);
            }
            JsonNode type = s.get("type");
            if (type == null) {
                // no type: the one type the keywords imply (a narrower output is still valid), or any value
                Set<String> implied = new LinkedHashSet<>();
                for (String k : keys) {
                    if (OBJECT.contains(k)) implied.add("object");
                    if (ARRAY.contains(k)) implied.add("array");
                    if (STRING.contains(k)) implied.add("string");
                    if (NUMBER.contains(k)) implied.add("number");
                }
                if (implied.isEmpty()) return ANY;
                if (implied.size() > 1) throw unsupported(path, "keywords of several types " + keys + " without \"type\"");
                return ofType(implied.iterator().next(), s, path);
            }
            if (type.isArray()) {
                List<JsonShape> options = new ArrayList<>();
                for (JsonNode t : type) options.add(ofType(t.asText(), s, path));
                if (options.isEmpty()) throw new IllegalArgumentException(path + ".type: an empty list, so no value can match");
                return options.size() == 1 ? options.getFirst() : new AnyOf(options);
            }
            return ofType(type.asText(), s, path);
        }

        private static Set<String> without(Set<String> keys, String k) {
            Set<String> out = new LinkedHashSet<>(keys);
            out.remove(k);
            return out;
        }

        /** const/enum: the values that also satisfy the schema's other keywords (checked by matching them). */
        private JsonShape literals(JsonNode s, String path, Set<String> keys) {
            List<byte[]> texts = new ArrayList<>();
            String kw = s.has("const") ? "const" : "enum";
            if (s.has("const")) texts.add(compact(s.get("const")));
            if (s.has("enum")) {
                if (!s.get("enum").isArray()) throw new IllegalArgumentException(path + ".enum: expected a list of values");
                List<byte[]> allowed = new ArrayList<>();
                for (JsonNode v : s.get("enum")) allowed.add(compact(v));
                texts = s.has("const") ? texts.stream().filter(t -> allowed.stream().anyMatch(a -> java.util.Arrays.equals(a, t))).toList() : allowed;
            }
            ObjectNode rest = ((ObjectNode) s).deepCopy();
            rest.remove("const");
            rest.remove("enum");
            if (!constraining(rest).isEmpty()) {
                JsonShape others = compile(rest, path);
                texts = texts.stream().filter(t -> Matcher.matches(others, t)).toList();
            }
            if (texts.isEmpty()) throw new IllegalArgumentException(path + "." + kw + ": no value satisfies the schema, so none can be written");
            return new Literals(List.copyOf(texts));
        }

        private JsonShape ofType(String type, JsonNode s, String path) {
            return switch (type) {
                case "object" -> object(s, path);
                case "array" -> array(s, path);
                case "string" -> {
                    int min = count(s, "minLength", path, 0), max = count(s, "maxLength", path, Integer.MAX_VALUE);
                    if (min > max) throw new IllegalArgumentException(path + ": minLength " + min + " > maxLength " + max + ", so no string can match");
                    yield new Str(min, max);
                }
                case "number" -> {
                    for (String k : NUMBER) {
                        if (s.has(k)) throw unsupported(path + "." + k, "bounds are enforced on type integer only");
                    }
                    yield new Num(false);
                }
                case "integer" -> integer(s, path);
                case "boolean" -> new Bool();
                case "null" -> new Null();
                default -> throw new IllegalArgumentException(path + ".type: '" + type + "' is not a JSON type (object, array, string, number, integer, boolean, null)");
            };
        }

        private JsonShape array(JsonNode s, String path) {
            JsonNode items = s.get("items");
            if (items != null && items.isArray()) throw unsupported(path + ".items", "a list of item schemas (tuple form)");
            int min = count(s, "minItems", path, 0), max = count(s, "maxItems", path, Integer.MAX_VALUE);
            if (min > max) throw new IllegalArgumentException(path + ": minItems " + min + " > maxItems " + max + ", so no array can match");
            return new Arr(compile(items, path + ".items"), min, max);
        }

        /** A non-negative integer keyword (minLength, maxItems, ...), or {@code absent}. */
        private static int count(JsonNode s, String key, String path, int absent) {
            JsonNode v = s.get(key);
            if (v == null || v.isNull()) return absent;
            if (!v.isNumber() || v.decimalValue().stripTrailingZeros().scale() > 0 || v.decimalValue().signum() < 0)
                throw new IllegalArgumentException(path + "." + key + ": expected a non-negative integer, got " + v);
            BigDecimal d = v.decimalValue();
            if (d.compareTo(BigDecimal.valueOf(MAX_BOUND)) > 0) {
                if (absent == Integer.MAX_VALUE) return absent;              // a huge maximum bounds nothing in practice
                throw unsupported(path + "." + key, "more than " + MAX_BOUND);
            }
            return d.intValue();
        }

        private static JsonShape integer(JsonNode s, String path) {
            BigDecimal lo = null, hi = null;                               // inclusive, possibly fractional
            boolean draft4LoExclusive = false, draft4HiExclusive = false;
            JsonNode exMin = s.get("exclusiveMinimum"), exMax = s.get("exclusiveMaximum");
            if (exMin != null && exMin.isBoolean()) draft4LoExclusive = exMin.asBoolean();
            if (exMax != null && exMax.isBoolean()) draft4HiExclusive = exMax.asBoolean();
            BigDecimal min = bound(s, "minimum", path), max = bound(s, "maximum", path);
            // an integer above lo: ceil(lo), or floor(lo) + 1 when exclusive
            if (min != null) lo = draft4LoExclusive ? min.setScale(0, RoundingMode.FLOOR).add(BigDecimal.ONE) : min.setScale(0, RoundingMode.CEILING);
            if (max != null) hi = draft4HiExclusive ? max.setScale(0, RoundingMode.CEILING).subtract(BigDecimal.ONE) : max.setScale(0, RoundingMode.FLOOR);
            if (exMin != null && !exMin.isBoolean()) {
                BigDecimal x = bound(s, "exclusiveMinimum", path).setScale(0, RoundingMode.FLOOR).add(BigDecimal.ONE);
                lo = lo == null ? x : lo.max(x);
            }
            if (exMax != null && !exMax.isBoolean()) {
                BigDecimal x = bound(s, "exclusiveMaximum", path).setScale(0, RoundingMode.CEILING).subtract(BigDecimal.ONE);
                hi = hi == null ? x : hi.min(x);
            }
            BigDecimal longMin = BigDecimal.valueOf(Long.MIN_VALUE), longMax = BigDecimal.valueOf(Long.MAX_VALUE);
            long l = lo == null ? Long.MIN_VALUE : lo.max(longMin).min(longMax).longValueExact();
            long h = hi == null ? Long.MAX_VALUE : hi.max(longMin).min(longMax).longValueExact();
            if (l > h) throw new IllegalArgumentException(path + ": no integer lies within the bounds (minimum/maximum/exclusive*)");
            Num n = new Num(true, l, h);
            if (n.bounded() && minLength(n) > Matcher.MAX_INTEGER)
                throw unsupported(path, "integers of more than " + (Matcher.MAX_INTEGER - 1) + " digits");
            return n;
        }

        private static BigDecimal bound(JsonNode s, String key, String path) {
            JsonNode v = s.get(key);
            if (v == null || v.isNull()) return null;
            if (!v.isNumber()) throw new IllegalArgumentException(path + "." + key + ": expected a number, got " + v);
            return v.decimalValue();
        }

        private JsonShape object(JsonNode s, String path) {
            JsonNode props = s.get("properties");
            JsonNode additional = s.get("additionalProperties");
            boolean closed = additional != null && additional.isBoolean() && !additional.asBoolean();
            if (additional != null && !additional.isBoolean() && !additional.isNull() && !(additional.isObject() && additional.isEmpty()))
                throw unsupported(path + ".additionalProperties", "only true or false");
            if (props != null && !props.isObject()) throw new IllegalArgumentException(path + ".properties: expected an object of schemas");
            List<String> required = new ArrayList<>();
            if (s.has("required")) for (JsonNode r : s.get("required")) required.add(r.asText());
            for (String r : required) {
                if (props == null || !props.has(r)) throw unsupported(path + ".required", "'" + r + "' is not among the properties");
            }
            if (props == null || props.isEmpty()) return closed ? new Obj(List.of()) : ANY_OBJECT;
            List<Property> out = new ArrayList<>();
            for (Iterator<Map.Entry<String, JsonNode>> it = props.properties().iterator(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                byte[] key = JSON.valueToTree(e.getKey()).toString().getBytes(StandardCharsets.UTF_8);
                out.add(new Property(e.getKey(), key, compile(e.getValue(), path + ".properties." + e.getKey()), required.contains(e.getKey())));
            }
            return new Obj(List.copyOf(out));
        }

        private JsonNode resolve(String ref, String path) {
            if (!ref.startsWith("#")) throw unsupported(path + ".$ref", "only references inside the schema (#/...), got '" + ref + "'");
            JsonNode target = root.at(ref.substring(1));
            if (target.isMissingNode()) throw new IllegalArgumentException(path + ".$ref: '" + ref + "' points at nothing");
            return target;
        }

        private static byte[] compact(JsonNode v) {
            return v.toString().getBytes(StandardCharsets.UTF_8);
        }
    }
}
