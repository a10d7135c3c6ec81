package dev.kimivl.model;

import dev.kimivl.config.ModelConfig;
import dev.kimivl.config.PreprocessorConfig;
import dev.kimivl.io.CheckpointException;
import dev.kimivl.io.SafetensorsCheckpoint;
import dev.kimivl.io.WeightSource;
import dev.kimivl.io.gguf.GgufFile;
import dev.kimivl.io.gguf.GgufModel;
import dev.kimivl.io.gguf.GgufTokenizer;
import dev.kimivl.generate.Generator;
import dev.kimivl.text.ChatMessage;
import dev.kimivl.text.ChatTemplate;
import dev.kimivl.text.PromptEncoder;
import dev.kimivl.text.Tokenizer;
import dev.kimivl.vision.LoadedImage;
import dev.kimivl.vision.VisionEncoder;
import dev.kimivl.vision.VisionOutput;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * A loaded Kimi-VL (or plain DeepSeek text) checkpoint: config, mapped weights (validated against the config),
 * the language model, and, when the directory has them, tokenizer and chat template.
 */
public final class KimiVL implements AutoCloseable {
    private final Path dir;
    private final ModelConfig config;
    private final PreprocessorConfig preprocessor;
    private final WeightSource weights;
    private final LanguageModel lm;
    private final Tokenizer tokenizer;        // null when the directory has no tiktoken.model
    private final ChatTemplate template;
    private final VisionEncoder vision;       // null for text-only checkpoints

    private KimiVL(Path dir, ModelConfig config, PreprocessorConfig preprocessor, WeightSource weights, LanguageModel lm,
                   Tokenizer tokenizer, ChatTemplate template, VisionEncoder vision) {
        this.dir = dir;
        this.config = config;
        this.preprocessor = preprocessor;
        this.weights = weights;
        this.lm = lm;
        this.tokenizer = tokenizer;
        this.template = template;
        this.vision = vision;
    }

    /** The JVM options an application embedding kimivl needs (the launcher passes them). */
    public static final String JVM_OPTIONS = "--add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED";

    /**
     * Fails with one line naming the JVM options when the Vector API module is missing: otherwise the first kernel
     * dies later with a bare {@code NoClassDefFoundError: jdk/incubator/vector/Vector}.
     */
    public static void requireVectorModule() {
        if (ModuleLayer.boot().findModule("jdk.incubator.vector").isEmpty()) {
            throw new IllegalStateException("kimivl needs the JVM options " + JVM_OPTIONS
                    + " (the Vector API module is not loaded: add them to java's command line, surefire's argLine or MAVEN_OPTS/exec's jvmArgs)");
        }
    }

    /** Opens a Hugging Face checkpoint directory, or a GGUF text file (see {@link #open(Path, Path)}). */
    public static KimiVL open(Path path) { return open(path, null); }

    /**
     * Opens a Hugging Face checkpoint directory, or GGUF files in llama.cpp's Kimi-VL layout: a text model
     * (deepseek2) with an optional mmproj (clip, projector kimivl) for images.
     */
    public static KimiVL open(Path path, Path mmproj) {
        requireVectorModule();
        if (Files.isRegularFile(path) || mmproj != null) return openGguf(path, mmproj);
        Path dir = path;
        ModelConfig config = ModelConfig.load(dir);
        WeightSource weights = SafetensorsCheckpoint.open(dir);
        try {
            ExpectedTensors.validate(weights, config);
            LanguageModel lm = LanguageModel.load(weights, config.text(), config.textPrefix());
            Tokenizer tok = Files.isRegularFile(dir.resolve("tiktoken.model")) ? Tokenizer.load(dir) : null;
            ChatTemplate template = ChatTemplate.load(dir);
            PreprocessorConfig pre = PreprocessorConfig.load(dir);
            VisionEncoder vision = config.hasVision() ? new VisionEncoder(weights, config, pre) : null;
            if (vision != null && tok != null) {
                int pad = tok.tokenId("<|media_pad|>").orElse(-1);
                if (pad != config.mediaPlaceholderTokenId()) {
                    throw new CheckpointException(dir + ": the tokenizer's <|media_pad|> is id " + pad + " but config.json's media_placeholder_token_id is "
                            + config.mediaPlaceholderTokenId() + "; images could not be placed in prompts");
                }
            }
            return new KimiVL(dir, config, pre, weights, lm, tok, template, vision);
        } catch (IOException e) {
            weights.close();
            throw new CheckpointException(dir + ": " + e.getMessage(), e);
        } catch (RuntimeException e) {
            weights.close();
            throw e;
        }
    }

