package dev.kimivl.spark;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SaveMode;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.util.LongAccumulator;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;

import static org.apache.spark.sql.functions.col;

/**
 * {@code kimivl batch}: one prompt over many images on Spark, results to parquet, for users who write no Spark code.
 * Images come from Spark's binaryFile source (a folder, a glob, several of either); only their paths are listed on
 * the driver and spread over the tasks, and each task reads its images itself, so no image bytes are shuffled.
 * Progress lines on stderr; the summary at the end names the rows with errors.
 */
@Command(name = "batch", mixinStandardHelpOptions = true, sortOptions = false,
        description = "Answer one prompt about every image (or PDF, or video) of a folder or glob with Spark (local or a cluster), writing parquet.")
public final class BatchMain implements Callable<Integer> {
    @Option(names = "--input", required = true, paramLabel = "GLOB", description = "Images, PDFs, videos (MP4/MOV): a folder, a glob (photos/*.jpg) or a URI Spark reads (hdfs:, s3a:); repeatable.")
    List<String> inputs = new ArrayList<>();

    @Option(names = {"-p", "--prompt"}, required = true, paramLabel = "TEXT", description = "The question asked about every image.")
    String prompt;

    @Option(names = "--out", required = true, paramLabel = "DIR", description = "Where the results go (a directory of parquet, JSON or CSV files).")
    String out;

    @Option(names = "--format", defaultValue = "parquet", paramLabel = "parquet|json|csv", description = "Output format (default: ${DEFAULT-VALUE}; json: one object per line).")
    String format;

    @Option(names = "--overwrite", description = "Replace --out if it exists (default: refuse).")
    boolean overwrite;

    @Option(names = "--master", description = "Spark master: local[N], local[*] or a cluster URL (default: spark-submit's, else local[*]).")
    String master;

    @Option(names = "--model", paramLabel = "DIR", description = "Checkpoint directory or GGUF file, at the same path on every executor (default: $KIMIVL_MODEL, else models/kimivl-nano-instruct, the default model of kimivl run).")
    String model;

    @Option(names = "--mmproj", paramLabel = "FILE", description = "llama.cpp mmproj GGUF (with a GGUF --model).")
    String mmproj;

    @Option(names = "--system", paramLabel = "TEXT", description = "System prompt.")
    String system;

    @Option(names = {"-n", "--max-tokens"}, description = "Maximum new tokens per image (default: generation_config.json, else 512).")
    Integer maxTokens;

    @Option(names = {"-t", "--temperature"}, description = "0 = greedy (default: generation_config.json, else 0.2).")
    Double temperature;

    @Option(names = "--top-k") Integer topK;
    @Option(names = "--top-p") Double topP;
    @Option(names = "--min-p", defaultValue = "0.0") double minP;
    @Option(names = "--repeat-penalty") Double repeatPenalty;

    @Option(names = "--seed", defaultValue = "0", description = "Base seed (mixed with each image, so reruns repeat answers).")
    long seed;

    @Option(names = "--stop", paramLabel = "TEXT", description = "Stop string (repeatable).")
    List<String> stops = new ArrayList<>();

    @Option(names = "--ctx", defaultValue = "0", description = "Context cap in tokens (0 = the model's).")
    int ctx;

    @Option(names = "--max-image-pixels", paramLabel = "N", description = "Larger images are error rows (default: ${DEFAULT-VALUE}).")
    long maxImagePixels = dev.kimivl.vision.ImageLoader.DEFAULT_MAX_PIXELS;

    @Option(names = "--max-image-bytes", paramLabel = "N", description = "Larger files are error rows (default: ${DEFAULT-VALUE}).")
    long maxImageBytes = InferenceSettings.DEFAULT_MAX_IMAGE_BYTES;

    @Option(names = "--threads-per-task", defaultValue = "1", description = "Kernel threads per Spark task (default 1: one image per core at a time); also sets spark.task.cpus.")
    int threadsPerTask;

