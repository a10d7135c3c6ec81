package dev.kimivl.generate;

/** A prompt that does not fit the context window. kimivl never truncates a prompt silently. */
public final class ContextOverflowException extends IllegalArgumentException {
    public final int promptTokens, contextTokens;

    public ContextOverflowException(int promptTokens, int contextTokens) {
        super("the prompt has " + promptTokens + " tokens but the context holds " + contextTokens
                + " (and at least one more is needed to answer); shorten the prompt or images, or raise the context length");
        this.promptTokens = promptTokens;
        this.contextTokens = contextTokens;
    }
}
