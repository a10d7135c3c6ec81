package dev.kimivl.generate.json;

import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

/**
 * A byte-level recogniser of the JSON texts of one {@link JsonShape}: fed UTF-8 bytes one at a time, it knows which
 * bytes may come next and how many bytes at least are still needed to finish ({@link #remaining}), which is what
 * lets constrained decoding close the value before the token budget runs out.
 *
 * <p>A parse state is an immutable stack of frames, so trying a token's bytes never disturbs the current state, and
 * a choice the bytes cannot settle yet (an {@code anyOf}, which of several property names a key is) is carried as
 * several states at once. Whitespace is allowed between tokens, at most {@link #MAX_WHITESPACE} bytes in a row (so
 * a model cannot loop on it); none after the top-level value, which ends the output.
 */
public final class Matcher {
    static final int MAX_WHITESPACE = 24;
    /** Longest number written (digits, sign, point, exponent): JSON allows more, nobody means it. */
    static final int MAX_NUMBER = 32;
    /** Longest integer (sign included): 18 digits always fit a Java long, so the value binds to any integer field that holds it. */
    static final int MAX_INTEGER = 19;

    /** The most characters integer n may have: 18 digits, plus its '-' (19 unsigned digits can pass Long.MAX_VALUE). */
    private static int integerLimit(NumF n) { return n.negative() ? MAX_INTEGER : MAX_INTEGER - 1; }

    // ------------------------------------------------------------------------------------------ frames
    sealed interface Frame {}
    /** Before a value of this shape (whitespace may come first). */
    record ValueF(JsonShape shape) implements Frame {}
    /** Inside an exact text: {@code pos} bytes of {@code bytes} matched. */
    record LitF(byte[] bytes, int pos) implements Frame {}
    /**
     * Inside a string after its opening quote. escape: 0 none, 1 after a backslash, 2..5 after \\u and (escape-2) hex
     * digits, 6 after \\u and a 'd' in a bounded string (a surrogate escape is refused there: it would make the
     * code-point count depend on its partner). count: code points begun so far (the one in progress included).
     */
    record StrF(JsonShape.Str shape, int escape, int utf8Pending, int count) implements Frame {}
    /**
     * Inside a number; see {@link #number} for the phases. For an integer: negative and magnitude so far (the digits
     * read as a long), which is what bounds are checked against.
     */
    record NumF(JsonShape.Num shape, int phase, int length, boolean negative, long magnitude) implements Frame {
        boolean integer() { return shape.integer(); }
    }
    /** Inside an object: phase, the index of the next property that may come, the value shape of the key just read. */
    record ObjF(JsonShape.Obj shape, int phase, int next, JsonShape pending) implements Frame {}
    /** Inside an array; count: the items begun so far. */
    record ArrF(JsonShape.Arr shape, int phase, int count) implements Frame {}

    static final int OPEN = 0, KEY = 1, VALUE = 2, COMMA = 3;

    /** An immutable stack of frames (null: the top-level value is complete). */
    record Stack(Frame head, Stack tail) {
        Stack push(Frame f) { return new Stack(f, this); }
    }

    /** {@code f} on top of {@code below} (null: the empty stack). */
    static Stack push(Stack below, Frame f) { return new Stack(f, below); }

    /** A parse state: the frames and the whitespace bytes just read. */
    public record State(Stack stack, int whitespace) {}

    private final Map<JsonShape, Integer> minLengths = new IdentityHashMap<>();
    private List<State> states;

    public Matcher(JsonShape shape) {
        this.states = List.of(new State(new Stack(new ValueF(shape), null), 0));
    }

    /** The states after {@code bytes}; empty when the bytes cannot continue any valid text. */
    public List<State> tryFeed(byte[] bytes) {
        List<State> cur = states;
        for (byte b : bytes) {
            List<State> next = new ArrayList<>(cur.size());
            for (State s : cur) feed(s.stack(), s.whitespace(), b & 0xff, next);
            if (next.isEmpty()) return next;
            cur = next;
        }
        return cur;
    }

    /** Whether one byte may come next (a quick filter before trying whole tokens). */
    public boolean acceptsByte(int b) {
        List<State> next = new ArrayList<>(2);
        for (State s : states) {
            feed(s.stack(), s.whitespace(), b, next);
            if (!next.isEmpty()) return true;
        }
        return false;
    }

