package dev.kimivl.text;

/**
 * The output of a Kimi-VL Thinking model, {@code ◁think▷reasoning◁/think▷answer}, taken apart (spec §7.3).
 * The markers are ordinary text, not special tokens. Following the reference, the answer is everything after
 * the last {@code ◁/think▷}; nothing is trimmed, so {@code reasoning} and {@code answer} keep the model's text exactly.
 *
 * @param reasoning  the text between the markers; empty when there was no thinking
 * @param answer     the text after the closing marker; empty while the model is still thinking
 * @param unfinished true when the text opens a thinking block that it never closes (still streaming, or cut off)
 */
public record ThinkingSplit(String reasoning, String answer, boolean unfinished) {
    public static final String OPEN = "\u25C1think\u25B7";
    public static final String CLOSE = "\u25C1/think\u25B7";

    /** Splits a (possibly partial) model output. */
    public static ThinkingSplit of(String output) {
        int close = output.lastIndexOf(CLOSE);
        if (close >= 0) {
            String before = output.substring(0, close);
            int open = before.indexOf(OPEN);
            String reasoning = open >= 0 && before.substring(0, open).isBlank() ? before.substring(open + OPEN.length()) : before;
            return new ThinkingSplit(reasoning, output.substring(close + CLOSE.length()), false);
        }
        int open = output.indexOf(OPEN);
        if (open >= 0 && output.substring(0, open).isBlank()) {
            return new ThinkingSplit(output.substring(open + OPEN.length()), "", true);
        }
        return new ThinkingSplit("", output, false);
    }

    /** What multi-turn history keeps of an earlier assistant turn: only its answer (spec §7.2, last bullet). */
    public static String answerOf(String output) { return of(output).answer(); }
}
