package dev.kimivl.bench;

import dev.kimivl.tensor.NativeKernels;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;

/**
 * The native weight-absorbed MLA attention kernel (one thread) on Kimi-VL-A3B's shape: {@link #rows} 576-wide query
 * rows (16 heads of one token, or of four prompt tokens) against {@link #positions} cached latents, f32, f16 or bf16
 * cache (bf16: the vdpbf16ps kernel, on CPUs with AVX512-BF16 only, whatever {@link #isa} says).
 * Each call reads the next of 27 layers' caches, as a decoded token does, so the cache comes from memory. FLOPs per
 * call: 2·rows·positions·(576 + 512).
 *
 * <pre>java --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED \
 *     -cp "kimivl-bench/target/kimivl-bench.jar:kimivl-bench/target/lib/*" org.openjdk.jmh.Main LatentAttentionBench</pre>
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED"})
public class LatentAttentionBench {
    static final int R = 512, W = 576, LAYERS = 27;

    /** Query rows per call: 16 = one decoded token's heads; 64 = four prompt tokens attended together (prefill). */
    @Param({"16", "64"})
    public int rows;

    @Param({"4096", "512"})
    public int positions;

    @Param({"f32", "f16", "bf16"})
    public String cache;

    /** The kernels' instruction set (NativeKernels.Isa: avx2, avx512; both give the same results). */
    @Param({"avx512", "avx2"})
    public String isa;

    private NativeKernels.Isa form;

    private float[][] lat32;
    private short[][] lat16;
    private float[] q, m, l, o;
    private int layer;

    @Setup
    public void setup() {
        if (!NativeKernels.AVAILABLE) throw new IllegalStateException(NativeKernels.STATUS);
        form = NativeKernels.Isa.resolve(isa);
        SplittableRandom rnd = new SplittableRandom(3);
        q = new float[rows * W];
        m = new float[rows];
        l = new float[rows];
        o = new float[rows * R];
        for (int i = 0; i < q.length; i++) q[i] = (float) (rnd.nextDouble() - 0.5) * 0.1f;
        lat32 = new float[LAYERS][];
        lat16 = new short[LAYERS][];
        for (int k = 0; k < LAYERS; k++) {
            float[] f = new float[positions * W];
            for (int i = 0; i < f.length; i++) f[i] = (float) ((rnd.nextDouble() - 0.5) * 3.46);
            if (cache.equals("f32")) {
                lat32[k] = f;
            } else {
                short[] h = new short[f.length];
                for (int i = 0; i < f.length; i++) {
                    h[i] = cache.equals("bf16") ? dev.kimivl.model.KvCache.toBf16(f[i]) : Float.floatToFloat16(f[i]);
                }
                lat16[k] = h;
            }
        }
    }

    /** All query rows over every cached position of the next layer (one thread). */
    @Benchmark
    public float attend() {
        int k = layer;
        layer = k + 1 == LAYERS ? 0 : k + 1;
        Arrays.fill(m, Float.NEGATIVE_INFINITY);
        Arrays.fill(l, 0f);
        Arrays.fill(o, 0f);
        boolean ok = switch (cache) {
            case "f32" -> NativeKernels.latentAttention(q, 0, lat32[k], W, R, rows, 0, positions, 0.07f, m, l, o, form);
            case "bf16" -> NativeKernels.latentAttentionBf16(q, 0, lat16[k], W, R, rows, 0, positions, 0.07f, m, l, o);
            default -> NativeKernels.latentAttentionF16(q, 0, lat16[k], W, R, rows, 0, positions, 0.07f, m, l, o, form);
        };
        if (!ok) throw new IllegalStateException("the kernel declined the shape (bf16: needs AVX512-BF16)");
        return o[0] + l[0];
    }
}
