package dev.kimivl.langchain4j;

import static dev.kimivl.media.testing.MediaFixtures.makePdf;
import static dev.kimivl.media.testing.MediaFixtures.meanDiff;
import dev.kimivl.generate.GenerationOptions;
import dev.kimivl.generate.Generator;
import dev.kimivl.generate.SamplingParams;
import dev.kimivl.generate.TokenConstraint;
import dev.kimivl.generate.json.JsonShape;
import dev.kimivl.media.MediaMessages;
import dev.kimivl.model.KimiVL;
import dev.kimivl.text.ChatMessage;
import dev.kimivl.vision.LoadedImage;
import dev.langchain4j.data.message.ImageContent;
import dev.langchain4j.data.message.PdfFileContent;
import dev.langchain4j.data.message.TextContent;
import dev.langchain4j.data.message.UserMessage;
import dev.langchain4j.data.message.VideoContent;
import dev.langchain4j.exception.InvalidRequestException;
import dev.langchain4j.exception.UnsupportedFeatureException;
import dev.langchain4j.memory.chat.MessageWindowChatMemory;
import dev.langchain4j.model.chat.ChatModel;
import dev.langchain4j.model.chat.StreamingChatModel;
import dev.langchain4j.model.chat.request.ChatRequest;
import dev.langchain4j.model.chat.response.ChatResponse;
import dev.langchain4j.model.chat.response.PartialResponse;
import dev.langchain4j.model.chat.response.PartialResponseContext;
import dev.langchain4j.model.chat.response.PartialThinking;
import dev.langchain4j.model.chat.response.PartialThinkingContext;
import dev.langchain4j.model.chat.response.StreamingChatResponseHandler;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.*;

/**
 * VideoContent and PdfFileContent (issue 16 item 5) in the chat models, blocking and streaming, with chat memory:
 * a video becomes its frames and a PDF its pages, each an image block with its label, exactly as kimivl run makes
 * them (kimivl-media's MediaMessages; the frames compared with ffmpeg's pictures as in MediaCliTest); what does not
 * fit the context is an InvalidRequestException naming the sizes. And a real Thinking model's reasoning reaching
 * onPartialThinking and AiMessage.thinking().
 */
class MediaContentTest {
    /** kimivl-media's committed clip: 100x60, 10 fps, 40 frames; frameN.png are ffmpeg's pictures of it. */
    static final Path VIDEO = Path.of("../kimivl-media/src/test/resources/video").toAbsolutePath().normalize();
    static KimiVL model;

    @BeforeAll static void open() { model = KimiVL.open(Path.of("../models/tiny-random")); }

    @AfterAll static void close() { model.close(); }

    /** The model in process, with what it was asked to generate from kept for the test. */
    static final class Recording implements Conversations.Backend {
        final Conversations.Backend real;
        final List<List<ChatMessage>> messages = new ArrayList<>();
        final List<List<LoadedImage>> images = new ArrayList<>();

        Recording(KimiVL m, int context) { real = Conversations.backend(m, context); }

        @Override
        public Generator.Result generate(List<ChatMessage> msgs, List<LoadedImage> imgs, SamplingParams p, Generator.Listener l, GenerationOptions o) {
            messages.add(msgs);
            images.add(imgs);
            return real.generate(msgs, imgs, p, l, o);
        }

        @Override public TokenConstraint json(JsonShape shape) { return real.json(shape); }

        @Override public int reusedTokens() { return real.reusedTokens(); }

        @Override
        public MediaMessages.Built media(List<MediaMessages.Draft> c, int maxTokens, Conversations.MediaOptions o) { return real.media(c, maxTokens, o); }
    }

    /** The last user message's parts: I for an image block, a text part in quotes. */
    static String layout(List<ChatMessage> messages) {
        List<String> out = new ArrayList<>();
        for (ChatMessage.Part p : messages.getLast().parts()) out.add(p instanceof ChatMessage.TextPart t ? "'" + t.text() + "'" : "I");
        return String.join(" ", out);
    }

    static VideoContent clip() throws IOException {
        return VideoContent.from(Base64.getEncoder().encodeToString(Files.readAllBytes(VIDEO.resolve("clip.mp4"))), "video/mp4");
    }

