package dev.kimivl.tensor;

import java.lang.foreign.MemorySegment;

/**
 * A block-quantized matrix (llama.cpp layout, ggml row-major: each row is cols/blockSize consecutive blocks)
 * over a memory segment. Q8_0 and Q4_0 have Vector API kernels, and so do Q2_K, Q3_K, IQ4_NL and IQ4_XS
 * ({@link LowBitKernels}); the other formats (Q4_K, Q5_K, Q6_K, Q4_1, Q5_x) have
 * native integer kernels (kimivl_kquants.c) and otherwise decode rows to floats ({@link KQuantRows}: vectorized for
 * Q4_K, Q6_K and Q5_0, the reference dequantizers for the rest).
 *
 * <p><b>Integer matvec (the default for every block format with a kernel; {@code -Dkimivl.intMatvec=false} selects the
 * exact kernels).</b> As llama.cpp does (q8_0 × q8_0, q4_0 × q8_0, q4_K × q8_K), the activation vector is quantized
 * once per product to int8 ({@link QuantizedInput}: blocks of 32 with one float scale each, and for the k-quants also
 * blocks of 256; values rounded to nearest) and each weight block's dot product is taken in integers, converted to
 * float once per block, then multiplied by the two scales. It changes the numerics: each activation moves by at most
 * half its block's step (amax/127/2), so |y_int − y_exact| ≤ Σ_blocks (amax_x/254)·Σ|w| (see QuantTest,
 * OtherFormatKernelsTest).
 *
 * <p>It is the default because the native kernels ({@link NativeKernels}: vpmaddubsw/vpmaddwd) make it about 2x
 * faster than float activations at decode, and llama.cpp's numerics are what users of quantized files expect. The
 * golden tests run the exact kernels (the build passes -Dkimivl.intMatvec=false to them): on the tiny golden models
 * the int8 rounding alone moves a greedy token. {@link #matvecExact} is always the exact float-activation kernel, and
 * the Java Vector API integer kernels remain the fallback where the native library is unavailable.
 *
 * <p><b>Where the parts live.</b> This class is the storage (a segment, its format and shape [rows, cols], row
 * offsets) and the product entry points; the activation side is {@link QuantizedInput}; the Java Q8_0/Q4_0 kernels
 * are {@link Q8Q4Kernels} (and {@link LowBitKernels}, {@link KQuantRows}); which kernels run the integer products
 * (Java or native) is the {@link Kernels} the matrix was built with ({@link #withKernels}; {@link Kernels#DEFAULT}
 * otherwise).
 */
public final class QuantMatrix implements Matrix {
    private final MemorySegment data;
    private final DType dtype;
    private final int rows, cols, blocks;
    private final long rowBytes;
    private final Kernels kernels;
    /** −1: the plain layout. Else the R4 layout ({@link Q4KRows4}), and the rows of the first group before row 0 (0..3). */
    private final int r4Skip;

    /** W [rows, cols] in a block format over data (ggml row-major), with the process's {@link Kernels#DEFAULT}. */
    public QuantMatrix(MemorySegment data, DType dtype, int rows, int cols) {
        this(data, dtype, rows, cols, Kernels.DEFAULT);
    }

    private QuantMatrix(MemorySegment data, DType dtype, int rows, int cols, Kernels kernels) {
        this(data, dtype, rows, cols, kernels, -1);
    }

    private QuantMatrix(MemorySegment data, DType dtype, int rows, int cols, Kernels kernels, int r4Skip) {
        if (!dtype.isQuantized()) throw new IllegalArgumentException("QuantMatrix holds block formats, not " + dtype);
        if (cols % dtype.blockSize != 0) {
            throw new IllegalArgumentException(dtype + " matrix [" + rows + ", " + cols + "]: cols must be a multiple of " + dtype.blockSize);
        }
        long need = r4Skip < 0 ? dtype.bytesFor((long) rows * cols) : Q4KRows4.bytes((long) r4Skip + rows, cols);
        if (data.byteSize() < need) {
            throw new IllegalArgumentException(dtype + " matrix [" + rows + ", " + cols + "] needs " + need + " bytes, segment has " + data.byteSize());
        }
        this.data = Segments.kernelView(data);
        this.dtype = dtype;
        this.rows = rows;
        this.cols = cols;
        this.blocks = cols / dtype.blockSize;
        this.rowBytes = dtype.bytesFor(cols);
        this.kernels = java.util.Objects.requireNonNull(kernels, "kernels");
        this.r4Skip = r4Skip;
    }

