package dev.kimivl.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;

import static dev.kimivl.cli.CliTest.TINY;
import static dev.kimivl.cli.CliTest.run;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** kimivl eval: the JSON report's shape, per-type counts adding up, and its errors. */
class EvalCommandTest {
    @Test
    void jsonReportHasOverallAndEveryType() throws Exception {
        CliTest.Run r = run("eval", "--model", TINY.toString(), "-n", "7", "--json");
        assertEquals(0, r.exit(), r.err());
        JsonNode j = new ObjectMapper().readTree(r.out());
        double overall = j.get("overall").asDouble();
        assertTrue(overall >= 0 && overall <= 1, r.out());
        assertEquals(7, j.get("n").asInt());
        int total = 0, right = 0;
        for (JsonNode t : j.get("by_type")) { total += t.get("total").asInt(); right += t.get("right").asInt(); }
        assertEquals(7, total, "one question of each of the 7 VQA types");
        assertEquals(overall, right / 7.0, 1e-12);
        // every wrong answer is listed (fewer than 20 here), each naming its type, question and expected answer
        assertEquals(7 - right, j.get("wrong").size(), r.out());
        for (JsonNode w : j.get("wrong")) assertTrue(w.asText().contains("(expected \""), w.asText());
        // the one count question, also scored as within one of the truth: at least as often right as exactly
        JsonNode near = j.get("count_within_one");
        assertEquals(1, near.get("total").asInt(), r.out());
        assertTrue(near.get("right").asInt() >= j.get("by_type").get("count").get("right").asInt(), r.out());
    }

    @Test
    void badArgumentsAreOneLine() {
        CliTest.Run r = run("eval", "--model", TINY.toString(), "-n", "0");
        assertTrue(r.exit() != 0 && r.err().contains("-n must be at least 1"), r.err());
        r = run("eval", "--model", TINY.toString(), "--task", "nope", "-n", "1");
        assertTrue(r.exit() != 0 && r.err().contains("--task nope"), r.err());
        r = run("eval", "--model", TINY.toString(), "--min-side", "200", "--max-side", "100", "-n", "1");
        assertTrue(r.exit() != 0 && r.err().contains("--min-side 200 --max-side 100"), r.err());
    }

    @Test
    void imageSidesCanBeChosen() throws Exception {
        CliTest.Run r = run("eval", "--model", TINY.toString(), "--task", "grounding", "--easy", "--min-side", "128", "--max-side", "128", "-n", "3", "--json");
        assertEquals(0, r.exit(), r.err());
        JsonNode j = new ObjectMapper().readTree(r.out());
        assertEquals(128, j.get("min_side").asInt());
        assertEquals(128, j.get("max_side").asInt());
        assertEquals(3, j.get("n").asInt());
    }

    @Test
    void objectsTaskReportsColourShapeAndWhat() throws Exception {
        CliTest.Run r = run("eval", "--model", TINY.toString(), "--task", "objects", "--easy", "-n", "6", "--json");
        assertEquals(0, r.exit(), r.err());
        JsonNode j = new ObjectMapper().readTree(r.out());
        assertEquals(6, j.get("n").asInt());
        for (var it = j.get("by_type").fieldNames(); it.hasNext(); ) {
            String k = it.next();
            assertTrue(java.util.Set.of("color", "shape", "what").contains(k), k);
        }
        assertTrue(j.get("count_within_one") == null, "no count questions, no count row: " + r.out());
    }

    @Test
    void groundingReportsByQuestionForm() throws Exception {
        CliTest.Run r = run("eval", "--model", TINY.toString(), "--task", "grounding", "--easy", "-n", "12", "--json");
        assertEquals(0, r.exit(), r.err());
        JsonNode j = new ObjectMapper().readTree(r.out());
        java.util.List<String> keys = new java.util.ArrayList<>();
        j.get("by_type").fieldNames().forEachRemaining(keys::add);
        assertEquals(java.util.List.of("where (colour + shape)", "where (colour)", "what is there"), keys);
        int total = 0;
        for (JsonNode t : j.get("by_type")) total += t.get("total").asInt();
        assertEquals(12, total);
        // a where-question's expected answer is a place of the 3 × 3 grid
        for (JsonNode w : j.get("wrong")) {
            String t = w.asText();
            assertTrue(!t.contains("\"Where is") || t.matches("(?s).*\\(expected \"(At the|In the|On the) .*"), t);
        }
    }

    @Test
    void niahReportsByDepth() throws Exception {
        CliTest.Run r = run("eval", "--model", TINY.toString(), "--task", "niah", "--niah-chars", "300", "-n", "8", "--json");
        assertEquals(0, r.exit(), r.err());
        JsonNode j = new ObjectMapper().readTree(r.out());
        int total = 0;
        for (var it = j.get("by_type").fieldNames(); it.hasNext(); ) {
            String k = it.next();
            assertTrue(k.startsWith("depth "), k);
            total += j.get("by_type").get(k).get("total").asInt();
        }
        assertEquals(8, total);
    }

    @Test
    void niahVideoReportsByFrameCountAndDepth() throws Exception {
        CliTest.Run r = run("eval", "--model", TINY.toString(), "--task", "niah-video", "--niah-frames", "4,6", "-n", "8", "--json");
        assertEquals(0, r.exit(), r.err());
        JsonNode j = new ObjectMapper().readTree(r.out());
        assertTrue(j.get("task").asText().startsWith("niah-video 4,6 frames of 112 px"), j.get("task").asText());
        java.util.List<String> keys = new java.util.ArrayList<>();
        j.get("by_type").fieldNames().forEachRemaining(keys::add);
        assertEquals(java.util.List.of("4 frames, depth 0-24%", "4 frames, depth 25-49%", "4 frames, depth 50-74%", "4 frames, depth 75-100%",
                "6 frames, depth 0-24%", "6 frames, depth 25-49%", "6 frames, depth 50-74%", "6 frames, depth 75-100%"), keys);
        for (JsonNode t : j.get("by_type")) assertEquals(1, t.get("total").asInt(), j.toString());

        r = run("eval", "--model", TINY.toString(), "--task", "niah-video", "--niah-frames", "4,3", "-n", "1");
        assertTrue(r.exit() != 0 && r.err().contains("--niah-frames 3: each video needs at least 4 frames"), r.err());
        // a video past the context is an error naming it, never a cut (tiny-random: 4096 tokens, 32 a frame)
        r = run("eval", "--model", TINY.toString(), "--task", "niah-video", "--niah-frames", "200", "-n", "1");
        assertTrue(r.exit() != 0 && r.err().contains("200 images) has") && r.err().contains("context holds 4096"), r.err());
    }
}
