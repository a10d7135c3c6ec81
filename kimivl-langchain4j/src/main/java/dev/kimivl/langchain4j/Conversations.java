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
import dev.kimivl.model.KimiVL;
import dev.kimivl.text.ChatMessage;
import dev.kimivl.vision.ImageLoader;
import dev.kimivl.vision.LoadedImage;
import dev.langchain4j.data.image.Image;
import dev.langchain4j.data.message.AiMessage;
import dev.langchain4j.data.message.Content;
import dev.langchain4j.data.message.ImageContent;
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
                KimiVL.Prompt prompt = model.prompt(messages, images);
                return model.generator(contextCap).generate(prompt.embeddings(), prompt.ids(), p, listener, options.withCache(cache));
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

    /** A checked request, ready to generate. */
    record Job(List<ChatMessage> messages, List<LoadedImage> images, SamplingParams sampling, GenerationOptions options,
               JsonShape json) {}

    private final Backend backend;
    private final String modelName;
    private final ChatRequestParameters defaults;
    private final boolean returnThinking;
    private final List<ChatModelListener> listeners;
    private final ImageLoader images = new ImageLoader();
    /** One generation at a time: the kernels already use every core. */
    private final ReentrantLock lock = new ReentrantLock(true);
    private static final SplittableRandom SEEDS = new SplittableRandom();
    private static final ObjectMapper JSON = new ObjectMapper();

    Conversations(Backend backend, String modelName, ChatRequestParameters defaults, boolean returnThinking, List<ChatModelListener> listeners) {
        this.backend = backend;
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
        for (dev.langchain4j.data.message.ChatMessage m : request.messages()) messages.add(convert(m, imgs));

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
        return new Job(messages, imgs, sampling, options, shape(p.responseFormat()));
    }

    private static synchronized long nextSeed() { return SEEDS.nextLong(); }

    /** ResponseFormat JSON without a schema: any object (OpenAI's json_object); with one: that schema. */
    private static JsonShape shape(ResponseFormat format) {
        if (format == null || format.type() == ResponseFormatType.TEXT) return null;
        if (format.jsonSchema() == null || format.jsonSchema().rootElement() == null) return JsonShape.ANY_OBJECT;
        try {
            return JsonShape.fromSchema(JSON.valueToTree(JsonSchemaElementJsonUtils.toMap(format.jsonSchema().rootElement())));
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
            r = backend.generate(job.messages(), job.images(), job.sampling(), split, options);
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
                    throw new UnsupportedFeatureException("content of type " + c.type() + " is not supported by kimivl (text and images are)");
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