    /**
     * This Q4_K matrix with its rows regrouped 4 at a time into memory of its own ({@link Q4KRows4}: the AVX-512 decode
     * matvec at about twice the rate, every product's floats unchanged), or this matrix itself where that layout does not
     * apply (another type, rows not a multiple of 4, no AVX-512 kernels). The plain bytes are not read again afterwards.
     */
    public QuantMatrix repackedQ4K() {
        if (r4Skip >= 0 || !Q4KRows4.eligible(dtype, rows, cols)) return this;
        return new QuantMatrix(Q4KRows4.pack(data, rows, cols), dtype, rows, cols, kernels, 0);
    }

    /**
     * True when a stored tensor of this type and shape (its last dimension the columns, the one before it the rows of
     * each matrix) is repacked as it loads: -Dkimivl.repackQ4K on, and the R4 layout applies on this machine.
     */
    public static boolean repackedAtLoad(DType type, long[] shape) {
        if (!KernelSettings.SYSTEM.repackQ4K() || shape.length < 2) return false;
        long rows = shape[shape.length - 2], cols = shape[shape.length - 1];
        return rows <= Integer.MAX_VALUE && cols <= Integer.MAX_VALUE && Q4KRows4.eligible(type, (int) rows, (int) cols);
    }

    /** Bytes of a [rows, cols] Q4_K matrix in the R4 layout ({@link #repackedQ4K}; rows a multiple of 4). */
    public static long repackedBytes(int rows, int cols) { return Q4KRows4.bytes(rows, cols); }

    /**
     * A Q4_K matrix [rows, cols] whose rows are already in the R4 layout (the bytes a {@link #repackedQ4K} matrix's
     * {@link #segment} holds, e.g. mapped from a file of them), with the process's default kernels.
     */
    public static QuantMatrix ofRepackedQ4K(MemorySegment r4, int rows, int cols) {
        if (!Q4KRows4.eligible(DType.Q4_K, rows, cols)) {
            throw new IllegalArgumentException("Q4_K [" + rows + ", " + cols + "] has no R4 layout on this machine");
        }
        if (r4.byteSize() != repackedBytes(rows, cols)) {
            throw new IllegalArgumentException("R4 Q4_K [" + rows + ", " + cols + "] is " + repackedBytes(rows, cols) + " bytes, not " + r4.byteSize());
        }
        return new QuantMatrix(r4, DType.Q4_K, rows, cols, Kernels.DEFAULT, 0);
    }

    /** True when the rows are in the R4 layout ({@link #repackedQ4K}). */
    public boolean isRepacked() { return r4Skip >= 0; }

    /** R4 layout: rows of the first group before row 0 (a slice may start inside a group). */
    int r4Skip() { return r4Skip; }

    /** The same rows in the plain Q4_K layout, in new memory: for the kernels that have no R4 form (tests, fallbacks). */
    QuantMatrix plainCopy() {
        if (r4Skip < 0) return this;
        long rb = dtype.bytesFor(cols);
        MemorySegment plain = java.lang.foreign.Arena.ofAuto().allocate(rb * rows, 64);
        for (int r = 0; r < rows; r++) Q4KRows4.unpackRow(data, r4Skip + r, cols, plain, r * rb);
        return new QuantMatrix(plain, dtype, rows, cols, kernels);
    }

    /** Quantizes a row-major float matrix (Q8_0 or Q4_0) into a new heap-backed matrix. */
    public static QuantMatrix quantize(float[] w, int rows, int cols, DType type) {
        return new QuantMatrix(Quant.quantize(w, rows, cols, type), type, rows, cols);
    }

