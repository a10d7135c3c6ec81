package dev.kimivl.text;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.hubspot.jinjava.Jinjava;
import com.hubspot.jinjava.JinjavaConfig;
import com.hubspot.jinjava.LegacyOverrides;
import com.hubspot.jinjava.interpret.Context;
import com.hubspot.jinjava.interpret.JinjavaInterpreter;
import com.hubspot.jinjava.interpret.RenderResult;
import com.hubspot.jinjava.interpret.TemplateError;
import com.hubspot.jinjava.lib.fn.ELFunctionDefinition;
import com.hubspot.jinjava.tree.Node;

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
        JsonNode config;
        try {
            config = Files.isRegularFile(configFile) ? new ObjectMapper().readTree(configFile.toFile()) : null;
        } catch (IOException e) {
            // one line naming the file, as Tokenizer.load says it about the same file
            throw new IOException(configFile + ": cannot parse JSON: " + dev.kimivl.io.JsonErrors.describe(e), e);
        }
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
        RenderResult result = renderParsed(context);
        if (result == null) result = JINJAVA.renderForResult(normalized, context);
        List<TemplateError> fatal = result.getErrors().stream()
                .filter(e -> e.getSeverity() == TemplateError.ErrorType.FATAL).toList();
        if (!fatal.isEmpty()) {
            throw new IllegalArgumentException("chat template " + name + " failed: " + fatal.stream()
                    .map(e -> (e.getLineno() > 0 ? "line " + e.getLineno() + ": " : "") + e.getMessage() + rootCause(e.getException()))
                    .collect(Collectors.joining("; ")));
        }
        return result.getOutput();
    }

    /**
     * What {@code render(messages, addGenerationPrompt)} adds after {@code render(messages.subList(0, from), false)},
     * rendered from {@code messages[from..]} after an empty stand-in for the first message (its role, empty content of
     * the same kind), so that its cost is that of the new messages only: a conversation's next turn renders its new
     * messages, not its history. With {@code from == messages.size()} it is the generation prompt (or nothing).
     *
     * <p>Null where that cannot stand for the whole render: the template is not {@linkplain #isAppendOnly()
     * append-only}, or it rejected the stand-in conversation (the caller then renders the whole conversation, which
     * raises the template's own error if it rejects that too).
     *
     * @param from 1 ≤ from ≤ messages.size(): the messages already rendered
     */
    public String renderTail(List<ChatMessage> messages, int from, boolean addGenerationPrompt) {
        if (from < 1 || from > messages.size()) {
            throw new IllegalArgumentException("from must be in 1.." + messages.size() + ", got " + from);
        }
        return isAppendOnly() ? tail(messages, from, addGenerationPrompt) : null;
    }

    private String tail(List<ChatMessage> messages, int from, boolean addGenerationPrompt) {
        ChatMessage first = messages.getFirst();
        ChatMessage standIn = first.text() != null ? ChatMessage.of(first.role(), "") : new ChatMessage(first.role(), null, List.of());
        try {
            String head = standInHeads.get(standIn);
            if (head == null) {
                head = render(List.of(standIn), false);
                if (standInHeads.size() < 64) standInHeads.put(standIn, head);    // roles are few; bound it anyway
            }
            if (from == messages.size() && addGenerationPrompt) {
                // the generation prompt alone: the same for every conversation that starts with this stand-in
                String generation = standInGenerationPrompts.get(standIn);
                if (generation == null) {
                    String all = render(List.of(standIn), true);
                    if (!all.startsWith(head)) return null;
                    generation = all.substring(head.length());
                    if (standInGenerationPrompts.size() < 64) standInGenerationPrompts.put(standIn, generation);
                }
                return generation;
            }
            List<ChatMessage> shortened = new ArrayList<>(messages.size() - from + 1);
            shortened.add(standIn);
            shortened.addAll(messages.subList(from, messages.size()));
            String all = render(shortened, addGenerationPrompt);
            return all.startsWith(head) ? all.substring(head.length()) : null;
        } catch (IllegalArgumentException rejected) {
            return null;
        }
    }

    /** render([stand-in], false) per stand-in first message. */
    private final Map<ChatMessage, String> standInHeads = new java.util.concurrent.ConcurrentHashMap<>();
    /** What render([stand-in], true) adds to render([stand-in], false): the generation prompt. */
    private final Map<ChatMessage, String> standInGenerationPrompts = new java.util.concurrent.ConcurrentHashMap<>();

    /**
     * Whether this template renders a conversation as its first messages' render followed by what the later messages
     * add, whatever came before them except the first message's role and kind of content: then {@link #renderTail}
     * may stand for the whole render. Kimi's template is (a default system prompt depends on the first message's role
     * only); a template that rewrites earlier turns once a later one exists (one that drops the reasoning of all but
     * the last assistant turn, say) or numbers the messages is not.
     *
     * <p>Decided once per template source by rendering {@value #PROBES} random conversations (roles system, user,
     * assistant and others; text and image parts; empty content, special-token names, thinking markers, Jinja-like
     * text, whitespace) whole and as every split into a rendered prefix and a tail, with and without the generation
     * prompt: append-only when every split gives the whole render (and the tail is refused wherever the whole render
     * is). A check by examples, not a proof: a template whose history rendering depends on something no probe varies
     * would pass; {@code -Dkimivl.promptTail=false} turns tails off (every prompt is then rendered whole).
     */
    public boolean isAppendOnly() {
        if (!Boolean.parseBoolean(System.getProperty("kimivl.promptTail", "true"))) return false;
        return APPEND_ONLY.computeIfAbsent(normalized + "\u0000" + specialTokens, k -> probeAppendOnly());
    }

    static final int PROBES = 24;
    private static final Map<String, Boolean> APPEND_ONLY = new java.util.concurrent.ConcurrentHashMap<>();

    private boolean probeAppendOnly() {
        java.util.Random random = new java.util.Random(20261205);
        for (int probe = 0; probe < PROBES; probe++) {
            List<ChatMessage> m = probeConversation(random, 1 + probe % 5);
            for (boolean gen : new boolean[] {false, true}) {
                String whole = renderOrNull(m, gen);
                for (int k = 1; k <= m.size(); k++) {
                    String prefix = renderOrNull(m.subList(0, k), false);
                    if (prefix == null) continue;               // never kept, so never extended
                    String tail = tail(m, k, gen);
                    if (whole == null ? tail != null : !whole.equals(tail == null ? null : prefix + tail)) return false;
                }
            }
        }
        return true;
    }

    private String renderOrNull(List<ChatMessage> messages, boolean addGenerationPrompt) {
        try {
            return render(messages, addGenerationPrompt);
        } catch (IllegalArgumentException rejected) {
            return null;
        }
    }

    private static final String[] PROBE_ROLES = {"system", "user", "assistant", "user", "assistant", "tool", "developer"};
    private static final String[] PROBE_TEXT = {"", "Hello", " two  words ", "\n\nlines\n", "<|im_end|>", "<|im_user|>x",
            "◁think▷reason◁/think▷answer", "<think>why</think>so", "{{ messages }}", "{% raw %}", "é漢字 ", "  ", "42"};

    private static List<ChatMessage> probeConversation(java.util.Random random, int n) {
        List<ChatMessage> m = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            String role = PROBE_ROLES[random.nextInt(PROBE_ROLES.length)];
            if (random.nextInt(4) > 0) {
                m.add(ChatMessage.of(role, probeText(random)));
            } else {
                List<ChatMessage.Part> parts = new ArrayList<>();
                for (int j = random.nextInt(3); j >= 0; j--) {
                    parts.add(random.nextBoolean() ? ChatMessage.imagePart() : ChatMessage.textPart(probeText(random)));
                }
                m.add(new ChatMessage(role, null, parts));
            }
        }
        return m;
    }

    private static String probeText(java.util.Random random) {
        StringBuilder b = new StringBuilder();
        for (int j = random.nextInt(3); j >= 0; j--) b.append(PROBE_TEXT[random.nextInt(PROBE_TEXT.length)]);
        return b.toString();
    }

    /**
     * Parsed templates ready to render, each with its own copy of Jinjava's global context. {@link
     * Jinjava#renderForResult} parses the source and copies the global context (every filter, function and tag) on
     * every call, which were most of a short conversation's render (~0.75 ms of which ~0.2 ms render): a conversation's
     * next turn renders only its new messages ({@link #renderTail}), so those dominated it. An entry is used by one
     * render at a time (taken from this pool, made anew when the pool is empty, given back after), so nothing Jinjava
     * keeps in its nodes or contexts is ever shared by two renders; what a render records in the global copy (the
     * expressions and values it resolved) is cleared ({@code Context.reset}) before the entry goes back. The pool
     * holds at most as many entries as renders ran at once, and never more than {@value #MAX_PARSED} (each holds a
     * copy of every filter, function and tag Jinjava registers).
     */
    private record Parsed(Node tree, Context global) {}

    private final java.util.concurrent.ConcurrentLinkedQueue<Parsed> parsed = new java.util.concurrent.ConcurrentLinkedQueue<>();
    private final java.util.concurrent.atomic.AtomicInteger pooled = new java.util.concurrent.atomic.AtomicInteger();
    static final int MAX_PARSED = 16;
    /** {@code -Dkimivl.templateParsed=false}: every render through renderForResult, as before the pool (to compare). */
    private static final boolean KEEP_PARSED = Boolean.parseBoolean(System.getProperty("kimivl.templateParsed", "true"));
    /** False once the source failed to parse cleanly: every render then goes through renderForResult. */
    private volatile boolean parseable = true;

    /**
     * What {@code JINJAVA.renderForResult(normalized, context)} returns, rendered from a parsed tree (the same steps:
     * a context over a copy of the global one, the configured interpreter, a trailing newline stripped unless the
     * configuration keeps it); null where that path cannot stand for it (the source does not parse cleanly, or the
     * render raised or reported a fatal error: renderForResult then renders again and reports it as it always has).
     */
    private RenderResult renderParsed(Map<String, Object> bindings) {
        if (!parseable || !KEEP_PARSED) return null;
        JinjavaConfig config = JINJAVA.getGlobalConfig();
        Parsed p = parsed.poll();
        if (p != null) pooled.decrementAndGet();
        if (p == null) {
            JinjavaInterpreter parser = JINJAVA.newInterpreter();
            Node tree = parser.parse(normalized);
            if (!parser.getErrors().isEmpty()) {
                parseable = false;
                return null;
            }
            p = new Parsed(tree, JINJAVA.getGlobalContextCopy());
        }
        Context context = new Context(p.global(), bindings, config.getDisabled());
        JinjavaInterpreter interpreter = config.getInterpreterFactory().newInstance(JINJAVA, context, config);
        try {
            String out = interpreter.render(p.tree(), true);
            if (!config.isKeepTrailingNewline() && out.endsWith("\n")) out = out.substring(0, out.length() - 1);
            List<TemplateError> errors = interpreter.getErrorsCopy();
            if (errors.stream().anyMatch(e -> e.getSeverity() == TemplateError.ErrorType.FATAL)) return null;
            return new RenderResult(out, context, errors);
        } catch (RuntimeException e) {
            p = null;                                   // a render that failed midway: do not reuse its context
            return null;
        } finally {
            context.reset();
            if (p != null && pooled.incrementAndGet() <= MAX_PARSED) {
                p.global().reset();
                parsed.offer(p);
            } else if (p != null) {
                pooled.decrementAndGet();               // the pool is full: this one is dropped
            }
        }
    }

    /** renderForResult on the source, as before parsed trees were kept: for tests that compare the two. */
    String renderUnparsed(List<ChatMessage> messages, boolean addGenerationPrompt) {
        List<Map<String, Object>> values = new ArrayList<>();
        for (ChatMessage m : messages) values.add(m.toTemplateValue());
        Map<String, Object> context = new HashMap<>(specialTokens);
        context.put("messages", values);
        context.put("add_generation_prompt", addGenerationPrompt);
        RenderResult result = JINJAVA.renderForResult(normalized, context);
        if (result.getErrors().stream().anyMatch(e -> e.getSeverity() == TemplateError.ErrorType.FATAL)) {
            throw new IllegalArgumentException("chat template " + name + " failed: " + result.getErrors());
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
