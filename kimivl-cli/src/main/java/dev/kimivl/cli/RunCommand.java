package dev.kimivl.cli;

import dev.kimivl.config.GenerationConfig;
import dev.kimivl.generate.Generator;
import dev.kimivl.generate.SamplingParams;
import dev.kimivl.generate.Speculative;
import dev.kimivl.generate.ThinkingFilter;
import dev.kimivl.model.KimiVL;
import dev.kimivl.text.ChatMessage;
import dev.kimivl.vision.ImageLoader;
import dev.kimivl.vision.LoadedImage;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;

/** kimivl run: one prompt (with optional images) through the chat template, answer streamed to stdout. */
@Command(name = "run", mixinStandardHelpOptions = true, description = "Answer one prompt, streaming the reply as it is generated.")
final class RunCommand implements Callable<Integer> {
    @Spec CommandSpec spec;

    @Mixin ModelOption model;

    @Mixin MediaOptions media;       // --video, --pdf and their sampling/rendering options

    @Parameters(arity = "1..*", paramLabel = "PROMPT", description = "The user message ('-' reads it from standard input).")
    List<String> prompt;

    @Option(names = {"-i", "--image"}, paramLabel = "FILE", description = "An image (PNG, JPEG, WebP, GIF, BMP); repeat for several. They come before the text.")
    List<Path> images = new ArrayList<>();

    @Option(names = "--system", paramLabel = "TEXT", description = "System prompt (default: the template's 'You are a helpful assistant').")
    String system;

    @Mixin SamplingOptions sampling;

    @Option(names = "--seed", description = "Random seed (default: random).")
    Long seed;

    @Option(names = "--stop", paramLabel = "TEXT", description = "Stop when this text appears (repeatable).")
    List<String> stops = new ArrayList<>();

    @Option(names = "--ctx", paramLabel = "N", description = "Cap the context length at N tokens (default: the model's max_position_embeddings).")
    Integer ctx;

    @Option(names = "--max-image-pixels", paramLabel = "N", description = "Refuse images of more than N pixels before decoding them (default: ${DEFAULT-VALUE}, 8192x8192).")
    long maxImagePixels = ImageLoader.DEFAULT_MAX_PIXELS;

    @Option(names = "--stats", description = "Print token counts and speeds to stderr.")
    boolean stats;

    @Option(names = "--draft", defaultValue = "none", paramLabel = "ngram|ngram:K|none",
            description = "Prompt-lookup speculative decoding: draft up to 8 (K) tokens from n-grams of the prompt and the answer so far and verify them in one pass where the measured costs say it pays; float checkpoints only (default: ${DEFAULT-VALUE}: it did not pay on the small models measured). The answer is the same tokens either way (docs/speculative.md).")
    String draft;

    @Option(names = "--thinking", defaultValue = "show", paramLabel = "show|hide|stderr",
            description = "Thinking models' ◁think▷…◁/think▷ reasoning: show it inline (default), hide it, or send it to stderr.")
    String thinking;

    @Override
    public Integer call() throws Exception {
        // every option is checked before the (possibly large) model is loaded: a mistake costs no loading time
        if (ctx != null && ctx < 1) throw Errors.usage(spec, "--ctx must be a positive number of tokens, not " + ctx);
        if (maxImagePixels < 1) throw Errors.usage(spec, "--max-image-pixels must be positive, not " + maxImagePixels);
        if (!List.of("show", "hide", "stderr").contains(thinking)) throw Errors.usage(spec, "--thinking takes show, hide or stderr, not '" + thinking + "'");
        Speculative drafting;
        try {
            drafting = Speculative.parse(draft);
        } catch (IllegalArgumentException e) {
            throw Errors.usage(spec, e.getMessage());
        }
        media.check(spec);
        media.checkFiles();
        model.checkImagesPossible(!images.isEmpty() || media.any());
        String text = String.join(" ", prompt);
        if (text.equals("-")) text = new String(System.in.readAllBytes(), StandardCharsets.UTF_8);
        PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
        GenerationConfig g = GenerationConfig.load(model.resolve());
        SamplingParams params = sampling.params(g, seed != null ? seed : System.nanoTime(), 512, stops);
        List<LoadedImage> loaded = new ArrayList<>();
        ImageLoader loader = new ImageLoader(maxImagePixels, "--max-image-pixels");
        for (Path f : images) loaded.add(loader.load(f));
        try (KimiVL m = model.open()) {
            try {
                answer(m, text, params, loaded, out, drafting);
            } catch (RuntimeException | InternalError e) {
                ModelOption.explainFault(m, e);
                throw e;
            }
        }
        return 0;
    }

