package dev.kimivl.server;

import dev.kimivl.generate.CachedGenerator;
import dev.kimivl.generate.ContextOverflowException;
import dev.kimivl.generate.Decoding;
import dev.kimivl.generate.GenerationOptions;
import dev.kimivl.generate.Generator;
import dev.kimivl.generate.SamplingParams;
import dev.kimivl.generate.json.JsonConstraint;
import dev.kimivl.model.ImageMerge;
import dev.kimivl.model.KimiVL;
import dev.kimivl.model.KvCache;
import dev.kimivl.model.LanguageModel;
import dev.kimivl.text.ChatMessage;
import dev.kimivl.text.PromptEncoder;
import dev.kimivl.vision.LoadedImage;
import dev.kimivl.vision.VisionOutput;

import java.nio.ByteBuffer;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;

/**
 * The engine over a loaded model, with two caches that spare work a conversation repeats:
 * <ul>
 *   <li><b>image features</b>, keyed by a SHA-256 of the decoded pixels (size, mode and samples): an image sent again
 *       (every turn of a conversation about a photo resends it) skips MoonViT and the projector;</li>
 *   <li><b>KV prefixes</b>: after a generation its KV cache (prompt and answer) is kept; a later prompt that starts
 *       with the same positions (the next turn of that conversation, or the same system prompt) takes the cache
 *       with the longest common prefix, cuts it to that prefix and prefills only the rest.</li>
 * </ul>
 * Both are LRU bounded by bytes ({@link CacheOptions}). A third, {@link PromptCache}, keeps conversations' rendered
 * and tokenized text, so that a next turn renders and tokenizes only its new messages (on with the prefix cache).
 * A cache position's key is its token id, or for an image position a value derived from the image's hash and the
 * position within it (ids are non-negative, these keys negative), since every image position has the same
 * placeholder id.
 *
 * <p>Generation: with one slot ({@code parallel} 1) each request runs {@link Generator}'s own loop on its thread,
 * exactly as {@code kimivl run} does; with more, every request's sequence goes to the {@link Scheduler}, which decodes
 * all running sequences in one batched step (continuous batching).
 *
 * <p>Thread safety: the caches are guarded, and a KV cache taken for a request is out of the pool until that request
 * puts it back, so that two requests never write one cache.
 */
final class ModelEngine implements Engine {
    private final KimiVL model;
    private final LanguageModel lm;
    private final int contextLength;
    private final CacheOptions options;
    private final CacheStats stats = new CacheStats();
    private final CachedGenerator generator;
    /** Null with one slot: each request then runs the generation loop itself. */
    private final Scheduler scheduler;
    /** Image hash → features [tokens, D], in access order (LRU first). */
    private final LinkedHashMap<Hash, float[]> images = new LinkedHashMap<>(16, 0.75f, true);
    private long imageBytes;
    /** Rendered and tokenized conversations, so that a next turn renders and tokenizes only its new messages. */
    private final PromptCache prompts;
    private final PromptEncoder encoder;
    /** Kept KV caches, least recently used first. */
    private final List<Prefix> prefixes = new ArrayList<>();

    /**
     * A kept cache: keys[i] is the key of position i; keys.length == cache.length(). {@code peak} is the most
     * positions the cache ever held: its arrays keep that size when it is cut, so the memory bound counts it.
     */
    private record Prefix(long[] keys, KvCache cache, int peak) {
        long bytes(long perPosition) { return (long) peak * perPosition; }
    }

    private record Hash(long hi, long lo) {}

    ModelEngine(KimiVL model, int contextCap, CacheOptions options) {
        this(model, contextCap, options, 1, ServerOptions.DEFAULT_PREFILL_CHUNK);
    }

