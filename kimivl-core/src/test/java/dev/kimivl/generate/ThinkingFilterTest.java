package dev.kimivl.generate;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

class ThinkingFilterTest {
    static String[] run(String... pieces) {
        StringBuilder answer = new StringBuilder(), reasoning = new StringBuilder();
        ThinkingFilter f = new ThinkingFilter(answer::append, reasoning::append);
        for (String p : pieces) f.onText(p);
        f.finish();
        return new String[]{answer.toString(), reasoning.toString()};
    }

    @Test
    void splitsReasoningFromTheAnswerWhateverThePieces() {
        String out = "◁think▷Let me look. 2+2=4.◁/think▷The answer is 4.";
        String[] whole = run(out);
        assertEquals("The answer is 4.", whole[0]);
        assertEquals("Let me look. 2+2=4.", whole[1]);
        // one character at a time: the markers arrive split
        String[] chars = run(out.chars().mapToObj(c -> String.valueOf((char) c)).toArray(String[]::new));
        assertArrayEquals(whole, chars);
    }

    @Test
    void instructOutputPassesThrough() {
        assertArrayEquals(new String[]{"Hello! How can I assist", ""}, run("Hello", "! How can I assist"));
    }

    @Test
    void unfinishedThinkingStaysReasoning() {
        assertArrayEquals(new String[]{"", "still thinking ◁/thi"}, run("◁think▷still thinking ◁/thi"));
    }
}
