package dev.kimivl.server;

import java.util.concurrent.atomic.AtomicLong;

/**
 * What an engine's caches did, counted since start; {@code /metrics} reports these as counters
 * ({@code kimivl_prefix_cache_lookups_total{result="hit|miss"}}, …) so that a hit ratio is a PromQL division.
 */
final class CacheStats {
    /** Requests whose prompt reused a cached KV prefix, and those that found none. */
    final AtomicLong prefixHits = new AtomicLong(), prefixMisses = new AtomicLong();
    /** Prompt tokens whose KV came from the prefix cache instead of a prefill. */
    final AtomicLong prefixTokensReused = new AtomicLong();
    /** Images whose vision features came from the cache, and those encoded. */
    final AtomicLong imageHits = new AtomicLong(), imageMisses = new AtomicLong();
    /** Chat messages whose rendered and tokenized text came from the prompt cache, and those rendered and tokenized. */
    final AtomicLong promptMessagesReused = new AtomicLong(), promptMessagesRendered = new AtomicLong();
}
