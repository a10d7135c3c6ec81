package dev.kimivl.langchain4j;

import dev.kimivl.model.KimiVL;
import dev.langchain4j.model.chat.Capability;
import dev.langchain4j.model.chat.ChatModel;
import dev.langchain4j.model.chat.listener.ChatModelListener;
import dev.langchain4j.model.chat.request.ChatRequest;
import dev.langchain4j.model.chat.request.ChatRequestParameters;
import dev.langchain4j.model.chat.request.ResponseFormat;
import dev.langchain4j.model.chat.response.ChatResponse;

import java.util.ArrayList;
import java.util.List;
import java.util.Set;

/**
 * Kimi-VL as a LangChain4j {@link ChatModel}, running in process. Text, images, videos ({@code VideoContent}) and
 * PDFs ({@code PdfFileContent}) in user messages, as base64 data or file: URLs; a video becomes its frames and a PDF
 * its pages, each an image block with its label, sampled and sized to the context exactly as by
 * {@code kimivl run --video/--pdf} (kimivl-media; the options below, docs/long-inputs.md); a Thinking model's reasoning is returned as {@code AiMessage.thinking()}, the answer as its text;
 * {@code ResponseFormat.JSON} with or without a JSON schema is served by constrained decoding (the answer always
 * parses; {@link Capability#RESPONSE_FORMAT_JSON_SCHEMA}, so AiServices returning a record asks for it).
 * Errors are LangChain4j's types: {@code UnsupportedFeatureException} (tools, audio, remote images),
 * {@code InvalidRequestException} (bad parameters, a prompt over the context, an unreadable image, video or PDF,
 * frames or pages that do not fit the context),
 * {@code ModelNotFoundException} (a request naming another model).
 *
 * <pre>{@code
 * try (KimiVL model = KimiVL.open(Path.of("Kimi-VL-A3B-Instruct"))) {
 *     ChatModel chat = KimiVLChatModel.builder(model).temperature(0.2).build();
 *     String answer = chat.chat("Describe Kimi-VL in one sentence.");
 * }
 * }</pre>
 */
public final class KimiVLChatModel implements ChatModel {
    private final Conversations conversations;

    KimiVLChatModel(Conversations conversations) { this.conversations = conversations; }

    public static Builder builder(KimiVL model) { return new Builder(model); }

    /** Generates on the calling thread; interrupting it ends the generation (finish reason OTHER). */
    @Override
    public ChatResponse doChat(ChatRequest request) {
        Thread caller = Thread.currentThread();
        return conversations.run(request, Conversations.Sink.NONE, caller::isInterrupted);
    }

    @Override public ChatRequestParameters defaultRequestParameters() { return conversations.defaultParameters(); }

    /** Prompt tokens the last request took from the kept KV cache instead of computing them. */
    int reusedTokens() { return conversations.reusedTokens(); }

    @Override public List<ChatModelListener> listeners() { return conversations.listeners(); }

    @Override public Set<Capability> supportedCapabilities() { return Set.of(Capability.RESPONSE_FORMAT_JSON_SCHEMA); }

    /** Options shared by both model kinds; unset ones take the defaults shown. */
    public static class Builder {
        final KimiVL model;
        String modelName;
        int maxTokens = 1024, contextCap;
        double temperature = 0.2, topP = 1.0, frequencyPenalty, presencePenalty;
        Integer topK;
        Long seed;
        boolean returnThinking = true;
        ResponseFormat responseFormat = ResponseFormat.TEXT;
        final List<ChatModelListener> listeners = new ArrayList<>();
        int videoFrames;
        double videoFps = 1.0;
        int maxVideoFrames = 64, frameTokens = 256;
        boolean videoTimestamps = true;
        float pdfDpi = 144;
        Integer pdfPageTokens;
        long maxImagePixels = dev.kimivl.vision.ImageLoader.DEFAULT_MAX_PIXELS;
        Conversations.Backend backend;

        Builder(KimiVL model) {
            KimiVL.requireVectorModule();
            this.model = java.util.Objects.requireNonNull(model, "model");
            this.modelName = model.dir().getFileName().toString();
        }

