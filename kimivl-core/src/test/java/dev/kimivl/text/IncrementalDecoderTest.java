package dev.kimivl.text;

import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

class IncrementalDecoderTest {
    static Tokenizer tok;

    @BeforeAll
    static void load() throws IOException {
        tok = Tokenizer.load(TestFiles.goldenTokenizerDir());
    }

    static List<String> stream(int[] ids, boolean skipSpecial) {
        IncrementalDecoder d = tok.incrementalDecoder(skipSpecial);
        List<String> out = new ArrayList<>();
        for (int id : ids) out.add(d.push(id));
        out.add(d.flush());
        return out;
    }

    /** Ids that spell the text one byte at a time, so every multi-byte character spans several tokens. */
    static int[] byteTokens(String text) {
        byte[] bytes = text.getBytes(java.nio.charset.StandardCharsets.UTF_8);
        int[] ids = new int[bytes.length];
        for (int i = 0; i < bytes.length; i++) ids[i] = singleByteId(bytes[i]);
        return ids;
    }

    static int singleByteId(byte b) {
        for (int id = 0; id < tok.numRanks(); id++) {
            byte[] t = tok.tokenBytes(id);
            if (t.length == 1 && t[0] == b) return id;
        }
        throw new AssertionError("no token for byte " + b);
    }

    @Test
    void splitCharactersAreHeldBackUntilComplete() {
        String text = "\u4f60\u597d\uD83D\uDE00a\uD83D\uDC68\u200D\uD83D\uDC69\u00e9\u0939\u093f";
        int[] ids = byteTokens(text);
        List<String> pieces = stream(ids, false);
        assertEquals(text, String.join("", pieces));
        for (String p : pieces) {
            assertFalse(p.contains("\uFFFD"), "broken character emitted: " + pieces);
            for (int i = 0; i < p.length(); i++) {
                char c = p.charAt(i);
                if (Character.isHighSurrogate(c)) assertTrue(i + 1 < p.length() && Character.isLowSurrogate(p.charAt(++i)), pieces::toString);
                else assertFalse(Character.isLowSurrogate(c), pieces::toString);
            }
        }
        // The first byte of 你 alone completes nothing; its third byte emits the whole character.
        assertEquals(List.of("", "", "\u4f60"), pieces.subList(0, 3));
        assertFalse(pieces.get(pieces.size() - 1).length() > 0, "nothing should be left for flush");
    }

    @Test
    void realEncodingsStreamToTheirDecode() {
        for (String text : List.of("\u6211\u4eec\u4eca\u5929\u5b66\u4e60\u673a\u5668\u5b66\u4e60\u3002", "emoji \uD83D\uDE00\uD83D\uDC4D\uD83C\uDFFD \uD83C\uDF89",
                "<|im_user|>\u4f60\u597d<|im_end|>", "Ti\u1ebfng Vi\u1ec7t c\u00f3 d\u1ea5u")) {
            int[] ids = tok.encode(text);
            List<String> pieces = stream(ids, false);
            assertEquals(text, String.join("", pieces));
            pieces.forEach(p -> assertFalse(p.contains("\uFFFD"), text));
            assertEquals(tok.decode(ids, true), String.join("", stream(ids, true)));
        }
    }

    @Test
    void anyIdSequenceStreamsToExactlyDecode() {
        // Random ids include invalid UTF-8 (lone continuation bytes, truncated sequences): the stream must still
        // concatenate to decode, with U+FFFD exactly where decode puts it.
        Random r = new Random(3);
        for (int trial = 0; trial < 2000; trial++) {
            int[] ids = new int[1 + r.nextInt(12)];
            for (int i = 0; i < ids.length; i++) ids[i] = r.nextInt(tok.vocabSize());
            assertEquals(tok.decode(ids), String.join("", stream(ids, false)), () -> java.util.Arrays.toString(ids));
            assertEquals(tok.decode(ids, true), String.join("", stream(ids, true)), () -> java.util.Arrays.toString(ids));
        }
    }

    @Test
    void everyShortByteStringStreamsToExactlyDecode() {
        // Each byte its own token, so the decoder must choose a cut after every byte. All strings of up to four
        // bytes over the bytes where UTF-8's rules change (leads, the continuation ranges that E0, ED, F0 and F4
        // restrict, bytes that are never valid). ED A0 80 (an encoded surrogate) is one U+FFFD for Java's decoder,
        // so the decoder must hold ED A0 back too (TokenizerFuzzTest#decodeIds found that it emitted ED A0 early).
        int[] interesting = {0x41, 0x80, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC2, 0xE0, 0xED, 0xF0, 0xF4, 0xF5};
        int[] byteId = new int[256];
        for (int b : interesting) byteId[b] = singleByteId((byte) b);
        int[] ids = new int[4];
        for (int len = 1; len <= 4; len++) {
            int count = (int) Math.pow(interesting.length, len);
            for (int n = 0; n < count; n++) {
                int[] seq = java.util.Arrays.copyOf(ids, len);
                for (int i = 0, v = n; i < len; i++, v /= interesting.length) seq[i] = byteId[interesting[v % interesting.length]];
                String expected = tok.decode(seq);
                String streamed = String.join("", stream(seq, false));
                if (!expected.equals(streamed)) fail("bytes " + hex(seq) + ": streamed " + escape(streamed) + ", decode " + escape(expected));
            }
        }
        assertEquals("\uFFFD", String.join("", stream(new int[] {byteId[0xED], byteId[0xA0], byteId[0x80]}, false)));
    }

    private static String hex(int[] ids) {
        StringBuilder sb = new StringBuilder();
        for (int id : ids) for (byte b : tok.tokenBytes(id)) sb.append(String.format("%02X ", b & 0xFF));
        return sb.toString().trim();
    }

    private static String escape(String s) {
        StringBuilder sb = new StringBuilder();
        for (char c : s.toCharArray()) sb.append(c >= 0x20 && c < 0x7F ? String.valueOf(c) : String.format("\\u%04x", (int) c));
        return sb.toString();
    }

    @Test
    void flushEmitsAnUnfinishedCharacterAsReplacement() {
        byte[] emoji = "\uD83D\uDE00".getBytes(java.nio.charset.StandardCharsets.UTF_8);
        IncrementalDecoder d = tok.incrementalDecoder(false);
        assertEquals("", d.push(singleByteId(emoji[0])));
        assertEquals("", d.push(singleByteId(emoji[1])));
        assertTrue(d.hasPending());
        assertEquals("\uFFFD", d.flush());
        assertFalse(d.hasPending());
    }
}
