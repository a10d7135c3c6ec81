package dev.kimivl.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import dev.kimivl.config.GenerationConfig;
import dev.kimivl.generate.GenerationOptions;
import dev.kimivl.generate.Generator;
import dev.kimivl.generate.PromptCache;
import dev.kimivl.generate.SamplingParams;
import dev.kimivl.generate.Speculative;
import dev.kimivl.generate.ThinkingFilter;
import dev.kimivl.media.MediaMessages;
import dev.kimivl.model.KimiVL;
import dev.kimivl.text.ChatMessage;
import dev.kimivl.vision.ImageLoader;
import dev.kimivl.vision.LoadedImage;
import org.jline.reader.EndOfFileException;
import org.jline.reader.LineReader;
import org.jline.reader.LineReaderBuilder;
import org.jline.reader.UserInterruptException;
import org.jline.terminal.Terminal;
import org.jline.terminal.TerminalBuilder;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * kimivl chat: a conversation in the terminal (JLine line editing and history). Answers stream as they are
 * generated; the KV cache is kept between turns, so each turn computes only its new tokens; Ctrl-C stops an answer
 * (the part already written stays in the conversation) and never the program; Ctrl-D or /quit leaves.
 */
@Command(name = "chat", mixinStandardHelpOptions = true,
        description = {"Chat with the model in the terminal: streaming, multi-turn (the KV cache is reused across turns), images, videos and PDFs.",
                "In the chat: /image PATH attaches an image to the next message, /video FILE [--frames N|--fps F] [--max-frames N] [--frame-tokens N] "
                        + "[--no-timestamps] a video's frames, /pdf FILE [--pages 2-5] [--dpi D] [--page-tokens N] a PDF's pages (as kimivl run --video/--pdf; "
                        + "docs/long-inputs.md), /system TEXT sets the system prompt (/system alone clears it), "
                        + "/reset starts over, /save FILE writes the conversation as JSON, /help, /quit. "
                        + "Ctrl-C stops an answer; Ctrl-D leaves."})
final class ChatCommand implements Callable<Integer> {
    @Spec CommandSpec spec;

    @Mixin ModelOption model;

    @Option(names = "--system", paramLabel = "TEXT", description = "System prompt to start with (default: the template's).")
    String system;

    @Mixin SamplingOptions sampling;

    @Option(names = "--seed", description = "Random seed of the first answer; each later answer uses the next number (default: random).")
    Long seed;

    @Option(names = "--ctx", paramLabel = "N", description = "Cap the context length at N tokens (default: the model's max_position_embeddings).")
    Integer ctx;

    @Option(names = "--max-image-pixels", paramLabel = "N", description = "Refuse images of more than N pixels before decoding them (default: ${DEFAULT-VALUE}).")
    long maxImagePixels = ImageLoader.DEFAULT_MAX_PIXELS;

    @Option(names = "--thinking", defaultValue = "show", paramLabel = "show|hide",
            description = "Thinking models' reasoning: shown dimmed (default) or hidden. Only answers stay in the conversation.")
    String thinking;

    @Option(names = "--stats", negatable = true, defaultValue = "true", fallbackValue = "true",
            description = "After each answer, a dim line: tokens, speed, and how much of the prompt came from the cache (default: on).")
    boolean stats;

    @Option(names = "--draft", defaultValue = "none", paramLabel = "ngram|ngram:K|none",
            description = "Prompt-lookup speculative decoding where the measured costs say it pays; float checkpoints only (default: ${DEFAULT-VALUE}). Same answers either way (docs/speculative.md).")
    String draft;

    private Speculative drafting = Speculative.NONE;

    /** SGR faint: reasoning and status lines, on terminals that understand ANSI (everything but a dumb one). */
    private static final String DIM = "\u001b[2m", PLAIN = "\u001b[0m";

    // the conversation
    private final List<ChatMessage> history = new ArrayList<>();
    private final List<LoadedImage> images = new ArrayList<>();      // every image part of history (frames and pages too), in order
    private final List<String> imagePaths = new ArrayList<>();       // the same, as given (for /save): a path, path#page=N, path#t=S
    /** What goes with the next message, in the order attached: images (loaded), videos and PDFs (decoded when it is sent). */
    private final List<MediaMessages.Item> pending = new ArrayList<>();
    private final PromptCache cache = new PromptCache();
    private final AtomicBoolean stop = new AtomicBoolean();
    private boolean ansi;
    private long nextSeed;
    private GenerationConfig generation;       // the checkpoint's generation_config.json: the answers' default length

