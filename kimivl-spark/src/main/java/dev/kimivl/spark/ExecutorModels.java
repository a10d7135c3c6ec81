package dev.kimivl.spark;

import dev.kimivl.model.KimiVL;
import dev.kimivl.tensor.Parallel;
import org.apache.spark.SparkEnv;
import org.apache.spark.SparkFiles;
import org.apache.spark.TaskContext;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.Semaphore;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Supplier;
import java.util.logging.Logger;

/**
 * The models of this JVM (a Spark executor, or the driver in local mode): each checkpoint is opened once, on the first
 * task that needs it, and then shared by every task of the executor. Weights are memory-mapped, so concurrent tasks
 * read the same pages and the executor's heap holds none of them; the mapping lives as long as the executor.
 *
 * <p>Cores: kimivl's kernels run on one JVM-wide pool ({@link Parallel}, {@code -Dkimivl.threads}), whose size is
 * fixed when it is first used. Before the first model is opened this class sets it to the task's threads (the
 * {@code threadsPerTask} setting, else {@code spark.task.cpus}), unless {@code kimivl.threads} was given. Every
 * inference then takes that many permits of a per-JVM {@link Gate} of the executor's cores, so the threads computing
 * at any time never exceed the cores Spark gave the executor, however many tasks Spark starts.
 */
public final class ExecutorModels {
    private static final Logger LOG = Logger.getLogger(ExecutorModels.class.getName());

    /** An opened model with what it cost to open. */
    public record Loaded(KimiVL model, Path path, long loadMillis, Gate gate, int threadsPerInference) {}

    private static final Map<String, Loaded> MODELS = new HashMap<>();
    private static final AtomicInteger OPENS = new AtomicInteger();
    private static Gate gate;

    private ExecutorModels() {}

    /**
     * The model for these settings, opened now if this JVM has not opened it yet. A path that cannot be opened is an
     * exception (the task fails and Spark reports it): a configuration error, not a per-row one.
     *
     * @param justOpened set to true when this call opened the model (for the load-cost accumulator)
     */
    public static synchronized Loaded get(InferenceSettings s, boolean[] justOpened) {
        String key = s.modelPath() + "\u0000" + s.mmprojPath();
        Loaded m = MODELS.get(key);
        if (m != null) return m;
        if (System.getProperty("kimivl.threads") == null) {
            // read by Parallel's static initialiser: effective only if no kimivl kernel has run in this JVM yet
            System.setProperty("kimivl.threads", String.valueOf(requestedThreads(s)));
        }
        Path path = resolve(s.modelPath(), "modelPath");
        Path mmproj = s.mmprojPath() == null ? null : resolve(s.mmprojPath(), "mmprojPath");
        long t0 = System.nanoTime();
        KimiVL model = KimiVL.open(path, mmproj);
        long ms = (System.nanoTime() - t0) / 1_000_000;
        int pool = Parallel.THREADS;
        if (pool != requestedThreads(s)) {
            LOG.warning("kimivl: the kernel pool of this JVM has " + pool + " threads (fixed by -Dkimivl.threads or an earlier use), not the "
                    + requestedThreads(s) + " asked per task; each inference uses " + pool);
        }
        if (gate == null) gate = new Gate(Math.max(pool, executorCores()));
        m = new Loaded(model, path, ms, gate, pool);
        MODELS.put(key, m);
        OPENS.incrementAndGet();
        if (justOpened != null && justOpened.length > 0) justOpened[0] = true;
        LOG.info("kimivl: opened " + path + " in " + ms + " ms; " + pool + " kernel threads per inference, " + gate.permits() + " cores in this executor");
        return m;
    }

    /** How many models this JVM has opened (tests check that tasks share one). */
    public static int opens() { return OPENS.get(); }

    /** Closes every model (unmaps the weights); for a driver that ran local mode and goes on, and for tests. */
    public static synchronized void closeAll() {
        MODELS.values().forEach(m -> m.model().close());
        MODELS.clear();
    }

    private static int requestedThreads(InferenceSettings s) {
        if (s.threadsPerTask() > 0) return s.threadsPerTask();
        TaskContext tc = TaskContext.get();
        return tc != null ? Math.max(1, tc.cpus()) : 1;
    }

    /**
     * Cores Spark gave this executor: {@code spark.executor.cores} on a cluster, N of {@code local[N]} in local mode,
     * else the JVM's processors.
     */
    static int executorCores() {
        int cpus = Runtime.getRuntime().availableProcessors();
        SparkEnv env = SparkEnv.get();
        if (env == null) return cpus;
        if (env.conf().contains("spark.executor.cores")) return env.conf().getInt("spark.executor.cores", cpus);
        return localCores(env.conf().get("spark.master", ""), cpus);
    }

    /** N of local[N] or local[N,F]; local[*] and local: {@code cpus} (local alone is 1). */
    static int localCores(String master, int cpus) {
        if (master.equals("local")) return 1;
        var m = java.util.regex.Pattern.compile("local\\[(\\*|\\d+)(,\\d+)?]").matcher(master);
        if (!m.matches()) return cpus;
        return m.group(1).equals("*") ? cpus : Integer.parseInt(m.group(1));
    }

    /**
     * A path as given, else a file shipped with {@code --files}/{@code --archives} (SparkFiles), else an error that
     * names both places looked at.
     */
    static Path resolve(String given, String setting) {
        Path p = Path.of(given.startsWith("file:") ? java.net.URI.create(given).getPath() : given);
        if (Files.exists(p)) return p;
        if (SparkEnv.get() != null) {
            Path shipped = Path.of(SparkFiles.get(given));
            if (Files.exists(shipped)) return shipped;
            throw new IllegalArgumentException(setting + " " + given + ": no such file or directory on this executor (looked at "
                    + p.toAbsolutePath() + " and among the files shipped with --files/--archives, " + shipped + ")");
        }
        throw new IllegalArgumentException(setting + " " + given + ": no such file or directory on this executor (" + p.toAbsolutePath() + ")");
    }

    /**
     * Counts the cores in use by inferences in this JVM. A task takes as many permits as one inference runs threads
     * (at most all of them) and waits while they are taken.
     */
    public static final class Gate {
        private final Semaphore cores;
        private final int permits;
        private final AtomicInteger running = new AtomicInteger();
        private volatile int mostRunning;

        public Gate(int permits) {
            this.permits = permits;
            this.cores = new Semaphore(permits, true);
        }

        public int permits() { return permits; }

        /** The most inferences that ran at the same time so far. */
        public int mostRunning() { return mostRunning; }

        public <T> T run(int threads, Supplier<T> body) {
            int n = Math.min(Math.max(1, threads), permits);
            cores.acquireUninterruptibly(n);
            try {
                int now = running.incrementAndGet();
                synchronized (this) { if (now > mostRunning) mostRunning = now; }
                try {
                    return body.get();
                } finally {
                    running.decrementAndGet();
                }
            } finally {
                cores.release(n);
            }
        }
    }
}
