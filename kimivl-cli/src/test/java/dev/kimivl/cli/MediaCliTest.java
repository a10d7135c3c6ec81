package dev.kimivl.cli;

import dev.kimivl.media.testing.MediaFixtures;
import static dev.kimivl.media.testing.MediaFixtures.makePdf;
import static dev.kimivl.media.testing.MediaFixtures.makeVideo;
import static dev.kimivl.media.testing.MediaFixtures.meanDiff;
import dev.kimivl.model.KimiVL;
import dev.kimivl.text.ChatMessage;
import dev.kimivl.vision.ImagePreprocessor;
import dev.kimivl.vision.LoadedImage;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/**
 * `kimivl run --video / --pdf` (issue 16): the user message holds one image block per frame or page, in order, with
 * their labels; frames shrink to fit the context, with a note; what cannot fit is an error naming the sizes.
 */
class MediaCliTest {
    /** kimivl-media's committed test clip: 100x60, 10 fps, 40 frames; frameN.png are ffmpeg's pictures of it. */
    static final Path VIDEO = Path.of("../kimivl-media/src/test/resources/video").toAbsolutePath().normalize();
    static KimiVL model;

    @BeforeAll static void open() { model = KimiVL.open(CliTest.TINY); }

    @AfterAll static void close() { model.close(); }

    /** Parses run's media options as the command line would. */
    static MediaOptions options(String... args) {
        RunCommand run = new RunCommand();
        new CommandLine(run).parseArgs(concat(args, "prompt"));
        run.media.check(run.spec);
        return run.media;
    }

    static String[] concat(String[] a, String... b) {
        String[] out = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }

    record Result(MediaPrompt.Built built, String err) {}

    static Result build(int context, String... args) {
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        MediaPrompt.Built b = MediaPrompt.build(model, options(args), null, List.of(), "What happens?", context, 64,
                Long.MAX_VALUE, new PrintStream(err, true, StandardCharsets.UTF_8));
        return new Result(b, err.toString(StandardCharsets.UTF_8));
    }

    /** The user message's parts as a string: I for an image block, the text of a text part in quotes. */
    static String layout(MediaPrompt.Built b) {
        List<String> out = new ArrayList<>();
        for (ChatMessage.Part p : b.messages().getLast().parts()) {
            out.add(p instanceof ChatMessage.TextPart t ? "'" + t.text() + "'" : "I");
        }
        return String.join(" ", out);
    }

    static int tokens(LoadedImage im) {
        return ImagePreprocessor.tokensFor(im.width(), im.height(), model.vision().preprocessorConfig());
    }

    @Test
    void eachSampledFrameIsAnImageBlockWithItsTimestamp() throws IOException {
        Result r = build(4096, "--video", VIDEO.resolve("clip.mp4").toString(), "--frames", "4");
        assertEquals("'Frame at 00:00:' I 'Frame at 00:01:' I 'Frame at 00:02:' I 'Frame at 00:03:' I 'What happens?'", layout(r.built()));
        assertEquals(4, r.built().images().size());
        int[] frames = {5, 15, 25, 35};                 // the centres of four equal parts of 40 frames
        for (int i = 0; i < 4; i++) {
            LoadedImage im = r.built().images().get(i);
            assertEquals(100, im.width(), "small frames are kept at their size");
            double d = meanDiff(im, VIDEO.resolve("frame" + frames[i] + ".png"));
            assertTrue(d < 3, "frame " + frames[i] + " differs from ffmpeg's by " + d);
        }
        assertTrue(r.err().contains("frame 4/4"), "progress on stderr: " + r.err());
        KimiVL.Prompt p = model.prompt(r.built().messages(), r.built().images());
        assertEquals(List.of(12, 12, 12, 12), model.imageTokenCounts(p), "4 blocks of (100/28 rounded up = 4) x 3 tokens");
        assertEquals(p.ids().length, r.built().promptTokens(), "the size the budget was computed for is the prompt's");
    }

    @Test
    void framesCanGoUnlabelled() {
        Result r = build(4096, "--video", VIDEO.resolve("clip.mp4").toString(), "--fps", "0.5", "--no-timestamps");
        assertEquals("I I 'What happens?'", layout(r.built()));
    }

