package dev.kimivl.cli;

import dev.kimivl.model.KimiVL;
import dev.kimivl.server.CacheOptions;
import dev.kimivl.server.OpenAiServer;
import dev.kimivl.server.ServerDefaults;
import dev.kimivl.server.ServerOptions;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.net.InetAddress;
import java.time.Duration;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;

/** kimivl serve: the OpenAI-compatible HTTP API over one loaded model. */
@Command(name = "serve", mixinStandardHelpOptions = true,
        description = "Serve the model over an OpenAI-compatible API: GET /v1/models, POST /v1/chat/completions (images as data: URLs, "
                + "stream or not, a Thinking model's reasoning in reasoning_content), POST /v1/completions, GET /health, "
                + "GET /metrics (Prometheus). Errors are OpenAI error objects. SIGTERM lets running requests finish, then exits.")
final class ServeCommand implements Callable<Integer> {
    @picocli.CommandLine.Spec picocli.CommandLine.Model.CommandSpec spec;
    @Mixin ModelOption model;

    @Option(names = "--host", defaultValue = "127.0.0.1", description = "Address to bind (default ${DEFAULT-VALUE}: this machine only; 0.0.0.0 for every interface).")
    String host;

    @Option(names = {"-p", "--port"}, defaultValue = "8080", description = "Port (default ${DEFAULT-VALUE}).")
    int port;

    // the default comes from the environment so that the key need not appear in the process list; the
    // description must not print ${DEFAULT-VALUE}, which would show the key in --help
    @Option(names = "--api-key", paramLabel = "KEY", defaultValue = "${env:KIMIVL_API_KEY}",
            description = "Require 'Authorization: Bearer KEY' on /v1 requests (401 otherwise); default: $KIMIVL_API_KEY, else no key.")
    String apiKey;

    @Option(names = "--max-body-mb", defaultValue = "64", paramLabel = "MIB",
            description = "Largest request body in MiB (default ${DEFAULT-VALUE}); larger ones get 413. Images travel in base64, 4/3 of their size.")
    int maxBodyMb;

    @Option(names = "--queue", defaultValue = "32", paramLabel = "N",
            description = "Requests that may wait for their turn (default ${DEFAULT-VALUE}); more get 429 with Retry-After.")
    int queue;

    @Option(names = "--parallel", defaultValue = "4", paramLabel = "N",
            description = "Requests generating at once (default ${DEFAULT-VALUE}): their next tokens are decoded in one batched step "
                    + "(continuous batching; each weight read once per step for all); 1: one at a time, exactly as kimivl run.")
    int parallel;

    @Option(names = "--prefill-chunk", defaultValue = "256", paramLabel = "TOKENS",
            description = "With --parallel above 1, prompt tokens run between two decode steps, so that a new long prompt "
                    + "does not stall the running streams (default ${DEFAULT-VALUE}).")
    int prefillChunk;

    @Option(names = "--time-limit", defaultValue = "0", paramLabel = "S",
            description = "End a generation that runs longer than S seconds (from its turn, not its arrival) as max_tokens would: "
                    + "finish_reason length (default: no limit).")
    int timeLimit;

    @Option(names = "--drain-seconds", defaultValue = "60", paramLabel = "S",
            description = "On SIGTERM, wait at most this long for running requests to finish (default ${DEFAULT-VALUE}).")
    int drainSeconds;

    @Option(names = "--cache-mem", defaultValue = "1024", paramLabel = "MIB",
            description = "KV caches kept so that a prompt extending an earlier one (the next turn of a conversation, a shared "
                    + "system prompt) skips the shared part, in MiB (default ${DEFAULT-VALUE}; 0: off).")
    long cacheMb;

    @Option(names = "--image-cache-mem", defaultValue = "256", paramLabel = "MIB",
            description = "Vision features kept per image (by a hash of its pixels) so that an image sent again is not re-encoded, "
                    + "in MiB (default ${DEFAULT-VALUE}; 0: off).")
    long imageCacheMb;

    @Option(names = "--quiet", description = "No log line per request on stderr.")
    boolean quiet;

