package dev.kimivl.media;

import dev.kimivl.config.PreprocessorConfig;
import dev.kimivl.model.KimiVL;
import dev.kimivl.text.ChatMessage;
import dev.kimivl.text.PromptEncoder;
import dev.kimivl.vision.ImagePreprocessor;
import dev.kimivl.vision.LoadedImage;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import java.util.Objects;

/**
 * A conversation whose messages hold videos and PDFs as well as text and images, turned into what the model takes:
 * chat messages whose every frame and page is an image part with its label ("Frame at 00:03:", "Page 3:") before
 * it, and the images in prompt order. {@code kimivl run --video/--pdf}, {@code kimivl chat}'s /video and /pdf and
 * the LangChain4j models all go through here, so they sample, size and label the same way (docs/long-inputs.md).
 *
 * <p>Everything is sized before anything is decoded ({@link #layout}): the text's tokens are counted with the real
 * chat template, the images' by their sizes, the pages' by their sizes at the dpi; the frames share what the context
 * leaves after those and room for the answer. Frames get their frame-token budget each, or fewer (down to
 * {@link #MIN_FRAME_TOKENS}, with a note) when that does not fit. Pages are never shrunk unasked (small print would
 * become unreadable) and never dropped: pages that do not fit are an error naming pages, tokens and context; so are
 * frames that would fall below the minimum ({@link DoesNotFit}). Nothing is ever cut silently. {@code kimivl serve}'s
 * video_url and file parts are sized here too.
 */
public final class MediaMessages {
    /** Below this many image tokens (a 112x112 picture) a frame shows too little to be worth its place. */
    public static final int MIN_FRAME_TOKENS = 16;

    private MediaMessages() {}

    /**
     * Frames or pages that do not fit the context even at their smallest: a {@link MediaException} whose message
     * names the frames or pages, their tokens and the context, so that a caller can tell "too long" (the server's
     * context_length_exceeded) from a file that cannot be read.
     */
    public static final class DoesNotFit extends MediaException {
        public DoesNotFit(String message) { super(message); }
    }

    // ---- what a message holds ----------------------------------------------------------------------------------

    /** One piece of a message, in order. */
    public sealed interface Item permits Text, Image, Pdf, Clip {}

    public record Text(String text) implements Item {
        public Text { Objects.requireNonNull(text, "text"); }
    }

    /** An ordinary image, already loaded; {@code origin} names it for the caller (a path), may be null. */
    public record Image(LoadedImage image, String origin) implements Item {
        public Image { Objects.requireNonNull(image, "image"); }
    }

    /**
     * A PDF's pages, each an image block labelled "Page N:".
     *
     * @param pages      "2-5", "1,4,7-" (see {@link PageRange}); null: every page
     * @param pageTokens shrink each page to at most this many image tokens; null: as rendered
     */
    public record Pdf(Source source, String pages, float dpi, Integer pageTokens) implements Item {
        public Pdf {
            Objects.requireNonNull(source, "source");
            if (!(dpi >= 1 && dpi <= 1200)) throw new IllegalArgumentException("a PDF's dpi must be from 1 to 1200, not " + dpi);
            if (pageTokens != null && pageTokens < 1) throw new IllegalArgumentException("page tokens must be at least 1, not " + pageTokens);
        }

        public static Pdf of(Source source) { return new Pdf(source, null, 144, null); }
    }

    /**
     * A video's frames, each an image block labelled "Frame at mm:ss:" (unless {@code timestamps} is false).
     *
     * @param frameTokens image tokens per frame at most; lowered when the frames would not fit otherwise
     */
    public record Clip(Source source, FrameSampling sampling, int frameTokens, boolean timestamps) implements Item {
        public Clip {
            Objects.requireNonNull(source, "source");
            Objects.requireNonNull(sampling, "sampling");
            if (frameTokens < MIN_FRAME_TOKENS) throw new IllegalArgumentException("frame tokens must be at least " + MIN_FRAME_TOKENS + ", not " + frameTokens);
        }

        /** One frame a second, at most 64, 256 tokens each, with timestamps: what {@code kimivl run --video} does unasked. */
        public static Clip of(Source source) { return new Clip(source, FrameSampling.perSecond(1, 64), 256, true); }
    }

    /** Where a video or PDF comes from: a file, or bytes in memory with a name that stands for them in messages. */
    public record Source(Path file, byte[] bytes, String name) {
        public Source {
            if ((file == null) == (bytes == null)) throw new IllegalArgumentException("a media source is a file or bytes");
            Objects.requireNonNull(name, "name");
        }

