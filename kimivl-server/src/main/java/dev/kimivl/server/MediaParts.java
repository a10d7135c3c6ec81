package dev.kimivl.server;

import com.fasterxml.jackson.databind.JsonNode;
import dev.kimivl.media.FrameSampling;
import dev.kimivl.media.MediaException;
import dev.kimivl.media.PageRange;
import dev.kimivl.media.PdfDocument;
import dev.kimivl.media.Timestamps;
import dev.kimivl.media.TokenBudget;
import dev.kimivl.media.Video;
import dev.kimivl.config.PreprocessorConfig;
import dev.kimivl.text.ChatMessage;
import dev.kimivl.vision.ImageLoader;
import dev.kimivl.vision.LoadedImage;

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
 * "Page 2:") before it, decoded by kimivl-media exactly as {@code kimivl run --video/--pdf} does.
 *
 * <pre>
 * {"type": "video_url", "video_url": {"url": "data:video/mp4;base64,...", "fps": 1, "frames": 8, "max_frames": 64,
 *                                     "frame_tokens": 256, "timestamps": true}}
 * {"type": "file", "file": {"file_data": "data:application/pdf;base64,...", "filename": "report.pdf",
 *                           "pages": "2-5", "dpi": 144, "page_tokens": 512}}
 * </pre>
 * A {@code url} (or {@code file_data}) may also be a local path or file: URL, but only under a directory the server
 * was started with ({@code kimivl serve --media-dir DIR}); nothing is fetched from the network. A {@code file} part
 * holds a PDF or a video (told apart by its bytes). The frames' token budget is not lowered to fit the context here
 * (the request's text is not yet measured): a prompt that does not fit is the usual context_length_exceeded error.
 */
public final class MediaParts {
    private static volatile List<Path> allowedDirs = List.of();

    /**
     * The geometry frame_tokens and page_tokens are counted in: 14-pixel patches merged 2x2, padded (that of every
     * published Kimi-VL checkpoint; the request parser does not see the model's own preprocessor_config.json).
     */
    private static final PreprocessorConfig BUDGET_CONFIG = new PreprocessorConfig(PreprocessorConfig.DEFAULT.imageMean(),
            PreprocessorConfig.DEFAULT.imageStd(), PreprocessorConfig.DEFAULT.inTokenLimit(), true, 14, 2, 2);

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

    /** Adds the frames or pages of one part (type video_url or file) to the message being parsed. */
    static void add(JsonNode part, String where, String type, ImageLoader loader,
                    List<ChatMessage.Part> parts, List<LoadedImage> images, List<String> imageParams) {
        PreprocessorConfig cfg = BUDGET_CONFIG;
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
            if (pdf) pages(o, pw, bytes, loader, cfg, parts, images, imageParams);
            else frames(o, pw, bytes, loader, cfg, parts, images, imageParams);
        } catch (MediaException e) {
            throw ApiError.invalid(e.getMessage(), pw);
        }
    }

    private static void frames(JsonNode o, String pw, byte[] bytes, ImageLoader loader, PreprocessorConfig cfg,
                               List<ChatMessage.Part> parts, List<LoadedImage> images, List<String> imageParams) {
        int maxFrames = integer(o, "max_frames", 64, 1, 1024, pw);
        int frameTokens = integer(o, "frame_tokens", 256, 1, 1 << 16, pw);
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
        try (Video v = Video.open(bytes, pw, loader.maxPixels())) {
            FrameSampling.Plan plan = sampling.plan(v.info().frames(), v.info().durationSeconds());
            List<LoadedImage> frames = v.frames(plan, im -> TokenBudget.fit(im, frameTokens, cfg), null);
            for (int i = 0; i < frames.size(); i++) {
                if (timestamps) parts.add(ChatMessage.textPart("Frame at " + Timestamps.format(plan.seconds()[i]) + ":"));
                parts.add(ChatMessage.imagePart());
                images.add(frames.get(i));
                imageParams.add(pw);
            }
        }
    }

    private static void pages(JsonNode o, String pw, byte[] bytes, ImageLoader loader, PreprocessorConfig cfg,
                              List<ChatMessage.Part> parts, List<LoadedImage> images, List<String> imageParams) {
        JsonNode dpiNode = o.get("dpi");
        float dpi = 144;
        if (dpiNode != null && !dpiNode.isNull()) {
            if (!dpiNode.isNumber() || !(dpiNode.asDouble() >= 1 && dpiNode.asDouble() <= 1200)) throw ApiError.wrongType(pw + ".dpi", "a number from 1 to 1200", dpiNode);
            dpi = (float) dpiNode.asDouble();
        }
        Integer pageTokens = o.hasNonNull("page_tokens") ? integer(o, "page_tokens", 0, 1, 1 << 16, pw) : null;
        JsonNode range = o.get("pages");
        if (range != null && !range.isNull() && !range.isTextual()) throw ApiError.wrongType(pw + ".pages", "a string such as \"2-5\"", range);
        String name = o.hasNonNull("filename") && o.get("filename").isTextual() ? pw + " (" + o.get("filename").asText() + ")" : pw;
        try (PdfDocument doc = PdfDocument.open(bytes, name)) {
            int[] pageNumbers;
            try {
                pageNumbers = PageRange.parse(range == null || range.isNull() ? null : range.asText(), doc.pageCount());
            } catch (IllegalArgumentException e) {
                throw ApiError.invalid("'" + pw + ".pages': " + e.getMessage(), pw + ".pages");
            }
            for (int p : pageNumbers) {
                LoadedImage page = doc.render(p, dpi, loader.maxPixels());
                parts.add(ChatMessage.textPart("Page " + p + ":"));
                parts.add(ChatMessage.imagePart());
                images.add(pageTokens != null ? TokenBudget.fit(page, pageTokens, cfg) : page);
                imageParams.add(pw);
            }
        }
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
