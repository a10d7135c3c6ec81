package dev.kimivl.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.kimivl.config.ModelConfig;
import dev.kimivl.config.PreprocessorConfig;
import dev.kimivl.config.TextConfig;
import dev.kimivl.io.WeightSource;
import dev.kimivl.io.gguf.GgufModel;
import dev.kimivl.model.KvCache;
import dev.kimivl.model.LanguageModel;
import dev.kimivl.model.PhaseTimer;
import dev.kimivl.model.StageSink;
import dev.kimivl.tensor.DType;
import dev.kimivl.tensor.Parallel;
import dev.kimivl.vision.LoadedImage;
import dev.kimivl.vision.VisionEncoder;
import dev.kimivl.vision.VisionOutput;

import java.io.IOException;
import java.io.PrintStream;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * The end-to-end benchmark behind {@code kimivl bench}: a random-weight model with the exact Kimi-VL-A3B shapes
 * (generated once into a cache directory), then load time, prefill of a 512-token prompt, decode of 128 tokens from
 * an empty context, decode of 128 tokens after a 4096-token context, MoonViT + projector on one 896×896 image, peak
 * RSS and the fraction of the memory-bandwidth ceiling that decode reaches.
 */
public final class ModelBench {
    /** What to run. */
    public record Options(QuantMix type, Path cacheDir, int promptTokens, int decodeTokens, List<Integer> contexts, ContextFill fill,
                          List<Integer> verifyRows, int imageSide, boolean vision, double bandwidthGBs, long seed, boolean profile, boolean gguf, boolean text) {
        public Options {
            contexts = List.copyOf(contexts);
            verifyRows = List.copyOf(verifyRows);
            for (int k : verifyRows) if (k < 1) throw new IllegalArgumentException("--verify-rows must be positive: " + k);
            if (contexts.isEmpty()) throw new IllegalArgumentException("--context needs at least one value (0: decode after an empty context)");
            for (int c : contexts) if (c < 0) throw new IllegalArgumentException("--context must not be negative: " + c);
        }

        public static Options defaults(QuantMix type, Path cacheDir) {
            return new Options(type, cacheDir, 512, 128, List.of(4096), ContextFill.RANDOM, List.of(), 896, true, 32.0, 42, false, true, true);
        }

        /** The first context (the one compared side by side with llama-bench's depth figure); 0 when none. */
        public int longContext() { return contexts.isEmpty() ? 0 : contexts.getFirst(); }
    }

    /**
     * How the context before a long-context decode is made. RANDOM writes random latents straight into the KV
     * cache (seconds, even at 128K, and the decode reads exactly the bytes a real cache holds); PREFILL runs a real
     * prefill of random tokens in the model's chunks, as llama-bench's {@code -d} / {@code -gp} do, and reports
     * its time (minutes at 8K on 2 cores; attention grows with the square of the context). TAIL writes random latents
     * for all but the last prefill chunk and runs that chunk as a real prefill: the largest chunk of a long prompt
     * (its attention sees every cached position), timed and with its transient memory measured, in minutes where a
     * whole 128K prefill takes most of a day.
     */
    public enum ContextFill {
        RANDOM, PREFILL, TAIL;

        public static ContextFill parse(String s) {
            return switch (s.toLowerCase(Locale.ROOT)) {
                case "random" -> RANDOM;
                case "prefill" -> PREFILL;
                case "tail" -> TAIL;
                default -> throw new IllegalArgumentException("--context-fill must be random, prefill or tail, not '" + s + "'");
            };
        }
    }

    /**
     * One decode measurement after {@code context} positions. {@code fill}: how the context was made ("none",
     * "random", "prefill"), {@code fillSeconds} its time (a prefill's; 0 for random latents); {@code kvCacheBytes}
     * the bytes the KV cache held (every layer's latents at that context plus the decoded tokens); {@code rssBytes}
     * the process's resident memory right after the decode (mapped weights, Java heap with that cache).
     * {@code fillTokens}: the tokens the timed prefill ran (the context, or the last chunk for "tail"; 0 for random
     * latents). {@code transientHeapBytes} / {@code transientRssBytes} (fill "tail" only, else -1): what the last
     * chunk's prefill took beyond the memory held before it, as an upper bound (the rise of the Java heap's pools'
     * peaks over the chunk, garbage not yet collected included) and a lower bound (the rise of the peak RSS, which
     * misses heap pages already resident from earlier work). {@code transientLiveBytes}: the most the heap held right
     * after a collection during the chunk, above what it held before (the chunk's live arrays; -1 if none ran).
     */
    public record Decode(int context, int tokens, double seconds, double tokPerSec, double bytesPerToken, double gbPerSec,
                         double ceilingTokPerSec, double ofCeiling, Map<String, Double> phases,
                         String fill, double fillSeconds, int fillTokens, long kvCacheBytes, long rssBytes,
                         long transientHeapBytes, long transientRssBytes, long transientLiveBytes) {}

