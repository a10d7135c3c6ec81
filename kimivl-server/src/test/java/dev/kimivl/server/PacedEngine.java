package dev.kimivl.server;

import dev.kimivl.generate.Generator;
import dev.kimivl.generate.SamplingParams;
import dev.kimivl.text.ChatMessage;
import dev.kimivl.vision.LoadedImage;

import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Semaphore;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A scripted engine that takes its time: each generation emits {@code pieces} words (at most max_tokens) "w0 w1 …", one every
 * {@code millisEach}, reporting each as a token; with a gate, each generation first waits for a permit. It counts
 * generations started, finished and ended early (by the listener's exception: a client that went away), so that the
 * queue, disconnect and shutdown tests can see what the server did with the work.
 */
final class PacedEngine implements Engine {
    final int pieces;
    final long millisEach;
    final Semaphore gate;
    final AtomicInteger started = new AtomicInteger(), finished = new AtomicInteger(), aborted = new AtomicInteger();
    final AtomicInteger running = new AtomicInteger(), maxRunning = new AtomicInteger();
    volatile int lastEmitted;
    /** Counted down each time a generation ends, either way. */
    volatile CountDownLatch ended = new CountDownLatch(1);

    PacedEngine(int pieces, long millisEach, boolean gated) {
        this.pieces = pieces;
        this.millisEach = millisEach;
        this.gate = gated ? new Semaphore(0) : null;
    }

    @Override public boolean acceptsImages() { return false; }

    @Override public Job prepare(List<ChatMessage> messages, List<LoadedImage> images) { return job(); }

    @Override public Job prepareRaw(String text, int[] ids) { return job(); }

    @Override public String detokenize(int[] ids) { return ""; }

    private Job job() {
        return new Job() {
            @Override public Generator.Result generate(SamplingParams sampling, Generator.Listener listener) {
                return generate(sampling, listener, () -> true);
            }

            @Override public Generator.Result generate(SamplingParams sampling, Generator.Listener listener, java.util.function.BooleanSupplier onToken) {
                started.incrementAndGet();
                maxRunning.accumulateAndGet(running.incrementAndGet(), Math::max);
                int emitted = 0;
                StringBuilder text = new StringBuilder();
                try {
                    if (gate != null) gate.acquireUninterruptibly();
                    int n = Math.min(pieces, sampling.maxTokens());
                    for (int i = 0; i < n; i++) {
                        Thread.sleep(millisEach);
                        boolean go = onToken.getAsBoolean();
                        String w = "w" + i + " ";
                        text.append(w);
                        if (listener != null) listener.onText(w);
                        emitted = i + 1;
                        if (!go) break;
                    }
                    finished.incrementAndGet();
                    return new Generator.Result(new int[emitted], text.toString(), Generator.FinishReason.LENGTH, 5, 0.001, millisEach * emitted / 1e3);
                } catch (InterruptedException e) {
                    throw new IllegalStateException(e);
                } catch (RuntimeException e) {
                    aborted.incrementAndGet();
                    throw e;
                } finally {
                    lastEmitted = emitted;
                    running.decrementAndGet();
                    ended.countDown();
                }
            }
        };
    }
}
