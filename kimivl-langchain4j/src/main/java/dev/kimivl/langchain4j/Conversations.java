package dev.kimivl.langchain4j;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.kimivl.generate.ContextOverflowException;
import dev.kimivl.generate.GenerationOptions;
import dev.kimivl.generate.Generator;
import dev.kimivl.generate.PromptCache;
import dev.kimivl.generate.SamplingParams;
import dev.kimivl.generate.ThinkingFilter;
import dev.kimivl.generate.TokenConstraint;
import dev.kimivl.generate.json.JsonConstraint;
import dev.kimivl.generate.json.JsonShape;
import dev.kimivl.media.FrameSampling;
import dev.kimivl.media.MediaException;
import dev.kimivl.media.MediaMessages;
import dev.kimivl.model.KimiVL;
import dev.kimivl.text.ChatMessage;
import dev.kimivl.vision.ImageLoader;
import dev.kimivl.vision.LoadedImage;
import dev.langchain4j.data.image.Image;
import dev.langchain4j.data.message.AiMessage;
import dev.langchain4j.data.message.Content;
import dev.langchain4j.data.message.ImageContent;
import dev.langchain4j.data.message.PdfFileContent;
import dev.langchain4j.data.message.VideoContent;
import dev.langchain4j.data.message.SystemMessage;
import dev.langchain4j.data.message.TextContent;
import dev.langchain4j.data.message.UserMessage;
import dev.langchain4j.exception.InvalidRequestException;
import dev.langchain4j.exception.LangChain4jException;
import dev.langchain4j.exception.ModelNotFoundException;
import dev.langchain4j.exception.UnsupportedFeatureException;
import dev.langchain4j.internal.JsonSchemaElementJsonUtils;
import dev.langchain4j.model.chat.listener.ChatModelListener;
import dev.langchain4j.model.chat.request.ChatRequest;
import dev.langchain4j.model.chat.request.ChatRequestParameters;
import dev.langchain4j.model.chat.request.ResponseFormat;
import dev.langchain4j.model.chat.request.ResponseFormatType;
import dev.langchain4j.model.chat.request.ToolChoice;
import dev.langchain4j.model.chat.response.ChatResponse;
import dev.langchain4j.model.output.FinishReason;
import dev.langchain4j.model.output.TokenUsage;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Objects;
import java.util.SplittableRandom;
import java.util.UUID;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.BooleanSupplier;

/**
 * Shared by the blocking and streaming models: a LangChain4j request is checked and turned into a kimivl prompt
 * ({@link #prepare}, which throws LangChain4j's exception types), then generated ({@link #execute}).
 */
final class Conversations {
    /** What generation runs on: the model in process; tests may script it. */
    interface Backend {
        Generator.Result generate(List<ChatMessage> messages, List<LoadedImage> images, SamplingParams p,
                                  Generator.Listener listener, GenerationOptions options);

        /** Constrained decoding to JSON of this shape over the model's vocabulary. */
        TokenConstraint json(JsonShape shape);

        /** Prompt tokens the last generation took from the kept cache. */
        default int reusedTokens() { return 0; }

        /**
         * A conversation with videos and PDFs sized to the context (room kept for {@code maxTokens} of answer) and
         * decoded: kimivl-media's {@link MediaMessages}, as {@code kimivl run --video/--pdf} and {@code kimivl chat}.
         */
        default MediaMessages.Built media(List<MediaMessages.Draft> conversation, int maxTokens, MediaOptions options) {
            throw new UnsupportedFeatureException("this backend takes no videos or PDFs");
        }
    }