    @Option(names = "--frames", defaultValue = "8", paramLabel = "N", description = "Frames taken from each video, spread evenly (default: ${DEFAULT-VALUE}).")
    int videoFrames;

    @Option(names = "--frame-tokens", defaultValue = "256", paramLabel = "N", description = "Image tokens per frame at most (default: ${DEFAULT-VALUE}).")
    int frameTokens;

    @Option(names = "--timestamps", negatable = true, defaultValue = "true", fallbackValue = "true", description = "Label frames 'Frame at mm:ss:' (default: on).")
    boolean timestamps;

    @Option(names = "--pages", paramLabel = "LIST", description = "Pages of each PDF, e.g. 1-3 (default: all).")
    String pages;

    @Option(names = "--dpi", defaultValue = "144", paramLabel = "D", description = "Resolution PDF pages are rendered at (default: ${DEFAULT-VALUE}).")
    float dpi;

    @Option(names = "--page-tokens", paramLabel = "N", description = "Shrink each page to at most N image tokens (default: as rendered).")
    Integer pageTokens;

    @Option(names = "--partitions", defaultValue = "0", description = "Tasks to split the images into (default: about 25 images each, at least 2 per core).")
    int partitions;

    @Option(names = "--recursive", description = "Descend into sub-folders of a folder input.")
    boolean recursive;

    @Option(names = "--conf", paramLabel = "KEY=VALUE", description = "Extra Spark configuration (repeatable).")
    List<String> conf = new ArrayList<>();

    @CommandLine.Spec CommandLine.Model.CommandSpec spec;     // usage errors go to the CommandLine that runs this

    private boolean local;

    public static void main(String[] args) {
        restoreStderr();
        CommandLine cl = new CommandLine(new BatchMain());
        cl.setExecutionExceptionHandler((e, line, parsed) -> {
            System.err.println("kimivl batch: " + (e.getMessage() == null ? e.toString() : e.getMessage().lines().findFirst().orElse("")));
            if (System.getenv("KIMIVL_DEBUG") != null) e.printStackTrace();
            return 1;
        });
        System.exit(cl.execute(args));
    }

