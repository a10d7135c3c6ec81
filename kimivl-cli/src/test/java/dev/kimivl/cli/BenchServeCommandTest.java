package dev.kimivl.cli;

import org.junit.jupiter.api.Test;
import picocli.CommandLine;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;

import static org.junit.jupiter.api.Assertions.*;

/** kimivl bench-serve on the repo's tiny model, served in process: one table row per concurrency level. */
class BenchServeCommandTest {
    @Test
    void printsARowPerConcurrencyLevel() {
        CommandLine cl = Main.commandLine();
        StringWriter err = new StringWriter();
        cl.setErr(new PrintWriter(err, true));
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        PrintStream old = System.out;
        int exit;
        try {
            System.setOut(new PrintStream(out, true, StandardCharsets.UTF_8));
            exit = cl.execute("bench-serve", "--model", "../models/tiny-random", "-c", "1,2", "--rounds", "1", "-n", "4", "--no-warmup",
                    "--image", "../examples/shapes.png");
        } finally {
            System.setOut(old);
        }
        String text = out.toString(StandardCharsets.UTF_8);
        assertEquals(0, exit, text + err);
        assertTrue(text.contains("tok/s  ttft p50"), text);
        assertTrue(text.lines().anyMatch(l -> l.startsWith("   1        1      0 ")), text);
        assertTrue(text.lines().anyMatch(l -> l.startsWith("   2        2      0 ") && l.endsWith("x C=1")), text);
    }

    @Test
    void badValuesAreNamed() {
        CommandLine cl = Main.commandLine();
        StringWriter err = new StringWriter();
        cl.setErr(new PrintWriter(err, true));
        assertEquals(1, cl.execute("bench-serve", "--url", "http://127.0.0.1:1", "-c", "0"));
        assertTrue(err.toString().contains("--concurrency values must be in 1..1024, got 0"), err.toString());
    }
}
