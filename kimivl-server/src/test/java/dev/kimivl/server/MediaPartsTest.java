package dev.kimivl.server;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.kimivl.model.KimiVL;
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
import java.util.Base64;
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
        e = error(chat("{\"type\": \"file\", \"file\": {\"file_id\": \"file-123\"}}"), 400);
        assertEquals("messages[0].content[0].file.file_id", e.get("param").asText());
    }

    @Test
    void framesBeyondTheContextAreContextLengthExceeded() throws Exception {
        // 40 frames of 12 tokens with labels: beyond a 256-token context, refused whole (never cut)
        try (KimiVL m = KimiVL.open(Path.of("../models/tiny-random"));
             OpenAiServer small = new OpenAiServer(m, new ServerDefaults("tiny-random", 4, 0.0, 256), "127.0.0.1", 0)) {
            small.start();
            String body = "{\"max_tokens\": 2, \"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"video_url\", \"video_url\": {\"url\": \""
                    + dataUrl("video/mp4", Files.readAllBytes(CLIP)) + "\", \"fps\": 10}}]}]}";
            var r = client.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + small.port() + "/v1/chat/completions"))
                    .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofString());
            JsonNode e = error(r, 400);
            assertEquals("context_length_exceeded", e.get("code").asText(), e.toString());
        }
    }
}