    /**
     * One pass of {@code rows} consecutive tokens through {@link LanguageModel#forwardRows} (what verifying a draft of
     * rows - 1 tokens costs in speculative decoding), {@code seconds} a pass (median of the repetitions), and that
     * against one single-token decode step ({@code ofDecodeStep}): a draft accepted whole yields {@code rows} tokens
     * for that cost. {@code exact}: the rows equal single decode bit for bit here ({@link LanguageModel#rowsMatchDecode}),
     * so {@code --draft} may run on these weights and kernels.
     */
    public record VerifyPass(int rows, int context, double seconds, double ofDecodeStep, boolean exact) {}

    /** Everything {@code kimivl bench} reports. */
    public record Result(String type, int threads, String file, double fileGB, double generateSeconds, double loadSeconds,
                         double pageInSeconds, int promptTokens, double prefillSeconds, double prefillTokPerSec,
                         Map<String, Double> prefillPhases,
                         Decode decode, Decode decodeLong, List<Decode> decodeAt, boolean longContextRandomFill,
                         int imageSide, int imageTokens, double visionSeconds,
                         long peakRssBytes, long rssFileBytes, long rssAnonBytes, double weightBytesPerToken, double bandwidthGBs, String jvm, boolean intMatvec,
                         String kernels, double streamGBs, String kvCache, Map<String, Double> textGBByType, List<VerifyPass> verify) {}

    private ModelBench() {}

    public static Result run(Options o, PrintStream log) throws IOException {
        return run(o, RandomCheckpoint.defaultConfigJson(), log);
    }

