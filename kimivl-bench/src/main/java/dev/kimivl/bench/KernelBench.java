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

import java.util.Random;
import java.util.concurrent.TimeUnit;

/**
 * Weight kernels on Kimi-VL-A3B shapes. matvec (decode) rotates over copies of the matrix totalling ≥ 256 MB so
 * the weights come from memory, as in a real decode step; divide {@link #bytesPerOp} by the time for GB/s
 * ({@link Bandwidth} prints that directly). matmul (prefill) multiplies 512 inputs.
 *
 * <pre>java --add-modules jdk.incubator.vector -jar ... / -cp "target/kimivl-bench.jar:target/lib/*" org.openjdk.jmh.Main KernelBench</pre>
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED"})
public class KernelBench extends WeightBench {
    /** rows x cols: dense layer gate/up [11264, 2048] and down [2048, 11264]; expert gate/up [1408, 2048] and down [2048, 1408]. */
    @Param({"11264x2048", "2048x11264", "1408x2048", "2048x1408"})
    public String shape;

    @Param({"Q8_0", "Q4_0", "BF16", "F32"})
    public String type;

    /** Inputs of the batched product. */
    @Param({"512"})
    public int batch;

    @Setup(Level.Trial)
    public void setup() {
        String[] rc = shape.split("x");
        int rows = Integer.parseInt(rc[0]), cols = Integer.parseInt(rc[1]);
        DType t = DType.valueOf(type);
        Random rnd = new Random(1);
        float[] w = new float[rows * cols];
        for (int i = 0; i < w.length; i++) w[i] = (float) rnd.nextGaussian() * 0.05f;
        init(Quant.quantize(w, rows, cols, t), t, rows, cols, batch, rnd);
    }
}
