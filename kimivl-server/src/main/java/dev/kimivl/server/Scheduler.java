package dev.kimivl.server;

import dev.kimivl.generate.Decoding;
import dev.kimivl.generate.Generator;
import dev.kimivl.model.KvCache;
import dev.kimivl.model.LanguageModel;
import dev.kimivl.model.StageSink;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.function.Consumer;
import java.util.function.BiFunction;
import java.util.function.BooleanSupplier;
import java.util.function.IntConsumer;

/**
 * Continuous batching: one thread runs every forward pass of the model for all the requests generating now.
 * Each turn of its loop runs
 * <ol>
 *   <li>one chunk of at most {@code prefillChunk} prompt tokens of the oldest request still reading its prompt (so a
 *       long new prompt delays the running streams by one chunk per token they emit, not by its whole prefill), and</li>
 *   <li>one decode step for every sequence that has a token to run: {@link LanguageModel#decodeBatch}, where the
 *       projections and the experts run on all of the step's tokens together (each weight read once per step), then
 *       each sequence's own {@link Decoding} (its sampler, seed, penalties, constraint and stop rules) picks its
 *       next token from its row of the logits.</li>
 * </ol>
 * Sequences join between steps and leave as they end; a sequence's tokens are the same alone and among others
 * (greedy or seeded: the batched step's rows do not depend on each other, and every sequence goes through it, also
 * when it is alone).
 *
 * <p>The request's own thread waits in {@link #run}: text and logprobs travel to it through a queue, so a slow client
 * never holds up the step, and a listener that throws (a client that went away) cancels its sequence, which leaves at
 * the next step. {@link #run} returns only once the scheduler no longer touches the sequence's cache, so the caller
 * may hand the cache to the next request.
 */
final class Scheduler implements AutoCloseable {
    private final LanguageModel lm;
    private final int prefillChunk;
    private final Thread thread;
    private final Object lock = new Object();
    private final ArrayDeque<Seq> incoming = new ArrayDeque<>();
    private final List<Seq> prefilling = new ArrayList<>(), decoding = new ArrayList<>();
    private volatile IntConsumer onStep = b -> {};
    /** Sequences submitted and not yet ended: counted down before the end is announced, so a returned run is gone. */
    private final java.util.concurrent.atomic.AtomicInteger active = new java.util.concurrent.atomic.AtomicInteger();
    private boolean closed;

    /** The end of a sequence, as the last event of its queue. */
    private record Done(Generator.Result result, RuntimeException failure) {}

    /** One sequence: its prompt, cache, generation state, and the events for its request's thread. */
    private static final class Seq {
        final KvCache cache;
        final float[] embeddings;
        final int promptTokens;
        final LinkedBlockingQueue<Object> events = new LinkedBlockingQueue<>();
        Decoding d;
        int prefilled;                   // prompt positions in the cache so far
        int token = -1;                  // the sampled token to run next
        long started, firstLogits;
        volatile boolean cancel;
        final BooleanSupplier cancelled;    // the request's own word that it is over (its client went away)

        Seq(KvCache cache, float[] embeddings, int promptTokens, BooleanSupplier cancelled) {
            this.cancelled = cancelled;
            this.cache = cache;
            this.embeddings = embeddings;
            this.promptTokens = promptTokens;
            this.prefilled = cache.length();
        }
    }

    Scheduler(LanguageModel lm, int prefillChunk) {
        if (prefillChunk < 1) throw new IllegalArgumentException("the prefill chunk must be ≥ 1 token, got " + prefillChunk);
        this.lm = lm;
        this.prefillChunk = prefillChunk;
        this.thread = Thread.ofPlatform().name("kimivl-scheduler").daemon().start(this::loop);
    }

    /** Hears the number of sequences of each decode step (for /metrics). */
    void onStep(IntConsumer c) { this.onStep = c; }

    /** Sequences in the scheduler now (reading their prompt or decoding). */
    int active() { return active.get(); }

    /**
     * Generates one sequence among the others and blocks until it has ended.
     *
     * @param cache      holds the prompt's first {@code cache.length()} positions (a prefix cache's hit; fewer than
     *                   its T); left holding the prompt and the tokens that ran
     * @param embeddings [T, D] of the whole prompt
     * @param make       builds the sequence's {@link Decoding} around the text listener and the logprobs sink it is
     *                   given (called once, here)
     * @param listener   hears the text on this thread; an exception from it cancels the sequence and is rethrown
     * @param logprobs   hears each token's logprobs on this thread, before its text (may be null)
     */
    Generator.Result run(KvCache cache, float[] embeddings, int promptTokens, BiFunction<Generator.Listener, Consumer<Decoding.TokenLogprob>, Decoding> make,
                         Generator.Listener listener, Consumer<Decoding.TokenLogprob> logprobs) {
        return run(cache, embeddings, promptTokens, make, listener, logprobs, () -> false);
    }

