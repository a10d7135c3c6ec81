package dev.kimivl.spark;

import dev.kimivl.vision.ImageLoader;
import org.apache.spark.ml.Transformer;
import org.apache.spark.ml.param.BooleanParam;
import org.apache.spark.ml.param.DoubleParam;
import org.apache.spark.ml.param.IntParam;
import org.apache.spark.ml.param.LongParam;
import org.apache.spark.ml.param.Param;
import org.apache.spark.ml.param.ParamMap;
import org.apache.spark.ml.param.ParamValidators;
import org.apache.spark.ml.param.StringArrayParam;
import org.apache.spark.ml.util.DefaultParamsReader;
import org.apache.spark.ml.util.DefaultParamsWritable;
import org.apache.spark.ml.util.Identifiable$;
import org.apache.spark.ml.util.MLReader;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.types.StructType;

import java.util.List;

/**
 * Kimi-VL as a Spark ML {@link Transformer}: answers a prompt about each row's image (or PDF, or video: see
 * {@link MediaSettings}) and appends the answer column
 * ({@code outputCol}, default {@code answer}) and {@code reasoning, prompt_tokens, completion_tokens, finish_reason,
 * time_ms, error}. A row whose image is missing, corrupt or over the size limits gets an error and null answer; the
 * job goes on.
 *
 * <pre>{@code
 * Dataset<Row> photos = spark.read().format("binaryFile").load("/data/photos/*.jpg");
 * Dataset<Row> out = new KimiVlTransformer()
 *         .setModelPath("/models/Kimi-VL-A3B-Instruct").setImageCol("content")
 *         .setPrompt("Describe the product in one sentence.").setTemperature(0).setMaxTokens(64)
 *         .transform(photos).drop("content");
 * }</pre>
 *
 * Sampling parameters left unset take the checkpoint's generation_config.json, then {@code kimivl run}'s defaults.
 * It saves and loads with pipelines ({@link DefaultParamsWritable}); the model path is stored, not the model.
 */
public class KimiVlTransformer extends Transformer implements DefaultParamsWritable {
    private final String uid;

    // created in the constructor, after uid: a Param records its parent's uid when it is made
    private final Param<String> modelPath;
    private final Param<String> mmprojPath;
    private final Param<String> imageCol;
    private final Param<String> promptCol;
    private final Param<String> prompt;
    private final Param<String> systemPrompt;
    private final Param<String> nameCol;
    private final Param<String> outputCol;
    private final DoubleParam temperature;
    private final IntParam topK;
    private final DoubleParam topP;
    private final DoubleParam minP;
    private final DoubleParam repetitionPenalty;
    private final LongParam seed;
    private final IntParam maxTokens;
    private final StringArrayParam stopStrings;
    private final IntParam contextLength;
    private final LongParam maxImagePixels;
    private final LongParam maxImageBytes;
    private final IntParam threadsPerTask;
    private final IntParam videoFrames;
    private final IntParam frameTokens;
    private final BooleanParam timestamps;
    private final Param<String> pages;
    private final DoubleParam dpi;
    private final IntParam pageTokens;

    public KimiVlTransformer() { this(Identifiable$.MODULE$.randomUID("kimivl")); }

