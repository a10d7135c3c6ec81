package dev.kimivl.text;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

import static dev.kimivl.text.ChatMessage.*;
import static org.junit.jupiter.api.Assertions.*;

class ChatTemplateTest {
    @Test
    void aTokenizerConfigThatIsNotJsonIsOneLineNamingIt(@TempDir Path dir) throws IOException {
        // leading zero bytes make Jackson read UTF-32 and throw CharConversionException, not a JSON error
        // (TokenizerFuzzTest#tokenizerConfig's regress-utf32-detected, for the tokenizer's own reading of the file)
        Path cfg = dir.resolve("tokenizer_config.json");
        byte[] utf32 = new byte[24];
        System.arraycopy("{\"a\": 1}".getBytes(java.nio.charset.StandardCharsets.US_ASCII), 0, utf32, 12, 8);
        Files.write(cfg, utf32);
        IOException e = assertThrows(IOException.class, () -> ChatTemplate.load(dir));
        assertTrue(e.getMessage().startsWith(cfg + ": cannot parse JSON: "), e.getMessage());
        assertFalse(e.getMessage().contains("\n"), e.getMessage());
        Files.writeString(cfg, "{\"chat_template\": ");
        e = assertThrows(IOException.class, () -> ChatTemplate.load(dir));
        assertTrue(e.getMessage().startsWith(cfg + ": cannot parse JSON: ") && !e.getMessage().contains("\n"), e.getMessage());
    }

    static final String IMAGE = "<|media_start|>image<|media_content|><|media_pad|><|media_end|>";
    static final String DEFAULT_SYSTEM = "<|im_system|>system<|im_middle|>You are a helpful assistant<|im_end|>";

    static ChatTemplate reference() throws IOException {
        Path file = TestFiles.resource("/reference/chat_template.reconstructed.jinja");
        return ChatTemplate.of(Files.readString(file), file.toString());
    }

    static Stream<ChatTemplate> templates() throws IOException {
        return Stream.of(reference(), ChatTemplate.builtIn());
    }

    @ParameterizedTest
    @MethodSource("templates")
    void rendersTheSpecExample(ChatTemplate t) {
        String out = t.render(List.of(ChatMessage.of("user", imagePart(), textPart("What is this?"))), true);
        assertEquals("<|im_system|>system<|im_middle|>You are a helpful assistant<|im_end|><|im_user|>user<|im_middle|>"
                + "<|media_start|>image<|media_content|><|media_pad|><|media_end|>What is this?<|im_end|>"
                + "<|im_assistant|>assistant<|im_middle|>", out);
    }

    @ParameterizedTest
    @MethodSource("templates")
    void rendersMultiTurnWithImages(ChatTemplate t) {
        List<ChatMessage> conversation = List.of(
                system("You are terse."),
                ChatMessage.of("user", textPart("Compare "), imagePart(), textPart(" and "), imagePart()),
                assistant("The first is red."),
                user("And now?\n  Indented line."));
        String expected = "<|im_system|>system<|im_middle|>You are terse.<|im_end|>"
                + "<|im_user|>user<|im_middle|>Compare " + IMAGE + " and " + IMAGE + "<|im_end|>"
                + "<|im_assistant|>assistant<|im_middle|>The first is red.<|im_end|>"
                + "<|im_user|>user<|im_middle|>And now?\n  Indented line.<|im_end|>";
        assertEquals(expected, t.render(conversation, false));
        assertEquals(expected + "<|im_assistant|>assistant<|im_middle|>", t.render(conversation, true));
    }

    @ParameterizedTest
    @MethodSource("templates")
    void defaultSystemPromptOnlyWhenFirstMessageIsNotSystem(ChatTemplate t) {
        assertEquals(DEFAULT_SYSTEM + "<|im_user|>user<|im_middle|>hi<|im_end|>", t.render(List.of(user("hi")), false));
        assertEquals(DEFAULT_SYSTEM + "<|im_assistant|>assistant<|im_middle|>Hello.<|im_end|><|im_user|>user<|im_middle|>"
                + IMAGE + "<|im_end|>", t.render(List.of(assistant("Hello."), ChatMessage.of("user", imagePart())), false));
        // A later system message does not count, and any other role keeps its name but gets no opener.
        assertEquals(DEFAULT_SYSTEM + "<|im_user|>user<|im_middle|>a<|im_end|><|im_system|>system<|im_middle|>b<|im_end|>"
                + "tool<|im_middle|>c<|im_end|>",
                t.render(List.of(user("a"), system("b"), ChatMessage.of("tool", "c")), false));
        // The default system prompt is written inside the message loop: no messages, no system prompt.
        assertEquals("<|im_assistant|>assistant<|im_middle|>", t.render(List.of(), true));
    }