    /** Whether {@code text} is a complete value of {@code shape} (compact or not). */
    static boolean matches(JsonShape shape, byte[] text) {
        Matcher m = new Matcher(shape);
        List<State> next = m.tryFeed(text);
        return !next.isEmpty() && m.remaining(next) == 0;
    }

    /** Moves on to states returned by {@link #tryFeed}. */
    public void commit(List<State> next) {
        if (next.isEmpty()) throw new IllegalArgumentException("no valid JSON continues this way");
        states = next;
    }

    /** Feeds bytes; an error if they cannot continue a valid text. */
    public void feed(byte[] bytes) { commit(tryFeed(bytes)); }

    /** Fewest bytes that complete the value from the current state (0: it is complete now). */
    public int remaining() { return remaining(states); }

    public int remaining(List<State> ss) {
        int best = Integer.MAX_VALUE;
        for (State s : ss) best = Math.min(best, remaining(s.stack()));
        return best;
    }

    /** The text so far is a complete value. */
    public boolean complete() { return remaining() == 0; }

    /** More bytes may still follow (false once the top-level value is closed). */
    public boolean canContinue() {
        for (State s : states) if (s.stack() != null) return true;
        return false;
    }

    // ------------------------------------------------------------------------------------------ stepping

    private static boolean isWhitespace(int b) { return b == ' ' || b == '\n' || b == '\r' || b == '\t'; }

    private void feed(Stack st, int ws, int b, List<State> out) {
        if (st == null) return;                                     // nothing after the top-level value
        Frame f = st.head();
        switch (f) {
            case ValueF v -> {
                if (isWhitespace(b)) { if (ws < MAX_WHITESPACE) out.add(new State(st, ws + 1)); return; }
                start(v.shape(), st.tail(), b, out);
            }
            case LitF l -> {
                if ((l.bytes()[l.pos()] & 0xff) != b) return;
                out.add(new State(l.pos() + 1 == l.bytes().length ? st.tail() : push(st.tail(), new LitF(l.bytes(), l.pos() + 1)), 0));
            }
            case StrF s -> string(s, st.tail(), b, out);
            case NumF n -> {
                int phase = number(n, b);
                if (phase >= 0) {
                    if (n.length() < (n.integer() ? integerLimit(n) : MAX_NUMBER)) {
                        boolean digit = n.integer() && b >= '0' && b <= '9';
                        NumF next = new NumF(n.shape(), phase, n.length() + 1, n.negative(), digit ? grow(n.magnitude(), b - '0') : n.magnitude());
                        if (!n.shape().bounded() || extraDigits(next) >= 0) out.add(new State(push(st.tail(), next), 0));
                    }
                } else if (numberEnds(n)) {
                    feed(st.tail(), 0, b, out);                      // the byte ends the number: it belongs to what holds it
                }
            }
            case ObjF o -> object(o, st, ws, b, out);
            case ArrF a -> array(a, st, ws, b, out);
        }
    }

    /** The first byte of a value of shape s, pushed above {@code below}. */
    private void start(JsonShape s, Stack below, int b, List<State> out) {
        switch (s) {
            case JsonShape.Any a -> {
                switch (b) {
                    case '{' -> out.add(new State(push(below, new ObjF((JsonShape.Obj) JsonShape.ANY_OBJECT, OPEN, 0, null)), 0));
                    case '[' -> out.add(new State(push(below, new ArrF(ANY_ARRAY, OPEN, 0)), 0));
                    case '"' -> out.add(new State(push(below, new StrF(ANY_STRING, 0, 0, 0)), 0));
                    case 't' -> out.add(new State(push(below, new LitF(TRUE, 1)), 0));
                    case 'f' -> out.add(new State(push(below, new LitF(FALSE, 1)), 0));
                    case 'n' -> out.add(new State(push(below, new LitF(NULL, 1)), 0));
                    default -> startNumber(ANY_NUMBER, below, b, out);
                }
            }
            case JsonShape.Obj o -> { if (b == '{') out.add(new State(push(below, new ObjF(o, OPEN, 0, null)), 0)); }
            case JsonShape.Arr a -> { if (b == '[') out.add(new State(push(below, new ArrF(a, OPEN, 0)), 0)); }
            case JsonShape.Str x -> { if (b == '"') out.add(new State(push(below, new StrF(x, 0, 0, 0)), 0)); }
            case JsonShape.Num n -> startNumber(n, below, b, out);
            case JsonShape.Bool x -> {
                if (b == 't') out.add(new State(push(below, new LitF(TRUE, 1)), 0));
                if (b == 'f') out.add(new State(push(below, new LitF(FALSE, 1)), 0));
            }
            case JsonShape.Null x -> { if (b == 'n') out.add(new State(push(below, new LitF(NULL, 1)), 0)); }
            case JsonShape.Literals l -> {
                for (byte[] t : l.texts()) {
                    if ((t[0] & 0xff) != b) continue;
                    out.add(new State(t.length == 1 ? below : push(below, new LitF(t, 1)), 0));
                }
            }
            case JsonShape.AnyOf a -> { for (JsonShape o : a.options()) start(o, below, b, out); }
        }
    }

