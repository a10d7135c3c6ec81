package dev.kimivl.vision;

import dev.kimivl.config.PreprocessorConfig;
import dev.kimivl.config.VisionConfig;
import dev.kimivl.io.CheckpointException;
import dev.kimivl.io.TensorData;
import dev.kimivl.io.WeightSource;
import dev.kimivl.tensor.DType;
import dev.kimivl.tensor.Kernels;
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
 * table, projector 4608 → 4608 → 2048) with random weights in heap segments, encoding one square image.
 *
 * <p>Weights: {@code bf16} (every tensor BF16) or {@code q8}, the types of a Q8_0 mmproj as {@code kimivl convert
 * --type q8_0} and llama.cpp write it: matrices Q8_0 where their rows are whole blocks, fc1 ([1152, 4304]: 4304 is not)
 * F16, the patch embedding, position table, norms and biases F32.
 *
 * <p>Paths: {@code int} (the default kernels: Q8_0 layers on their blocks through the native int8 GEMM) and
 * {@code float} (the Java kernel set, which sends every layer through the float path: each layer dequantized and
 * packed to f32 right before its product, as before the integer path existed); {@code both} encodes with each in turn
 * on the same weights, alternating the order every run (ABBA), and prints the float/int ratios of each run, so the
 * comparison holds on a machine shared with other work. Peak RSS (VmHWM) is printed at the end: run one path per JVM
 * to compare it.
 *
 * <pre>
 * mvn -q -Dkimivl.target=target-vis -pl kimivl-core test-compile
 * java --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED -Xmx4g \
 *      -cp kimivl-core/target-vis/classes:kimivl-core/target-vis/test-classes \
 *      dev.kimivl.vision.VisionBench [side=896] [layers=27] [runs=1] [bf16|q8] [both|int|float]
 * </pre>
 */
public final class VisionBench {
    public static void main(String[] args) {
        int side = args.length > 0 ? Integer.parseInt(args[0]) : 896;
        int layers = args.length > 1 ? Integer.parseInt(args[1]) : 27;
        int runs = args.length > 2 ? Integer.parseInt(args[2]) : 1;
        boolean q8 = args.length > 3 && args[3].equals("q8");
        if (args.length > 3 && !q8 && !args[3].equals("bf16")) throw new IllegalArgumentException("weights: bf16 or q8, not " + args[3]);
        String paths = args.length > 4 ? args[4] : "int";
        if (!List.of("both", "int", "float").contains(paths)) throw new IllegalArgumentException("paths: both, int or float, not " + paths);
        int dim = 1152, heads = 16, inter = 4304, textHidden = 2048, patch = 14;
        VisionConfig vc = new VisionConfig(patch, dim, layers, heads, inter, 64, 64, 2, 2);
        PreprocessorConfig pc = new PreprocessorConfig(new double[]{0.5, 0.5, 0.5}, new double[]{0.5, 0.5, 0.5}, 4096, true, patch, 2, 2);

        long t0 = System.nanoTime();
        RandomWeights w = new RandomWeights(42, q8);
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
        List<String> names = paths.equals("both") ? List.of("int", "float") : List.of(paths);
        Map<String, VisionEncoder> enc = new LinkedHashMap<>();
        for (String n : names) enc.put(n, new VisionEncoder(w, vc, textHidden, pc, n.equals("int") ? Kernels.DEFAULT : Kernels.java()));
        System.out.printf("weights: %.2f GB random (%s), %d layers, built in %.1f s; threads %d; kernels: %s%n", w.bytes / 1e9,
                q8 ? "Q8_0 mmproj types: Q8_0, F16 fc1, F32" : "BF16", layers, (System.nanoTime() - t0) / 1e9, Parallel.THREADS, Kernels.DEFAULT.describe());
        for (var e : enc.entrySet()) {
            System.out.printf("  %s path: %d of %d tower linear layers on quantized blocks, float weight buffer %.1f MB per encode%n", e.getKey(),
                    e.getValue().tower().integerLayers(), 1 + 4 * layers, e.getValue().floatBufferBytes() / 1e6);
        }

        SplittableRandom rnd = new SplittableRandom(7);
        int[] rgb = new int[side * side];
        for (int i = 0; i < rgb.length; i++) rgb[i] = rnd.nextInt(1 << 24);
        LoadedImage img = LoadedImage.ofRgb("random" + side, side, side, rgb);
        int[] grid = ImagePreprocessor.gridFor(side, side, pc);
        long L = (long) grid[0] * grid[1], M = L / 4;
        double flops = 2.0 * L * 588 * dim
                + layers * (2.0 * L * ((long) dim * 3 * dim + (long) dim * dim + 2L * dim * inter) + 4.0 * L * L * dim)
                + 2.0 * M * ((long) 4 * dim * 4 * dim + 4L * dim * textHidden);

        // warm-up, not counted: a small image, then the benchmark's image once, so the JIT has compiled every kernel at
        // the sizes measured (the integer path's tiles need more than one 128-patch block)
        for (var e : enc.entrySet()) {
            long w0 = System.nanoTime();
            e.getValue().encode(List.of(LoadedImage.ofRgb("warm", 112, 112, new int[112 * 112])));
            e.getValue().encode(List.of(img));
            System.out.printf("warm-up encodes, %s path: %.1f s%n", e.getKey(), (System.nanoTime() - w0) / 1e9);
        }
        Map<String, double[]> wall = new LinkedHashMap<>(), cpuSec = new LinkedHashMap<>();
        for (String n : names) { wall.put(n, new double[runs]); cpuSec.put(n, new double[runs]); }
        float[] firstFeatures = null;
        for (int r = 0; r < runs; r++) {
            List<String> order = new java.util.ArrayList<>(names);
            if (r % 2 == 1) java.util.Collections.reverse(order);
            for (String n : order) {
                VisionTimer.reset();
                long cpu0 = processCpuNanos();
                long s = System.nanoTime();
                VisionOutput out = enc.get(n).encode(List.of(img));
                double sec = (System.nanoTime() - s) / 1e9;
                double cpu = (processCpuNanos() - cpu0) / 1e9;
                wall.get(n)[r] = sec;
                cpuSec.get(n)[r] = cpu;
                System.out.printf("run %d, %s path: encode %dx%d: %d patches (grid %dx%d) -> %d tokens x %d: %.2f s, %.1f GFLOP -> %.1f GFLOP/s (checksum %.4f)%n",
                        r, n, side, side, L, grid[0], grid[1], out.totalTokens(), out.textHidden(), sec, flops / 1e9, flops / 1e9 / sec, out.features()[0]);
                // on a shared machine wall time depends on the other load; CPU time per core shows what 2 free cores would take
                System.out.printf("  process CPU %.1f s (%.2f cores busy on average); %.1f GFLOP per CPU-second -> %.1f s on %d free cores; load %s%n",
                        cpu, cpu / sec, flops / 1e9 / cpu, cpu / Parallel.THREADS, Parallel.THREADS, loadAverage());
                System.out.print(VisionTimer.report());
                if (firstFeatures == null) firstFeatures = out.features();
                else System.out.printf("  features against the first path's: relative RMS difference %.4f%n", relRms(out.features(), firstFeatures));
            }
            if (names.size() == 2) {
                System.out.printf("run %d: float/int wall %.3f, CPU %.3f%n", r, wall.get("float")[r] / wall.get("int")[r], cpuSec.get("float")[r] / cpuSec.get("int")[r]);
            }
        }
        if (names.size() == 2) {
            double[] rw = new double[runs], rc = new double[runs];
            for (int r = 0; r < runs; r++) { rw[r] = wall.get("float")[r] / wall.get("int")[r]; rc[r] = cpuSec.get("float")[r] / cpuSec.get("int")[r]; }
            java.util.Arrays.sort(rw);
            java.util.Arrays.sort(rc);
            System.out.printf("float/int over %d runs: wall median %.3f (min %.3f, max %.3f), CPU median %.3f (min %.3f, max %.3f)%n",
                    runs, rw[runs / 2], rw[0], rw[runs - 1], rc[runs / 2], rc[0], rc[runs - 1]);
        }
        System.out.println("peak RSS (VmHWM): " + procStatus("VmHWM:"));
    }

