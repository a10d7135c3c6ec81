package dev.kimivl.server;

/**
 * How much memory the server's caches may hold ({@link ModelEngine}); 0 turns a cache off.
 *
 * @param prefixBytes KV caches kept for prefix reuse (positions × the model's KV bytes per position)
 * @param imageBytes  vision features kept per image hash (4 bytes × tokens × hidden size)
 */
public record CacheOptions(long prefixBytes, long imageBytes) {
    /** 1 GiB of KV (Kimi-VL-A3B with an f16 cache: ~34,000 positions) and 256 MiB of image features (~30 large images). */
    public static final CacheOptions DEFAULT = new CacheOptions(1L << 30, 256L << 20);
    public static final CacheOptions OFF = new CacheOptions(0, 0);

    public CacheOptions {
        if (prefixBytes < 0 || imageBytes < 0) throw new IllegalArgumentException("cache sizes must be ≥ 0, got " + prefixBytes + " and " + imageBytes);
    }
}