        /** The name responses carry and requests may give (another name is a ModelNotFoundException); default: the directory's name. */
        public Builder modelName(String name) { this.modelName = name; return this; }
        public Builder maxTokens(int n) { this.maxTokens = n; return this; }
        public Builder temperature(double t) { this.temperature = t; return this; }
        public Builder topP(double p) { this.topP = p; return this; }
        /** null or 0: off. */
        public Builder topK(Integer k) { this.topK = k; return this; }
        /** OpenAI's penalties over the tokens generated so far, in [-2, 2]. */
        public Builder frequencyPenalty(double p) { this.frequencyPenalty = p; return this; }
        public Builder presencePenalty(double p) { this.presencePenalty = p; return this; }
        public Builder contextLength(int cap) { this.contextCap = cap; return this; }
        /** A fixed seed for every request (reproducible answers); unset: a fresh seed per request. */
        public Builder seed(long seed) { this.seed = seed; return this; }
        /** Whether a Thinking model's reasoning reaches {@code AiMessage.thinking()} and {@code onPartialThinking} (default true); the answer never carries it. */
        public Builder returnThinking(boolean r) { this.returnThinking = r; return this; }
        public Builder responseFormat(ResponseFormat f) { this.responseFormat = f; return this; }
        public Builder listeners(List<ChatModelListener> l) { this.listeners.clear(); this.listeners.addAll(l); return this; }
        public Builder listeners(ChatModelListener... l) { return listeners(List.of(l)); }

        /** Each video gives this many frames, spread evenly over it (instead of {@link #videoFps}). */
        public Builder videoFrames(int n) { this.videoFrames = n; return this; }
        /** Frames per second taken from a video (default 1); more than {@link #maxVideoFrames} are spread over the whole video instead. */
        public Builder videoFps(double fps) { this.videoFps = fps; this.videoFrames = 0; return this; }
        /** At most this many frames a video (default 64). */
        public Builder maxVideoFrames(int n) { this.maxVideoFrames = n; return this; }
        /** Image tokens per frame at most (default 256); fewer when the frames would not fit the context otherwise (at least 16, else an error). */
        public Builder frameTokens(int n) { this.frameTokens = n; return this; }
        /** "Frame at mm:ss:" before each frame (default true). */
        public Builder videoTimestamps(boolean on) { this.videoTimestamps = on; return this; }
        /** Resolution PDF pages are rendered at (default 144). Every page is taken; pages that do not fit the context are an error. */
        public Builder pdfDpi(float dpi) { this.pdfDpi = dpi; return this; }
        /** Shrink each PDF page to at most this many image tokens (default: as rendered). */
        public Builder pdfPageTokens(Integer n) { this.pdfPageTokens = n; return this; }
        /** Images, frames and pages of more pixels are refused before they are decoded (default 64 Mi). */
        public Builder maxImagePixels(long n) { this.maxImagePixels = n; return this; }

        /** For tests: generation by something other than the model (the request checks stay the same). */
        Builder backend(Conversations.Backend b) { this.backend = b; return this; }

        Conversations conversations() {
            KimiVLChatRequestParameters defaults = KimiVLChatRequestParameters.builder()
                    .modelName(modelName).temperature(temperature).topP(topP).topK(topK)
                    .frequencyPenalty(frequencyPenalty).presencePenalty(presencePenalty)
                    .maxOutputTokens(maxTokens).stopSequences(List.of()).responseFormat(responseFormat)
                    .seed(seed).build();
            Conversations.MediaOptions media;
            try {
                media = new Conversations.MediaOptions(videoFrames, videoFps, maxVideoFrames, frameTokens, videoTimestamps, pdfDpi, pdfPageTokens, maxImagePixels);
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("KimiVLChatModel.builder: " + e.getMessage(), e);
            }
            return new Conversations(backend != null ? backend : Conversations.backend(model, contextCap),
                    modelName, defaults, returnThinking, listeners, media);
        }

        public KimiVLChatModel build() { return new KimiVLChatModel(conversations()); }

        public KimiVLStreamingChatModel buildStreaming() { return new KimiVLStreamingChatModel(conversations()); }
    }
}