    private static final byte[] TRUE = "true".getBytes(), FALSE = "false".getBytes(), NULL = "null".getBytes();

    private static final JsonShape.Str ANY_STRING = new JsonShape.Str();
    private static final JsonShape.Num ANY_NUMBER = new JsonShape.Num(false);
    private static final JsonShape.Arr ANY_ARRAY = new JsonShape.Arr(JsonShape.ANY);

    private static void startNumber(JsonShape.Num shape, Stack below, int b, List<State> out) {
        int phase = b == '-' ? 0 : b == '0' ? 1 : b >= '1' && b <= '9' ? 2 : -1;
        if (phase < 0) return;
        NumF n = new NumF(shape, phase, 1, b == '-', phase == 2 ? b - '0' : 0);
        if (!shape.bounded() || extraDigits(n) >= 0) out.add(new State(push(below, n), 0));
    }

    /** magnitude * 10 + digit, or -1 once it no longer fits a long (then no bound can hold). */
    private static long grow(long magnitude, int digit) {
        if (magnitude < 0 || magnitude > (Long.MAX_VALUE - digit) / 10) return -1;
        return magnitude * 10 + digit;
    }

    /**
     * For a bounded integer: the fewest more digits after which its value lies within the bounds (0: it does now), or
     * -1 when no continuation within {@link #MAX_INTEGER} characters does. From a prefix of magnitude p, j more
     * digits reach exactly the magnitudes p*10^j .. p*10^j + 10^j - 1; a leading 0 ends the digits; after a lone '-'
     * j digits reach 1 .. 10^j - 1 (a bounded integer never takes "-0", so '-' is only allowed when a negative value is).
     */
    static int extraDigits(NumF n) {
        JsonShape.Num s = n.shape();
        if (n.magnitude() < 0) return -1;
        if (n.phase() == 1) return !n.negative() && within(s, false, 0, 0) ? 0 : -1;   // "-0" refused: bounded, '-' means below 0
        int room = integerLimit(n) - n.length();
        long pow = 1;                                                // 10^j
        for (int j = n.phase() == 0 ? 1 : 0; j <= room; j++) {
            if (j > 0) {
                if (pow > Long.MAX_VALUE / 10) return -1;
                pow *= 10;
            }
            long lo, hi;
            if (n.phase() == 0) { lo = 1; hi = pow - 1; }
            else {
                if (n.magnitude() > (Long.MAX_VALUE - (pow - 1)) / pow) return -1;
                lo = n.magnitude() * pow;
                hi = lo + pow - 1;
            }
            if (within(s, n.negative(), lo, hi)) return j;
        }
        return -1;
    }

    /** Whether some value with magnitude in lo..hi (negated when negative) lies within the shape's bounds. */
    private static boolean within(JsonShape.Num s, boolean negative, long lo, long hi) {
        long vlo = negative ? -hi : lo, vhi = negative ? -lo : hi;
        return vlo <= s.max() && vhi >= s.min();
    }

    /**
     * JSON's number grammar. Phases: 0 after '-', 1 after a leading '0', 2 in the integer digits, 3 after '.',
     * 4 in the fraction, 5 after 'e', 6 after the exponent's sign, 7 in the exponent. Returns the next phase, or -1.
     */
    private static int number(NumF n, int b) {
        boolean digit = b >= '0' && b <= '9';
        boolean real = !n.integer();
        return switch (n.phase()) {
            case 0 -> b == '0' ? 1 : digit ? 2 : -1;
            case 1 -> real && b == '.' ? 3 : real && (b == 'e' || b == 'E') ? 5 : -1;
            case 2 -> digit ? 2 : real && b == '.' ? 3 : real && (b == 'e' || b == 'E') ? 5 : -1;
            case 3 -> digit ? 4 : -1;
            case 4 -> digit ? 4 : b == 'e' || b == 'E' ? 5 : -1;
            case 5 -> b == '+' || b == '-' ? 6 : digit ? 7 : -1;
            case 6, 7 -> digit ? 7 : -1;
            default -> -1;
        };
    }

