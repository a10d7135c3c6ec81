package dev.kimivl.text;

import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The incremental prompt APIs a server uses to render and tokenize only a conversation's new messages:
 * {@link Tokenizer#encodeContinuation} must give exactly {@code encode(prefix + suffix)} or refuse (null), and
 * {@link ChatTemplate#renderTail} exactly what the whole render adds after the prefix's render, or refuse.
 */
class PromptContinuationTest {
    static Tokenizer tok;

    @BeforeAll
    static void load() throws IOException {
        tok = Tokenizer.load(TestFiles.goldenTokenizerDir());
    }

    /** Pieces of chat prompts and of what users type, special-token names and whitespace runs among them. */
    private static final String[] FRAGMENTS = {"<|im_end|>", "<|im_user|>", "user", "<|im_middle|>", "<|im_assistant|>",
            "assistant", "<|im_system|>", "<|media_start|>image<|media_content|><|media_pad|><|media_end|>", "Hello",
            " world", "  ", "\n", "\n\n", " \t", "don't", "123456", "é漢字", "◁think▷", "◁/think▷", "<|im_", "end|>",
            "<|", "|>", "🙂", "x", " ", ".", "!!", "\r\n", "The quick brown fox"};

    private static String randomText(Random r, int pieces) {
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < pieces; i++) b.append(FRAGMENTS[r.nextInt(FRAGMENTS.length)]);
        return b.toString();
    }

    @Test
    void continuationIsTheWholeEncodingOrRefused() {
        Random r = new Random(7);
        int proven = 0, cases = 4000;
        for (int c = 0; c < cases; c++) {
            // prompts as a chat template makes them: a prefix that usually ends with a special token
            String prefix = randomText(r, 1 + r.nextInt(12)) + (r.nextInt(5) > 0 ? "<|im_end|>" : "");
            String suffix = randomText(r, r.nextInt(12));
            int[] whole = tok.encode(prefix + suffix);
            int[] joined = tok.encodeContinuation(prefix, tok.encode(prefix), suffix);
            if (joined == null) continue;
            proven++;
            assertArrayEquals(whole, joined, () -> "prefix " + prefix + " suffix " + suffix);
        }
        // the shortcut must actually apply to prompts of this shape, or the cache would be a no-op
        assertTrue(proven > cases / 2, "only " + proven + " of " + cases + " continuations were proven");
    }

    @Test
    void refusesAPrefixThatDoesNotEndWithASpecialToken() {
        assertNull(tok.encodeContinuation("Hello", tok.encode("Hello"), " world"));
        assertNull(tok.encodeContinuation("", new int[0], "Hello"));
        // ends with the name's text, but the ids say it was not matched as the special token
        String text = "<|im_end|>";
        int[] notSpecial = tok.encode("<|im_en");
        assertNull(tok.encodeContinuation(text, notSpecial, "x"));
    }

    @Test
    void refusesASpecialNameThatCrossesTheCut() {
        // 256 single bytes, and two specials where one name extends the other past the cut
        byte[][] ranks = new byte[256][];
        for (int b = 0; b < 256; b++) ranks[b] = new byte[] {(byte) b};
        Map<String, Integer> specials = new LinkedHashMap<>();
        specials.put("<|a|>", 256);
        specials.put("<|a|>b", 257);
        Tokenizer t = Tokenizer.create(ranks, Tokenizer.KIMI_PATTERN, specials, "test ranks");
        String prefix = "x<|a|>";
        int[] prefixIds = t.encode(prefix);
        assertEquals(256, prefixIds[prefixIds.length - 1]);
        int[] whole = t.encode(prefix + "bc");
        assertEquals(257, whole[1], "the whole text matches the longer name across the cut");
        assertNull(t.encodeContinuation(prefix, prefixIds, "bc"));
        assertArrayEquals(t.encode(prefix + "c"), t.encodeContinuation(prefix, prefixIds, "c"));
    }

    @Test
    void refusesARunOfMoreThanTheChunkLimitAcrossTheCut() {
        int half = Tokenizer.MAX_RUN_CHARS / 2 + 100;
        String prefix = "a".repeat(half) + "<|im_end|>";
        String suffix = "<|im_user|>" + "b".repeat(half);
        assertNull(tok.encodeContinuation(prefix, tok.encode(prefix), suffix));
        // a space between the runs: the whole text is chunked as the parts are, so the continuation holds
        String spaced = " " + "b".repeat(half);
        assertArrayEquals(tok.encode(prefix + spaced), tok.encodeContinuation(prefix, tok.encode(prefix), spaced));
        // whitespace runs count as well
        String spaces = " ".repeat(half);
        String p2 = "x<|im_end|>";
        assertArrayEquals(tok.encode(p2 + spaces), tok.encodeContinuation(p2, tok.encode(p2), spaces));
    }

    @Test
    void refusesATextPastOneSlice() {
        String prefix = "ab ".repeat(Tokenizer.MAX_ENCODE_CHARS / 3) + "<|im_end|>";
        assertNull(tok.encodeContinuation(prefix, tok.encode(prefix), "more"));
    }

    // ------------------------------------------------------------------------------------------- renderTail

    private static List<ChatMessage> randomConversation(Random r, int n) {
        String[] roles = {"system", "user", "assistant", "user", "assistant"};
        List<ChatMessage> m = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            String role = roles[r.nextInt(roles.length)];
            if (r.nextBoolean()) {
                m.add(ChatMessage.of(role, randomText(r, r.nextInt(6))));
            } else {
                List<ChatMessage.Part> parts = new ArrayList<>();
                for (int j = r.nextInt(3); j >= 0; j--) parts.add(r.nextBoolean() ? ChatMessage.imagePart() : ChatMessage.textPart(randomText(r, 3)));
                m.add(new ChatMessage(role, null, parts));
            }
        }
        return m;
    }

    @Test
    void kimisTemplateRendersTailsThatCompleteTheWholeRender() throws IOException {
        for (ChatTemplate t : List.of(ChatTemplate.builtIn(), ChatTemplateTest.reference())) {
            assertTrue(t.isAppendOnly(), t.name());
            Random r = new Random(11);
            for (int c = 0; c < 300; c++) {
                List<ChatMessage> m = randomConversation(r, 1 + r.nextInt(6));
                int k = 1 + r.nextInt(m.size());
                boolean gen = r.nextBoolean();
                String tail = t.renderTail(m, k, gen);
                assertNotNull(tail);
                assertEquals(t.render(m, gen), t.render(m.subList(0, k), false) + tail, () -> "split at " + k + " of " + m);
            }
        }
    }

    @Test
    void templatesThatRewriteHistoryAreNotAppendOnly() {
        // drops the reasoning of every assistant turn but the last, as Qwen3-style thinking templates do
        ChatTemplate dropsReasoning = ChatTemplate.of("{%- for m in messages -%}<|{{ m.role }}|>"
                + "{%- if m.role == 'assistant' and not loop.last and m.content is string and '◁/think▷' in m.content -%}"
                + "{{ m.content.split('◁/think▷')[-1] }}{%- else -%}{{ m.content if m.content is string else '' }}{%- endif -%}"
                + "<|end|>{%- endfor -%}{%- if add_generation_prompt -%}<|assistant|>{%- endif -%}", "drops reasoning");
        // numbers the messages from the end
        ChatTemplate countsDown = ChatTemplate.of("{%- for m in messages -%}{{ messages|length - loop.index }}:"
                + "{{ m.content if m.content is string else '' }}\n{%- endfor -%}", "counts down");
        // says which message is last
        ChatTemplate marksLast = ChatTemplate.of("{%- for m in messages -%}{{ m.content if m.content is string else '' }}"
                + "{%- if loop.last -%}(last){%- endif -%}\n{%- endfor -%}", "marks the last");
        for (ChatTemplate t : List.of(dropsReasoning, countsDown, marksLast)) {
            assertFalse(t.isAppendOnly(), t.name());
            List<ChatMessage> m = List.of(ChatMessage.user("a"), ChatMessage.assistant("◁think▷r◁/think▷b"), ChatMessage.user("c"));
            assertNull(t.renderTail(m, 2, true), t.name());
        }
    }

    @Test
    void aTemplateThatRejectsAConversationRejectsItsTailToo() {
        // roles must alternate user/assistant (a common template check)
        ChatTemplate alternates = ChatTemplate.of("{%- for m in messages -%}"
                + "{%- if (m.role == 'user') != (loop.index0 % 2 == 0) -%}{{ raise_exception('roles must alternate') }}{%- endif -%}"
                + "[{{ m.role }}]{{ m.content if m.content is string else '' }}{%- endfor -%}", "alternates");
        // the tail is rendered after a stand-in for the first message only, which cannot see the order: not append-only
        assertFalse(alternates.isAppendOnly());
        List<ChatMessage> m = Arrays.asList(ChatMessage.user("a"), ChatMessage.assistant("b"), ChatMessage.assistant("c"));
        assertNull(alternates.renderTail(m, 2, false));
        assertThrows(IllegalArgumentException.class, () -> alternates.render(m, false));
    }

    @Test
    void aParsedTreeRendersWhatRenderForResultDoes() throws Exception {
        ChatTemplate trailingNewline = ChatTemplate.of("{%- for m in messages -%}[{{ m.role }}]{{ m.content if m.content is string else '' }}\n"
                + "{%- endfor -%}\n", "ends with a newline");
        for (ChatTemplate t : List.of(ChatTemplate.builtIn(), ChatTemplateTest.reference(), trailingNewline)) {
            Random r = new Random(13);
            for (int c = 0; c < 200; c++) {
                List<ChatMessage> m = randomConversation(r, 1 + r.nextInt(6));
                boolean gen = r.nextBoolean();
                assertEquals(t.renderUnparsed(m, gen), t.render(m, gen), () -> t.name() + ": " + m);
            }
        }
        // renders on several threads at once (the server's requests): each takes its own parsed tree
        ChatTemplate t = ChatTemplate.builtIn();
        List<List<ChatMessage>> conversations = new ArrayList<>();
        Random r = new Random(17);
        for (int c = 0; c < 64; c++) conversations.add(randomConversation(r, 1 + r.nextInt(6)));
        try (var pool = java.util.concurrent.Executors.newFixedThreadPool(8)) {
            List<java.util.concurrent.Future<Boolean>> same = new ArrayList<>();
            for (int rep = 0; rep < 8; rep++) {
                for (List<ChatMessage> m : conversations) same.add(pool.submit(() -> t.render(m, true).equals(t.renderUnparsed(m, true))));
            }
            for (var f : same) assertTrue(f.get());
        }
        // a template that raises: the same error as before
        ChatTemplate raises = ChatTemplate.of("{{ raise_exception('no, thanks') }}", "raises");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> raises.render(List.of(ChatMessage.user("hi")), true));
        assertTrue(e.getMessage().contains("no, thanks"), e.getMessage());
    }
}