    @Override
    public Integer call() throws Exception {
        if (ctx != null && ctx < 1) throw Errors.usage(spec, "--ctx must be a positive number of tokens, not " + ctx);
        if (maxImagePixels < 1) throw Errors.usage(spec, "--max-image-pixels must be positive, not " + maxImagePixels);
        if (!List.of("show", "hide").contains(thinking)) throw Errors.usage(spec, "--thinking takes show or hide, not '" + thinking + "'");
        try {
            drafting = Speculative.parse(draft);
        } catch (IllegalArgumentException e) {
            throw Errors.usage(spec, e.getMessage());
        }
        GenerationConfig g = GenerationConfig.load(model.resolve());
        generation = g;
        nextSeed = seed != null ? seed : System.nanoTime();
        ImageLoader loader = new ImageLoader(maxImagePixels, "--max-image-pixels");
        try (KimiVL m = model.open();
             Terminal terminal = TerminalBuilder.builder().system(true).dumb(true).build()) {
            ansi = !Terminal.TYPE_DUMB.equals(terminal.getType()) && !Terminal.TYPE_DUMB_COLOR.equals(terminal.getType());
            // Ctrl-C while an answer streams: stop it at the next token. While a line is edited JLine turns Ctrl-C
            // into a UserInterruptException instead, so this handler only ever sees the generating phase.
            terminal.handle(Terminal.Signal.INT, s -> stop.set(true));
            LineReader reader = LineReaderBuilder.builder().terminal(terminal).appName("kimivl").build();
            PrintWriter out = terminal.writer();
            out.println(dim("kimivl chat · " + m.dir().getFileName() + " · /help for commands, Ctrl-C stops an answer, Ctrl-D leaves"));
            out.flush();
            while (true) {
                String line;
                // reset before reading: a Ctrl-C after Enter but before the first token still stops that answer
                stop.set(false);
                try {
                    line = reader.readLine(pending.isEmpty() ? "> " : "[" + pendingDescription() + "] > ");
                } catch (UserInterruptException e) {
                    out.println(dim("(Ctrl-D or /quit to leave)"));
                    continue;
                } catch (EndOfFileException e) {
                    break;
                }
                line = line.strip();
                if (line.isEmpty()) continue;
                if (line.startsWith("/")) {
                    if (!command(line, m, loader, out)) break;
                } else {
                    turn(m, line, g, out);
                }
                out.flush();
            }
        }
        return 0;
    }

    /** A slash command; false to leave. */
    private boolean command(String line, KimiVL m, ImageLoader loader, PrintWriter out) {
        String name = line.split("\\s+", 2)[0];
        String arg = line.length() > name.length() ? line.substring(name.length()).strip() : "";
        switch (name) {
            case "/quit", "/exit" -> { return false; }
            case "/help" -> out.println(dim("/image PATH  attach an image to the next message\n"
                    + "/video FILE [--frames N | --fps F] [--max-frames N] [--frame-tokens N] [--no-timestamps]  attach a video's frames\n"
                    + "/pdf FILE [--pages 2-5] [--dpi D] [--page-tokens N]  attach a PDF's pages\n"
                    + "/system TEXT  set the system prompt (/system alone clears it)\n"
                    + "/reset  forget the conversation\n/save FILE  write the conversation as JSON\n/quit  leave (or Ctrl-D)"));
            case "/reset" -> {
                history.clear();
                images.clear();
                imagePaths.clear();
                pending.clear();
                cache.clear();
                out.println(dim("(conversation cleared)"));
            }
            case "/system" -> {
                system = arg.isEmpty() ? null : arg;
                out.println(dim(system == null ? "(system prompt cleared)" : "(system prompt set)"));
            }
            case "/image" -> {
                if (arg.isEmpty()) { out.println(dim("usage: /image PATH")); break; }
                if (!m.hasVision()) { out.println(dim("error: " + m.dir() + " has no vision tower: it cannot take images")); break; }
                try {
                    Path p = Path.of(arg.startsWith("~/") ? System.getProperty("user.home") + arg.substring(1) : arg);
                    LoadedImage img = loader.load(p);
                    pending.add(new MediaMessages.Image(img, p.toString()));
                    out.println(dim("(" + p.getFileName() + ": " + img.width() + "x" + img.height() + ", sent with your next message)"));
                } catch (RuntimeException e) {
                    out.println(dim("error: " + Errors.oneLine(String.valueOf(e.getMessage()))));
                }
            }
            case "/video", "/pdf" -> attach(name, arg, m, out);
            case "/save" -> {
                if (arg.isEmpty()) { out.println(dim("usage: /save FILE")); break; }
                try {
                    save(Path.of(arg));
                    out.println(dim("(saved " + history.size() + " messages to " + arg + ")"));
                } catch (IOException | RuntimeException e) {
                    out.println(dim("error: " + arg + ": " + e.getMessage()));
                }
            }
            default -> out.println(dim("unknown command " + name + " (/help lists them)"));
        }
        return true;
    }

