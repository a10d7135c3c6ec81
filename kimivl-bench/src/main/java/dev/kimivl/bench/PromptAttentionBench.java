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
 * The native causal prompt-attention kernel (decompressed MLA, one thread) on Kimi-VL-A3B's shape: one head, the last
 * block of 32 prompt tokens (the heaviest) over {@link #positions} keys [positions, 192] and values [positions, 128],
 * the head's queries contiguous as MlaAttention passes them. FLOPs per call ≈ 2·32·positions·(192 + 128).
 *
 * <pre>java --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED \
 *     -cp "kimivl-bench/target/kimivl-bench.jar:kimivl-bench/target/lib/*" org.openjdk.jmh.Main PromptAttentionBench</pre>
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED"})
public class PromptAttentionBench {
    static final int D = 192, R = 128, ROWS = 32;

    @Param({"512", "2048"})
    public int positions;

    private float[] q, k, v;
    private final float[] m = new float[ROWS], l = new float[ROWS], o = new float[ROWS * R];

    @Setup
    public void setup() {
        if (!NativeKernels.AVAILABLE) throw new IllegalStateException(NativeKernels.STATUS);
        SplittableRandom rnd = new SplittableRandom(5);
        q = new float[ROWS * D];
        k = new float[positions * D];
        v = new float[positions * R];
        for (int i = 0; i < q.length; i++) q[i] = (float) (rnd.nextDouble() - 0.5) * 0.2f;
        for (int i = 0; i < k.length; i++) k[i] = (float) (rnd.nextDouble() - 0.5) * 3.46f;
        for (int i = 0; i < v.length; i++) v[i] = (float) (rnd.nextDouble() - 0.5) * 3.46f;
    }

    /** The last 32 prompt tokens (positions − 32 .. positions − 1) over every key they see. */
    @Benchmark
    public float causalBlock() {
        Arrays.fill(m, Float.NEGATIVE_INFINITY);
        Arrays.fill(l, 0f);
        Arrays.fill(o, 0f);
        if (!NativeKernels.mhaCausal(q, 0, D, D, k, 0, D, v, 0, R, R, ROWS, 0, positions, 0.07f, positions - ROWS, m, l, o)) {
            throw new IllegalStateException("the kernel declined the shape");
        }
        return o[0] + l[0];
    }
}