    /**
     * How videos and PDFs become frames and pages (VideoContent and PdfFileContent carry no such options): the
     * defaults are those of {@code kimivl run --video/--pdf}.
     *
     * @param frames      a fixed number of frames spread over the video, or 0 for {@code fps}
     * @param pageTokens  shrink pages to at most this many image tokens; null: as rendered
     */
    record MediaOptions(int frames, double fps, int maxFrames, int frameTokens, boolean timestamps, float dpi, Integer pageTokens,
                        long maxPixels) {
        static final MediaOptions DEFAULT = new MediaOptions(0, 1.0, 64, 256, true, 144, null, ImageLoader.DEFAULT_MAX_PIXELS);

        MediaOptions {
            sampling(frames, fps, maxFrames);      // the count, rate and maximum checked once, at build time
            if (frameTokens < MediaMessages.MIN_FRAME_TOKENS) throw new IllegalArgumentException("frameTokens must be at least " + MediaMessages.MIN_FRAME_TOKENS + ", not " + frameTokens);
            if (!(dpi >= 1 && dpi <= 1200)) throw new IllegalArgumentException("pdfDpi must be from 1 to 1200, not " + dpi);
            if (pageTokens != null && pageTokens < 1) throw new IllegalArgumentException("pdfPageTokens must be at least 1, not " + pageTokens);
        }

        FrameSampling sampling() { return sampling(frames, fps, maxFrames); }

        private static FrameSampling sampling(int frames, double fps, int maxFrames) {
            return frames > 0 ? FrameSampling.frames(frames, maxFrames) : FrameSampling.perSecond(fps, maxFrames);
        }

        /** The builder methods, named in the advice of a "does not fit" error. */
        static final MediaMessages.Knobs KNOBS = new MediaMessages.Knobs("videoFrames", "videoFps", "maxVideoFrames", "frameTokens",
                "pages (split the PDF)", "pdfDpi", "pdfPageTokens", "contextLength");
    }

    /**
     * The model in process. The KV cache of the last conversation is kept ({@link PromptCache}): a chat-memory
     * conversation's next request computes only its new turn (generation holds the lock, so one cache suffices).
     */
    static Backend backend(KimiVL model, int contextCap) {
        Objects.requireNonNull(model, "model");
        PromptCache cache = new PromptCache();
        return new Backend() {
            @Override
            public Generator.Result generate(List<ChatMessage> messages, List<LoadedImage> images, SamplingParams p,
                                             Generator.Listener listener, GenerationOptions options) {
                // a weight file truncated or replaced since the model was opened: a CheckpointException naming it
                // (one stat per file), not a fault in a kernel reading a lost page (issue 12 item 4)
                model.weights().checkUnchanged();
                KimiVL.Prompt prompt = model.prompt(messages, images);
                return model.generator(contextCap).generate(prompt.embeddings(), prompt.ids(), p, listener, options.withCache(cache));
            }

            @Override
            public MediaMessages.Built media(List<MediaMessages.Draft> conversation, int maxTokens, MediaOptions o) {
                int context = model.contextLength(contextCap);
                return MediaMessages.build(model, conversation, context, MediaMessages.answerRoom(maxTokens, context), o.maxPixels(),
                        MediaOptions.KNOBS, MediaMessages.Report.NONE);
            }

            @Override public int reusedTokens() { return cache.reusedTokens(); }

            @Override
            public TokenConstraint json(JsonShape shape) {
                return new JsonConstraint(shape, model.tokenizer(), model.config().text().vocabSize());
            }
        };
    }

    /** Receives the answer and the reasoning as they are generated. */
    interface Sink {
        void answer(String text);

        void thinking(String text);

        Sink NONE = new Sink() {
            @Override public void answer(String text) {}
            @Override public void thinking(String text) {}
        };
    }

    /**
     * A checked request, ready to generate. With videos or PDFs, {@code media} holds the conversation still to be
     * sized and decoded (on the generating thread: a streaming chat() returns at once) and messages/images are empty.
     */
    record Job(List<ChatMessage> messages, List<LoadedImage> images, SamplingParams sampling, GenerationOptions options,
               JsonShape json, List<MediaMessages.Draft> media) {}

