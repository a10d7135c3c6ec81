package dev.kimivl.tensor;

import java.util.Locale;
import java.util.function.UnaryOperator;

/**
 * Every tuning knob of the kernels and the forward pass, in one immutable record, read once from the
 * {@code -Dkimivl.*} system properties ({@link #SYSTEM}) and validated there: a bad value is an
 * {@link IllegalArgumentException} naming the property, the value and what is allowed. docs/tuning.md lists them.
 *
 * <p>Process-wide knobs (the thread pool's size and spin, the vector width, whether the native library is loaded at
 * all) take effect through {@link #SYSTEM} only: they size static structures or must be JIT constants. The others are
 * read from the settings of the {@link Kernels} an object was built with ({@code LanguageModel.withKernels},
 * {@link QuantMatrix#withKernels}), so a test or an experiment builds an instance with other values instead of
 * changing a global.
 *
 * @param threads          kimivl.threads: compute threads (the calling thread plus threads − 1 workers), ≥ 1
 * @param spinMicros       kimivl.spinMicros: how long an idle pool worker spins before parking, µs, ≥ 0
 * @param vectorBits       kimivl.vectorBits: float vector width of the machine-width kernels, 256 or 512
 * @param intMatvec        kimivl.intMatvec: quantize activations to int8 for the block-format products (llama.cpp's numerics)
 * @param nativeKernels    kimivl.native: load the native AVX2 kernels (false: Java Vector API kernels only)
 * @param nativeIsa        kimivl.nativeIsa: which instruction set the native kernels use, auto (the best this CPU runs),
 *                         avx2, avx-vnni or avx512 (NativeKernels.Isa; the results are the same bit for bit, except
 *                         AVX-512's Q4_K product of 8 or more tokens: NativeFirstKernels.Q4_K_PACKED_MIN_TOKENS)
 * @param gemmTileBytes    kimivl.gemmTileBytes: bytes of inputs per tile of the row-decoding GEMM
 * @param gemmPackedMinN   kimivl.gemmPackedMinN: inputs from which float GEMM takes the packed 6×16 kernel
 * @param gemmKc           kimivl.gemmKc: columns per k-block of the packed GEMM
 * @param gemmMc           kimivl.gemmMc: weight rows per block of the packed GEMM (rounded down to a multiple of 6)
 * @param gemmTileDecode   kimivl.gemmTileDecode: decode each [mc × kc] tile in place instead of whole rows first
 * @param blockRows        kimivl.blockRows: rows per block of the expert and dense-MLP row blocks
 * @param mlaSplit         kimivl.mla.split: cached positions above which decode splits positions (not heads) over threads
 * @param mlaPrefillTokens kimivl.mla.prefillTokens: prompt tokens per call of the absorbed prompt attention
 * @param mlaPromptForm    kimivl.mla.promptForm: which MLA prompt form prefill takes
 * @param prefillChunk     kimivl.prefillChunk: prompt tokens per forward pass
 * @param mlaKeyBlock      kimivl.mla.keyBlock: cached positions decompressed at a time by the decompressed prompt form
 * @param kvCache          kimivl.kvCache: KV cache precision, auto, f16, bf16 or f32 (lower case)
 * @param vitKc            kimivl.vit.kc: MoonViT GEMM columns per k-block
 * @param vitMc            kimivl.vit.mc: MoonViT GEMM rows per block (rounded down to a multiple of 6)
 * @param vitNc            kimivl.vit.nc: MoonViT GEMM output columns per work item (about)
 * @param vitPvChunk       kimivl.vit.pvChunk: MoonViT attention keys per exp + P·V chunk
 * @param repackQ4K        kimivl.repackQ4K: regroup the rows of Q4_K weight matrices 4 at a time at load for the AVX-512
 *                         decode matvec (QuantMatrix.repackedQ4K: same floats; memory of its own, the file's pages dropped)
 */
