package dev.kimivl.server;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.kimivl.media.FrameSampling;
import dev.kimivl.media.MediaMessages;
import dev.kimivl.media.testing.MediaFixtures;
import dev.kimivl.model.KimiVL;
import dev.kimivl.vision.ImageLoader;
import org.apache.pdfbox.pdmodel.PDDocument;
import org.apache.pdfbox.pdmodel.PDPage;
import org.apache.pdfbox.pdmodel.common.PDRectangle;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collections;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/** video_url and file content parts (issue 16) through the HTTP API, on the tiny-random model. */
class MediaPartsTest {
    static final ObjectMapper JSON = new ObjectMapper();
    static final Path CLIP = Path.of("../kimivl-media/src/test/resources/video/clip.mp4").toAbsolutePath().normalize();
    static KimiVL model;
    static OpenAiServer server;
    static HttpClient client;

    @BeforeAll
    static void start() throws Exception {
        model = KimiVL.open(Path.of("../models/tiny-random"));
        server = new OpenAiServer(model, new ServerDefaults("tiny-random", 4, 0.0, 0), "127.0.0.1", 0);
        server.start();
        client = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
    }

    @AfterAll
    static void stop() {
        server.close();
        model.close();
    }

    @AfterEach
    void noLocalFiles() { MediaParts.allowDirectories(List.of()); }

