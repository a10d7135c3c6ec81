package dev.kimivl.vision;

import dev.kimivl.config.PreprocessorConfig;
import dev.kimivl.config.VisionConfig;
import dev.kimivl.io.CheckpointException;
import dev.kimivl.io.TensorData;
import dev.kimivl.io.WeightSource;
import dev.kimivl.tensor.DType;
import dev.kimivl.tensor.Parallel;
import dev.kimivl.tensor.VectorMath;

import java.lang.foreign.MemorySegment;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;

/**
 * Benchmark (not a test): the full-size Kimi-VL vision path (MoonViT 27 × 1152, 16 heads, MLP 4304, 64×64 position
 * table, projector 4608 → 4608 → 2048) with random BF16 weights in heap segments, encoding one square image.
 *
 * <pre>
 * mvn -q -Dkimivl.target=target-vis -pl kimivl-core test-compile
 * java --add-modules jdk.incubator.vector -Xmx4g -cp kimivl-core/target-vis/classes:kimivl-core/target-vis/test-classes \
 *      dev.kimivl.vision.VisionBench [side=896] [layers=27] [runs=1]
 * </pre>
 */
public final class VisionBench {
    public static void main(String[] args) {
        int side = args.length > 0 ? Integer.parseInt(args[0]) : 896;
        int layers = args.length > 1 ? Integer.parseInt(args[1]) : 27;
        int runs = args.length > 2 ? Integer.parseInt(args[2]) : 1;
        int dim = 1152, heads = 16, inter = 4304, textHidden = 2048, patch = 14;
        VisionConfig vc = new VisionConfig(patch, dim, layers, heads, inter, 64, 64, 2, 2);
        PreprocessorConfig pc = new PreprocessorConfig(new double[]{0.5, 0.5, 0.5}, new double[]{0.5, 0.5, 0.5}, 4096, true, patch, 2, 2);

        long t0 = System.nanoTime();
        RandomWeights w = new RandomWeights(42);
        w.add("vision_tower.patch_embed.proj.weight", dim, 3, patch, patch);
        w.add("vision_tower.patch_embed.proj.bias", dim);
        w.add("vision_tower.patch_embed.pos_emb.weight", 64, 64, dim);
        for (int b = 0; b < layers; b++) {
            String p = "vision_tower.encoder.blocks." + b + ".";
            for (String n : List.of("norm0", "norm1")) { w.add(p + n + ".weight", dim); w.add(p + n + ".bias", dim); }
            w.add(p + "wqkv.weight", 3 * dim, dim); w.add(p + "wqkv.bias", 3 * dim);
            w.add(p + "wo.weight", dim, dim); w.add(p + "wo.bias", dim);
            w.add(p + "mlp.fc0.weight", inter, dim); w.add(p + "mlp.fc0.bias", inter);
            w.add(p + "mlp.fc1.weight", dim, inter); w.add(p + "mlp.fc1.bias", dim);
        }
        w.add("vision_tower.encoder.final_layernorm.weight", dim); w.add("vision_tower.encoder.final_layernorm.bias", dim);
        w.add("multi_modal_projector.pre_norm.weight", dim); w.add("multi_modal_projector.pre_norm.bias", dim);
        w.add("multi_modal_projector.linear_1.weight", 4 * dim, 4 * dim); w.add("multi_modal_projector.linear_1.bias", 4 * dim);
        w.add("multi_modal_projector.linear_2.weight", textHidden, 4 * dim); w.add("multi_modal_projector.linear_2.bias", textHidden);
        VisionEncoder enc = new VisionEncoder(w, vc, textHidden, pc);
        System.out.printf("weights: %.2f GB BF16 random, built in %.1f s; threads %d%n", w.bytes / 1e9, (System.nanoTime() - t0) / 1e9, Parallel.THREADS);

        SplittableRandom rnd = new SplittableRandom(7);
        int[] rgb = new int[side * side];
        for (int i = 0; i < rgb.length; i++) rgb[i] = rnd.nextInt(1 << 24);
        LoadedImage img = LoadedImage.ofRgb("random" + side, side, side, rgb);
        int[] grid = ImagePreprocessor.gridFor(side, side, pc);
        long L = (long) grid[0] * grid[1], M = L / 4;
        double flops = 2.0 * L * 588 * dim
                + layers * (2.0 * L * ((long) dim * 3 * dim + (long) dim * dim + 2L * dim * inter) + 4.0 * L * L * dim)
                + 2.0 * M * ((long) 4 * dim * 4 * dim + 4L * dim * textHidden);

        // warm-up on a small image so the JIT has compiled the kernels
        long w0 = System.nanoTime();
        enc.encode(List.of(LoadedImage.ofRgb("warm", 112, 112, new int[112 * 112])));
        System.out.printf("warm-up encode (packs the weights to f32 panels on first use): %.1f s%n", (System.nanoTime() - w0) / 1e9);
        for (int r = 0; r < runs; r++) {
            VisionTimer.reset();
            long cpu0 = processCpuNanos();
            long s = System.nanoTime();
            VisionOutput out = enc.encode(List.of(img));
            double sec = (System.nanoTime() - s) / 1e9;
            System.out.printf("encode %dx%d: %d patches (grid %dx%d) -> %d tokens x %d: %.2f s, %.1f GFLOP -> %.1f GFLOP/s (checksum %.4f)%n",
                    side, side, L, grid[0], grid[1], out.totalTokens(), out.textHidden(), sec, flops / 1e9, flops / 1e9 / sec, out.features()[0]);
            double cpu = (processCpuNanos() - cpu0) / 1e9;
            // on a shared machine wall time depends on the other load; CPU time per core shows what 2 free cores would take
            System.out.printf("  process CPU %.1f s (%.2f cores busy on average); %.1f GFLOP per CPU-second -> %.1f s on %d free cores; load %s%n",
                    cpu, cpu / sec, flops / 1e9 / cpu, cpu / Parallel.THREADS, Parallel.THREADS, loadAverage());
            System.out.print(VisionTimer.report());
        }
    }

