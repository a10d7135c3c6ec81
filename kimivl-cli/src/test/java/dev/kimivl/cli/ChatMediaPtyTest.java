package dev.kimivl.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.OutputStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;

import static dev.kimivl.cli.ChatCommandPtyTest.STATS;
import static dev.kimivl.cli.ChatCommandPtyTest.type;
import static org.junit.jupiter.api.Assertions.*;

/**
 * kimivl chat's /video and /pdf (issue 16 item 5) on a real pseudo-terminal, and the thinking display with the
 * shipped Thinking model. The frames and pages are kimivl-media's (the same as `kimivl run --video/--pdf`, tested
 * in MediaCliTest); here: that they reach the prompt, with progress, what does not fit refused with the reason, and
 * /save naming each frame and page.
 */
class ChatMediaPtyTest {
    static final Path CLIP = MediaCliTest.VIDEO.resolve("clip.mp4");        // 100x60, 10 fps, 40 frames

    static Process chat(String... args) throws Exception {
        ChatCommandPtyTest.requireScript();
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        String cp = System.getProperty("surefire.test.class.path", System.getProperty("java.class.path"));
        List<String> cmd = new ArrayList<>(List.of(java, "--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED",
                "-cp", "'" + cp + "'", "dev.kimivl.cli.Main", "chat"));
        cmd.addAll(List.of(args));
        return new ProcessBuilder("script", "-qfec", "stty cols 200 rows 40; exec " + String.join(" ", cmd), "/dev/null").redirectErrorStream(true).start();
    }

    @Test
    void videoAndPdfGoWithTheNextMessage(@TempDir Path tmp) throws Exception {
        Path pdf = dev.kimivl.media.testing.MediaFixtures.makePdf(tmp.resolve("doc.pdf"));          // 300x300, 600x300, 300x600 pt
        Process p = chat("--model", "../models/tiny-random", "-t", "0", "-n", "4", "--ctx", "1024");
        ChatCommandPtyTest.Screen screen = new ChatCommandPtyTest.Screen(p.getInputStream());
        OutputStream keys = p.getOutputStream();
        try {
            screen.await("/help for commands", 60);

            // 1. a video: checked and described at once, decoded (with progress) when the message is sent
            type(keys, "/video " + CLIP + " --frames 4\r");
            screen.await("\\(clip\\.mp4: 4 frames of 40 \\(00:04 long, 100x60\\), sent with your next message\\)", 20);
            screen.await("\\[1 video\\] > ", 10);
            type(keys, "What happens?\r");
            screen.await("decoding clip\\.mp4: frame 4/4 \\(00:0\\d of 00:04\\)", 30);
            Matcher first = STATS.matcher(screen.await(STATS.pattern(), 60));
            assertTrue(first.find());
            int firstPrompt = Integer.parseInt(first.group(2));
            assertTrue(firstPrompt > 4 * 12, "4 frames of 4x3 tokens and their labels: " + first.group());

            // 2. a PDF's pages and an image in one message; the video's turn is reused from the cache
            type(keys, "/pdf '" + pdf + "' --pages 2-3 --dpi 36\r");
            screen.await("\\(doc\\.pdf: 2 pages of 3 at 36 dpi, sent with your next message\\)", 20);
            type(keys, "/image ../examples/blue-circle.png\r");
            screen.await("\\[1 image, 1 PDF\\] > ", 20);
            type(keys, "Compare them.\r");
            Matcher second = STATS.matcher(screen.await(STATS.pattern(), 60));
            assertTrue(second.find());
            assertTrue(Integer.parseInt(second.group(2)) > firstPrompt + 11 * 6 + 6 * 11, "both pages (11x6 and 6x11 tokens) in the prompt: " + second.group());
            assertTrue(Integer.parseInt(second.group(3)) >= firstPrompt, "the first turn came from the cache: " + second.group());

            // 3. what does not fit what the conversation leaves of the context is refused, naming the sizes, never cut
            type(keys, "/video " + CLIP + " --fps 10\r");
            screen.await("error: .*clip\\.mp4: 40 frames need at least 16 image tokens each \\(640\\), but the context of 1024 tokens leaves \\d+ .*"
                    + "use fewer --frames, a lower --fps or --max-frames, or a larger --ctx", 20);
            type(keys, "/pdf " + pdf + " --dpi 144\r");
            screen.await("error: .*doc\\.pdf: 3 pages \\(all\\) at 144 dpi \\(up to \\d+ tokens a page\\) need \\d+ image tokens, but the context of 1024 tokens leaves \\d+.*"
                    + "choose fewer --pages, a lower --dpi or --page-tokens, or a larger --ctx", 20);
            type(keys, "/pdf " + pdf + " --pages 5-7\r");
            screen.await("error: --pages for .*doc\\.pdf: page range '5-7': the document has 3 pages", 20);
            type(keys, "/pdf " + tmp.resolve("missing.pdf") + "\r");
            screen.await("error: /pdf: --pdf .*missing\\.pdf: no such file", 20);
            type(keys, "/video " + CLIP + " --frames 2 --fps 1\r");
            screen.await("error: /video: give --frames N or --fps F, not both", 20);
            type(keys, "/video " + pdf + "\r");
            screen.await("error: .*doc\\.pdf: .*", 20);                     // not a video: jcodec's reason, named
            screen.await("(?m)^> ", 10);                                   // nothing waits for the next message

            // 4. /save names each frame (file#t=seconds) and page (file#page=N)
            Path saved = tmp.resolve("chat.json");
            type(keys, "/save " + saved + "\r");
            screen.await("saved 4 messages", 10);
            JsonNode msgs = new ObjectMapper().readTree(saved.toFile()).get("messages");
            JsonNode video = msgs.get(0).get("content");
            assertEquals("Frame at 00:00:", video.get(0).get("text").asText());
            assertEquals(CLIP + "#t=0.5", video.get(1).get("path").asText(), "frame 5 of 40 at 10 fps");
            assertEquals(CLIP + "#t=3.5", video.get(7).get("path").asText());
            assertEquals("What happens?", video.get(8).get("text").asText());
            JsonNode mixed = msgs.get(2).get("content");
            assertEquals("Page 2:", mixed.get(0).get("text").asText(), "attachments in the order attached: " + mixed);
            assertEquals(pdf + "#page=2", mixed.get(1).get("path").asText());
            assertEquals(pdf + "#page=3", mixed.get(3).get("path").asText());
            assertEquals("../examples/blue-circle.png", mixed.get(4).get("path").asText());

            screen.await("(?m)^> ", 10);                                   // Ctrl-D once the prompt is drawn (ChatCommandPtyTest)
            type(keys, "\u0004");
            assertTrue(p.waitFor(20, TimeUnit.SECONDS), "Ctrl-D ends the chat");
            assertEquals(0, p.exitValue(), screen.text());
        } finally {
            p.destroyForcibly();
        }
    }