    static double relRms(float[] x, float[] y) {
        double num = 0, den = 0;
        for (int i = 0; i < x.length; i++) { num += (x[i] - y[i]) * (double) (x[i] - y[i]); den += (double) y[i] * y[i]; }
        return Math.sqrt(num / den);
    }

    static String procStatus(String key) {
        try {
            for (String line : java.nio.file.Files.readAllLines(java.nio.file.Path.of("/proc/self/status"))) {
                if (line.startsWith(key)) return line.substring(key.length()).trim();
            }
        } catch (java.io.IOException e) {
            return "unknown (" + e.getMessage() + ")";
        }
        return "unknown";
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

    /**
     * In-memory tensors with small random values (±0.05), in heap segments: all BF16, or ({@code q8}) in a Q8_0
     * mmproj's types (2-D matrices Q8_0 where their rows are whole blocks, else F16; everything else F32).
     */
    static final class RandomWeights implements WeightSource {
        final Map<String, TensorData> tensors = new LinkedHashMap<>();
        final SplittableRandom rnd;
        final boolean q8;
        long bytes;

        RandomWeights(long seed) { this(seed, false); }

        RandomWeights(long seed, boolean q8) { rnd = new SplittableRandom(seed); this.q8 = q8; }

        void add(String name, long... shape) {
            long n = 1;
            for (long d : shape) n *= d;
            float[] f = new float[Math.toIntExact(n)];
            boolean norm = name.contains("norm") && name.endsWith(".weight");
            for (int i = 0; i < f.length; i++) {
                f[i] = norm ? 1f + 0.1f * (float) (rnd.nextDouble() - 0.5) : 0.1f * (float) (rnd.nextDouble() - 0.5);
            }
            DType t;
            MemorySegment data;
            boolean matrix = shape.length == 2 && !name.contains("pos_emb");
            if (q8 && matrix && shape[1] % 32 == 0) {
                t = DType.Q8_0;
                data = dev.kimivl.tensor.Quant.quantize(f, (int) shape[0], (int) shape[1], DType.Q8_0);
            } else if (q8 && matrix) {
                t = DType.F16;
                short[] h = new short[f.length];
                for (int i = 0; i < f.length; i++) h[i] = Float.floatToFloat16(f[i]);
                data = MemorySegment.ofArray(h);
            } else if (q8) {
                t = DType.F32;
                data = MemorySegment.ofArray(f);
            } else {
                t = DType.BF16;
                short[] v = new short[f.length];
                for (int i = 0; i < f.length; i++) v[i] = VectorMath.floatToBf16(f[i]);
                data = MemorySegment.ofArray(v);
            }
            bytes += data.byteSize();
            tensors.put(name, new TensorData(name, t, shape, data, "random"));
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