    @Test
    void aVideoIsItsFramesAsInKimivlRunAndChatMemoryReusesThem() throws IOException {
        Recording rec = new Recording(model, 4096);
        KimiVLChatModel chat = KimiVLChatModel.builder(model).backend(rec).videoFrames(4).maxTokens(4).temperature(0).build();
        // a conversation kept in a chat memory, as an application without AiServices keeps one (AiServices turns a
        // UserMessage parameter into text: its contents do not reach the model)
        var memory = MessageWindowChatMemory.withMaxMessages(10);
        memory.add(UserMessage.from(clip(), TextContent.from("What happens?")));
        memory.add(chat.chat(memory.messages()).aiMessage());

        assertEquals("'Frame at 00:00:' I 'Frame at 00:01:' I 'Frame at 00:02:' I 'Frame at 00:03:' I 'What happens?'", layout(rec.messages.getFirst()));
        int[] frames = {5, 15, 25, 35};                 // the centres of four equal parts of 40 frames, as kimivl run --frames 4
        for (int i = 0; i < 4; i++) {
            double d = meanDiff(rec.images.getFirst().get(i), VIDEO.resolve("frame" + frames[i] + ".png"));
            assertTrue(d < 3, "frame " + frames[i] + " differs from ffmpeg's by " + d);
        }
        int firstPrompt = model.prompt(rec.messages.getFirst(), rec.images.getFirst()).ids().length;

        // the next turn sends the video again (it is in the memory): the same frames, so the cache reuses the first turn
        memory.add(UserMessage.from("And then?"));
        memory.add(chat.chat(memory.messages()).aiMessage());
        assertEquals(4, rec.images.get(1).size(), "the first turn's 4 frames again");
        assertTrue(chat.reusedTokens() >= firstPrompt, "cache reused: " + chat.reusedTokens() + " of " + firstPrompt);
        assertEquals(4, memory.messages().size());
    }

    @Test
    void aPdfsPagesThenAnImageStream(@TempDir Path tmp) throws Exception {
        Path pdf = makePdf(tmp.resolve("doc.pdf"));
        Recording rec = new Recording(model, 4096);
        StreamingChatModel streaming = KimiVLChatModel.builder(model).backend(rec).pdfDpi(36).maxTokens(6).temperature(0).buildStreaming();
        StringBuilder streamed = new StringBuilder();
        CompletableFuture<ChatResponse> done = new CompletableFuture<>();
        streaming.chat(ChatRequest.builder().messages(UserMessage.from(PdfFileContent.from(pdf.toUri()), ImageContent.from(
                Base64.getEncoder().encodeToString(Files.readAllBytes(Path.of("../examples/blue-circle.png"))), "image/png"),
                TextContent.from("Compare."))).build(), new StreamingChatResponseHandler() {
            @Override public void onPartialResponse(PartialResponse p, PartialResponseContext c) { streamed.append(p.text()); }
            @Override public void onCompleteResponse(ChatResponse r) { done.complete(r); }
            @Override public void onError(Throwable e) { done.completeExceptionally(e); }
        });
        ChatResponse r = done.get(60, TimeUnit.SECONDS);
        assertEquals("'Page 1:' I 'Page 2:' I 'Page 3:' I I 'Compare.'", layout(rec.messages.getFirst()), "every page, then the image, in order");
        List<LoadedImage> imgs = rec.images.getFirst();
        assertEquals(List.of(150, 300, 150), List.of(imgs.get(0).width(), imgs.get(1).width(), imgs.get(2).width()), "pages at 36 dpi");
        assertEquals(model.prompt(rec.messages.getFirst(), imgs).ids().length, r.tokenUsage().inputTokenCount());
        assertEquals(r.aiMessage().text(), streamed.toString());
    }

