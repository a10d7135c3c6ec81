package dev.kimivl.server;

import com.fasterxml.jackson.databind.JsonNode;
import dev.kimivl.media.FrameSampling;
import dev.kimivl.media.MediaException;
import dev.kimivl.media.MediaMessages;
import dev.kimivl.media.PageRange;
import dev.kimivl.media.PdfDocument;
import dev.kimivl.media.Video;
import dev.kimivl.model.KimiVL;
import dev.kimivl.vision.ImageLoader;

import java.io.IOException;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;

/**
 * The {@code video_url} and {@code file} content parts of a chat request (docs/long-inputs.md): a video sampled to
 * frames or a PDF rendered to pages, each frame or page an image part with its label ("Frame at 00:03:",
 * "Page 2:") before it, sized, labelled and decoded by kimivl-media's {@link MediaMessages} exactly as
 * {@code kimivl run --video/--pdf} does.
 *
 * <pre>
 * {"type": "video_url", "video_url": {"url": "data:video/mp4;base64,...", "fps": 1, "frames": 8, "max_frames": 64,
 *                                     "frame_tokens": 256, "timestamps": true}}
 * {"type": "file", "file": {"file_data": "data:application/pdf;base64,...", "filename": "report.pdf",
 *                           "pages": "2-5", "dpi": 144, "page_tokens": 512}}
 * </pre>
 * A {@code url} (or {@code file_data}) may also be a local path or file: URL, but only under a directory the server
 * was started with ({@code kimivl serve --media-dir DIR}); nothing is fetched from the network. A {@code file} part
 * holds a PDF or a video (told apart by its bytes).
 *
 * <p>Two steps: {@link #item} (while the request is parsed, without the model) checks the fields, that the bytes are
 * a video or a PDF and the page range, and gives the part as a {@link MediaMessages.Item}; {@link #size} (once the
 * model is known) sizes the whole conversation to the context as {@code kimivl run} does: the frames' budget is
 * lowered when {@code frame_tokens} would not fit (a note in the server's log), and what does not fit even at
 * {@link MediaMessages#MIN_FRAME_TOKENS} tokens a frame, or pages that do not fit, is a 400
 * {@code context_length_exceeded} naming frames or pages, tokens and context. Nothing is cut.
 */
public final class MediaParts {
    private static volatile List<Path> allowedDirs = List.of();

    /** The request's field names (and the serve option for the context) in the advice of errors and notes. */
    static final MediaMessages.Knobs KNOBS = new MediaMessages.Knobs("frames", "fps", "max_frames", "frame_tokens",
            "pages", "dpi", "page_tokens", "context (kimivl serve --ctx)");

    private MediaParts() {}

    /** Directories whose files (after resolving links) video_url/file parts may name; empty: local paths are refused. */
    public static void allowDirectories(List<Path> dirs) {
        List<Path> real = new ArrayList<>();
        for (Path d : dirs) {
            try {
                real.add(d.toRealPath());
            } catch (IOException e) {
                throw new IllegalArgumentException("--media-dir " + d + ": no such directory");
            }
            if (!Files.isDirectory(real.getLast())) throw new IllegalArgumentException("--media-dir " + d + ": not a directory");
        }
        allowedDirs = List.copyOf(real);
    }

    /**
     * One part (type video_url or file), checked: a {@link MediaMessages.Clip} or {@link MediaMessages.Pdf} over the
     * part's bytes, named by the part's field ({@code messages[0].content[1].video_url}, a PDF's filename after it),
     * so that errors and notes name it. Nothing is decoded yet.
     */
    static MediaMessages.Item item(JsonNode part, String where, String type, ImageLoader loader) {
        String pw = where + "." + type;
        JsonNode o = part.get(type);
        if (o == null || !o.isObject()) {
            throw ApiError.wrongType(pw, type.equals("file") ? "an object {\"file_data\": \"data:application/pdf;base64,...\"}" : "an object {\"url\": \"data:video/mp4;base64,...\"}", o);
        }
        if (o.hasNonNull("file_id")) throw ApiError.unsupported(pw + ".file_id", "uploaded file ids (send file_data)");
        String field = o.has("file_data") ? "file_data" : "url";
        JsonNode u = o.get(field);
        if (u == null || !u.isTextual()) throw ApiError.wrongType(pw + "." + field, "a string (a data: URL, or a path under --media-dir)", u);
        byte[] bytes = read(u.asText(), pw + "." + field);
        boolean pdf = bytes.length >= 5 && new String(bytes, 0, 5, java.nio.charset.StandardCharsets.ISO_8859_1).equals("%PDF-");
        try {
            return pdf ? pages(o, pw, bytes) : frames(o, pw, bytes, loader);
        } catch (MediaException e) {
            throw ApiError.invalid(e.getMessage(), pw);
        }
    }

