package dev.kimivl.generate.json;

import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;

import static org.junit.jupiter.api.Assertions.*;

class MatcherTest {
    static final String PERSON = """
            {"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"},
             "tags":{"type":"array","items":{"type":"string"}},"mood":{"enum":["happy","sad"]},
             "score":{"type":"number"}},"required":["name","age"]}""";

    static boolean accepts(JsonShape s, String text) {
        Matcher m = new Matcher(s);
        var next = m.tryFeed(text.getBytes(StandardCharsets.UTF_8));
        if (next.isEmpty()) return false;
        m.commit(next);
        return m.complete();
    }

    @Test
    void anyObjectTakesValidJsonAndRefusesTheRest() {
        JsonShape o = JsonShape.ANY_OBJECT;
        assertTrue(accepts(o, "{}"));
        assertTrue(accepts(o, "{\"a\": [1, -2.5e+3, true, null, {\"b\": \"x\\u00e9\\n\"}], \"c\": \"é\"}"));
        assertTrue(accepts(o, "{\n  \"a\": 0\n}"));
        assertFalse(accepts(o, "[1]"), "json_object mode is an object");
        assertFalse(accepts(o, "{\"a\": 01}"), "no leading zeros");
        assertFalse(accepts(o, "{\"a\": 1,}"), "no trailing comma");
        assertFalse(accepts(o, "{\"a\": \"line\nbreak\"}"), "control characters must be escaped");
        assertFalse(accepts(o, "{} "), "nothing after the value");
        assertFalse(accepts(o, "{\"a\": tru}"));
        assertFalse(accepts(o, "{\"a\""), "incomplete is not complete");
    }

    @Test
    void integersHaveAtMost18DigitsSoTheyFitALong() {
        JsonShape i = JsonShape.fromSchema("{\"type\": \"integer\"}");
        assertTrue(accepts(i, "999999999999999999"), "18 digits");
        assertTrue(accepts(i, "-999999999999999999"), "18 digits and a sign");
        // a CI run bound 9977053556631412313 to a record's long: 19 unsigned digits can pass Long.MAX_VALUE
        assertFalse(accepts(i, "9977053556631412313"));
        assertFalse(accepts(i, "-1000000000000000000"));
    }

    @Test
    void schemaFixesKeysTypesAndRequiredProperties() {
        JsonShape s = JsonShape.fromSchema(PERSON);
        assertTrue(accepts(s, "{\"name\":\"Ann\",\"age\":41}"));
        assertTrue(accepts(s, "{\"name\": \"Ann\", \"age\": 41, \"tags\": [\"a\", \"b\"], \"mood\": \"sad\", \"score\": 0.5}"));
        assertTrue(accepts(s, "{\"name\":\"Ann\",\"age\":41,\"score\":-1e3}"), "optional properties may be skipped");
        assertFalse(accepts(s, "{\"name\":\"Ann\"}"), "age is required");
        assertFalse(accepts(s, "{\"name\":\"Ann\",\"age\":41.5}"), "an integer");
        assertFalse(accepts(s, "{\"name\":\"Ann\",\"age\":41,\"mood\":\"angry\"}"), "not in the enum");
        assertFalse(accepts(s, "{\"name\":\"Ann\",\"age\":41,\"other\":1}"), "no other keys");
        assertFalse(accepts(s, "{\"age\":41,\"name\":\"Ann\"}"), "properties come in the schema's order");
    }

    @Test
    void remainingIsTheShortestCompletion() {
        Matcher m = new Matcher(JsonShape.fromSchema(PERSON));
        assertEquals("{\"name\":\"\",\"age\":0}".length(), m.remaining());
        m.feed("{\"name\":\"Bo".getBytes());
        assertEquals("\",\"age\":0}".length(), m.remaining());
        m.feed("b\",\"age\":1".getBytes());
        assertEquals(1, m.remaining());
        m.feed("2}".getBytes());
        assertEquals(0, m.remaining());
        assertFalse(m.canContinue());
    }

    @Test
    void utf8MustBeCompleteBeforeTheStringCloses() {
        JsonShape s = JsonShape.fromSchema("{\"type\":\"string\"}");
        Matcher m = new Matcher(s);
        m.feed(new byte[]{'"', (byte) 0xC3});
        assertTrue(m.tryFeed(new byte[]{'"'}).isEmpty(), "a character cut in half");
        m.feed(new byte[]{(byte) 0xA9, '"'});
        assertTrue(m.complete());
    }

    @Test
    void refsAnyOfAndBadSchemas() {
        JsonShape s = JsonShape.fromSchema("""
                {"$defs":{"pt":{"type":"object","properties":{"x":{"type":"number"}},"required":["x"]}},
                 "anyOf":[{"$ref":"#/$defs/pt"},{"type":"null"}]}""");
        assertTrue(accepts(s, "{\"x\":1}"));
        assertTrue(accepts(s, "null"));
        assertFalse(accepts(s, "{}"));
        var e = assertThrows(IllegalArgumentException.class, () -> JsonShape.fromSchema("{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"thing\"}}}"));
        assertTrue(e.getMessage().contains("#.properties.a.type"), e.getMessage());
        e = assertThrows(UnsupportedSchemaException.class, () -> JsonShape.fromSchema("{\"$defs\":{\"n\":{\"type\":\"object\",\"properties\":{\"next\":{\"$ref\":\"#/$defs/n\"}}}},\"$ref\":\"#/$defs/n\"}"));
        assertTrue(e.getMessage().contains("recursive"), e.getMessage());
    }
}
