package dev.kimivl.generate;

/**
 * Restricts which tokens generation may choose (constrained decoding, e.g. {@link dev.kimivl.generate.json.JsonConstraint}).
 * One instance per generation: it follows the tokens chosen. The generator samples as usual and asks
 * {@link #allows} about the token it drew; only when that one is refused does it ask about every token, mask the
 * refused ones and sample again, so an unconstrained-looking step costs one check.
 */
public interface TokenConstraint {
    /**
     * Whether {@code token} (an ordinary, non-stop token) may come next when {@code remaining} tokens, this one
     * included, are left of the budget: a constraint that must finish its text refuses tokens after which it could not.
     */
    boolean allows(int token, int remaining);

    /** Whether generation may stop now (a stop token, or the end of the budget). */
    boolean mayStop();

    /** Whether nothing may follow any more: generation stops without sampling. */
    boolean finished();

    /** The token chosen (never a stop token). */
    void accept(int token);
}