    /** The same weights (shared, not copied) multiplied by other kernels: tests compare the Java and native ones. */
    public QuantMatrix withKernels(Kernels k) {
        return k == kernels ? this : new QuantMatrix(data, dtype, rows, cols, k, r4Skip);
    }

    /** Rows [r0, r0 + n) [n, cols] over the same bytes, with the same kernels. */
    public QuantMatrix rowSlice(int r0, int n) {
        if (r0 < 0 || n < 0 || r0 + n > rows) throw new IndexOutOfBoundsException("rows [" + r0 + ", " + (r0 + n) + ") of " + rows);
        if (r4Skip >= 0) {                      // whole groups, from the one holding row r0
            int p0 = r4Skip + r0;
            long gb = Q4KRows4.groupBytes(cols), g0 = p0 / 4, g1 = (p0 + n + 3L) / 4;
            return new QuantMatrix(data.asSlice(g0 * gb, (g1 - g0) * gb), dtype, n, cols, kernels, p0 % 4);
        }
        return new QuantMatrix(data.asSlice(r0 * rowBytes, n * rowBytes), dtype, n, cols, kernels);
    }

    /** The kernels that run this matrix's integer products. */
    public Kernels kernels() { return kernels; }

    @Override public int rows() { return rows; }
    @Override public int cols() { return cols; }
    @Override public DType dtype() { return dtype; }
    /** The weights as the kernels read them (a plain native view of the segment given; R4 layout: the repacked groups). */
    public MemorySegment segment() { return data; }
    /** Bytes per row: blocks() blocks of the format. */
    long rowBytes() { return rowBytes; }
    /** Blocks per row: cols / block size. */
    int blocks() { return blocks; }

    /**
     * Whether the process's default kernels quantize activations ({@code -Dkimivl.intMatvec}, default true; a copy of
     * {@link KernelSettings#intMatvec()} of {@link KernelSettings#SYSTEM}).
     */
    public static final boolean INT_MATVEC = KernelSettings.SYSTEM.intMatvec();

    /**
     * True when {@link #matvec(float[], int, float[], int)} quantizes its input and runs the integer kernels: Q8_0 and
     * Q4_0 (native or Java), Q2_K, Q3_K, IQ4_NL and IQ4_XS (Java, {@link LowBitKernels}), and the other formats of
     * published GGUF files (Q4_K, Q5_K, Q6_K, Q4_1, Q5_0, Q5_1) with the native kernels; with the Java ones those
     * decode rows to floats.
     */
    public boolean usesIntegerMatvec() {
        return kernels.integerMatvec(dtype, cols);
    }

    @Override
    public void matvec(float[] x, int xo, float[] y, int yo) {
        if (xo + cols > x.length || yo + rows > y.length) throw new IndexOutOfBoundsException("matvec [" + rows + ", " + cols + "]: x or y too short");
        if (usesIntegerMatvec()) {
            matvec(QuantizedInput.cached(x, xo, cols), y, yo);
        } else {
            matvecExact(x, xo, y, yo);
        }
    }

    /**
     * y[yo + r] = Σ_c W[r, c]·x'[c] where x' is the quantized activation: the integer kernels (see {@link #usesIntegerMatvec}).
     * Quantize an input once with {@link QuantizedInput#of} to multiply it by several matrices (gate and up, experts).
     */
    public void matvec(QuantizedInput xq, float[] y, int yo) {
        if (xq.cols != cols) throw new IllegalArgumentException("input has " + xq.cols + " columns, matrix " + cols);
        if (yo + rows > y.length) throw new IndexOutOfBoundsException("matvec [" + rows + ", " + cols + "]: y too short");
        kernels.matvec(this, xq, y, yo);
    }

