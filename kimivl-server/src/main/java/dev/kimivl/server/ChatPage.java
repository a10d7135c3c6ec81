package dev.kimivl.server;

import com.sun.net.httpserver.HttpExchange;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;

/**
 * The chat page at {@code /}: one self-contained HTML file ({@code chat.html}: conversations kept in the browser's
 * localStorage, images by picker, paste or drag-and-drop, streamed markdown, a Thinking model's reasoning in a
 * collapsible block, a stop button) that talks to this server's {@code /v1/chat/completions}. Its
 * Content-Security-Policy lets it load nothing from anywhere else, so it works offline and a model's answer cannot
 * pull in remote content.
 */
final class ChatPage {
    private static final byte[] HTML = load();

    /** Everything inline or from this server; images only as data:/blob: URLs (the attached ones). */
    static final String CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
            + "img-src data: blob:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

    private ChatPage() {}

    static void serve(HttpExchange ex) throws IOException {
        var h = ex.getResponseHeaders();
        h.set("Content-Type", "text/html; charset=utf-8");
        h.set("Content-Security-Policy", CSP);
        h.set("Cache-Control", "no-cache");
        h.set("X-Content-Type-Options", "nosniff");
        if (ex.getRequestMethod().equals("HEAD")) {
            ex.sendResponseHeaders(200, -1);
            return;
        }
        ex.sendResponseHeaders(200, HTML.length);
        try (OutputStream out = ex.getResponseBody()) {
            out.write(HTML);
        }
    }

    private static byte[] load() {
        try (InputStream in = ChatPage.class.getResourceAsStream("chat.html")) {
            if (in == null) throw new IllegalStateException("chat.html is missing from the kimivl-server jar");
            return in.readAllBytes();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
