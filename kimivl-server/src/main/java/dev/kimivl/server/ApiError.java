package dev.kimivl.server;

import com.fasterxml.jackson.databind.JsonNode;

/**
 * A request the server refuses, answered as OpenAI's error object
 * {@code {"error": {"message", "type", "param", "code"}}} with {@link #status}.
 * {@link #param} is the offending field as spelled in the API ({@code top_p}, {@code messages[1].role}), or null
 * when no single field is at fault.
 */
final class ApiError extends RuntimeException {
    final int status;
    final String type, param, code;

    ApiError(int status, String type, String message, String param, String code) {
        super(message);
        this.status = status;
        this.type = type;
        this.param = param;
        this.code = code;
    }

    /** 400: the request is malformed or a field has a wrong type or value. */
    static ApiError invalid(String message, String param) {
        return new ApiError(400, "invalid_request_error", message, param, null);
    }

    /** 400 for a field whose type is wrong: names the field, what it must be and what came. */
    static ApiError wrongType(String param, String expected, JsonNode got) {
        return invalid("'" + param + "' must be " + expected + ", got " + describe(got), param);
    }

    /** 400 for a field this server knows but cannot honour; never silently ignored, since the answer would differ. */
    static ApiError unsupported(String param, String what) {
        return new ApiError(400, "invalid_request_error", "'" + param + "': " + what + " is not supported by this server", param, "unsupported_parameter");
    }

    /**
     * A client's text as an error message may quote it: control characters and line or paragraph separators escaped
     * as JSON escapes them, so a message stays one line whatever the request held.
     */
    static String oneLine(String s) {
        StringBuilder b = new StringBuilder(s.length());
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '\n' -> b.append("\\n");
                case '\r' -> b.append("\\r");
                case '\t' -> b.append("\\t");
                default -> {
                    if (c < 0x20 || c == 0x7F || c == 0x85 || c == 0x2028 || c == 0x2029) b.append(String.format("\\u%04x", (int) c));
                    else b.append(c);
                }
            }
        }
        return b.toString();
    }

    /** A JSON value as a message shows it: its kind, and short values themselves. */
    static String describe(JsonNode v) {
        if (v == null || v.isMissingNode()) return "nothing";
        if (v.isNull()) return "null";
        if (v.isTextual()) {
            String s = v.asText();
            return "the string \"" + oneLine(s.length() > 40 ? s.substring(0, 40) + "…" : s) + "\"";
        }
        if (v.isBoolean()) return "the boolean " + v.asBoolean();
        if (v.isNumber()) return "the number " + v.asText();
        if (v.isArray()) return "an array";
        return "an object";
    }
}
