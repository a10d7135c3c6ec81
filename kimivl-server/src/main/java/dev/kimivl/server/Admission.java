package dev.kimivl.server;

import java.util.concurrent.Semaphore;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The bounded wait queue in front of generation. {@code slots} requests generate at once; up to {@code queue} more
 * wait their turn in arrival order; a request beyond that is refused at once ({@link Full}, answered 429 with
 * {@code Retry-After}), as vLLM's and llama.cpp's users expect of a busy server, rather than waiting without bound.
 *
 * <p>A request holds a {@link Ticket} from admission to its last byte; closing it frees the slot and the place, also
 * when the client went away or the generation failed (try-with-resources), so that no slot can leak.
 */
final class Admission {
    /** Refused: every slot and every place in the queue is taken. */
    static final class Full extends RuntimeException {
        final int retryAfterSeconds;

        Full(String message, int retryAfterSeconds) {
            super(message);
            this.retryAfterSeconds = retryAfterSeconds;
        }
    }

    private final int slots, queue;
    private final Semaphore places;      // slots + queue: everyone admitted
    private final Semaphore running;     // slots, fair: the order in which waiting requests get a slot
    private final AtomicInteger waiting = new AtomicInteger(), active = new AtomicInteger();
    /** Mean seconds a slot is held, as a moving average of recent requests: what Retry-After is estimated from. */
    private volatile double meanHoldSeconds = 1.0;

    Admission(int slots, int queue) {
        if (slots < 1) throw new IllegalArgumentException("the number of generation slots must be ≥ 1, got " + slots);
        if (queue < 0) throw new IllegalArgumentException("the queue length must be ≥ 0, got " + queue);
        this.slots = slots;
        this.queue = queue;
        this.places = new Semaphore(slots + queue);
        this.running = new Semaphore(slots, true);
    }

    int slots() { return slots; }

    int queueCapacity() { return queue; }

    /** Requests waiting for a slot now. */
    int waiting() { return waiting.get(); }

    /** Requests holding a slot now. */
    int active() { return active.get(); }

    /** True when nobody is admitted: no request running or waiting. */
    boolean idle() { return places.availablePermits() == slots + queue; }

    /** Admits a request or refuses it at once. */
    Ticket enter() {
        if (!places.tryAcquire()) {
            int retry = (int) Math.max(1, Math.ceil(meanHoldSeconds * (waiting.get() + slots) / slots));
            throw new Full("the server is busy: " + active.get() + " request(s) generating and " + waiting.get()
                    + " waiting fill its queue of " + queue + "; retry after " + retry + " s", retry);
        }
        return new Ticket();
    }

    final class Ticket implements AutoCloseable {
        private boolean holding, closed;
        private long turnAt;

        /** Blocks until a slot is free; returns the seconds waited. */
        double awaitTurn() throws InterruptedException {
            long t0 = System.nanoTime();
            waiting.incrementAndGet();
            try {
                running.acquire();
            } finally {
                waiting.decrementAndGet();
            }
            holding = true;
            active.incrementAndGet();
            turnAt = System.nanoTime();
            return (turnAt - t0) / 1e9;
        }

        @Override public void close() {
            if (closed) return;
            closed = true;
            if (holding) {
                double held = (System.nanoTime() - turnAt) / 1e9;
                meanHoldSeconds = 0.8 * meanHoldSeconds + 0.2 * held;
                active.decrementAndGet();
                running.release();
            }
            places.release();
        }
    }
}