        public static Source of(Path file) { return new Source(file, null, file.toString()); }

        public static Source of(byte[] bytes, String name) { return new Source(null, bytes, name); }

        /** The file name alone (for notes), or the name of the bytes. */
        public String shortName() { return file != null && file.getFileName() != null ? file.getFileName().toString() : name; }

        Video openVideo(long maxPixels) { return file != null ? Video.open(file, maxPixels) : Video.open(bytes, name, maxPixels); }

        PdfDocument openPdf() { return file != null ? PdfDocument.open(file) : PdfDocument.open(bytes, name); }
    }

    /** One message: a role and its items in order. */
    public record Draft(String role, List<Item> items) {
        public Draft {
            Objects.requireNonNull(role, "role");
            items = List.copyOf(items);
        }

        public static Draft of(String role, Item... items) { return new Draft(role, List.of(items)); }

        /** A message already built (an earlier turn): its text parts and, for its image parts, the next images. */
        public static Draft of(ChatMessage m, Iterator<LoadedImage> images) {
            if (m.text() != null) return of(m.role(), new Text(m.text()));
            List<Item> items = new ArrayList<>();
            for (ChatMessage.Part p : m.parts()) {
                if (p instanceof ChatMessage.TextPart t) items.add(new Text(t.text()));
                else items.add(new Image(images.next(), null));
            }
            return new Draft(m.role(), items);
        }
    }

    /**
     * The names the caller's user knows the settings by, for the advice in errors and notes: the command line's
     * flags ({@link #CLI}), the chat's /video and /pdf options (the same), or a library's builder methods.
     */
    public record Knobs(String frames, String fps, String maxFrames, String frameTokens,
                        String pages, String dpi, String pageTokens, String context) {
        public static final Knobs CLI = new Knobs("--frames", "--fps", "--max-frames", "--frame-tokens", "--pages", "--dpi", "--page-tokens", "--ctx");
    }

    /** Notes and progress while sizing and decoding; the caller decides where they go. */
    public interface Report {
        /** A remark worth one line: frames spread over the whole video, frames given fewer tokens. */
        void note(String text);

        /**
         * How far decoding or rendering is ("decoding talk.mp4: frame 12/64 (00:34 of 05:00)"); {@code last} for the
         * final line of a file. Called for every frame when {@link #redraws()}, else about ten times a file.
         */
        void progress(String text, boolean last);

        /** True when progress redraws one line (a terminal), so every step may be shown. */
        default boolean redraws() { return false; }

        /** Asked after every frame and page: true stops decoding with a {@link java.util.concurrent.CancellationException}. */
        default boolean cancelled() { return false; }

        Report NONE = new Report() {
            @Override public void note(String text) {}
            @Override public void progress(String text, boolean last) {}
        };
    }

    /**
     * What the model gets.
     *
     * @param messages     the conversation, every frame and page an image part after its label
     * @param images       its images in prompt order
     * @param origins      for each image: the {@link Image#origin()} given, or the file/name with {@code #page=N}
     *                     for a page or {@code #t=S} (seconds) for a frame
     * @param promptTokens the prompt's length in tokens (with the assistant opener)
     */
    public record Built(List<ChatMessage> messages, List<LoadedImage> images, List<String> origins, int promptTokens) {}

    /** Room kept for the answer: the requested maximum, but never more than a quarter of the context. */
    public static int answerRoom(int maxTokens, int context) { return Math.max(1, Math.min(maxTokens, context / 4)); }

    /** Sizes and decodes in one go: {@link #layout} then {@link Layout#decode}. */
    public static Built build(KimiVL m, List<Draft> conversation, int context, int answerRoom, long maxPixels, Knobs knobs, Report report) {
        try (Layout l = layout(m, conversation, context, answerRoom, maxPixels, knobs, report)) {
            return l.decode(report);
        }
    }

    /**
     * Opens every video and PDF, chooses the frames and pages and sizes them to the context, decoding nothing.
     * Throws {@link MediaException} (what does not fit, a file that is not a video or PDF) or
     * IllegalArgumentException (a page range past the end) naming the file; close the layout when done.
     */
    public static Layout layout(KimiVL m, List<Draft> conversation, int context, int answerRoom, long maxPixels, Knobs knobs, Report report) {
        Layout l = new Layout(m.vision().preprocessorConfig(), knobs, maxPixels);
        try {
            l.plan(m, conversation, context, answerRoom, report);
            return l;
        } catch (RuntimeException e) {
            l.close();
            throw e;
        }
    }

