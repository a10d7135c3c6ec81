package dev.kimivl.io;

/**
 * A checkpoint that cannot be used: the message names the file, the tensor and what is wrong with it. Names in it
 * come from the file (tensor names, metadata keys): their control characters are written as escapes, so the message
 * stays one line whatever the file holds (fuzzing found a GGUF key with a newline in it).
 */
public class CheckpointException extends RuntimeException {
    public CheckpointException(String message) { super(printable(message)); }
    public CheckpointException(String message, Throwable cause) { super(printable(message), cause); }

    /** {@code s} with line breaks and other control characters as escapes ({@code \n}, {@code \x1b}, {@code \u2028}). */
    public static String printable(String s) {
        if (s == null) return null;
        StringBuilder sb = null;
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            boolean control = c < 0x20 || c == 0x7F || c == 0x85 || c == 0x2028 || c == 0x2029;
            if (control && sb == null) sb = new StringBuilder(s.length() + 8).append(s, 0, i);
            if (sb == null) continue;
            if (!control) sb.append(c);
            else if (c == '\n') sb.append("\\n");
            else if (c == '\r') sb.append("\\r");
            else if (c == '\t') sb.append("\\t");
            else if (c < 0x100) sb.append(String.format("\\x%02x", (int) c));
            else sb.append(String.format("\\u%04x", (int) c));
        }
        return sb == null ? s : sb.toString();
    }
}
