package dev.kimivl.vision;

import dev.kimivl.config.PreprocessorConfig;
import dev.kimivl.config.VisionConfig;
import dev.kimivl.io.CheckpointException;
import dev.kimivl.io.TensorData;
import dev.kimivl.io.WeightSource;
import dev.kimivl.tensor.DType;
import dev.kimivl.tensor.KernelSettings;
import dev.kimivl.tensor.Kernels;
import dev.kimivl.tensor.NativeKernels;
import dev.kimivl.tensor.Quant;
import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * MoonViT + projector from a Q8_0 mmproj's weights (types as {@code kimivl convert --type q8_0} writes them: matrices
 * Q8_0 where their rows are whole blocks, else F16; the patch embedding, norms, biases and the position table F32),
 * run two ways on the same bytes: the integer path (native int8 GEMM on the blocks, activations quantized to int8 per
 * block of 32, as llama.cpp) and the float path on the dequantized weights (the f32 reference the golden tests check
 * stage by stage).
 */
class QuantVisionTest {
    static final int PATCH = 14, DIM = 128, LAYERS = 2, HEADS = 2, TEXT = 100;

    /** The int8 path: native kernels with integer products on (the build runs tests with -Dkimivl.intMatvec=false). */
    static Kernels integer() {
        assumeTrue(NativeKernels.AVAILABLE, NativeKernels.STATUS);
        return Kernels.nativeKernels().with(KernelSettings.SYSTEM.withIntMatvec(true));
    }

    static VisionConfig config(int inter) { return new VisionConfig(PATCH, DIM, LAYERS, HEADS, inter, 8, 8, 2, 2); }

    static PreprocessorConfig pre() {
        return new PreprocessorConfig(new double[]{0.5, 0.5, 0.5}, new double[]{0.5, 0.5, 0.5}, 4096, true, PATCH, 2, 2);
    }

    /** 224×168: a 16×12 grid, 192 patches (two of the integer path's 128-patch tiles), 48 image tokens. */
    static LoadedImage image() {
        SplittableRandom r = new SplittableRandom(5);
        int w = 224, h = 168;
        int[] rgb = new int[w * h];
        for (int y = 0; y < h; y++) {
            for (int x = 0; x < w; x++) {
                // smooth gradients plus noise, so the patches differ in structure, not only in noise
                int red = (x * 255 / w + r.nextInt(40)) & 255, green = (y * 255 / h + r.nextInt(40)) & 255, blue = r.nextInt(256);
                rgb[y * w + x] = red << 16 | green << 8 | blue;
            }
        }
        return LoadedImage.ofRgb("gradient", w, h, rgb);
    }

    @Test
    void q8MmprojMatchesTheDequantizedFloatPathAndHoldsNoFloatWeights() {
        Kernels ints = integer();
        int inter = 256;                                         // rows of fc1 are whole Q8_0 blocks: every layer Q8_0
        WeightSource w = MmprojWeights.q8(config(inter), TEXT, 11);
        VisionEncoder fast = new VisionEncoder(w, config(inter), TEXT, pre(), ints);
        VisionEncoder ref = new VisionEncoder(w, config(inter), TEXT, pre(), Kernels.java());

        assertEquals(4 * LAYERS, fast.tower().integerLayers(), "wqkv, wo, fc0, fc1 of every block run on their Q8_0 blocks");
        assertEquals(0, ref.tower().integerLayers(), "the Java kernels keep the float path (the reference)");
        // the only float weights an encode packs: the F32 patch embedding [D, 3·14·14] (588 is not whole Q8_0 blocks)
        assertEquals(4L * DIM * 3 * PATCH * PATCH, fast.floatBufferBytes(), "no Q8_0 layer is copied to float");
        assertEquals(4L * 4 * DIM * 4 * DIM, ref.floatBufferBytes(), "the float path packs projector linear_1 [4D, 4D]");

        compare(fast, ref, 0.03);
    }

