package dev.kimivl.cli;

import dev.kimivl.bench.LlamaBench;
import dev.kimivl.bench.ModelBench;
import dev.kimivl.bench.QuantMix;
import dev.kimivl.bench.RandomCheckpoint;
import dev.kimivl.bench.RandomGguf;
import dev.kimivl.bench.SideBySide;
import dev.kimivl.model.KvCache;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;

/**
 * kimivl bench: speed on a random-weight model with exactly the Kimi-VL-A3B shapes (generated once and cached):
 * load, prefill, decode (short and long context), MoonViT, peak RSS, and the share of the memory-bandwidth ceiling;
 * with --llama-bench, llama-bench on the same file in the same run ({@link SideBySide}).
 */
@Command(name = "bench", mixinStandardHelpOptions = true,
        description = {"Benchmark the full-size Kimi-VL-A3B shapes on random weights (generated once into the cache directory).",
                "Reports load time, prefill tok/s (512-token prompt), decode tok/s (128 tokens; and after a 4096-token context),",
                "MoonViT + projector time for one 896x896 image, peak RSS and the bandwidth ceiling.",
                "With --llama-bench PATH (repeatable), llama.cpp's / ik_llama.cpp's llama-bench runs on the same GGUF in the same run,",
                "alternating with kimivl, and the report gives the ratios kimivl / theirs; without it, it cites their figures measured",
                "on this machine kind (other runs, with machine and date)."})
public final class BenchCommand implements Callable<Integer> {
    @Option(names = "--type", defaultValue = "q4_0", description = "Weight format of the random model: q4_0, q8_0, or q4_k_m (llama.cpp's Q4_K_M mix, as the published GGUFs: Q4_K, with Q6_K/Q8_0/Q5_0 where llama-quantize puts them; GGUF only) (default ${DEFAULT-VALUE}). bf16 (32.8 GB) does not fit in RAM.")
    String type;

    @Option(names = "--threads", description = "Compute threads (default: the number of cores).")
    Integer threads;

    @Option(names = "--json", description = "Print one JSON object instead of the report.")
    boolean json;

    @Option(names = "--cache", description = "Where the random models are kept (default $KIMIVL_BENCH_CACHE or ~/.cache/kimivl/bench).")
    Path cache;

    @Option(names = "--prompt", defaultValue = "512", description = "Prompt tokens for the prefill measurement (default ${DEFAULT-VALUE}).")
    int prompt;

    @Option(names = "--gen", defaultValue = "128", description = "Tokens decoded per decode measurement (default ${DEFAULT-VALUE}).")
    int gen;

    @Option(names = "--context", defaultValue = "4096", split = ",", paramLabel = "N[,N...]",
            description = "Contexts before the long-context decodes, e.g. 4096,32768,131072 (default ${DEFAULT-VALUE}); each reports decode tok/s, the KV cache's bytes and the RSS. The first is the one --llama-bench compares (-d / -gp).")
    List<Integer> context;

    @Option(names = "--context-fill", defaultValue = "random", paramLabel = "random|prefill|tail",
            description = "How each context is made: random latents written into the KV cache (default; seconds even at 128K), a real chunked prefill of random tokens, timed (as llama-bench's -d / -gp; minutes at 8K on 2 cores), or tail: random latents, then the last prefill chunk as a real prefill, timed, with its transient memory (the largest chunk of a long prompt, in minutes even at 128K).")
    String contextFill;

    @Option(names = "--verify-rows", split = ",", paramLabel = "K[,K...]",
            description = "Also time a speculative-decoding verify pass of K tokens (forwardRows + logits) against a single decode step, e.g. 2,4,8.")
    List<Integer> verifyRows = new java.util.ArrayList<>();

    @Option(names = "--image", defaultValue = "896", description = "Side of the square image for the MoonViT measurement (default ${DEFAULT-VALUE}).")
    int image;

    @Option(names = "--no-vision", description = "Skip the MoonViT + projector measurement.")
    boolean noVision;

    @Option(names = "--no-text", description = "Skip the language-model measurements (prefill, decode).")
    boolean noText;

    @Option(names = "--bandwidth", defaultValue = "32", description = "Memory bandwidth in GB/s for the ceiling (default ${DEFAULT-VALUE}, this machine with 2 threads).")
    double bandwidth;

    @Option(names = "--profile", description = "Also report the time per phase of the forward pass.")
    boolean profile;

    @Option(names = "--generate-only", description = "Only make sure the random model exists in the cache.")
    boolean generateOnly;

    @Option(names = "--exact-matvec", description = "Use the exact float-activation Q8_0/Q4_0 matvec kernels instead of the integer ones (the CLI's default rounds activations to int8 blocks, as llama.cpp does).")
    boolean exactMatvec;

