package dev.kimivl.media;

/** Video times as the prompt shows them: mm:ss, or h:mm:ss from one hour on ("Frame at 00:03:"). */
public final class Timestamps {
    private Timestamps() {}

    public static String format(double seconds) {
        long s = (long) Math.floor(Math.max(0, seconds));
        long h = s / 3600, m = s / 60 % 60, sec = s % 60;
        return h > 0 ? String.format("%d:%02d:%02d", h, m, sec) : String.format("%02d:%02d", m, sec);
    }
}
