package dev.kimivl.server;

/**
 * What a request gets when it leaves a field out.
 *
 * @param modelName   the id reported by /v1/models and in responses
 * @param maxTokens   default max_tokens
 * @param temperature default temperature (Kimi-VL-Instruct's card recommends 0.2)
 * @param contextCap  context length cap (0: the model's max_position_embeddings)
 */
public record ServerDefaults(String modelName, int maxTokens, double temperature, int contextCap) {}