    private void turn(KimiVL m, String text, GenerationConfig g, PrintWriter out) {
        SamplingParams params = sampling.params(g, nextSeed++, 1024, List.of());
        ChatMessage user;
        List<ChatMessage> messages = new ArrayList<>();
        List<LoadedImage> allImages = new ArrayList<>(images);
        List<LoadedImage> newImages = new ArrayList<>();
        List<String> newPaths = new ArrayList<>();
        if (pending.stream().anyMatch(i -> i instanceof MediaMessages.Pdf || i instanceof MediaMessages.Clip)) {
            // frames and pages: sized to what the conversation leaves of the context, then decoded (with progress)
            MediaMessages.Built b;
            try {
                b = MediaMessages.build(m, conversation(text), m.contextLength(ctx != null ? ctx : 0),
                        MediaMessages.answerRoom(params.maxTokens(), m.contextLength(ctx != null ? ctx : 0)), maxImagePixels, MediaMessages.Knobs.CLI, report(out));
            } catch (java.util.concurrent.CancellationException e) {
                out.println(dim("(" + e.getMessage() + ": the message was not sent; the attachments stay for the next one)"));
                return;
            } catch (RuntimeException e) {
                // does not fit, or the file changed since it was attached: nothing is cut; the attachments are dropped
                // (kept, every later message would fail the same way) and the user attaches again with other options
                pending.clear();
                out.println(dim("error: " + Errors.oneLine(String.valueOf(e.getMessage()))));
                out.println(dim("(the message was not sent and its attachments were dropped)"));
                return;
            }
            messages = new ArrayList<>(b.messages());
            user = messages.getLast();
            newImages.addAll(b.images().subList(images.size(), b.images().size()));
            newPaths.addAll(b.origins().subList(images.size(), b.origins().size()));
            allImages = b.images();
        } else {
            List<ChatMessage.Part> parts = new ArrayList<>();
            for (MediaMessages.Item i : pending) {
                MediaMessages.Image im = (MediaMessages.Image) i;
                parts.add(ChatMessage.imagePart());
                newImages.add(im.image());
                newPaths.add(im.origin());
            }
            parts.add(ChatMessage.textPart(text));
            user = pending.isEmpty() ? ChatMessage.user(text) : ChatMessage.of("user", parts.toArray(ChatMessage.Part[]::new));
            if (system != null) messages.add(ChatMessage.system(system));
            messages.addAll(history);
            messages.add(user);
            allImages.addAll(newImages);
        }

        StringBuilder answer = new StringBuilder();
        boolean[] dimmed = {false};
        ThinkingFilter filter = new ThinkingFilter(t -> {
            if (dimmed[0]) { out.print(PLAIN); out.print("\n"); dimmed[0] = false; }
            answer.append(t);
            out.print(printable(t));
            out.flush();
        }, "hide".equals(thinking) ? null : t -> {
            if (!dimmed[0] && ansi) out.print(DIM);
            dimmed[0] = true;
            out.print(printable(t));
            out.flush();
        });
        Generator.Result r;
        try {
            m.weights().checkUnchanged();
            KimiVL.Prompt p = m.prompt(messages, allImages);
            r = m.generator(ctx != null ? ctx : 0).drafting(drafting).generate(p.embeddings(), p.ids(), params, filter,
                    GenerationOptions.NONE.withCache(cache).withCancel(stop::get));
            filter.finish();
        } catch (RuntimeException e) {
            // a prompt over the context, an image the model refuses: the conversation goes on without this message
            if (dimmed[0]) out.print(PLAIN);
            out.println();
            out.println(dim("error: " + Errors.oneLine(String.valueOf(e.getMessage()))));
            cache.clear();
            return;
        }
        if (dimmed[0]) out.print(PLAIN);
        out.println();
        // the turn joins the conversation; a stopped answer keeps what was written (as the next prompt will show it)
        history.add(user);
        history.add(ChatMessage.assistant(answer.toString()));
        images.addAll(newImages);
        imagePaths.addAll(newPaths);
        pending.clear();
        String end = switch (r.finishReason()) {
            case CANCELLED -> "[stopped] ";
            case CONTEXT -> "[the context is full: /reset to go on] ";
            case LENGTH -> "[max tokens reached] ";
            case STOP -> "";
        };
        if (stats || !end.isEmpty()) {
            out.println(dim(end + (stats ? String.format("%d tokens, %.1f tok/s; prompt %d tokens, %d from the cache",
                    r.tokens().length, r.decodeTokensPerSecond(), r.promptTokens(), cache.reusedTokens()) : "")));
        }
        out.flush();
    }