public record KernelSettings(
        int threads, long spinMicros, int vectorBits, boolean intMatvec, boolean nativeKernels, String nativeIsa,
        int gemmTileBytes, int gemmPackedMinN, int gemmKc, int gemmMc, boolean gemmTileDecode,
        int blockRows, int mlaSplit, int mlaPrefillTokens, MlaPromptForm mlaPromptForm, int prefillChunk, int mlaKeyBlock, String kvCache,
        int vitKc, int vitMc, int vitNc, int vitPvChunk, boolean repackQ4K) {

    /** Which form MLA prefill takes: AUTO picks by cost (MlaAttention.decompressionPays); the others pin one. */
    public enum MlaPromptForm { AUTO, DECOMPRESSED, ABSORBED }

    /** The settings of this process, read once from the system properties (the defaults where a property is unset). */
    public static final KernelSettings SYSTEM = fromProperties(System::getProperty);

    public KernelSettings {
        check("kimivl.threads", threads, 1, 1024);
        check("kimivl.spinMicros", spinMicros, 0, 10_000_000);
        if (vectorBits != 256 && vectorBits != 512) {
            throw bad("kimivl.vectorBits", String.valueOf(vectorBits), "256 or 512 (128-bit machines are not supported)");
        }
        if (!java.util.List.of("auto", "avx2", "avx-vnni", "avx512").contains(nativeIsa)) {
            throw bad("kimivl.nativeIsa", nativeIsa, "auto, avx2, avx-vnni or avx512");
        }
        check("kimivl.gemmTileBytes", gemmTileBytes, 4096, 1 << 30);
        check("kimivl.gemmPackedMinN", gemmPackedMinN, 2, Integer.MAX_VALUE);
        check("kimivl.gemmKc", gemmKc, 16, 65536);
        check("kimivl.gemmMc", gemmMc, 1, 65536);
        check("kimivl.blockRows", blockRows, 1, Integer.MAX_VALUE);
        check("kimivl.mla.split", mlaSplit, 1, Integer.MAX_VALUE);
        check("kimivl.mla.prefillTokens", mlaPrefillTokens, 1, 64);
        java.util.Objects.requireNonNull(mlaPromptForm, "kimivl.mla.promptForm");
        check("kimivl.prefillChunk", prefillChunk, 1, Integer.MAX_VALUE);
        check("kimivl.mla.keyBlock", mlaKeyBlock, 1, Integer.MAX_VALUE);
        if (!kvCache.equals("auto") && !kvCache.equals("f16") && !kvCache.equals("bf16") && !kvCache.equals("f32")) {
            throw bad("kimivl.kvCache", kvCache, "auto, f16, bf16 or f32");
        }
        check("kimivl.vit.kc", vitKc, 16, 65536);
        check("kimivl.vit.mc", vitMc, 6, 65536);
        check("kimivl.vit.nc", vitNc, 16, Integer.MAX_VALUE);
        check("kimivl.vit.pvChunk", vitPvChunk, 1, 1 << 20);
    }

    /** Reads every knob through {@code property} (a name → value or null), defaults for the absent ones. */
    public static KernelSettings fromProperties(UnaryOperator<String> property) {
        Reader p = new Reader(property);
        return new KernelSettings(
                p.integer("kimivl.threads", Runtime.getRuntime().availableProcessors()),
                p.integer("kimivl.spinMicros", 200),
                p.integer("kimivl.vectorBits", jdk.incubator.vector.FloatVector.SPECIES_PREFERRED.vectorBitSize() >= 512 ? 512 : 256),
                p.bool("kimivl.intMatvec", true),
                p.bool("kimivl.native", true),
                p.string("kimivl.nativeIsa", "auto").toLowerCase(Locale.ROOT),
                p.integer("kimivl.gemmTileBytes", 512 << 10),
                p.integer("kimivl.gemmPackedMinN", 9),
                p.integer("kimivl.gemmKc", 256),
                p.integer("kimivl.gemmMc", 24),
                p.bool("kimivl.gemmTileDecode", false),
                p.integer("kimivl.blockRows", 352),
                p.integer("kimivl.mla.split", 512),
                p.integer("kimivl.mla.prefillTokens", 4),
                p.choice("kimivl.mla.promptForm", MlaPromptForm.AUTO),
                p.integer("kimivl.prefillChunk", 2048),
                p.integer("kimivl.mla.keyBlock", 4096),
                p.string("kimivl.kvCache", "auto").toLowerCase(Locale.ROOT),
                p.integer("kimivl.vit.kc", 256),
                p.integer("kimivl.vit.mc", 96),
                p.integer("kimivl.vit.nc", 1024),
                p.integer("kimivl.vit.pvChunk", 256),
                p.bool("kimivl.repackQ4K", false));
    }

    /** Weight rows per block of the packed GEMM: {@link #gemmMc} rounded down to a multiple of 6, at least 6. */
    public int gemmMcRounded() { return Math.max(6, gemmMc / 6 * 6); }

    /** MoonViT rows per block: {@link #vitMc} rounded down to a multiple of 6. */
    public int vitMcRounded() { return vitMc / 6 * 6; }

    public KernelSettings withMlaSplit(int positions) {
        return new KernelSettings(threads, spinMicros, vectorBits, intMatvec, nativeKernels, nativeIsa, gemmTileBytes, gemmPackedMinN, gemmKc,
                gemmMc, gemmTileDecode, blockRows, positions, mlaPrefillTokens, mlaPromptForm, prefillChunk, mlaKeyBlock, kvCache, vitKc, vitMc, vitNc, vitPvChunk, repackQ4K);
    }

    public KernelSettings withMlaPromptForm(MlaPromptForm form) {
        return new KernelSettings(threads, spinMicros, vectorBits, intMatvec, nativeKernels, nativeIsa, gemmTileBytes, gemmPackedMinN, gemmKc,
                gemmMc, gemmTileDecode, blockRows, mlaSplit, mlaPrefillTokens, form, prefillChunk, mlaKeyBlock, kvCache, vitKc, vitMc, vitNc, vitPvChunk, repackQ4K);
    }

    public KernelSettings withPrefillChunk(int tokens) {
        return new KernelSettings(threads, spinMicros, vectorBits, intMatvec, nativeKernels, nativeIsa, gemmTileBytes, gemmPackedMinN, gemmKc,
                gemmMc, gemmTileDecode, blockRows, mlaSplit, mlaPrefillTokens, mlaPromptForm, tokens, mlaKeyBlock, kvCache, vitKc, vitMc, vitNc, vitPvChunk, repackQ4K);
    }

    /** These settings with the decompressed prompt form expanding at most {@code positions} cached latents at a time. */
    public KernelSettings withMlaKeyBlock(int positions) {
        return new KernelSettings(threads, spinMicros, vectorBits, intMatvec, nativeKernels, nativeIsa, gemmTileBytes, gemmPackedMinN, gemmKc,
                gemmMc, gemmTileDecode, blockRows, mlaSplit, mlaPrefillTokens, mlaPromptForm, prefillChunk, positions, kvCache, vitKc, vitMc, vitNc, vitPvChunk, repackQ4K);
    }

    /** These settings with the native kernels in another instruction set (auto, avx2, avx-vnni, avx512). */
    public KernelSettings withNativeIsa(String isa) {
        return new KernelSettings(threads, spinMicros, vectorBits, intMatvec, nativeKernels, isa, gemmTileBytes, gemmPackedMinN, gemmKc,
                gemmMc, gemmTileDecode, blockRows, mlaSplit, mlaPrefillTokens, mlaPromptForm, prefillChunk, mlaKeyBlock, kvCache, vitKc, vitMc, vitNc, vitPvChunk, repackQ4K);
    }

    public KernelSettings withIntMatvec(boolean on) {
        return new KernelSettings(threads, spinMicros, vectorBits, on, nativeKernels, nativeIsa, gemmTileBytes, gemmPackedMinN, gemmKc,
                gemmMc, gemmTileDecode, blockRows, mlaSplit, mlaPrefillTokens, mlaPromptForm, prefillChunk, mlaKeyBlock, kvCache, vitKc, vitMc, vitNc, vitPvChunk, repackQ4K);
    }

    private static void check(String name, long v, long min, long max) {
        if (v < min || v > max) throw bad(name, String.valueOf(v), "an integer in [" + min + ", " + max + "]");
    }

    private static IllegalArgumentException bad(String name, String value, String allowed) {
        return new IllegalArgumentException("-D" + name + "=" + value + ": expected " + allowed + " (docs/tuning.md)");
    }

    /** Parses property values, naming the property in every error. */
    private record Reader(UnaryOperator<String> property) {
        String string(String name, String def) {
            String v = property.apply(name);
            return v == null ? def : v.trim();
        }

        int integer(String name, int def) {
            String v = property.apply(name);
            if (v == null) return def;
            try {
                return Integer.parseInt(v.trim());
            } catch (NumberFormatException e) {
                throw bad(name, v, "an integer");
            }
        }

        boolean bool(String name, boolean def) {
            String v = property.apply(name);
            if (v == null) return def;
            return switch (v.trim().toLowerCase(Locale.ROOT)) {
                case "true" -> true;
                case "false" -> false;
                // Boolean.getBoolean, which read kimivl.gemmTileDecode before, took an empty value as false
                case "" -> false;
                default -> throw bad(name, v, "true or false");
            };
        }

        <E extends Enum<E>> E choice(String name, E def) {
            String v = property.apply(name);
            if (v == null) return def;
            try {
                return Enum.valueOf(def.getDeclaringClass(), v.trim().toUpperCase(Locale.ROOT));
            } catch (IllegalArgumentException e) {
                throw bad(name, v, "one of " + java.util.Arrays.toString(def.getDeclaringClass().getEnumConstants()).toLowerCase(Locale.ROOT));
            }
        }
    }
}