    static long processCpuNanos() {
        return ((com.sun.management.OperatingSystemMXBean) java.lang.management.ManagementFactory.getOperatingSystemMXBean()).getProcessCpuTime();
    }

    static String loadAverage() {
        try {
            return java.nio.file.Files.readString(java.nio.file.Path.of("/proc/loadavg")).trim();
        } catch (java.io.IOException e) {
            return String.format("%.2f", java.lang.management.ManagementFactory.getOperatingSystemMXBean().getSystemLoadAverage());
        }
    }

    /** In-memory BF16 tensors with small random values (±0.05), in heap segments. */
    static final class RandomWeights implements WeightSource {
        final Map<String, TensorData> tensors = new LinkedHashMap<>();
        final SplittableRandom rnd;
        long bytes;

        RandomWeights(long seed) { rnd = new SplittableRandom(seed); }

        void add(String name, long... shape) {
            long n = 1;
            for (long d : shape) n *= d;
            short[] v = new short[Math.toIntExact(n)];
            boolean norm = name.contains("norm") && name.endsWith(".weight");
            for (int i = 0; i < v.length; i++) {
                float x = norm ? 1f + 0.1f * (float) (rnd.nextDouble() - 0.5) : 0.1f * (float) (rnd.nextDouble() - 0.5);
                v[i] = VectorMath.floatToBf16(x);
            }
            bytes += 2 * n;
            tensors.put(name, new TensorData(name, DType.BF16, shape, MemorySegment.ofArray(v), "random"));
        }

        @Override public Set<String> names() { return tensors.keySet(); }
        @Override public boolean has(String name) { return tensors.containsKey(name); }
        @Override public TensorData tensor(String name) {
            TensorData t = tensors.get(name);
            if (t == null) throw new CheckpointException("random weights: no tensor '" + name + "'");
            return t;
        }
        @Override public String description() { return "random BF16 weights"; }
        @Override public void close() {}
    }
}