    @Test
    void whatDoesNotFitIsAnInvalidRequestNamingTheSizes(@TempDir Path tmp) throws Exception {
        ChatModel small = KimiVLChatModel.builder(model).contextLength(300).videoFps(10).maxTokens(4).build();
        var e = assertThrows(InvalidRequestException.class, () -> small.chat(UserMessage.from(clip(), TextContent.from("What happens?"))));
        assertTrue(e.getMessage().contains("40 frames need at least 16 image tokens each (640), but the context of 300 tokens leaves")
                && e.getMessage().endsWith("use fewer videoFrames, a lower videoFps or maxVideoFrames, or a larger contextLength"), e.getMessage());

        // the same from the streaming model, through onError
        Path pdf = makePdf(tmp.resolve("doc.pdf"));
        StreamingChatModel streaming = KimiVLChatModel.builder(model).contextLength(300).pdfDpi(72).maxTokens(4).buildStreaming();
        CompletableFuture<Throwable> error = new CompletableFuture<>();
        streaming.chat(List.of(UserMessage.from(PdfFileContent.from(pdf.toUri()), TextContent.from("Read it."))), new StreamingChatResponseHandler() {
            @Override public void onPartialResponse(String s) {}
            @Override public void onCompleteResponse(ChatResponse r) { error.complete(null); }
            @Override public void onError(Throwable t) { error.complete(t); }
        });
        Throwable t = error.get(60, TimeUnit.SECONDS);
        assertInstanceOf(InvalidRequestException.class, t);
        assertTrue(t.getMessage().matches(".*doc\\.pdf: 3 pages \\(all\\) at 72 dpi \\(up to \\d+ tokens a page\\) need \\d+ image tokens, but the context of 300 tokens .*"
                + "choose fewer pages \\(split the PDF\\), a lower pdfDpi or pdfPageTokens, or a larger contextLength"), t.getMessage());

        // nothing is downloaded; bytes that are not a video are named
        ChatModel chat = KimiVLChatModel.builder(model).maxTokens(2).build();
        assertThrows(UnsupportedFeatureException.class, () -> chat.chat(UserMessage.from(VideoContent.from("https://example.com/a.mp4"), TextContent.from("?"))));
        var notVideo = assertThrows(InvalidRequestException.class, () -> chat.chat(UserMessage.from(
                VideoContent.from(Base64.getEncoder().encodeToString("not a video at all".getBytes()), "video/mp4"), TextContent.from("?"))));
        assertTrue(notVideo.getMessage().startsWith("video (video/mp4)"), notVideo.getMessage());
        assertThrows(IllegalArgumentException.class, () -> KimiVLChatModel.builder(model).frameTokens(4).build(), "frame tokens below 16");
    }

    /**
     * The shipped Thinking model (models/kimivl-nano-thinking), asked a two-step counting question (simple ones get an empty
     * block), opens ◁think▷ and writes its reasoning: it reaches onPartialThinking and AiMessage.thinking(), never the answer's text.
     */
    @Test
    void aRealThinkingModelsReasoningGoesToThinking() throws Exception {
        try (KimiVL thinker = KimiVL.open(Path.of("../models/kimivl-nano-thinking"))) {
            StreamingChatModel streaming = KimiVLChatModel.builder(thinker).maxTokens(48).temperature(0).buildStreaming();
            StringBuilder text = new StringBuilder(), thoughts = new StringBuilder();
            CompletableFuture<ChatResponse> done = new CompletableFuture<>();
            streaming.chat(List.of(UserMessage.from(ImageContent.from(Base64.getEncoder().encodeToString(Files.readAllBytes(Path.of("../examples/blue-circle.png"))), "image/png"),
                    TextContent.from("How many more blue shapes than red shapes are there?"))), new StreamingChatResponseHandler() {
                @Override public void onPartialResponse(PartialResponse p, PartialResponseContext c) { text.append(p.text()); }
                @Override public void onPartialThinking(PartialThinking p, PartialThinkingContext c) { thoughts.append(p.text()); }
                @Override public void onCompleteResponse(ChatResponse r) { done.complete(r); }
                @Override public void onError(Throwable e) { done.completeExceptionally(e); }
            });
            ChatResponse r = done.get(60, TimeUnit.SECONDS);
            assertTrue(thoughts.toString().strip().length() >= 20, "the model's reasoning was streamed as thinking: '" + thoughts + "', text '" + text + "'");
            assertEquals(thoughts.toString(), r.aiMessage().thinking());
            assertEquals(text.toString(), r.aiMessage().text() == null ? "" : r.aiMessage().text());
            assertFalse(text.toString().contains("think▷") || thoughts.toString().contains("think▷"), "no markers: " + thoughts + " | " + text);
        }
    }

}