    /**
     * The shipped Thinking model (models/kimivl-nano-thinking) opens ◁think▷ and writes its reasoning when
     * asked a two-step counting question (simple ones get an empty block): the chat shows that reasoning dimmed (SGR 2), never the markers, and keeps only the answer in
     * the conversation; --thinking hide shows none of it. Greedy, 48 tokens: a few seconds.
     */
    @Test
    void aThinkingModelsReasoningIsDimmedOrHidden(@TempDir Path tmp) throws Exception {
        String reasoning = null;
        for (String mode : List.of("show", "hide")) {
            Process p = chat("--model", "../models/kimivl-nano-thinking", "-t", "0", "-n", "48", "--thinking", mode, "--no-stats");
            ChatCommandPtyTest.Screen screen = new ChatCommandPtyTest.Screen(p.getInputStream());
            OutputStream keys = p.getOutputStream();
            try {
                screen.await("/help for commands", 60);
                type(keys, "/image ../examples/blue-circle.png\r");
                screen.await("\\[1 image\\] > ", 20);
                type(keys, "How many more blue shapes than red shapes are there?\r");
                Path saved = tmp.resolve(mode + ".json");
                screen.await("\\[max tokens reached\\]|(?m)^> ", 60);
                type(keys, "/save " + saved + "\r");
                screen.await("saved 2 messages", 20);
                String raw = screen.raw();
                String answer = new ObjectMapper().readTree(saved.toFile()).get("messages").get(1).get("content").asText();
                assertFalse(answer.contains("think▷") || answer.contains("◁"), "the conversation keeps the answer only: " + answer);
                assertFalse(screen.text().contains("think▷"), "the markers are never shown: " + screen.text());
                if (mode.equals("show")) {
                    // after the question's echo: SGR faint, then reasoning text (the model's own words), then plain again
                    Matcher m = java.util.regex.Pattern.compile("\u001b\\[2m([^\u001b]{20,})\u001b\\[0m").matcher(raw.substring(raw.indexOf("How many more blue shapes")));
                    assertTrue(m.find(), "the reasoning is shown dimmed: " + raw);
                    reasoning = m.group(1).strip();
                    assertFalse(answer.contains(reasoning), "the reasoning is not in the answer");
                } else {
                    assertFalse(screen.text().contains(reasoning), "--thinking hide shows no reasoning: " + screen.text());
                }
                screen.await("(?m)^> ", 10);
                type(keys, "\u0004");
                assertTrue(p.waitFor(20, TimeUnit.SECONDS), "Ctrl-D ends the chat");
            } finally {
                p.destroyForcibly();
            }
        }
    }
}
