package dev.kimivl.server;

import com.fasterxml.jackson.databind.JsonNode;
import dev.kimivl.generate.SamplingParams;
import dev.kimivl.generate.json.JsonShape;
import dev.kimivl.media.MediaMessages;
import dev.kimivl.text.ChatMessage;
import dev.kimivl.vision.ImageLoader;
import dev.kimivl.vision.LoadedImage;

import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Set;

/**
 * An OpenAI chat-completions request body, validated: every problem is an {@link ApiError} (400) whose param names
 * the field as spelled in the API, e.g. {@code top_p} or {@code messages[1].content[0].image_url}.
 * Fields this server does not know are ignored, as OpenAI does; a known field with a wrong type is always an error.
 *
 * @param images      the image parts of all messages, decoded, in conversation order
 * @param imageParams where each image came from ({@code messages[0].content[1].image_url}), for errors about it later;
 *                    until {@link #sized} one entry per video_url/file part
 * @param media       null when no message has a video_url or file part; else the whole conversation as
 *                    kimivl-media items, and {@code messages}/{@code images} hold only the text and image_url parts
 *                    until {@link #sized} replaces them with the conversation sized to the context ({@link MediaParts})
 */
record ChatRequest(List<ChatMessage> messages, List<LoadedImage> images, List<String> imageParams, Engine.Spec spec, int n,
                   boolean stream, boolean includeUsage, List<MediaMessages.Draft> media) {
    /** With the videos and PDFs sized and decoded: every frame and page an image part after its label. */
    ChatRequest sized(MediaMessages.Built b) {
        List<String> params = new ArrayList<>();
        for (String origin : b.origins()) params.add(MediaParts.param(origin));
        return new ChatRequest(b.messages(), b.images(), params, spec, n, stream, includeUsage, null);
    }

    /** The most choices one request may ask for ({@code n}): each is a sequence with its own KV cache. */
    static final int MAX_CHOICES = 16;

    SamplingParams sampling() { return spec.sampling(); }

    boolean logprobs() { return spec.topLogprobs() >= 0; }

    /** OpenAI's roles this model's chat template understands; "developer" is OpenAI's newer name for "system". */
    private static final Set<String> ROLES = Set.of("system", "developer", "user", "assistant");

    static ChatRequest parse(JsonNode body, ImageLoader loader, ServerDefaults defaults) {
        if (body == null || !body.isObject()) throw ApiError.invalid("the request body must be a JSON object, got " + ApiError.describe(body), null);
        // any model name is answered by the one loaded model (as llama.cpp's server does); only its type is checked
        string(body, "model");
        string(body, "user");
        JsonNode msgs = body.get("messages");
        if (msgs == null || msgs.isNull()) throw ApiError.invalid("'messages' is required: a non-empty array of messages", "messages");
        if (!msgs.isArray()) throw ApiError.wrongType("messages", "a non-empty array of messages", msgs);
        if (msgs.isEmpty()) throw ApiError.invalid("'messages' must not be empty", "messages");
        List<ChatMessage> messages = new ArrayList<>();
        List<LoadedImage> images = new ArrayList<>();
        List<String> imageParams = new ArrayList<>();
        List<MediaMessages.Draft> drafts = new ArrayList<>();
        boolean media = false;
        for (int i = 0; i < msgs.size(); i++) {
            List<MediaMessages.Item> items = new ArrayList<>();
            ChatMessage m = message(msgs.get(i), "messages[" + i + "]", loader, images, imageParams, items);
            messages.add(m);
            for (MediaMessages.Item it : items) media |= it instanceof MediaMessages.Clip || it instanceof MediaMessages.Pdf;
            drafts.add(m.text() != null ? MediaMessages.Draft.of(m.role(), new MediaMessages.Text(m.text())) : new MediaMessages.Draft(m.role(), items));
        }

        SamplingParams sampling = sampling(body, defaults);
        // chat's logprobs is a boolean with top_logprobs beside it; the text completions' one an integer (CompletionRequest)
        boolean logprobs = bool(body, "logprobs", false);
        long top = integer(body, "top_logprobs", 0);
        if (top < 0 || top > 20) throw ApiError.invalid("'top_logprobs' must be an integer in 0..20, got " + top, "top_logprobs");
        if (body.hasNonNull("top_logprobs") && !logprobs) throw ApiError.invalid("'top_logprobs' needs 'logprobs': true", "top_logprobs");
        JsonShape format = responseFormat(body.get("response_format"));
        JsonNode tools = body.get("tools");
        if (tools != null && !tools.isNull()) {
            if (!tools.isArray()) throw ApiError.wrongType("tools", "an array", tools);
            if (!tools.isEmpty()) throw ApiError.unsupported("tools", "tool calling");
        }

        boolean stream = bool(body, "stream", false);
        Engine.Spec spec = new Engine.Spec(sampling, format, penalty(body, "frequency_penalty"), penalty(body, "presence_penalty"), logprobs ? (int) top : -1,
                bool(body, "ignore_eos", false));
        return new ChatRequest(messages, images, imageParams, spec, choices(body), stream, includeUsage(body, stream), media ? drafts : null);
    }

    /** {@code n}: how many choices to generate for the one prompt, 1..{@link #MAX_CHOICES}. */
    static int choices(JsonNode body) {
        long n = integer(body, "n", 1);
        if (n < 1 || n > MAX_CHOICES) throw ApiError.invalid("'n' must be in 1.." + MAX_CHOICES + " (choices per request), got " + n, "n");
        return (int) n;
    }

    /** OpenAI's presence_penalty or frequency_penalty, in [-2, 2]. */
    static double penalty(JsonNode body, String name) {
        double p = number(body, name, 0.0);
        if (!(p >= -2 && p <= 2)) throw ApiError.invalid("'" + name + "' must be in [-2, 2], got " + p, name);
        return p;
    }

    /** {@code stream_options.include_usage}; the options without {@code stream: true} are an error. */
    static boolean includeUsage(JsonNode body, boolean stream) {
        JsonNode options = body.get("stream_options");
        if (options == null || options.isNull()) return false;
        if (!options.isObject()) throw ApiError.wrongType("stream_options", "an object", options);
        // as OpenAI and vLLM: the options describe a stream, so without one they are a mistake worth reporting
        if (!stream) throw ApiError.invalid("'stream_options' is only allowed when 'stream' is true", "stream_options");
        return bool(options, "include_usage", "stream_options.include_usage", false);
    }

    /**
     * The sampling fields chat and text completions share: max_tokens/max_completion_tokens, temperature, top_p,
     * top_k, min_p, repetition_penalty, seed, stop (the penalties and n: {@link #penalty}, {@link #choices}).
     */
    static SamplingParams sampling(JsonNode body, ServerDefaults defaults) {
        // max_completion_tokens is OpenAI's current name, max_tokens the deprecated one: the newer wins when both come
        String maxKey = body.hasNonNull("max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
        long maxTokens = integer(body, maxKey, defaults.maxTokens());
        if (maxTokens < 1 || maxTokens > Integer.MAX_VALUE) throw ApiError.invalid("'" + maxKey + "' must be a positive integer, got " + maxTokens, maxKey);
        double temperature = number(body, "temperature", defaults.temperature());
        if (temperature < 0) throw ApiError.invalid("'temperature' must be ≥ 0, got " + temperature, "temperature");
        double topP = number(body, "top_p", 1.0);
        if (!(topP > 0 && topP <= 1)) throw ApiError.invalid("'top_p' must be in (0, 1], got " + topP, "top_p");
        long topK = integer(body, "top_k", 0);
        if (topK == -1) topK = 0;                       // vLLM's spelling of "off", which its clients send
        if (topK < 0 || topK > Integer.MAX_VALUE) throw ApiError.invalid("'top_k' must be ≥ 0 (0 or -1: off), got " + topK, "top_k");
        double minP = number(body, "min_p", 0.0);
        if (!(minP >= 0 && minP < 1)) throw ApiError.invalid("'min_p' must be in [0, 1), got " + minP, "min_p");
        double rep = number(body, "repetition_penalty", 1.0);
        if (!(rep > 0)) throw ApiError.invalid("'repetition_penalty' must be > 0, got " + rep, "repetition_penalty");
        long seed = body.hasNonNull("seed") ? integer(body, "seed", 0) : System.nanoTime();
        List<String> stops = stops(body.get("stop"));
        return new SamplingParams(temperature, (int) topK, topP, minP, rep, seed, (int) maxTokens, stops);
    }

    /** One message; {@code items} receives its content parts in order as kimivl-media items (videos and PDFs undecoded). */
    private static ChatMessage message(JsonNode m, String where, ImageLoader loader, List<LoadedImage> images, List<String> imageParams,
                                       List<MediaMessages.Item> items) {
        if (!m.isObject()) throw ApiError.wrongType(where, "a message object", m);
        JsonNode r = m.get("role");
        if (r == null || r.isNull()) throw ApiError.invalid("'" + where + ".role' is required", where + ".role");
        if (!r.isTextual()) throw ApiError.wrongType(where + ".role", "a string", r);
        String role = r.asText();
        if (role.equals("tool") || role.equals("function")) throw ApiError.unsupported(where + ".role", "the role '" + role + "' (tool calling)");
        if (!ROLES.contains(role)) {
            throw ApiError.invalid("'" + where + ".role' must be one of system, developer, user, assistant; got '" + ApiError.oneLine(role) + "'", where + ".role");
        }
        if (role.equals("developer")) role = "system";
        string(m, "name", where + ".name");
        JsonNode content = m.get("content");
        if (content == null || content.isNull()) {
            // an assistant turn may come without content (OpenAI allows it with tool calls); a question may not
            if (role.equals("assistant")) return ChatMessage.of(role, "");
            throw ApiError.invalid("'" + where + ".content' is required for a " + role + " message", where + ".content");
        }
        if (content.isTextual()) return ChatMessage.of(role, content.asText());
        if (!content.isArray()) throw ApiError.wrongType(where + ".content", "a string or an array of content parts", content);
        List<ChatMessage.Part> parts = new ArrayList<>();
        for (int j = 0; j < content.size(); j++) {
            JsonNode p = content.get(j);
            String pw = where + ".content[" + j + "]";
            if (!p.isObject()) throw ApiError.wrongType(pw, "a content part object ({\"type\": \"text\", ...})", p);
            JsonNode t = p.get("type");
            if (t == null || t.isNull()) throw ApiError.invalid("'" + pw + ".type' is required (text, image_url, video_url or file)", pw + ".type");
            if (!t.isTextual()) throw ApiError.wrongType(pw + ".type", "a string (text, image_url, video_url or file)", t);
            switch (t.asText()) {
                case "text" -> {
                    JsonNode text = p.get("text");
                    if (text == null || !text.isTextual()) throw ApiError.wrongType(pw + ".text", "a string", text);
                    parts.add(ChatMessage.textPart(text.asText()));
                    items.add(new MediaMessages.Text(text.asText()));
                }
                case "image_url" -> {
                    LoadedImage im = image(p.get("image_url"), pw + ".image_url", loader);
                    images.add(im);
                    imageParams.add(pw + ".image_url");
                    parts.add(ChatMessage.imagePart());
                    items.add(new MediaMessages.Image(im, pw + ".image_url"));
                }
                // a video's frames or a PDF's pages, each an image part once sized to the context (MediaParts,
                // docs/long-inputs.md); until then only an item
                case "video_url", "file" -> {
                    items.add(MediaParts.item(p, pw, t.asText(), loader));
                    imageParams.add(pw + "." + t.asText());
                }
                default -> throw ApiError.invalid("'" + pw + ".type': part type '" + t.asText() + "' is not supported (text, image_url, video_url, file)", pw + ".type");
            }
        }
        return ChatMessage.of(role, parts.toArray(ChatMessage.Part[]::new));
    }

    /** Images come inline as data: URLs; this server fetches nothing from the network. */
    private static LoadedImage image(JsonNode imageUrl, String where, ImageLoader loader) {
        String url;
        if (imageUrl != null && imageUrl.isTextual()) {
            url = imageUrl.asText();                    // the bare-string form some clients send
        } else if (imageUrl != null && imageUrl.isObject()) {
            JsonNode u = imageUrl.get("url");
            if (u == null || !u.isTextual()) throw ApiError.wrongType(where + ".url", "a string (a data: URL)", u);
            string(imageUrl, "detail", where + ".detail");
            url = u.asText();
        } else {
            throw ApiError.wrongType(where, "an object {\"url\": \"data:image/...;base64,...\"}", imageUrl);
        }
        if (!url.startsWith("data:")) {
            throw ApiError.invalid("'" + where + "': only data: URLs (data:image/png;base64,...) are accepted; the server does not download images", where);
        }
        int comma = url.indexOf(',');
        if (comma < 0 || !url.substring(0, comma).endsWith(";base64")) {
            throw ApiError.invalid("'" + where + "': a data: URL must be base64 (data:image/...;base64,...)", where);
        }
        byte[] bytes;
        try {
            bytes = Base64.getDecoder().decode(url.substring(comma + 1));
        } catch (IllegalArgumentException e) {
            throw ApiError.invalid("'" + where + "': the base64 data does not decode: " + e.getMessage(), where);
        }
        try {
            return loader.load(bytes, where);
        } catch (RuntimeException e) {
            throw ApiError.invalid(e.getMessage(), where);
        }
    }

    /**
     * {@code response_format}: {@code text} (null), {@code json_object} (any JSON object) or {@code json_schema}
     * ({@code {"json_schema": {"name": ..., "schema": {...}, "strict": ...}}}): the answer is then decoded under the
     * constraint, so it always parses (and has the schema's structure, types and bounds: {@link JsonShape}); a schema
     * keyword the constraint cannot enforce is a 400 naming its path, never silently ignored.
     */
    static JsonShape responseFormat(JsonNode f) {
        if (f == null || f.isNull()) return null;
        if (!f.isObject()) throw ApiError.wrongType("response_format", "an object {\"type\": \"text\"}", f);
        JsonNode t = f.get("type");
        if (t == null || !t.isTextual()) throw ApiError.wrongType("response_format.type", "a string", t);
        switch (t.asText()) {
            case "text" -> { return null; }
            case "json_object" -> { return JsonShape.ANY_OBJECT; }
            case "json_schema" -> {
                JsonNode js = f.get("json_schema");
                if (js == null || js.isNull()) throw ApiError.invalid("'response_format.json_schema' is required for type json_schema", "response_format.json_schema");
                if (!js.isObject()) throw ApiError.wrongType("response_format.json_schema", "an object {\"name\": ..., \"schema\": {...}}", js);
                string(js, "name", "response_format.json_schema.name");
                string(js, "description", "response_format.json_schema.description");
                bool(js, "strict", "response_format.json_schema.strict", false);
                JsonNode schema = js.get("schema");
                if (schema == null || schema.isNull()) return JsonShape.ANY;      // OpenAI: the schema is optional
                if (!schema.isObject()) throw ApiError.wrongType("response_format.json_schema.schema", "a JSON Schema object", schema);
                try {
                    // the message names the keyword's path from the request's root, e.g.
                    // "response_format.json_schema.schema.properties.zip.pattern is not supported by constrained decoding"
                    return JsonShape.fromSchema(schema, "response_format.json_schema.schema");
                } catch (IllegalArgumentException e) {
                    throw ApiError.invalid(e.getMessage(), "response_format.json_schema.schema");
                }
            }
            default -> throw ApiError.invalid("'response_format.type' must be text, json_object or json_schema; got '" + ApiError.oneLine(t.asText()) + "'", "response_format.type");
        }
    }

    static List<String> stops(JsonNode stop) {
        List<String> stops = new ArrayList<>();
        if (stop == null || stop.isNull()) return stops;
        if (stop.isTextual()) {
            stops.add(stop.asText());
        } else if (stop.isArray()) {
            for (int i = 0; i < stop.size(); i++) {
                if (!stop.get(i).isTextual()) throw ApiError.wrongType("stop[" + i + "]", "a string", stop.get(i));
                stops.add(stop.get(i).asText());
            }
        } else {
            throw ApiError.wrongType("stop", "a string or an array of strings", stop);
        }
        // an empty stop string would end every answer before its first token
        if (stops.contains("")) throw ApiError.invalid("'stop' must not contain an empty string", "stop");
        return stops;
    }

    static void string(JsonNode obj, String key) { string(obj, key, key); }

    static void string(JsonNode obj, String key, String param) {
        JsonNode v = obj.get(key);
        if (v != null && !v.isNull() && !v.isTextual()) throw ApiError.wrongType(param, "a string", v);
    }

    static boolean bool(JsonNode obj, String key, boolean dflt) { return bool(obj, key, key, dflt); }

    static boolean bool(JsonNode obj, String key, String param, boolean dflt) {
        JsonNode v = obj.get(key);
        if (v == null || v.isNull()) return dflt;
        if (!v.isBoolean()) throw ApiError.wrongType(param, "a boolean (true or false)", v);
        return v.asBoolean();
    }

    /** An integer field; 5.0 counts as an integer (JSON has one number type), 5.5 and "5" do not. */
    static long integer(JsonNode obj, String key, long dflt) {
        JsonNode v = obj.get(key);
        if (v == null || v.isNull()) return dflt;
        boolean integral = v.isIntegralNumber() || (v.isFloatingPointNumber() && v.asDouble() == Math.rint(v.asDouble()));
        if (!integral || !v.canConvertToLong()) throw ApiError.wrongType(key, "an integer", v);
        return v.asLong();
    }

    static double number(JsonNode obj, String key, double dflt) {
        JsonNode v = obj.get(key);
        if (v == null || v.isNull()) return dflt;
        if (!v.isNumber()) throw ApiError.wrongType(key, "a number", v);
        return v.asDouble();
    }
}
