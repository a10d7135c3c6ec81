package dev.kimivl.train.recipe;

import dev.kimivl.config.PreprocessorConfig;
import dev.kimivl.text.ChatMessage;
import dev.kimivl.text.ChatTemplate;
import dev.kimivl.text.PromptEncoder;
import dev.kimivl.text.ThinkingSplit;
import dev.kimivl.text.Tokenizer;
import dev.kimivl.train.data.Example;
import dev.kimivl.vision.ImagePreprocessor;
import dev.kimivl.vision.LoadedImage;
import dev.kimivl.vision.PreprocessedImage;

import java.awt.image.BufferedImage;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Turns an {@link Example} into what a training step consumes, exactly as inference will see it: the user turn
 * (images first, then the question) and the assistant's answer rendered by the model's own chat template, image
 * placeholders expanded to one id per merged patch group, the images preprocessed by the model's own preprocessor.
 * Only the answer's tokens and the closing {@code <|im_end|>} are scored (SFT's loss on answers).
 */
public final class ExampleEncoder {
    /**
     * ids [T], targets [T] (−100: not scored; targets[t] is the token after t), isText [T], images in prompt order.
     *
     * @param images  the example's images as the vision tower takes them
     * @param sources the images as drawn, in the same order (their painter's shape maps: the token-label heads' labels)
     * @param bindLabels null, or [T] the region a {@link dev.kimivl.train.BindingHead} is asked for at each position
     *                (−1: nothing asked), set by a stage that trains one
     */
    public record Encoded(int[] ids, int[] targets, boolean[] isText, List<PreprocessedImage> images, int scored, List<BufferedImage> sources,
                          int[] bindLabels) {
        public Encoded(int[] ids, int[] targets, boolean[] isText, List<PreprocessedImage> images, int scored, List<BufferedImage> sources) {
            this(ids, targets, isText, images, scored, sources, null);
        }

        /** This example with a binding head's labels [T]. */
        public Encoded withBindLabels(int[] labels) {
            if (labels.length != ids.length) throw new IllegalArgumentException(labels.length + " binding labels for " + ids.length + " tokens");
            return new Encoded(ids, targets, isText, images, scored, sources, labels);
        }
    }

    private final ChatTemplate template;
    private final PromptEncoder encoder;
    private final ImagePreprocessor preprocessor;
    private final PreprocessorConfig pcfg;
    private final int imEnd, placeholder;

    public ExampleEncoder(Tokenizer tokenizer, ChatTemplate template, PreprocessorConfig pcfg, int placeholderId) {
        this.template = template;
        this.encoder = new PromptEncoder(tokenizer);
        this.preprocessor = new ImagePreprocessor(pcfg);
        this.pcfg = pcfg;
        this.imEnd = tokenizer.tokenId("<|im_end|>").orElseThrow(() -> new IllegalArgumentException("the tokenizer has no <|im_end|>"));
        this.placeholder = placeholderId;
    }

    /** The text the assistant is taught: the answer, after its reasoning in the Thinking format when {@code thinking}. */
    public static String target(Example ex, boolean thinking) {
        if (!thinking) return ex.answer();
        String why = ex.reasoning() != null ? ex.reasoning() : "";
        return ThinkingSplit.OPEN + why + ThinkingSplit.CLOSE + ex.answer();
    }

    /** The user turn of an example: one image part per image (each after its label, if it has one), then the question. */
    public static List<ChatMessage> userTurn(Example ex) {
        List<ChatMessage.Part> parts = new ArrayList<>();
        for (int i = 0; i < ex.images().size(); i++) {
            if (!ex.imageLabels().isEmpty()) parts.add(ChatMessage.textPart(ex.imageLabels().get(i)));
            parts.add(ChatMessage.imagePart());
        }
        parts.add(ChatMessage.textPart(ex.question()));
        return List.of(ChatMessage.of("user", parts.toArray(ChatMessage.Part[]::new)));
    }

    public static LoadedImage toLoaded(BufferedImage im) {
        int[] rgb = im.getRGB(0, 0, im.getWidth(), im.getHeight(), null, 0, im.getWidth());
        return LoadedImage.ofRgb("synthetic", im.getWidth(), im.getHeight(), rgb);
    }

    public Encoded encode(Example ex, boolean thinking) {
        return encode(ex, target(ex, thinking));
    }

    /**
     * Encodes the example's user turn with {@code answer} as the assistant's reply (RL scores sampled answers), then
     * each follow-up question as a user turn and its answer as the assistant's. Every answer and its closing
     * {@code <|im_end|>} are scored; the questions, images and template tokens are not.
     */
    public Encoded encode(Example ex, String answer) {
        List<PreprocessedImage> ims = new ArrayList<>();
        int[] tokens = new int[ex.images().size()];
        for (int i = 0; i < tokens.length; i++) {
            BufferedImage b = ex.images().get(i);
            tokens[i] = ImagePreprocessor.tokensFor(b.getWidth(), b.getHeight(), pcfg);
            ims.add(preprocessor.process(toLoaded(b)));
        }
        List<ChatMessage> conversation = new ArrayList<>(userTurn(ex));
        int[] answerStarts = new int[1 + ex.followUps().size()];
        answerStarts[0] = encoder.encode(template.render(conversation, true), tokens).ids().length;
        conversation.add(ChatMessage.assistant(answer));
        for (int k = 0; k < ex.followUps().size(); k++) {
            conversation.add(ChatMessage.user(ex.followUps().get(k).question()));
            answerStarts[k + 1] = encoder.encode(template.render(conversation, true), tokens).ids().length;
            conversation.add(ChatMessage.assistant(ex.followUps().get(k).answer()));
        }
        int[] ids = encoder.encode(template.render(conversation, false), tokens).ids();
        int[] targets = new int[ids.length];
        Arrays.fill(targets, -100);
        int end = -1, scored = 0;
        for (int k = 0; k < answerStarts.length; k++) {
            int start = answerStarts[k];
            if (start <= end || start >= ids.length) {
                throw new IllegalStateException("the chat template does not render the conversation as its prompts and answers (turn " + (k + 1) + ")");
            }
            end = start;
            while (end < ids.length && ids[end] != imEnd) end++;
            if (end == ids.length) throw new IllegalStateException("the rendered answer of turn " + (k + 1) + " has no <|im_end|>");
            for (int t = start - 1; t < end; t++) targets[t] = ids[t + 1];  // the answer's tokens and its <|im_end|>
            scored += end + 1 - start;
        }
        int T = end + 1;                                       // nothing after the last answer's <|im_end|> is trained
        int[] id = Arrays.copyOf(ids, T);
        targets = Arrays.copyOf(targets, T);
        boolean[] isText = new boolean[T];
        for (int t = 0; t < T; t++) isText[t] = id[t] != placeholder;
        return new Encoded(id, targets, isText, ims, scored, ex.images());
    }
}