    /** The conversation so far, then the next user message: the attachments in order, then the text. */
    private List<MediaMessages.Draft> conversation(String text) {
        List<MediaMessages.Draft> drafts = new ArrayList<>();
        if (system != null) drafts.add(MediaMessages.Draft.of("system", new MediaMessages.Text(system)));
        var earlier = images.iterator();
        for (ChatMessage c : history) drafts.add(MediaMessages.Draft.of(c, earlier));
        List<MediaMessages.Item> items = new ArrayList<>(pending);
        items.add(new MediaMessages.Text(text));
        drafts.add(new MediaMessages.Draft("user", items));
        return drafts;
    }

    /** Notes and decoding progress as dim lines; progress redraws one line (a Ctrl-C stops decoding). */
    private MediaMessages.Report report(PrintWriter out) {
        return new MediaMessages.Report() {
            @Override public void note(String text) { out.println(dim("(" + text + ")")); out.flush(); }

            @Override public void progress(String text, boolean last) {
                out.print(dim(text) + (ansi ? "\u001b[K" : "") + (last ? "\n" : "\r"));
                out.flush();
            }

            @Override public boolean redraws() { return true; }

            @Override public boolean cancelled() { return stop.get(); }
        };
    }

    /** The options of /video and /pdf: those of kimivl run (MediaOptions), checked the same way. */
    @Command(name = "attach")
    static final class AttachOptions {
        @Spec CommandSpec spec;
        @Mixin MediaOptions media;
    }

    /**
     * /video FILE [options] or /pdf FILE [options]: parsed and checked now, and sized against the conversation so far
     * (a video too long for what is left of the context is refused here, before the message is typed); decoded when
     * the next message is sent, sized again with its text.
     */
    private void attach(String command, String arg, KimiVL m, PrintWriter out) {
        boolean video = command.equals("/video");
        String usage = video ? "usage: /video FILE [--frames N | --fps F] [--max-frames N] [--frame-tokens N] [--no-timestamps]"
                : "usage: /pdf FILE [--pages 2-5] [--dpi D] [--page-tokens N]";
        List<String> words;
        try {
            words = words(arg);
        } catch (IllegalArgumentException e) {
            out.println(dim("error: " + e.getMessage()));
            return;
        }
        if (words.isEmpty() || words.getFirst().startsWith("--")) { out.println(dim(usage)); return; }
        if (!m.hasVision()) { out.println(dim("error: " + m.dir() + " has no vision tower: it cannot take " + (video ? "videos" : "PDFs"))); return; }
        String file = words.getFirst();
        if (file.startsWith("~/")) file = System.getProperty("user.home") + file.substring(1);
        List<String> args = new ArrayList<>(List.of(video ? "--video" : "--pdf", file));
        args.addAll(words.subList(1, words.size()));
        AttachOptions o = new AttachOptions();
        try {
            new CommandLine(o).parseArgs(args.toArray(String[]::new));
            o.media.check(o.spec);
            if (video ? o.media.pdf != null : o.media.video != null) throw new IllegalArgumentException("attach a " + (video ? "PDF with /pdf" : "video with /video"));
            o.media.checkFiles();
        } catch (CommandLine.ParameterException | IllegalArgumentException e) {
            out.println(dim("error: " + command + ": " + Errors.oneLine(e.getMessage()) + " (" + usage + ")"));
            return;
        }
        MediaMessages.Item item = o.media.items().getFirst();
        pending.add(item);
        int context = m.contextLength(ctx != null ? ctx : 0);
        int maxTokens = sampling.params(generation, 0, 1024, List.of()).maxTokens();      // as the turn will ask
        try (MediaMessages.Layout l = MediaMessages.layout(m, conversation(""), context, MediaMessages.answerRoom(maxTokens, context),
                maxImagePixels, MediaMessages.Knobs.CLI, report(out))) {
            out.println(dim("(" + l.describe(item) + ", sent with your next message)"));
        } catch (RuntimeException e) {
            pending.removeLast();
            out.println(dim("error: " + Errors.oneLine(String.valueOf(e.getMessage()))));
        }
    }

