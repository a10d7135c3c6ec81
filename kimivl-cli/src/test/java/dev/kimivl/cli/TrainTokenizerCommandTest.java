package dev.kimivl.cli;

import dev.kimivl.text.Tokenizer;
import dev.kimivl.train.tokenizer.BpeTrainer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class TrainTokenizerCommandTest {
    @Test
    void trainsFromFilesAndWritesALoadableTokenizer(@TempDir Path tmp) throws IOException {
        // Over one 1 MiB block, so the file is fed in pieces cut at newlines; CRLF line ends are kept as they are.
        String[] words = {"the", "red", "circle", "blue", "square", "is", "in", "picture", "what", "shape"};
        Random r = new Random(2);
        StringBuilder sb = new StringBuilder();
        while (sb.length() < 1_300_000) {
            for (int k = 0; k < 8; k++) sb.append(k == 0 ? "" : " ").append(words[r.nextInt(words.length)]);
            sb.append(r.nextInt(3) == 0 ? ".\r\n" : "?\n");
        }
        Path a = tmp.resolve("a.txt"), b = tmp.resolve("b.txt");
        Files.writeString(a, sb, StandardCharsets.UTF_8);
        Files.writeString(b, "café 東京 😀\n", StandardCharsets.UTF_8);
        Path out = tmp.resolve("tok");
        CliTest.Run run = CliTest.run("train-tokenizer", "--corpus", a.toString(), b.toString(), "--vocab", "300", "--out", out.toString());
        assertEquals(0, run.exit(), run.err());
        assertTrue(run.out().contains("\"vocab_size\": 576"), run.out());
        assertTrue(run.out().contains("\"media_placeholder_token_id\": 321"), run.out());
        Tokenizer tok = Tokenizer.load(out);
        assertEquals(300, tok.numRanks());
        assertEquals(321, tok.specialId("<|media_pad|>"));
        String s = "What shape is the red circle?\r\n café 東京 😀";
        assertEquals(s, tok.decode(tok.encode(s)));
        assertEquals(1, tok.encode(" circle").length);
        // Block cutting loses nothing: same ranks as training on the whole text at once.
        List<byte[]> whole = BpeTrainer.train(List.of(sb.toString(), "café 東京 😀\n"), 300);
        Tokenizer direct = Tokenizer.create(whole.toArray(byte[][]::new), Tokenizer.KIMI_PATTERN, java.util.Map.of(), "direct");
        for (int i = 0; i < 300; i++) assertArrayEquals(direct.tokenBytes(i), tok.tokenBytes(i), "rank " + i);
    }

    @Test
    void reportsFilesThatAreNotUtf8(@TempDir Path tmp) throws IOException {
        Path bad = tmp.resolve("bad.txt");
        Files.write(bad, new byte[]{'o', 'k', ' ', (byte) 0xC3, (byte) 0x28, '\n'});
        CliTest.Run run = CliTest.run("train-tokenizer", "--corpus", bad.toString(), "--out", tmp.resolve("tok").toString());
        assertEquals(1, run.exit());
        assertTrue(run.err().contains(bad.toString()) && run.err().contains("UTF-8"), run.err());
        run = CliTest.run("train-tokenizer", "--corpus", tmp.resolve("missing.txt").toString(), "--out", tmp.resolve("tok").toString());
        assertEquals(1, run.exit());
        assertTrue(run.err().contains("missing.txt"), run.err());
    }
}
