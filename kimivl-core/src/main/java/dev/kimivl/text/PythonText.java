package dev.kimivl.text;

/**
 * Python's notion of whitespace, which both the reference tokenizer (its 25,000-character run splitter uses
 * {@code str.isspace()}) and Jinja (its {@code -%}} whitespace control uses {@code \s} / {@code str.rstrip()})
 * depend on. Java's {@link Character#isWhitespace} differs (it excludes U+00A0, U+2007, U+202F), so it cannot
 * stand in.
 */
final class PythonText {
    private PythonText() {}

    /** {@code chr(cp).isspace()} in Python 3: general category Zs, or bidi class WS, B or S. */
    static boolean isSpace(int cp) {
        if (cp <= 0x20) return cp == 0x20 || (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x1F);
        if (cp < 0x85) return false;
        return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A)
                || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
    }

    /** {@code s.rstrip()}: {@code s} without its trailing Python whitespace. */
    static String rstrip(String s) {
        int end = s.length();
        while (end > 0) {
            int cp = s.codePointBefore(end);
            if (!isSpace(cp)) break;
            end -= Character.charCount(cp);
        }
        return s.substring(0, end);
    }

    /** Index of the first character of {@code s} at or after {@code from} that is not Python whitespace. */
    static int skipSpace(String s, int from) {
        int i = from;
        while (i < s.length()) {
            int cp = s.codePointAt(i);
            if (!isSpace(cp)) break;
            i += Character.charCount(cp);
        }
        return i;
    }
}
