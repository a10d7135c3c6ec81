package dev.kimivl.server;

import io.prometheus.metrics.core.metrics.Counter;
import io.prometheus.metrics.core.metrics.CounterWithCallback;
import io.prometheus.metrics.core.metrics.Gauge;
import io.prometheus.metrics.core.metrics.GaugeWithCallback;
import io.prometheus.metrics.core.metrics.Histogram;
import io.prometheus.metrics.expositionformats.PrometheusTextFormatWriter;
import io.prometheus.metrics.model.registry.PrometheusRegistry;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;

/**
 * The server's Prometheus metrics ({@code GET /metrics}, text format 0.0.4), named as vLLM's and llama.cpp's are
 * where one exists, so that their dashboards need few changes. One registry per server, not the global default, so
 * that two servers in one JVM (the tests) count apart.
 */
final class ServerMetrics {
    /** Seconds: from 5 ms (a cached prompt's first token) to a minute (a long image prompt on a small machine). */
    private static final double[] TTFT_BOUNDS = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80};
    /** Seconds between tokens: 2 ms (tiny model) to 2 s (the full model on a loaded 2-core machine). */
    private static final double[] TOKEN_BOUNDS = {0.002, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3, 0.5, 1, 2};
    private static final double[] WAIT_BOUNDS = {0.001, 0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120};

    private final PrometheusRegistry registry = new PrometheusRegistry();
    final Counter requests = Counter.builder().name("kimivl_requests")
            .help("HTTP requests answered, by path and status (disconnected: the client left mid-answer)")
            .labelNames("path", "status").register(registry);
    final Counter promptTokens = Counter.builder().name("kimivl_prompt_tokens").help("Prompt tokens of finished generations").register(registry);
    final Counter cachedPromptTokens = Counter.builder().name("kimivl_prompt_tokens_cached")
            .help("Prompt tokens whose KV cache was reused from an earlier request instead of being prefilled").register(registry);
    final Counter generationTokens = Counter.builder().name("kimivl_generation_tokens").help("Tokens generated").register(registry);
    final Counter cancelled = Counter.builder().name("kimivl_requests_cancelled")
            .help("Generation requests stopped because their client went away, by stage: queued (dropped before generating) "
                    + "or generating (stopped within a token or two, its prompt included)")
            .labelNames("stage").register(registry);
    final Counter cancelledTokens = Counter.builder().name("kimivl_cancelled_generation_tokens")
            .help("Tokens generated for requests whose client went away before the answer was whole (also in kimivl_generation_tokens)")
            .register(registry);
    final Counter prefillSeconds = Counter.builder().name("kimivl_prefill_seconds").help("Seconds spent processing prompts").register(registry);
    final Counter decodeSeconds = Counter.builder().name("kimivl_decode_seconds").help("Seconds spent generating tokens after the first").register(registry);
    final Gauge prefillRate = Gauge.builder().name("kimivl_prefill_tokens_per_second")
            .help("Prompt tokens per second of the last finished generation (prefilled tokens only)").register(registry);
    final Gauge decodeRate = Gauge.builder().name("kimivl_decode_tokens_per_second")
            .help("Generated tokens per second of the last finished generation").register(registry);
    final Histogram timeToFirstToken = Histogram.builder().name("kimivl_time_to_first_token_seconds")
            .help("Seconds from a request's arrival to its first generated token (queue wait and prompt included)")
            .classicOnly().classicUpperBounds(TTFT_BOUNDS).register(registry);
    final Histogram timePerOutputToken = Histogram.builder().name("kimivl_time_per_output_token_seconds")
            .help("Seconds between consecutive generated tokens").classicOnly().classicUpperBounds(TOKEN_BOUNDS).register(registry);
    final Histogram queueWait = Histogram.builder().name("kimivl_queue_wait_seconds")
            .help("Seconds a request waited for a generation slot").classicOnly().classicUpperBounds(WAIT_BOUNDS).register(registry);
    final Histogram requestDuration = Histogram.builder().name("kimivl_request_duration_seconds")
            .help("Seconds from a generation request's arrival to its last byte").classicOnly().classicUpperBounds(TTFT_BOUNDS).register(registry);

    /** With --parallel above 1: how many sequences each batched decode step ran (continuous batching at work). */
    final Histogram decodeBatch = Histogram.builder().name("kimivl_decode_batch_size")
            .help("Sequences decoded together per batched step (--parallel above 1)").classicOnly()
            .classicUpperBounds(1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64).register(registry);

    ServerMetrics(Admission admission, CacheStats caches) {
        GaugeWithCallback.builder().name("kimivl_requests_waiting").help("Requests waiting in the queue for a generation slot")
                .callback(cb -> cb.call(admission.waiting())).register(registry);
        GaugeWithCallback.builder().name("kimivl_requests_running").help("Requests generating now")
                .callback(cb -> cb.call(admission.active())).register(registry);
        GaugeWithCallback.builder().name("kimivl_queue_capacity").help("Requests that may wait (--queue); beyond it requests get 429")
                .callback(cb -> cb.call(admission.queueCapacity())).register(registry);
        CounterWithCallback.builder().name("kimivl_prefix_cache_lookups")
                .help("Prompts that found a reusable KV prefix in the cache (hit) or none (miss)").labelNames("result")
                .callback(cb -> {
                    cb.call(caches.prefixHits.get(), "hit");
                    cb.call(caches.prefixMisses.get(), "miss");
                }).register(registry);
        CounterWithCallback.builder().name("kimivl_image_cache_lookups")
                .help("Images whose vision features were cached (hit) or had to be encoded (miss)").labelNames("result")
                .callback(cb -> {
                    cb.call(caches.imageHits.get(), "hit");
                    cb.call(caches.imageMisses.get(), "miss");
                }).register(registry);
        CounterWithCallback.builder().name("kimivl_prompt_cache_messages")
                .help("Chat messages whose rendered and tokenized text came from the prompt cache (reused) or were rendered and tokenized (rendered)")
                .labelNames("result")
                .callback(cb -> {
                    cb.call(caches.promptMessagesReused.get(), "reused");
                    cb.call(caches.promptMessagesRendered.get(), "rendered");
                }).register(registry);
    }

    /** The Prometheus text exposition of every metric. */
    byte[] scrape() {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        try {
            PrometheusTextFormatWriter.create().write(out, registry.scrape());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return out.toByteArray();
    }

    String contentType() { return PrometheusTextFormatWriter.CONTENT_TYPE; }
}