    private static MediaMessages.Clip frames(JsonNode o, String pw, byte[] bytes, ImageLoader loader) {
        int maxFrames = integer(o, "max_frames", 64, 1, 1024, pw);
        int frameTokens = integer(o, "frame_tokens", 256, MediaMessages.MIN_FRAME_TOKENS, 1 << 16, pw);
        boolean timestamps = !o.has("timestamps") || bool(o.get("timestamps"), pw + ".timestamps");
        FrameSampling sampling;
        if (o.hasNonNull("frames") && o.hasNonNull("fps")) throw ApiError.invalid("'" + pw + "': give frames or fps, not both", pw + ".fps");
        if (o.hasNonNull("frames")) {
            int n = integer(o, "frames", 0, 1, maxFrames, pw);
            sampling = FrameSampling.frames(n, maxFrames);
        } else {
            JsonNode f = o.get("fps");
            double fps = 1.0;
            if (f != null && !f.isNull()) {
                if (!f.isNumber() || !(f.asDouble() > 0) || !Double.isFinite(f.asDouble())) throw ApiError.wrongType(pw + ".fps", "a positive number", f);
                fps = f.asDouble();
            }
            sampling = FrameSampling.perSecond(fps, maxFrames);
        }
        // opened here only to refuse what is not a video (or too big a frame) while the part's field is known
        try (Video v = Video.open(bytes, pw, loader.maxPixels())) {
            sampling.plan(v.info().frames(), v.info().durationSeconds());
        }
        return new MediaMessages.Clip(MediaMessages.Source.of(bytes, pw), sampling, frameTokens, timestamps);
    }

    private static MediaMessages.Pdf pages(JsonNode o, String pw, byte[] bytes) {
        JsonNode dpiNode = o.get("dpi");
        float dpi = 144;
        if (dpiNode != null && !dpiNode.isNull()) {
            if (!dpiNode.isNumber() || !(dpiNode.asDouble() >= 1 && dpiNode.asDouble() <= 1200)) throw ApiError.wrongType(pw + ".dpi", "a number from 1 to 1200", dpiNode);
            dpi = (float) dpiNode.asDouble();
        }
        Integer pageTokens = o.hasNonNull("page_tokens") ? integer(o, "page_tokens", 0, 1, 1 << 16, pw) : null;
        JsonNode range = o.get("pages");
        if (range != null && !range.isNull() && !range.isTextual()) throw ApiError.wrongType(pw + ".pages", "a string such as \"2-5\"", range);
        String pages = range == null || range.isNull() ? null : range.asText();
        String name = o.hasNonNull("filename") && o.get("filename").isTextual() ? pw + " (" + o.get("filename").asText() + ")" : pw;
        // opened here only to refuse what is not a PDF and a range past its end while the part's field is known
        try (PdfDocument doc = PdfDocument.open(bytes, name)) {
            PageRange.parse(pages, doc.pageCount());
        } catch (IllegalArgumentException e) {
            throw ApiError.invalid("'" + pw + ".pages': " + e.getMessage(), pw + ".pages");
        }
        return new MediaMessages.Pdf(MediaMessages.Source.of(bytes, name), pages, dpi, pageTokens);
    }