    private final Backend backend;
    private final String modelName;
    private final ChatRequestParameters defaults;
    private final boolean returnThinking;
    private final List<ChatModelListener> listeners;
    private final ImageLoader images;
    private final MediaOptions media;
    /** One generation at a time: the kernels already use every core. */
    private final ReentrantLock lock = new ReentrantLock(true);
    private static final SplittableRandom SEEDS = new SplittableRandom();
    private static final ObjectMapper JSON = new ObjectMapper();

    Conversations(Backend backend, String modelName, ChatRequestParameters defaults, boolean returnThinking, List<ChatModelListener> listeners) {
        this(backend, modelName, defaults, returnThinking, listeners, MediaOptions.DEFAULT);
    }

    Conversations(Backend backend, String modelName, ChatRequestParameters defaults, boolean returnThinking, List<ChatModelListener> listeners,
                  MediaOptions media) {
        this.backend = backend;
        this.media = media;
        this.images = new ImageLoader(media.maxPixels(), "maxImagePixels");
        this.modelName = modelName;
        this.defaults = defaults;
        this.returnThinking = returnThinking;
        this.listeners = List.copyOf(listeners);
    }

    ChatRequestParameters defaultParameters() { return defaults; }

    /** Prompt tokens the last generation reused from the cache (tests). */
    int reusedTokens() { return backend.reusedTokens(); }

    List<ChatModelListener> listeners() { return listeners; }

    String modelName() { return modelName; }

    ChatResponse run(ChatRequest request, Sink sink, BooleanSupplier cancelled) {
        return execute(prepare(request), sink, cancelled);
    }

    /** Checks a request (LangChain4j has already merged the default parameters into it) and converts it. */
    Job prepare(ChatRequest request) {
        ChatRequestParameters p = request.parameters();
        if (p.toolSpecifications() != null && !p.toolSpecifications().isEmpty() || p.toolChoice() == ToolChoice.REQUIRED) {
            throw new UnsupportedFeatureException("kimivl does not support tool calling (Kimi-VL has no tool-call format)");
        }
        if (p.modelName() != null && !p.modelName().equals(modelName)) {
            throw new ModelNotFoundException("model '" + p.modelName() + "' is not the model loaded here ('" + modelName + "'): leave modelName unset or give that name");
        }
        List<ChatMessage> messages = new ArrayList<>();
        List<LoadedImage> imgs = new ArrayList<>();
        List<MediaMessages.Draft> drafts = null;
        if (request.messages().stream().anyMatch(Conversations::hasMedia)) {
            drafts = new ArrayList<>();
            for (dev.langchain4j.data.message.ChatMessage m : request.messages()) drafts.add(draft(m));
        } else {
            for (dev.langchain4j.data.message.ChatMessage m : request.messages()) messages.add(convert(m, imgs));
        }

        long seed = p instanceof KimiVLChatRequestParameters k && k.seed() != null ? k.seed() : nextSeed();
        SamplingParams sampling;
        GenerationOptions options;
        try {
            sampling = new SamplingParams(
                    p.temperature() != null ? p.temperature() : 0.2,
                    p.topK() != null ? p.topK() : 0,
                    p.topP() != null ? p.topP() : 1.0,
                    0, 1, seed,
                    p.maxOutputTokens() != null ? p.maxOutputTokens() : 1024,
                    p.stopSequences() != null ? p.stopSequences() : List.of());
            options = GenerationOptions.NONE.withPenalties(
                    p.frequencyPenalty() != null ? p.frequencyPenalty() : 0,
                    p.presencePenalty() != null ? p.presencePenalty() : 0);
        } catch (IllegalArgumentException e) {
            throw new InvalidRequestException(e.getMessage(), e);
        }
        return new Job(messages, imgs, sampling, options, shape(p.responseFormat()), drafts);
    }

    private static synchronized long nextSeed() { return SEEDS.nextLong(); }

