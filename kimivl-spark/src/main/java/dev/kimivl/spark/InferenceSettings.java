package dev.kimivl.spark;

import java.io.Serializable;
import java.util.List;
import java.util.Objects;

/**
 * Everything an executor needs to answer rows: where the model is and how to generate. Only paths, numbers and
 * strings: this object travels in every task closure (a few hundred bytes); the model itself never does, it is opened
 * once per executor JVM by {@link ExecutorModels}.
 *
 * <p>Sampling fields left {@code null} take the checkpoint's {@code generation_config.json}, then the built-in
 * defaults of {@code kimivl run} (temperature 0.2, top-k off, top-p 1, repetition penalty 1, 512 new tokens).
 *
 * @param modelPath         checkpoint directory or GGUF text file, as seen by the executors (a shared path, or a name
 *                          given to {@code --files}/{@code --archives}, found through {@code SparkFiles})
 * @param mmprojPath        llama.cpp mmproj GGUF for images with a GGUF model, else null
 * @param prompt            the user text asked of every row when the rows carry no prompt column (null: a column must)
 * @param systemPrompt      system message, or null for the template's default
 * @param seed              base seed; each row samples with a seed mixed from it and the row's image and prompt, so a
 *                          retried task (Spark re-runs failed tasks) gives the same answers
 * @param contextLength     context cap in tokens, 0 = the model's maximum
 * @param maxImagePixels    images over this many pixels are error rows, refused before decoding
 * @param maxImageBytes     files (images, PDFs, videos) or byte values over this size are error rows, refused before reading
 * @param threadsPerTask    kernel threads one task's inference uses; 0 = Spark's {@code spark.task.cpus}
 * @param media             how PDF pages and video frames become images
 */
public record InferenceSettings(String modelPath, String mmprojPath, String prompt, String systemPrompt,
                                Double temperature, Integer topK, Double topP, double minP, Double repetitionPenalty,
                                long seed, Integer maxTokens, List<String> stopStrings, int contextLength,
                                long maxImagePixels, long maxImageBytes, int threadsPerTask,
                                MediaSettings media) implements Serializable {
    /** 64 MiB: far above any photo, below what could hurt an executor's heap when a few tasks read at once. */
    public static final long DEFAULT_MAX_IMAGE_BYTES = 64L << 20;

    public InferenceSettings {
        Objects.requireNonNull(modelPath, "modelPath must be set (the checkpoint directory or GGUF file on the executors)");
        stopStrings = stopStrings == null ? List.of() : List.copyOf(stopStrings);
        if (media == null) media = MediaSettings.DEFAULT;
        if (contextLength < 0) throw new IllegalArgumentException("contextLength must be ≥ 0 (0 = the model's maximum), not " + contextLength);
        if (maxImagePixels <= 0) throw new IllegalArgumentException("maxImagePixels must be positive, not " + maxImagePixels);
        if (maxImageBytes <= 0) throw new IllegalArgumentException("maxImageBytes must be positive, not " + maxImageBytes);
        if (threadsPerTask < 0) throw new IllegalArgumentException("threadsPerTask must be ≥ 0 (0 = spark.task.cpus), not " + threadsPerTask);
        if (maxTokens != null && maxTokens <= 0) throw new IllegalArgumentException("maxTokens must be positive, not " + maxTokens);
    }

    /** Greedy decoding (temperature 0) of at most {@code maxTokens} tokens: what {@code kimivl run -t 0 -n N} does. */
    public static InferenceSettings greedy(String modelPath, String prompt, int maxTokens) {
        return new InferenceSettings(modelPath, null, prompt, null, 0.0, null, null, 0, null, 0, maxTokens, List.of(), 0,
                dev.kimivl.vision.ImageLoader.DEFAULT_MAX_PIXELS, DEFAULT_MAX_IMAGE_BYTES, 0, MediaSettings.DEFAULT);
    }

    public InferenceSettings withMaxImagePixels(long n) {
        return new InferenceSettings(modelPath, mmprojPath, prompt, systemPrompt, temperature, topK, topP, minP, repetitionPenalty,
                seed, maxTokens, stopStrings, contextLength, n, maxImageBytes, threadsPerTask, media);
    }

    public InferenceSettings withMaxImageBytes(long n) {
        return new InferenceSettings(modelPath, mmprojPath, prompt, systemPrompt, temperature, topK, topP, minP, repetitionPenalty,
                seed, maxTokens, stopStrings, contextLength, maxImagePixels, n, threadsPerTask, media);
    }

    public InferenceSettings withMedia(MediaSettings m) {
        return new InferenceSettings(modelPath, mmprojPath, prompt, systemPrompt, temperature, topK, topP, minP, repetitionPenalty,
                seed, maxTokens, stopStrings, contextLength, maxImagePixels, maxImageBytes, threadsPerTask, m);
    }

    public InferenceSettings withThreadsPerTask(int n) {
        return new InferenceSettings(modelPath, mmprojPath, prompt, systemPrompt, temperature, topK, topP, minP, repetitionPenalty,
                seed, maxTokens, stopStrings, contextLength, maxImagePixels, maxImageBytes, n, media);
    }
}
