package dev.kimivl.server;

/**
 * Where and for whom the server listens, and how much it reads.
 *
 * @param host         address to bind; 127.0.0.1 keeps the server private to this machine
 * @param port         port to bind; 0 picks a free one ({@link OpenAiServer#port()} tells which)
 * @param apiKey       when not null, every {@code /v1} request must send {@code Authorization: Bearer <apiKey>}
 * @param maxBodyBytes request bodies above this are refused with 413; base64 images are about 4/3 of their file size
 * @param queue        generation requests that may wait for their turn; one more is refused with 429 and Retry-After
 * @param timeLimitSeconds a generation that runs longer ends there, as at max_tokens (finish_reason "length");
 *                     counted from the request's turn, not its arrival, so that waiting in the queue is not held
 *                     against it; 0: no limit
 * @param parallel     requests that generate at once; above 1 their sequences decode together in one batched step
 *                     (continuous batching, {@link Scheduler}); 1: one at a time, each on Generator's own loop
 * @param prefillChunk with parallel above 1, prompt tokens run between two decode steps (a long new prompt delays
 *                     the running streams by one chunk per step)
 */
public record ServerOptions(String host, int port, String apiKey, int maxBodyBytes, int queue, int timeLimitSeconds,
                            int parallel, int prefillChunk) {
    /** 64 MiB: a few photos of 10–15 MB each, base64-encoded, fit. */
    public static final int DEFAULT_MAX_BODY_BYTES = 64 << 20;
    /** Waiting requests: 32 short answers are a few minutes of waiting on a small machine, about what a client tolerates. */
    public static final int DEFAULT_QUEUE = 32;
    /** Prompt tokens per scheduler turn: ~a decode step's time on Kimi-VL-A3B's prefill, so streams keep flowing. */
    public static final int DEFAULT_PREFILL_CHUNK = 256;
    /** The largest --parallel: each sequence holds its own KV cache, and a step's work grows with the count. */
    public static final int MAX_PARALLEL = 64;

    public ServerOptions {
        if (host == null || host.isBlank()) throw new IllegalArgumentException("the host to bind is empty");
        if (port < 0 || port > 65535) throw new IllegalArgumentException("the port must be in 0..65535, got " + port);
        if (apiKey != null && apiKey.isBlank()) throw new IllegalArgumentException("the API key is empty; leave it out to serve without one");
        if (maxBodyBytes <= 0) throw new IllegalArgumentException("the request body limit must be positive, got " + maxBodyBytes);
        if (queue < 0) throw new IllegalArgumentException("the queue length must be ≥ 0, got " + queue);
        if (timeLimitSeconds < 0) throw new IllegalArgumentException("the time limit must be ≥ 0 seconds (0: none), got " + timeLimitSeconds);
        if (parallel < 1 || parallel > MAX_PARALLEL) throw new IllegalArgumentException("the number of parallel sequences must be in 1.." + MAX_PARALLEL + ", got " + parallel);
        if (prefillChunk < 1) throw new IllegalArgumentException("the prefill chunk must be ≥ 1 token, got " + prefillChunk);
    }

    /** One request generating at a time. */
    public ServerOptions(String host, int port, String apiKey, int maxBodyBytes, int queue, int timeLimitSeconds) {
        this(host, port, apiKey, maxBodyBytes, queue, timeLimitSeconds, 1, DEFAULT_PREFILL_CHUNK);
    }

    /** No time limit. */
    public ServerOptions(String host, int port, String apiKey, int maxBodyBytes, int queue) { this(host, port, apiKey, maxBodyBytes, queue, 0); }

    /** The default queue length. */
    public ServerOptions(String host, int port, String apiKey, int maxBodyBytes) { this(host, port, apiKey, maxBodyBytes, DEFAULT_QUEUE, 0); }

    /** Loopback only, no API key, the default body limit. */
    public static ServerOptions local(int port) { return new ServerOptions("127.0.0.1", port, null, DEFAULT_MAX_BODY_BYTES); }

    public ServerOptions withHost(String host) { return new ServerOptions(host, port, apiKey, maxBodyBytes, queue, timeLimitSeconds, parallel, prefillChunk); }

    public ServerOptions withApiKey(String apiKey) { return new ServerOptions(host, port, apiKey, maxBodyBytes, queue, timeLimitSeconds, parallel, prefillChunk); }

    public ServerOptions withMaxBodyBytes(int maxBodyBytes) { return new ServerOptions(host, port, apiKey, maxBodyBytes, queue, timeLimitSeconds, parallel, prefillChunk); }

    public ServerOptions withQueue(int queue) { return new ServerOptions(host, port, apiKey, maxBodyBytes, queue, timeLimitSeconds, parallel, prefillChunk); }

    public ServerOptions withTimeLimitSeconds(int s) { return new ServerOptions(host, port, apiKey, maxBodyBytes, queue, s, parallel, prefillChunk); }

    /** {@code parallel} sequences decoding together, prompts run {@code prefillChunk} tokens at a time between steps. */
    public ServerOptions withParallel(int parallel, int prefillChunk) {
        return new ServerOptions(host, port, apiKey, maxBodyBytes, queue, timeLimitSeconds, parallel, prefillChunk);
    }

    /** host:port as a URL writes it (IPv6 literals in brackets). */
    String hostPort(int boundPort) { return (host.contains(":") ? "[" + host + "]" : host) + ":" + boundPort; }
}