    /** As {@link #run(Options, PrintStream)} with other shapes than Kimi-VL-A3B's (tests use a tiny config). */
    public static Result run(Options o, String configJson, PrintStream log) throws IOException {
        long g0 = System.nanoTime();
        Path[] files;
        boolean existed;
        if (o.gguf()) {
            Path[] f = RandomGguf.files(o.cacheDir(), o.type(), configJson);
            existed = Files.isRegularFile(f[0]) && (Files.isRegularFile(f[1]) || !ModelConfig.parse(configJson, "benchmark config").hasVision());
            files = RandomGguf.ensure(o.cacheDir(), o.type(), configJson, o.seed(), log);
        } else {
            DType t = o.type().uniform();
            if (t == null) throw new IllegalArgumentException("--format kvlb holds one block format (q4_0 or q8_0); " + o.type().label() + " exists as GGUF only");
            existed = Files.isRegularFile(RandomCheckpoint.cacheFile(o.cacheDir(), t, configJson));
            files = new Path[]{RandomCheckpoint.ensure(o.cacheDir(), t, configJson, o.seed(), log)};
        }
        double genSec = existed ? 0 : (System.nanoTime() - g0) / 1e9;
        Path file = files[0];

        long l0 = System.nanoTime();
        WeightSource ck;
        ModelConfig cfg;
        Map<String, Double> byType = new java.util.TreeMap<>();
        if (o.gguf()) {
            GgufModel g = GgufModel.open(files);
            ck = g;
            cfg = g.config();
            g.textFile().bytesByType().forEach((type, bytes) -> byType.put(type, bytes / 1e9));
        } else {
            RandomCheckpoint r = RandomCheckpoint.open(file);
            ck = r;
            cfg = r.config();
        }
        TextConfig tc = cfg.text();
        LanguageModel lm = LanguageModel.load(ck, tc, cfg.textPrefix());
        double loadSec = (System.nanoTime() - l0) / 1e9;
        log.printf(Locale.ROOT, "loaded %s in %.2f s (mapped, %d threads)%n", file.getFileName(), loadSec, Parallel.THREADS);

        double pageInSec = 0, weightBytes = lm.bytesPerDecodedToken(), prefillSec = Double.NaN;
        int P = o.promptTokens();
        Map<String, Double> prefillPhases = Map.of();
        Decode dec = null;
        List<Decode> decAt = new ArrayList<>();
        List<VerifyPass> verify = new ArrayList<>();
        // the image first, as in a real image prompt (encoded before the prompt's prefill)
        SplittableRandom vrnd = new SplittableRandom(o.seed() + 1);

        int imageTokens = 0;
        double visionSec = 0;
        if (o.vision() && cfg.hasVision()) {
            PreprocessorConfig pre = new PreprocessorConfig(new double[]{0.5, 0.5, 0.5}, new double[]{0.5, 0.5, 0.5}, 4096, true,
                    cfg.vision().patchSize(), cfg.vision().mergeH(), cfg.vision().mergeW());
            VisionEncoder enc = new VisionEncoder(ck, cfg.vision(), tc.hiddenSize(), pre);
            enc.encode(List.of(LoadedImage.ofRgb("warm-up", 112, 112, new int[112 * 112])));
            int side = o.imageSide();
            int[] rgb = new int[side * side];
            for (int i = 0; i < rgb.length; i++) rgb[i] = vrnd.nextInt(1 << 24);
            dev.kimivl.vision.VisionTimer.reset();
            long v0 = System.nanoTime();
            VisionOutput out = enc.encode(List.of(LoadedImage.ofRgb("random", side, side, rgb)));
            visionSec = (System.nanoTime() - v0) / 1e9;
            imageTokens = out.totalTokens();
            ck.releaseVisionPages();                   // as KimiVL.prompt does after encoding the images
            log.printf(Locale.ROOT, "MoonViT + projector, %dx%d image (%d tokens): %.2f s%s%n", side, side, imageTokens, visionSec, rssNow());
            if (o.profile()) log.print(dev.kimivl.vision.VisionTimer.report());
        }
        if (o.text()) {
            // first touch of every page of the text weights (page-table fill; disk reads if the file is not cached)
            long p0 = System.nanoTime();
            long textBytes = pageIn(ck, n -> !n.startsWith("vision_tower.") && !n.startsWith("multi_modal_projector."));
            pageInSec = (System.nanoTime() - p0) / 1e9;
            log.printf(Locale.ROOT, "paged in %.2f GB of text weights in %.2f s%n", textBytes / 1e9, pageInSec);

            double kvBytesPerCtx = lm.kvBytesPerPosition();
            SplittableRandom rnd = new SplittableRandom(o.seed());
            int V = tc.vocabSize();

            // warm-up: compiles the kernels (prefill and decode paths) on the measured prompt length, as llama-bench's
            // warm-up run does: a 32-token warm-up left the first timed pp512 of a run up to 1.4x slower than later ones
            {
                int W = Math.max(32, P);
                KvCache c = lm.newCache(W + 16);
                int[] ids = randomIds(rnd, W, V);
                float[] h = lm.forward(lm.embed(ids), ids.length, c, StageSink.NONE, null);
                int next = argmax(lm.logits(h, ids.length - 1));
                for (int i = 0; i < 8; i++) next = argmax(lm.logits(lm.forward(lm.embed(new int[]{next}), 1, c, StageSink.NONE, null), 0));
                log.println("warm-up done");
            }

            // prefill
            PhaseTimer.enable(o.profile());
            PhaseTimer.reset();
            int[] prompt = randomIds(rnd, P, V);
            KvCache pc = lm.newCache(P + 1);
            long s0 = System.nanoTime();
            float[] h = lm.forward(lm.embed(prompt), P, pc, StageSink.NONE, null);
            argmax(lm.logits(h, P - 1));
            prefillSec = (System.nanoTime() - s0) / 1e9;
            prefillPhases = PhaseTimer.seconds();
            log.printf(Locale.ROOT, "prefill %d tokens: %.2f s, %.2f tok/s%s%n", P, prefillSec, P / prefillSec, rssNow());
            pc = null;
            h = null;

            dec = decode(lm, 0, o, weightBytes, kvBytesPerCtx, rnd, log);
            for (int ctx : o.contexts()) decAt.add(decode(lm, ctx, o, weightBytes, kvBytesPerCtx, rnd, log));
            for (int k : o.verifyRows()) verify.add(verifyPass(lm, k, dec.seconds() / dec.tokens(), rnd, log));
            PhaseTimer.enable(false);
        }
        long rss = peakRss();
        long fileBytes = 0;
        for (Path p : files) fileBytes += Files.size(p);
        Result r = new Result(o.type().label(), Parallel.THREADS, String.join(" + ", java.util.Arrays.stream(files).map(Path::toString).toList()), fileBytes / 1e9, genSec,
                loadSec, pageInSec, P, prefillSec, P / prefillSec, prefillPhases, dec, decAt.isEmpty() ? null : decAt.getFirst(), List.copyOf(decAt),
                o.fill() == ContextFill.RANDOM,
                o.imageSide(), imageTokens, visionSec, rss, procStatus("RssFile:"), procStatus("RssAnon:"), weightBytes, o.bandwidthGBs(), Runtime.version().toString(),
                dev.kimivl.tensor.QuantMatrix.INT_MATVEC, dev.kimivl.tensor.Kernels.DEFAULT.describe(),
                o.text() ? streamReadGBs() : 0, lm.kvCachePrecision().name().toLowerCase(Locale.ROOT), byType, List.copyOf(verify));                   // after the peak RSS was read: its buffer is not counted
        ck.close();
        return r;
    }

