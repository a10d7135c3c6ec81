package dev.kimivl.bench;

import dev.kimivl.tensor.DType;
import dev.kimivl.tensor.Quant;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Random;
import java.util.concurrent.TimeUnit;

/**
 * The formats of published k-quant files (Q4_K, Q6_K, Q5_0; a Q4_K_M file of Kimi-VL-A3B is mostly these and Q8_0)
 * next to Q4_0 and Q8_0, on the library's default path (int8 activations into the native kernels), and the low-bit
 * formats with Java kernels only (Q2_K, Q3_K, IQ4_NL, IQ4_XS). As
 * {@link KernelBench} (see {@link WeightBench}): matvec rotates over copies totalling ≥ 256 MB so the weights come from memory (bytesPerOp / time
 * = GB/s); matmul multiplies {@link #batch} inputs (prefill). Random blocks with small f16 scales: values do not change
 * speed.
 *
 * <pre>java --add-modules jdk.incubator.vector -cp "target/kimivl-bench.jar:target/lib/*" org.openjdk.jmh.Main KQuantBench</pre>
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED"})
public class KQuantBench extends WeightBench {
    /** rows x cols: an expert's gate/up [1408, 2048] and the shared experts' down [2048, 2816] (both whole 256-blocks). */
    @Param({"1408x2048", "2048x2816"})
    public String shape;

    @Param({"Q4_K", "Q6_K", "Q5_0", "Q4_0", "Q8_0", "Q2_K", "Q3_K", "IQ4_NL", "IQ4_XS"})
    public String type;

    /** Inputs of the batched product (the tokens an expert gets from a 512-token prompt, about 48). */
    @Param({"48"})
    public int batch;

    @Setup(Level.Trial)
    public void setup() {
        String[] rc = shape.split("x");
        int rows = Integer.parseInt(rc[0]), cols = Integer.parseInt(rc[1]);
        DType t = DType.valueOf(type);
        Random rnd = new Random(1);
        init(randomBlocks(t, rows, cols, rnd), t, rows, cols, batch, rnd);
    }

    /** Q4_0/Q8_0 through the quantizer; the other formats as random bytes with small f16 scale fields. */
    static MemorySegment randomBlocks(DType t, int rows, int cols, Random rnd) {
        if (t == DType.Q4_0 || t == DType.Q8_0) {
            float[] w = new float[rows * cols];
            for (int i = 0; i < w.length; i++) w[i] = (float) rnd.nextGaussian() * 0.05f;
            return Quant.quantize(w, rows, cols, t);
        }
        byte[] b = new byte[(int) t.bytesFor((long) rows * cols)];
        rnd.nextBytes(b);
        MemorySegment s = MemorySegment.ofArray(b);
        int[] scales = switch (t) {
            case Q4_K -> new int[]{0, 2};
            case Q6_K -> new int[]{208};
            case Q5_0, IQ4_NL, IQ4_XS -> new int[]{0};
            case Q4_1, Q5_1, Q5_K -> new int[]{0, 2};
            case Q2_K -> new int[]{80, 82};
            case Q3_K -> new int[]{108};
            default -> throw new IllegalArgumentException(t.toString());
        };
        for (long o = 0; o < b.length; o += t.blockBytes) {
            for (int so : scales) s.set(ValueLayout.JAVA_SHORT_UNALIGNED, o + so, Float.floatToFloat16((rnd.nextFloat() - 0.5f) * 0.02f));
        }
        return s;
    }
}
