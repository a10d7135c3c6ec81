package dev.kimivl.text;

/** The UTF-8 well-formedness rules (Unicode Table 3-7) that Java's decoder applies when it replaces bad bytes. */
final class Utf8 {
    private Utf8() {}

    /** Length of the sequence a lead byte starts, or 0 when the byte cannot start one. */
    static int expectedLength(int lead) {
        if (lead < 0x80) return 1;
        if (lead >= 0xC2 && lead <= 0xDF) return 2;
        if (lead >= 0xE0 && lead <= 0xEF) return 3;
        if (lead >= 0xF0 && lead <= 0xF4) return 4;
        return 0;
    }

    /** Whether {@code b} may be the byte at {@code index} (1..3) of a sequence starting with {@code lead}. */
    static boolean validContinuation(int lead, int index, int b) {
        if (index == 1) {
            switch (lead) {
                case 0xE0: return b >= 0xA0 && b <= 0xBF;
                case 0xED: return b >= 0x80 && b <= 0x9F;
                case 0xF0: return b >= 0x90 && b <= 0xBF;
                case 0xF4: return b >= 0x80 && b <= 0x8F;
                default: break;
            }
        }
        return b >= 0x80 && b <= 0xBF;
    }

    /** Length of the well-formed character at b[i], or 0 if none is complete before {@code end}. */
    static int completeSequenceLength(byte[] b, int i, int end) {
        int lead = b[i] & 0xFF;
        int n = expectedLength(lead);
        if (n == 0 || i + n > end) return 0;
        for (int k = 1; k < n; k++) if (!validContinuation(lead, k, b[i + k] & 0xFF)) return 0;
        return n;
    }

    /**
     * Where the unfinished sequence at the end of b[0, len) starts: the position of a lead byte whose following
     * bytes are too few and could still be taken, with the bytes still to come, as one unit by Java's decoder.
     * Returns {@code len} when the bytes end on a boundary, or on bytes that no further input can join.
     * <p>
     * "One unit" is Java's rule, not Table 3-7's: Java decodes a 3-byte sequence starting with ED and any
     * continuation bytes (an encoded surrogate, ED A0..BF xx, not valid UTF-8) and replaces the whole of it by a
     * single U+FFFD. Cutting after ED A0 would give two or three U+FFFD where {@link Tokenizer#decode} gives one
     * (found by TokenizerFuzzTest#decodeIds, kept as its regress-surrogate-ed-split input).
     */
    static int incompleteTailStart(byte[] b, int len) {
        for (int p = len - 1; p >= Math.max(0, len - 3); p--) {
            int lead = b[p] & 0xFF;
            if ((lead & 0xC0) == 0x80) continue;
            int n = expectedLength(lead);
            if (n <= len - p) return len;
            for (int k = 1; p + k < len; k++) if (!joinedByJavaDecoder(lead, k, b[p + k] & 0xFF)) return len;
            return p;
        }
        return len;
    }

    /** {@link #validContinuation}, except that Java's decoder takes any continuation byte after ED (see above). */
    private static boolean joinedByJavaDecoder(int lead, int index, int b) {
        if (lead == 0xED) return b >= 0x80 && b <= 0xBF;
        return validContinuation(lead, index, b);
    }
}