    private static boolean numberDone(NumF n) {
        int p = n.phase();
        return p == 1 || p == 2 || p == 4 || p == 7;
    }

    /** The number may end here: its grammar is complete and its value within the bounds. */
    private static boolean numberEnds(NumF n) {
        return numberDone(n) && (!n.shape().bounded() || extraDigits(n) == 0);
    }

    private static void string(StrF s, Stack below, int b, List<State> out) {
        JsonShape.Str shape = s.shape();
        int count = s.count();
        if (s.escape() == 1) {
            if ("\"\\/bfnrt".indexOf(b) >= 0) out.add(new State(push(below, new StrF(shape, 0, 0, count)), 0));
            else if (b == 'u') out.add(new State(push(below, new StrF(shape, 2, 0, count)), 0));
            return;
        }
        if (s.escape() >= 2) {
            boolean hex = (b >= '0' && b <= '9') || (b >= 'a' && b <= 'f') || (b >= 'A' && b <= 'F');
            if (s.escape() == 6) hex = b >= '0' && b <= '7';          // \\uD0xx..\\uD7xx: not a surrogate
            if (!hex) return;
            int next = s.escape() == 2 && shape.bounded() && (b == 'd' || b == 'D') ? 6 : s.escape() == 6 ? 4 : s.escape() == 5 ? 0 : s.escape() + 1;
            out.add(new State(push(below, new StrF(shape, next, 0, count)), 0));
            return;
        }
        if (s.utf8Pending() > 0) {                                   // inside a multi-byte character
            if ((b & 0xC0) == 0x80) out.add(new State(push(below, new StrF(shape, 0, s.utf8Pending() - 1, count)), 0));
            return;
        }
        if (b == '"') { if (count >= shape.minLength()) out.add(new State(below, 0)); return; }
        if (count >= shape.maxLength()) return;                      // every other byte begins one more code point
        if (b == '\\') { out.add(new State(push(below, new StrF(shape, 1, 0, count + 1)), 0)); return; }
        if (b < 0x20) return;                                       // control characters must be escaped
        if (b < 0x80) { out.add(new State(push(below, new StrF(shape, 0, 0, count + 1)), 0)); return; }
        int pending = b >= 0xC2 && b <= 0xDF ? 1 : b >= 0xE0 && b <= 0xEF ? 2 : b >= 0xF0 && b <= 0xF4 ? 3 : -1;
        if (pending > 0) out.add(new State(push(below, new StrF(shape, 0, pending, count + 1)), 0));
    }

    private void object(ObjF o, Stack st, int ws, int b, List<State> out) {
        if (isWhitespace(b)) { if (ws < MAX_WHITESPACE) out.add(new State(st, ws + 1)); return; }
        Stack below = st.tail();
        JsonShape.Obj shape = o.shape();
        switch (o.phase()) {
            case OPEN, COMMA -> {
                if (b == '}' && o.phase() == OPEN && !requiredFrom(shape, o.next())) { out.add(new State(below, 0)); return; }
                if (b != '"') return;
                if (shape.open()) {
                    out.add(new State(push(below, new ObjF(shape, KEY, 0, JsonShape.ANY)).push(new StrF(ANY_STRING, 0, 0, 0)), 0));
                    return;
                }
                List<JsonShape.Property> props = shape.properties();
                for (int k = o.next(); k < props.size(); k++) {
                    JsonShape.Property p = props.get(k);
                    out.add(new State(push(below, new ObjF(shape, KEY, k + 1, p.shape())).push(new LitF(p.key(), 1)), 0));
                    if (p.required()) break;                         // a required property cannot be skipped
                }
            }
            case KEY -> {
                if (b == ':') out.add(new State(push(below, new ObjF(shape, VALUE, o.next(), null)).push(new ValueF(o.pending())), 0));
            }
            case VALUE -> {
                if (b == '}' && !requiredFrom(shape, o.next())) out.add(new State(below, 0));
                if (b == ',' && (shape.open() || o.next() < shape.properties().size())) out.add(new State(push(below, new ObjF(shape, COMMA, o.next(), null)), 0));
            }
            default -> throw new IllegalStateException("object phase " + o.phase());
        }
    }

