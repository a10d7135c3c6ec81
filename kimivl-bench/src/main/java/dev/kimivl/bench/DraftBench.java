package dev.kimivl.bench;

import dev.kimivl.generate.CachedGenerator;
import dev.kimivl.generate.Decoding;
import dev.kimivl.generate.GenerationOptions;
import dev.kimivl.generate.Generator;
import dev.kimivl.generate.SamplingParams;
import dev.kimivl.generate.Speculative;
import dev.kimivl.model.KimiVL;
import dev.kimivl.text.ChatMessage;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Prompt-lookup drafting (docs/speculative.md) measured: decode tokens/s without drafting, with the adaptive policy
 * ({@code --draft ngram}, the default) and with every draft verified ({@code ngram}, policy off), on three copy-heavy
 * tasks and one where drafts miss. The modes alternate within each repetition, in a rotating order; the table gives
 * the median of the repetitions, the acceptance of verified drafts and the speed-up over no drafting. Greedy with the
 * stop tokens masked (every answer is max tokens long), so every mode must produce the same tokens (checked: a
 * difference is an error).
 *
 * <pre>java --add-modules jdk.incubator.vector -cp ... dev.kimivl.bench.DraftBench models/kimivl-nano-instruct [reps] [maxTokens]</pre>
 */
public final class DraftBench {
    private DraftBench() {}

    static final String PASSAGE = "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of "
            + "foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the season of Light, it was the "
            + "season of Darkness, it was the spring of hope, it was the winter of despair, we had everything before us, we had "
            + "nothing before us, we were all going direct to Heaven, we were all going direct the other way.";
    static final String CODE = """
            def total_price(items, tax):
                total = 0
                for item in items:
                    total = total + item.price * item.count
                total = total * (1 + tax)
                return round(total, 2)
            """;
    static final String DOCUMENT = "The red box is on the left of the table. The blue ball is inside the red box. The green "
            + "cube is next to the yellow cup on the right of the table. The yellow cup holds three pencils and a small white "
            + "ruler. The black cat sleeps under the table next to a round grey stone.";

    /**
     * Greedy for the copy tasks; the miss task samples at temperature 1 (seeded: the same tokens in every mode), since
     * these small models fall into loops under greedy decoding past their answer, which drafts would predict.
     */
    static SamplingParams params(String task, int max) {
        return task.equals("miss") ? new SamplingParams(1.0, 0, 1, 0, 1, 42, max, List.of()) : SamplingParams.greedy(max);
    }

    /** name → user message. The first three copy text from the prompt; the last has nothing to copy. */
    static Map<String, String> tasks() {
        Map<String, String> t = new LinkedHashMap<>();
        t.put("quote", "Quote this passage word for word:\n\n" + PASSAGE);
        t.put("code-edit", "Rename the variable total to subtotal in this function and give back the whole function:\n\n" + CODE);
        t.put("doc-qa", "Document: " + DOCUMENT + "\n\nWhat is inside the red box, and what is next to the yellow cup? Answer with sentences from the document.");
        t.put("miss", "Tell a new story about a dragon who learns to paint.");
        return t;
    }