    /**
     * Against the unquantized weights (F32, the same values before Q8_0 rounding), the int8 activations add an error of
     * the same order as the Q8_0 rounding of the weights themselves, which every user of a Q8_0 mmproj already accepts:
     * measured (2026-12-05) 0.72% (weights rounded, float path) and 1.18% (weights and activations rounded) at the
     * tower output, so the activations' share is about 0.9% (errors add in quadrature).
     */
    @Test
    void int8ActivationsCostAboutWhatQ8WeightsCost() {
        Kernels ints = integer();
        int inter = 256;
        WeightSource q = MmprojWeights.q8(config(inter), TEXT, 13), f = MmprojWeights.of(config(inter), TEXT, 13, true);
        float[] exact = new VisionEncoder(f, config(inter), TEXT, pre(), Kernels.java()).encode(List.of(image()), true).stages().get("vision_tower_out");
        float[] weightsRounded = new VisionEncoder(q, config(inter), TEXT, pre(), Kernels.java()).encode(List.of(image()), true).stages().get("vision_tower_out");
        float[] bothRounded = new VisionEncoder(q, config(inter), TEXT, pre(), ints).encode(List.of(image()), true).stages().get("vision_tower_out");
        double w = rel(weightsRounded, exact), both = rel(bothRounded, exact);
        System.out.printf("QuantVisionTest: against F32 weights: Q8_0 weights %.5f, Q8_0 weights + int8 activations %.5f%n", w, both);
        assertTrue(w > 0 && both < 3 * w, "int8 activations: " + both + " against F32 weights, Q8_0 weights alone " + w);
    }

    static double rel(float[] x, float[] y) {
        assertEquals(y.length, x.length);
        double num = 0, den = 0;
        for (int i = 0; i < x.length; i++) {
            num += (x[i] - y[i]) * (double) (x[i] - y[i]);
            den += (double) y[i] * y[i];
        }
        return Math.sqrt(num / den);
    }

    @Test
    void f16Fc1LikeKimiVlsMmproj() {
        Kernels ints = integer();
        int inter = 272;                                         // like 4304: fc1's rows are not whole blocks → F16
        WeightSource w = MmprojWeights.q8(config(inter), TEXT, 12);
        assertEquals(DType.F16, w.tensor("vision_tower.encoder.blocks.0.mlp.fc1.weight").dtype());
        assertEquals(DType.Q8_0, w.tensor("vision_tower.encoder.blocks.0.mlp.fc0.weight").dtype());
        VisionEncoder fast = new VisionEncoder(w, config(inter), TEXT, pre(), ints);
        VisionEncoder ref = new VisionEncoder(w, config(inter), TEXT, pre(), Kernels.java());
        assertEquals(3 * LAYERS, fast.tower().integerLayers(), "fc1 (F16) takes the float path, the others their Q8_0 blocks");
        compare(fast, ref, 0.03);
    }

    /**
     * The integer path's stages against the float path's on the same dequantized weights: relative RMS error below
     * {@code tol} after each block, at the tower's output and at the image features, but not zero (the int8 path did
     * run). Measured (2026-12-05, printed): 0.6-0.8% after block 0, 0.8-1.0% at the tower output, 1.2-1.4% at the
     * features (two more int8 products), from the activations' rounding to their block's int8 step (amax/127, so each
     * value moves by at most amax/254). tol = 3% leaves room for other seeds and data, not for a wrong tile, bias or
     * epilogue (those give errors of order 1). The patch embedding (F32 in an mmproj) must agree exactly.
     */
    static void compare(VisionEncoder fast, VisionEncoder ref, double tol) {
        VisionOutput a = fast.encode(List.of(image()), true), b = ref.encode(List.of(image()), true);
        assertEquals(48, a.totalTokens());
        for (String stage : new String[]{"vision.patch_embed", "vision.block0", "vision.block1", "vision_tower_out", "merged", "image_features"}) {
            float[] x = a.stages().get(stage), y = b.stages().get(stage);
            assertEquals(y.length, x.length, stage);
            double num = 0, den = 0;
            for (int i = 0; i < x.length; i++) {
                assertTrue(Float.isFinite(x[i]), stage + " [" + i + "] is " + x[i]);
                num += (x[i] - y[i]) * (double) (x[i] - y[i]);
                den += (double) y[i] * y[i];
            }
            double rel = Math.sqrt(num / den);
            System.out.printf("QuantVisionTest: %s relative RMS error %.5f%n", stage, rel);
            if (stage.equals("vision.patch_embed")) {
                assertEquals(0.0, rel, stage + ": the F32 patch embedding takes the same float path both ways");
                continue;
            }
            assertTrue(rel < tol, stage + ": relative RMS error " + rel + " of the int8 path against the float path, above " + tol);
            assertTrue(rel > 0, stage + ": identical results: the int8 path did not run");
        }
        assertFalse(a.features().length == 0);
    }