    /** A conversation sized to the context, its files open: {@link #decode} renders and decodes. */
    public static final class Layout implements AutoCloseable {
        private final PreprocessorConfig cfg;
        private final Knobs knobs;
        private final long maxPixels;
        private final List<Object> opened = new ArrayList<>();     // per item of the flattened conversation: Video, PdfDocument or null
        private final List<PlannedMessage> planned = new ArrayList<>();
        private final java.util.Map<Item, String> descriptions = new java.util.IdentityHashMap<>();
        private int fixed;          // text tokens of the whole prompt (labels and template included)
        private int perFrame;       // the frames' shared token budget (each clip: min(its own, this))

        private record PlannedMessage(String role, List<PlannedItem> items) {}

        /** An item with what was decided for it: pages and their tokens, or a clip's plan. */
        private record PlannedItem(Item item, int[] pages, FrameSampling.Plan plan, Object open) {}

        private Layout(PreprocessorConfig cfg, Knobs knobs, long maxPixels) {
            this.cfg = cfg;
            this.knobs = knobs;
            this.maxPixels = maxPixels;
        }

        private void plan(KimiVL m, List<Draft> conversation, int context, int room, Report report) {
            List<Pdf> pdfs = new ArrayList<>();
            List<int[]> pdfPages = new ArrayList<>(), pdfTokens = new ArrayList<>();
            List<Clip> clips = new ArrayList<>();
            List<Video> videos = new ArrayList<>();
            List<FrameSampling.Plan> plans = new ArrayList<>();
            int imagesTokens = 0, frameCount = 0, imageParts = 0;
            for (Draft d : conversation) {
                List<PlannedItem> items = new ArrayList<>();
                for (Item it : d.items()) {
                    switch (it) {
                        case Text t -> items.add(new PlannedItem(t, null, null, null));
                        case Image im -> {
                            imagesTokens += ImagePreprocessor.tokensFor(im.image().width(), im.image().height(), cfg);
                            imageParts++;
                            items.add(new PlannedItem(im, null, null, null));
                        }
                        case Pdf p -> {
                            PdfDocument doc = p.source().openPdf();
                            opened.add(doc);
                            int[] pages;
                            try {
                                pages = PageRange.parse(p.pages(), doc.pageCount());
                            } catch (IllegalArgumentException e) {
                                throw new IllegalArgumentException(knobs.pages() + " for " + p.source().name() + ": " + e.getMessage());
                            }
                            int[] tokens = new int[pages.length];
                            for (int i = 0; i < pages.length; i++) {
                                int[] s = doc.pixelSize(pages[i], p.dpi());
                                tokens[i] = p.pageTokens() != null ? TokenBudget.tokensAfterFit(s[0], s[1], p.pageTokens(), cfg) : ImagePreprocessor.tokensFor(s[0], s[1], cfg);
                            }
                            descriptions.put(p, p.source().shortName() + ": " + (pages.length == 1 ? "page " + pages[0] : pages.length + " pages")
                                    + " of " + doc.pageCount() + " at " + fmt(p.dpi()) + " dpi");
                            pdfs.add(p);
                            pdfPages.add(pages);
                            pdfTokens.add(tokens);
                            imageParts += pages.length;
                            items.add(new PlannedItem(p, pages, null, doc));
                        }
                        case Clip c -> {
                            Video v = c.source().openVideo(maxPixels);
                            opened.add(v);
                            Video.Info info = v.info();
                            FrameSampling.Plan plan = c.sampling().plan(info.frames(), info.durationSeconds());
                            if (plan.capped()) {
                                report.note(String.format("%s %s would take %d frames of %s (%s long); taking %d spread over the whole video (%s)",
                                        knobs.fps(), fmt(c.sampling().fps()), plan.requested(), c.source().shortName(), Timestamps.format(info.durationSeconds()),
                                        plan.size(), knobs.maxFrames()));
                            }
                            descriptions.put(c, c.source().shortName() + ": " + plan.size() + " frame" + (plan.size() == 1 ? "" : "s") + " of "
                                    + info.frames() + " (" + Timestamps.format(info.durationSeconds()) + " long, " + info.width() + "x" + info.height() + ")");
                            clips.add(c);
                            videos.add(v);
                            plans.add(plan);
                            frameCount += plan.size();
                            imageParts += plan.size();
                            items.add(new PlannedItem(c, null, plan, v));
                        }
                    }
                }
                planned.add(new PlannedMessage(d.role(), items));
            }

            // the text around the images, counted with the template: each image part renders one placeholder
            int[] onePerImage = new int[imageParts];
            Arrays.fill(onePerImage, 1);
            fixed = new PromptEncoder(m.tokenizer()).encode(m.chatTemplate().render(messages(), true), onePerImage).ids().length - imageParts;
            int known = fixed + imagesTokens;
            int pagesTotal = 0;
            for (int[] t : pdfTokens) for (int x : t) pagesTotal += x;
            known += pagesTotal;
            int left = context - room - known;                    // for the frames
            if (!pdfs.isEmpty() && left < frameCount * MIN_FRAME_TOKENS) {
                List<String> what = new ArrayList<>();
                for (int i = 0; i < pdfs.size(); i++) what.add(pdfs.get(i).source().name() + ": " + pagesDescription(pdfPages.get(i), pdfTokens.get(i), pdfs.get(i)));
                int other = known - pagesTotal;
                throw new DoesNotFit(String.join("; ", what) + " need " + pagesTotal + " image tokens, but the context of " + context
                        + " tokens leaves " + Math.max(0, context - room - other) + " after the text and images (" + other + ") and room for the answer (" + room + ")"
                        + (frameCount > 0 ? " and the video's frames (" + frameCount + " x " + MIN_FRAME_TOKENS + " at least)" : "")
                        + ": choose fewer " + knobs.pages() + ", a lower " + knobs.dpi() + " or " + knobs.pageTokens() + ", or a larger " + knobs.context());
            }
            if (frameCount > 0) {
                perFrame = Math.max(0, left) / frameCount;
                for (int i = 0; i < clips.size(); i++) {
                    Clip c = clips.get(i);
                    Video.Info info = videos.get(i).info();
                    int want = TokenBudget.tokensAfterFit(info.width(), info.height(), c.frameTokens(), cfg);
                    int budget = Math.min(c.frameTokens(), perFrame);
                    int got = budget >= 1 ? TokenBudget.tokensAfterFit(info.width(), info.height(), budget, cfg) : 0;
                    if (got < Math.min(want, MIN_FRAME_TOKENS)) {
                        String frames = frameCount == plans.get(i).size() ? plans.get(i).size() + " frames"
                                : plans.get(i).size() + " frames (of " + frameCount + " in all)";
                        throw new DoesNotFit(c.source().name() + ": " + frames + " need at least " + MIN_FRAME_TOKENS
                                + " image tokens each (" + frameCount * MIN_FRAME_TOKENS + "), but the context of " + context
                                + " tokens leaves " + Math.max(0, left) + " after the text, images and pages (" + known + ") and room for the answer ("
                                + room + "): use fewer " + knobs.frames() + ", a lower " + knobs.fps() + " or " + knobs.maxFrames() + ", or a larger " + knobs.context());
                    }
                    if (got < want) {
                        report.note(String.format("%d frames of %s at %d image tokens each (%s %d would not fit the context of %d tokens)",
                                plans.get(i).size(), c.source().shortName(), got, knobs.frameTokens(), c.frameTokens(), context));
                    }
                }
            }
        }

