package dev.kimivl.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.TimeUnit;

/**
 * One {@code llama-bench} binary (llama.cpp's or ik_llama.cpp's) run on the bench's own GGUF file, for
 * {@code kimivl bench --llama-bench PATH}. Each figure is one invocation with {@code -o json} on stdout:
 * prefill {@code -p P -n 0}, decode {@code -p 0 -n G}, and decode after a context where the binary has a way to
 * make one by a real prefill: llama.cpp's {@code -d C} (row n_prompt 0, n_gen G, n_depth C) or ik_llama.cpp's
 * {@code -gp C,G} (row n_prompt C, n_gen G; its tok/s count only the generated tokens). The flags are found in the
 * binary's {@code --help}; ik_llama.cpp also gets {@code -rtr 1} (run-time repacking, its fastest CPU layout).
 * {@code -r 1}: one timed repetition after llama-bench's own warm-up run, as kimivl measures once after a warm-up;
 * repeat with {@code --rounds}.
 */
public final class LlamaBench {
    /** How the binary measures decode after a context. */
    public enum Depth { FLAG_D, GP, NONE }

    /** One measured figure: the llama-bench arguments, its row's avg_ts / stddev_ts, and the row's build_commit. */
    public record Figure(String label, List<String> args, double avgTs, double stddevTs, String buildCommit, String cpuInfo, String modelType) {}

    /** The figures of one invocation set; depth is null where the binary has no depth flag or context is 0. */
    public record Figures(Figure prefill, Figure decode, Figure depth) {}

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final long HELP_TIMEOUT_S = 60;

    private final Path binary;
    private final Depth depth;
    private final boolean runTimeRepack;

    private LlamaBench(Path binary, Depth depth, boolean runTimeRepack) {
        this.binary = binary;
        this.depth = depth;
        this.runTimeRepack = runTimeRepack;
    }

    public Path binary() { return binary; }

    public Depth depthMode() { return depth; }

    public boolean runTimeRepack() { return runTimeRepack; }

    /**
     * Checks that {@code binary} is an executable file and reads its flags from {@code --help}; a clear
     * IllegalArgumentException naming the path otherwise.
     */
    public static LlamaBench probe(Path binary) {
        if (!Files.exists(binary)) throw new IllegalArgumentException("--llama-bench " + binary + ": no such file");
        if (!Files.isRegularFile(binary)) throw new IllegalArgumentException("--llama-bench " + binary + ": not a regular file");
        if (!Files.isExecutable(binary)) throw new IllegalArgumentException("--llama-bench " + binary + ": not executable (chmod +x " + binary + ")");
        Output help = exec(binary, List.of("--help"), HELP_TIMEOUT_S);
        String text = help.stdout + "\n" + help.stderr;
        if (help.exitCode != 0 || !text.contains("-p, --n-prompt")) {
            throw new IllegalArgumentException("--llama-bench " + binary + ": `--help` " + (help.exitCode != 0 ? "exited with status " + help.exitCode : "does not list -p, --n-prompt")
                    + ", so this is not llama-bench" + lastLine(help.stderr, "; last stderr line: "));
        }
        Depth d = text.contains("--n-depth") ? Depth.FLAG_D : text.contains("-gp <pp,tg>") ? Depth.GP : Depth.NONE;
        return new LlamaBench(binary, d, text.contains("--run-time-repack"));
    }

    /**
     * Runs the figures on {@code model} with {@code threads} threads: prefill of {@code prompt} tokens, decode of
     * {@code gen}, and (context > 0, a depth flag known) decode of {@code gen} after {@code context} tokens.
     */
    public Figures run(Path model, int threads, int prompt, int gen, int context, PrintStream log) {
        Figure pp = figure(model, threads, "pp" + prompt, List.of("-p", String.valueOf(prompt), "-n", "0"), prompt, 0, 0, log);
        Figure tg = figure(model, threads, "tg" + gen, List.of("-p", "0", "-n", String.valueOf(gen)), 0, gen, 0, log);
        Figure dp = null;
        if (context > 0) {
            dp = switch (depth) {
                case FLAG_D -> figure(model, threads, "tg" + gen + " @ " + context, List.of("-p", "0", "-n", String.valueOf(gen), "-d", String.valueOf(context)), 0, gen, context, log);
                case GP -> figure(model, threads, "tg" + gen + " @ " + context, List.of("-p", "0", "-n", "0", "-gp", context + "," + gen), context, gen, -1, log);
                case NONE -> null;
            };
        }
        return new Figures(pp, tg, dp);
    }

    /** The full argument list of one invocation (what the report prints). */
    List<String> args(Path model, int threads, List<String> test) {
        List<String> a = new ArrayList<>(List.of("-m", model.toString(), "-t", String.valueOf(threads)));
        if (runTimeRepack) a.addAll(List.of("-rtr", "1"));
        a.addAll(test);
        a.addAll(List.of("-r", "1", "-o", "json"));
        return a;
    }