    /** ResponseFormat JSON without a schema: any object (OpenAI's json_object); with one: that schema. */
    private static JsonShape shape(ResponseFormat format) {
        if (format == null || format.type() == ResponseFormatType.TEXT) return null;
        if (format.jsonSchema() == null || format.jsonSchema().rootElement() == null) return JsonShape.ANY_OBJECT;
        try {
            // errors name the keyword's path, e.g. "responseFormat.jsonSchema.rootElement.properties.zip.pattern is not supported ..."
            return JsonShape.fromSchema(JSON.valueToTree(JsonSchemaElementJsonUtils.toMap(format.jsonSchema().rootElement())),
                    "responseFormat.jsonSchema.rootElement");
        } catch (dev.kimivl.generate.json.UnsupportedSchemaException e) {
            // a keyword constrained decoding cannot enforce (pattern, ...): refused, never silently ignored
            throw new UnsupportedFeatureException("response format '" + format.jsonSchema().name() + "': " + e.getMessage());
        } catch (IllegalArgumentException e) {
            throw new InvalidRequestException("response format '" + format.jsonSchema().name() + "': " + e.getMessage(), e);
        }
    }

    ChatResponse execute(Job job, Sink sink, BooleanSupplier cancelled) {
        StringBuilder answer = new StringBuilder(), thinking = new StringBuilder();
        // the final message is built from exactly what was streamed, so streamed text = AiMessage.text()
        ThinkingFilter split = new ThinkingFilter(t -> { answer.append(t); sink.answer(t); },
                t -> { thinking.append(t); if (returnThinking) sink.thinking(t); });
        GenerationOptions options = job.options().withCancel(cancelled);
        lock.lock();
        Generator.Result r;
        try {
            if (job.json() != null) options = options.withConstraint(backend.json(job.json()));
            List<ChatMessage> messages = job.messages();
            List<LoadedImage> imgs = job.images();
            if (job.media() != null) {
                // frames and pages sized to the context and decoded here, on the generating thread
                MediaMessages.Built b;
                try {
                    b = backend.media(job.media(), job.sampling().maxTokens(), media);
                } catch (MediaException e) {
                    throw new InvalidRequestException(e.getMessage(), e);
                }
                messages = b.messages();
                imgs = b.images();
            }
            r = backend.generate(messages, imgs, job.sampling(), split, options);
            split.finish();
        } catch (ContextOverflowException e) {
            throw new InvalidRequestException(e.getMessage(), e);
        } catch (IllegalArgumentException e) {
            throw new InvalidRequestException(e.getMessage(), e);
        } finally {
            lock.unlock();
        }
        AiMessage ai = AiMessage.builder().text(answer.toString())
                .thinking(returnThinking && !thinking.isEmpty() ? thinking.toString() : null).build();
        return ChatResponse.builder().aiMessage(ai).id("kimivl-" + UUID.randomUUID()).modelName(modelName)
                .tokenUsage(new TokenUsage(r.promptTokens(), r.tokens().length))
                .finishReason(switch (r.finishReason()) {
                    case STOP -> FinishReason.STOP;
                    case LENGTH, CONTEXT -> FinishReason.LENGTH;
                    case CANCELLED -> FinishReason.OTHER;
                })
                .build();
    }

    private static boolean hasMedia(dev.langchain4j.data.message.ChatMessage m) {
        return m instanceof UserMessage u && u.contents().stream().anyMatch(c -> c instanceof VideoContent || c instanceof PdfFileContent);
    }

