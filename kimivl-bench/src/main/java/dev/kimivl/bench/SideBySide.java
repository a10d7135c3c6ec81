package dev.kimivl.bench;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * {@code kimivl bench --llama-bench PATH...}: kimivl and each llama-bench on the same text GGUF in one run,
 * alternating: per round, kimivl's whole bench ({@link ModelBench#run}), then each binary's prefill, decode and
 * decode-after-context ({@link LlamaBench#run}), in the order given; the ratios kimivl / theirs are taken within a
 * round, so the machine's drift between runs cancels as far as it can.
 */
public final class SideBySide {
    /** One binary's figures in one round. */
    public record Theirs(Path binary, LlamaBench.Figures figures) {}

    /** One round: kimivl's result, then each binary's figures. */
    public record Round(ModelBench.Result kimivl, List<Theirs> theirs) {}

    /** kimivl's bench for one round (ModelBench.run with the options; tests substitute one). */
    @FunctionalInterface
    public interface Kimivl {
        ModelBench.Result run() throws IOException;
    }

    private SideBySide() {}

    /**
     * Runs {@code rounds} rounds on {@code model} (the text GGUF kimivl benchmarks) with the given sizes: prompt
     * tokens, decode tokens and the context before the long decode (0: none); each llama-bench gets the thread count
     * kimivl ran with.
     */
    public static List<Round> run(Kimivl kimivl, List<LlamaBench> others, Path model, int prompt, int gen, int context,
                                  int rounds, PrintStream log) throws IOException {
        if (rounds < 1) throw new IllegalArgumentException("--rounds must be at least 1, not " + rounds);
        List<Round> out = new ArrayList<>();
        for (int r = 1; r <= rounds; r++) {
            if (log != null) log.printf(Locale.ROOT, "side by side, round %d of %d: kimivl%n", r, rounds);
            ModelBench.Result k = kimivl.run();
            List<Theirs> theirs = new ArrayList<>();
            for (LlamaBench b : others) {
                if (log != null) log.printf(Locale.ROOT, "side by side, round %d of %d: %s%n", r, rounds, b.binary());
                theirs.add(new Theirs(b.binary(), b.run(model, k.threads(), prompt, gen, context, log)));
            }
            out.add(new Round(k, theirs));
        }
        return out;
    }

    /** kimivl's figure matching one of theirs: prefill, decode, decode after the context. */
    static double kimivlFigure(ModelBench.Result k, int which) {
        return switch (which) {
            case 0 -> k.prefillTokPerSec();
            case 1 -> k.decode().tokPerSec();
            default -> k.decodeLong().tokPerSec();
        };
    }

    static LlamaBench.Figure theirFigure(LlamaBench.Figures f, int which) {
        return switch (which) {
            case 0 -> f.prefill();
            case 1 -> f.decode();
            default -> f.depth();
        };
    }

    /** The report's side-by-side section: per round and binary, each figure with ratio kimivl / theirs. */
    public static String text(List<Round> rounds) {
        StringBuilder sb = new StringBuilder();
        ModelBench.Result first = rounds.getFirst().kimivl();
        sb.append(String.format(Locale.ROOT, "  side by side      same file, same run, alternating (kimivl, then each llama-bench, %d round%s); tok/s; ratio = kimivl / theirs%n",
                rounds.size(), rounds.size() == 1 ? "" : "s"));
        for (int r = 0; r < rounds.size(); r++) {
            Round round = rounds.get(r);
            for (Theirs t : round.theirs()) {
                LlamaBench.Figure any = t.figures().prefill();
                sb.append(String.format(Locale.ROOT, "    round %d: %s (build %s)%n", r + 1, t.binary(), any.buildCommit()));
                for (int w = 0; w < 3; w++) {
                    LlamaBench.Figure f = theirFigure(t.figures(), w);
                    if (f == null) {
                        if (w == 2 && round.kimivl().decodeLong() != null && round.kimivl().decodeLong().context() > 0) {
                            sb.append("      decode after a context: not measured (this llama-bench has neither -d nor -gp)\n");
                        }
                        continue;
                    }
                    double mine = kimivlFigure(round.kimivl(), w);
                    sb.append(String.format(Locale.ROOT, "      %-16s %8.2f ± %.2f   kimivl %8.2f   %.2fx%n", f.label(), f.avgTs(), f.stddevTs(), mine, mine / f.avgTs()));
                }
            }
        }
        if (first.decodeLong() != null && first.decodeLong().context() > 0) {
            sb.append(String.format(Locale.ROOT, "                    (their @%d context is a real prefill; kimivl's is %s)%n",
                    first.decodeLong().context(), first.decodeLong().fill().equals("prefill")
                            ? "a real prefill too (--context-fill prefill)" : "random latents written into its KV cache (--context-fill prefill makes it a real one)"));
        }
        sb.append("    commands: ");
        boolean firstCmd = true;
        for (Theirs t : rounds.getFirst().theirs()) {
            for (int w = 0; w < 3; w++) {
                LlamaBench.Figure f = theirFigure(t.figures(), w);
                if (f == null) continue;
                sb.append(firstCmd ? "" : "\n              ").append(t.binary()).append(' ').append(String.join(" ", f.args()));
                firstCmd = false;
            }
        }
        sb.append('\n');
        return sb.toString();
    }

    /** The side-by-side rounds as JSON: per round kimivl's three figures, and per binary its figures and the ratios. */
    public static ArrayNode json(List<Round> rounds, com.fasterxml.jackson.databind.ObjectMapper om) {
        ArrayNode a = om.createArrayNode();
        String[] names = {"prefill", "decode", "decodeLong"};
        for (Round round : rounds) {
            ObjectNode r = a.addObject();
            ObjectNode k = r.putObject("kimivl");
            for (int w = 0; w < 3; w++) {
                if (w > 0 && (w == 1 ? round.kimivl().decode() : round.kimivl().decodeLong()) == null) continue;
                k.put(names[w] + "TokPerSec", kimivlFigure(round.kimivl(), w));
            }
            ArrayNode theirs = r.putArray("llamaBench");
            for (Theirs t : round.theirs()) {
                ObjectNode o = theirs.addObject();
                o.put("binary", t.binary().toString());
                o.put("buildCommit", t.figures().prefill().buildCommit());
                o.put("cpuInfo", t.figures().prefill().cpuInfo());
                o.put("modelType", t.figures().prefill().modelType());
                for (int w = 0; w < 3; w++) {
                    LlamaBench.Figure f = theirFigure(t.figures(), w);
                    if (f == null) continue;
                    ObjectNode fo = o.putObject(names[w]);
                    fo.put("test", f.label());
                    fo.put("args", String.join(" ", f.args()));
                    fo.put("avgTs", f.avgTs());
                    fo.put("stddevTs", f.stddevTs());
                    fo.put("ratio", kimivlFigure(round.kimivl(), w) / f.avgTs());
                }
            }
        }
        return a;
    }
}
