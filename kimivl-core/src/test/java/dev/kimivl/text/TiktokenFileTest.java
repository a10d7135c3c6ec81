package dev.kimivl.text;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

class TiktokenFileTest {
    /** The 256 single bytes as valid lines 1..256; a test appends its bad line as line 257 or later. */
    static List<String> validLines() {
        List<String> lines = new ArrayList<>();
        for (int b = 0; b < 256; b++) lines.add(Base64.getEncoder().encodeToString(new byte[] {(byte) b}) + " " + b);
        return lines;
    }

    static String loadError(Path dir, List<String> lines) throws IOException {
        Files.write(dir.resolve("tiktoken.model"), lines);
        var e = assertThrows(IllegalArgumentException.class, () -> Tokenizer.load(dir));
        return e.getMessage();
    }

    static void assertNames(String message, Path dir, String line, String what) {
        assertTrue(message.startsWith(dir.resolve("tiktoken.model") + line), message);
        assertTrue(message.contains(what), message);
    }

    @Test
    void validFileLoads(@TempDir Path dir) throws IOException {
        List<String> lines = validLines();
        lines.add("");  // blank lines are skipped, as tiktoken does
        lines.add(Base64.getEncoder().encodeToString("ab".getBytes()) + " 256");
        Files.write(dir.resolve("tiktoken.model"), lines);
        Tokenizer t = Tokenizer.load(dir);
        assertEquals(257, t.numRanks());
        assertArrayEquals(new int[] {256, 'c'}, t.encode("abc"));
        assertEquals(257 + 21, t.specialId("<|media_pad|>"));
    }

    @Test
    void wrongFieldCount(@TempDir Path dir) throws IOException {
        List<String> lines = validLines();
        lines.add("YWI= 256 extra");
        assertNames(loadError(dir, lines), dir, ":257:", "found 3 field(s)");
        lines.set(256, "YWI=");
        assertNames(loadError(dir, lines), dir, ":257:", "found 1 field(s)");
    }

    @Test
    void badBase64(@TempDir Path dir) throws IOException {
        List<String> lines = validLines();
        lines.set(9, "!!notbase64 9");
        assertNames(loadError(dir, lines), dir, ":10:", "not valid base64");
    }

    @Test
    void badRank(@TempDir Path dir) throws IOException {
        List<String> lines = validLines();
        lines.add("YWI= twelve");
        assertNames(loadError(dir, lines), dir, ":257:", "\"twelve\" is not an integer");
        lines.set(256, "YWI= -4");
        assertNames(loadError(dir, lines), dir, ":257:", "negative");
    }

    @Test
    void duplicateRank(@TempDir Path dir) throws IOException {
        List<String> lines = validLines();
        lines.add("YWI= 7");
        assertNames(loadError(dir, lines), dir, ":257:", "rank 7 already appeared at line 8");
    }

    @Test
    void gapInRanks(@TempDir Path dir) throws IOException {
        List<String> lines = validLines();
        lines.add("YWI= 300");
        assertNames(loadError(dir, lines), dir, ":", "rank 256 is missing");
    }

    @Test
    void duplicateBytes(@TempDir Path dir) throws IOException {
        List<String> lines = validLines();
        lines.add("YQ== 256");  // "a" again
        assertNames(loadError(dir, lines), dir, ":", "ranks 97 and 256 have the same bytes");
    }

    @Test
    void missingSingleByte(@TempDir Path dir) throws IOException {
        List<String> lines = validLines();
        lines.set(200, Base64.getEncoder().encodeToString("xy".getBytes()) + " 200");
        assertNames(loadError(dir, lines), dir, ":", "0xc8 has no rank");
    }

    @Test
    void emptyFile(@TempDir Path dir) throws IOException {
        assertNames(loadError(dir, List.of()), dir, ":", "no ranks");
    }
}