    static HttpResponse<String> chat(String parts) throws Exception {
        String body = "{\"max_tokens\": 2, \"temperature\": 0, \"messages\": [{\"role\": \"user\", \"content\": [" + parts + ", {\"type\": \"text\", \"text\": \"What is shown?\"}]}]}";
        return client.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + server.port() + "/v1/chat/completions"))
                .timeout(Duration.ofSeconds(120)).header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofString());
    }

    static int promptTokens(HttpResponse<String> r) throws Exception {
        assertEquals(200, r.statusCode(), r.body());
        return JSON.readTree(r.body()).at("/usage/prompt_tokens").asInt();
    }

    static JsonNode error(HttpResponse<String> r, int status) throws Exception {
        assertEquals(status, r.statusCode(), r.body());
        return JSON.readTree(r.body()).get("error");
    }

    static String dataUrl(String mime, byte[] bytes) { return "data:" + mime + ";base64," + Base64.getEncoder().encodeToString(bytes); }

    static byte[] pdf(int pages) throws Exception {
        try (PDDocument doc = new PDDocument(); ByteArrayOutputStream out = new ByteArrayOutputStream()) {
            for (int i = 0; i < pages; i++) doc.addPage(new PDPage(new PDRectangle(280, 140)));
            doc.save(out);
            return out.toByteArray();
        }
    }

    @Test
    void aVideoPartBecomesItsFramesEachAnImage() throws Exception {
        String url = dataUrl("video/mp4", Files.readAllBytes(CLIP));
        int two = promptTokens(chat("{\"type\": \"video_url\", \"video_url\": {\"url\": \"" + url + "\", \"frames\": 2, \"timestamps\": false}}"));
        int four = promptTokens(chat("{\"type\": \"video_url\", \"video_url\": {\"url\": \"" + url + "\", \"frames\": 4, \"timestamps\": false}}"));
        // each 100x60 frame is one image of 4x3 merged tokens plus the template's media start/end tokens
        assertTrue(four - two >= 2 * 12, "two more frames add " + (four - two) + " tokens");
        int labelled = promptTokens(chat("{\"type\": \"video_url\", \"video_url\": {\"url\": \"" + url + "\", \"frames\": 4}}"));
        assertTrue(labelled > four + 4, "'Frame at mm:ss:' labels add text: " + labelled + " vs " + four);
    }

    @Test
    void aPdfFilePartBecomesItsPages() throws Exception {
        String url = dataUrl("application/pdf", pdf(3));
        int one = promptTokens(chat("{\"type\": \"file\", \"file\": {\"file_data\": \"" + url + "\", \"filename\": \"a.pdf\", \"pages\": \"2\", \"dpi\": 72}}"));
        int three = promptTokens(chat("{\"type\": \"file\", \"file\": {\"file_data\": \"" + url + "\", \"filename\": \"a.pdf\", \"dpi\": 72}}"));
        assertTrue(three - one >= 2 * 50, "a 280x140 page is 10x5 image tokens: " + one + " vs " + three);
        JsonNode e = error(chat("{\"type\": \"file\", \"file\": {\"file_data\": \"" + url + "\", \"pages\": \"2-9\"}}"), 400);
        assertEquals("messages[0].content[0].file.pages", e.get("param").asText());
        assertTrue(e.get("message").asText().contains("the document has 3 pages"), e.toString());
    }

    @Test
    void localPathsOnlyUnderAnAllowedDirectory(@TempDir Path tmp) throws Exception {
        Path video = Files.copy(CLIP, tmp.resolve("clip.mp4"));
        String part = "{\"type\": \"video_url\", \"video_url\": {\"url\": \"" + video + "\", \"frames\": 1}}";
        JsonNode e = error(chat(part), 400);
        assertEquals("messages[0].content[0].video_url.url", e.get("param").asText());
        assertTrue(e.get("message").asText().contains("--media-dir"), e.toString());
        MediaParts.allowDirectories(List.of(tmp));
        promptTokens(chat(part));
        promptTokens(chat(part.replace(video.toString(), video.toUri().toString())));
        e = error(chat(part.replace(video.toString(), CLIP.toString())), 400);
        assertTrue(e.get("message").asText().contains("is not a file under --media-dir"), e.toString());
    }

    @Test
    void badPartsAre400sNamingTheField() throws Exception {
        JsonNode e = error(chat("{\"type\": \"video_url\", \"video_url\": {\"url\": \"data:video/mp4;base64,AAAA\"}}"), 400);
        assertEquals("messages[0].content[0].video_url", e.get("param").asText());
        assertTrue(e.get("message").asText().contains("not a video"), e.toString());
        e = error(chat("{\"type\": \"video_url\", \"video_url\": {\"url\": \"https://example.com/v.mp4\"}}"), 400);
        assertEquals("messages[0].content[0].video_url.url", e.get("param").asText());
        e = error(chat("{\"type\": \"video_url\", \"video_url\": {\"url\": \"" + dataUrl("video/mp4", Files.readAllBytes(CLIP)) + "\", \"frames\": 2, \"fps\": 1}}"), 400);
        assertTrue(e.get("message").asText().contains("frames or fps"), e.toString());
        e = error(chat("{\"type\": \"video_url\", \"video_url\": {\"url\": \"" + dataUrl("video/mp4", Files.readAllBytes(CLIP)) + "\", \"frame_tokens\": 8}}"), 400);
        assertEquals("messages[0].content[0].video_url.frame_tokens", e.get("param").asText());
        assertTrue(e.get("message").asText().contains("must be from 16"), e.toString());
        e = error(chat("{\"type\": \"file\", \"file\": {\"file_id\": \"file-123\"}}"), 400);
        assertEquals("messages[0].content[0].file.file_id", e.get("param").asText());
    }

    /** A server capped at {@code context} tokens, answering {@code body} once. */
    static HttpResponse<String> chatWithContext(int context, String body) throws Exception {
        try (KimiVL m = KimiVL.open(Path.of("../models/tiny-random"));
             OpenAiServer small = new OpenAiServer(m, new ServerDefaults("tiny-random", 4, 0.0, context), "127.0.0.1", 0)) {
            small.start();
            return client.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + small.port() + "/v1/chat/completions"))
                    .timeout(Duration.ofSeconds(120)).header("Content-Type", "application/json")
                    .POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofString());
        }
    }

    @Test
    void aLongVideoIsShrunkToTheContextAsKimivlRunShrinksIt(@TempDir Path tmp) throws Exception {
        Path video = MediaFixtures.makeVideo(tmp.resolve("long.mp4"), 448, 336, 20, 10);     // 2 s; 16x12 = 192 tokens a frame
        int context = 1024, maxTokens = 64;
        String body = "{\"max_tokens\": " + maxTokens + ", \"temperature\": 0, \"messages\": [{\"role\": \"user\", \"content\": ["
                + "{\"type\": \"video_url\", \"video_url\": {\"url\": \"" + dataUrl("video/mp4", Files.readAllBytes(video)) + "\", \"frames\": 16}}, "
                + "{\"type\": \"text\", \"text\": \"What is shown?\"}]}]}";

        // what `kimivl run --video long.mp4 --frames 16 --ctx 1024 -n 64 "What is shown?"` builds (cli's MediaPrompt.build)
        MediaMessages.Built cli = MediaMessages.build(model, List.of(new MediaMessages.Draft("user", List.of(
                        new MediaMessages.Clip(MediaMessages.Source.of(video), FrameSampling.frames(16, 64), 256, true),
                        new MediaMessages.Text("What is shown?")))),
                context, MediaMessages.answerRoom(maxTokens, context), ImageLoader.DEFAULT_MAX_PIXELS, MediaMessages.Knobs.CLI, MediaMessages.Report.NONE);
        List<Integer> cliRuns = model.imageTokenCounts(model.prompt(cli.messages(), cli.images()));

        // the server's parse and sizing of the same request, on an engine whose context is 1024
        ImageLoader loader = new ImageLoader();
        ChatRequest req = ChatRequest.parse(JSON.readTree(body), loader, new ServerDefaults("tiny-random", 4, 0.0, context));
        assertNotNull(req.media(), "the video part waits to be sized");
        List<String> log = new ArrayList<>();
        ChatRequest sized = req.sized(new ModelEngine(model, context, CacheOptions.DEFAULT).media(req.media(), maxTokens, loader.maxPixels(), log::add));
        List<Integer> runs = model.imageTokenCounts(model.prompt(sized.messages(), sized.images()));
        assertEquals(16, runs.size(), "one image block per frame: " + runs);
        int per = runs.getFirst();
        assertTrue(per < 192 && per >= MediaMessages.MIN_FRAME_TOKENS, "frames shrunk to share the context: " + per + " tokens each");
        assertEquals(Collections.nCopies(16, per), runs);
        assertEquals(cliRuns, runs, "the sizes kimivl run computes for the same video, frames and context");
        assertEquals(Collections.nCopies(16, "messages[0].content[0].video_url"), sized.imageParams());
        assertEquals(List.of("16 frames of messages[0].content[0].video_url at " + per + " image tokens each (frame_tokens 256 would not fit the context of 1024 tokens)"), log);

        // and through HTTP: answered, with the prompt kimivl run would have built
        HttpResponse<String> r = chatWithContext(context, body);
        assertEquals(cli.promptTokens(), promptTokens(r), "prompt tokens");
        assertTrue(cli.promptTokens() <= context - maxTokens, "the prompt leaves room for the answer: " + cli.promptTokens());
    }

    @Test
    void framesBeyondTheContextEvenAtTheMinimumAreContextLengthExceeded() throws Exception {
        // 40 frames need 16 tokens each at least (640): beyond a 256-token context, refused whole (never cut)
        String body = "{\"max_tokens\": 2, \"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"video_url\", \"video_url\": {\"url\": \""
                + dataUrl("video/mp4", Files.readAllBytes(CLIP)) + "\", \"fps\": 10}}]}]}";
        JsonNode e = error(chatWithContext(256, body), 400);
        assertEquals("context_length_exceeded", e.get("code").asText(), e.toString());
        String m = e.get("message").asText();
        assertTrue(m.startsWith("messages[0].content[0].video_url: 40 frames need at least 16 image tokens each (640), but the context of 256 tokens leaves "), m);
        assertTrue(m.endsWith("use fewer frames, a lower fps or max_frames, or a larger context (kimivl serve --ctx)"), m);
    }

    @Test
    void pagesBeyondTheContextAreContextLengthExceeded() throws Exception {
        // three 280x140-point pages at 144 dpi: 560x280 pixels, 20x10 = 200 tokens each; pages are never shrunk unasked
        String body = "{\"max_tokens\": 2, \"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"file\", \"file\": {\"file_data\": \""
                + dataUrl("application/pdf", pdf(3)) + "\", \"filename\": \"a.pdf\"}}]}]}";
        JsonNode e = error(chatWithContext(256, body), 400);
        assertEquals("context_length_exceeded", e.get("code").asText(), e.toString());
        String m = e.get("message").asText();
        assertTrue(m.startsWith("messages[0].content[0].file (a.pdf): 3 pages (all) at 144 dpi (up to 200 tokens a page) need 600 image tokens, but the context of 256 tokens"), m);
        assertTrue(m.endsWith("choose fewer pages, a lower dpi or page_tokens, or a larger context (kimivl serve --ctx)"), m);
    }
}
