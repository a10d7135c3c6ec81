package dev.kimivl.text;

import java.util.Arrays;

/**
 * Turns a rendered prompt into model input ids: the text is encoded with every special token recognised, then
 * each {@code <|media_pad|>} is expanded to its image's number of feature tokens. The expansion happens on ids,
 * not text, so the tokenizer's 25,000-character chunking can never cut a run of placeholders (spec §7.2).
 */
public final class PromptEncoder {
    /** The image placeholder token (spec §7.1). */
    public static final String MEDIA_PAD = "<|media_pad|>";

    private final Tokenizer tokenizer;
    /** {@code <|media_pad|>}'s id, or -1 when the tokenizer has none (a text-only model: it takes no images). */
    private final int placeholder;

    public PromptEncoder(Tokenizer tokenizer) {
        this.tokenizer = tokenizer;
        // a plain DeepSeek GGUF's vocabulary has no <|media_pad|>: its text prompts must still encode (they failed
        // with "has no special token <|media_pad|>": GgufFuzzTest#textHeader's regress-no-media-pad)
        this.placeholder = tokenizer.hasSpecial(MEDIA_PAD) ? tokenizer.specialId(MEDIA_PAD) : -1;
    }

    /**
     * Encoded prompt ids.
     *
     * @param ids          input ids with the placeholders expanded
     * @param imageOffsets for image i, the index in {@code ids} of its first placeholder
     */
    public record EncodedPrompt(int[] ids, int[] imageOffsets) {}

    /**
     * @param renderedPrompt  the chat template's output, one {@code <|media_pad|>} per image
     * @param tokensPerImage  for each image in prompt order, its number of feature tokens, (gh·gw)/4
     * @throws IllegalArgumentException when the number of placeholders and of images differ
     */
    public EncodedPrompt encode(String renderedPrompt, int... tokensPerImage) {
        return expand(tokenizer.encode(renderedPrompt), tokensPerImage);
    }

    /**
     * Like {@link #encode}, from the rendered prompt's ids ({@code tokenizer.encode(renderedPrompt)}, e.g. kept
     * from an earlier turn and extended with {@link Tokenizer#encodeContinuation}).
     */
    public EncodedPrompt expand(int[] text, int... tokensPerImage) {
        if (placeholder < 0 && tokensPerImage.length > 0) {
            throw new IllegalArgumentException("the tokenizer (" + tokenizer.source() + ") has no image placeholder " + MEDIA_PAD
                    + ": a text-only model takes no images");
        }
        int found = 0;
        for (int id : text) if (id == placeholder) found++;
        if (found != tokensPerImage.length) {
            throw new IllegalArgumentException("the prompt has " + found + " image placeholder(s) (" + MEDIA_PAD + ", id "
                    + placeholder + ") but " + tokensPerImage.length + " image(s) were given");
        }
        long total = text.length - found;
        for (int i = 0; i < tokensPerImage.length; i++) {
            if (tokensPerImage[i] < 1) {
                throw new IllegalArgumentException("image " + i + " has " + tokensPerImage[i] + " feature tokens; it needs at least 1");
            }
            total += tokensPerImage[i];
        }
        if (total > Integer.MAX_VALUE - 8) throw new IllegalArgumentException("the expanded prompt would have " + total + " tokens");
        int[] ids = new int[(int) total];
        int[] offsets = new int[tokensPerImage.length];
        int at = 0;
        int image = 0;
        for (int id : text) {
            if (id != placeholder) {
                ids[at++] = id;
                continue;
            }
            offsets[image] = at;
            Arrays.fill(ids, at, at + tokensPerImage[image], placeholder);
            at += tokensPerImage[image++];
        }
        return new EncodedPrompt(ids, offsets);
    }

    /** The id that marks image positions in {@link EncodedPrompt#ids()}; -1 for a tokenizer without one. */
    public int placeholderId() { return placeholder; }
}