    /**
     * @param parallel     sequences that may generate at once: 1 runs each on its request's thread; more go to the
     *                     batching {@link Scheduler}
     * @param prefillChunk prompt tokens the scheduler runs between two decode steps
     */
    ModelEngine(KimiVL model, int contextCap, CacheOptions options, int parallel, int prefillChunk) {
        this.model = model;
        this.lm = model.languageModel();
        this.contextLength = model.contextLength(contextCap);
        this.options = options;
        this.generator = new CachedGenerator(lm, model.tokenizer());
        this.scheduler = parallel > 1 ? new Scheduler(lm, prefillChunk) : null;
        this.encoder = new PromptEncoder(model.tokenizer());
        // off with the KV prefix cache (--cache-mem 0: every prompt from scratch, for measurements)
        this.prompts = options.prefixBytes() > 0 ? new PromptCache(model.chatTemplate(), model.tokenizer())
                : new PromptCache(model.chatTemplate(), model.tokenizer(), 0, 0);
        // decide now whether the template is append-only (its probe conversations take a second or two on a cold
        // JVM), so that the first request does not wait for it
        if (options.prefixBytes() > 0) model.chatTemplate().isAppendOnly();
    }

    /** The scheduler's decode steps (their sequence counts) go to {@code steps}; nothing without a scheduler. */
    void onDecodeStep(java.util.function.IntConsumer steps) {
        if (scheduler != null) scheduler.onStep(steps);
    }

    @Override public void close() {
        if (scheduler != null) scheduler.close();
    }

    /** Sequences in the batching scheduler now (0 without one): the load test checks that none is left behind. */
    int scheduled() { return scheduler == null ? 0 : scheduler.active(); }

    @Override public byte[] tokenBytes(int id) { return model.tokenizer().tokenBytes(id); }

    @Override public boolean acceptsImages() { return model.hasVision(); }

    @Override public CacheStats cacheStats() { return stats; }

    @Override public String detokenize(int[] ids) { return model.tokenizer().decode(ids); }

    @Override public dev.kimivl.media.MediaMessages.Built media(List<dev.kimivl.media.MediaMessages.Draft> conversation, int maxTokens, long maxPixels,
                                                               java.util.function.Consumer<String> log) {
        return MediaParts.size(model, conversation, contextLength, maxTokens, maxPixels, log);
    }

    @Override public Job prepare(List<ChatMessage> messages, List<LoadedImage> imageList) {
        model.weights().checkUnchanged();
        int parts = 0;
        for (ChatMessage m : messages) parts += m.imageCount();
        if (parts != imageList.size()) {
            throw new IllegalArgumentException("the conversation has " + parts + " image part(s) but " + imageList.size() + " image(s) were given");
        }
        PromptCache.Encoded text = prompts.encode(messages);
        stats.promptMessagesReused.addAndGet(text.reusedMessages());
        stats.promptMessagesRendered.addAndGet(messages.size() - text.reusedMessages());
        if (imageList.isEmpty()) return job(encoder.expand(text.ids()).ids(), null, null);
        Hash[] hashes = new Hash[imageList.size()];
        float[][] features = new float[imageList.size()][];
        int[] tokens = new int[imageList.size()];
        int D = lm.config().hiddenSize();
        for (int i = 0; i < hashes.length; i++) {
            hashes[i] = hash(imageList.get(i));
            features[i] = imageFeatures(hashes[i], imageList.get(i));
            tokens[i] = features[i].length / D;
        }
        PromptEncoder.EncodedPrompt p = encoder.expand(text.ids(), tokens);
        return job(p.ids(), features, hashes);
    }

    @Override public Job prepareRaw(String text, int[] ids) {
        model.weights().checkUnchanged();
        int[] prompt = ids != null ? ids : encoder.encode(text).ids();
        return job(prompt, null, null);
    }

    /**
     * One image's features [tokens, D]: from the cache, or encoded alone. Alone, not packed with the request's other
     * images, so that a cached and a fresh image give the same rows (MoonViT packs images with block-diagonal
     * attention: the rows are the same maths, but a batch may add up in another order).
     */
    private float[] imageFeatures(Hash h, LoadedImage image) {
        if (options.imageBytes() > 0) {
            synchronized (images) {
                float[] f = images.get(h);
                if (f != null) {
                    stats.imageHits.incrementAndGet();
                    return f;
                }
            }
        }
        stats.imageMisses.incrementAndGet();
        VisionOutput v = model.vision().encode(List.of(image));
        model.weights().releaseVisionPages();
        float[] f = v.features();
        long bytes = 4L * f.length;
        if (options.imageBytes() > 0 && bytes <= options.imageBytes()) {
            synchronized (images) {
                if (images.put(h, f) == null) imageBytes += bytes;
                for (Iterator<float[]> it = images.values().iterator(); imageBytes > options.imageBytes() && it.hasNext(); ) {
                    imageBytes -= 4L * it.next().length;
                    it.remove();
                }
            }
        }
        return f;
    }

