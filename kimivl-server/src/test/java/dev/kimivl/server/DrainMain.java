package dev.kimivl.server;

import java.time.Duration;

/**
 * A server process for {@link ServerOperationsTest}'s SIGTERM test: a {@link PacedEngine} of 30 words, 50 ms each,
 * draining on shutdown as {@code kimivl serve} does. Prints "port N" on stdout once it listens; logs on stderr.
 */
public final class DrainMain {
    public static void main(String[] args) throws Exception {
        OpenAiServer server = new OpenAiServer(new PacedEngine(30, 50, false), new ServerDefaults("paced", 1000, 0.0, 0), ServerOptions.local(0));
        server.logTo(line -> System.err.println("drain-main: " + line));
        server.drainOnShutdown(Duration.ofSeconds(30));
        server.start();
        System.out.println("port " + server.port());
        System.out.flush();
        Thread.sleep(Long.MAX_VALUE);
    }
}