    /** A message of a request with videos or PDFs: its pieces, for kimivl-media to size and decode. */
    private MediaMessages.Draft draft(dev.langchain4j.data.message.ChatMessage m) {
        if (!(m instanceof UserMessage u) || u.hasSingleText()) {
            List<LoadedImage> none = new ArrayList<>();
            return MediaMessages.Draft.of(convert(m, none), none.iterator());
        }
        List<MediaMessages.Item> items = new ArrayList<>();
        for (Content c : u.contents()) {
            switch (c) {
                case TextContent t -> items.add(new MediaMessages.Text(t.text()));
                case ImageContent ic -> items.add(new MediaMessages.Image(load(ic.image()), null));
                case VideoContent vc -> items.add(new MediaMessages.Clip(source("video", vc.video().base64Data(), vc.video().mimeType(), vc.video().url()),
                        media.sampling(), media.frameTokens(), media.timestamps()));
                case PdfFileContent pc -> items.add(new MediaMessages.Pdf(source("PDF", pc.pdfFile().base64Data(), pc.pdfFile().mimeType(), pc.pdfFile().url()),
                        null, media.dpi(), media.pageTokens()));
                default -> throw new UnsupportedFeatureException("content of type " + c.type() + " is not supported by kimivl (text, images, videos and PDFs are)");
            }
        }
        return new MediaMessages.Draft("user", items);
    }

    /** Base64 data, or a file: URL of a local file; nothing is downloaded. */
    private static MediaMessages.Source source(String what, String base64, String mimeType, java.net.URI url) {
        if (base64 != null) {
            try {
                return MediaMessages.Source.of(Base64.getDecoder().decode(base64), what + " (" + (mimeType != null ? mimeType : "base64") + ")");
            } catch (IllegalArgumentException e) {
                throw new InvalidRequestException(what + ": the base64 data does not decode: " + e.getMessage(), e);
            }
        }
        if (url != null && "file".equals(url.getScheme())) {
            Path f = Path.of(url);
            if (!java.nio.file.Files.isRegularFile(f)) throw new InvalidRequestException(what + " " + f + ": no such file");
            return MediaMessages.Source.of(f);
        }
        throw new UnsupportedFeatureException(what + " " + url + ": give base64 data or a file: URL; kimivl does not download");
    }

    private ChatMessage convert(dev.langchain4j.data.message.ChatMessage m, List<LoadedImage> imgs) {
        if (m instanceof SystemMessage s) return ChatMessage.system(s.text());
        if (m instanceof AiMessage a) {
            if (a.hasToolExecutionRequests()) throw new UnsupportedFeatureException("kimivl does not support tool calling (an AiMessage with tool execution requests)");
            return ChatMessage.assistant(a.text() == null ? "" : a.text());   // history keeps only answers (spec §7.2)
        }
        if (m instanceof UserMessage u) {
            if (u.hasSingleText()) return ChatMessage.user(u.singleText());
            List<ChatMessage.Part> parts = new ArrayList<>();
            for (Content c : u.contents()) {
                if (c instanceof TextContent t) parts.add(ChatMessage.textPart(t.text()));
                else if (c instanceof ImageContent ic) {
                    imgs.add(load(ic.image()));
                    parts.add(ChatMessage.imagePart());
                } else {
                    throw new UnsupportedFeatureException("content of type " + c.type() + " is not supported by kimivl (text, images, videos and PDFs are)");
                }
            }
            return ChatMessage.of("user", parts.toArray(ChatMessage.Part[]::new));
        }
        throw new UnsupportedFeatureException("message type " + m.type() + " is not supported by kimivl (system, user, assistant)");
    }

    /** Base64 images, or file: URLs of local files; nothing is downloaded. */
    private LoadedImage load(Image image) {
        try {
            if (image.base64Data() != null) return images.load(Base64.getDecoder().decode(image.base64Data()), "image (" + image.mimeType() + ")");
            if (image.url() != null && "file".equals(image.url().getScheme())) return images.load(Path.of(image.url()));
        } catch (LangChain4jException e) {
            throw e;
        } catch (RuntimeException e) {
            throw new InvalidRequestException(e.getMessage(), e);
        }
        throw new UnsupportedFeatureException("image " + image.url() + ": give base64 data or a file: URL; kimivl does not download images");
    }
}
