package dev.kimivl.server;

import dev.kimivl.text.ChatMessage;
import dev.kimivl.text.ChatTemplate;
import dev.kimivl.text.Tokenizer;

import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The rendered and tokenized text of conversations seen before, so that a conversation's next turn renders and
 * tokenizes only its new messages: the KV prefix cache already spares the model the history, and without this the
 * chat template and the tokenizer still re-read all of it on every turn.
 *
 * <p>An entry is keyed by a conversation's exact message list (looked up by a hash of it, confirmed with
 * {@code equals}, so that a hash collision is a miss, never another conversation's ids) and holds
 * {@code render(messages, false)} and its token ids (the text's ids: each image is one {@code <|media_pad|>}, expanded
 * later). A request with messages m[0..n) takes the entry of its longest cached prefix m[0..k), renders only
 * m[k..n) ({@link ChatTemplate#renderTail}), tokenizes only that ({@link Tokenizer#encodeContinuation}), keeps the
 * result as the entry of m[0..n) (the prefix of the next turn), and appends the generation prompt the same way.
 * Each step falls back to rendering or tokenizing the whole conversation where the shortcut is not provably the
 * same (a template that is not append-only, a cut the tokenizer cannot prove), so {@link #encode} always returns
 * {@code tokenizer.encode(template.render(messages, true))} ({@code PromptCacheTest} compares the two on random
 * conversations).
 *
 * <p>Bounded, least-recently-used first, by {@link #DEFAULT_MAX_ENTRIES} entries and {@link #DEFAULT_MAX_BYTES}
 * (an entry counts its text twice, as rendered and in its messages, at 2 bytes a char, plus 4 bytes an id).
 * Thread-safe: rendering and tokenizing run outside the lock.
 */
final class PromptCache {
    /** Conversations kept: far more than the server has slots, so that a client's next turn still finds its own. */
    static final int DEFAULT_MAX_ENTRIES = 1024;
    /** 64 MiB: ~5,000 conversations of 2,000 tokens. */
    static final long DEFAULT_MAX_BYTES = 64L << 20;

    private final ChatTemplate template;
    private final Tokenizer tokenizer;
    private final int maxEntries;
    private final long maxBytes;
    private final LinkedHashMap<Long, Entry> entries = new LinkedHashMap<>(64, 0.75f, true);
    private long bytes;

    /** {@code text} = render(messages, false), {@code ids} = tokenizer.encode(text). */
    private record Entry(List<ChatMessage> messages, String text, int[] ids) {
        long bytes() { return 4L * text.length() + 4L * ids.length + 256; }
    }

    /**
     * The prompt's ids (images unexpanded) and how many leading messages came from the cache (0: none; then the
     * whole conversation was rendered and tokenized).
     */
    record Encoded(int[] ids, int reusedMessages) {}

    PromptCache(ChatTemplate template, Tokenizer tokenizer) {
        this(template, tokenizer, DEFAULT_MAX_ENTRIES, DEFAULT_MAX_BYTES);
    }

    PromptCache(ChatTemplate template, Tokenizer tokenizer, int maxEntries, long maxBytes) {
        if (maxEntries < 0 || maxBytes < 0) throw new IllegalArgumentException("cache bounds must be ≥ 0, got " + maxEntries + " and " + maxBytes);
        this.template = template;
        this.tokenizer = tokenizer;
        this.maxEntries = maxEntries;
        this.maxBytes = maxBytes;
    }

    /** {@code tokenizer.encode(template.render(messages, true))}, from the longest cached prefix of the conversation. */
    Encoded encode(List<ChatMessage> messages) {
        int n = messages.size();
        if (n == 0 || maxEntries == 0 || !template.isAppendOnly()) {
            return new Encoded(tokenizer.encode(template.render(messages, true)), 0);
        }
        long[] hashes = prefixHashes(messages);
        Entry base = null;
        int k = n;
        for (; k >= 1 && base == null; k--) base = lookup(hashes[k - 1], messages.subList(0, k));
        k = base == null ? 0 : k + 1;

        // the conversation without the generation prompt: the entry the next turn extends
        String text = null;
        int[] ids = null;
        if (k == n) {
            text = base.text();
            ids = base.ids();
        } else if (base != null) {
            String tail = template.renderTail(messages, k, false);
            if (tail != null) {
                ids = tokenizer.encodeContinuation(base.text(), base.ids(), tail);
                text = base.text() + tail;
                if (ids == null) ids = tokenizer.encode(text);
            }
        }
        if (text == null) {
            k = 0;
            try {
                text = template.render(messages, false);
            } catch (IllegalArgumentException rejected) {
                // a template may refuse a conversation without the generation prompt that it accepts with one
                return new Encoded(tokenizer.encode(template.render(messages, true)), 0);
            }
            ids = tokenizer.encode(text);
        }
        if (k < n) put(hashes[n - 1], new Entry(List.copyOf(messages), text, ids));

        String generation = template.renderTail(messages, n, true);
        int[] prompt = generation == null ? null : tokenizer.encodeContinuation(text, ids, generation);
        if (prompt == null) prompt = tokenizer.encode(generation != null ? text + generation : template.render(messages, true));
        return new Encoded(prompt, k);
    }

    /** hashes[i]: a hash of messages[0..i] (String hash codes, mixed; equality is checked on a hit). */
    private static long[] prefixHashes(List<ChatMessage> messages) {
        long[] h = new long[messages.size()];
        long x = 0x9E3779B97F4A7C15L;
        for (int i = 0; i < h.length; i++) {
            x = mix(x, messages.get(i).hashCode());
            h[i] = x;
        }
        return h;
    }

    private static long mix(long x, int v) {
        x = (x ^ v) * 0xBF58476D1CE4E5B9L;
        return x ^ (x >>> 31);
    }

    private Entry lookup(long hash, List<ChatMessage> prefix) {
        synchronized (entries) {
            Entry e = entries.get(hash);
            return e != null && e.messages().equals(prefix) ? e : null;
        }
    }

    private void put(long hash, Entry e) {
        if (e.bytes() > maxBytes) return;
        synchronized (entries) {
            Entry old = entries.put(hash, e);
            bytes += e.bytes() - (old == null ? 0 : old.bytes());
            for (Iterator<Map.Entry<Long, Entry>> it = entries.entrySet().iterator();
                 (bytes > maxBytes || entries.size() > maxEntries) && it.hasNext(); ) {
                bytes -= it.next().getValue().bytes();
                it.remove();
            }
        }
    }

    /** Entries kept now. */
    int size() {
        synchronized (entries) { return entries.size(); }
    }

    /** Bytes the entries count now (≤ the bound). */
    long bytes() {
        synchronized (entries) { return bytes; }
    }
}
