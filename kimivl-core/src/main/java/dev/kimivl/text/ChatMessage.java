package dev.kimivl.text;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * One chat message: a role ({@code system}, {@code user}, {@code assistant}, or any other) and content that is
 * either plain text or a list of text and image parts, as in the Hugging Face messages format.
 *
 * @param role  the role name, written into the prompt as it is
 * @param text  the content when it is plain text, else null
 * @param parts the content when it is a list of parts, else null
 */
public record ChatMessage(String role, String text, List<Part> parts) {
    public ChatMessage {
        Objects.requireNonNull(role, "role");
        if ((text == null) == (parts == null)) {
            throw new IllegalArgumentException("a message of role " + role + " needs either text or parts, not both or neither");
        }
        if (parts != null) parts = List.copyOf(parts);
    }

    /** A content part: text or an image placeholder. */
    public sealed interface Part permits TextPart, ImagePart {}

    /** A piece of text in list content ({@code {"type": "text", "text": ...}}). */
    public record TextPart(String text) implements Part {
        public TextPart { Objects.requireNonNull(text, "text"); }
    }

    /** An image in list content ({@code {"type": "image"}}); its pixels travel separately, in prompt order. */
    public record ImagePart() implements Part {}

    public static ChatMessage of(String role, String text) { return new ChatMessage(role, text, null); }

    public static ChatMessage of(String role, Part... parts) { return new ChatMessage(role, null, List.of(parts)); }

    public static ChatMessage system(String text) { return of("system", text); }

    public static ChatMessage user(String text) { return of("user", text); }

    public static ChatMessage assistant(String text) { return of("assistant", text); }

    public static Part textPart(String text) { return new TextPart(text); }

    public static Part imagePart() { return new ImagePart(); }

    /** Number of image parts. */
    public int imageCount() {
        return parts == null ? 0 : (int) parts.stream().filter(p -> p instanceof ImagePart).count();
    }

    /** The message as a chat template sees it: {@code {role, content}} with content a string or a list of maps. */
    public Map<String, Object> toTemplateValue() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("role", role);
        if (text != null) {
            m.put("content", text);
        } else {
            List<Object> content = new ArrayList<>();
            for (Part p : parts) {
                Map<String, Object> part = new LinkedHashMap<>();
                switch (p) {
                    case TextPart t -> {
                        part.put("type", "text");
                        part.put("text", t.text());
                    }
                    case ImagePart i -> part.put("type", "image");
                }
                content.add(part);
            }
            m.put("content", content);
        }
        return m;
    }
}