    @Option(names = "--name", description = "Model id reported to clients (default: the model's directory or file name).")
    String name;

    @Option(names = {"-n", "--max-tokens"}, defaultValue = "1024", description = "Default max_tokens (default ${DEFAULT-VALUE}).")
    int maxTokens;

    @Option(names = {"-t", "--temperature"}, defaultValue = "0.2", description = "Default temperature (default ${DEFAULT-VALUE}).")
    double temperature;

    @Option(names = "--ctx", paramLabel = "N", description = "Cap the context length at N tokens (default: the model's max_position_embeddings).")
    Integer ctx;

    @Option(names = "--media-dir", paramLabel = "DIR", description = "Let video_url/file parts name local files under DIR (repeatable; default: data: URLs only).")
    java.util.List<java.nio.file.Path> mediaDirs = new java.util.ArrayList<>();

    @Override
    public Integer call() throws Exception {
        if (apiKey != null && apiKey.isBlank()) {
            throw new IllegalArgumentException("--api-key is empty (given so, or from $KIMIVL_API_KEY): give a key, or leave both out to serve without one");
        }
        if (maxBodyMb < 1 || maxBodyMb > 2047) throw new IllegalArgumentException("--max-body-mb must be in 1..2047, got " + maxBodyMb);
        if (queue < 0) throw new IllegalArgumentException("--queue must be ≥ 0, got " + queue);
        if (timeLimit < 0) throw new IllegalArgumentException("--time-limit must be ≥ 0 seconds (0: none), got " + timeLimit);
        if (drainSeconds < 0) throw new IllegalArgumentException("--drain-seconds must be ≥ 0, got " + drainSeconds);
        if (cacheMb < 0 || imageCacheMb < 0) throw new IllegalArgumentException("--cache-mem and --image-cache-mem must be ≥ 0");
        if (parallel < 1 || parallel > ServerOptions.MAX_PARALLEL) throw new IllegalArgumentException("--parallel must be in 1.." + ServerOptions.MAX_PARALLEL + ", got " + parallel);
        if (prefillChunk < 1) throw new IllegalArgumentException("--prefill-chunk must be ≥ 1, got " + prefillChunk);
        // as run and chat: 0 or a negative cap was silently the model's whole context (issue 12)
        if (ctx != null && ctx < 1) throw Errors.usage(spec, "--ctx must be a positive number of tokens, not " + ctx);
        int contextCap = ctx != null ? ctx : 0;
        ServerOptions options = new ServerOptions(host, port, apiKey, maxBodyMb << 20, queue, timeLimit, parallel, prefillChunk);
        CacheOptions caches = new CacheOptions(cacheMb << 20, imageCacheMb << 20);
        dev.kimivl.server.MediaParts.allowDirectories(mediaDirs);
        OpenAiServer.checkCanBind(options);           // a busy port fails now, not after the model has loaded
        KimiVL m = model.open();
        String id = name != null ? name : m.dir().getFileName().toString();
        try (OpenAiServer server = new OpenAiServer(m, new ServerDefaults(id, maxTokens, temperature, contextCap), options, caches)) {
            server.logTo(quiet ? line -> {} : line -> System.err.println("kimivl serve: " + line));
            server.start();
            System.err.printf("kimivl serve: %s on http://%s:%d/v1 (context %d tokens, %d parallel, %s%s)%n", id,
                    host.contains(":") ? "[" + host + "]" : host, server.port(), m.contextLength(contextCap), parallel,
                    m.hasVision() ? "images accepted" : "text only", apiKey != null ? ", API key required" : "");
            if (apiKey == null && !InetAddress.getByName(host).isLoopbackAddress()) {
                System.err.println("kimivl serve: warning: listening beyond this machine without --api-key; anyone who can reach the port can use the model");
            }
            // SIGTERM (or Ctrl-C): running answers end whole, new requests get 503, then the JVM exits
            server.drainOnShutdown(Duration.ofSeconds(drainSeconds));
            new CountDownLatch(1).await();
        } finally {
            m.close();
        }
        return 0;
    }
}
