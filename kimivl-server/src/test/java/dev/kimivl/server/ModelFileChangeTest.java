package dev.kimivl.server;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.kimivl.model.KimiVL;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Issue 12 item 4: a checkpoint truncated or replaced under a running server is a clear error on the next request (a
 * 503 naming the file, also in the server's log), not a JVM crash in a kernel that reads a lost page; the server
 * stays up for what does not need the weights.
 */
class ModelFileChangeTest {
    static final ObjectMapper JSON = new ObjectMapper();
    static final HttpClient CLIENT = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();

    /** tiny-random's files (not sub-directories) in a directory of the test's own, so that they can be cut. */
    static Path copyOfTiny(Path tmp) throws Exception {
        Path m = Files.createDirectories(tmp.resolve("tiny-random"));
        try (var s = Files.list(Path.of("../models/tiny-random"))) {
            for (Path f : s.toList()) if (Files.isRegularFile(f)) Files.copy(f, m.resolve(f.getFileName()));
        }
        return m;
    }

    static HttpResponse<String> post(OpenAiServer server, String path, String body) throws Exception {
        return CLIENT.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + server.port() + path))
                .timeout(Duration.ofSeconds(60)).header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofString());
    }

    static final String CHAT = """
            {"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 3, "temperature": 0}""";
    static final String COMPLETION = """
            {"prompt": "Hello", "max_tokens": 3, "temperature": 0}""";

    /** The 503's error: one line, naming the file and what happened to it. */
    static String refused(HttpResponse<String> r) throws Exception {
        assertEquals(503, r.statusCode(), r.body());
        JsonNode err = JSON.readTree(r.body()).path("error");
        assertEquals("model_files_changed", err.path("code").asText(), r.body());
        assertEquals("server_error", err.path("type").asText(), r.body());
        String m = err.path("message").asText();
        assertFalse(m.contains("\n"), m);
        return m;
    }

    @Test
    void aTruncatedCheckpointIsA503NamingTheFileOnTheNextRequest(@TempDir Path tmp) throws Exception {
        Path dir = copyOfTiny(tmp);
        Path st = dir.resolve("model.safetensors");
        long size = Files.size(st);
        List<String> log = new CopyOnWriteArrayList<>();
        try (KimiVL model = KimiVL.open(dir);
             OpenAiServer server = new OpenAiServer(model, new ServerDefaults("tiny-random", 16, 0.0, 256), "127.0.0.1", 0)) {
            server.logTo(log::add);
            server.start();
            assertEquals(200, post(server, "/v1/chat/completions", CHAT).statusCode(), "the untouched model answers");

            try (FileChannel ch = FileChannel.open(st, StandardOpenOption.WRITE)) {
                ch.truncate(4096);
            }
            String expected = st + ": truncated to 4096 bytes since it was loaded (" + size + " bytes mapped)";
            String m = refused(post(server, "/v1/chat/completions", CHAT));
            assertTrue(m.startsWith(expected), m);
            assertTrue(refused(post(server, "/v1/completions", COMPLETION)).startsWith(expected));
            assertTrue(log.stream().anyMatch(l -> l.contains("POST /v1/chat/completions: 503: " + expected)), log.toString());

            // the server itself is still up
            var health = CLIENT.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + server.port() + "/health")).build(),
                    HttpResponse.BodyHandlers.ofString());
            assertEquals(200, health.statusCode());
        }
    }

    @Test
    void aCheckpointReplacedByAnotherFileIsA503NamingTheFile(@TempDir Path tmp) throws Exception {
        Path dir = copyOfTiny(tmp);
        Path st = dir.resolve("model.safetensors");
        try (KimiVL model = KimiVL.open(dir);
             OpenAiServer server = new OpenAiServer(model, new ServerDefaults("tiny-random", 16, 0.0, 256), "127.0.0.1", 0)) {
            server.start();
            // what a download tool does: write a new file, then rename it over the old one (a new inode, same name)
            Path fresh = Files.copy(st, tmp.resolve("model.safetensors.part"));
            Files.move(fresh, st, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
            String m = refused(post(server, "/v1/chat/completions", CHAT));
            assertTrue(m.startsWith(st + ": replaced by another file since it was loaded"), m);
        }
    }
}
