package dev.kimivl.text;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

class ThinkingSplitTest {
    @Test
    void splitsReasoningFromAnswer() {
        var s = ThinkingSplit.of("\u25C1think\u25B7Let me think.\u25C1/think\u25B7The answer is 42.");
        assertEquals(new ThinkingSplit("Let me think.", "The answer is 42.", false), s);
    }

    @Test
    void answerIsAfterTheLastClosingMarker() {
        var s = ThinkingSplit.of("\u25C1think\u25B7a\u25C1/think\u25B7b\u25C1/think\u25B7c");
        assertEquals("c", s.answer());
        assertEquals("a\u25C1/think\u25B7b", s.reasoning());
        assertEquals("c", ThinkingSplit.answerOf("x\u25C1/think\u25B7c"));
    }

    @Test
    void unfinishedThinkingAndNoThinking() {
        assertEquals(new ThinkingSplit("still going", "", true), ThinkingSplit.of("\u25C1think\u25B7still going"));
        assertEquals(new ThinkingSplit("", "plain answer", false), ThinkingSplit.of("plain answer"));
        // A closing marker without the opener (the opener was in the prompt): everything before it is reasoning.
        assertEquals(new ThinkingSplit("r", "\n\nanswer", false), ThinkingSplit.of("r\u25C1/think\u25B7\n\nanswer"));
    }
}