    /**
     * Decodes o.decodeTokens() tokens greedily after a context of {@code context} positions (0: empty), made as
     * {@link Options#fill()} says: random latents, or a chunked prefill of random tokens (timed, with progress).
     */
    private static Decode decode(LanguageModel lm, int context, Options o, double weightBytes, double kvBytesPerCtx,
                                 SplittableRandom rnd, PrintStream log) {
        int N = o.decodeTokens();
        KvCache c = lm.newCache(context + N + 1);
        double fillSec = 0;
        String fill = context == 0 ? "none" : o.fill().name().toLowerCase(Locale.ROOT);
        int fillTokens = 0;
        long transientHeap = -1, transientRss = -1, live = -1;
        if (context > 0 && o.fill() == ContextFill.RANDOM) {
            c.fillRandom(context, rnd.nextLong());
        } else if (context > 0) {
            // TAIL: random latents up to the last chunk a chunked prefill of the context would run, then that chunk
            int chunk = lm.kernels().settings().prefillChunk();
            int tail = o.fill() == ContextFill.TAIL ? Math.min(context, context % chunk == 0 ? chunk : context % chunk) : context;
            if (tail < context) c.fillRandom(context - tail, rnd.nextLong());
            // the cache's room for the whole context is held before the chunk, as a generation reserves it for the
            // prompt: the chunk's transient memory is its own work, not the cache growing
            if (o.fill() == ContextFill.TAIL) c.reserve(context + N + 1);
            int[] ids = randomIds(rnd, tail, lm.config().vocabSize());
            float[] x = lm.embed(ids);
            TransientMemory mem = o.fill() == ContextFill.TAIL ? TransientMemory.start() : null;
            ProgressLine progress = new ProgressLine(log, 2_000_000_000L);
            String what = tail == context ? "the " + context + "-token context" : "the last " + tail + " tokens of the " + context + "-token context";
            long f0 = System.nanoTime();
            lm.prefill(x, tail, c, (done, total) -> progress.show(String.format(Locale.ROOT,
                    "prefill of %s: %d/%d tokens, %.0f s", what, done, total, (System.nanoTime() - f0) / 1e9), done, total, done.equals(total)));
            fillSec = (System.nanoTime() - f0) / 1e9;
            progress.end();
            fillTokens = tail;
            if (mem != null) {
                transientHeap = mem.heapRise();
                transientRss = mem.rssRise();
                live = mem.liveRise();
            }
            log.printf(Locale.ROOT, "prefill of %s: %.1f s, %.2f tok/s%s%s%n", what, fillSec, tail / fillSec,
                    mem == null ? "" : String.format(Locale.ROOT, "; transient memory %s (Java heap live before the chunk %.3f GB, max heap %.3f GB)",
                            transientFigures(live, transientHeap, transientRss), mem.heapBefore() / 1e9, Runtime.getRuntime().maxMemory() / 1e9), rssNow());
        }
        c.reserve(context + N + 1);                    // as a generation does (Generator): no doubling copy while timed
        PhaseTimer.reset();
        int next = rnd.nextInt(lm.config().vocabSize());
        long t0 = System.nanoTime();
        for (int i = 0; i < N; i++) {
            next = argmax(lm.logits(lm.forward(lm.embed(new int[]{next}), 1, c, StageSink.NONE, null), 0));
        }
        double sec = (System.nanoTime() - t0) / 1e9;
        double tps = N / sec;
        double avgCtx = context + (N - 1) / 2.0;
        double bytes = weightBytes + kvBytesPerCtx * avgCtx;
        double gbs = bytes * tps / 1e9;
        double ceiling = o.bandwidthGBs() * 1e9 / bytes;
        log.printf(Locale.ROOT, "decode %d tokens after %d: %.2f s, %.2f tok/s, %.2f GB/token -> %.1f GB/s (%.0f%% of the %.1f tok/s ceiling at %.0f GB/s); KV cache %.3f GB%s%n",
                N, context, sec, tps, bytes / 1e9, gbs, 100 * tps / ceiling, ceiling, o.bandwidthGBs(), c.bytesHeld() / 1e9, rssNow());
        return new Decode(context, N, sec, tps, bytes, gbs, ceiling, tps / ceiling, PhaseTimer.seconds(), fill, fillSec, fillTokens, c.bytesHeld(),
                procStatus("VmRSS:"), transientHeap, transientRss, live);
    }

