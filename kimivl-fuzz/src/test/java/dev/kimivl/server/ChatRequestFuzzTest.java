package dev.kimivl.server;

import com.code_intelligence.jazzer.junit.FuzzTest;
import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.StreamReadConstraints;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.kimivl.config.PreprocessorConfig;
import dev.kimivl.text.ChatTemplate;
import dev.kimivl.text.PromptEncoder;
import dev.kimivl.text.Tokenizer;
import dev.kimivl.vision.ImageLoader;
import dev.kimivl.vision.ImagePreprocessor;
import dev.kimivl.vision.LoadedImage;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Timeout;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * A chat-completions body as the server receives it: parsed as the server parses it (its JSON limits), validated by
 * {@link ChatRequest#parse} (messages, content parts, data: URL images decoded by the ImageLoader, video and file
 * parts, sampling fields), then rendered by tiny-random's chat template and encoded with its image placeholders
 * expanded. Every refusal must be a 400 {@link ApiError} with a one-line message (the server answers
 * {@code invalid JSON} before parse, and turns a template's or encoder's {@link IllegalArgumentException} into a 400
 * too); anything else would be a 500 or a dead connection (a body Jackson took for UTF-32 was: regress-utf32-body).
 */
class ChatRequestFuzzTest {
    private static final ObjectMapper JSON = new ObjectMapper(JsonFactory.builder()
            .streamReadConstraints(StreamReadConstraints.builder().maxStringLength(1 << 20).build()).build());
    private static final ImageLoader LOADER = new ImageLoader(4L << 20, "--max-image-pixels");
    private static final ServerDefaults DEFAULTS = new ServerDefaults("kimivl", 16, 0.2, 0);
    private static Tokenizer tokenizer;
    private static ChatTemplate template;
    private static PreprocessorConfig pre;

    @BeforeAll
    static void load() throws IOException {
        Path tiny = root().resolve("models/tiny-random");
        tokenizer = Tokenizer.load(tiny);
        template = ChatTemplate.load(tiny);
        pre = PreprocessorConfig.load(tiny);
    }

    private static Path root() {
        for (Path p = Path.of("").toAbsolutePath(); p != null; p = p.getParent()) if (Files.isDirectory(p.resolve("models/tiny-random"))) return p;
        throw new IllegalStateException("no models/tiny-random above " + Path.of("").toAbsolutePath());
    }

    @FuzzTest
    @Timeout(10)
    void body(byte[] body) {
        ChatRequest req;
        try {
            req = ChatRequest.parse(OpenAiServer.parseBody(JSON, body), LOADER, DEFAULTS);
        } catch (ApiError e) {
            requireOneLine400(e);
            return;
        }
        String rendered;
        try {
            rendered = template.render(req.messages(), true);
            int[] tokens = new int[req.images().size()];
            for (int i = 0; i < tokens.length; i++) {
                LoadedImage im = req.images().get(i);
                tokens[i] = ImagePreprocessor.tokensFor(im.width(), im.height(), pre);
            }
            new PromptEncoder(tokenizer).encode(rendered, tokens);
        } catch (IllegalArgumentException e) {
            // the server's 400 for a template that rejects the conversation or placeholders typed as text
            if (e.getMessage() == null || e.getMessage().contains("\n")) throw new AssertionError("an error that is not one line: " + e.getMessage(), e);
        }
    }

    private static void requireOneLine400(ApiError e) {
        if (e.status != 400) throw new AssertionError("a refused body answered " + e.status + ": " + e.getMessage(), e);
        String m = e.getMessage();
        if (m == null || m.isBlank() || m.indexOf('\n') >= 0) throw new AssertionError("a 400 whose message is not one line: " + m, e);
    }
}