    /** A small mmproj's tensors, random, in the types of a Q8_0 mmproj. */
    static final class MmprojWeights implements WeightSource {
        final Map<String, TensorData> tensors = new LinkedHashMap<>();
        final SplittableRandom rnd;

        private MmprojWeights(long seed, boolean f32) { rnd = new SplittableRandom(seed); this.f32 = f32; }

        /** Matrices Q8_0 (F16 where rows are not whole blocks), or with {@code f32} all F32 (same values before rounding). */
        final boolean f32;

        static MmprojWeights q8(VisionConfig c, int textHidden, long seed) { return of(c, textHidden, seed, false); }

        static MmprojWeights of(VisionConfig c, int textHidden, long seed, boolean f32) {
            MmprojWeights w = new MmprojWeights(seed, f32);
            int d = c.hiddenSize(), p = c.patchSize(), in = c.intermediateSize();
            w.floats("vision_tower.patch_embed.proj.weight", 0.05f, d, 3, p, p);
            w.floats("vision_tower.patch_embed.proj.bias", 0.02f, d);
            w.floats("vision_tower.patch_embed.pos_emb.weight", 0.02f, c.posEmbHeight(), c.posEmbWidth(), d);
            for (int b = 0; b < c.numLayers(); b++) {
                String bp = "vision_tower.encoder.blocks." + b + ".";
                w.norm(bp + "norm0", d);
                w.norm(bp + "norm1", d);
                w.linear(bp + "wqkv", 3 * d, d);
                w.linear(bp + "wo", d, d);
                w.linear(bp + "mlp.fc0", in, d);
                w.linear(bp + "mlp.fc1", d, in);
            }
            w.norm("vision_tower.encoder.final_layernorm", d);
            w.norm("multi_modal_projector.pre_norm", d);
            w.linear("multi_modal_projector.linear_1", 4 * d, 4 * d);
            w.linear("multi_modal_projector.linear_2", textHidden, 4 * d);
            return w;
        }

        float[] random(int n, float scale) {
            float[] v = new float[n];
            for (int i = 0; i < n; i++) v[i] = scale * (float) (2 * rnd.nextDouble() - 1);
            return v;
        }

        void floats(String name, float scale, long... shape) {
            long n = 1;
            for (long s : shape) n *= s;
            put(name, DType.F32, shape, MemorySegment.ofArray(random(Math.toIntExact(n), scale)));
        }

        void norm(String name, int d) {
            float[] g = random(d, 0.1f);
            for (int i = 0; i < d; i++) g[i] += 1f;
            put(name + ".weight", DType.F32, new long[]{d}, MemorySegment.ofArray(g));
            floats(name + ".bias", 0.05f, d);
        }

        /** Weight [rows, cols] with values of RMS about 1/√cols (as a trained layer keeps activations' scale), bias. */
        void linear(String name, int rows, int cols) {
            float[] v = random(rows * cols, (float) Math.sqrt(3.0 / cols));
            if (f32) {
                put(name + ".weight", DType.F32, new long[]{rows, cols}, MemorySegment.ofArray(v));
            } else if (cols % 32 == 0) {
                put(name + ".weight", DType.Q8_0, new long[]{rows, cols}, Quant.quantize(v, rows, cols, DType.Q8_0));
            } else {
                short[] h = new short[v.length];
                for (int i = 0; i < v.length; i++) h[i] = Float.floatToFloat16(v[i]);
                put(name + ".weight", DType.F16, new long[]{rows, cols}, MemorySegment.ofArray(h));
            }
            floats(name + ".bias", 0.3f, rows);          // large enough that a lost bias shows (≈ 20% of the output)
        }

        void put(String name, DType t, long[] shape, MemorySegment data) {
            tensors.put(name, new TensorData(name, t, shape, data, "random mmproj"));
        }

        @Override public Set<String> names() { return tensors.keySet(); }
        @Override public boolean has(String name) { return tensors.containsKey(name); }
        @Override public TensorData tensor(String name) {
            TensorData t = tensors.get(name);
            if (t == null) throw new CheckpointException("random mmproj: no tensor '" + name + "'");
            return t;
        }
        @Override public String description() { return "random Q8_0 mmproj"; }
        @Override public void close() {}
    }
}