    /**
     * Times a {@link LanguageModel#forwardRows} pass of k random tokens (each row routed to its own experts, as drafted
     * tokens are) plus their logits after a 256-position context: 5 passes, the cache truncated back after each.
     */
    private static VerifyPass verifyPass(LanguageModel lm, int k, double stepSeconds, SplittableRandom rnd, PrintStream log) {
        int ctx = 256, reps = 5;
        KvCache c = lm.newCache(ctx + k + 1);
        c.fillRandom(ctx, rnd.nextLong());
        double[] t = new double[reps];
        for (int r = 0; r < reps; r++) {
            int[] ids = randomIds(rnd, k, lm.config().vocabSize());
            long t0 = System.nanoTime();
            lm.logitsRows(lm.forwardRows(lm.embed(ids), k, c), k);
            t[r] = (System.nanoTime() - t0) / 1e9;
            c.truncate(ctx);
        }
        java.util.Arrays.sort(t);
        double sec = t[reps / 2];
        log.printf(Locale.ROOT, "verify pass of %d rows after %d: %.1f ms = %.2f decode steps (%.1f ms)%n", k, ctx, sec * 1e3, sec / stepSeconds, stepSeconds * 1e3);
        return new VerifyPass(k, ctx, sec, sec / stepSeconds, lm.rowsMatchDecode());
    }

    /** Touches one byte per 4 KiB page of every selected tensor; returns the bytes covered. */
    private static long pageIn(WeightSource ck, java.util.function.Predicate<String> which) {
        List<MemorySegment> segs = new ArrayList<>();
        long total = 0;
        for (String n : ck.names()) {
            if (!which.test(n)) continue;
            var t = ck.tensor(n);
            // a Q4_K tensor repacked at load (-Dkimivl.repackQ4K) lives in memory of its own, filled by the packing;
            // touching its file pages again would only bring them back into the resident set
            if (dev.kimivl.tensor.QuantMatrix.repackedAtLoad(t.dtype(), t.shape())) continue;
            MemorySegment s = t.data();
            segs.add(s);
            total += s.byteSize();
        }
        long[] sink = new long[1];
        Parallel.forRange(segs.size(), 1, (a, b) -> {
            long x = 0;
            for (int i = a; i < b; i++) {
                MemorySegment s = segs.get(i);
                for (long o = 0; o < s.byteSize(); o += 4096) x += s.get(ValueLayout.JAVA_BYTE, o);
            }
            synchronized (sink) { sink[0] += x; }
        });
        return total;
    }

    static int[] randomIds(SplittableRandom rnd, int n, int vocab) {
        int[] ids = new int[n];
        for (int i = 0; i < n; i++) ids[i] = rnd.nextInt(vocab);
        return ids;
    }

    static int argmax(float[] v) {
        int best = 0;
        for (int i = 1; i < v.length; i++) if (v[i] > v[best]) best = i;
        return best;
    }

    /** A tail fill's three transient-memory figures in words, as the progress line and the report print them. */
    static String transientFigures(long live, long heap, long rss) {
        return String.format(Locale.ROOT, "%s, %.3f GB of Java heap at most, %.3f GB of RSS at least",
                live < 0 ? "not seen by a collection" : String.format(Locale.ROOT, "%.3f GB live", live / 1e9), heap / 1e9, rss / 1e9);
    }

