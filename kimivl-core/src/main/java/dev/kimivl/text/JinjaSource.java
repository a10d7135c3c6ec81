package dev.kimivl.text;

import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Applies Jinja's whitespace rules to a template's source, so that the engine that renders it needs none.
 *
 * <p>Jinjava ignores {@code -}}} on expression tags (Kimi's template then gets a newline and indentation after
 * every role name), so instead of trusting an engine's whitespace handling, this does what the Jinja2 lexer does
 * with the settings Hugging Face renders chat templates with ({@code trim_blocks=True, lstrip_blocks=True},
 * {@code keep_trailing_newline=False}) and writes a template with the same output and no whitespace control:
 * <ul>
 *   <li>newlines ({@code \r\n}, {@code \r}) become {@code \n}, and one trailing newline of the source is dropped;</li>
 *   <li>{@code {%-}, {@code {{-}, {@code {#-} strip all whitespace before the tag; {@code -%}}, {@code -}}},
 *       {@code -#}} strip all whitespace after it (Python's {@code \s});</li>
 *   <li>trim_blocks: the first {@code \n} after a {@code %}} or {@code #}} goes, unless the tag ends with {@code +%}};</li>
 *   <li>lstrip_blocks: spaces and tabs between the start of a line and a {@code {%} or {@code {#} go, unless
 *       {@code {%+};</li>
 *   <li>comments disappear; {@code {% raw %}} bodies are copied untouched.</li>
 * </ul>
 * Tags are found as Jinja finds them: string literals and bracket nesting inside a tag are skipped, so
 * {@code {{ '}}' }}} or {@code {{ {'a': {'b': 1}} }}} end where Jinja says.
 */
final class JinjaSource {
    private static final Pattern END_RAW = Pattern.compile("\\{%([-+]?)\\s*endraw\\s*([-+]?)%}");

    private final String src;
    private final String name;
    private final StringBuilder out = new StringBuilder();
    private int pos;
    /** Text read since the last tag, not yet written: the next tag may strip its end. */
    private final StringBuilder data = new StringBuilder();
    /** Whether {@link #data} starts a line (template start, or the last tag's text ended with a newline). */
    private boolean dataAtLineStart = true;

    private JinjaSource(String src, String name) {
        String s = src.replace("\r\n", "\n").replace('\r', '\n');
        this.src = s.endsWith("\n") ? s.substring(0, s.length() - 1) : s;
        this.name = name;
    }

    /** The template with Jinja's whitespace control applied and removed; {@code name} appears in errors. */
    static String normalize(String source, String name) {
        return new JinjaSource(source, name).run();
    }

    private String run() {
        while (pos < src.length()) {
            int open = nextTagStart(pos);
            if (open < 0) {
                data.append(src, pos, src.length());
                break;
            }
            data.append(src, pos, open);
            char kind = src.charAt(open + 1);
            int afterOpen = open + 2;
            char control = afterOpen < src.length() ? src.charAt(afterOpen) : 0;
            boolean stripBefore = control == '-';
            boolean keepBefore = control == '+' && kind != '{';
            if (stripBefore || keepBefore) afterOpen++;
            boolean blockLike = kind == '%' || kind == '#';

            if (stripBefore) {
                setData(PythonText.rstrip(data.toString()));
            } else if (blockLike && !keepBefore) {
                lstripBlock();
            }
            int close = kind == '#' ? commentEnd(open, afterOpen) : tagEnd(open, afterOpen, kind);
            // close points at the closing delimiter, possibly preceded by a control character
            char endControl = src.charAt(close - 1);
            boolean stripAfter = endControl == '-' && close - 1 >= afterOpen;
            boolean keepAfter = endControl == '+' && close - 1 >= afterOpen && blockLike;
            int innerEnd = stripAfter || keepAfter ? close - 1 : close;
            String inner = kind == '#' ? "" : spaceNestedBraces(src.substring(afterOpen, innerEnd));
            pos = close + 2;

            flushData();
            if (kind != '#') out.append('{').append(kind).append(inner).append(kind == '{' ? '}' : '%').append('}');
            if (kind == '%' && inner.strip().equals("raw")) {
                copyRaw(stripAfter);
                continue;
            }
            if (stripAfter) {
                pos = PythonText.skipSpace(src, pos);
            } else if (blockLike && !keepAfter && pos < src.length() && src.charAt(pos) == '\n') {
                pos++;
            }
            dataAtLineStart = src.charAt(pos - 1) == '\n';
        }
        flushData();
        return out.toString();
    }

    private int nextTagStart(int from) {
        for (int i = src.indexOf('{', from); i >= 0 && i + 1 < src.length(); i = src.indexOf('{', i + 1)) {
            char c = src.charAt(i + 1);
            if (c == '{' || c == '%' || c == '#') return i;
        }
        return -1;
    }

    /** lstrip_blocks: drop the spaces and tabs that are all that stands between a line start and the tag. */
    private void lstripBlock() {
        int lineStart = data.lastIndexOf("\n") + 1;
        if (lineStart == 0 && !dataAtLineStart) return;
        for (int i = lineStart; i < data.length(); i++) {
            char c = data.charAt(i);
            if (c != ' ' && c != '\t') return;
        }
        data.setLength(lineStart);
    }

    /** Position of the {@code }}} or {@code %}} ending the tag, skipping strings and nested brackets. */
    private int tagEnd(int open, int from, char kind) {
        char closer = kind == '{' ? '}' : '%';
        int depth = 0;
        for (int i = from; i < src.length(); i++) {
            char c = src.charAt(i);
            if (depth == 0 && c == closer && i + 1 < src.length() && src.charAt(i + 1) == '}') return i;
            switch (c) {
                case '\'', '"' -> i = stringEnd(open, i);
                case '(', '[', '{' -> depth++;
                case ')', ']', '}' -> depth = Math.max(0, depth - 1);
                default -> { }
            }
        }
        throw error(open, "the tag is never closed with " + closer + "}");
    }

    private int stringEnd(int open, int quoteAt) {
        char quote = src.charAt(quoteAt);
        for (int i = quoteAt + 1; i < src.length(); i++) {
            char c = src.charAt(i);
            if (c == '\\') i++;
            else if (c == quote) return i;
        }
        throw error(open, "a string literal in the tag is never closed");
    }

    /**
     * Jinja ends a tag only outside brackets, Jinjava at the first {@code }}}: a nested dict literal such as
     * {@code {'k': {'j': 2}}} needs a space between its closing braces. Strings are left as they are.
     */
    private static String spaceNestedBraces(String inner) {
        if (!inner.contains("}}")) return inner;
        StringBuilder sb = new StringBuilder(inner.length() + 4);
        char quote = 0;
        for (int i = 0; i < inner.length(); i++) {
            char c = inner.charAt(i);
            sb.append(c);
            if (quote != 0) {
                if (c == '\\' && i + 1 < inner.length()) sb.append(inner.charAt(++i));
                else if (c == quote) quote = 0;
            } else if (c == '\'' || c == '"') {
                quote = c;
            } else if (c == '}' && i + 1 < inner.length() && inner.charAt(i + 1) == '}') {
                sb.append(' ');
            }
        }
        return sb.toString();
    }

    private int commentEnd(int open, int from) {
        int i = src.indexOf("#}", from);
        if (i < 0) throw error(open, "the comment is never closed with #}");
        return i;
    }

    /** Copies a {@code {% raw %}} body as it is, then its end tag. */
    private void copyRaw(boolean stripAfterRaw) {
        Matcher m = END_RAW.matcher(src);
        if (!m.find(pos)) throw error(pos, "{% raw %} has no {% endraw %}");
        int bodyStart = stripAfterRaw ? PythonText.skipSpace(src, pos) : pos;
        String body = src.substring(Math.min(bodyStart, m.start()), m.start());
        if (m.group(1).equals("-")) body = PythonText.rstrip(body);
        else if (m.group(1).isEmpty()) body = lstripLastLine(body);
        out.append(body).append("{% endraw %}");
        pos = m.end();
        if (m.group(2).equals("-")) pos = PythonText.skipSpace(src, pos);
        else if (!m.group(2).equals("+") && pos < src.length() && src.charAt(pos) == '\n') pos++;
        dataAtLineStart = src.charAt(pos - 1) == '\n';
    }

    /** lstrip_blocks for {@code {% endraw %}}: drop a last line of only spaces and tabs. */
    private static String lstripLastLine(String body) {
        int lineStart = body.lastIndexOf('\n') + 1;
        if (lineStart == 0) return body;
        for (int i = lineStart; i < body.length(); i++) {
            char c = body.charAt(i);
            if (c != ' ' && c != '\t') return body;
        }
        return body.substring(0, lineStart);
    }

    private void setData(String s) {
        data.setLength(0);
        data.append(s);
    }

    private void flushData() {
        out.append(data);
        data.setLength(0);
    }

    private IllegalArgumentException error(int at, String what) {
        int line = 1;
        for (int i = 0; i < at && i < src.length(); i++) if (src.charAt(i) == '\n') line++;
        return new IllegalArgumentException(name + ":" + line + ": " + what);
    }
}
