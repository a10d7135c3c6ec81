package dev.kimivl.io;

import dev.kimivl.tensor.DType;
import dev.kimivl.tensor.Matrix;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;

/**
 * One stored tensor: its raw bytes (usually a slice of a memory-mapped file), dtype and PyTorch-order shape.
 * {@code origin} says where it came from ("model-00003-of-00007.safetensors", a GGUF file...) for error messages.
 */
public record TensorData(String name, DType dtype, long[] shape, MemorySegment data, String origin) {
    private static final ValueLayout.OfFloat F32LE = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort S16LE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfInt I32LE = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfLong I64LE = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    public long numel() {
        long n = 1;
        for (long d : shape) n = Math.multiplyExact(n, d);
        return n;
    }

    public String shapeString() { return Arrays.toString(shape); }

    /** Throws unless the shape equals {@code expected}. */
    public TensorData requireShape(long... expected) {
        if (!Arrays.equals(shape, expected)) {
            throw new CheckpointException(origin + ": tensor '" + name + "' has shape " + shapeString()
                    + ", expected " + Arrays.toString(expected));
        }
        return this;
    }

    /** All values as float32 (copies; for vectors and small tensors). */
    public float[] toFloats() {
        long n = numel();
        if (n > Integer.MAX_VALUE - 8) throw new CheckpointException(origin + ": tensor '" + name + "' too large to copy (" + n + " elements)");
        float[] out = new float[(int) n];
        switch (dtype) {
            case F32 -> MemorySegment.copy(data, F32LE, 0, out, 0, out.length);
            case BF16 -> { for (int i = 0; i < out.length; i++) out[i] = Float.intBitsToFloat((data.get(S16LE, 2L * i) & 0xFFFF) << 16); }
            case F16 -> { for (int i = 0; i < out.length; i++) out[i] = Float.float16ToFloat(data.get(S16LE, 2L * i)); }
            case F64 -> { for (int i = 0; i < out.length; i++) out[i] = (float) data.get(ValueLayout.JAVA_DOUBLE_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 8L * i); }
            case I32 -> { for (int i = 0; i < out.length; i++) out[i] = data.get(I32LE, 4L * i); }
            default -> {
                if (!dtype.isQuantized()) throw new CheckpointException(origin + ": tensor '" + name + "' has dtype " + dtype + ", not a float type");
                if (n == 0) break;                          // an empty quantized tensor: no matrix (Matrices.of refuses one)
                Matrix m = Matrices.of(this.reshaped2d());
                for (int r = 0; r < m.rows(); r++) m.row(r, out, r * m.cols());
            }
        }
        return out;
    }

    /** Integer values (I32 or I64 tensors). */
    public int[] toInts() {
        int n = (int) numel();
        int[] out = new int[n];
        switch (dtype) {
            case I32 -> MemorySegment.copy(data, I32LE, 0, out, 0, n);
            case I64 -> { for (int i = 0; i < n; i++) out[i] = Math.toIntExact(data.get(I64LE, 8L * i)); }
            default -> throw new CheckpointException(origin + ": tensor '" + name + "' has dtype " + dtype + ", expected I32 or I64");
        }
        return out;
    }

    /** This tensor viewed as [product of leading dims, last dim]. */
    public TensorData reshaped2d() {
        if (shape.length == 2) return this;
        long cols = shape.length == 0 ? 1 : shape[shape.length - 1];
        return new TensorData(name, dtype, new long[]{numel() / Math.max(1, cols), cols}, data, origin);
    }

    /** A 2-D weight as a {@link Matrix} over the stored bytes (no copy). */
    public Matrix matrix() {
        if (shape.length != 2) throw new CheckpointException(origin + ": tensor '" + name + "' has shape " + shapeString() + ", expected a matrix");
        return Matrices.of(this);
    }
}