    /**
     * The memory a piece of work takes beyond what was held before it: the Java heap's pools' peaks are reset at the
     * start (their rise is an upper bound: garbage not yet collected counts), and so is the kernel's peak RSS (through
     * /proc/self/clear_refs; its rise is a lower bound: heap pages resident from earlier work are reused unseen).
     */
    record TransientMemory(long heapBefore, long rssBefore, java.util.concurrent.atomic.AtomicLong liveAfterGc,
                           List<Runnable> detach) {
        static TransientMemory start() {
            System.gc();                    // what earlier work left as garbage must not count against this work
            long used = 0;
            java.util.Set<String> heapPools = new java.util.HashSet<>();
            for (var p : java.lang.management.ManagementFactory.getMemoryPoolMXBeans()) {
                if (p.getType() == java.lang.management.MemoryType.HEAP) {
                    p.resetPeakUsage();
                    used += p.getUsage().getUsed();
                    heapPools.add(p.getName());
                }
            }
            try {
                Files.writeString(Path.of("/proc/self/clear_refs"), "5");      // 5: reset VmHWM to the current RSS
            } catch (IOException | RuntimeException e) {
                // not Linux, or not allowed: the RSS rise then also counts what earlier work peaked at
            }
            // the heap after each collection during the work: what was live then (the work's own arrays, not garbage)
            var live = new java.util.concurrent.atomic.AtomicLong(-1);
            List<Runnable> detach = new java.util.ArrayList<>();
            for (var gc : java.lang.management.ManagementFactory.getGarbageCollectorMXBeans()) {
                if (!(gc instanceof javax.management.NotificationEmitter emitter)) continue;
                javax.management.NotificationListener l = (n, hb) -> {
                    if (!n.getType().equals(com.sun.management.GarbageCollectionNotificationInfo.GARBAGE_COLLECTION_NOTIFICATION)) return;
                    var info = com.sun.management.GarbageCollectionNotificationInfo.from((javax.management.openmbean.CompositeData) n.getUserData());
                    long after = info.getGcInfo().getMemoryUsageAfterGc().entrySet().stream()
                            .filter(e -> heapPools.contains(e.getKey())).mapToLong(e -> e.getValue().getUsed()).sum();
                    live.accumulateAndGet(after, Math::max);
                };
                emitter.addNotificationListener(l, null, null);
                detach.add(() -> {
                    try {
                        emitter.removeNotificationListener(l);
                    } catch (javax.management.ListenerNotFoundException ignored) {
                        // already gone
                    }
                });
            }
            return new TransientMemory(used, procStatus("VmRSS:"), live, detach);
        }

        /**
         * The most the heap held right after a collection during the work, above what it held before: the work's
         * live arrays at those moments (a collection's notification arrives on its own thread, so read after the
         * work ends); -1 when no collection ran.
         */
        long liveRise() {
            detach.forEach(Runnable::run);
            long l = liveAfterGc.get();
            return l < 0 ? -1 : Math.max(0, l - heapBefore);
        }

        long heapRise() {
            long peak = 0;
            for (var p : java.lang.management.ManagementFactory.getMemoryPoolMXBeans()) {
                if (p.getType() == java.lang.management.MemoryType.HEAP) peak += p.getPeakUsage().getUsed();
            }
            return Math.max(0, peak - heapBefore);
        }

        long rssRise() {
            long hwm = procStatus("VmHWM:");
            return hwm < 0 || rssBefore < 0 ? -1 : Math.max(0, hwm - rssBefore);
        }
    }

    /** Peak resident set size (VmHWM) of this process in bytes, or -1 where /proc is unavailable. */
    public static long peakRss() { return procStatus("VmHWM:"); }

    /** "; RSS now x GB (peak y)": where in the run the peak happens (Linux; empty elsewhere). */
    private static String rssNow() {
        long[] v = procStatus("VmRSS:", "RssAnon:", "VmHWM:");
        return v[0] > 0 ? String.format(Locale.ROOT, "; RSS now %.2f GB (anonymous %.2f), peak so far %.2f GB", v[0] / 1e9, v[1] / 1e9, v[2] / 1e9) : "";
    }

    /** A size field of /proc/self/status (VmHWM:, RssAnon:, RssFile:) in bytes, or -1. */
    static long procStatus(String key) { return procStatus(new String[]{key})[0]; }

