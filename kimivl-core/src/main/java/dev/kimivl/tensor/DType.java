package dev.kimivl.tensor;

/**
 * Storage types of weight tensors. Block formats (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, the k-quants Q2_K..Q6_K, IQ4_NL, IQ4_XS) use llama.cpp's layouts:
 * {@link #blockSize} elements are stored in {@link #blockBytes} bytes.
 */
public enum DType {
    F32(1, 4), F16(1, 2), BF16(1, 2), F64(1, 8), I8(1, 1), I16(1, 2), I32(1, 4), I64(1, 8), U8(1, 1), BOOL(1, 1),
    /** 32 int8 values and one f16 scale: 34 bytes per block. */
    Q8_0(32, 34),
    /** 32 4-bit values (low nibbles hold elements 0..15, high nibbles 16..31) and one f16 scale: 18 bytes. */
    Q4_0(32, 18),
    /** 32 4-bit values, f16 scale d and f16 offset m (value = d·q + m): 20 bytes. */
    Q4_1(32, 20),
    /** 32 5-bit values (4-bit nibbles as Q4_0 plus a 32-bit word of high bits), f16 scale (value = d·(q − 16)): 22 bytes. */
    Q5_0(32, 22),
    /** As Q5_0 with an f16 offset m (value = d·q + m): 24 bytes. */
    Q5_1(32, 24),
    /** llama.cpp k-quants, super-blocks of 256 (Q4_K_M / Q5_K_M files mix them with Q5_0, Q8_0 and Q6_K). */
    Q4_K(256, 144), Q5_K(256, 176), Q6_K(256, 210),
    /** 2-bit k-quant: 16 sub-blocks of 16 with a 4-bit scale and a 4-bit min each, f16 d and dmin: 84 bytes per 256. */
    Q2_K(256, 84),
    /** 3-bit k-quant: signed values in [−4, 3] (2 low bits + a high-bit mask), 16 6-bit signed scales, f16 d: 110 bytes. */
    Q3_K(256, 110),
    /** Non-linear 4-bit: 32 nibbles indexing llama.cpp's 16-value int8 grid, one f16 scale: 18 bytes per 32. */
    IQ4_NL(32, 18),
    /** IQ4_NL's grid in super-blocks of 256: f16 d, 8 6-bit signed sub-block scales, 128 nibble bytes: 136 bytes. */
    IQ4_XS(256, 136);

    public final int blockSize;
    public final int blockBytes;

    DType(int blockSize, int blockBytes) {
        this.blockSize = blockSize;
        this.blockBytes = blockBytes;
    }

    /** Bytes taken by {@code n} elements; n must be a multiple of the block size. */
    public long bytesFor(long n) {
        if (n % blockSize != 0) {
            throw new IllegalArgumentException(this + " stores blocks of " + blockSize + " elements; " + n + " is not a multiple");
        }
        return n / blockSize * blockBytes;
    }

    public boolean isQuantized() { return blockSize > 1; }

    public boolean isFloat() { return this == F32 || this == F16 || this == BF16 || this == F64; }

    /** Safetensors dtype string to enum, or null when the string is unknown. */
    public static DType fromSafetensors(String s) {
        return switch (s) {
            case "F32" -> F32; case "F16" -> F16; case "BF16" -> BF16; case "F64" -> F64;
            case "I8" -> I8; case "I16" -> I16; case "I32" -> I32; case "I64" -> I64; case "U8" -> U8; case "BOOL" -> BOOL;
            default -> null;
        };
    }
}
