package dev.kimivl.generate;

import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

class StopStringFilterTest {
    @Test
    void holdsBackAPossibleStopPrefixAndCutsAtTheStop() {
        StringBuilder streamed = new StringBuilder();
        var f = new Generator.StopStringFilter(List.of("END"), streamed::append);
        assertFalse(f.accept("hello E"));
        assertEquals("hello ", streamed.toString(), "the 'E' may start END: held back");
        assertFalse(f.accept("x"));
        assertEquals("hello Ex", streamed.toString(), "'Ex' cannot start END: released");
        assertFalse(f.accept(" and EN"));
        assertTrue(f.accept("D more"));
        assertEquals("hello Ex and ", streamed.toString());
        assertEquals("hello Ex and ", f.emitted());
    }

    @Test
    void finishReleasesHeldTextWhenNoStopCame() {
        StringBuilder streamed = new StringBuilder();
        var f = new Generator.StopStringFilter(List.of("</answer>"), streamed::append);
        f.accept("a </ans");
        f.finish("");
        assertEquals("a </ans", streamed.toString());
    }

    @Test
    void noStopStringsStreamsEverything() {
        StringBuilder streamed = new StringBuilder();
        var f = new Generator.StopStringFilter(List.of(), streamed::append);
        f.accept("abc");
        f.accept("def");
        assertEquals("abcdef", streamed.toString());
    }
}