        /** The conversation's messages as the template renders them (one image part per image, frame and page). */
        private List<ChatMessage> messages() {
            List<ChatMessage> out = new ArrayList<>();
            for (PlannedMessage pm : planned) {
                List<ChatMessage.Part> parts = new ArrayList<>();
                boolean plain = pm.items().size() == 1 && pm.items().getFirst().item() instanceof Text;
                if (plain) {
                    out.add(ChatMessage.of(pm.role(), ((Text) pm.items().getFirst().item()).text()));
                    continue;
                }
                for (PlannedItem pi : pm.items()) {
                    switch (pi.item()) {
                        case Text t -> parts.add(ChatMessage.textPart(t.text()));
                        case Image ignored -> parts.add(ChatMessage.imagePart());
                        case Pdf ignored -> {
                            for (int p : pi.pages()) {
                                parts.add(ChatMessage.textPart("Page " + p + ":"));
                                parts.add(ChatMessage.imagePart());
                            }
                        }
                        case Clip c -> {
                            for (double s : pi.plan().seconds()) {
                                if (c.timestamps()) parts.add(ChatMessage.textPart("Frame at " + Timestamps.format(s) + ":"));
                                parts.add(ChatMessage.imagePart());
                            }
                        }
                    }
                }
                out.add(ChatMessage.of(pm.role(), parts.toArray(ChatMessage.Part[]::new)));
            }
            return out;
        }

