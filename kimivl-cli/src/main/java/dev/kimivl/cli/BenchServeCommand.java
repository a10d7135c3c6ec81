package dev.kimivl.cli;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.kimivl.model.KimiVL;
import dev.kimivl.server.CacheOptions;
import dev.kimivl.server.LoadGenerator;
import dev.kimivl.server.OpenAiServer;
import dev.kimivl.server.ServerDefaults;
import dev.kimivl.server.ServerOptions;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Base64;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;

/**
 * kimivl bench-serve: C concurrent streaming clients against an OpenAI-compatible server (this one or any other),
 * reporting aggregate tokens/s, time to first token, per-token latency and request latency (p50/p95) per level.
 */
@Command(name = "bench-serve", mixinStandardHelpOptions = true,
        description = "Load-test a server over HTTP: for each concurrency C, C streaming clients send chat requests back to back; "
                + "prints tokens/s of all clients together, time to first token, per-token latency and request latency (p50/p95). "
                + "Without --url it serves --model itself on a loopback port.")
final class BenchServeCommand implements Callable<Integer> {
    @Mixin ModelOption model;

    @Option(names = "--url", paramLabel = "URL", description = "The server, e.g. http://127.0.0.1:8080 (default: serve --model in this process).")
    String url;

    @Option(names = {"-c", "--concurrency"}, split = ",", defaultValue = "1,2,4,8", paramLabel = "C,...",
            description = "Concurrent clients per level (default ${DEFAULT-VALUE}).")
    List<Integer> concurrency;

    @Option(names = "--rounds", defaultValue = "2", paramLabel = "R",
            description = "Requests per client per level: C × R requests (default ${DEFAULT-VALUE}).")
    int rounds;

    @Option(names = {"-n", "--max-tokens"}, defaultValue = "64", description = "max_tokens of each request (default ${DEFAULT-VALUE}).")
    int maxTokens;

    @Option(names = {"-p", "--prompt"}, defaultValue = "Write a short story about a red circle and a blue square.",
            description = "The user message (each request's is prefixed with its number).")
    String prompt;

    @Option(names = "--image", paramLabel = "FILE", description = "Send this image with every request (as a data: URL).")
    Path image;

    @Option(names = "--api-key", paramLabel = "KEY", defaultValue = "${env:KIMIVL_API_KEY}",
            description = "Sent as 'Authorization: Bearer KEY' (default: $KIMIVL_API_KEY, else none).")
    String apiKey;

    @Option(names = "--timeout-seconds", defaultValue = "600", description = "Per-request time limit (default ${DEFAULT-VALUE}).")
    int timeoutSeconds;

    @Option(names = "--parallel", defaultValue = "4", paramLabel = "N",
            description = "Without --url: the in-process server's --parallel (default ${DEFAULT-VALUE}; 1: one request at a time).")
    int parallel;

    @Option(names = "--ignore-eos", description = "Ask for exactly --max-tokens tokens per answer (ignore_eos, as vLLM and llama.cpp "
            + "accept): answers of equal length, so that levels compare.")
    boolean ignoreEos;

    @Option(names = "--no-warmup", description = "Skip the one request sent before measuring (it compiles the hot code paths).")
    boolean noWarmup;

    @Override
    public Integer call() throws Exception {
        if (rounds < 1) throw new IllegalArgumentException("--rounds must be ≥ 1, got " + rounds);
        if (maxTokens < 1) throw new IllegalArgumentException("--max-tokens must be ≥ 1, got " + maxTokens);
        for (int c : concurrency) if (c < 1 || c > 1024) throw new IllegalArgumentException("--concurrency values must be in 1..1024, got " + c);
        ObjectNode body = LoadGenerator.chatBody(prompt, maxTokens);
        if (ignoreEos) body.put("ignore_eos", true);
        if (image != null) {
            if (!Files.isRegularFile(image)) throw new IllegalArgumentException("--image " + image + ": no such file");
            String mime = image.toString().toLowerCase(Locale.ROOT).endsWith(".png") ? "image/png" : "image/jpeg";
            ObjectNode msg = (ObjectNode) body.withArray("messages").get(0);
            ArrayNode parts = msg.putArray("content");
            parts.addObject().put("type", "image_url").putObject("image_url")
                    .put("url", "data:" + mime + ";base64," + Base64.getEncoder().encodeToString(Files.readAllBytes(image)));
            parts.addObject().put("type", "text").put("text", prompt);
        }
        if (url != null) return bench(url.replaceAll("/+$", "").replaceAll("/v1$", ""), body);
        int maxC = concurrency.stream().mapToInt(Integer::intValue).max().orElse(1);
        try (KimiVL m = model.open();
             OpenAiServer server = new OpenAiServer(m, new ServerDefaults(m.dir().getFileName().toString(), maxTokens, 0, 0),
                     ServerOptions.local(0).withQueue(maxC).withParallel(parallel, ServerOptions.DEFAULT_PREFILL_CHUNK), CacheOptions.DEFAULT)) {
            server.start();
            System.out.printf("serving %s on 127.0.0.1:%d for the benchmark (--parallel %d)%n", m.dir(), server.port(), parallel);
            return bench("http://127.0.0.1:" + server.port(), body);
        }
    }

    private int bench(String base, ObjectNode body) throws InterruptedException {
        LoadGenerator gen = new LoadGenerator(base, apiKey == null || apiKey.isBlank() ? null : apiKey, body, Duration.ofSeconds(timeoutSeconds));
        if (!noWarmup) {
            LoadGenerator.Level w = gen.run(1, 1);
            if (!w.failures().isEmpty()) throw new IllegalStateException("the warm-up request failed: " + w.failures().getFirst());
        }
        System.out.println(LoadGenerator.Level.header());
        double base1 = Double.NaN;
        boolean failed = false;
        for (int c : concurrency) {
            LoadGenerator.Level level = gen.run(c, c * rounds);
            if (Double.isNaN(base1) && c == 1) base1 = level.tokensPerSecond();
            System.out.println(level.row() + (Double.isNaN(base1) || c == 1 ? "" : String.format(Locale.ROOT, "   %.2fx C=1", level.tokensPerSecond() / base1)));
            if (!level.failures().isEmpty()) {
                failed = true;
                System.out.println("     failures: " + level.failures().stream().distinct().limit(3).toList());
            }
        }
        return failed ? 1 : 0;
    }
}
