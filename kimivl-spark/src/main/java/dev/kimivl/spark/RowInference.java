package dev.kimivl.spark;

import dev.kimivl.config.GenerationConfig;
import dev.kimivl.generate.Generator;
import dev.kimivl.generate.SamplingParams;
import dev.kimivl.model.KimiVL;
import dev.kimivl.text.ChatMessage;
import dev.kimivl.text.ThinkingSplit;
import dev.kimivl.config.PreprocessorConfig;
import dev.kimivl.media.FrameSampling;
import dev.kimivl.media.PageRange;
import dev.kimivl.media.PdfDocument;
import dev.kimivl.media.Timestamps;
import dev.kimivl.media.TokenBudget;
import dev.kimivl.media.Video;
import dev.kimivl.vision.ImageLoader;
import dev.kimivl.vision.LoadedImage;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FSDataInputStream;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * One row's question to the model: the image, PDF or video (bytes, or a path read on the executor) and the prompt in, an
 * {@link Outcome} out. Whatever is wrong with the row itself (no such file, a corrupt or oversized image, a prompt over
 * the context) becomes the outcome's error; only what is wrong with the executor (the model cannot be used, out of
 * memory) is thrown, so that Spark retries the task elsewhere.
 */
public final class RowInference {
    /**
     * What a row gets back. Counts and answer are null on an error row.
     *
     * @param answer           the model's answer (for a Thinking model, the text after its reasoning)
     * @param reasoning        a Thinking model's reasoning between ◁think▷ and ◁/think▷, else null
     * @param finishReason     stop, length (max tokens) or context (the context filled up)
     * @param timeMs           wall time of the row: reading and decoding the image, encoding it, generating
     */
    public record Outcome(String answer, String reasoning, Integer promptTokens, Integer completionTokens, String finishReason,
                          long timeMs, String error) {
        static Outcome failed(String error, long timeMs) { return new Outcome(null, null, null, null, null, timeMs, error); }
    }

    private final ExecutorModels.Loaded loaded;
    private final InferenceSettings settings;
    private final ImageLoader images;
    private final SamplingParams base;
    private Configuration hadoop;

    public RowInference(ExecutorModels.Loaded loaded, InferenceSettings settings) {
        this.loaded = loaded;
        this.settings = settings;
        this.images = new ImageLoader(settings.maxImagePixels(), "maxImagePixels");
        GenerationConfig g = GenerationConfig.load(loaded.path());       // a GGUF file has none, as in `kimivl run`
        // the same precedence as `kimivl run`: setting, else generation_config.json, else the built-in default
        this.base = new SamplingParams(or(settings.temperature(), g.temperature(), 0.2), or(settings.topK(), g.topK(), 0),
                or(settings.topP(), g.topP(), 1.0), settings.minP(), or(settings.repetitionPenalty(), g.repetitionPenalty(), 1.0),
                settings.seed(), or(settings.maxTokens(), g.maxNewTokens(), 512), settings.stopStrings());
    }

    /**
     * Answers one row.
     *
     * @param image  byte[] (the image file's bytes), a String (a path or URI any Hadoop file system reads), or null for
     *               a text-only question
     * @param name   how errors name the row's image (its path when known)
     * @param prompt the row's prompt, or null for the settings' fixed prompt
     */
    public Outcome answer(Object image, String name, String prompt) {
        long t0 = System.nanoTime();
        try {
            String text = prompt != null ? prompt : settings.prompt();
            if (text == null) return Outcome.failed(name + ": no prompt (the prompt column is null and no fixed prompt is set)", ms(t0));
            byte[] bytes = image == null ? null : image instanceof byte[] b ? checkSize(b, name) : read(image.toString());
            if (bytes != null && bytes.length == 0) return Outcome.failed(name + ": empty file (0 bytes), not an image", ms(t0));
            KimiVL m = loaded.model();
            SamplingParams p = withSeed(rowSeed(bytes, text));
            Generator.Result r = loaded.gate().run(loaded.threadsPerInference(), () -> {
                // decoding images, rendering pages and decoding frames is compute too, so it runs inside the gate;
                // reading the file above does not
                Media media = bytes == null ? new Media(List.of(), List.of()) : media(m, bytes, name);
                KimiVL.Prompt encoded = m.prompt(messages(media.labels(), text), media.images());
                return m.generator(settings.contextLength()).generate(encoded.embeddings(), encoded.ids(), p, null);
            });
            String[] ar = answerAndReasoning(r.text());
            return new Outcome(ar[0], ar[1], r.promptTokens(), r.tokens().length,
                    r.finishReason().name().toLowerCase(java.util.Locale.ROOT), ms(t0), null);
        } catch (RuntimeException e) {
            String msg = e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage();
            // the image loader's messages name the image already; others (context overflow, template) get the name added
            return Outcome.failed(msg.startsWith(name) ? msg : name + ": " + msg, ms(t0));
        }
    }

    /** The images of a row, each with the text before it (null: none). */
    record Media(List<String> labels, List<LoadedImage> images) {}

    /** What a file's first bytes say it is. */
    enum Kind { IMAGE, PDF, VIDEO }

    static Kind kind(byte[] b) {
        if (b.length >= 5 && b[0] == '%' && b[1] == 'P' && b[2] == 'D' && b[3] == 'F' && b[4] == '-') return Kind.PDF;
        // ISO base media (MP4, MOV, M4V, 3GP): a box of any size whose type is ftyp
        if (b.length >= 8 && b[4] == 'f' && b[5] == 't' && b[6] == 'y' && b[7] == 'p') return Kind.VIDEO;
        return Kind.IMAGE;
    }