    /** The exact kernels: float activations, every product in float (the reference for the integer kernels). */
    public void matvecExact(float[] x, int xo, float[] y, int yo) {
        if (xo + cols > x.length || yo + rows > y.length) throw new IndexOutOfBoundsException("matvec [" + rows + ", " + cols + "]: x or y too short");
        MemorySegment s = data;
        int nb = blocks;
        long rb = rowBytes;
        switch (dtype) {
            case Q8_0 -> {
                if (Q8Q4Kernels.FL == 8) {
                    float[] xp = Q8Q4Kernels.permuteQ8(x, xo, cols);
                    Parallel.forRange(rows, 16, (from, to) -> {
                        for (int r = from; r < to; r++) y[yo + r] = Q8Q4Kernels.dotQ8Avx2(s, r * rb, nb, xp);
                    });
                } else {
                    Parallel.forRange(rows, 16, (from, to) -> {
                        for (int r = from; r < to; r++) y[yo + r] = Q8Q4Kernels.dotQ8(s, r * rb, nb, x, xo);
                    });
                }
            }
            case Q4_0 -> {
                if (Q8Q4Kernels.FL == 8) {
                    float[] xs = Q8Q4Kernels.blockSums(x, xo, cols);
                    Parallel.forRange(rows, 16, (from, to) -> {
                        for (int r = from; r < to; r++) y[yo + r] = Q8Q4Kernels.dotQ4Avx2(s, r * rb, nb, x, xo, xs);
                    });
                } else {
                    Parallel.forRange(rows, 16, (from, to) -> {
                        for (int r = from; r < to; r++) y[yo + r] = Q8Q4Kernels.dotQ4(s, r * rb, nb, x, xo);
                    });
                }
            }
            default -> Parallel.forRange(rows, 16, (from, to) -> {
                float[] w = new float[cols];
                for (int r = from; r < to; r++) {
                    row(r, w, 0);
                    y[yo + r] = VectorMath.dot(w, 0, x, xo, cols);
                }
            });
        }
    }

    @Override
    public void row(int r, float[] dst, int off) {
        if (r < 0 || r >= rows) throw new IndexOutOfBoundsException("row " + r + " of " + rows);
        if (r4Skip >= 0) {
            MemorySegment plain = MemorySegment.ofArray(new byte[(int) rowBytes]);
            Q4KRows4.unpackRow(data, r4Skip + r, cols, plain, 0);
            KQuantRows.decode(dtype, plain, 0, dst, off, cols);
            return;
        }
        long base = r * rowBytes;
        switch (dtype) {
            case Q8_0 -> Q8Q4Kernels.decodeQ8(data, base, blocks, dst, off);
            case Q4_0 -> Q8Q4Kernels.decodeQ4(data, base, blocks, dst, off);
            default -> KQuantRows.decode(dtype, data, base, dst, off, cols);
        }
    }

    /**
     * Decodes columns [c0, c0 + len) of rows [r0, r0 + nr) into dst[off + i·ld ..) for row r0 + i: c0 and len
     * multiples of the block size (len may also end at the row's end). For {@link PackedGemm}, which decodes a
     * k-block of a block of rows at a time (one call per tile: the per-call checks are amortised over all its blocks).
     */
    void decodeTile(int r0, int nr, int c0, int len, float[] dst, int off, int ld) {
        int bs = dtype.blockSize;
        if (r0 < 0 || nr < 0 || r0 + nr > rows) throw new IndexOutOfBoundsException("rows [" + r0 + ", " + (r0 + nr) + ") of " + rows);
        if (c0 % bs != 0 || (len % bs != 0 && c0 + len != cols) || c0 < 0 || len < 0 || c0 + len > cols) {
            throw new IllegalArgumentException("columns [" + c0 + ", " + (c0 + len) + ") of a " + dtype + " row of " + cols);
        }
        if ((long) off + (long) (nr - 1) * ld + len > dst.length || (nr > 0 && (off < 0 || ld < len))) {
            throw new IndexOutOfBoundsException("tile does not fit dst");
        }
        int nb = (len + bs - 1) / bs;
        MemorySegment s = data;
        if (r4Skip >= 0) {
            MemorySegment plain = MemorySegment.ofArray(new byte[(int) rowBytes]);
            for (int i = 0; i < nr; i++) {
                Q4KRows4.unpackRow(data, r4Skip + r0 + i, cols, plain, 0);
                KQuantRows.decode(dtype, plain, dtype.bytesFor(c0), dst, off + i * ld, len);
            }
            return;
        }
        switch (dtype) {
            case Q8_0 -> {
                for (int i = 0; i < nr; i++) Q8Q4Kernels.decodeQ8(s, (r0 + i) * rowBytes + 34L * (c0 / 32), nb, dst, off + i * ld);
            }
            case Q4_0 -> {
                for (int i = 0; i < nr; i++) Q8Q4Kernels.decodeQ4(s, (r0 + i) * rowBytes + 18L * (c0 / 32), nb, dst, off + i * ld);
            }
            default -> {
                for (int i = 0; i < nr; i++) KQuantRows.decode(dtype, s, (r0 + i) * rowBytes + dtype.bytesFor(c0), dst, off + i * ld, len);
            }
        }
    }