    private Job job(int[] ids, float[][] features, Hash[] hashes) {
        int T = ids.length;
        if (T + 1 > contextLength) throw new ContextOverflowException(T, contextLength);
        int D = lm.config().hiddenSize();
        int placeholder = model.config().mediaPlaceholderTokenId();
        long[] keys = new long[T];
        for (int t = 0; t < T; t++) keys[t] = ids[t];
        if (features != null) {
            // image positions: keys from the image's hash and the position in it
            int image = 0, within = 0;
            for (int t = 0; t < T; t++) {
                if (ids[t] != placeholder) continue;
                keys[t] = imageKey(hashes[image], within);
                if (++within == features[image].length / D) {
                    image++;
                    within = 0;
                }
            }
        }
        for (int t = 0, vocab = lm.config().vocabSize(); t < T; t++) {
            // lm.embed's check, before a kept cache is taken out of the pool (a refused prompt must not lose it)
            if (ids[t] < 0 || ids[t] >= vocab) {
                throw new IllegalArgumentException("token id " + ids[t] + " at position " + t + " is outside the vocabulary (0.." + (vocab - 1) + ")");
            }
        }
        Prefix taken = take(keys);
        int cached = taken == null ? 0 : taken.cache().length();
        int peak = taken == null ? 0 : taken.peak();
        KvCache cache = taken == null ? lm.newCache(contextLength) : taken.cache();
        // [T, D] input embeddings; the generation reads only the rows the cache does not hold (≥ cached), so only
        // those are looked up: a warm turn embeds its new tokens, not its history
        float[] embeddings = new float[T * D];
        try {
            float[] fresh = lm.embed(java.util.Arrays.copyOfRange(ids, cached, T));
            System.arraycopy(fresh, 0, embeddings, cached * D, fresh.length);
            if (features != null) {
                int total = 0;
                for (float[] f : features) total += f.length;
                float[] all = new float[total];
                int at = 0;
                for (float[] f : features) {
                    System.arraycopy(f, 0, all, at, f.length);
                    at += f.length;
                }
                ImageMerge.merge(embeddings, ids, placeholder, all, D);
            }
        } catch (RuntimeException e) {
            keep(keys, null, cache, peak);             // back into the pool, as it was taken
            throw e;
        }
        if (cached > 0) stats.prefixHits.incrementAndGet(); else stats.prefixMisses.incrementAndGet();
        stats.prefixTokensReused.addAndGet(cached);
        return new Job() {
            private boolean used;

            @Override public Generator.Result generate(SamplingParams sampling, Generator.Listener listener) {
                return generate(Spec.plain(sampling), listener, null, null);
            }

            @Override public Generator.Result generate(SamplingParams sampling, Generator.Listener listener, java.util.function.BooleanSupplier onToken) {
                return generate(Spec.plain(sampling), listener, onToken, null);
            }

            @Override public Generator.Result generate(Spec spec, Generator.Listener listener, java.util.function.BooleanSupplier onToken,
                                                       java.util.function.Consumer<Decoding.TokenLogprob> logprobs) {
                if (used) throw new IllegalStateException("a job generates once");
                used = true;
                GenerationOptions o = GenerationOptions.NONE.withPenalties(spec.frequencyPenalty(), spec.presencePenalty());
                if (spec.format() != null) o = o.withConstraint(new JsonConstraint(spec.format(), model.tokenizer(), lm.config().vocabSize()));
                // a request whose client went away stops before its next token, or between two prompt chunks
                java.util.function.BooleanSupplier cancelled = onToken instanceof Cancellation c ? c::cancelled : () -> false;
                GenerationOptions opts = o.withCancel(cancelled);
                java.util.function.BiFunction<Generator.Listener, java.util.function.Consumer<Decoding.TokenLogprob>, Decoding> make = (text, lps) -> {
                    Decoding d = generator.decoding(ids, spec.sampling(), opts, text, onToken);
                    if (spec.ignoreEos()) d.ignoreStopTokens();
                    return spec.topLogprobs() >= 0 ? d.withLogprobs(spec.topLogprobs(), lps) : d;
                };
                Generator.Result r = null;
                try {
                    if (scheduler == null) {
                        r = generator.generate(cache, embeddings, ids, make.apply(listener, logprobs));
                    } else {
                        if (cache.length() >= ids.length) throw new IllegalStateException("the cache holds the whole prompt");
                        r = scheduler.run(cache, embeddings, ids.length, make, listener, logprobs, cancelled);
                    }
                    return r;
                } finally {
                    keep(keys, r, cache, peak);
                }
            }

            @Override public int cachedTokens() { return cached; }
        };
    }

