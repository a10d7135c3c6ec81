package dev.kimivl.server;

import com.fasterxml.jackson.databind.JsonNode;
import dev.kimivl.generate.SamplingParams;

/**
 * A legacy text-completions request ({@code POST /v1/completions}), validated as {@link ChatRequest} is: the raw
 * {@code prompt} goes to the model without the chat template (special tokens such as {@code <|im_start|>} in it are
 * recognised, as llama.cpp's and vLLM's servers do), with the same sampling fields as chat.
 *
 * <p>{@code prompt} may be a string, an array holding one string, or an array of token ids (one prompt); several
 * prompts in one request are refused (send one request per prompt); {@code n} choices of one prompt are answered.
 *
 * @param text  the prompt as text, or null when it came as token ids
 * @param ids   the prompt as token ids, or null when it came as text
 * @param echo  whether the answer repeats the prompt before the completion
 */
record CompletionRequest(String text, int[] ids, Engine.Spec spec, int n, boolean stream, boolean includeUsage, boolean echo) {
    SamplingParams sampling() { return spec.sampling(); }

    boolean logprobs() { return spec.topLogprobs() >= 0; }

    static CompletionRequest parse(JsonNode body, ServerDefaults defaults) {
        if (body == null || !body.isObject()) throw ApiError.invalid("the request body must be a JSON object, got " + ApiError.describe(body), null);
        ChatRequest.string(body, "model");
        ChatRequest.string(body, "user");
        JsonNode p = body.get("prompt");
        String text = null;
        int[] ids = null;
        if (p == null || p.isNull()) throw ApiError.invalid("'prompt' is required: a string (or an array of token ids)", "prompt");
        if (p.isTextual()) {
            text = p.asText();
        } else if (p.isArray()) {
            if (p.isEmpty()) throw ApiError.invalid("'prompt' must not be an empty array", "prompt");
            if (p.get(0).isTextual() || p.get(0).isArray()) {
                // a batch of prompts: OpenAI answers each as its own choice
                if (p.size() > 1) throw ApiError.unsupported("prompt", "more than one prompt per request (send one request per prompt)");
                JsonNode only = p.get(0);
                if (only.isTextual()) text = only.asText(); else ids = tokenIds(only, "prompt[0]");
            } else {
                ids = tokenIds(p, "prompt");
            }
        } else {
            throw ApiError.wrongType("prompt", "a string or an array of token ids", p);
        }
        if (text != null && text.isEmpty()) throw ApiError.invalid("'prompt' must not be empty", "prompt");

        SamplingParams sampling = ChatRequest.sampling(body, defaults);
        // text completions' logprobs is an integer: the alternatives per token (OpenAI allows up to 5; 0 gives the
        // chosen token's only); null means none
        int logprobs = -1;
        if (body.hasNonNull("logprobs")) {
            long l = ChatRequest.integer(body, "logprobs", 0);
            if (l < 0 || l > 20) throw ApiError.invalid("'logprobs' must be an integer in 0..20, got " + l, "logprobs");
            logprobs = (int) l;
        }
        int n = ChatRequest.choices(body);
        long bestOf = ChatRequest.integer(body, "best_of", n);
        if (bestOf != n) throw ApiError.unsupported("best_of", "best_of other than n");
        JsonNode suffix = body.get("suffix");
        if (suffix != null && !suffix.isNull()) {
            if (!suffix.isTextual()) throw ApiError.wrongType("suffix", "a string", suffix);
            if (!suffix.asText().isEmpty()) throw ApiError.unsupported("suffix", "suffix (fill-in-the-middle)");
        }
        boolean echo = ChatRequest.bool(body, "echo", false);
        if (echo && logprobs >= 0) throw ApiError.unsupported("logprobs", "logprobs with echo (the prompt's logprobs)");
        boolean stream = ChatRequest.bool(body, "stream", false);
        Engine.Spec spec = new Engine.Spec(sampling, null, ChatRequest.penalty(body, "frequency_penalty"),
                ChatRequest.penalty(body, "presence_penalty"), logprobs, ChatRequest.bool(body, "ignore_eos", false));
        return new CompletionRequest(text, ids, spec, n, stream, ChatRequest.includeUsage(body, stream), echo);
    }

    private static int[] tokenIds(JsonNode a, String where) {
        if (a.isEmpty()) throw ApiError.invalid("'" + where + "' must not be an empty array", where);
        int[] ids = new int[a.size()];
        for (int i = 0; i < ids.length; i++) {
            JsonNode v = a.get(i);
            if (!v.isIntegralNumber() || !v.canConvertToInt() || v.asInt() < 0) {
                throw ApiError.wrongType(where + "[" + i + "]", "a token id (an integer ≥ 0)", v);
            }
            ids[i] = v.asInt();
        }
        return ids;
    }
}
