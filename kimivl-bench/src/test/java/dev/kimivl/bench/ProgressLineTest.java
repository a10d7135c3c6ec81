package dev.kimivl.bench;

import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;

import static org.junit.jupiter.api.Assertions.*;

/** The random model generators' progress: \r frames only on a terminal, plain lines in a log or a pipe (issue 12). */
class ProgressLineTest {
    private static String run(boolean redraw, PrintStream[] holder, ByteArrayOutputStream bytes) {
        ProgressLine line = new ProgressLine(holder[0], redraw, 0);
        for (long done = 0; done <= 1000; done += 7) line.show("  " + done / 10 + "% ", done, 1000, false);
        line.show("  100% ", 1000, 1000, true);
        line.end();
        return bytes.toString(StandardCharsets.UTF_8);
    }

    @Test
    void aPipeOrLogGetsPlainLinesAtEveryTenthAndTheEnd() {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        String s = run(false, new PrintStream[] {new PrintStream(bytes, true, StandardCharsets.UTF_8)}, bytes);
        assertFalse(s.contains("\r"), s);
        String[] lines = s.split("\n");
        assertEquals(11, lines.length, s);                  // 0%, 10%, ..., 90%, and the end
        assertEquals("0%", lines[0]);
        assertEquals("100%", lines[10]);
        assertTrue(s.endsWith("\n"), "the last line is ended");
    }

    @Test
    void aTerminalGetsOneRedrawnLineEndedOnce() {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        String s = run(true, new PrintStream[] {new PrintStream(bytes, true, StandardCharsets.UTF_8)}, bytes);
        assertTrue(s.startsWith("\r"), s);
        assertEquals(1, s.chars().filter(c -> c == '\n').count(), s);
        assertTrue(s.endsWith("\r  100% \n"), s);
    }

    @Test
    void aStreamThatIsNotStderrNeverRedraws() {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        ProgressLine line = new ProgressLine(new PrintStream(bytes, true, StandardCharsets.UTF_8), 0);
        line.show("half", 1, 2, false);
        line.end();
        assertEquals("half\n", bytes.toString(StandardCharsets.UTF_8).replace(System.lineSeparator(), "\n"));
    }
}