    private void array(ArrF a, Stack st, int ws, int b, List<State> out) {
        if (isWhitespace(b)) { if (ws < MAX_WHITESPACE) out.add(new State(st, ws + 1)); return; }
        Stack below = st.tail();
        JsonShape.Arr shape = a.shape();
        switch (a.phase()) {
            case OPEN -> {
                if (b == ']') { if (shape.minItems() == 0) out.add(new State(below, 0)); return; }
                if (shape.maxItems() > 0) start(shape.items(), push(below, new ArrF(shape, VALUE, 1)), b, out);
            }
            case VALUE -> {
                if (b == ']' && a.count() >= shape.minItems()) out.add(new State(below, 0));
                if (b == ',' && a.count() < shape.maxItems()) out.add(new State(push(below, new ArrF(shape, COMMA, a.count())), 0));
            }
            case COMMA -> start(shape.items(), push(below, new ArrF(shape, VALUE, a.count() + 1)), b, out);
            default -> throw new IllegalStateException("array phase " + a.phase());
        }
    }

    private static boolean requiredFrom(JsonShape.Obj o, int next) {
        if (o.open()) return false;
        for (int k = next; k < o.properties().size(); k++) if (o.properties().get(k).required()) return true;
        return false;
    }

    // ------------------------------------------------------------------------------------------ distances

    /** Fewest bytes that finish every frame of the stack. */
    int remaining(Stack st) {
        int sum = 0;
        for (Stack s = st; s != null; s = s.tail()) {
            sum += switch (s.head()) {
                case ValueF v -> minLength(v.shape());
                case LitF l -> l.bytes().length - l.pos();
                case StrF x -> 1 + x.utf8Pending() + (x.escape() == 1 ? 1 : x.escape() == 6 ? 3 : x.escape() >= 2 ? 6 - x.escape() : 0)
                        + Math.max(0, x.shape().minLength() - x.count());       // one byte at least per missing code point
                case NumF n -> n.shape().bounded() ? Math.max(0, extraDigits(n)) : numberDone(n) ? 0 : 1;
                case ObjF o -> switch (o.phase()) {
                    case OPEN -> closeFrom(o.shape(), o.next(), true);
                    case VALUE -> closeFrom(o.shape(), o.next(), false);
                    case KEY -> 1 + minLength(o.pending()) + closeFrom(o.shape(), o.next(), false);
                    default -> afterComma(o);
                };
                case ArrF a -> arrayClose(a);
            };
        }
        return sum;
    }

    /** Bytes that close an array: the item after a comma, then the items missing below minItems (",v" each), then ']'. */
    private int arrayClose(ArrF a) {
        JsonShape.Arr shape = a.shape();
        int item = minLength(shape.items());
        return switch (a.phase()) {
            case OPEN -> shape.minItems() == 0 ? 1 : shape.minItems() * (item + 1);
            case VALUE -> 1 + Math.max(0, shape.minItems() - a.count()) * (item + 1);
            default -> item + 1 + Math.max(0, shape.minItems() - a.count() - 1) * (item + 1);
        };
    }

    private int afterComma(ObjF o) {
        JsonShape.Obj shape = o.shape();
        if (shape.open()) return 5;                                 // "":0}
        int best = Integer.MAX_VALUE / 4;
        for (int k = o.next(); k < shape.properties().size(); k++) {
            JsonShape.Property p = shape.properties().get(k);
            best = Math.min(best, p.key().length + 1 + minLength(p.shape()) + closeFrom(shape, k + 1, false));
            if (p.required()) break;
        }
        return best;
    }

    /**
     * Bytes that close an object from property index {@code next}: each required property left as {@code ,"key":v},
     * then '}'; {@code first}: no property written yet, so the first needs no comma.
     */
    static int closeFrom(JsonShape.Obj o, int next, boolean first) {
        if (o.open()) return 1;
        int sum = 1;
        boolean any = false;
        for (int k = next; k < o.properties().size(); k++) {
            JsonShape.Property p = o.properties().get(k);
            if (!p.required()) continue;
            sum += 1 + p.key().length + 1 + JsonShape.minLength(p.shape());
            any = true;
        }
        return first && any ? sum - 1 : sum;
    }

    private int minLength(JsonShape s) {
        Integer v = minLengths.get(s);
        if (v == null) minLengths.put(s, v = JsonShape.minLength(s));
        return v;
    }
}
