package dev.kimivl.cli;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static dev.kimivl.cli.CliTest.GOLDEN;
import static dev.kimivl.cli.CliTest.TINY;
import static dev.kimivl.cli.CliTest.run;
import static org.junit.jupiter.api.Assertions.*;

/** Issue 12 item 5: what a new user met on the command line, each a failure before its fix. */
class CliErrorsTest {
    static final Path GGUF = GOLDEN.resolve("gguf");
    static final Path IMAGE = GOLDEN.resolve("c_two_images/image0.png");

    /** The README's promise: exactly one line, naming {@code names}, no Jackson or Java internals. */
    static void oneLine(CliTest.Run r, int exit, String... names) {
        assertEquals(exit, r.exit(), r.err());
        String err = r.err().stripTrailing();
        assertFalse(err.isEmpty(), "no message");
        assertFalse(err.contains("\n"), "more than one line:\n" + r.err());
        assertFalse(err.contains("REDACTED") || err.contains("StreamReadFeature") || err.contains("Exception"), err);
        for (String n : names) assertTrue(err.contains(n), "'" + n + "' not in: " + err);
    }

    static Path copyOfTiny(Path tmp) throws Exception {
        Path m = Files.createDirectories(tmp.resolve("model"));
        try (var files = Files.list(TINY)) {
            for (Path f : files.toList()) Files.copy(f, m.resolve(f.getFileName()));
        }
        return m;
    }

    @Test
    void aGarbageSafetensorsHeaderIsOneLineWithItsPosition(@TempDir Path tmp) throws Exception {
        Path m = copyOfTiny(tmp);
        byte[] json = "{garbage here!!}".getBytes(StandardCharsets.US_ASCII);
        var b = java.nio.ByteBuffer.allocate(8 + json.length).order(java.nio.ByteOrder.LITTLE_ENDIAN).putLong(json.length).put(json);
        Files.write(m.resolve("model.safetensors"), b.array());
        oneLine(run("info", "--model", m.toString()), 1, "model.safetensors", "header JSON", "line 1, column 2");
    }

    @Test
    void aCutOffConfigIsOneLineWithItsPosition(@TempDir Path tmp) throws Exception {
        Path m = copyOfTiny(tmp);
        String cfg = Files.readString(m.resolve("config.json"));
        Files.writeString(m.resolve("config.json"), cfg.substring(0, cfg.length() / 2));
        oneLine(run("info", "--model", m.toString()), 1, "config.json", "Unexpected end-of-input", "line ");
    }

    @Test
    void aUsageMistakeIsOneLineThatPointsAtHelp() {
        oneLine(run("run"), 2, "kimivl run: error: Missing required parameter: 'PROMPT'", "see kimivl run --help");
        oneLine(run("run", "--ctx", "many", "hi"), 2, "'--ctx'", "see kimivl run --help");
        oneLine(run("nosuchcommand"), 2, "'nosuchcommand'", "see kimivl --help");
        oneLine(run("info", "--tensor"), 2, "--tensor", "did you mean", "see kimivl info --help");
    }

    @Test
    void aKimiVlConfigWithoutTextConfigSaysWhatIsMissing(@TempDir Path tmp) throws Exception {
        Path m = copyOfTiny(tmp);
        var mapper = new com.fasterxml.jackson.databind.ObjectMapper();
        var cfg = (com.fasterxml.jackson.databind.node.ObjectNode) mapper.readTree(m.resolve("config.json").toFile());
        assertEquals("kimi_vl", cfg.get("model_type").asText());
        cfg.remove("text_config");
        mapper.writeValue(m.resolve("config.json").toFile(), cfg);
        CliTest.Run r = run("info", "--model", m.toString());
        oneLine(r, 1, "config.json", "'text_config'", "missing");
        assertFalse(r.err().contains("not supported"), r.err());
    }