    public KimiVlTransformer(String uid) {
        this.uid = uid;
        modelPath = new Param<>(this, "modelPath", "checkpoint directory or GGUF text file, as the executors see it (or a name shipped with --files/--archives)");
        mmprojPath = new Param<>(this, "mmprojPath", "llama.cpp mmproj GGUF for images with a GGUF model");
        imageCol = new Param<>(this, "imageCol", "binary column of image file bytes (binaryFile's content) or string column of paths; unset: text only");
        promptCol = new Param<>(this, "promptCol", "string column with each row's prompt (overrides prompt)");
        prompt = new Param<>(this, "prompt", "the prompt asked of every row when there is no promptCol");
        systemPrompt = new Param<>(this, "systemPrompt", "system message (default: the chat template's)");
        nameCol = new Param<>(this, "nameCol", "string column naming rows in error messages (default: path when present)");
        outputCol = new Param<>(this, "outputCol", "answer column");
        temperature = new DoubleParam(this, "temperature", "sampling temperature, 0 = greedy", ParamValidators.gtEq(0));
        topK = new IntParam(this, "topK", "keep the k most likely tokens, 0 = off", ParamValidators.gtEq(0));
        topP = new DoubleParam(this, "topP", "nucleus mass in (0, 1], 1 = off", ParamValidators.inRange(0, 1, false, true));
        minP = new DoubleParam(this, "minP", "drop tokens below minP × the top probability, 0 = off", ParamValidators.inRange(0, 1, true, false));
        repetitionPenalty = new DoubleParam(this, "repetitionPenalty", "repetition penalty, 1 = off", ParamValidators.gt(0));
        seed = new LongParam(this, "seed", "base seed; each row mixes in its image and prompt, so retried tasks repeat their answers");
        maxTokens = new IntParam(this, "maxTokens", "maximum new tokens per row", ParamValidators.gt(0));
        stopStrings = new StringArrayParam(this, "stopStrings", "generation stops before any of these strings");
        contextLength = new IntParam(this, "contextLength", "context cap in tokens, 0 = the model's maximum", ParamValidators.gtEq(0));
        maxImagePixels = new LongParam(this, "maxImagePixels", "larger images are error rows, refused before decoding", ParamValidators.gt(0));
        maxImageBytes = new LongParam(this, "maxImageBytes", "larger image files or values are error rows, refused before reading", ParamValidators.gt(0));
        threadsPerTask = new IntParam(this, "threadsPerTask", "kernel threads per task, 0 = spark.task.cpus", ParamValidators.gtEq(0));
        videoFrames = new IntParam(this, "videoFrames", "frames taken from a video, spread evenly over it", ParamValidators.gtEq(1));
        frameTokens = new IntParam(this, "frameTokens", "image tokens per video frame at most", ParamValidators.gtEq(MediaSettings.MIN_FRAME_TOKENS));
        timestamps = new BooleanParam(this, "timestamps", "label each video frame 'Frame at mm:ss:'");
        pages = new Param<>(this, "pages", "pages of a PDF, e.g. 1-3 or 2,5 (unset: all)");
        dpi = new DoubleParam(this, "dpi", "resolution PDF pages are rendered at", ParamValidators.inRange(1, 1200));
        pageTokens = new IntParam(this, "pageTokens", "shrink each PDF page to at most this many image tokens (unset: as rendered)", ParamValidators.gtEq(1));
        setDefault(outputCol, "answer");
        setDefault(videoFrames, MediaSettings.DEFAULT.videoFrames());
        setDefault(frameTokens, MediaSettings.DEFAULT.frameTokens());
        setDefault(timestamps, MediaSettings.DEFAULT.timestamps());
        setDefault(dpi, (double) MediaSettings.DEFAULT.dpi());
        setDefault(minP, 0.0);
        setDefault(seed, 0L);
        setDefault(stopStrings, new String[0]);
        setDefault(contextLength, 0);
        setDefault(maxImagePixels, ImageLoader.DEFAULT_MAX_PIXELS);
        setDefault(maxImageBytes, InferenceSettings.DEFAULT_MAX_IMAGE_BYTES);
        setDefault(threadsPerTask, 0);
    }

    @Override public String uid() { return uid; }

    // Spark ML finds a class's params by its public no-argument methods returning Param
    public Param<String> modelPath() { return modelPath; }
    public Param<String> mmprojPath() { return mmprojPath; }
    public Param<String> imageCol() { return imageCol; }
    public Param<String> promptCol() { return promptCol; }
    public Param<String> prompt() { return prompt; }
    public Param<String> systemPrompt() { return systemPrompt; }
    public Param<String> nameCol() { return nameCol; }
    public Param<String> outputCol() { return outputCol; }
    public DoubleParam temperature() { return temperature; }
    public IntParam topK() { return topK; }
    public DoubleParam topP() { return topP; }
    public DoubleParam minP() { return minP; }
    public DoubleParam repetitionPenalty() { return repetitionPenalty; }
    public LongParam seed() { return seed; }
    public IntParam maxTokens() { return maxTokens; }
    public StringArrayParam stopStrings() { return stopStrings; }
    public IntParam contextLength() { return contextLength; }
    public LongParam maxImagePixels() { return maxImagePixels; }
    public LongParam maxImageBytes() { return maxImageBytes; }
    public IntParam threadsPerTask() { return threadsPerTask; }
    public IntParam videoFrames() { return videoFrames; }
    public IntParam frameTokens() { return frameTokens; }
    public BooleanParam timestamps() { return timestamps; }
    public Param<String> pages() { return pages; }
    public DoubleParam dpi() { return dpi; }
    public IntParam pageTokens() { return pageTokens; }

