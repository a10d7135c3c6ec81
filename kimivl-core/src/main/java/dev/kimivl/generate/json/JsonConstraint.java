package dev.kimivl.generate.json;

import dev.kimivl.generate.TokenConstraint;
import dev.kimivl.text.Tokenizer;

import java.util.List;

/**
 * Constrained decoding to JSON of a {@link JsonShape} (OpenAI's {@code response_format} {@code json_object} and
 * {@code json_schema}, LangChain4j's {@code ResponseFormat.JSON}): the output always parses and has the schema's
 * structure, types and bounds (what {@link JsonShape} enforces; a keyword it cannot enforce is refused when the schema
 * is compiled), and it is always finished within the token budget — a token is allowed only if the value can still be
 * closed in the tokens left (every ASCII byte is a token of a byte-level BPE vocabulary, so one token per missing
 * byte always suffices). Special tokens are never allowed; stopping is allowed once the value is complete.
 */
public final class JsonConstraint implements TokenConstraint {
    private final Matcher matcher;
    private final byte[][] tokenBytes;      // [id] the token's bytes, null for special or out-of-range ids
    private int lastToken = -1;
    private List<Matcher.State> lastStates;
    /** [b] whether byte b may come next; computed once per step (null: not yet). */
    private boolean[] firstByte;

    /**
     * @param vocab the number of logits (the model's vocabulary; ids the tokenizer lacks are never allowed)
     */
    public JsonConstraint(JsonShape shape, Tokenizer tokenizer, int vocab) {
        this.matcher = new Matcher(shape);
        this.tokenBytes = tokenTable(tokenizer, vocab);
    }

    /** Token bytes by id, shared by every constraint over the same tokenizer (computing them walks the vocabulary). */
    private static final java.util.Map<Tokenizer, byte[][]> TABLES = java.util.Collections.synchronizedMap(new java.util.WeakHashMap<>());

    private static byte[][] tokenTable(Tokenizer tokenizer, int vocab) {
        byte[][] t = TABLES.get(tokenizer);
        if (t != null && t.length == vocab) return t;
        t = new byte[vocab][];
        int n = Math.min(vocab, tokenizer.vocabSize());
        for (int id = 0; id < n; id++) {
            if (tokenizer.isSpecial(id)) continue;
            byte[] b = tokenizer.tokenBytes(id);
            if (b.length > 0) t[id] = b;
        }
        TABLES.put(tokenizer, t);
        return t;
    }

    @Override
    public boolean allows(int token, int remaining) {
        if (token < 0 || token >= tokenBytes.length || tokenBytes[token] == null) return false;
        byte[] b = tokenBytes[token];
        if (firstByte == null) {
            firstByte = new boolean[256];
            for (int i = 0; i < 256; i++) firstByte[i] = matcher.acceptsByte(i);
        }
        if (!firstByte[b[0] & 0xff]) return false;                  // most refusals end here, without allocating states
        List<Matcher.State> next = matcher.tryFeed(b);
        if (next.isEmpty() || matcher.remaining(next) > remaining - 1) return false;
        lastToken = token;
        lastStates = next;
        return true;
    }

    @Override public boolean mayStop() { return matcher.complete(); }

    @Override public boolean finished() { return !matcher.canContinue(); }

    @Override
    public void accept(int token) {
        if (token == lastToken && lastStates != null) matcher.commit(lastStates);
        else matcher.feed(tokenBytes[token]);
        lastToken = -1;
        lastStates = null;
        firstByte = null;
    }

    /** Fewest bytes still needed to finish the value. */
    public int remainingBytes() { return matcher.remaining(); }
}