    @Test
    void aMissingModelDirectorySaysSoAndWhereThePathCameFrom() {
        oneLine(run("info", "--model", "/nonexistent/model"), 1, "--model /nonexistent/model", "no such file or directory");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ModelOption.resolve(null, "/nonexistent/env-model", null));
        assertTrue(e.getMessage().contains("$KIMIVL_MODEL /nonexistent/env-model") && e.getMessage().contains("no such file or directory"), e.getMessage());
        assertEquals(TINY, ModelOption.resolve(null, TINY.toString(), null));
    }

    @Test
    void aMissingImageIsNotFound(@TempDir Path tmp) {
        oneLine(run("run", "--model", TINY.toString(), "-i", tmp.resolve("nothere.png").toString(), "What is this?"), 1, "nothere.png", "not found");
    }

    @Test
    void aContextOfZeroOrLessIsAnError() {
        oneLine(run("run", "--model", TINY.toString(), "--ctx", "0", "hi"), 2, "--ctx must be a positive number of tokens, not 0");
        oneLine(run("run", "--model", TINY.toString(), "--ctx", "-5", "hi"), 2, "--ctx must be a positive number of tokens, not -5");
    }

    @Test
    void aStopAtTheFullContextIsReportedWithoutStats() {
        // the chat-templated "hi" is 39 tokens of the tiny vocabulary: a 42-token context fills after 3 answer tokens
        CliTest.Run r = run("run", "--model", TINY.toString(), "--ctx", "42", "-n", "100", "-t", "0", "hi");
        assertEquals(0, r.exit(), r.err());
        assertTrue(r.err().matches("kimivl run: stopped after \\d+ tokens: the context of 42 tokens is full \\(raise --ctx, up to 4096\\)\\R"), r.err());
        CliTest.Run enough = run("run", "--model", TINY.toString(), "-n", "3", "-t", "0", "hi");
        assertEquals("", enough.err(), "a stop at --max-tokens is not reported");
    }

    @Test
    void tokenizeUsesTheDefaultModelReadsGgufAndStdin(@TempDir Path tmp) throws Exception {
        Path in = tmp.resolve("s.json");
        Files.writeString(in, "[\"Hello there\"]");
        System.setProperty("kimivl.home", TINY.getParent().getParent().toString());
        CliTest.Run dflt, dir;
        try {
            dflt = run("tokenize", "--json", in.toString());
            dir = run("tokenize", "--model", TINY.getParent().getParent().resolve(ModelOption.DEFAULT_RELATIVE).toString(), "--json", in.toString());
        } finally {
            System.clearProperty("kimivl.home");
        }
        if (System.getenv("KIMIVL_MODEL") == null) {
            assertEquals(0, dflt.exit(), dflt.err());
            assertEquals(dir.out(), dflt.out());
        }
        // the golden GGUF's vocabulary (its README) has no merges for plain ASCII text: ids are the byte values
        CliTest.Run gguf = run("tokenize", "--model", GGUF.resolve("text-f32.gguf").toString(), "--json", in.toString());
        assertEquals(0, gguf.exit(), gguf.err());
        assertEquals("[[72,101,108,108,111,32,116,104,101,114,101]]", gguf.out().strip());

        InputStream old = System.in;
        System.setIn(new ByteArrayInputStream("[\"Hello there\"]".getBytes(StandardCharsets.UTF_8)));
        CliTest.Run stdin;
        try {
            stdin = run("tokenize", "--model", GGUF.resolve("text-f32.gguf").toString(), "--json", "-");
        } finally {
            System.setIn(old);
        }
        assertEquals(0, stdin.exit(), stdin.err());
        assertEquals(gguf.out(), stdin.out());
    }

    @Test
    void anImageForAGgufWithoutMmprojSuggestsMmproj() {
        oneLine(run("run", "--model", GGUF.resolve("text-f32.gguf").toString(), "-i", IMAGE.toString(), "What is this?"), 1,
                "text-f32.gguf", "--mmproj");
    }

    @Test
    void theTextGgufGivenAsMmprojIsNamedAsSuch() {
        oneLine(run("run", "--model", GGUF.resolve("text-f32.gguf").toString(), "--mmproj", GGUF.resolve("text-q8_0.gguf").toString(),
                "-i", IMAGE.toString(), "What is this?"), 1, "--mmproj", "text-q8_0.gguf", "text model", "'clip'");
    }

    @Test
    void theImagePixelLimitIsAFlag() {
        CliTest.Run r = run("run", "--model", TINY.toString(), "--max-image-pixels", "1000", "-i", IMAGE.toString(), "What is this?");
        oneLine(r, 1, "image0.png", "57x83", "over the limit of 1000", "--max-image-pixels");
        oneLine(run("run", "--model", TINY.toString(), "--max-image-pixels", "0", "hi"), 2, "--max-image-pixels must be positive");
        assertEquals(0, run("run", "--model", TINY.toString(), "-n", "2", "--max-image-pixels", "4731", "-i", IMAGE.toString(), "hi").exit(),
                "exactly at the limit (57x83) is allowed");
    }

    @Test
    void everyKindOfBadInputIsOneLineNamingIt(@TempDir Path tmp) throws Exception {
        // the inputs a new user meets, each checked by hand first (issue 12): one line naming the file and what is wrong
        Path m = copyOfTiny(tmp);
        byte[] st = Files.readAllBytes(m.resolve("model.safetensors"));
        Files.write(m.resolve("model.safetensors"), java.util.Arrays.copyOf(st, st.length / 2));
        oneLine(run("info", "--model", m.toString()), 1, "model.safetensors", "data_offsets", "past the data section", "truncated");
        Files.write(m.resolve("model.safetensors"), new byte[] {(byte) 0xD8, (byte) 0xC3, 1, 2, 3, 4, 5, (byte) 0xAF, 9, 9, 9, 9});
        oneLine(run("info", "--model", m.toString()), 1, "model.safetensors", "header length", "file size 12 bytes");

        byte[] gguf = Files.readAllBytes(GGUF.resolve("text-q8_0.gguf"));
        Path cut = tmp.resolve("cut.gguf"), cutHeader = tmp.resolve("cut-header.gguf");
        Files.write(cut, java.util.Arrays.copyOf(gguf, gguf.length * 2 / 3));
        Files.write(cutHeader, java.util.Arrays.copyOf(gguf, 300));
        oneLine(run("run", "--model", cut.toString(), "-n", "2", "hi"), 1, "cut.gguf", "tensor '", "truncated");
        oneLine(run("info", "--model", cutHeader.toString()), 1, "cut-header.gguf", "tensor count", "300 bytes");

        Path text = tmp.resolve("notes.png");
        Files.writeString(text, "this is not an image\n");
        oneLine(run("run", "--model", TINY.toString(), "-i", text.toString(), "hi"), 1, "notes.png", "not a recognised image");
        oneLine(run("run", "--model", TINY.toString(), "-i", tmp.toString(), "hi"), 1, tmp.toString(), "Is a directory");
        oneLine(run("info", "--model", text.toString()), 1, "notes.png", "too short for a GGUF file");

        // a 100000 x 100000 PNG header (68 bytes): refused from the header, before any pixel is decoded
        Path huge = tmp.resolve("huge.png");
        Files.write(huge, hugePng());
        oneLine(run("run", "--model", TINY.toString(), "-i", huge.toString(), "hi"), 1, "huge.png", "100000x100000", "over the limit", "--max-image-pixels");

        oneLine(run("run", "--model", TINY.toString(), "--temperature", "abc", "hi"), 2, "'--temperature'", "'abc'", "see kimivl run --help");
        oneLine(run("run", "--model", TINY.toString(), "--ctx", "10", "hi"), 1, "the prompt has 39 tokens but the context holds 10");
        oneLine(run("run", "--model", TINY.toString(), "--mmproj", tmp.resolve("no.gguf").toString(), "hi"), 1, "--mmproj", "no.gguf", "no such file");
    }

    private static byte[] hugePng() {
        java.io.ByteArrayOutputStream png = new java.io.ByteArrayOutputStream();
        png.writeBytes(new byte[] {(byte) 0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'});
        java.nio.ByteBuffer ihdr = java.nio.ByteBuffer.allocate(13).putInt(100_000).putInt(100_000).put((byte) 8).put((byte) 2).put((byte) 0).put((byte) 0).put((byte) 0);
        var deflater = new java.util.zip.Deflater();
        deflater.setInput(new byte[10]);
        deflater.finish();
        byte[] idat = new byte[64];
        idat = java.util.Arrays.copyOf(idat, deflater.deflate(idat));
        chunk(png, "IHDR", ihdr.array());
        chunk(png, "IDAT", idat);
        chunk(png, "IEND", new byte[0]);
        return png.toByteArray();
    }

    private static void chunk(java.io.ByteArrayOutputStream out, String type, byte[] data) {
        byte[] t = type.getBytes(StandardCharsets.US_ASCII);
        var crc = new java.util.zip.CRC32();
        crc.update(t);
        crc.update(data);
        out.writeBytes(java.nio.ByteBuffer.allocate(4).putInt(data.length).array());
        out.writeBytes(t);
        out.writeBytes(data);
        out.writeBytes(java.nio.ByteBuffer.allocate(4).putInt((int) crc.getValue()).array());
    }

    @Test
    void progressWritesPlainLinesWhenStderrIsNotATerminal() {
        ByteArrayOutputStream plain = new ByteArrayOutputStream(), term = new ByteArrayOutputStream();
        ConvertCommand.Bar p = new ConvertCommand.Bar(new PrintStream(plain, true, StandardCharsets.UTF_8), "text  ", false);
        ConvertCommand.Bar t = new ConvertCommand.Bar(new PrintStream(term, true, StandardCharsets.UTF_8), "text  ", true);
        for (int i = 1; i <= 200; i++) {
            p.update("blk." + i + ".weight", i, 200, i * 1_000_000L, 200_000_000L);
            t.update("blk." + i + ".weight", i, 200, i * 1_000_000L, 200_000_000L);
        }
        String s = plain.toString(StandardCharsets.UTF_8);
        assertFalse(s.contains("\r"), s);
        String[] lines = s.split("\\R");
        assertTrue(lines.length >= 2 && lines.length <= 11, lines.length + " lines:\n" + s);
        assertTrue(lines[lines.length - 1].contains("100% 200/200 tensors"), s);
        assertTrue(term.toString(StandardCharsets.UTF_8).contains("\r"), "a terminal still gets the redrawn bar");
    }

    @Test
    void longPromptAndMediaProgressWritePlainLinesWhenStderrIsNotATerminal() {
        // under surefire (and in CI) fd 2 is a pipe; a developer running the test from a terminal gets a skip, said
        org.junit.jupiter.api.Assumptions.assumeFalse(Terminal.stderrIsTerminal(), "stderr is a terminal here: run's progress redraws on purpose");
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        PrintStream old = System.err;
        System.setErr(new PrintStream(err, true, StandardCharsets.UTF_8));
        CliTest.Run r;
        try {
            // a prompt of more than 1024 tokens: run reports the prompt's passes before the first token
            r = run("run", "--model", TINY.toString(), "-n", "1", "-t", "0", "one two three four five six seven eight nine ten ".repeat(120));
        } finally {
            System.setErr(old);
        }
        assertEquals(0, r.exit(), r.err());
        String s = err.toString(StandardCharsets.UTF_8);
        assertTrue(s.matches("(?s).*kimivl: prompt \\d+/\\d+ tokens\\R.*"), "no prompt progress in: " + s);
        assertFalse(s.contains("\r"), s);

        ByteArrayOutputStream media = new ByteArrayOutputStream();
        var report = MediaPrompt.report(new PrintStream(media, true, StandardCharsets.UTF_8), false);
        report.progress("decoding frame 1/8", false);
        report.progress("decoding frame 8/8", true);
        assertEquals("kimivl: decoding frame 1/8" + System.lineSeparator() + "kimivl: decoding frame 8/8" + System.lineSeparator(),
                media.toString(StandardCharsets.UTF_8));
    }

    @Test
    void theReadmesKvCacheSentenceNamesCommandsThatTakeIt() throws Exception {
        // the README once said every --model command takes --kv-cache, and convert did not: now it names them
        String readme = Files.readString(Path.of("../README.md")).replaceAll("\\s+", " ");
        Matcher m = Pattern.compile("The commands that run the model \\(([^)]*)\\) take `--kv-cache").matcher(readme);
        assertTrue(m.find(), "the README's --kv-cache sentence is gone");
        Matcher names = Pattern.compile("`([a-z-]+)`").matcher(m.group(1));
        var subcommands = Main.commandLine().getSubcommands();
        int n = 0;
        while (names.find()) {
            var c = subcommands.get(names.group(1));
            assertNotNull(c, "the README names a command that does not exist: " + names.group(1));
            assertNotNull(c.getCommandSpec().findOption("--kv-cache"), "the README says " + names.group(1) + " takes --kv-cache");
            n++;
        }
        assertTrue(n >= 4, m.group(1));
        assertNull(subcommands.get("convert").getCommandSpec().findOption("--kv-cache"));
        assertTrue(readme.contains("`convert` runs no model, so it has none"), "the README says why convert has no --kv-cache");
    }

    @Test
    void theReadmeCommandTableListsEveryCommandAndEveryRunOption() throws Exception {
        String readme = Files.readString(Path.of("../README.md"));
        Matcher section = Pattern.compile("(?s)\\R## Commands\\R(.*?)\\R## ").matcher(readme);
        assertTrue(section.find(), "no '## Commands' section");
        String commands = section.group(1);
        for (String name : Main.commandLine().getSubcommands().keySet()) {
            if (name.equals("help")) continue;
            assertTrue(commands.contains("| `kimivl " + name), "the README's command table leaves out " + name);
        }
        // run's own options are in its row; the shared --model/--mmproj/--kv-cache in the paragraph after the table
        for (var o : new picocli.CommandLine(new RunCommand()).getCommandSpec().options()) {
            String longest = o.longestName();
            if (longest.equals("--help") || longest.equals("--version")) continue;
            assertTrue(commands.contains(longest), "the README's Commands section leaves out run's " + longest);
        }
    }
}
