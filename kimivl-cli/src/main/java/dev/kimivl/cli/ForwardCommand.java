package dev.kimivl.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.kimivl.generate.Sampler;
import dev.kimivl.io.SafeTensorsWriter;
import dev.kimivl.model.KimiVL;
import dev.kimivl.model.KvCache;
import dev.kimivl.model.LanguageModel;
import dev.kimivl.model.StageSink;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.LinkedHashSet;
import java.util.Set;
import java.util.concurrent.Callable;

/**
 * kimivl forward: runs an inputs.json of the golden format and writes every stage as F32 safetensors under the
 * golden tensor names, plus generated_ids (I32): the greedy tokens of the KV-cache decode path.
 */
@Command(name = "forward", mixinStandardHelpOptions = true,
        description = "Run token ids (and images) from an inputs.json through the model; write every stage to a safetensors file for comparison with a reference.")
final class ForwardCommand implements Callable<Integer> {
    @Mixin ModelOption model;

    @Option(names = "--inputs", required = true, paramLabel = "FILE", description = "inputs.json: input_ids, images (paths relative to the file), max_new_tokens.")
    Path inputs;

    @Option(names = "--out", required = true, paramLabel = "FILE", description = "Output safetensors file (F32 stages, I32 ids).")
    Path out;

    @Option(names = "--max-image-pixels", paramLabel = "N", description = "Refuse images of more than N pixels before decoding them (default: ${DEFAULT-VALUE}, 8192x8192).")
    long maxImagePixels = dev.kimivl.vision.ImageLoader.DEFAULT_MAX_PIXELS;

    @picocli.CommandLine.Spec picocli.CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() throws Exception {
        if (maxImagePixels < 1) throw Errors.usage(spec, "--max-image-pixels must be positive, not " + maxImagePixels);
        if (!java.nio.file.Files.isRegularFile(inputs)) throw new IllegalArgumentException("--inputs " + inputs + ": no such file");
        JsonNode in;
        try {
            in = new ObjectMapper().readTree(inputs.toFile());
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new IllegalArgumentException(inputs + ": cannot parse JSON: " + dev.kimivl.io.JsonErrors.describe(e), e);
        }
        if (in == null || !in.isObject()) throw new IllegalArgumentException(inputs + ": not a JSON object");
        JsonNode idsNode = in.get("input_ids");
        if (idsNode == null || !idsNode.isArray() || idsNode.isEmpty()) throw new IllegalArgumentException(inputs + ": 'input_ids' must be a non-empty array of token ids");
        int[] ids = new int[idsNode.size()];
        for (int i = 0; i < ids.length; i++) {
            if (!idsNode.get(i).canConvertToInt()) throw new IllegalArgumentException(inputs + ": input_ids[" + i + "] is not an integer: " + idsNode.get(i));
            ids[i] = idsNode.get(i).asInt();
        }
        int maxNew = in.has("max_new_tokens") ? in.get("max_new_tokens").asInt() : 0;
        JsonNode images = in.get("images");
        model.checkImagesPossible(images != null && !images.isEmpty());

        SafeTensorsWriter w = new SafeTensorsWriter();
        Set<String> written = new LinkedHashSet<>();
        StageSink sink = (name, data, shape) -> {
            long[] s = new long[shape.length];
            for (int i = 0; i < s.length; i++) s[i] = shape[i];
            if (written.add(name)) w.f32(name, data.clone(), s);
        };
        try (KimiVL m = model.open()) {
            try {
                LanguageModel lm = m.languageModel();
                int T = ids.length;
                float[] emb = lm.embed(ids);
                if (images != null && !images.isEmpty()) {
                    Path base = inputs.toAbsolutePath().getParent();
                    var v = Multimodal.encode(m, Multimodal.files(images, base), new dev.kimivl.vision.ImageLoader(maxImagePixels, "--max-image-pixels"), true);
                    for (var e : v.stages().entrySet()) {
                        if (!e.getKey().equals("image_grid_hws")) sink.accept(e.getKey(), e.getValue(), v.shapes().get(e.getKey()));
                    }
                    int[] grids = new int[v.grids().length * 2];
                    for (int i = 0; i < v.grids().length; i++) { grids[2 * i] = v.grids()[i][0]; grids[2 * i + 1] = v.grids()[i][1]; }
                    w.i32("image_grid_hws", grids, v.grids().length, 2);
                    dev.kimivl.model.ImageMerge.merge(emb, ids, m.config().mediaPlaceholderTokenId(), v.features(), v.textHidden());
                }
                KvCache cache = lm.newCache(m.contextLength(0));
                if (T + maxNew > cache.maxTokens()) throw new dev.kimivl.generate.ContextOverflowException(T + maxNew, cache.maxTokens());
                float[] h = lm.forward(emb, T, cache, sink, null);
                sink.accept("logits", lm.allLogits(h, T), T, lm.config().vocabSize());
                w.i32("input_ids", ids, T);
                int[] gen = new int[maxNew];
                float[] logits = lm.logits(h, T - 1);
                for (int i = 0; i < maxNew; i++) {
                    gen[i] = Sampler.argmax(logits);
                    if (i + 1 < maxNew) logits = lm.logits(lm.forward(lm.embed(new int[]{gen[i]}), 1, cache, StageSink.NONE, null), 0);
                }
                w.i32("generated_ids", gen, maxNew);
                w.write(out);
                System.err.println("kimivl forward: wrote " + (written.size() + 2 + (images != null && !images.isEmpty() ? 1 : 0)) + " tensors to " + out + "; generated_ids " + java.util.Arrays.toString(gen));
            } catch (RuntimeException | InternalError e) {
                ModelOption.explainFault(m, e);   // a weight file changed under the process: name it
                throw e;
            }
        }
        return 0;
    }
}
