package dev.kimivl.generate;

import dev.kimivl.text.ThinkingSplit;

/**
 * For the Thinking models' output {@code ◁think▷reasoning◁/think▷answer}: streams the answer to one listener and
 * the reasoning to another (which may discard it), working on text as it arrives in arbitrary pieces.
 */
public final class ThinkingFilter implements Generator.Listener {
    private enum State { START, THINKING, ANSWER }

    private final Generator.Listener answer, reasoning;
    private final StringBuilder pending = new StringBuilder();
    private State state = State.START;

    public ThinkingFilter(Generator.Listener answer, Generator.Listener reasoning) {
        this.answer = answer;
        this.reasoning = reasoning == null ? s -> {} : reasoning;
    }

    @Override
    public void onText(String text) {
        pending.append(text);
        while (true) {
            switch (state) {
                case START -> {
                    String s = pending.toString().stripLeading();
                    if (s.startsWith(ThinkingSplit.OPEN)) {
                        pending.setLength(0);
                        pending.append(s.substring(ThinkingSplit.OPEN.length()));
                        state = State.THINKING;
                        continue;
                    }
                    if (ThinkingSplit.OPEN.startsWith(s)) return;       // may still become the marker
                    state = State.ANSWER;
                    continue;
                }
                case THINKING -> {
                    int i = pending.indexOf(ThinkingSplit.CLOSE);
                    if (i >= 0) {
                        if (i > 0) reasoning.onText(pending.substring(0, i));
                        pending.delete(0, i + ThinkingSplit.CLOSE.length());
                        state = State.ANSWER;
                        continue;
                    }
                    int keep = partialMarker(pending, ThinkingSplit.CLOSE);
                    if (pending.length() > keep) {
                        reasoning.onText(pending.substring(0, pending.length() - keep));
                        pending.delete(0, pending.length() - keep);
                    }
                    return;
                }
                case ANSWER -> {
                    if (!pending.isEmpty()) answer.onText(pending.toString());
                    pending.setLength(0);
                    return;
                }
            }
        }
    }

    /** Releases what is held back at the end of generation. */
    public void finish() {
        if (pending.isEmpty()) return;
        if (state == State.THINKING) reasoning.onText(pending.toString());
        else answer.onText(pending.toString());
        pending.setLength(0);
    }

    /** Length of the longest suffix of s that is a proper prefix of marker. */
    private static int partialMarker(CharSequence s, String marker) {
        for (int len = Math.min(marker.length() - 1, s.length()); len > 0; len--) {
            if (s.subSequence(s.length() - len, s.length()).toString().equals(marker.substring(0, len))) return len;
        }
        return 0;
    }
}