    /**
     * As above; once {@code cancelled} answers true (checked before every prompt chunk and decode step) the sequence
     * leaves: a request whose client went away frees its place within a step, also while its prompt is read.
     */
    Generator.Result run(KvCache cache, float[] embeddings, int promptTokens, BiFunction<Generator.Listener, Consumer<Decoding.TokenLogprob>, Decoding> make,
                         Generator.Listener listener, Consumer<Decoding.TokenLogprob> logprobs, BooleanSupplier cancelled) {
        Seq s = new Seq(cache, embeddings, promptTokens, cancelled);
        s.d = make.apply(s.events::add, s.events::add);
        synchronized (lock) {
            if (closed) throw new IllegalStateException("the scheduler is closed");
            incoming.add(s);
            active.incrementAndGet();
            lock.notifyAll();
        }
        RuntimeException clientFailure = null;
        boolean interrupted = false;
        while (true) {
            Object e;
            try {
                e = s.events.take();
            } catch (InterruptedException ie) {
                interrupted = true;          // still wait for the end: the cache must be free before it is returned
                s.cancel = true;
                continue;
            }
            if (e instanceof Done done) {
                if (interrupted) Thread.currentThread().interrupt();
                if (clientFailure != null) throw clientFailure;
                if (done.failure() != null) throw done.failure();
                return done.result();
            }
            if (clientFailure != null) continue;   // the client is gone: drop what was still on its way
            try {
                if (e instanceof String text) {
                    if (listener != null) listener.onText(text);
                } else if (e instanceof Decoding.TokenLogprob lp && logprobs != null) {
                    logprobs.accept(lp);
                }
            } catch (RuntimeException ex) {
                clientFailure = ex;
                s.cancel = true;
            }
        }
    }

    /** Lets the sequences already running finish, then stops the thread. */
    @Override public void close() {
        synchronized (lock) {
            closed = true;
            lock.notifyAll();
        }
    }

    private void loop() {
        while (true) {
            synchronized (lock) {
                while (incoming.isEmpty() && prefilling.isEmpty() && decoding.isEmpty()) {
                    if (closed) return;
                    try {
                        lock.wait();
                    } catch (InterruptedException e) {
                        return;
                    }
                }
                prefilling.addAll(incoming);
                incoming.clear();
            }
            dropCancelled(prefilling);
            dropCancelled(decoding);
            if (!prefilling.isEmpty()) prefillChunk(prefilling.getFirst());
            if (!decoding.isEmpty()) decodeStep();
        }
    }

    private void dropCancelled(List<Seq> list) {
        for (int i = list.size() - 1; i >= 0; i--) {
            Seq s = list.get(i);
            if (s.cancel || s.cancelled.getAsBoolean()) {
                list.remove(i);
                s.d.cancel();
                finish(s, null);
            }
        }
    }

    /** The next chunk of a prompt; after its last, the first token is sampled and the sequence starts decoding. */
    private void prefillChunk(Seq s) {
        int D = lm.config().hiddenSize(), T = s.promptTokens;
        try {
            if (s.started == 0) s.started = System.nanoTime();
            int n = Math.min(prefillChunk, T - s.prefilled);
            float[] part = Arrays.copyOfRange(s.embeddings, s.prefilled * D, (s.prefilled + n) * D);
            float[] h = lm.forward(part, n, s.cache, StageSink.NONE, null);
            s.prefilled += n;
            if (s.prefilled < T) return;
            prefilling.remove(s);
            float[] logits = lm.logits(h, n - 1);
            s.firstLogits = System.nanoTime();
            advance(s, logits);
        } catch (RuntimeException | Error e) {
            prefilling.remove(s);
            finish(s, failure(e));
        }
    }

    /** One batched step of every decoding sequence. */
    private void decodeStep() {
        int B = decoding.size(), D = lm.config().hiddenSize(), V = lm.config().vocabSize();
        Seq[] batch = decoding.toArray(Seq[]::new);
        KvCache[] caches = new KvCache[B];
        float[] x = new float[B * D];
        int[] tokens = new int[B];
        for (int b = 0; b < B; b++) {
            caches[b] = batch[b].cache;
            tokens[b] = batch[b].token;
        }
        float[] logits;
        try {
            System.arraycopy(lm.embed(tokens), 0, x, 0, B * D);
            logits = lm.logitsRows(lm.decodeBatch(x, caches), B);
        } catch (RuntimeException | Error e) {
            decoding.clear();
            for (Seq s : batch) finish(s, failure(e));
            return;
        }
        onStep.accept(B);
        decoding.clear();
        for (int b = 0; b < B; b++) {
            try {
                advance(batch[b], Arrays.copyOfRange(logits, b * V, (b + 1) * V));
            } catch (RuntimeException | Error e) {
                finish(batch[b], failure(e));
            }
        }
    }

    /** Samples the sequence's next token from its logits: it decodes on, or it has ended. */
    private void advance(Seq s, float[] logits) {
        int next = s.d.next(logits, s.cache.length() >= s.cache.maxTokens());
        if (next < 0) {
            finish(s, null);
        } else {
            s.token = next;
            decoding.add(s);
        }
    }

    /** An Error (out of memory) fails the sequences of the step, not the scheduler's thread, which the others need. */
    private static RuntimeException failure(Throwable t) {
        return t instanceof RuntimeException r ? r : new IllegalStateException("generation failed: " + t, t);
    }

    private void finish(Seq s, RuntimeException failure) {
        long end = System.nanoTime();
        Generator.Result r = null;
        if (failure == null) {
            long first = s.firstLogits == 0 ? end : s.firstLogits, start = s.started == 0 ? first : s.started;
            r = s.d.result((first - start) / 1e9, (end - first) / 1e9);
        }
        active.decrementAndGet();
        s.events.add(new Done(r, failure));
    }
}