    @Test
    void aLongerVideoSpreadsTheMaximumAndShrinksFramesToTheContext(@TempDir Path tmp) throws IOException {
        Path video = makeVideo(tmp.resolve("long.mp4"), 448, 336, 120, 10);     // 12 s, 16x12 = 192 tokens a frame
        Result r = build(1024, "--video", video.toString(), "--fps", "2", "--max-frames", "16");
        assertTrue(r.err().contains("--fps 2 would take 24 frames of long.mp4 (00:12 long); taking 16 spread over the whole video"), r.err());
        assertEquals(16, r.built().images().size());
        int per = tokens(r.built().images().getFirst());
        assertTrue(per < 192 && per >= 16, "frames shrunk to share the context: " + per + " tokens each");
        assertTrue(r.err().contains("16 frames of long.mp4 at " + per + " image tokens each (--frame-tokens 256 would not fit the context of 1024 tokens)"), r.err());
        assertTrue(r.built().promptTokens() <= 1024 - 64, "prompt " + r.built().promptTokens() + " leaves room for the answer");
        assertTrue(layout(r.built()).endsWith("'Frame at 00:11:' I 'What happens?'"), "the last frame is from the end: " + layout(r.built()));
        // the frames follow the video: the colour of frame k is its hue, so consecutive frames differ
        assertNotEquals(java.util.Arrays.hashCode(r.built().images().get(0).pixels()), java.util.Arrays.hashCode(r.built().images().get(1).pixels()));
    }

    @Test
    void tooManyFramesForTheContextIsAnErrorNotACut() {
        var e = assertThrows(dev.kimivl.media.MediaException.class,
                () -> build(300, "--video", VIDEO.resolve("clip.mp4").toString(), "--fps", "10"));
        assertTrue(e.getMessage().contains("40 frames need at least 16 image tokens each (640), but the context of 300 tokens leaves"), e.getMessage());
        CliTest.Run run = CliTest.run("run", "--model", CliTest.TINY.toString(), "--ctx", "300", "-n", "4", "--video", VIDEO.resolve("clip.mp4").toString(), "--fps", "10", "hi");
        assertEquals(1, run.exit(), run.err());
        assertTrue(run.err().contains("use fewer --frames, a lower --fps or --max-frames, or a larger --ctx"), run.err());
    }

    @Test
    void sixtyFourFramesRunEndToEnd(@TempDir Path tmp) throws IOException {
        Path video = makeVideo(tmp.resolve("many.mp4"), 56, 56, 70, 10);
        ByteArrayOutputStream stderr = new ByteArrayOutputStream();
        PrintStream old = System.err;                  // progress and --stats go to the process's stderr
        System.setErr(new PrintStream(stderr, true, StandardCharsets.UTF_8));
        CliTest.Run r;
        try {
            r = CliTest.run("run", "--model", CliTest.TINY.toString(), "-n", "2", "--seed", "1", "--stats", "--video", video.toString(), "--frames", "64", "Count the frames.");
        } finally {
            System.setErr(old);
        }
        String err = stderr.toString(StandardCharsets.UTF_8);
        assertEquals(0, r.exit(), r.err() + err);
        // the last line counts every frame; its time is the frame that finished last, which with one decoder per core
        // is any of the last runs' frames (CI saw 00:03), so only the count and the length are fixed
        assertTrue(err.matches("(?s).*kimivl: decoding many\\.mp4: frame 64/64 \\(00:0\\d of 00:07\\)\\R.*"), err);
        assertTrue(err.lines().filter(l -> l.contains("decoding")).count() <= 11, "about ten progress lines in a log, not 64: " + err);
        // 64 blocks of 2x2 tokens, their "Frame at" labels and the template
        int prompt = Integer.parseInt(err.replaceAll("(?s).*kimivl: prompt (\\d+) tokens \\(.*", "$1"));
        assertTrue(prompt > 64 * 4 + 64, err);
    }

    @Test
    void pdfPagesAreImageBlocksInTheRangeAsked(@TempDir Path tmp) throws IOException {
        Path pdf = makePdf(tmp.resolve("doc.pdf"));
        Result r = build(4096, "--pdf", pdf.toString(), "--pages", "2-3", "--dpi", "36");
        assertEquals("'Page 2:' I 'Page 3:' I 'What happens?'", layout(r.built()));
        LoadedImage p2 = r.built().images().get(0), p3 = r.built().images().get(1);
        assertEquals(List.of(300, 150), List.of(p2.width(), p2.height()), "page 2: 600x300 pt at 36 dpi");
        assertEquals(List.of(150, 300), List.of(p3.width(), p3.height()), "page 3: 300x600 pt at 36 dpi");
        assertEquals(0xFF0000, rgb(p2, 10, 10), "page 2 is red");
        assertEquals(0x0000FF, rgb(p3, 10, 10), "page 3 is blue");
        KimiVL.Prompt p = model.prompt(r.built().messages(), r.built().images());
        assertEquals(List.of(11 * 6, 6 * 11), model.imageTokenCounts(p));
        // --page-tokens shrinks each page to its budget
        Result small = build(4096, "--pdf", pdf.toString(), "--pages", "1", "--page-tokens", "8");
        assertTrue(tokens(small.built().images().getFirst()) <= 8);
    }