    /** nDepth -1: the row has no n_depth to check (ik_llama.cpp's -gp rows carry the context in n_prompt). */
    private Figure figure(Path model, int threads, String label, List<String> test, int nPrompt, int nGen, int nDepth, PrintStream log) {
        List<String> args = args(model, threads, test);
        if (log != null) log.printf(Locale.ROOT, "%s %s%n", binary, String.join(" ", args));
        Output out = exec(binary, args, 0);
        if (out.exitCode != 0) {
            throw new IllegalStateException("--llama-bench " + binary + " exited with status " + out.exitCode + " (" + String.join(" ", args) + ")"
                    + lastLine(out.stderr, ": last stderr line: "));
        }
        JsonNode rows;
        String json = jsonLines(out.stdout);
        if (json.isBlank()) throw unparsable(args, out, "no JSON on stdout (" + out.stdout.lines().count() + " other lines)");
        try {
            rows = JSON.readTree(json);
        } catch (IOException e) {
            throw unparsable(args, out, "not JSON (" + e.getMessage().lines().findFirst().orElse("") + ")");
        }
        if (rows == null || !rows.isArray()) throw unparsable(args, out, "not a JSON array of test rows");
        for (JsonNode row : rows) {
            if (!row.isObject()) throw unparsable(args, out, "a row is not an object");
            for (String f : new String[]{"n_prompt", "n_gen", "avg_ts"}) {
                if (!row.path(f).isNumber()) throw unparsable(args, out, "a row has no number \"" + f + "\"");
            }
            if (row.get("n_prompt").asInt() != nPrompt || row.get("n_gen").asInt() != nGen) continue;
            if (nDepth >= 0 && row.path("n_depth").asInt(0) != nDepth) continue;
            return new Figure(label, args, row.get("avg_ts").asDouble(), row.path("stddev_ts").asDouble(0),
                    row.path("build_commit").asText("?"), row.path("cpu_info").asText(""), row.path("model_type").asText(""));
        }
        throw unparsable(args, out, "no row with n_prompt " + nPrompt + ", n_gen " + nGen + (nDepth >= 0 ? ", n_depth " + nDepth : "") + " among " + rows.size());
    }

    /**
     * The lines of llama-bench's stdout that its JSON printer writes ({@code [}, {@code ]}, {@code {}, {@code }},
     * {@code "key": value}): other lines are dropped, because ggml itself prints warnings to stdout in the middle of
     * the JSON (ik_llama.cpp: "WARNING: Behavior may be unexpected when allocating 0 bytes for ggml_calloc!" right
     * after the opening bracket).
     */
    static String jsonLines(String stdout) {
        StringBuilder sb = new StringBuilder();
        for (String line : stdout.split("\n", -1)) {
            String t = line.strip();
            if (!t.isEmpty() && "[]{}\"".indexOf(t.charAt(0)) >= 0) sb.append(line).append('\n');
        }
        return sb.toString();
    }

    private IllegalStateException unparsable(List<String> args, Output out, String why) {
        return new IllegalStateException("--llama-bench " + binary + ": cannot read its output (" + String.join(" ", args) + "): " + why
                + lastLine(out.stderr, "; last stderr line: "));
    }

    private static String lastLine(String s, String prefix) {
        List<String> lines = s.lines().filter(l -> !l.isBlank()).toList();
        return lines.isEmpty() ? prefix + "(none)" : prefix + lines.getLast().strip();
    }

    private record Output(int exitCode, String stdout, String stderr) {}

    /** Runs binary with args, stdout and stderr to temporary files (no pipe to fill); timeoutS 0: no limit. */
    private static Output exec(Path binary, List<String> args, long timeoutS) {
        List<String> cmd = new ArrayList<>();
        cmd.add(binary.toString());
        cmd.addAll(args);
        Path out = null, err = null;
        try {
            out = Files.createTempFile("kimivl-llama-bench-", ".out");
            err = Files.createTempFile("kimivl-llama-bench-", ".err");
            Process p = new ProcessBuilder(cmd).redirectOutput(out.toFile()).redirectError(err.toFile())
                    .redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null"))).start();
            boolean done;
            if (timeoutS > 0) done = p.waitFor(timeoutS, TimeUnit.SECONDS);
            else { p.waitFor(); done = true; }
            if (!done) {
                p.destroyForcibly();
                throw new IllegalStateException("--llama-bench " + binary + ": `" + String.join(" ", args) + "` did not finish in " + timeoutS + " s");
            }
            return new Output(p.exitValue(), new String(Files.readAllBytes(out), StandardCharsets.UTF_8), new String(Files.readAllBytes(err), StandardCharsets.UTF_8));
        } catch (IOException e) {
            throw new IllegalArgumentException("--llama-bench " + binary + ": cannot run it: " + e.getMessage(), e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("--llama-bench " + binary + ": interrupted", e);
        } finally {
            try {
                if (out != null) Files.deleteIfExists(out);
                if (err != null) Files.deleteIfExists(err);
            } catch (IOException ignored) { }
        }
    }
}
