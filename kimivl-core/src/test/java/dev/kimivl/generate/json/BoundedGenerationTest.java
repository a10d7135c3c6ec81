package dev.kimivl.generate.json;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.kimivl.generate.GenerationOptions;
import dev.kimivl.generate.Generator;
import dev.kimivl.generate.SamplingParams;
import dev.kimivl.model.KimiVL;
import dev.kimivl.text.ChatMessage;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Bounds through real decoding: tiny-random (random weights) sampled at temperature 1 under a bounded schema, with
 * the real tokenizer's multi-byte tokens, so the values are whatever the random model drifts to and only the
 * constraint keeps them within the bounds.
 */
class BoundedGenerationTest {
    static KimiVL model;

    @BeforeAll static void open() { model = KimiVL.open(Path.of("../models/tiny-random")); }

    @AfterAll static void close() { model.close(); }

    @Test
    void sampledAnswersKeepEveryBound() throws Exception {
        JsonShape shape = JsonShape.fromSchema("""
                {"type":"object","properties":{
                  "code":{"type":"string","minLength":3,"maxLength":5},
                  "n":{"type":"integer","minimum":10,"maximum":42},
                  "xs":{"type":"array","items":{"type":"integer","exclusiveMinimum":-4,"exclusiveMaximum":4},"minItems":2,"maxItems":3}},
                 "required":["code","n","xs"],"additionalProperties":false}""");
        KimiVL.Prompt p = model.prompt(List.of(ChatMessage.user("A code, a number and a list, as JSON.")), List.of());
        for (long seed = 1; seed <= 8; seed++) {
            var c = new JsonConstraint(shape, model.tokenizer(), model.config().text().vocabSize());
            Generator.Result r = model.generator(0).generate(p.embeddings(), p.ids(),
                    new SamplingParams(1.0, 0, 1, 0, 1, seed, 80, List.of()), null, GenerationOptions.NONE.withConstraint(c));
            JsonNode n = new ObjectMapper().readTree(r.text());
            String code = n.get("code").asText();
            int cp = code.codePointCount(0, code.length());
            assertTrue(cp >= 3 && cp <= 5, "code of 3..5 code points: " + r.text());
            assertTrue(n.get("n").isIntegralNumber() && n.get("n").asLong() >= 10 && n.get("n").asLong() <= 42, r.text());
            assertTrue(n.get("xs").size() >= 2 && n.get("xs").size() <= 3, r.text());
            for (JsonNode x : n.get("xs")) assertTrue(x.isIntegralNumber() && Math.abs(x.asLong()) <= 3, r.text());
        }
    }
}
