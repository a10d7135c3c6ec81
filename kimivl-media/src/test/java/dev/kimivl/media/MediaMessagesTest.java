package dev.kimivl.media;

import dev.kimivl.model.KimiVL;
import dev.kimivl.text.ChatMessage;
import dev.kimivl.vision.LoadedImage;
import org.apache.pdfbox.pdmodel.PDDocument;
import org.apache.pdfbox.pdmodel.PDPage;
import org.apache.pdfbox.pdmodel.common.PDRectangle;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CancellationException;

import static org.junit.jupiter.api.Assertions.*;

/**
 * MediaMessages over a whole conversation (what kimivl chat and the LangChain4j models give it): earlier turns,
 * their images and frames count against the context exactly, to the token; several videos share the frames' room;
 * layout decodes nothing; a cancel stops decoding. kimivl run's single-message use is tested in kimivl-cli's
 * MediaCliTest.
 */
class MediaMessagesTest {
    static final Path CLIP = VideoTest.CLIP;             // 100x60, 10 fps, 40 frames: 4x3 = 12 tokens a frame
    static KimiVL model;

    @BeforeAll static void open() { model = KimiVL.open(Path.of("../models/tiny-random")); }

    @AfterAll static void close() { model.close(); }

    static MediaMessages.Clip clip(int frames) {
        return new MediaMessages.Clip(MediaMessages.Source.of(CLIP), FrameSampling.frames(frames, 64), 256, true);
    }

    /** An earlier turn with an image and a video, the answer, then a new message with another video. */
    static List<MediaMessages.Draft> conversation() {
        LoadedImage image = LoadedImage.ofRgb("grey.png", 112, 84, new int[112 * 84]);
        return List.of(
                MediaMessages.Draft.of("system", new MediaMessages.Text("Be brief.")),
                MediaMessages.Draft.of("user", new MediaMessages.Image(image, "grey.png"), clip(4), new MediaMessages.Text("What happens?")),
                MediaMessages.Draft.of("assistant", new MediaMessages.Text("A colour changes.")),
                MediaMessages.Draft.of("user", clip(4), new MediaMessages.Text("And here?")));
    }

    static MediaMessages.Built build(List<MediaMessages.Draft> c, int context) {
        return MediaMessages.build(model, c, context, MediaMessages.answerRoom(10, context), Long.MAX_VALUE, MediaMessages.Knobs.CLI, MediaMessages.Report.NONE);
    }

    @Test
    void theWholeConversationCountsToTheToken() {
        MediaMessages.Built roomy = build(conversation(), 4096);
        int prompt = roomy.promptTokens();
        assertEquals(model.prompt(roomy.messages(), roomy.images()).ids().length, prompt, "the size it was computed for is the prompt's");
        assertEquals(9, roomy.images().size(), "the image and 2 x 4 frames");
        assertEquals(List.of("grey.png", CLIP + "#t=0.5", CLIP + "#t=1.5", CLIP + "#t=2.5", CLIP + "#t=3.5"), roomy.origins().subList(0, 5));
        assertEquals("'Frame at 00:00:' I 'Frame at 00:01:' I 'Frame at 00:02:' I 'Frame at 00:03:' I 'And here?'", layout(roomy.messages().getLast()));
        assertEquals("A colour changes.", roomy.messages().get(2).text());

        // exactly enough room: the 8 frames keep their 12 tokens; one token less and they would drop below a frame's
        // own size: an error naming the frames and the context, never a frame dropped
        assertEquals(prompt, build(conversation(), prompt + 10).promptTokens());
        var e = assertThrows(MediaException.class, () -> build(conversation(), prompt + 9));
        assertTrue(e.getMessage().startsWith(CLIP + ": 4 frames (of 8 in all) need at least 16 image tokens each (128), but the context of "
                + (prompt + 9) + " tokens leaves 95 after"), e.getMessage());
    }

    @Test
    void pagesThatDoNotFitBesideTheFramesAreAnError(@TempDir Path tmp) throws IOException {
        Path pdf = tmp.resolve("doc.pdf");
        try (PDDocument doc = new PDDocument()) {
            for (int i = 0; i < 2; i++) doc.addPage(new PDPage(new PDRectangle(200, 200)));    // 400x400 px at 144 dpi: 15x15 tokens
            doc.save(pdf.toFile());
        }
        List<MediaMessages.Draft> c = new ArrayList<>(conversation());
        c.set(3, MediaMessages.Draft.of("user", MediaMessages.Pdf.of(MediaMessages.Source.of(pdf)), clip(4), new MediaMessages.Text("And here?")));
        MediaMessages.Built b = build(c, 4096);
        assertEquals("'Page 1:' I 'Page 2:' I 'Frame at 00:00:' I 'Frame at 00:01:' I 'Frame at 00:02:' I 'Frame at 00:03:' I 'And here?'", layout(b.messages().getLast()));
        assertEquals(pdf + "#page=2", b.origins().get(6));
        var e = assertThrows(MediaException.class, () -> build(c, 600));
        assertTrue(e.getMessage().matches(".*doc\\.pdf: 2 pages \\(all\\) at 144 dpi \\(up to 225 tokens a page\\) need 450 image tokens, but the context of 600 tokens .*"
                + "and the video's frames \\(8 x 16 at least\\): choose fewer --pages, a lower --dpi or --page-tokens, or a larger --ctx"), e.getMessage());
    }

    @Test
    void layoutDecodesNothingAndACancelStopsDecoding() {
        List<String> progress = new ArrayList<>();
        MediaMessages.Report cancelling = new MediaMessages.Report() {
            @Override public void note(String text) {}
            @Override public void progress(String text, boolean last) { progress.add(text); }
            @Override public boolean cancelled() { return true; }
        };
        List<MediaMessages.Draft> c = conversation();
        try (MediaMessages.Layout l = MediaMessages.layout(model, c, 4096, 10, Long.MAX_VALUE, MediaMessages.Knobs.CLI, cancelling)) {
            assertEquals("clip.mp4: 4 frames of 40 (00:04 long, 100x60)", l.describe(c.get(3).items().getFirst()));
            assertEquals(8, l.frameCount());
            assertTrue(progress.isEmpty(), "nothing decoded yet: " + progress);
            var e = assertThrows(CancellationException.class, () -> l.decode(cancelling));
            assertEquals("stopped while decoding clip.mp4", e.getMessage());
        }
    }

    static String layout(ChatMessage m) {
        List<String> out = new ArrayList<>();
        for (ChatMessage.Part p : m.parts()) out.add(p instanceof ChatMessage.TextPart t ? "'" + t.text() + "'" : "I");
        return String.join(" ", out);
    }
}