    @Test
    void pagesThatDoNotFitAreAnErrorNamingPagesTokensAndContext(@TempDir Path tmp) throws IOException {
        Path pdf = makePdf(tmp.resolve("doc.pdf"));
        var e = assertThrows(dev.kimivl.media.MediaException.class, () -> build(600, "--pdf", pdf.toString(), "--dpi", "72"));
        assertTrue(e.getMessage().matches(".*doc.pdf: 3 pages \\(all\\) at 72 dpi \\(up to 242 tokens a page\\) need 605 image tokens, but the context of 600 tokens leaves \\d+ after .*choose fewer --pages, a lower --dpi or --page-tokens, or a larger --ctx"), e.getMessage());
        var range = assertThrows(IllegalArgumentException.class, () -> build(4096, "--pdf", pdf.toString(), "--pages", "2-7"));
        assertTrue(range.getMessage().matches("--pages for .*doc.pdf: page range '2-7': the document has 3 pages"), range.getMessage());
    }

    @Test
    void mediaOptionsAreCheckedBeforeTheModelLoads() {
        for (String[] bad : new String[][]{{"--frames", "3"}, {"--pages", "1"}, {"--video", "x.mp4", "--frames", "2", "--fps", "1"},
                {"--video", "x.mp4", "--frames", "100"}, {"--video", "x.mp4", "--fps", "0"}, {"--pdf", "x.pdf", "--dpi", "0"}}) {
            CliTest.Run r = CliTest.run(concat(concat(new String[]{"run", "--model", "/nonexistent"}, bad), "hi"));
            assertEquals(2, r.exit(), String.join(" ", bad) + ": " + r.err());
            assertTrue(r.err().contains("see kimivl run --help"), r.err());
        }
    }

    @Test
    void imagesThenPagesThenFramesThenText(@TempDir Path tmp) throws IOException {
        Path pdf = makePdf(tmp.resolve("doc.pdf"));
        LoadedImage image = LoadedImage.ofRgb("i.png", 56, 56, new int[56 * 56]);
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        MediaPrompt.Built b = MediaPrompt.build(model, options("--pdf", pdf.toString(), "--pages", "1", "--dpi", "36",
                        "--video", VIDEO.resolve("clip.mp4").toString(), "--frames", "2"), "Be brief.", List.of(image), "Compare.",
                4096, 64, Long.MAX_VALUE, new PrintStream(err, true, StandardCharsets.UTF_8));
        assertEquals("I 'Page 1:' I 'Frame at 00:01:' I 'Frame at 00:03:' I 'Compare.'", layout(b));
        assertEquals("system", b.messages().getFirst().role());
        assertSame(image, b.images().getFirst());
        assertEquals(List.of(150, 150), List.of(b.images().get(1).width(), b.images().get(1).height()), "page 1: 300x300 pt at 36 dpi");
        KimiVL.Prompt p = model.prompt(b.messages(), b.images());
        assertEquals(List.of(4, 36, 12, 12), model.imageTokenCounts(p));
        assertEquals(p.ids().length, b.promptTokens());
    }

    @Test
    void aMissingFileIsNamedBeforeTheModelLoads() {
        CliTest.Run r = CliTest.run("run", "--model", "/nonexistent", "--video", "/nonexistent/clip.mp4", "hi");
        assertEquals(1, r.exit(), r.err());
        assertTrue(r.err().contains("--video /nonexistent/clip.mp4: no such file"), r.err());
        r = CliTest.run("run", "--model", "/nonexistent", "--pdf", "/nonexistent/doc.pdf", "hi");
        assertTrue(r.err().contains("--pdf /nonexistent/doc.pdf: no such file"), r.err());
    }

    static int rgb(LoadedImage im, int x, int y) {
        byte[] p = im.pixels();
        int o = (y * im.width() + x) * 3;
        return (p[o] & 0xFF) << 16 | (p[o + 1] & 0xFF) << 8 | (p[o + 2] & 0xFF);
    }

}