    private void answer(KimiVL m, String text, SamplingParams params, List<LoadedImage> loaded, PrintStream out, Speculative drafting) {
        m.weights().checkUnchanged();
        Generator gen = m.generator(ctx != null ? ctx : 0).drafting(drafting);
        Speculative.Stats[] draftStats = new Speculative.Stats[1];
        gen.onDraftStats(s -> draftStats[0] = s);
        List<ChatMessage> messages = new ArrayList<>();
        if (media.any()) {
            // frames and pages sized to the context before anything is decoded (docs/long-inputs.md)
            MediaPrompt.Built b = MediaPrompt.build(m, media, system, loaded, text, gen.contextLength(), params.maxTokens(), maxImagePixels, System.err);
            messages = b.messages();
            loaded = b.images();
        } else {
            List<ChatMessage.Part> parts = new ArrayList<>();
            for (int i = 0; i < images.size(); i++) parts.add(ChatMessage.imagePart());
            parts.add(ChatMessage.textPart(text));
            if (system != null) messages.add(ChatMessage.system(system));
            messages.add(images.isEmpty() ? ChatMessage.user(text) : ChatMessage.of("user", parts.toArray(ChatMessage.Part[]::new)));
        }
        KimiVL.Prompt p = m.prompt(messages, loaded);
        if (p.ids().length >= 1024) {                   // a long prompt takes a while before the first token: say how far it is
            // one line redrawn on a terminal; a log or a pipe gets a plain line per pass (no \r frames)
            String last = Terminal.stderrIsTerminal() ? "\r" : "%n";
            gen.onPromptProgress((done, total) -> System.err.printf("kimivl: prompt %d/%d tokens" + (done < total ? last : "%n"), done, total));
        }
        Generator.Listener listener = out::print;
        ThinkingFilter filter = switch (thinking) {
            case "show" -> null;
            case "hide" -> new ThinkingFilter(out::print, null);
            case "stderr" -> new ThinkingFilter(out::print, System.err::print);
            default -> throw new IllegalStateException("--thinking was checked: " + thinking);
        };
        if (filter != null) listener = filter;
        // images can take minutes to encode on a large model: a weight file changed meanwhile is an error here, not a
        // SIGBUS in a native kernel during the pass (one stat per file)
        m.weights().checkUnchanged();
        Generator.Result r = gen.generate(p.embeddings(), p.ids(), params, listener);
        if (filter != null) filter.finish();
        out.println();
        if (r.finishReason() == Generator.FinishReason.CONTEXT) {
            // the answer was cut, not finished: say so even without --stats, on stderr so stdout stays the answer
            var err = spec.commandLine().getErr();
            err.printf("kimivl run: stopped after %d tokens: the context of %d tokens is full (%s)%n", r.tokens().length, gen.contextLength(),
                    ctx != null && gen.contextLength() < m.contextLength(0) ? "raise --ctx, up to " + m.contextLength(0) : "the model's max_position_embeddings");
            err.flush();
        }
        if (stats) {
            System.err.printf("kimivl: prompt %d tokens (%.1f tok/s), generated %d tokens (%.1f tok/s), finish: %s%n",
                    r.promptTokens(), r.prefillTokensPerSecond(), r.tokens().length, r.decodeTokensPerSecond(), r.finishReason().name().toLowerCase());
            if (draftStats[0] != null) System.err.println("kimivl: " + draftStats[0]);
            else if (drafting.enabled()) System.err.println("kimivl: draft: off for this model (its batched pass is not bit-equal to single-token decode; docs/speculative.md)");
        }
    }
}