    @Override
    public void matmul(float[] x, float[] y, int n) {
        if (n == 1) { matvec(x, 0, y, 0); return; }
        if (usesIntegerMatmul()) {
            // the integer kernels for prefill too (as llama.cpp)
            matmul(QuantizedInput.ofRows(x, n, cols), y);
            return;
        }
        Gemm.matmul(this, x, y, n);
    }

    /**
     * One tile of the batched integer product on the calling thread: y[yo + (t − t0)·ldy + (r − r0)] = Σ_c W[r, c]·x'_t[c]
     * for rows [r0, r1) and tokens [t0, t1) of xq ({@link Kernels#matmulTile}; call {@link #prepareTiles} first).
     */
    public void matmulTile(QuantizedInput xq, int r0, int r1, int t0, int t1, float[] y, int yo, int ldy) {
        kernels.matmulTile(this, xq, r0, r1, t0, t1, y, yo, ldy);
    }

    /** Readies the batch xq for {@link #matmulTile} calls from several threads ({@link Kernels#prepareTiles}). */
    public void prepareTiles(QuantizedInput xq) { kernels.prepareTiles(xq); }

    /** True when {@link #matmulTile} runs a native integer GEMM for this matrix (Q8_0 and Q4_0 with the native kernels). */
    public boolean usesNativeTiles() { return kernels.integerMatmul(dtype, cols) && kernels.nativeTiles(dtype, cols); }

    /** True when {@link #matmul(float[], float[], int)} quantizes its inputs and runs the native integer GEMM. */
    public boolean usesIntegerMatmul() {
        return kernels.integerMatmul(dtype, cols);
    }

    /**
     * y[t·rows + r] = Σ_c W[r, c]·x'_t[c] for every row t of the quantized batch xq [n, cols] into y [n, rows]: for
     * Q8_0 and Q4_0 the native GEMM (each weight row unpacked once, then dotted with every token) when loaded, else
     * the integer matvec per token; for the other formats with native kernels, their row kernel per token over tiles
     * of rows held in L1. Either way each token's result equals {@link #matvec(QuantizedInput, float[], int)} bit for bit,
     * except a Q4_K batch of 8 tokens or more on the AVX-512 kernels, which rounds each token's activation per 32 values
     * instead of per 256 ({@link Kernels#matmul}); {@link #matmulAsMatvec} gives the matvec's bits always.
     */
    public void matmul(QuantizedInput xq, float[] y) {
        check(xq, y);
        kernels.matmul(this, xq, y);
    }

    /** {@link #matmul(QuantizedInput, float[])} with each token's result equal to the matvec's bit for bit, whatever the batch. */
    public void matmulAsMatvec(QuantizedInput xq, float[] y) {
        check(xq, y);
        kernels.matmulAsMatvec(this, xq, y);
    }

    private void check(QuantizedInput xq, float[] y) {
        int n = xq.rows;
        if (xq.cols != cols) throw new IllegalArgumentException("input has " + xq.cols + " columns, matrix " + cols);
        if (y.length < (long) n * rows) throw new IndexOutOfBoundsException("matmul [" + rows + ", " + cols + "] x " + n + ": y too short");
    }
}
