package dev.kimivl.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Base64;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

class TokenizeCommandTest {
    /** A tiny vocabulary: the 256 bytes (rank = byte value) plus "ab" (256) and "abc" (257). */
    static Path model(Path dir) throws Exception {
        List<String> lines = new ArrayList<>();
        for (int b = 0; b < 256; b++) lines.add(Base64.getEncoder().encodeToString(new byte[] {(byte) b}) + " " + b);
        lines.add(Base64.getEncoder().encodeToString("ab".getBytes()) + " 256");
        lines.add(Base64.getEncoder().encodeToString("abc".getBytes()) + " 257");
        Path m = Files.createDirectories(dir.resolve("model"));
        Files.write(m.resolve("tiktoken.model"), lines);
        return m;
    }

    record Result(int code, String out, String err) {}

    static Result run(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        CommandLine cl = new CommandLine(new TokenizeCommand());
        cl.setOut(new PrintWriter(out));
        cl.setErr(new PrintWriter(err));
        int code = cl.execute(args);
        return new Result(code, out.toString(), err.toString());
    }

    @Test
    void printsOneIdArrayPerString(@TempDir Path dir) throws Exception {
        Path m = model(dir);
        Path input = dir.resolve("in.json");
        Files.writeString(input, "[\"abc\", \"abab\", \"\", \"x<|im_end|>\"]");
        Result r = run("--model", m.toString(), "--json", input.toString());
        assertEquals(0, r.code(), r.err());
        JsonNode ids = new ObjectMapper().readTree(r.out());
        // Specials follow the last rank (257): <|im_end|> is 258 + 2.
        assertEquals(new ObjectMapper().readTree("[[257],[256,256],[],[120,260]]"), ids);
    }

    @Test
    void reportsBadInput(@TempDir Path dir) throws Exception {
        Path m = model(dir);
        Path input = dir.resolve("in.json");
        Files.writeString(input, "[\"ok\", 3]");
        Result r = run("--model", m.toString(), "--json", input.toString());
        assertEquals(1, r.code());
        assertTrue(r.err().contains("element 1 is NUMBER"), r.err());

        Files.writeString(input, "{\"a\": 1}");
        assertTrue(run("--model", m.toString(), "--json", input.toString()).err().contains("must hold a JSON array"));

        Files.writeString(input, "[\"ok\"]");
        r = run("--model", dir.resolve("nowhere").toString(), "--json", input.toString());
        assertEquals(1, r.code());
        assertTrue(r.err().contains("nowhere: no such file or directory"), r.err());

        r = run("--model", Files.createDirectories(dir.resolve("empty")).toString(), "--json", input.toString());
        assertEquals(1, r.code());
        assertTrue(r.err().contains("tiktoken.model"), r.err());
    }
}
