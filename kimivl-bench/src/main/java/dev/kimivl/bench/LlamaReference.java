package dev.kimivl.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * llama.cpp's and ik_llama.cpp's figures measured on this project's machine kind on the bench's own files, cited by
 * {@code kimivl bench} when it is run without {@code --llama-bench}: the resource {@code llama-cpp-reference.json},
 * copied from the shared anchors ({@code ../shared/anchors/llama-cpp.md}) with their machine, date, builds and
 * commands. They come from other runs, so the report prints them as ranges with the caveat, and ratios as "about".
 */
public final class LlamaReference {
    static final String RESOURCE = "llama-cpp-reference.json";

    private final JsonNode root;

    private LlamaReference(JsonNode root) { this.root = root; }

    /** The bundled reference. */
    public static LlamaReference load() {
        try (InputStream in = LlamaReference.class.getResourceAsStream(RESOURCE)) {
            if (in == null) throw new IllegalStateException("resource dev/kimivl/bench/" + RESOURCE + " is missing from the kimivl-bench jar");
            return new LlamaReference(new ObjectMapper().readTree(in));
        } catch (IOException e) {
            throw new UncheckedIOException("resource dev/kimivl/bench/" + RESOURCE + ": " + e.getMessage(), e);
        }
    }

    public String date() { return root.path("date").asText(); }

    public String machine() { return root.path("machine").asText(); }

    /** The measured values of one figure ("pp512", "tg128") of one engine for a mix, or an empty list. */
    List<Double> values(JsonNode engine, String type, String figure) {
        return doubles(engine.path("figures").path(type).path(figure));
    }

    /** The values of decode after a context of {@code context} tokens, or an empty list. */
    List<Double> decodeAfter(JsonNode engine, String type, int context) {
        return doubles(engine.path("figures").path(type).path("decodeAfter").path(String.valueOf(context)));
    }

    private static List<Double> doubles(JsonNode n) {
        List<Double> out = new ArrayList<>();
        if (n.isArray()) for (JsonNode x : n) out.add(x.asDouble());
        return out;
    }

    /** True when any engine has figures for this mix (q4_0, q4_k_m; none for q8_0 on this machine kind). */
    public boolean has(String type) {
        for (JsonNode e : root.path("engines")) if (e.path("figures").has(type)) return true;
        return false;
    }

    /** The report's section: the reference figures for r's type, with ratios to r's figures. */
    public String text(ModelBench.Result r) {
        StringBuilder sb = new StringBuilder();
        sb.append(String.format(Locale.ROOT, "  llama.cpp         not measured in this run (kimivl bench --llama-bench PATH runs them side by side); figures of %s%n",
                root.path("source").asText()));
        sb.append(String.format(Locale.ROOT, "                    measured %s on %s, %d threads, the same bench files%n", date(), machine(), root.path("threads").asInt()));
        if (!has(r.type())) {
            sb.append(String.format(Locale.ROOT, "                    %s: none (the anchors have q4_0 and q4_k_m)%n", r.type()));
        }
        for (JsonNode e : root.path("engines")) {
            if (!e.path("figures").has(r.type())) continue;
            StringBuilder line = new StringBuilder();
            if (r.decode() != null) {
                line.append(figure("pp512", values(e, r.type(), "pp512"), r.promptTokens() == 512 ? r.prefillTokPerSec() : Double.NaN));
                line.append(figure("tg128", values(e, r.type(), "tg128"), r.decode().tokPerSec()));
                int ctx = r.decodeLong().context();
                if (ctx > 0) line.append(figure("tg @" + ctx, decodeAfter(e, r.type(), ctx), r.decodeLong().tokPerSec()));
            }
            // an engine measured on another day than the file's date says so (the VM's speed differs from day to day)
            sb.append(String.format(Locale.ROOT, "                    %s %s%s:%s%n", e.path("name").asText(), e.path("build").asText().split(" ")[0],
                    e.has("date") ? " on " + e.path("date").asText() : "", line.isEmpty() ? " (text not measured)" : line));
        }
        JsonNode v = root.path("vision");
        if (r.imageTokens() > 0 && v.has("seconds") && r.imageSide() == v.path("imageSide").asInt()) {
            double s = v.path("seconds").asDouble();
            sb.append(String.format(Locale.ROOT, "                    %s: MoonViT + projector %.1f s for %dx%d (kimivl about %.2fx faster)%n",
                    v.path("engine").asText(), s, r.imageSide(), r.imageSide(), s / r.visionSeconds()));
        }
        sb.append("                    (").append(root.path("caveat").asText()).append(")\n");
        return sb.toString();
    }

    /** " pp512 19.6-19.9 (kimivl about 1.34x)", or " pp512 n/a" when there is no figure. */
    private static String figure(String name, List<Double> values, double mine) {
        if (values.isEmpty()) return " " + name + " n/a;";
        double lo = values.stream().mapToDouble(Double::doubleValue).min().orElseThrow();
        double hi = values.stream().mapToDouble(Double::doubleValue).max().orElseThrow();
        String range = lo == hi ? String.format(Locale.ROOT, "%.2f", lo) : String.format(Locale.ROOT, "%.2f-%.2f", lo, hi);
        String ratio = Double.isFinite(mine)
                ? (lo == hi ? String.format(Locale.ROOT, " (kimivl about %.2fx)", mine / lo) : String.format(Locale.ROOT, " (kimivl about %.2f-%.2fx)", mine / hi, mine / lo))
                : "";
        return " " + name + " " + range + ratio + ";";
    }

    /** The reference as the JSON report's "llamaCppReference": provenance, and per engine its figures for r's type with ratio ranges. */
    public ObjectNode json(ModelBench.Result r, ObjectMapper om) {
        ObjectNode n = om.createObjectNode();
        for (String k : new String[]{"source", "date", "machine", "files", "caveat"}) n.put(k, root.path(k).asText());
        n.put("threads", root.path("threads").asInt());
        var engines = n.putArray("engines");
        for (JsonNode e : root.path("engines")) {
            ObjectNode o = engines.addObject();
            o.put("name", e.path("name").asText());
            o.put("build", e.path("build").asText());
            o.put("command", e.path("command").asText());
            JsonNode figs = e.path("figures").path(r.type());
            o.set("figures", figs.isMissingNode() ? om.nullNode() : figs.deepCopy());
            if (figs.isMissingNode() || r.decode() == null) continue;
            ObjectNode ratios = o.putObject("ratios");
            if (r.promptTokens() == 512) ratioRange(ratios, "pp512", values(e, r.type(), "pp512"), r.prefillTokPerSec());
            ratioRange(ratios, "tg128", values(e, r.type(), "tg128"), r.decode().tokPerSec());
            int ctx = r.decodeLong().context();
            if (ctx > 0) ratioRange(ratios, "decodeAfter" + ctx, decodeAfter(e, r.type(), ctx), r.decodeLong().tokPerSec());
        }
        n.set("vision", root.path("vision").deepCopy());
        return n;
    }

    private static void ratioRange(ObjectNode ratios, String key, List<Double> values, double mine) {
        if (values.isEmpty()) return;
        var a = ratios.putArray(key);
        a.add(mine / values.stream().mapToDouble(Double::doubleValue).max().orElseThrow());
        a.add(mine / values.stream().mapToDouble(Double::doubleValue).min().orElseThrow());
    }
}
