package dev.kimivl.text;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * Turns generated ids into text one id at a time. A character whose UTF-8 bytes span several tokens (CJK,
 * emoji) is held back until its last byte arrives, so a stream never shows a broken character; the pieces
 * returned by {@link #push} followed by {@link #flush} always concatenate to {@link Tokenizer#decode}.
 * Not thread-safe: one instance per generation.
 */
public final class IncrementalDecoder {
    private final Tokenizer tokenizer;
    private final boolean skipSpecial;
    private byte[] pending = new byte[16];
    private int pendingLength;

    IncrementalDecoder(Tokenizer tokenizer, boolean skipSpecial) {
        this.tokenizer = tokenizer;
        this.skipSpecial = skipSpecial;
    }

    /** Adds one id; returns the text that is now complete (possibly empty). */
    public String push(int id) {
        int need = pendingLength + tokenizer.maxTokenBytes(id);
        if (need > pending.length) pending = Arrays.copyOf(pending, Math.max(need, pending.length * 2));
        pendingLength = tokenizer.appendBytes(id, skipSpecial, pending, pendingLength);
        int cut = Utf8.incompleteTailStart(pending, pendingLength);
        if (cut == 0) return "";
        String text = new String(pending, 0, cut, StandardCharsets.UTF_8);
        System.arraycopy(pending, cut, pending, 0, pendingLength - cut);
        pendingLength -= cut;
        return text;
    }

    /** Whether bytes of an unfinished character are held back. */
    public boolean hasPending() { return pendingLength > 0; }

    /** Ends the stream: held-back bytes of an unfinished character are emitted as U+FFFD, as decode does. */
    public String flush() {
        String text = new String(pending, 0, pendingLength, StandardCharsets.UTF_8);
        pendingLength = 0;
        return text;
    }
}