    public KimiVlTransformer setModelPath(String v) { set(modelPath, v); return this; }
    public KimiVlTransformer setMmprojPath(String v) { set(mmprojPath, v); return this; }
    public KimiVlTransformer setImageCol(String v) { set(imageCol, v); return this; }
    public KimiVlTransformer setPromptCol(String v) { set(promptCol, v); return this; }
    public KimiVlTransformer setPrompt(String v) { set(prompt, v); return this; }
    public KimiVlTransformer setSystemPrompt(String v) { set(systemPrompt, v); return this; }
    public KimiVlTransformer setNameCol(String v) { set(nameCol, v); return this; }
    public KimiVlTransformer setOutputCol(String v) { set(outputCol, v); return this; }
    public KimiVlTransformer setTemperature(double v) { set(temperature, v); return this; }
    public KimiVlTransformer setTopK(int v) { set(topK, v); return this; }
    public KimiVlTransformer setTopP(double v) { set(topP, v); return this; }
    public KimiVlTransformer setMinP(double v) { set(minP, v); return this; }
    public KimiVlTransformer setRepetitionPenalty(double v) { set(repetitionPenalty, v); return this; }
    public KimiVlTransformer setSeed(long v) { set(seed, v); return this; }
    public KimiVlTransformer setMaxTokens(int v) { set(maxTokens, v); return this; }
    public KimiVlTransformer setStopStrings(String... v) { set(stopStrings, v); return this; }
    public KimiVlTransformer setContextLength(int v) { set(contextLength, v); return this; }
    public KimiVlTransformer setMaxImagePixels(long v) { set(maxImagePixels, v); return this; }
    public KimiVlTransformer setMaxImageBytes(long v) { set(maxImageBytes, v); return this; }
    public KimiVlTransformer setThreadsPerTask(int v) { set(threadsPerTask, v); return this; }
    public KimiVlTransformer setVideoFrames(int v) { set(videoFrames, v); return this; }
    public KimiVlTransformer setFrameTokens(int v) { set(frameTokens, v); return this; }
    public KimiVlTransformer setTimestamps(boolean v) { set(timestamps, v); return this; }
    public KimiVlTransformer setPages(String v) { set(pages, v); return this; }
    public KimiVlTransformer setDpi(double v) { set(dpi, v); return this; }
    public KimiVlTransformer setPageTokens(int v) { set(pageTokens, v); return this; }

    /** The settings the executors get: paths, numbers and strings only. */
    public InferenceSettings settings() {
        if (!isDefined(modelPath)) throw new IllegalArgumentException("KimiVlTransformer: modelPath is not set");
        return new InferenceSettings(getString(modelPath), getString(mmprojPath), getString(prompt), getString(systemPrompt),
                isDefined(temperature) ? (Double) $(temperature) : null, isDefined(topK) ? (Integer) $(topK) : null,
                isDefined(topP) ? (Double) $(topP) : null, (Double) $(minP),
                isDefined(repetitionPenalty) ? (Double) $(repetitionPenalty) : null, (Long) $(seed),
                isDefined(maxTokens) ? (Integer) $(maxTokens) : null, List.of($(stopStrings)), (Integer) $(contextLength),
                (Long) $(maxImagePixels), (Long) $(maxImageBytes), (Integer) $(threadsPerTask),
                new MediaSettings((Integer) $(videoFrames), (Integer) $(frameTokens), (Boolean) $(timestamps), getString(pages),
                        (float) (double) (Double) $(dpi), isDefined(pageTokens) ? (Integer) $(pageTokens) : null));
    }

    private String getString(Param<String> p) { return isDefined(p) ? $(p) : null; }

    /** The same work as a plain Dataset function (what {@link #transform} runs). */
    public KimiVlFunction function(StructType inputSchema) {
        return KimiVlFunction.builder(settings(), inputSchema).imageCol(getString(imageCol)).promptCol(getString(promptCol))
                .nameCol(getString(nameCol)).outputCol($(outputCol)).build();
    }

    @Override
    public Dataset<Row> transform(Dataset<?> dataset) {
        Dataset<Row> df = dataset.toDF();
        KimiVlFunction f = function(df.schema());
        return df.mapPartitions(f, f.encoder());
    }

    @Override
    public StructType transformSchema(StructType schema) {
        return function(schema).outputSchema();
    }

    @Override
    public KimiVlTransformer copy(ParamMap extra) { return (KimiVlTransformer) defaultCopy(extra); }

    /** For {@code Pipeline.load} / {@code PipelineModel.load}, which call a stage class's static read(). */
    public static MLReader<KimiVlTransformer> read() { return new DefaultParamsReader<>(); }

    public static KimiVlTransformer load(String path) { return read().load(path); }
}
