package dev.kimivl.vision;

import dev.kimivl.config.ModelConfig;
import dev.kimivl.config.PreprocessorConfig;
import dev.kimivl.config.VisionConfig;
import dev.kimivl.io.CheckpointException;
import dev.kimivl.io.WeightSource;
import dev.kimivl.model.StageSink;
import dev.kimivl.tensor.Kernels;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Images → image features in the language model's embedding space: preprocessing, MoonViT, 2×2 merge, projector.
 * Thread-safe for concurrent {@link #encode} calls (weights are read-only; every call allocates its own activations).
 */
public final class VisionEncoder {
    private final VisionConfig vcfg;
    private final ImagePreprocessor preprocessor;
    private final MoonViT vit;
    private final Projector projector;

    public VisionEncoder(WeightSource weights, ModelConfig config, PreprocessorConfig pre) {
        this(weights, requireVision(weights, config), config.text().hiddenSize(), pre);
    }

    /** For callers without a full config.json (benchmarks, tests): the vision config and the LM hidden size Dt. */
    public VisionEncoder(WeightSource weights, VisionConfig vision, int textHidden, PreprocessorConfig pre) {
        this(weights, vision, textHidden, pre, Kernels.DEFAULT);
    }

    /**
     * With the given kernels for quantized weights: {@link Kernels#java()} keeps every linear layer on the float path
     * (the comparison VisionBench and the tests make).
     */
    public VisionEncoder(WeightSource weights, VisionConfig vision, int textHidden, PreprocessorConfig pre, Kernels kernels) {
        this.vcfg = vision;
        if (pre.patchSize() != vcfg.patchSize() || pre.mergeH() != vcfg.mergeH() || pre.mergeW() != vcfg.mergeW()) {
            throw new CheckpointException(weights.description() + ": preprocessor patch " + pre.patchSize() + " / merge "
                    + pre.mergeH() + "x" + pre.mergeW() + " disagree with vision_config patch " + vcfg.patchSize()
                    + " / merge " + vcfg.mergeH() + "x" + vcfg.mergeW());
        }
        this.preprocessor = new ImagePreprocessor(pre);
        this.vit = new MoonViT(weights, vcfg, kernels);
        this.projector = new Projector(weights, vcfg.hiddenSize(), vcfg.mergeH() * vcfg.mergeW(), textHidden, kernels);
    }

    private static VisionConfig requireVision(WeightSource weights, ModelConfig config) {
        if (!config.hasVision()) throw new CheckpointException(weights.description() + ": config has no vision_config");
        return config.vision();
    }

    public PreprocessorConfig preprocessorConfig() { return preprocessor.config(); }

    public int textHidden() { return projector.textHidden(); }

    /** Bytes of float32 weights an encode allocates at most (its float layers' packing buffer; 0 for none). */
    public long floatBufferBytes() { return Math.max(vit.floatBufferBytes(), projector.floatBufferBytes()); }

    /** The tower (for reports and tests). */
    public MoonViT tower() { return vit; }

    /** Image tokens an image of this size produces with this processor configuration (for building prompts). */
    public static int tokensFor(int width, int height, PreprocessorConfig pre) {
        return ImagePreprocessor.tokensFor(width, height, pre);
    }

    public int tokensFor(int width, int height) { return tokensFor(width, height, preprocessor.config()); }

    /**
     * Patches one encoder pass takes at most when images are encoded in groups: two images at Kimi-VL's
     * in_token_limit (4096 patches each). A pass's activations grow with its patches (on the full-size tower
     * about 30 KB of float32 per patch in the MLP alone), so this bounds them: 64 video frames or document pages
     * cost the memory of a couple of images, not of all of them at once.
     */
    public static final int GROUP_PATCHES = 8192;

    /** Features of the images in order; encoded in groups of at most {@link #GROUP_PATCHES} patches. */
    public VisionOutput encode(List<LoadedImage> images) { return encode(images, false); }

    /**
     * @param keepStages also return every intermediate stage under the golden names (then all images go through
     *                   one pass, as the reference's stages are of the whole batch)
     */
    public VisionOutput encode(List<LoadedImage> images, boolean keepStages) {
        if (!keepStages) return encodeInGroups(images, GROUP_PATCHES);
        List<PreprocessedImage> pre = new ArrayList<>(images.size());
        for (LoadedImage im : images) pre.add(preprocessor.process(im));
        return encodePreprocessed(pre, keepStages);
    }

    /**
     * Encodes images a group at a time: each group holds as many consecutive images as fit in {@code maxPatches}
     * patches (an image bigger than that goes alone), is preprocessed just before its pass and dropped after it, so
     * memory is bounded by one group plus the features. The features equal one pass over all images: MoonViT's
     * attention is block-diagonal per image and every other step is per patch or per merged token. The returned
     * {@link VisionOutput#images()} keep each image's sizes and grid but not its pixel values (null).
     */
    public VisionOutput encodeInGroups(List<LoadedImage> images, int maxPatches) {
        if (images.isEmpty()) throw new IllegalArgumentException("no images to encode");
        if (maxPatches < 1) throw new IllegalArgumentException("maxPatches must be positive, not " + maxPatches);
        PreprocessorConfig cfg = preprocessor.config();
        int n = images.size(), dt = projector.textHidden();
        int[] patchCount = new int[n];
        long totalTokens = 0;
        for (int m = 0; m < n; m++) {
            LoadedImage im = images.get(m);
            int[] g = ImagePreprocessor.gridFor(im.width(), im.height(), cfg);
            patchCount[m] = g[0] * g[1];
            totalTokens += ImagePreprocessor.tokensFor(im.width(), im.height(), cfg);
        }
        float[] features = new float[Math.toIntExact(totalTokens * dt)];   // [M, Dt], all images
        int[] tokens = new int[n];
        int[][] grids = new int[n][];
        List<PreprocessedImage> kept = new ArrayList<>(n);
        int row = 0;
        for (int start = 0; start < n; ) {
            int end = start, patches = 0;
            while (end < n && (end == start || patches + patchCount[end] <= maxPatches)) patches += patchCount[end++];
            List<PreprocessedImage> group = new ArrayList<>(end - start);
            for (int m = start; m < end; m++) group.add(preprocessor.process(images.get(m)));
            VisionOutput v = encodePreprocessed(group, false);
            System.arraycopy(v.features(), 0, features, row * dt, v.features().length);
            row += v.features().length / dt;
            for (int m = start; m < end; m++) {
                PreprocessedImage p = group.get(m - start);
                tokens[m] = v.tokens()[m - start];
                grids[m] = v.grids()[m - start];
                kept.add(new PreprocessedImage(p.source(), p.width(), p.height(), p.resizedWidth(), p.resizedHeight(),
                        p.paddedWidth(), p.paddedHeight(), p.gridH(), p.gridW(), null));
            }
            start = end;
        }
        if (row != totalTokens) throw new IllegalStateException("encoded " + row + " image tokens, expected " + totalTokens);
        return new VisionOutput(features, dt, tokens, grids, List.copyOf(kept), Map.of(), Map.of());
    }

    public VisionOutput encodePreprocessed(List<PreprocessedImage> images, boolean keepStages) {
        if (images.isEmpty()) throw new IllegalArgumentException("no images to encode");
        int n = images.size();
        int[][] grids = new int[n][];
        int[] tokens = new int[n];
        int patches = 0, rowLen = 3 * vcfg.patchSize() * vcfg.patchSize();
        for (int m = 0; m < n; m++) {
            PreprocessedImage p = images.get(m);
            grids[m] = new int[]{p.gridH(), p.gridW()};
            tokens[m] = (p.gridH() / vcfg.mergeH()) * (p.gridW() / vcfg.mergeW());
            patches += p.patches();
        }
        float[] pixels = new float[Math.multiplyExact(patches, rowLen)];   // [L, 3·P·P]
        int off = 0;
        for (PreprocessedImage p : images) {
            System.arraycopy(p.pixelValues(), 0, pixels, off, p.pixelValues().length);
            off += p.pixelValues().length;
        }
        Map<String, float[]> stages = keepStages ? new LinkedHashMap<>() : null;
        Map<String, int[]> shapes = keepStages ? new LinkedHashMap<>() : null;
        int dim = vcfg.hiddenSize(), slots = vcfg.mergeH() * vcfg.mergeW();
        if (keepStages) {
            stages.put("pixel_values", pixels);
            float[] g = new float[2 * n];
            for (int m = 0; m < n; m++) { g[2 * m] = grids[m][0]; g[2 * m + 1] = grids[m][1]; }
            stages.put("image_grid_hws", g);
        }
        float[] tower = vit.forward(pixels, grids, keepStages ? (name, data, shape) -> stages.put(name, data.clone()) : StageSink.NONE);  // [L, D]
        VisionTimer.begin();
        float[] merged = merge(tower, grids, tokens);                     // [M, slots, D]
        int mTotal = merged.length / (slots * dim);
        VisionTimer.lap(VisionTimer.Phase.MERGE);
        float[] features = projector.forward(merged, mTotal);             // [M, Dt]
        VisionTimer.lap(VisionTimer.Phase.PROJECTOR, 2.0 * mTotal * slots * dim * (slots * dim + projector.textHidden()));
        if (keepStages) {
            stages.put("vision_tower_out", tower);
            stages.put("merged", merged);
            stages.put("image_features", features);
            shapes.put("pixel_values", new int[]{patches, 3, vcfg.patchSize(), vcfg.patchSize()});
            shapes.put("image_grid_hws", new int[]{n, 2});
            for (String k : stages.keySet()) {
                if (k.startsWith("vision.")) shapes.put(k, new int[]{patches, dim});
            }
            shapes.put("vision_tower_out", new int[]{patches, dim});
            shapes.put("merged", new int[]{mTotal, slots, dim});
            shapes.put("image_features", new int[]{mTotal, projector.textHidden()});
        }
        return new VisionOutput(features, projector.textHidden(), tokens, grids, List.copyOf(images),
                keepStages ? Collections.unmodifiableMap(stages) : Map.of(), keepStages ? Collections.unmodifiableMap(shapes) : Map.of());
    }

    /**
     * 2×2 patch merge (spec §4.6): merged token (R, C) of an image holds patches (2R+a, 2C+b) in slot a·2 + b,
     * i.e. (top-left, top-right, bottom-left, bottom-right). tower [L, D] → [M, mh·mw, D].
     */
    private float[] merge(float[] tower, int[][] grids, int[] tokens) {
        int dim = vcfg.hiddenSize(), mh = vcfg.mergeH(), mw = vcfg.mergeW(), slots = mh * mw;
        int total = 0;
        for (int t : tokens) total += t;
        float[] out = new float[total * slots * dim];
        int src = 0, dst = 0;
        for (int m = 0; m < grids.length; m++) {
            int gh = grids[m][0], gw = grids[m][1];
            for (int r = 0; r < gh / mh; r++) {
                for (int c = 0; c < gw / mw; c++) {
                    for (int a = 0; a < mh; a++) {
                        for (int b = 0; b < mw; b++) {
                            int patch = src + (r * mh + a) * gw + (c * mw + b);
                            System.arraycopy(tower, patch * dim, out, dst, dim);
                            dst += dim;
                        }
                    }
                }
            }
            src += gh * gw;
        }
        return out;
    }
}