    /** A key for position {@code within} of an image: negative, so never a token id. */
    private static long imageKey(Hash h, int within) {
        return Long.MIN_VALUE | ((h.hi() ^ (h.lo() + within * 0x9E3779B97F4A7C15L)) & Long.MAX_VALUE);
    }

    /**
     * Takes out of the pool the kept cache sharing the longest prefix with {@code keys}, cut to that prefix (at most
     * T − 1 positions: the prompt's last position must run to give the first logits); null when none shares any.
     */
    private Prefix take(long[] keys) {
        if (options.prefixBytes() == 0) return null;
        synchronized (prefixes) {
            int best = -1, bestLen = 0;
            for (int i = 0; i < prefixes.size(); i++) {
                long[] k = prefixes.get(i).keys();
                int n = Math.min(k.length, keys.length - 1), common = 0;
                while (common < n && k[common] == keys[common]) common++;
                if (common > bestLen) {
                    best = i;
                    bestLen = common;
                }
            }
            if (best < 0) return null;
            Prefix p = prefixes.remove(best);
            p.cache().truncate(bestLen);
            return p;
        }
    }

    /**
     * Puts a used cache back into the pool, keyed by what it now holds: the prompt, then the generated tokens that
     * ran (all but the last). After a failure (a client that went away) only the prompt's positions are trusted.
     */
    private void keep(long[] promptKeys, Generator.Result r, KvCache cache, int peak) {
        if (options.prefixBytes() == 0) return;
        int T = promptKeys.length, held = cache.length();
        peak = Math.max(peak, held);
        long[] keys;
        if (r != null && held >= T && held - T <= r.tokens().length) {
            keys = java.util.Arrays.copyOf(promptKeys, held);
            for (int i = T; i < held; i++) keys[i] = r.tokens()[i - T];
        } else {
            int n = Math.min(held, T);
            cache.truncate(n);
            keys = java.util.Arrays.copyOf(promptKeys, n);
        }
        if (keys.length == 0) return;
        long per = lm.kvBytesPerPosition();
        synchronized (prefixes) {
            prefixes.add(new Prefix(keys, cache, peak));
            long total = 0;
            for (Prefix p : prefixes) total += p.bytes(per);
            while (total > options.prefixBytes() && !prefixes.isEmpty()) total -= prefixes.removeFirst().bytes(per);
        }
    }

    /** SHA-256 of an image's size, mode and samples: the same pixels give the same features, whatever the file was. */
    static Hash hash(LoadedImage img) {
        MessageDigest d;
        try {
            d = MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("the JDK has no SHA-256", e);
        }
        d.update(ByteBuffer.allocate(12).putInt(img.width()).putInt(img.height()).putInt(img.mode().ordinal()).array());
        if (img.pixels() != null) {
            d.update(img.pixels());
        } else {
            ByteBuffer b = ByteBuffer.allocate(4 * img.wide().length);
            b.asIntBuffer().put(img.wide());
            d.update(b.array());
        }
        ByteBuffer h = ByteBuffer.wrap(d.digest());
        return new Hash(h.getLong(), h.getLong());
    }
}