    @Override
    public Integer call() throws Exception {
        if (!List.of("parquet", "json", "csv").contains(format)) {
            throw new CommandLine.ParameterException(spec.commandLine(), "--format takes parquet, json or csv, not '" + format + "'");
        }
        if (threadsPerTask < 1) throw new CommandLine.ParameterException(spec.commandLine(), "--threads-per-task must be ≥ 1, not " + threadsPerTask);
        if (out.matches(".*[\\[\\]*?{}\\\\].*")) {
            // the summary reads the results back, and Spark takes these characters in a path as a glob
            throw new CommandLine.ParameterException(spec.commandLine(), "--out " + out + ": no [ ] * ? { } \\ in the output path, please (Spark would read it as a glob)");
        }
        if (!overwrite && !out.contains(":") && Files.exists(Path.of(out))) {      // a local path: refused before Spark starts
            throw new IllegalArgumentException(out + " already exists (--overwrite replaces it)");
        }
        if (master == null) master = System.getProperty("spark.master", "local[*]");     // spark-submit sets spark.master
        local = master.startsWith("local");
        String modelPath = modelPath();
        InferenceSettings settings = new InferenceSettings(modelPath, absoluteIfLocal(mmproj), prompt, system, temperature, topK, topP, minP,
                repeatPenalty, seed, maxTokens, stops, ctx, maxImagePixels, maxImageBytes, threadsPerTask,
                new MediaSettings(videoFrames, frameTokens, timestamps, pages, dpi, pageTokens));
        PrintStream err = System.err;
        SparkSession.Builder b = SparkSession.builder().master(master).appName("kimivl batch")
                .config("spark.task.cpus", String.valueOf(threadsPerTask));
        if (local) {
            // local mode: nothing listens beyond this machine, and no host name lookup can fail
            b.config("spark.driver.bindAddress", "127.0.0.1").config("spark.driver.host", "127.0.0.1").config("spark.ui.enabled", "false");
        }
        for (String kv : conf) {
            int eq = kv.indexOf('=');
            if (eq <= 0) throw new CommandLine.ParameterException(spec.commandLine(), "--conf takes KEY=VALUE, not '" + kv + "'");
            b.config(kv.substring(0, eq), kv.substring(eq + 1));
        }
        SparkSession spark = b.getOrCreate();
        try {
            long t0 = System.nanoTime();
            var reader = spark.read().format("binaryFile");
            if (recursive) reader = reader.option("recursiveFileLookup", "true");
            Dataset<Row> paths = reader.load(inputs.toArray(String[]::new)).select("path");   // content is never read here
            // Spark's file sources skip zero-length files: without this an empty file (a failed upload) would have no row
            List<String> empty = emptyFiles(spark.sparkContext().hadoopConfiguration());
            if (!empty.isEmpty()) paths = paths.union(spark.createDataset(empty, Encoders.STRING()).toDF("path"));
            long count = paths.count();
            if (count == 0) throw new IllegalArgumentException("no files match " + String.join(", ", inputs));
            int cores = spark.sparkContext().defaultParallelism();
            int parts = partitions > 0 ? partitions : (int) Math.min(count, Math.max(2L * cores, (count + 24) / 25));
            err.printf("kimivl batch: %d images in %d tasks on %s, model %s%n", count, parts, master, modelPath);

            LongAccumulator loadMillis = spark.sparkContext().longAccumulator("kimivl model load ms");
            LongAccumulator done = spark.sparkContext().longAccumulator("kimivl rows");
            Dataset<Row> in = paths.repartition(parts);
            KimiVlFunction f = KimiVlFunction.builder(settings, in.schema()).imageCol("path").loadMillis(loadMillis).rowsDone(done).build();
            Progress progress = new Progress(err, count, done, t0);
            progress.start();
            long tJob = System.nanoTime();
            try {
                in.mapPartitions(f, f.encoder()).write().mode(overwrite ? SaveMode.Overwrite : SaveMode.ErrorIfExists).format(format)
                        .option("header", "true").save(out);
            } finally {
                progress.interrupt();
                progress.join();
            }
            double seconds = (System.nanoTime() - tJob) / 1e9;
            Dataset<Row> written = spark.read().format(format).option("header", "true").schema(f.outputSchema()).load(out);
            long rows = written.count();
            List<Row> errors = written.where(col("error").isNotNull()).select("error").limit(5).collectAsList();
            long errorCount = written.where(col("error").isNotNull()).count();
            err.printf(Locale.ROOT, "kimivl batch: %d images in %.1f s (%.2f images/s), %d with errors; model opened in %d ms in total over the executors; results in %s%n",
                    rows, seconds, rows / seconds, errorCount, loadMillis.value(), out);
            for (Row r : errors) err.println("  error: " + r.getString(0));
            if (errorCount > errors.size()) err.println("  … (" + (errorCount - errors.size()) + " more: the error column of " + out + ")");
            return 0;
        } finally {
            spark.stop();
        }
    }

    /**
     * The zero-length files the inputs name (a file, a glob, or a folder's files; sub-folders with --recursive), which
     * binaryFile lists no row for. Hidden names (starting with . or _) are skipped, as Spark skips them.
     */
    List<String> emptyFiles(Configuration conf) throws IOException {
        List<String> out = new ArrayList<>();
        for (String input : inputs) {
            org.apache.hadoop.fs.Path p = new org.apache.hadoop.fs.Path(input);
            FileSystem fs = p.getFileSystem(conf);
            FileStatus[] matched = fs.globStatus(p);
            if (matched == null) continue;            // no such path: binaryFile has failed on it already
            for (FileStatus st : matched) collectEmpty(fs, st, true, out);
        }
        return out;
    }

