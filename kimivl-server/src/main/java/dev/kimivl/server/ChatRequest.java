package dev.kimivl.server;

import com.fasterxml.jackson.databind.JsonNode;
import dev.kimivl.generate.SamplingParams;
import dev.kimivl.text.ChatMessage;
import dev.kimivl.vision.ImageLoader;
import dev.kimivl.vision.LoadedImage;

import java.util.ArrayList;
import java.util.Base64;
import java.util.List;

/**
 * An OpenAI chat-completions request body, validated: every problem is a {@link BadRequest} naming the field
 * (OpenAI's "param"), e.g. {@code messages[1].content[0].image_url}.
 *
 * @param images the image parts of all messages, decoded, in conversation order
 */
record ChatRequest(List<ChatMessage> messages, List<LoadedImage> images, SamplingParams sampling, boolean stream,
                   boolean includeUsage) {

    /** A client error: HTTP 400 with OpenAI's error object. */
    static final class BadRequest extends RuntimeException {
        final String param, code;

        BadRequest(String message, String param, String code) {
            super(message);
            this.param = param;
            this.code = code;
        }

        BadRequest(String message, String param) { this(message, param, null); }
    }

    static ChatRequest parse(JsonNode body, ImageLoader loader, ServerDefaults defaults) {
        if (body == null || !body.isObject()) throw new BadRequest("the request body must be a JSON object", null);
        JsonNode msgs = body.get("messages");
        if (msgs == null || !msgs.isArray() || msgs.isEmpty()) throw new BadRequest("'messages' must be a non-empty array", "messages");
        List<ChatMessage> messages = new ArrayList<>();
        List<LoadedImage> images = new ArrayList<>();
        for (int i = 0; i < msgs.size(); i++) messages.add(message(msgs.get(i), "messages[" + i + "]", loader, images));

        int maxTokens = integer(body, "max_completion_tokens", integer(body, "max_tokens", defaults.maxTokens()));
        double temperature = number(body, "temperature", defaults.temperature());
        double topP = number(body, "top_p", 1.0);
        int topK = integer(body, "top_k", 0);
        double minP = number(body, "min_p", 0.0);
        double rep = number(body, "repetition_penalty", 1.0);
        long seed = body.hasNonNull("seed") ? integer(body, "seed", 0) : System.nanoTime();
        if (body.hasNonNull("n") && integer(body, "n", 1) != 1) throw new BadRequest("only n = 1 is supported", "n");
        List<String> stops = new ArrayList<>();
        JsonNode stop = body.get("stop");
        if (stop != null && !stop.isNull()) {
            if (stop.isTextual()) stops.add(stop.asText());
            else if (stop.isArray()) for (JsonNode s : stop) {
                if (!s.isTextual()) throw new BadRequest("'stop' must be a string or an array of strings", "stop");
                stops.add(s.asText());
            }
            else throw new BadRequest("'stop' must be a string or an array of strings", "stop");
        }
        SamplingParams sampling;
        try {
            sampling = new SamplingParams(temperature, topK, topP, minP, rep, seed, maxTokens, stops);
        } catch (IllegalArgumentException e) {
            throw new BadRequest(e.getMessage(), null);
        }
        boolean stream = body.path("stream").asBoolean(false);
        boolean usage = body.path("stream_options").path("include_usage").asBoolean(false);
        return new ChatRequest(messages, images, sampling, stream, usage);
    }

    private static ChatMessage message(JsonNode m, String where, ImageLoader loader, List<LoadedImage> images) {
        if (!m.isObject()) throw new BadRequest(where + " must be an object", where);
        JsonNode role = m.get("role");
        if (role == null || !role.isTextual()) throw new BadRequest(where + ".role must be a string", where + ".role");
        JsonNode content = m.get("content");
        if (content == null || content.isNull()) return ChatMessage.of(role.asText(), "");
        if (content.isTextual()) return ChatMessage.of(role.asText(), content.asText());
        if (!content.isArray()) throw new BadRequest(where + ".content must be a string or an array of parts", where + ".content");
        List<ChatMessage.Part> parts = new ArrayList<>();
        for (int j = 0; j < content.size(); j++) {
            JsonNode p = content.get(j);
            String pw = where + ".content[" + j + "]";
            String type = p.path("type").asText("");
            switch (type) {
                case "text" -> {
                    if (!p.path("text").isTextual()) throw new BadRequest(pw + ".text must be a string", pw + ".text");
                    parts.add(ChatMessage.textPart(p.get("text").asText()));
                }
                case "image_url" -> {
                    JsonNode url = p.path("image_url");
                    String u = url.isTextual() ? url.asText() : url.path("url").asText(null);
                    if (u == null) throw new BadRequest(pw + ".image_url.url is missing", pw + ".image_url");
                    images.add(image(u, pw + ".image_url", loader));
                    parts.add(ChatMessage.imagePart());
                }
                default -> throw new BadRequest(pw + ": part type '" + type + "' is not supported (text, image_url)", pw + ".type");
            }
        }
        return ChatMessage.of(role.asText(), parts.toArray(ChatMessage.Part[]::new));
    }

    /** Images come inline as data: URLs; this server fetches nothing from the network. */
    private static LoadedImage image(String url, String where, ImageLoader loader) {
        if (!url.startsWith("data:")) {
            throw new BadRequest(where + ": only data: URLs (data:image/png;base64,...) are accepted; the server does not download images", where);
        }
        int comma = url.indexOf(',');
        if (comma < 0 || !url.substring(0, comma).endsWith(";base64")) throw new BadRequest(where + ": a data: URL must be base64 (data:image/...;base64,...)", where);
        byte[] bytes;
        try {
            bytes = Base64.getDecoder().decode(url.substring(comma + 1));
        } catch (IllegalArgumentException e) {
            throw new BadRequest(where + ": the base64 data does not decode: " + e.getMessage(), where);
        }
        try {
            return loader.load(bytes, where);
        } catch (RuntimeException e) {
            throw new BadRequest(e.getMessage(), where);
        }
    }

    private static int integer(JsonNode body, String key, int dflt) {
        JsonNode v = body.get(key);
        if (v == null || v.isNull()) return dflt;
        if (!v.canConvertToInt() || !v.isIntegralNumber()) throw new BadRequest("'" + key + "' must be an integer", key);
        return v.asInt();
    }

    private static double number(JsonNode body, String key, double dflt) {
        JsonNode v = body.get(key);
        if (v == null || v.isNull()) return dflt;
        if (!v.isNumber()) throw new BadRequest("'" + key + "' must be a number", key);
        return v.asDouble();
    }
}
