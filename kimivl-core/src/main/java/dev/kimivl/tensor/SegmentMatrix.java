package dev.kimivl.tensor;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/** A dense (F32, BF16 or F16) matrix over a memory segment: a mapped checkpoint region or a heap array. */
public final class SegmentMatrix implements Matrix {
    private static final VectorSpecies<Float> F = Vectors.F;
    private static final VectorSpecies<Short> S = VectorSpecies.of(short.class, VectorShape.forBitSize(F.length() * 16));
    private static final VectorSpecies<Integer> I = VectorSpecies.of(int.class, F.vectorShape());
    private static final ValueLayout.OfFloat F32LE = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort S16LE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private final MemorySegment data;
    /** What the kernels read: a plain native segment (see {@link Segments}), or null for a float[]-backed matrix. */
    private final MemorySegment kdata;
    /** For F32 matrices over a heap float[] (training, small rebuilt weights): the array and first index. */
    private final float[] farr;
    private final int fbase;
    private final DType dtype;
    private final int rows, cols;
    private final long rowBytes;

    public SegmentMatrix(MemorySegment data, DType dtype, int rows, int cols) {
        if (dtype != DType.F32 && dtype != DType.BF16 && dtype != DType.F16) {
            throw new IllegalArgumentException("SegmentMatrix holds F32/BF16/F16, not " + dtype);
        }
        long need = dtype.bytesFor((long) rows * cols);
        if (data.byteSize() < need) {
            throw new IllegalArgumentException("matrix [" + rows + ", " + cols + "] " + dtype + " needs " + need + " bytes, segment has " + data.byteSize());
        }
        this.data = data;
        Object heap = data.heapBase().orElse(null);
        if (dtype == DType.F32 && heap instanceof float[] fa && data.address() % 4 == 0) {
            this.farr = fa;
            this.fbase = Math.toIntExact(data.address() / 4);
            this.kdata = null;
        } else {
            this.farr = null;
            this.fbase = 0;
            this.kdata = Segments.kernelView(data);
        }
        this.dtype = dtype;
        this.rows = rows;
        this.cols = cols;
        this.rowBytes = (long) cols * dtype.blockBytes;
    }

    /** A float32 matrix over a heap array (row-major [rows, cols]). */
    public static SegmentMatrix ofFloats(float[] values, int rows, int cols) {
        return new SegmentMatrix(MemorySegment.ofArray(values), DType.F32, rows, cols);
    }

    @Override public int rows() { return rows; }
    @Override public int cols() { return cols; }
    @Override public DType dtype() { return dtype; }
    public MemorySegment segment() { return data; }

    @Override
    public void matvec(float[] x, int xo, float[] y, int yo) {
        Parallel.forRange(rows, 64, (from, to) -> {
            for (int r = from; r < to; r++) y[yo + r] = dotRow(r, x, xo);
        });
    }

    /** Σ_c W[r, c]·x[xo + c]. */
    public float dotRow(int r, float[] x, int xo) {
        long base = r * rowBytes;
        int c = 0;
        FloatVector acc = FloatVector.zero(F);
        int bound = F.loopBound(cols);
        switch (dtype) {
            case F32 -> {
                if (farr != null) {
                    int wb = fbase + r * cols;
                    for (; c < bound; c += F.length()) {
                        acc = FloatVector.fromArray(F, farr, wb + c).fma(FloatVector.fromArray(F, x, xo + c), acc);
                    }
                    float s = VectorMath.sum(acc);
                    for (; c < cols; c++) s += farr[wb + c] * x[xo + c];
                    return s;
                }
                for (; c < bound; c += F.length()) {
                    FloatVector w = FloatVector.fromMemorySegment(F, kdata, base + 4L * c, ByteOrder.LITTLE_ENDIAN);
                    acc = w.fma(FloatVector.fromArray(F, x, xo + c), acc);
                }
            }
            case BF16 -> {
                for (; c < bound; c += F.length()) {
                    ShortVector s = ShortVector.fromMemorySegment(S, kdata, base + 2L * c, ByteOrder.LITTLE_ENDIAN);
                    FloatVector w = ((IntVector) s.convertShape(VectorOperators.S2I, I, 0))
                            .lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
                    acc = w.fma(FloatVector.fromArray(F, x, xo + c), acc);
                }
            }
            default -> bound = 0;
        }
        float s = VectorMath.sum(acc);
        for (; c < cols; c++) s += get(base, c) * x[xo + c];
        return s;
    }

    private float get(long rowBase, int c) {
        if (farr != null) return farr[fbase + (int) (rowBase / 4) + c];
        return switch (dtype) {
            case F32 -> kdata.get(F32LE, rowBase + 4L * c);
            case BF16 -> Float.intBitsToFloat((kdata.get(S16LE, rowBase + 2L * c) & 0xFFFF) << 16);
            default -> Float.float16ToFloat(kdata.get(S16LE, rowBase + 2L * c));
        };
    }

    @Override
    public void row(int r, float[] dst, int off) {
        long base = r * rowBytes;
        if (dtype == DType.F32) {
            if (farr != null) System.arraycopy(farr, fbase + r * cols, dst, off, cols);
            else MemorySegment.copy(kdata, F32LE, base, dst, off, cols);
            return;
        }
        int c = 0;
        if (dtype == DType.BF16) {
            int bound = F.loopBound(cols);
            for (; c < bound; c += F.length()) {
                ShortVector s = ShortVector.fromMemorySegment(S, kdata, base + 2L * c, ByteOrder.LITTLE_ENDIAN);
                ((IntVector) s.convertShape(VectorOperators.S2I, I, 0)).lanewise(VectorOperators.LSHL, 16)
                        .reinterpretAsFloats().intoArray(dst, off + c);
            }
        }
        for (; c < cols; c++) dst[off + c] = get(base, c);
    }

    /** Decodes columns [c0, c0 + len) of rows [r0, r0 + nr) into dst[off + i·ld ..) (for {@link PackedGemm}). */
    void decodeTile(int r0, int nr, int c0, int len, float[] dst, int off, int ld) {
        if (r0 < 0 || nr < 0 || r0 + nr > rows) throw new IndexOutOfBoundsException("rows [" + r0 + ", " + (r0 + nr) + ") of " + rows);
        if (c0 < 0 || len < 0 || c0 + len > cols) throw new IllegalArgumentException("columns [" + c0 + ", " + (c0 + len) + ") of a row of " + cols);
        for (int i = 0; i < nr; i++) {
            int r = r0 + i, o = off + i * ld;
            long base = r * rowBytes;
            if (dtype == DType.F32) {
                if (farr != null) System.arraycopy(farr, fbase + r * cols + c0, dst, o, len);
                else MemorySegment.copy(kdata, F32LE, base + 4L * c0, dst, o, len);
                continue;
            }
            int c = 0;
            if (dtype == DType.BF16) {
                long b = base + 2L * c0;
                int bound = F.loopBound(len);
                for (; c < bound; c += F.length()) {
                    ShortVector s = ShortVector.fromMemorySegment(S, kdata, b + 2L * c, ByteOrder.LITTLE_ENDIAN);
                    ((IntVector) s.convertShape(VectorOperators.S2I, I, 0)).lanewise(VectorOperators.LSHL, 16)
                            .reinterpretAsFloats().intoArray(dst, o + c);
                }
            }
            for (; c < len; c++) dst[o + c] = get(base, c0 + c);
        }
    }

    @Override
    public void matmul(float[] x, float[] y, int n) {
        if (n == 1) { matvec(x, 0, y, 0); return; }
        Gemm.matmul(this, x, y, n);
    }
}