    /**
     * The conversation with its videos and PDFs sized to the context and decoded (what {@code kimivl run} does:
     * {@link MediaMessages#build} with room for {@code maxTokens} of answer, at most a quarter of the context).
     * Frames given fewer tokens than asked are a line in {@code log}; what cannot fit is a 400
     * {@code context_length_exceeded}, a file that fails to decode a 400 naming its part.
     */
    static MediaMessages.Built size(KimiVL model, List<MediaMessages.Draft> conversation, int context, int maxTokens, long maxPixels,
                                    java.util.function.Consumer<String> log) {
        MediaMessages.Report report = new MediaMessages.Report() {
            @Override public void note(String text) { log.accept(text); }
            @Override public void progress(String text, boolean last) {}
        };
        try {
            return MediaMessages.build(model, conversation, context, MediaMessages.answerRoom(maxTokens, context), maxPixels, KNOBS, report);
        } catch (MediaMessages.DoesNotFit e) {
            throw new ApiError(400, "invalid_request_error", e.getMessage(), "messages", "context_length_exceeded");
        } catch (MediaException | IllegalArgumentException e) {
            String m = String.valueOf(e.getMessage());
            throw ApiError.invalid(m, param(m.startsWith("messages[") ? m : "messages"));
        }
    }

    /**
     * The request field an image's origin names: {@code messages[0].content[1].video_url#t=2.5} or
     * {@code messages[0].content[2].file (a.pdf)#page=3} (a source's name is its part's field, which holds no space
     * or '#') is {@code messages[0].content[1].video_url}.
     */
    static String param(String origin) {
        int cut = origin.length();
        for (char c : new char[] {' ', '#', ':'}) if (origin.indexOf(c) >= 0) cut = Math.min(cut, origin.indexOf(c));
        return origin.substring(0, cut);
    }

    /** A data: URL's bytes, or a file's under an allowed directory; never the network. */
    private static byte[] read(String url, String where) {
        if (url.startsWith("data:")) {
            int comma = url.indexOf(',');
            if (comma < 0 || !url.substring(0, comma).endsWith(";base64")) {
                throw ApiError.invalid("'" + where + "': a data: URL must be base64 (data:video/mp4;base64,...)", where);
            }
            try {
                return Base64.getDecoder().decode(url.substring(comma + 1));
            } catch (IllegalArgumentException e) {
                throw ApiError.invalid("'" + where + "': the base64 data does not decode: " + e.getMessage(), where);
            }
        }
        Path p;
        try {
            p = url.startsWith("file:") ? Path.of(URI.create(url)) : Path.of(url);
        } catch (RuntimeException e) {
            throw ApiError.invalid("'" + where + "': only data: URLs and local paths under --media-dir are accepted; the server does not download", where);
        }
        List<Path> dirs = allowedDirs;
        if (dirs.isEmpty()) {
            throw ApiError.invalid("'" + where + "': local paths are not accepted (start the server with --media-dir DIR to allow a directory); send a data: URL", where);
        }
        Path real;
        try {
            real = p.toRealPath();
        } catch (IOException | RuntimeException e) {
            throw ApiError.invalid("'" + where + "': no such file under --media-dir: " + url, where);
        }
        boolean allowed = false;
        for (Path d : dirs) allowed |= real.startsWith(d);
        if (!allowed || !Files.isRegularFile(real)) throw ApiError.invalid("'" + where + "': " + url + " is not a file under --media-dir", where);
        try {
            return Files.readAllBytes(real);
        } catch (IOException e) {
            throw ApiError.invalid("'" + where + "': cannot read " + url + ": " + e.getMessage(), where);
        }
    }

    private static int integer(JsonNode o, String name, int dflt, int min, int max, String pw) {
        JsonNode n = o.get(name);
        if (n == null || n.isNull()) return dflt;
        if (!n.isIntegralNumber() && !(n.isNumber() && n.asDouble() == Math.rint(n.asDouble()))) throw ApiError.wrongType(pw + "." + name, "an integer", n);
        long v = n.asLong();
        if (v < min || v > max) throw ApiError.invalid("'" + pw + "." + name + "' must be from " + min + " to " + max + ", got " + v, pw + "." + name);
        return (int) v;
    }

    private static boolean bool(JsonNode n, String where) {
        if (!n.isBoolean()) throw ApiError.wrongType(where, "a boolean", n);
        return n.asBoolean();
    }
}
