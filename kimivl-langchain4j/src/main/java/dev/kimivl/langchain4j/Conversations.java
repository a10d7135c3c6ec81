package dev.kimivl.langchain4j;

import dev.kimivl.generate.Generator;
import dev.kimivl.generate.SamplingParams;
import dev.kimivl.model.KimiVL;
import dev.kimivl.text.ChatMessage;
import dev.kimivl.text.ThinkingSplit;
import dev.kimivl.vision.ImageLoader;
import dev.kimivl.vision.LoadedImage;
import dev.langchain4j.data.image.Image;
import dev.langchain4j.data.message.AiMessage;
import dev.langchain4j.data.message.Content;
import dev.langchain4j.data.message.ImageContent;
import dev.langchain4j.data.message.SystemMessage;
import dev.langchain4j.data.message.TextContent;
import dev.langchain4j.data.message.UserMessage;
import dev.langchain4j.model.chat.request.ChatRequest;
import dev.langchain4j.model.chat.response.ChatResponse;
import dev.langchain4j.model.output.FinishReason;
import dev.langchain4j.model.output.TokenUsage;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.locks.ReentrantLock;

/** Shared by the blocking and streaming models: LangChain4j messages → kimivl prompt → generation → response. */
final class Conversations {
    private final KimiVL model;
    private final Defaults defaults;
    private final ImageLoader images = new ImageLoader();
    /** One generation at a time: the kernels already use every core. */
    private final ReentrantLock lock = new ReentrantLock(true);

    /** Values used when a request leaves them unset. */
    record Defaults(String modelName, int maxTokens, double temperature, int contextCap, long seed) {}

    Conversations(KimiVL model, Defaults defaults) {
        this.model = Objects.requireNonNull(model, "model");
        this.defaults = defaults;
    }

    ChatResponse run(ChatRequest request, Generator.Listener listener) {
        if (request.toolSpecifications() != null && !request.toolSpecifications().isEmpty()) {
            throw new UnsupportedOperationException("kimivl does not support tool calling (Kimi-VL has no tool-call format)");
        }
        List<ChatMessage> messages = new ArrayList<>();
        List<LoadedImage> imgs = new ArrayList<>();
        for (dev.langchain4j.data.message.ChatMessage m : request.messages()) messages.add(convert(m, imgs));
        SamplingParams p = new SamplingParams(
                request.temperature() != null ? request.temperature() : defaults.temperature(),
                request.topK() != null ? request.topK() : 0,
                request.topP() != null ? request.topP() : 1.0,
                0, 1,
                defaults.seed(),
                request.maxOutputTokens() != null ? request.maxOutputTokens() : defaults.maxTokens(),
                request.stopSequences() != null ? request.stopSequences() : List.of());
        lock.lock();
        try {
            KimiVL.Prompt prompt = model.prompt(messages, imgs);
            Generator.Result r = model.generator(defaults.contextCap()).generate(prompt.embeddings(), prompt.ids(), p, listener);
            ThinkingSplit split = ThinkingSplit.of(r.text());
            AiMessage ai = AiMessage.builder().text(split.answer()).thinking(split.reasoning().isEmpty() ? null : split.reasoning()).build();
            return ChatResponse.builder().aiMessage(ai).modelName(defaults.modelName())
                    .tokenUsage(new TokenUsage(r.promptTokens(), r.tokens().length))
                    .finishReason(r.finishReason() == Generator.FinishReason.STOP ? FinishReason.STOP : FinishReason.LENGTH)
                    .build();
        } finally {
            lock.unlock();
        }
    }

    private ChatMessage convert(dev.langchain4j.data.message.ChatMessage m, List<LoadedImage> imgs) {
        if (m instanceof SystemMessage s) return ChatMessage.system(s.text());
        if (m instanceof AiMessage a) return ChatMessage.assistant(a.text() == null ? "" : a.text());
        if (m instanceof UserMessage u) {
            if (u.hasSingleText()) return ChatMessage.user(u.singleText());
            List<ChatMessage.Part> parts = new ArrayList<>();
            for (Content c : u.contents()) {
                if (c instanceof TextContent t) parts.add(ChatMessage.textPart(t.text()));
                else if (c instanceof ImageContent ic) {
                    imgs.add(load(ic.image()));
                    parts.add(ChatMessage.imagePart());
                } else {
                    throw new IllegalArgumentException("content of type " + c.type() + " is not supported (text and images are)");
                }
            }
            return ChatMessage.of("user", parts.toArray(ChatMessage.Part[]::new));
        }
        throw new IllegalArgumentException("message type " + m.type() + " is not supported (system, user, assistant)");
    }

    /** Base64 images, or file: URLs of local files; nothing is downloaded. */
    private LoadedImage load(Image image) {
        if (image.base64Data() != null) return images.load(Base64.getDecoder().decode(image.base64Data()), "image (" + image.mimeType() + ")");
        if (image.url() != null && "file".equals(image.url().getScheme())) return images.load(Path.of(image.url()));
        throw new IllegalArgumentException("image " + image.url() + ": give base64 data or a file: URL; kimivl does not download images");
    }

    String modelName() { return defaults.modelName(); }
}
