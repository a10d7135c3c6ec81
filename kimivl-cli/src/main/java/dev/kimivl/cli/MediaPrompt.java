package dev.kimivl.cli;

import dev.kimivl.config.PreprocessorConfig;
import dev.kimivl.media.FrameSampling;
import dev.kimivl.media.MediaException;
import dev.kimivl.media.PageRange;
import dev.kimivl.media.PdfDocument;
import dev.kimivl.media.Timestamps;
import dev.kimivl.media.TokenBudget;
import dev.kimivl.media.Video;
import dev.kimivl.model.KimiVL;
import dev.kimivl.text.ChatMessage;
import dev.kimivl.text.PromptEncoder;
import dev.kimivl.vision.ImagePreprocessor;
import dev.kimivl.vision.LoadedImage;

import java.io.PrintStream;
import java.util.ArrayList;
import java.util.List;

/**
 * The user message of `kimivl run` with long inputs: the images (-i), then the PDF's pages ("Page 3:" before each),
 * then the video's frames ("Frame at 00:03:" before each unless --no-timestamps), then the text.
 *
 * <p>Everything is sized before anything is decoded: the text's tokens are counted with the real chat template,
 * the pages' tokens follow from their sizes at the dpi, and the frames share what the context leaves after the text,
 * the images, the pages and room for the answer (--max-tokens, at most a quarter of the context). Frames get
 * --frame-tokens each, or fewer (down to {@link MediaOptions#MIN_FRAME_TOKENS}, with a note on stderr) when that
 * does not fit. Pages are never shrunk unasked (small print would become unreadable) and never dropped: pages that
 * do not fit are an error naming pages, tokens and context.
 */
final class MediaPrompt {
    /** What the generator gets: the conversation, its images in order, and the prompt's length in tokens. */
    record Built(List<ChatMessage> messages, List<LoadedImage> images, int promptTokens) {}

    private MediaPrompt() {}

    /** Room kept for the answer: the requested maximum, but never more than a quarter of the context. */
    static int answerRoom(int maxTokens, int context) { return Math.max(1, Math.min(maxTokens, context / 4)); }

