package dev.kimivl.text;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.hubspot.jinjava.Jinjava;
import com.hubspot.jinjava.JinjavaConfig;
import com.hubspot.jinjava.LegacyOverrides;
import com.hubspot.jinjava.interpret.RenderResult;
import com.hubspot.jinjava.interpret.TemplateError;
import com.hubspot.jinjava.lib.fn.ELFunctionDefinition;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;

/**
 * A Hugging Face chat template (Jinja), rendered like {@code tokenizer.apply_chat_template(..., tokenize=False)}.
 *
 * <p>Jinjava renders the template after {@link JinjaSource} has applied Jinja's whitespace rules to its source,
 * because Jinjava's own handling of {@code -}}} is wrong for Kimi's template. Instances are thread-safe.
 */
public final class ChatTemplate {
    static final String BUILT_IN_RESOURCE = "kimi_chat_template.jinja";

    private static final Jinjava JINJAVA = newJinjava();

    private final String source;
    private final String name;
    private final String normalized;
    private final Map<String, Object> specialTokens;

    private ChatTemplate(String source, String name, Map<String, Object> specialTokens) {
        this.source = source;
        this.name = name;
        this.normalized = JinjaSource.normalize(source, name);
        this.specialTokens = specialTokens;
    }

    /** A template from its source; {@code name} (a file name, say) appears in error messages. */
    public static ChatTemplate of(String source, String name) {
        return new ChatTemplate(source, name, Map.of());
    }

    /** Kimi-VL's template (spec §7.2), for model directories that carry none. */
    public static ChatTemplate builtIn() {
        try (InputStream in = ChatTemplate.class.getResourceAsStream(BUILT_IN_RESOURCE)) {
            if (in == null) throw new IllegalStateException("resource " + BUILT_IN_RESOURCE + " is missing from the kimivl-core jar");
            return of(new String(in.readAllBytes(), StandardCharsets.UTF_8), "built-in Kimi-VL chat template");
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /**
     * The template of a model directory: {@code chat_template.jinja}, else {@code chat_template} in
     * {@code tokenizer_config.json}, else {@link #builtIn()}. The special-token strings of
     * {@code tokenizer_config.json} ({@code bos_token}, {@code eos_token}, ...) become template variables.
     */
    public static ChatTemplate load(Path modelDir) throws IOException {
        Path configFile = modelDir.resolve("tokenizer_config.json");
        JsonNode config = Files.isRegularFile(configFile) ? new ObjectMapper().readTree(configFile.toFile()) : null;
        Map<String, Object> specials = new HashMap<>();
        if (config != null) {
            for (String key : List.of("bos_token", "eos_token", "pad_token", "unk_token")) {
                JsonNode v = config.get(key);
                if (v != null && v.isTextual()) specials.put(key, v.asText());
                else if (v != null && v.hasNonNull("content")) specials.put(key, v.get("content").asText());
            }
        }
        Path jinja = modelDir.resolve("chat_template.jinja");
        if (Files.isRegularFile(jinja)) return new ChatTemplate(Files.readString(jinja), jinja.toString(), specials);
        JsonNode template = config == null ? null : config.get("chat_template");
        if (template != null && template.isTextual()) {
            return new ChatTemplate(template.asText(), configFile + " (chat_template)", specials);
        }
        if (template != null && template.isArray()) {
            // Several named templates: the one named "default" is what apply_chat_template uses.
            for (JsonNode t : template) {
                if ("default".equals(t.path("name").asText()) && t.path("template").isTextual()) {
                    return new ChatTemplate(t.get("template").asText(), configFile + " (chat_template \"default\")", specials);
                }
            }
            throw new IOException(configFile + ": chat_template is a list without a template named \"default\"");
        }
        if (template != null && !template.isNull()) {
            throw new IOException(configFile + ": chat_template must be a string or a list of {name, template}, found " + template.getNodeType());
        }
        return builtIn();
    }

    /** Renders a conversation; {@code addGenerationPrompt} opens the assistant's turn at the end. */
    public String render(List<ChatMessage> messages, boolean addGenerationPrompt) {
        List<Map<String, Object>> values = new ArrayList<>();
        for (ChatMessage m : messages) values.add(m.toTemplateValue());
        return render(values, addGenerationPrompt, Map.of());
    }

    /**
     * Renders messages given as maps (e.g. parsed from an OpenAI-style request), with extra template variables
     * such as {@code tools}.
     */
    public String render(List<? extends Map<String, ?>> messages, boolean addGenerationPrompt, Map<String, ?> extra) {
        Map<String, Object> context = new HashMap<>(specialTokens);
        context.putAll(extra);
        context.put("messages", messages);
        context.put("add_generation_prompt", addGenerationPrompt);
        RenderResult result = JINJAVA.renderForResult(normalized, context);
        List<TemplateError> fatal = result.getErrors().stream()
                .filter(e -> e.getSeverity() == TemplateError.ErrorType.FATAL).toList();
        if (!fatal.isEmpty()) {
            throw new IllegalArgumentException("chat template " + name + " failed: " + fatal.stream()
                    .map(e -> (e.getLineno() > 0 ? "line " + e.getLineno() + ": " : "") + e.getMessage() + rootCause(e.getException()))
                    .collect(Collectors.joining("; ")));
        }
        return result.getOutput();
    }

    /** Jinjava reports a failing function by its name only; the cause says why (raise_exception's message). */
    private static String rootCause(Throwable t) {
        if (t == null) return "";
        while (t.getCause() != null && t.getCause() != t) t = t.getCause();
        return t.getMessage() == null ? "" : " (" + t.getMessage() + ")";
    }

    /** The template source as given. */
    public String source() { return source; }

    /** Where the template came from. */
    public String name() { return name; }

    private static Jinjava newJinjava() {
        JinjavaConfig config = JinjavaConfig.newBuilder()
                // A message containing "{{ ... }}" must come out as text, never be rendered again.
                .withNestedInterpretationEnabled(false)
                .withTrimBlocks(false)
                .withLstripBlocks(false)
                // Otherwise Jinjava reads "{{ -5 }}" as whitespace control followed by 5.
                .withLegacyOverrides(LegacyOverrides.newBuilder().withParseWhitespaceControlStrictly(true).build())
                .build();
        Jinjava jinjava = new Jinjava(config);
        jinjava.getGlobalContext().registerFunction(new ELFunctionDefinition("", "raise_exception",
                ChatTemplate.class, "raiseException", String.class));
        return jinjava;
    }

    /** {@code raise_exception(msg)}, which Hugging Face provides to templates to reject a conversation. */
    public static Object raiseException(String message) {
        throw new IllegalArgumentException("the chat template rejected the conversation: " + message);
    }
}