    /** An image as it is; a PDF's pages and a video's frames as kimivl run --pdf/--video makes them. */
    private Media media(KimiVL m, byte[] bytes, String name) {
        MediaSettings ms = settings.media();
        return switch (kind(bytes)) {
            case IMAGE -> {
                List<String> none = new ArrayList<>();
                none.add(null);
                yield new Media(none, List.of(images.load(bytes, name)));
            }
            case PDF -> {
                PreprocessorConfig cfg = m.vision().preprocessorConfig();
                try (PdfDocument pdf = PdfDocument.open(bytes, name)) {
                    int[] pages;
                    try {
                        pages = PageRange.parse(ms.pages(), pdf.pageCount());
                    } catch (IllegalArgumentException e) {
                        throw new IllegalArgumentException(name + ": " + e.getMessage());
                    }
                    List<String> labels = new ArrayList<>();
                    List<LoadedImage> out = new ArrayList<>();
                    for (int page : pages) {
                        LoadedImage im = pdf.render(page, ms.dpi(), settings.maxImagePixels());
                        out.add(ms.pageTokens() != null ? TokenBudget.fit(im, ms.pageTokens(), cfg) : im);
                        labels.add("Page " + page + ":");
                    }
                    yield new Media(labels, out);
                }
            }
            case VIDEO -> {
                PreprocessorConfig cfg = m.vision().preprocessorConfig();
                try (Video video = Video.open(bytes, name, settings.maxImagePixels())) {
                    Video.Info info = video.info();
                    FrameSampling.Plan plan = FrameSampling.frames(ms.videoFrames(), ms.videoFrames()).plan(info.frames(), info.durationSeconds());
                    List<LoadedImage> frames = video.frames(plan, im -> TokenBudget.fit(im, ms.frameTokens(), cfg), null);
                    List<String> labels = new ArrayList<>();
                    for (double t : plan.seconds()) labels.add(ms.timestamps() ? "Frame at " + Timestamps.format(t) + ":" : null);
                    yield new Media(labels, frames);
                }
            }
        };
    }

    /** The user message: each image after its label, then the text (the order of kimivl run). */
    private List<ChatMessage> messages(List<String> labels, String text) {
        List<ChatMessage> messages = new ArrayList<>();
        if (settings.systemPrompt() != null) messages.add(ChatMessage.system(settings.systemPrompt()));
        if (labels.isEmpty()) {
            messages.add(ChatMessage.user(text));
            return messages;
        }
        List<ChatMessage.Part> parts = new ArrayList<>();
        for (String label : labels) {
            if (label != null) parts.add(ChatMessage.textPart(label));
            parts.add(ChatMessage.imagePart());
        }
        parts.add(ChatMessage.textPart(text));
        messages.add(ChatMessage.of("user", parts.toArray(ChatMessage.Part[]::new)));
        return messages;
    }

    /**
     * {answer, reasoning} of a model's output: a Thinking model's {@code ◁think▷reasoning◁/think▷answer} taken apart
     * (reasoning null when the output opens no thinking block; a block never closed is all reasoning, answer empty).
     */
    static String[] answerAndReasoning(String output) {
        if (!output.stripLeading().startsWith(ThinkingSplit.OPEN)) return new String[]{output, null};
        ThinkingSplit split = ThinkingSplit.of(output);
        return new String[]{split.answer(), split.reasoning()};
    }

    private byte[] checkSize(byte[] b, String name) {
        if (b.length > settings.maxImageBytes()) {
            throw new IllegalArgumentException(name + ": image is " + b.length + " bytes, over maxImageBytes " + settings.maxImageBytes());
        }
        return b;
    }

    /** Reads an image named by path or URI through Hadoop's file systems (file:, hdfs:, s3a:, … as configured). */
    private byte[] read(String path) {
        try {
            if (hadoop == null) hadoop = new Configuration();
            org.apache.hadoop.fs.Path p = new org.apache.hadoop.fs.Path(path);
            FileSystem fs = p.getFileSystem(hadoop);
            FileStatus st = fs.getFileStatus(p);
            if (st.isDirectory()) throw new IllegalArgumentException(path + ": a directory, not an image file");
            long len = st.getLen();
            if (len > settings.maxImageBytes()) {
                throw new IllegalArgumentException(path + ": image file is " + len + " bytes, over maxImageBytes " + settings.maxImageBytes());
            }
            byte[] b = new byte[(int) len];
            try (FSDataInputStream in = fs.open(p)) {
                in.readFully(0, b);
            }
            return b;
        } catch (java.io.FileNotFoundException e) {
            throw new IllegalArgumentException(path + ": image file not found", e);
        } catch (IOException e) {
            throw new IllegalArgumentException(path + ": cannot read image file (" + e.getMessage() + ")", e);
        }
    }

    private SamplingParams withSeed(long seed) {
        return new SamplingParams(base.temperature(), base.topK(), base.topP(), base.minP(), base.repetitionPenalty(), seed,
                base.maxTokens(), base.stopStrings());
    }

    /** The base seed mixed with the row's content (FNV-1a): the same row samples the same answer on a retried task. */
    long rowSeed(byte[] image, String prompt) {
        long h = 0xcbf29ce484222325L ^ settings.seed();
        if (image != null) for (byte b : image) h = (h ^ (b & 0xff)) * 0x100000001b3L;
        for (byte b : prompt.getBytes(StandardCharsets.UTF_8)) h = (h ^ (b & 0xff)) * 0x100000001b3L;
        return h;
    }

    private static long ms(long t0) { return (System.nanoTime() - t0) / 1_000_000; }

    private static <T> T or(T option, T fromCheckpoint, T builtIn) {
        return option != null ? option : fromCheckpoint != null ? fromCheckpoint : builtIn;
    }
}
