package dev.kimivl.cli;

import dev.kimivl.model.KimiVL;
import dev.kimivl.server.OpenAiServer;
import dev.kimivl.server.ServerDefaults;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;

/** kimivl serve: the OpenAI-compatible HTTP API over one loaded model. */
@Command(name = "serve", mixinStandardHelpOptions = true,
        description = "Serve the model over an OpenAI-compatible API: GET /v1/models, POST /v1/chat/completions (images as data: URLs, stream or not).")
final class ServeCommand implements Callable<Integer> {
    @Mixin ModelOption model;

    @Option(names = "--host", defaultValue = "127.0.0.1", description = "Address to bind (default ${DEFAULT-VALUE}; 0.0.0.0 for every interface).")
    String host;

    @Option(names = {"-p", "--port"}, defaultValue = "8080", description = "Port (default ${DEFAULT-VALUE}).")
    int port;

    @Option(names = "--name", description = "Model id reported to clients (default: the model's directory or file name).")
    String name;

    @Option(names = {"-n", "--max-tokens"}, defaultValue = "1024", description = "Default max_tokens (default ${DEFAULT-VALUE}).")
    int maxTokens;

    @Option(names = {"-t", "--temperature"}, defaultValue = "0.2", description = "Default temperature (default ${DEFAULT-VALUE}).")
    double temperature;

    @Option(names = "--ctx", defaultValue = "0", description = "Cap the context length (default: the model's max_position_embeddings).")
    int ctx;

    @Override
    public Integer call() throws Exception {
        KimiVL m = model.open();
        String id = name != null ? name : m.dir().getFileName().toString();
        try (OpenAiServer server = new OpenAiServer(m, new ServerDefaults(id, maxTokens, temperature, ctx), host, port)) {
            server.start();
            System.err.printf("kimivl serve: %s on http://%s:%d/v1 (context %d tokens, %s)%n", id, host, server.port(),
                    m.contextLength(ctx), m.hasVision() ? "images accepted" : "text only");
            CountDownLatch stop = new CountDownLatch(1);
            Runtime.getRuntime().addShutdownHook(new Thread(stop::countDown));
            stop.await();
        } finally {
            m.close();
        }
        return 0;
    }
}