    public static void main(String[] args) {
        if (args.length < 1) {
            System.err.println("usage: DraftBench MODEL_DIR [repetitions=5] [max tokens=128]");
            System.exit(2);
        }
        Path dir = Path.of(args[0]);
        int reps = args.length > 1 ? Integer.parseInt(args[1]) : 5;
        int max = args.length > 2 ? Integer.parseInt(args[2]) : 128;
        Speculative[] modes = {Speculative.NONE, Speculative.NGRAM, Speculative.NGRAM.always()};
        String[] names = {"none", "ngram", "ngram-always"};
        try (KimiVL m = KimiVL.open(dir)) {
            System.out.printf(Locale.ROOT, "model %s, greedy (miss: sampled), %d new tokens, %d repetitions (median), %d threads%n",
                    dir, max, reps, dev.kimivl.tensor.Parallel.THREADS);
            System.out.printf(Locale.ROOT, "%-10s %6s %6s | %9s %9s %9s | %8s %8s | %7s %7s%n", "task", "prompt", "tokens",
                    "none t/s", "ngram t/s", "always", "acc(ng)", "acc(alw)", "x ngram", "x alw");
            for (Map.Entry<String, String> task : tasks().entrySet()) {
                KimiVL.Prompt p = m.prompt(List.of(ChatMessage.user(task.getValue())), List.of());
                double[][] speed = new double[modes.length][reps], cpuSpeed = new double[modes.length][reps];
                Speculative.Stats[] last = new Speculative.Stats[modes.length];
                int[] reference = null;
                // one untimed round first: JIT warm-up of every path
                for (int rep = -1; rep < reps; rep++) {
                    for (int j = 0; j < modes.length; j++) {
                        int i = Math.floorMod(j + rep, modes.length);      // the order rotates: no mode always runs first
                        Speculative.Stats[] st = new Speculative.Stats[1];
                        CachedGenerator g = new CachedGenerator(m.languageModel(), m.tokenizer()).drafting(modes[i], s -> st[0] = s);
                        // answers of a fixed length (stop tokens masked, as llama-bench's tg), on a fresh cache; a
                        // fresh copy of the embeddings: prefill consumes what it is given
                        Decoding d = g.decoding(p.ids(), params(task.getKey(), max), GenerationOptions.NONE, null, null).ignoreStopTokens();
                        long c0 = CPU.getCurrentThreadCpuTime();
                        Generator.Result r = g.generate(m.languageModel().newCache(p.ids().length + max + 1), p.embeddings().clone(), p.ids(), d);
                        double cpu = (CPU.getCurrentThreadCpuTime() - c0) / 1e9;
                        // the prompt's share: the same generation stopped after its first token
                        long c1 = CPU.getCurrentThreadCpuTime();
                        new CachedGenerator(m.languageModel(), m.tokenizer()).generate(m.languageModel().newCache(p.ids().length + 2),
                                p.embeddings().clone(), p.ids(), SamplingParams.greedy(1), null, null);
                        double prompt = (CPU.getCurrentThreadCpuTime() - c1) / 1e9;
                        if (rep >= 0) cpuSpeed[i][rep] = (r.tokens().length - 1) / Math.max(1e-9, cpu - prompt);
                        if (reference == null) reference = r.tokens();
                        else if (!Arrays.equals(reference, r.tokens())) {
                            throw new IllegalStateException(task.getKey() + ": " + names[i] + " generated other tokens than drafting off");
                        }
                        if (rep >= 0) speed[i][rep] = r.decodeTokensPerSecond();
                        last[i] = st[0];
                    }
                }
                double[] med = new double[modes.length];
                for (int i = 0; i < modes.length; i++) med[i] = median(speed[i]);
                System.out.printf(Locale.ROOT, "%-10s %6d %6d | %9.1f %9.1f %9.1f | %7.0f%% %7.0f%% | %6.2fx %6.2fx%n",
                        task.getKey(), p.ids().length, reference.length, med[0], med[1], med[2],
                        pct(last[1]), pct(last[2]), med[1] / med[0], med[2] / med[0]);
                for (int i = 1; i < modes.length; i++) if (last[i] != null) System.out.println("    " + names[i] + ": " + last[i]);
                double[] cmed = new double[modes.length];
                for (int i = 0; i < modes.length; i++) cmed[i] = median(cpuSpeed[i]);
                System.out.printf(Locale.ROOT, "    by CPU time: none %.1f, ngram %.1f, always %.1f tok/s: %.2fx, %.2fx%n",
                        cmed[0], cmed[1], cmed[2], cmed[1] / cmed[0], cmed[2] / cmed[0]);
                List<String> all = new ArrayList<>();
                for (int i = 0; i < modes.length; i++) all.add(names[i] + " " + Arrays.toString(Arrays.stream(speed[i]).mapToObj(v -> String.format(Locale.ROOT, "%.1f", v)).toArray()));
                System.out.println("    runs: " + String.join("; ", all));
            }
        }
    }

    /**
     * CPU time of the generating thread: with -Dkimivl.threads=1 every kernel runs on it, so this is the work done,
     * much less disturbed than wall time on a loaded machine.
     */
    private static final java.lang.management.ThreadMXBean CPU = java.lang.management.ManagementFactory.getThreadMXBean();

    private static double pct(Speculative.Stats s) { return s == null ? 0 : 100 * s.acceptanceRate(); }

    private static double median(double[] v) {
        double[] s = v.clone();
        Arrays.sort(s);
        return s.length % 2 == 1 ? s[s.length / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
    }
}
