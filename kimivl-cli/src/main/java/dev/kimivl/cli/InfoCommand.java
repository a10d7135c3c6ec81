package dev.kimivl.cli;

import dev.kimivl.config.ModelConfig;
import dev.kimivl.config.TextConfig;
import dev.kimivl.io.TensorData;
import dev.kimivl.model.KimiVL;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.util.TreeMap;
import java.util.concurrent.Callable;

/** kimivl info: what a checkpoint is (config summary, parameter counts, tensors). */
@Command(name = "info", mixinStandardHelpOptions = true, description = "Show a checkpoint's configuration, parameter counts and tensors.")
final class InfoCommand implements Callable<Integer> {
    @Mixin ModelOption model;

    @Option(names = "--tensors", description = "List every tensor with dtype and shape.")
    boolean tensors;

    @Override
    public Integer call() {
        try (KimiVL m = model.open()) {
            ModelConfig cfg = m.config();
            TextConfig t = cfg.text();
            System.out.printf("model        %s (%s)%n", m.dir(), cfg.modelType());
            System.out.printf("text         %s: hidden %d, %d layers (%d dense), %d heads, MLA kv_lora %d, q_lora %s, rope %d (θ %.0f%s), vocab %d, context %d%n",
                    t.modelType(), t.hiddenSize(), t.numLayers(), Math.min(t.firstKDenseReplace(), t.numLayers()), t.numHeads(), t.kvLoraRank(),
                    t.qLoraRank() == 0 ? "none" : String.valueOf(t.qLoraRank()), t.qkRopeHeadDim(), t.ropeTheta(),
                    t.ropeScaling() == null ? "" : ", YaRN ×" + t.ropeScaling().factor(), t.vocabSize(), t.maxPositionEmbeddings());
            if (t.nRoutedExperts() > 0) {
                System.out.printf("moe          %d routed experts (width %d), top-%d, %d shared, %s scoring, %s, scale %.3f%n",
                        t.nRoutedExperts(), t.moeIntermediateSize(), t.numExpertsPerTok(), t.nSharedExperts(), t.scoringFunc(), t.topkMethod(), t.routedScalingFactor());
            }
            if (cfg.vision() != null) {
                var v = cfg.vision();
                System.out.printf("vision       MoonViT: hidden %d, %d layers, %d heads, MLP %d, pos table %dx%d, merge %dx%d, image token id %d%n",
                        v.hiddenSize(), v.numLayers(), v.numHeads(), v.intermediateSize(), v.posEmbHeight(), v.posEmbWidth(), v.mergeH(), v.mergeW(), cfg.mediaPlaceholderTokenId());
            }
            long total = 0, vision = 0;
            for (String n : m.weights().names()) {
                if (n.endsWith("rotary_emb.inv_freq")) continue;
                long k = m.weights().tensor(n).numel();
                total += k;
                if (n.startsWith("vision_tower.") || n.startsWith("multi_modal_projector.")) vision += k;
            }
            long text = total - vision;
            long embed = (long) t.vocabSize() * t.hiddenSize();
            long inactive = 0;
            for (int l = 0; l < t.numLayers(); l++) {
                if (t.isMoeLayer(l)) inactive += (long) (t.nRoutedExperts() - t.numExpertsPerTok()) * 3 * t.moeIntermediateSize() * t.hiddenSize();
            }
            System.out.printf("parameters   %,d total (text %,d, vision+projector %,d)%n", total, text, vision);
            System.out.printf("weights      %s%n", weightBytes(m.weights()));
            System.out.printf("active/token %,d text parameters (all but the unselected routed experts and the embedding table)%n", text - inactive - embed);
            System.out.printf("tokenizer    %s%n", m.hasTokenizer() ? m.tokenizer().vocabSize() + " tokens" : "none (no tiktoken.model)");
            System.out.printf("kernels      %s%n", dev.kimivl.tensor.Kernels.DEFAULT.describe());
            var lm = m.languageModel();
            System.out.printf("kv cache     %s, %.1f MB per 1K tokens of context%n", lm.kvCachePrecision().name().toLowerCase(java.util.Locale.ROOT),
                    lm.kvBytesPerPosition() * 1000 / 1e6);
            if (tensors) {
                for (var e : new TreeMap<>(m.weights().names().stream().collect(java.util.stream.Collectors.toMap(n -> n, n -> n))).keySet()) {
                    TensorData td = m.weights().tensor(e);
                    System.out.printf("  %-70s %-5s %s%n", e, td.dtype(), td.shapeString());
                }
            }
        }
        return 0;
    }

    /** Stored bytes by type: per file for GGUF (the text file's mix, e.g. Q4_K_M's), per dtype for safetensors. */
    static String weightBytes(dev.kimivl.io.WeightSource w) {
        if (w instanceof dev.kimivl.io.gguf.GgufModel g) {
            StringBuilder sb = new StringBuilder();
            if (g.textFile() != null) sb.append("text ").append(gb(g.textFile().bytesByType()));
            if (g.mmprojFile() != null) sb.append(sb.isEmpty() ? "" : "; ").append("mmproj ").append(gb(g.mmprojFile().bytesByType()));
            return sb.toString();
        }
        java.util.Map<String, Long> m = new java.util.LinkedHashMap<>();
        for (String n : w.names()) {
            TensorData t = w.tensor(n);
            m.merge(t.dtype().name(), t.data().byteSize(), Long::sum);
        }
        return gb(m);
    }

    private static String gb(java.util.Map<String, Long> bytes) {
        return bytes.entrySet().stream().sorted(java.util.Map.Entry.<String, Long>comparingByValue().reversed())
                .map(e -> e.getValue() >= 1e8 ? String.format(java.util.Locale.ROOT, "%s %.2f GB", e.getKey(), e.getValue() / 1e9)
                        : String.format(java.util.Locale.ROOT, "%s %.1f MB", e.getKey(), e.getValue() / 1e6))
                .collect(java.util.stream.Collectors.joining(", "));
    }
}
