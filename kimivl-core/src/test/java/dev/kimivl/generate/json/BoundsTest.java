package dev.kimivl.generate.json;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/** Bounds (minLength/maxLength, minItems/maxItems, minimum/maximum and their exclusive forms) and refused keywords. */
class BoundsTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    static boolean accepts(JsonShape s, String text) { return Matcher.matches(s, text.getBytes(StandardCharsets.UTF_8)); }

    /** Whether the text can still be continued into a value (a prefix the matcher lets through). */
    static boolean prefix(JsonShape s, String text) { return !new Matcher(s).tryFeed(text.getBytes(StandardCharsets.UTF_8)).isEmpty(); }

    @Test
    void integerBoundsRefuseEveryPrefixThatCannotEndInRange() {
        JsonShape s = JsonShape.fromSchema("{\"type\":\"integer\",\"minimum\":0,\"maximum\":42}");
        assertTrue(prefix(s, "5"), "5 is within 0..42");
        assertFalse(prefix(s, "50"), "50 > 42 and only grows");
        assertTrue(prefix(s, "4"));
        assertTrue(accepts(s, "42"));
        assertFalse(prefix(s, "43"));
        assertFalse(prefix(s, "-"), "no negative number is >= 0");
        assertTrue(accepts(s, "0"));
        assertFalse(prefix(s, "00"));
        assertFalse(prefix(s, "1.5"), "integers have no fraction");

        JsonShape ex = JsonShape.fromSchema("{\"type\":\"integer\",\"exclusiveMinimum\":-10,\"exclusiveMaximum\":100}");
        assertTrue(accepts(ex, "-9"));
        assertFalse(accepts(ex, "-10"));
        assertTrue(accepts(ex, "99"));
        assertFalse(accepts(ex, "100"));
        assertTrue(prefix(ex, "10"), "10 itself is within");
        assertFalse(prefix(ex, "100"));

        JsonShape big = JsonShape.fromSchema("{\"type\":\"integer\",\"minimum\":1000}");
        assertTrue(prefix(big, "1"), "1 can still grow to 1000");
        assertFalse(accepts(big, "999"));
        Matcher m = new Matcher(big);
        m.feed("12".getBytes());
        assertEquals(2, m.remaining(), "12 needs two more digits to reach 1000");

        JsonShape neg = JsonShape.fromSchema("{\"type\":\"integer\",\"maximum\":-5}");
        assertTrue(prefix(neg, "-"));
        assertFalse(prefix(neg, "-0"), "-0 is 0 > -5");
        assertFalse(prefix(neg, "5"));
        assertTrue(accepts(neg, "-5"));
        assertFalse(accepts(neg, "-4"));
        assertTrue(prefix(neg, "-4"), "-4 can still become -40");

        JsonShape frac = JsonShape.fromSchema("{\"type\":\"integer\",\"minimum\":0.5,\"maximum\":2.5}");
        assertFalse(accepts(frac, "0"));
        assertTrue(accepts(frac, "1"));
        assertTrue(accepts(frac, "2"));
        assertFalse(accepts(frac, "3"));

        JsonShape draft4 = JsonShape.fromSchema("{\"type\":\"integer\",\"minimum\":3,\"exclusiveMinimum\":true}");
        assertFalse(accepts(draft4, "3"));
        assertTrue(accepts(draft4, "4"));
    }

    @Test
    void stringLengthsCountCodePoints() {
        JsonShape s = JsonShape.fromSchema("{\"type\":\"string\",\"minLength\":2,\"maxLength\":3}");
        assertFalse(accepts(s, "\"a\""));
        assertTrue(accepts(s, "\"ab\""));
        assertTrue(accepts(s, "\"abc\""));
        assertFalse(prefix(s, "\"abcd"));
        assertTrue(accepts(s, "\"é😀\""), "two code points, six bytes");
        assertTrue(accepts(s, "\"\\n\\u00e9x\""), "an escape is one code point");
        assertFalse(prefix(s, "\"\\ud83d"), "a surrogate escape is refused in a bounded string");
        assertTrue(accepts(s, "\"\\ud7ff!\""), "\\ud7ff is no surrogate");
        Matcher m = new Matcher(s);
        m.feed("\"".getBytes());
        assertEquals(3, m.remaining(), "two code points and the quote");
    }

    @Test
    void arrayItemCounts() {
        JsonShape s = JsonShape.fromSchema("{\"type\":\"array\",\"items\":{\"type\":\"integer\"},\"minItems\":2,\"maxItems\":3}");
        assertFalse(accepts(s, "[]"));
        assertFalse(accepts(s, "[1]"));
        assertTrue(accepts(s, "[1,2]"));
        assertTrue(accepts(s, "[1, 2, 3]"));
        assertFalse(prefix(s, "[1,2,3,"));
        Matcher m = new Matcher(s);
        m.feed("[".getBytes());
        assertEquals(4, m.remaining(), "1,2]");
        JsonShape none = JsonShape.fromSchema("{\"type\":\"array\",\"maxItems\":0}");
        assertTrue(accepts(none, "[]"));
        assertFalse(prefix(none, "[1"));
    }

    @Test
    void enumValuesThatBreakTheOtherKeywordsAreDropped() {
        JsonShape s = JsonShape.fromSchema("{\"type\":\"string\",\"maxLength\":2,\"enum\":[\"ab\",\"abc\",3]}");
        assertTrue(accepts(s, "\"ab\""));
        assertFalse(accepts(s, "\"abc\""));
        assertFalse(accepts(s, "3"));
        assertThrows(IllegalArgumentException.class, () -> JsonShape.fromSchema("{\"type\":\"integer\",\"maximum\":1,\"const\":5}"));
    }

    @Test
    void unsupportedKeywordsAreRefusedWithTheirPath() {
        String[][] cases = {
                {"{\"type\":\"object\",\"properties\":{\"zip\":{\"type\":\"string\",\"pattern\":\"^[0-9]{5}$\"}}}", "#.properties.zip.pattern"},
                {"{\"type\":\"object\",\"patternProperties\":{\"^x\":{}}}", "#.patternProperties"},
                {"{\"type\":\"object\",\"additionalProperties\":{\"type\":\"string\"}}", "#.additionalProperties"},
                {"{\"type\":\"number\",\"maximum\":1.5}", "#.maximum"},
                {"{\"type\":\"array\",\"uniqueItems\":true}", "#.uniqueItems"},
                {"{\"allOf\":[{\"type\":\"string\"}]}", "#.allOf"},
                {"{\"type\":\"string\",\"anyOf\":[{\"maxLength\":1}]}", "#.anyOf"},
                {"{\"$defs\":{\"n\":{\"type\":\"object\",\"properties\":{\"next\":{\"$ref\":\"#/$defs/n\"}}}},\"$ref\":\"#/$defs/n\"}", "recursive"},
        };
        for (String[] c : cases) {
            var e = assertThrows(UnsupportedSchemaException.class, () -> JsonShape.fromSchema(c[0]), c[0]);
            assertTrue(e.getMessage().contains(c[1]) && e.getMessage().contains("not supported"), e.getMessage());
        }
        var e = assertThrows(UnsupportedSchemaException.class,
                () -> JsonShape.fromSchema(JSON.readTree("{\"properties\":{\"zip\":{\"type\":\"string\",\"pattern\":\"x\"}}}"), "response_format.json_schema.schema"));
        assertTrue(e.getMessage().startsWith("response_format.json_schema.schema.properties.zip.pattern is not supported"), e.getMessage());
        // annotations and format (an annotation in 2020-12) are accepted
        JsonShape.fromSchema("{\"type\":\"string\",\"format\":\"date\",\"title\":\"t\",\"description\":\"d\",\"$schema\":\"x\"}");
    }

    // ------------------------------------------------------------------------------ the property test

    /** Tokens the random walks are made of: every printable ASCII byte, multi-byte characters, escapes and chunks that span frames. */
    static final List<byte[]> TOKENS = new ArrayList<>();
    static {
        for (int b = 0x20; b < 0x7f; b++) TOKENS.add(new byte[]{(byte) b});
        for (String t : new String[]{"é", "😀", "中", "\\u00e9", "\\ud83d", "\\n", "12", "-4", "00", "99", "\",", "\":", "\"}", "]}", "],", "\"a", "ab", "é\"", "true", "null", ", ", "\n"})
            TOKENS.add(t.getBytes(StandardCharsets.UTF_8));
    }

    @Test
    void randomSchemasAndTokenWalksStayWithinTheBounds() throws Exception {
        Random rnd = new Random(14);
        int completed = 0;
        for (int schemaNo = 0; schemaNo < 60; schemaNo++) {
            JsonNode schema = randomSchema(rnd, 0);
            JsonShape shape = JsonShape.fromSchema(schema);
            for (int walk = 0; walk < 40; walk++) {
                String text = walk(shape, rnd, 20 + rnd.nextInt(60));
                JsonNode value = JSON.readTree(text);            // must parse
                String why = violation(schema, value, "#");
                assertNull(why, () -> "schema " + schema + " accepted " + text + ": " + why);
                completed++;
            }
            reachBounds(schema, shape, rnd);
        }
        assertEquals(60 * 40, completed);
    }

    /** Random bytes the matcher allows, then (after {@code wander} tokens, or at random) the tokens that close soonest. */
    static String walk(JsonShape shape, Random rnd, int wander) {
        Matcher m = new Matcher(shape);
        java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
        for (int step = 0; step < 2000; step++) {
            if (m.complete() && (step > wander || rnd.nextInt(8) == 0)) break;
            if (!m.canContinue()) break;
            List<byte[]> ok = new ArrayList<>();
            List<List<Matcher.State>> states = new ArrayList<>();
            for (byte[] t : TOKENS) {
                var next = m.tryFeed(t);
                if (!next.isEmpty()) { ok.add(t); states.add(next); }
            }
            if (ok.isEmpty()) {                                      // e.g. the longest integer: fine only when complete
                assertTrue(m.complete(), () -> "stuck after " + out.toString(StandardCharsets.UTF_8) + " while the value is incomplete");
                break;
            }
            int pick;
            if (step < wander) pick = rnd.nextInt(ok.size());
            else {                                                   // close: a token that brings the end nearest
                pick = 0;
                for (int i = 1; i < ok.size(); i++) if (m.remaining(states.get(i)) < m.remaining(states.get(pick))) pick = i;
                int before = m.remaining();
                assertTrue(m.remaining(states.get(pick)) < before, () -> "remaining() promised " + before + " bytes but no token gets closer after " + out.toString(StandardCharsets.UTF_8));
            }
            out.writeBytes(ok.get(pick));
            m.commit(states.get(pick));
        }
        assertTrue(m.complete(), () -> "walk did not finish: " + out.toString(StandardCharsets.UTF_8));
        return out.toString(StandardCharsets.UTF_8);
    }

    static JsonNode randomSchema(Random rnd, int depth) {
        ObjectNode s = JSON.createObjectNode();
        int kind = rnd.nextInt(depth >= 2 ? 2 : 4);
        switch (kind) {
            case 0 -> {
                s.put("type", "integer");
                long lo = rnd.nextInt(2000) - 1000, hi = lo + rnd.nextInt(rnd.nextBoolean() ? 10 : 3000);
                switch (rnd.nextInt(4)) {
                    case 0 -> { s.put("minimum", lo); s.put("maximum", hi); }
                    case 1 -> { s.put("exclusiveMinimum", lo - 1); s.put("exclusiveMaximum", hi + 1); }
                    case 2 -> s.put("minimum", lo);
                    default -> s.put("maximum", hi);
                }
            }
            case 1 -> {
                s.put("type", "string");
                int lo = rnd.nextInt(5);
                if (rnd.nextBoolean()) s.put("minLength", lo);
                if (rnd.nextBoolean()) s.put("maxLength", lo + rnd.nextInt(4));
            }
            case 2 -> {
                s.put("type", "array");
                s.set("items", randomSchema(rnd, depth + 1));
                int lo = rnd.nextInt(3);
                if (rnd.nextBoolean()) s.put("minItems", lo);
                if (rnd.nextBoolean()) s.put("maxItems", lo + rnd.nextInt(3));
            }
            default -> {
                s.put("type", "object");
                ObjectNode props = s.putObject("properties");
                ArrayNode req = s.putArray("required");
                int n = 1 + rnd.nextInt(3);
                for (int i = 0; i < n; i++) {
                    props.set("p" + i, randomSchema(rnd, depth + 1));
                    if (rnd.nextBoolean()) req.add("p" + i);
                }
                s.put("additionalProperties", false);
            }
        }
        return s;
    }

    /** An independent check of a value against the generated schema (null: valid), written from the schema's JSON. */
    static String violation(JsonNode s, JsonNode v, String path) {
        switch (s.get("type").asText()) {
            case "integer" -> {
                if (!v.isIntegralNumber()) return path + " not an integer";
                long x = v.asLong();
                if (s.has("minimum") && x < s.get("minimum").asLong()) return path + " below minimum";
                if (s.has("maximum") && x > s.get("maximum").asLong()) return path + " above maximum";
                if (s.has("exclusiveMinimum") && x <= s.get("exclusiveMinimum").asLong()) return path + " not above exclusiveMinimum";
                if (s.has("exclusiveMaximum") && x >= s.get("exclusiveMaximum").asLong()) return path + " not below exclusiveMaximum";
            }
            case "string" -> {
                if (!v.isTextual()) return path + " not a string";
                int n = v.asText().codePointCount(0, v.asText().length());
                if (s.has("minLength") && n < s.get("minLength").asInt()) return path + " shorter than minLength";
                if (s.has("maxLength") && n > s.get("maxLength").asInt()) return path + " longer than maxLength";
            }
            case "array" -> {
                if (!v.isArray()) return path + " not an array";
                if (s.has("minItems") && v.size() < s.get("minItems").asInt()) return path + " fewer than minItems";
                if (s.has("maxItems") && v.size() > s.get("maxItems").asInt()) return path + " more than maxItems";
                for (int i = 0; i < v.size(); i++) {
                    String w = violation(s.get("items"), v.get(i), path + "[" + i + "]");
                    if (w != null) return w;
                }
            }
            default -> {
                if (!v.isObject()) return path + " not an object";
                for (JsonNode r : s.get("required")) if (!v.has(r.asText())) return path + " lacks " + r.asText();
                for (Iterator<Map.Entry<String, JsonNode>> it = v.properties().iterator(); it.hasNext(); ) {
                    var e = it.next();
                    JsonNode ps = s.get("properties").get(e.getKey());
                    if (ps == null) return path + " has the extra key " + e.getKey();
                    String w = violation(ps, e.getValue(), path + "." + e.getKey());
                    if (w != null) return w;
                }
            }
        }
        return null;
    }

    /** Values exactly at each top-level bound are accepted, and one step beyond refused. */
    static void reachBounds(JsonNode s, JsonShape shape, Random rnd) {
        switch (s.get("type").asText()) {
            case "integer" -> {
                Long lo = s.has("minimum") ? (Long) s.get("minimum").asLong() : s.has("exclusiveMinimum") ? (Long) (s.get("exclusiveMinimum").asLong() + 1) : null;
                Long hi = s.has("maximum") ? (Long) s.get("maximum").asLong() : s.has("exclusiveMaximum") ? (Long) (s.get("exclusiveMaximum").asLong() - 1) : null;
                if (lo != null) { assertTrue(accepts(shape, "" + lo), s + " " + lo); assertFalse(accepts(shape, "" + (lo - 1)), s + " " + (lo - 1)); }
                if (hi != null) { assertTrue(accepts(shape, "" + hi), s + " " + hi); assertFalse(accepts(shape, "" + (hi + 1)), s + " " + (hi + 1)); }
            }
            case "string" -> {
                if (s.has("minLength")) {
                    int n = s.get("minLength").asInt();
                    assertTrue(accepts(shape, "\"" + "é".repeat(n) + "\""), s + " at minLength");
                    if (n > 0) assertFalse(accepts(shape, "\"" + "é".repeat(n - 1) + "\""), s + " below minLength");
                }
                if (s.has("maxLength")) {
                    int n = s.get("maxLength").asInt();
                    assertTrue(accepts(shape, "\"" + "😀".repeat(n) + "\""), s + " at maxLength");
                    assertFalse(prefix(shape, "\"" + "x".repeat(n + 1)), s + " beyond maxLength");
                }
            }
            case "array" -> {
                String item = walk(((JsonShape.Arr) shape).items(), rnd, 0);
                if (s.has("minItems")) {
                    int n = s.get("minItems").asInt();
                    assertTrue(accepts(shape, "[" + String.join(",", java.util.Collections.nCopies(n, item)) + "]"), s + " at minItems with " + item);
                    if (n > 0) assertFalse(accepts(shape, "[" + String.join(",", java.util.Collections.nCopies(n - 1, item)) + "]"), s + " below minItems");
                }
                if (s.has("maxItems")) {
                    int n = s.get("maxItems").asInt();
                    assertTrue(accepts(shape, "[" + String.join(",", java.util.Collections.nCopies(n, item)) + "]"), s + " at maxItems with " + item);
                    assertFalse(accepts(shape, "[" + String.join(",", java.util.Collections.nCopies(n + 1, item)) + "]"), s + " beyond maxItems");
                }
            }
            default -> { }
        }
    }
}