    /** Several size fields of /proc/self/status from one read, in bytes (-1 for each one missing or unreadable). */
    static long[] procStatus(String... keys) {
        long[] out = new long[keys.length];
        java.util.Arrays.fill(out, -1);
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
                for (int k = 0; k < keys.length; k++) {
                    if (line.startsWith(keys[k])) out[k] = Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
                }
            }
        } catch (IOException | RuntimeException e) {
            java.util.Arrays.fill(out, -1);
        }
        return out;
    }

    // ---------------------------------------------------------------- reporting

    /** The report without a side-by-side run: llama.cpp's figures are cited from {@link LlamaReference} (other runs, with their machine and date). */
    public static String text(Result r) {
        return text(r, null);
    }

    /**
     * The report; with {@code rounds} (kimivl bench --llama-bench), the side-by-side figures of this run
     * ({@link SideBySide}) instead of the cited ones. {@code r} is the last round's kimivl result.
     */
    public static String text(Result r, List<SideBySide.Round> rounds) {
        StringBuilder sb = new StringBuilder();
        sb.append(String.format(Locale.ROOT, "kimivl bench: random Kimi-VL-A3B weights, %s, %d threads, %s%s, %s KV cache%n", r.type(), r.threads(), r.jvm(),
                r.intMatvec() ? ", integer matvec" : "", r.kvCache()));
        sb.append(String.format(Locale.ROOT, "  kernels           %s%n", r.kernels()));
        sb.append(String.format(Locale.ROOT, "  model file        %s (%.2f GB)%s%n", r.file(), r.fileGB(),
                r.generateSeconds() > 0 ? String.format(Locale.ROOT, ", generated in %.0f s", r.generateSeconds()) : ""));
        if (r.textGBByType() != null && r.textGBByType().size() > 1) {
            StringBuilder t = new StringBuilder();
            r.textGBByType().entrySet().stream().sorted(Map.Entry.<String, Double>comparingByValue().reversed())
                    .forEach(e -> t.append(t.isEmpty() ? "" : ", ").append(String.format(Locale.ROOT, "%s %.2f GB", e.getKey(), e.getValue())));
            sb.append("  text weights      ").append(t).append('\n');
        }
        sb.append(String.format(Locale.ROOT, "  load              %.2f s (mapped; first touch of the text weights %.2f s)%n", r.loadSeconds(), r.pageInSeconds()));
        if (r.decode() != null) {
            sb.append(String.format(Locale.ROOT, "  prefill pp%d      %.2f tok/s (%.2f s)%n", r.promptTokens(), r.prefillTokPerSec(), r.prefillSeconds()));
            appendDecode(sb, "decode tg" + r.decode().tokens() + "      ", r.decode(), r.streamGBs());
            for (Decode d : r.decodeAt()) {
                appendDecode(sb, String.format(Locale.ROOT, "%-18s", "decode @" + d.context()), d, r.streamGBs());
                String how = switch (d.fill()) {
                    case "prefill" -> String.format(Locale.ROOT, "made by a prefill of %d random tokens: %.1f s, %.2f tok/s", d.context(), d.fillSeconds(), d.context() / d.fillSeconds());
                    case "tail" -> String.format(Locale.ROOT, "random latents, then its last %d tokens as a real prefill: %.1f s, %.2f tok/s,"
                                    + " transient memory %s", d.fillTokens(), d.fillSeconds(), d.fillTokens() / d.fillSeconds(),
                            transientFigures(d.transientLiveBytes(), d.transientHeapBytes(), d.transientRssBytes()));
                    default -> "random latents written into the KV cache, not a prefill";
                };
                sb.append(String.format(Locale.ROOT, "                    (the %d-token context is %s; %.0f%% of the short-context speed)%n",
                        d.context(), how, 100 * d.tokPerSec() / r.decode().tokPerSec()));
                sb.append(String.format(Locale.ROOT, "                    KV cache %.3f GB (%s, %d positions), RSS after %.2f GB%n",
                        d.kvCacheBytes() / 1e9, r.kvCache(), d.context() + d.tokens() + 1, d.rssBytes() / 1e9));
            }
        }
        for (VerifyPass v : r.verify()) {
            sb.append(String.format(Locale.ROOT, "  verify %d rows     %.1f ms a pass = %.2f decode steps (a draft of %d accepted whole: up to %.2fx a step's tokens; speculative decoding %s)%n",
                    v.rows(), v.seconds() * 1e3, v.ofDecodeStep(), v.rows() - 1, v.rows() / v.ofDecodeStep(), v.exact() ? "exact on these weights" : "NOT exact here: --draft stays off"));
        }
        if (r.imageTokens() > 0) {
            sb.append(String.format(Locale.ROOT, "  MoonViT+projector %.2f s for one %dx%d image (%d tokens)%n", r.visionSeconds(), r.imageSide(), r.imageSide(),
                    r.imageTokens()));
        } else {
            sb.append("  MoonViT+projector skipped\n");
        }
        sb.append(String.format(Locale.ROOT, "  peak RSS          %.2f GB (at the end: %.2f GB mapped file pages + %.2f GB anonymous: Java heap, KV caches, rebuilt/packed weights)%n",
                r.peakRssBytes() / 1e9, r.rssFileBytes() / 1e9, r.rssAnonBytes() / 1e9));
        if (rounds != null && !rounds.isEmpty()) sb.append(SideBySide.text(rounds));
        else sb.append(LlamaReference.load().text(r));
        if (r.decode() == null) return sb.toString();
        sb.append(String.format(Locale.ROOT, "  weights/token     %.3f GB read per decoded token (+%.1f MB KV cache per 1k of context)%n",
                r.weightBytesPerToken() / 1e9, (r.decodeLong().bytesPerToken() - r.decode().bytesPerToken()) / Math.max(1, r.decodeLong().context()) * 1000 / 1e6));
        if (!r.decode().phases().isEmpty()) {
            sb.append("  profile (s)       prefill ").append(fmt(r.prefillPhases())).append('\n');
            sb.append("                    decode ").append(fmt(r.decode().phases())).append('\n');
            for (Decode d : r.decodeAt()) sb.append("                    decode@" + d.context() + " ").append(fmt(d.phases())).append('\n');
        }
        return sb.toString();
    }

    private static void appendDecode(StringBuilder sb, String label, Decode d, double streamGBs) {
        sb.append(String.format(Locale.ROOT, "  %s%.2f tok/s, %.1f GB/s = %.0f%% of the bandwidth ceiling (%.1f tok/s at %.0f GB/s)%n",
                label, d.tokPerSec(), d.gbPerSec(), 100 * d.ofCeiling(), d.ceilingTokPerSec(), d.gbPerSec() / Math.max(1e-9, d.ofCeiling())));
        if (streamGBs > 0) {
            sb.append(String.format(Locale.ROOT, "                    = %.0f%% of this run's measured stream read (%.1f GB/s: ceiling %.1f tok/s)%n",
                    100 * d.gbPerSec() / streamGBs, streamGBs, streamGBs * 1e9 / d.bytesPerToken()));
        }
    }

    private static volatile long streamSink;

    /**
     * The memory bandwidth this machine gives right now: the best of 8 parallel reads (the compute threads, native read loop) of a
     * 512 MB buffer, 16x the L3 cache. Decode can at best stream its weights at this rate, so the ratio to it is the
     * kernels' efficiency on a shared machine whose bandwidth varies from run to run.
     */
    static double streamReadGBs() {
        if (!dev.kimivl.tensor.NativeKernels.AVAILABLE) return 0;     // the probe is the native read loop
        long n = 512L << 20, piece = 1L << 20;
        try (java.lang.foreign.Arena arena = java.lang.foreign.Arena.ofShared()) {
            java.lang.foreign.MemorySegment s = arena.allocate(n, 64);
            s.fill((byte) 1);
            double best = 0;
            for (int rep = 0; rep < 8; rep++) {
                long t0 = System.nanoTime();
                Parallel.forRange((int) (n / piece), 1, (from, to) ->
                        streamSink += dev.kimivl.tensor.NativeKernels.streamRead(s.asSlice(from * piece, (to - from) * piece)));
                best = Math.max(best, n / ((System.nanoTime() - t0) / 1e9) / 1e9);
            }
            return best;
        }
    }

    private static String fmt(Map<String, Double> m) {
        StringBuilder sb = new StringBuilder();
        m.forEach((k, v) -> sb.append(k).append('=').append(String.format(Locale.ROOT, "%.2f", v)).append(' '));
        return sb.toString().trim();
    }

    public static String json(Result r) {
        return json(r, null);
    }

    /**
     * The report as one JSON object: the result's fields, then "sideBySide" (the rounds of --llama-bench, with
     * each figure's ratio kimivl / theirs) or, without them, "llamaCppReference" (the cited figures, other runs).
     */
    public static String json(Result r, List<SideBySide.Round> rounds) {
        ObjectMapper om = new ObjectMapper();
        ObjectNode n = om.valueToTree(r);
        if (rounds != null && !rounds.isEmpty()) n.set("sideBySide", SideBySide.json(rounds, om));
        else n.set("llamaCppReference", LlamaReference.load().json(r, om));
        if (r.decode() != null) n.put("decodeLongOfShort", r.decodeLong().tokPerSec() / r.decode().tokPerSec());
        try {
            return om.writeValueAsString(n);
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }
}