    private void collectEmpty(FileSystem fs, FileStatus st, boolean top, List<String> out) throws IOException {
        String name = st.getPath().getName();
        if (!top && (name.startsWith(".") || name.startsWith("_"))) return;
        if (st.isDirectory()) {
            if (top || recursive) for (FileStatus child : fs.listStatus(st.getPath())) collectEmpty(fs, child, false, out);
        } else if (st.getLen() == 0) {
            out.add(st.getPath().toString());
        }
    }

    private String modelPath() {
        if (model != null) return absoluteIfLocal(model);
        String env = System.getenv("KIMIVL_MODEL");
        if (env != null && !env.isBlank()) return absoluteIfLocal(env);
        String home = System.getProperty("kimivl.home", ".");
        return Path.of(home, "models", "kimivl-nano-instruct").toAbsolutePath().normalize().toString();
    }

    /**
     * In local mode a path that exists here is passed on absolute (Spark may run tasks in another directory); on a
     * cluster every path is passed as given: the executors resolve it in their own working directory (where
     * --archives unpacks) and among the --files (ExecutorModels.resolve).
     */
    private String absoluteIfLocal(String p) {
        if (p == null || !local) return p;
        Path path = Path.of(p);
        return Files.exists(path) ? path.toAbsolutePath().normalize().toString() : p;
    }

    /**
     * bin/kimivl-batch starts the JVM with stderr piped through a filter that drops the JVM's "WARNING: Using
     * incubator modules" line and names the real stderr's descriptor in {@code -Dkimivl.stderrFd}: putting it back on
     * descriptor 2 ends the filter, so Spark's and kimivl's messages reach the real stderr directly (as kimivl-cli's
     * Terminal.restoreStderr does for the kimivl launcher). Without the property (spark-submit, tests) nothing happens.
     */
    static void restoreStderr() {
        String fd = System.getProperty("kimivl.stderrFd");
        if (fd == null || fd.isBlank()) return;
        try {
            int saved = Integer.parseInt(fd.strip());
            System.err.flush();
            java.lang.foreign.Linker linker = java.lang.foreign.Linker.nativeLinker();
            var intInt = java.lang.foreign.FunctionDescriptor.of(java.lang.foreign.ValueLayout.JAVA_INT, java.lang.foreign.ValueLayout.JAVA_INT);
            var intIntInt = java.lang.foreign.FunctionDescriptor.of(java.lang.foreign.ValueLayout.JAVA_INT, java.lang.foreign.ValueLayout.JAVA_INT,
                    java.lang.foreign.ValueLayout.JAVA_INT);
            var dup2 = linker.downcallHandle(linker.defaultLookup().find("dup2").orElseThrow(), intIntInt);
            var close = linker.downcallHandle(linker.defaultLookup().find("close").orElseThrow(), intInt);
            if ((int) dup2.invokeExact(saved, 2) == 2) {
                int ignored = (int) close.invokeExact(saved);
            }
        } catch (Throwable e) {
            // the filter keeps forwarding stderr: nothing is lost
        }
    }

    /** Prints how many images are done every two seconds (plain lines; one redrawn line on a terminal). */
    private static final class Progress extends Thread {
        private final PrintStream err;
        private final long total, t0;
        private final LongAccumulator done;

        Progress(PrintStream err, long total, LongAccumulator done, long t0) {
            super("kimivl-batch-progress");
            setDaemon(true);
            this.err = err;
            this.total = total;
            this.done = done;
            this.t0 = t0;
        }

        @Override public void run() {
            boolean tty = System.console() != null;
            long last = -1;
            try {
                while (true) {
                    Thread.sleep(2000);
                    long n = Math.min(total, done.value());     // a retried task's rows count twice here, not in the output
                    if (n == last) continue;
                    last = n;
                    double s = (System.nanoTime() - t0) / 1e9;
                    err.printf(Locale.ROOT, "kimivl batch: %d/%d images (%.0f%%), %.2f images/s" + (tty ? "\r" : "%n"), n, total, 100.0 * n / total, n / s);
                }
            } catch (InterruptedException e) {
                if (tty && last >= 0) err.println();
            }
        }
    }
}