    /** The attachments waiting for the next message, for the prompt: "1 image, 1 video". */
    private String pendingDescription() {
        long img = pending.stream().filter(i -> i instanceof MediaMessages.Image).count();
        long vid = pending.stream().filter(i -> i instanceof MediaMessages.Clip).count();
        long pdf = pending.stream().filter(i -> i instanceof MediaMessages.Pdf).count();
        List<String> what = new ArrayList<>();
        if (img > 0) what.add(img + " image" + (img > 1 ? "s" : ""));
        if (vid > 0) what.add(vid + " video" + (vid > 1 ? "s" : ""));
        if (pdf > 0) what.add(pdf + " PDF" + (pdf > 1 ? "s" : ""));
        return String.join(", ", what);
    }

    /** Splits a command's argument into words as a shell does for quotes: "my clip.mp4" and 'a b' stay one word. */
    static List<String> words(String s) {
        List<String> out = new ArrayList<>();
        StringBuilder w = new StringBuilder();
        boolean in = false;
        char quote = 0;
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (quote != 0) {
                if (c == quote) quote = 0;
                else w.append(c);
            } else if (c == '"' || c == '\'') {
                quote = c;
                in = true;
            } else if (Character.isWhitespace(c)) {
                if (in) { out.add(w.toString()); w.setLength(0); in = false; }
            } else {
                w.append(c);
                in = true;
            }
        }
        if (quote != 0) throw new IllegalArgumentException("unclosed " + quote + " in: " + s);
        if (in) out.add(w.toString());
        return out;
    }

    /** The conversation as JSON: the system prompt, then messages; image parts name their files. */
    private void save(Path file) throws IOException {
        List<Map<String, Object>> msgs = new ArrayList<>();
        if (system != null) msgs.add(Map.of("role", "system", "content", system));
        int image = 0;
        for (ChatMessage c : history) {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("role", c.role());
            if (c.imageCount() == 0) {
                m.put("content", c.text());
            } else {
                List<Map<String, String>> content = new ArrayList<>();
                for (ChatMessage.Part part : c.parts()) {
                    if (part instanceof ChatMessage.TextPart t) content.add(Map.of("type", "text", "text", t.text()));
                    else content.add(Map.of("type", "image", "path", imagePaths.get(image++)));
                }
                m.put("content", content);
            }
            msgs.add(m);
        }
        Path parent = file.toAbsolutePath().getParent();
        if (parent != null) Files.createDirectories(parent);
        new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT).writeValue(file.toFile(), Map.of("messages", msgs));
    }

    /**
     * Model text as the terminal shows it: control characters other than newline and tab are dropped, so an answer
     * can never move the cursor, change colours or retitle the window with escape sequences (the conversation and
     * /save keep the text as generated).
     */
    static String printable(String s) {
        return s.replaceAll("[\\x00-\\x08\\x0b-\\x1f\\x7f\\x{9b}]", "");
    }

    private String dim(String s) { return ansi ? DIM + s + PLAIN : s; }
}