        /** A video's or PDF's line for the user: "talk.mp4: 8 frames of 1500 (01:00 long, 1280x720)", "doc.pdf: 3 pages of 12 at 144 dpi". */
        public String describe(Item item) { return descriptions.get(item); }

        /** Number of frames of every video together (0 without video). */
        public int frameCount() {
            int n = 0;
            for (PlannedMessage pm : planned) for (PlannedItem pi : pm.items()) if (pi.plan() != null) n += pi.plan().size();
            return n;
        }

        /** Image tokens each frame of a clip with this budget may take at most (its own budget, or the shared one if lower). */
        public int frameBudget(Clip c) { return Math.min(c.frameTokens(), perFrame); }

        /**
         * Renders the pages and decodes the frames (frames resized as they are decoded, so only the small copies
         * are kept; one decoder per core), with progress.
         */
        public Built decode(Report report) {
            List<LoadedImage> all = new ArrayList<>();
            List<String> origins = new ArrayList<>();
            for (PlannedMessage pm : planned) {
                for (PlannedItem pi : pm.items()) {
                    switch (pi.item()) {
                        case Text ignored -> {}
                        case Image im -> { all.add(im.image()); origins.add(im.origin()); }
                        case Pdf p -> {
                            PdfDocument doc = (PdfDocument) pi.open();
                            int n = pi.pages().length;
                            for (int i = 0; i < n; i++) {
                                if (report.cancelled()) throw new java.util.concurrent.CancellationException("stopped while rendering " + p.source().shortName());
                                LoadedImage page = doc.render(pi.pages()[i], p.dpi(), maxPixels);
                                all.add(p.pageTokens() != null ? TokenBudget.fit(page, p.pageTokens(), cfg) : page);
                                origins.add(p.source().name() + "#page=" + pi.pages()[i]);
                                if (n >= 4 && (report.redraws() || (i + 1) % Math.max(1, (n + 9) / 10) == 0 || i + 1 == n)) {
                                    report.progress("rendered page " + (i + 1) + "/" + n + " of " + p.source().shortName(), i + 1 == n);
                                }
                            }
                        }
                        case Clip c -> {
                            Video v = (Video) pi.open();
                            FrameSampling.Plan plan = pi.plan();
                            int budget = frameBudget(c), n = plan.size();
                            String name = c.source().shortName(), length = Timestamps.format(v.info().durationSeconds());
                            // a terminal redraws one line per frame; a log or pipe gets about ten plain lines, not one per frame
                            int every = report.redraws() ? 1 : Math.max(1, (n + 9) / 10);
                            all.addAll(v.frames(plan, im -> TokenBudget.fit(im, budget, cfg), (done, total, s) -> {
                                if (report.cancelled()) throw new java.util.concurrent.CancellationException("stopped while decoding " + name);
                                if (done % every == 0 || done == total) {
                                    report.progress("decoding " + name + ": frame " + done + "/" + total + " (" + Timestamps.format(s) + " of " + length + ")", done == total);
                                }
                            }, Runtime.getRuntime().availableProcessors()));
                            for (double s : plan.seconds()) origins.add(c.source().name() + "#t=" + fmt(Math.round(s * 1000) / 1000.0));
                        }
                    }
                }
            }
            int tokens = fixed;
            for (LoadedImage im : all) tokens += ImagePreprocessor.tokensFor(im.width(), im.height(), cfg);
            return new Built(messages(), all, origins, tokens);
        }

        private String pagesDescription(int[] pages, int[] tokens, Pdf p) {
            int max = 0;
            for (int t : tokens) max = Math.max(max, t);
            String which = pages.length == 1 ? "page " + pages[0] : pages.length + " pages (" + (p.pages() != null ? p.pages() : "all") + ")";
            return which + " at " + fmt(p.dpi()) + " dpi" + (p.pageTokens() != null ? " and " + knobs.pageTokens() + " " + p.pageTokens() : "") + " (up to " + max + " tokens a page)";
        }

        @Override
        public void close() {
            for (Object o : opened) {
                if (o instanceof Video v) v.close();
                else if (o instanceof PdfDocument d) d.close();
            }
            opened.clear();
        }
    }

    static String fmt(double v) { return v == Math.rint(v) ? String.valueOf((long) v) : String.valueOf(v); }
}