    @Option(names = "--kv-cache", paramLabel = "f16|bf16|f32", description = "How the KV cache stores the latents (default for these quantized weights: bf16 on CPUs with AVX512-BF16, where attention runs in vdpbf16ps, else f16 as llama.cpp).")
    String kvCache;

    @Option(names = "--llama-bench", paramLabel = "PATH", description = "A llama-bench binary (llama.cpp's or ik_llama.cpp's) to run on the same text GGUF in the same run, alternating with kimivl: prefill, decode and decode after --context (llama.cpp -d, ik_llama.cpp -gp), -o json, kimivl's thread count; the report gives kimivl / theirs per figure. Repeatable.")
    List<Path> llamaBench;

    @Option(names = "--rounds", defaultValue = "1", description = "With --llama-bench: rounds of kimivl then each llama-bench (default ${DEFAULT-VALUE}).")
    int rounds;

    @Option(names = "--format", defaultValue = "gguf", description = "Cache format: gguf (llama.cpp layout, loaded through the GGUF reader as users run it; default) or kvlb (kimivl's flat benchmark file).")
    String format;

    @Override
    public Integer call() throws Exception {
        if (threads != null) {
            if (threads < 1) throw new IllegalArgumentException("--threads must be at least 1");
            System.setProperty("kimivl.threads", String.valueOf(threads));   // read when the thread pool is first used
        }
        if (exactMatvec) System.setProperty("kimivl.intMatvec", "false");       // read when QuantMatrix is first used
        if (kvCache != null) System.setProperty("kimivl.kvCache", KvCache.Precision.parse(kvCache).name());   // read when KvCache is first used
        QuantMix t = QuantMix.parse(type);
        Path dir = cache != null ? cache : defaultCache();
        boolean gguf = switch (format) {
            case "gguf" -> true;
            case "kvlb" -> false;
            default -> throw new IllegalArgumentException("--format must be gguf or kvlb, not '" + format + "'");
        };
        if (generateOnly) {
            if (gguf) {
                for (Path f : RandomGguf.ensure(dir, t, RandomCheckpoint.defaultConfigJson(), 42, System.err)) System.out.println(f);
            } else {
                if (t.uniform() == null) throw new IllegalArgumentException("--format kvlb holds one block format (q4_0 or q8_0); " + t.label() + " exists as GGUF only");
                System.out.println(RandomCheckpoint.ensure(dir, t.uniform(), RandomCheckpoint.defaultConfigJson(), 42, System.err));
            }
            return 0;
        }
        if (prompt < 1 || gen < 1) throw new IllegalArgumentException("--prompt and --gen must be positive");
        ModelBench.Options o = new ModelBench.Options(t, dir, prompt, gen, context, ModelBench.ContextFill.parse(contextFill), verifyRows, image, !noVision, bandwidth, 42, profile, gguf, !noText);
        if (llamaBench != null && !llamaBench.isEmpty()) {
            if (!gguf) throw new IllegalArgumentException("--llama-bench needs --format gguf (llama.cpp reads GGUF files)");
            if (noText) throw new IllegalArgumentException("--llama-bench compares prefill and decode: drop --no-text");
            if (rounds < 1) throw new IllegalArgumentException("--rounds must be at least 1");
            // every binary checked before minutes of generating or benchmarking
            List<LlamaBench> others = llamaBench.stream().map(LlamaBench::probe).toList();
            Path text = RandomGguf.ensure(dir, t, RandomCheckpoint.defaultConfigJson(), 42, true, System.err)[0];
            List<SideBySide.Round> rs = SideBySide.run(() -> ModelBench.run(o, System.err), others, text, prompt, gen, o.longContext(), rounds, System.err);
            ModelBench.Result r = rs.getLast().kimivl();
            System.out.print(json ? ModelBench.json(r, rs) + System.lineSeparator() : ModelBench.text(r, rs));
            return 0;
        }
        ModelBench.Result r = ModelBench.run(o, System.err);
        System.out.print(json ? ModelBench.json(r) + System.lineSeparator() : ModelBench.text(r));
        return 0;
    }

    /** Runs the command on its own (before it is registered in {@link Main}): java ... dev.kimivl.cli.BenchCommand [options]. */
    public static void main(String[] args) {
        picocli.CommandLine cl = Main.commandLine();
        if (!cl.getSubcommands().containsKey("bench")) cl.addSubcommand("bench", new BenchCommand());
        String[] all = new String[args.length + 1];
        all[0] = "bench";
        System.arraycopy(args, 0, all, 1, args.length);
        System.exit(cl.execute(all));
    }

    static Path defaultCache() {
        String env = System.getenv("KIMIVL_BENCH_CACHE");
        if (env != null && !env.isBlank()) return Path.of(env);
        return Path.of(System.getProperty("user.home"), ".cache", "kimivl", "bench");
    }
}