    static Built build(KimiVL m, MediaOptions o, String system, List<LoadedImage> images, String text,
                       int context, int maxTokens, long maxPixels, PrintStream err) {
        PreprocessorConfig cfg = m.vision().preprocessorConfig();
        int room = answerRoom(maxTokens, context);
        PdfDocument pdf = null;
        Video video = null;
        try {
            int[] pageNumbers = new int[0];
            int[] pageTokens = new int[0];
            if (o.pdf != null) {
                pdf = PdfDocument.open(o.pdf);
                try {
                    pageNumbers = PageRange.parse(o.pages, pdf.pageCount());
                } catch (IllegalArgumentException e) {
                    throw new IllegalArgumentException("--pages for " + o.pdf + ": " + e.getMessage());
                }
                pageTokens = new int[pageNumbers.length];
                for (int i = 0; i < pageNumbers.length; i++) {
                    int[] s = pdf.pixelSize(pageNumbers[i], o.dpi);
                    pageTokens[i] = o.pageTokens != null ? TokenBudget.tokensAfterFit(s[0], s[1], o.pageTokens, cfg) : ImagePreprocessor.tokensFor(s[0], s[1], cfg);
                }
            }
            FrameSampling.Plan plan = null;
            if (o.video != null) {
                video = Video.open(o.video, maxPixels);
                Video.Info info = video.info();
                plan = o.sampling().plan(info.frames(), info.durationSeconds());
                if (plan.capped()) {
                    err.printf("kimivl: --fps %s would take %d frames of %s (%s long); taking %d spread over the whole video (--max-frames)%n",
                            fmt(o.fps != null ? o.fps : 1.0), plan.requested(), o.video.getFileName(), Timestamps.format(info.durationSeconds()), plan.size());
                }
            }
            List<String> labels = new ArrayList<>();     // text before each media image (null: none)
            for (int ignored = 0; ignored < images.size(); ignored++) labels.add(null);
            for (int p : pageNumbers) labels.add("Page " + p + ":");
            if (plan != null) for (double s : plan.seconds()) labels.add(o.timestamps ? "Frame at " + Timestamps.format(s) + ":" : null);

            // the text around the images, counted with the template: each image part renders one placeholder
            List<ChatMessage> messages = messages(system, labels, text);
            PromptEncoder encoder = new PromptEncoder(m.tokenizer());
            int[] onePerImage = new int[labels.size()];
            java.util.Arrays.fill(onePerImage, 1);
            int fixed = encoder.encode(m.chatTemplate().render(messages, true), onePerImage).ids().length - labels.size();
            int known = fixed;
            for (LoadedImage im : images) known += ImagePreprocessor.tokensFor(im.width(), im.height(), cfg);
            int pagesTotal = 0;
            for (int t : pageTokens) pagesTotal += t;
            known += pagesTotal;
            int left = context - room - known;            // for the frames
            if (pdf != null && left < (plan != null ? plan.size() * MediaOptions.MIN_FRAME_TOKENS : 0)) {
                throw new MediaException(o.pdf + ": " + pagesDescription(pageNumbers, pageTokens, o) + " need " + pagesTotal
                        + " image tokens, but the context of " + context + " tokens leaves " + Math.max(0, context - room - (known - pagesTotal))
                        + " after the text and images (" + (known - pagesTotal) + ") and room for the answer (" + room + ")"
                        + (plan != null ? " and the video's frames (" + plan.size() + " x " + MediaOptions.MIN_FRAME_TOKENS + " at least)" : "")
                        + ": choose fewer --pages, a lower --dpi or --page-tokens, or a larger --ctx");
            }
            int perFrame = 0;
            if (plan != null) {
                Video.Info info = video.info();
                int want = TokenBudget.tokensAfterFit(info.width(), info.height(), o.frameTokens, cfg);
                perFrame = Math.min(o.frameTokens, Math.max(0, left) / plan.size());
                int got = perFrame >= 1 ? TokenBudget.tokensAfterFit(info.width(), info.height(), perFrame, cfg) : 0;
                if (got < Math.min(want, MediaOptions.MIN_FRAME_TOKENS)) {
                    throw new MediaException(o.video + ": " + plan.size() + " frames need at least " + MediaOptions.MIN_FRAME_TOKENS
                            + " image tokens each (" + plan.size() * MediaOptions.MIN_FRAME_TOKENS + "), but the context of " + context
                            + " tokens leaves " + Math.max(0, left) + " after the text, images and pages (" + known + ") and room for the answer ("
                            + room + "): use fewer --frames, a lower --fps or --max-frames, or a larger --ctx");
                }
                if (got < want) {
                    err.printf("kimivl: %d frames of %s at %d image tokens each (--frame-tokens %d would not fit the context of %d tokens)%n",
                            plan.size(), o.video.getFileName(), got, o.frameTokens, context);
                }
            }

            List<LoadedImage> all = new ArrayList<>(images);
            boolean redraw = Terminal.stderrIsTerminal();
            String end = redraw ? "\r" : "%n";
            for (int i = 0; i < pageNumbers.length; i++) {
                LoadedImage page = pdf.render(pageNumbers[i], o.dpi, maxPixels);
                all.add(o.pageTokens != null ? TokenBudget.fit(page, o.pageTokens, cfg) : page);
                if (pageNumbers.length >= 4 && (redraw || (i + 1) % Math.max(1, (pageNumbers.length + 9) / 10) == 0 || i + 1 == pageNumbers.length)) err.printf("kimivl: rendered page %d/%d of %s" + (i + 1 < pageNumbers.length ? end : "%n"), i + 1, pageNumbers.length, o.pdf.getFileName());
            }
            if (plan != null) {
                int budget = perFrame, n = plan.size();
                String name = o.video.getFileName().toString(), length = Timestamps.format(video.info().durationSeconds());
                // a terminal redraws one line per frame; a log or pipe gets about ten plain lines, not one per frame
                int every = redraw ? 1 : Math.max(1, (n + 9) / 10);
                // one decoder per core (jcodec is single-threaded), each on a run of consecutive frames
                all.addAll(video.frames(plan, im -> TokenBudget.fit(im, budget, cfg), (done, total, s) -> {
                    if (done % every == 0 || done == total) {
                        err.printf("kimivl: decoding %s: frame %d/%d (%s of %s)" + (done < total ? end : "%n"), name, done, total, Timestamps.format(s), length);
                    }
                }, Runtime.getRuntime().availableProcessors()));
            }
            int tokens = fixed;
            for (LoadedImage im : all) tokens += ImagePreprocessor.tokensFor(im.width(), im.height(), cfg);
            return new Built(messages, all, tokens);
        } finally {
            if (pdf != null) pdf.close();
            if (video != null) video.close();
        }
    }

    private static List<ChatMessage> messages(String system, List<String> labels, String text) {
        List<ChatMessage.Part> parts = new ArrayList<>();
        for (String label : labels) {
            if (label != null) parts.add(ChatMessage.textPart(label));
            parts.add(ChatMessage.imagePart());
        }
        parts.add(ChatMessage.textPart(text));
        List<ChatMessage> messages = new ArrayList<>();
        if (system != null) messages.add(ChatMessage.system(system));
        messages.add(ChatMessage.of("user", parts.toArray(ChatMessage.Part[]::new)));
        return messages;
    }

    private static String pagesDescription(int[] pages, int[] tokens, MediaOptions o) {
        int max = 0;
        for (int t : tokens) max = Math.max(max, t);
        String which = pages.length == 1 ? "page " + pages[0] : pages.length + " pages (" + (o.pages != null ? o.pages : "all") + ")";
        return which + " at " + fmt(o.dpi) + " dpi" + (o.pageTokens != null ? " and --page-tokens " + o.pageTokens : "") + " (up to " + max + " tokens a page)";
    }

    private static String fmt(double v) { return v == Math.rint(v) ? String.valueOf((long) v) : String.valueOf(v); }
}