    private static KimiVL openGguf(Path text, Path mmproj) {
        if (!Files.isRegularFile(text)) throw new CheckpointException(text + ": not a GGUF file (with --mmproj, --model must name the text GGUF)");
        GgufModel g = GgufModel.open(mmproj == null ? new Path[]{text} : new Path[]{text, mmproj});
        try {
            ModelConfig config = g.config();
            if (config.text() == null) throw new CheckpointException(text + ": no text model in this GGUF (an mmproj goes with --mmproj)");
            ExpectedTensors.validate(g, config);
            LanguageModel lm = LanguageModel.load(g, config.text(), config.textPrefix());
            Tokenizer tok = GgufTokenizer.load(g.textFile());
            String src = g.textFile().string("tokenizer.chat_template", null);
            ChatTemplate template = src != null ? ChatTemplate.of(src, text + " tokenizer.chat_template") : ChatTemplate.builtIn();
            PreprocessorConfig pre = g.mmprojFile() == null ? PreprocessorConfig.DEFAULT : preprocessorFromMmproj(g.mmprojFile());
            VisionEncoder vision = config.hasVision() ? new VisionEncoder(g, config, pre) : null;
            return new KimiVL(text, config, pre, g, lm, tok, template, vision);
        } catch (RuntimeException e) {
            g.close();
            throw e;
        }
    }

    /**
     * llama.cpp's mmproj stores mean, std and patch size; in_token_limit is not stored, so the Instruct/Thinking
     * value 4096 applies (Thinking-2506 uses 16384: give its preprocessor_config.json's value when that matters).
     */
    private static PreprocessorConfig preprocessorFromMmproj(GgufFile f) {
        PreprocessorConfig d = PreprocessorConfig.DEFAULT;
        double[] mean = f.metadata().get("clip.vision.image_mean") instanceof double[] m ? m : d.imageMean();
        double[] std = f.metadata().get("clip.vision.image_std") instanceof double[] s ? s : d.imageStd();
        return new PreprocessorConfig(mean, std, d.inTokenLimit(), true, (int) f.integer("clip.vision.patch_size", d.patchSize()), d.mergeH(), d.mergeW());
    }

    public Path dir() { return dir; }
    public ModelConfig config() { return config; }
    public PreprocessorConfig preprocessor() { return preprocessor; }
    public WeightSource weights() { return weights; }
    public LanguageModel languageModel() { return lm; }
    public ChatTemplate chatTemplate() { return template; }

    public boolean hasVision() { return vision != null; }

    /** The MoonViT encoder + projector; an error for text-only checkpoints. */
    public VisionEncoder vision() {
        if (vision == null) throw new IllegalArgumentException(dir + " is a text-only model (no vision_config): it cannot take images");
        return vision;
    }

    public boolean hasTokenizer() { return tokenizer != null; }

    public Tokenizer tokenizer() {
        if (tokenizer == null) throw new CheckpointException(dir + ": no tiktoken.model, so text cannot be tokenized (token ids still work, e.g. with 'kimivl forward')");
        return tokenizer;
    }

    /** The context window: max_position_embeddings, optionally capped by the caller. */
    public int contextLength(int cap) {
        int max = config.text().maxPositionEmbeddings();
        return cap > 0 ? Math.min(cap, max) : max;
    }

    /** A prompt ready for the language model: ids with image placeholders expanded, embeddings with features merged. */
    public record Prompt(int[] ids, float[] embeddings) {}

    /**
     * How many tokens each image block of a prompt takes, in order: the lengths of its runs of the media placeholder
     * id (one run per image, video frame or PDF page).
     */
    public List<Integer> imageTokenCounts(Prompt prompt) {
        int placeholder = config().mediaPlaceholderTokenId();
        int[] ids = prompt.ids();
        List<Integer> runs = new java.util.ArrayList<>();
        for (int i = 0; i < ids.length; i++) {
            if (ids[i] != placeholder) continue;
            int j = i;
            while (j < ids.length && ids[j] == placeholder) j++;
            runs.add(j - i);
            i = j;
        }
        return runs;
    }

    /**
     * Renders a conversation with the chat template (adding the assistant opener), encodes it, and merges the
     * images' features at their placeholders. {@code images} are the conversation's image parts in order.
     */
    public Prompt prompt(List<ChatMessage> messages, List<LoadedImage> images) {
        int parts = 0;
        for (ChatMessage m : messages) parts += m.imageCount();
        if (parts != images.size()) {
            throw new IllegalArgumentException("the conversation has " + parts + " image part(s) but " + images.size() + " image(s) were given");
        }
        String rendered = template.render(messages, true);
        PromptEncoder encoder = new PromptEncoder(tokenizer());
        if (images.isEmpty()) {
            int[] ids = encoder.encode(rendered).ids();
            return new Prompt(ids, lm.embed(ids));
        }
        VisionOutput v = vision().encode(images);
        weights.releaseVisionPages();                  // mmproj pages leave the process (not the page cache) until the next image
        int[] ids = encoder.encode(rendered, v.tokens()).ids();
        float[] emb = lm.embed(ids);
        ImageMerge.merge(emb, ids, config.mediaPlaceholderTokenId(), v.features(), v.textHidden());
        return new Prompt(ids, emb);
    }

    /** A generation loop over this model with the context capped at {@code contextCap} tokens (0: the model's maximum). */
    public Generator generator(int contextCap) { return new Generator(lm, tokenizer(), contextLength(contextCap)); }

    @Override public void close() { weights.close(); }
}
