package dev.kimivl.train.probe;

import dev.kimivl.config.ModelConfig;
import dev.kimivl.config.PreprocessorConfig;
import dev.kimivl.text.ChatTemplate;
import dev.kimivl.text.Tokenizer;
import dev.kimivl.train.VisionGrad;
import dev.kimivl.train.recipe.ExampleEncoder;
import dev.kimivl.vision.ImagePreprocessor;
import dev.kimivl.vision.PreprocessedImage;

import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The vision side of a trained checkpoint, frozen: its MoonViT and projector ({@link VisionGrad}, forward only), and
 * the tokenizer, chat template and image preprocessor from the same folder, so that images become exactly the tokens
 * a training step would give the language model.
 */
public final class FrozenVision {
    /** Images per forward pass: the tower packs them into one sequence; more only costs memory. */
    private static final int CHUNK = 16;

    public final Path dir;
    public final ModelConfig config;
    public final VisionGrad tower;
    public final PreprocessorConfig preprocessorConfig;
    public final ImagePreprocessor preprocessor;
    public final Tokenizer tokenizer;
    public final ChatTemplate template;
    public final ExampleEncoder encoder;

    private FrozenVision(Path dir) throws IOException {
        this.dir = dir;
        if (!Files.isRegularFile(dir.resolve("config.json")) || !Files.isRegularFile(dir.resolve("model.safetensors"))) {
            throw new IllegalArgumentException(dir + " is not a checkpoint folder (it needs config.json and model.safetensors, "
                    + "e.g. a run's stages/01-vit or models/kimivl-nano-instruct)");
        }
        config = ModelConfig.load(dir);
        if (config.vision() == null || config.mediaPlaceholderTokenId() < 0) {
            throw new IllegalArgumentException(dir + "/config.json has no vision_config: the probes need a vision tower");
        }
        tower = VisionGrad.load(dir);
        preprocessorConfig = PreprocessorConfig.load(dir);
        preprocessor = new ImagePreprocessor(preprocessorConfig);
        tokenizer = Tokenizer.load(dir);
        template = ChatTemplate.load(dir);
        encoder = new ExampleEncoder(tokenizer, template, preprocessorConfig, config.mediaPlaceholderTokenId());
    }

    public static FrozenVision load(Path dir) throws IOException {
        return new FrozenVision(dir);
    }

    /** The width of an image token: the language model's hidden size the projector maps to. */
    public int hidden() { return tower.textHidden(); }

    public PreprocessedImage preprocess(BufferedImage im) {
        return preprocessor.process(ExampleEncoder.toLoaded(im));
    }

    /** Per image its merged tokens' features [tokens, hidden], in the tower's merged (row-major) order. */
    public List<float[]> features(List<PreprocessedImage> images) {
        int D = hidden();
        List<float[]> out = new ArrayList<>(images.size());
        for (int i0 = 0; i0 < images.size(); i0 += CHUNK) {
            List<PreprocessedImage> chunk = images.subList(i0, Math.min(images.size(), i0 + CHUNK));
            float[] f = tower.forward(chunk);                          // [Σ tokens, D]
            int o = 0;
            for (PreprocessedImage p : chunk) {
                int m = p.tokens();
                float[] one = new float[m * D];
                System.arraycopy(f, o, one, 0, m * D);
                out.add(one);
                o += m * D;
            }
            if (o != f.length) throw new IllegalStateException("the tower gave " + f.length / D + " tokens for images of " + o / D);
        }
        return out;
    }
}