    @ParameterizedTest
    @MethodSource("templates")
    void imagePartsGivenAsMapsInEveryForm(ChatTemplate t) {
        List<Map<String, Object>> messages = List.of(Map.of("role", "user", "content", List.of(
                Map.of("type", "image_url", "image_url", Map.of("url", "x.png")),
                Map.of("image", "y.png"),
                Map.of("type", "image"),
                Map.of("type", "text", "text", "?"))));
        assertEquals(DEFAULT_SYSTEM + "<|im_user|>user<|im_middle|>" + IMAGE + IMAGE + IMAGE + "?<|im_end|>",
                t.render(messages, false, Map.of()));
    }

    @Test
    void messageTextIsNeverRenderedAsATemplate() {
        String out = ChatTemplate.builtIn().render(List.of(user("{{ 7 * 7 }} {% if true %}x{% endif %}")), false);
        assertEquals(DEFAULT_SYSTEM + "<|im_user|>user<|im_middle|>{{ 7 * 7 }} {% if true %}x{% endif %}<|im_end|>", out);
    }

    @Test
    void emptyConversationWithoutGenerationPromptIsEmpty() {
        assertEquals("", ChatTemplate.builtIn().render(List.of(), false));
    }

    static Stream<JsonNode> whitespaceCases() throws IOException {
        JsonNode root = new ObjectMapper().readTree(TestFiles.resource("/dev/kimivl/text/jinja_whitespace_cases.json").toFile());
        return java.util.stream.StreamSupport.stream(root.get("cases").spliterator(), false);
    }

    /** Expected outputs were rendered by Jinja2 3.1.6 with Hugging Face's settings (see the JSON's "generator"). */
    @ParameterizedTest
    @MethodSource("whitespaceCases")
    void whitespaceControlMatchesJinja2(JsonNode c) {
        String template = c.get("template").asText();
        Map<String, Object> ctx = Map.of("xs", List.of(1, 2, 3), "name", "kimi", "flag", true, "d", Map.of("a", 1));
        assertEquals(c.get("expected").asText(), ChatTemplate.of(template, "case").render(List.of(), false, ctx),
                () -> "template " + template + "\nnormalized " + JinjaSource.normalize(template, "case"));
    }

    @Test
    void unclosedTagIsReportedWithLine() {
        var e = assertThrows(IllegalArgumentException.class, () -> ChatTemplate.of("a\nb {{ x ", "t.jinja"));
        assertEquals("t.jinja:2: the tag is never closed with }}", e.getMessage());
    }

    @Test
    void raiseExceptionFailsTheRender() {
        ChatTemplate t = ChatTemplate.of("{% if messages|length == 0 %}{{ raise_exception('no messages') }}{% endif %}", "t");
        var e = assertThrows(IllegalArgumentException.class, () -> t.render(List.of(), false));
        assertTrue(e.getMessage().contains("no messages"), e.getMessage());
    }

    @Test
    void loadPrefersChatTemplateJinjaThenTokenizerConfigThenBuiltIn(@TempDir Path dir) throws IOException {
        assertEquals(ChatTemplate.builtIn().source(), ChatTemplate.load(dir).source());
        Files.writeString(dir.resolve("tokenizer_config.json"),
                "{\"chat_template\": \"{{ bos_token }}{% for m in messages %}[{{ m.role }}]{% endfor %}\", \"bos_token\": \"<s>\"}");
        assertEquals("<s>[user]", ChatTemplate.load(dir).render(List.of(user("x")), false));
        Files.writeString(dir.resolve("chat_template.jinja"), "{%- for m in messages -%}\n  {{- m.content -}}\n{%- endfor -%}\n");
        assertEquals("x", ChatTemplate.load(dir).render(List.of(user("x")), false));
        Files.delete(dir.resolve("chat_template.jinja"));
        Files.writeString(dir.resolve("tokenizer_config.json"),
                "{\"chat_template\": [{\"name\": \"tool_use\", \"template\": \"T\"}, {\"name\": \"default\", \"template\": \"D\"}]}");
        assertEquals("D", ChatTemplate.load(dir).render(List.of(), false));
    }
}
