package dev.kimivl.server;

import dev.kimivl.text.ChatMessage;
import dev.kimivl.text.ChatTemplate;
import dev.kimivl.text.Tokenizer;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The prompt cache gives exactly the ids of rendering and tokenizing the whole conversation, on random multi-turn
 * conversations as clients send them (system prompts or not, images, reasoning in earlier answers, special-token
 * names and chat markup typed by users, edited and regenerated turns), never another conversation's ids, and stays
 * within its bounds.
 */
class PromptCacheTest {
    static Tokenizer tokenizer;
    static ChatTemplate template;

    @BeforeAll
    static void load() throws IOException {
        Path dir = Path.of("../models/kimivl-nano-instruct");
        tokenizer = Tokenizer.load(dir);
        template = ChatTemplate.load(dir);
    }

    static int[] whole(List<ChatMessage> messages) {
        return tokenizer.encode(template.render(messages, true));
    }

    private static final String[] WORDS = {"the", "red", "circle", "is", "left", "of", "a", "blue", "square", ".", ",",
            "\n", "\n\n", "  ", "42", "é", "漢字", "🙂", "<|im_end|>", "<|im_user|>", "<|media_pad|>", "◁think▷", "◁/think▷",
            "{{ x }}", "{% if %}", "don't", "<|im_", "|>", "\t"};

    static String text(Random r, int words) {
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < words; i++) {
            if (i > 0 && r.nextInt(3) > 0) b.append(' ');
            b.append(WORDS[r.nextInt(WORDS.length)]);
        }
        return b.toString();
    }

    static ChatMessage user(Random r) {
        if (r.nextInt(4) > 0) return ChatMessage.user(text(r, 1 + r.nextInt(30)));
        List<ChatMessage.Part> parts = new ArrayList<>();
        for (int j = r.nextInt(3); j >= 0; j--) parts.add(r.nextBoolean() ? ChatMessage.imagePart() : ChatMessage.textPart(text(r, r.nextInt(10))));
        return new ChatMessage("user", null, parts);
    }

    static ChatMessage assistant(Random r) {
        String answer = text(r, r.nextInt(25));
        // a Thinking model's answer as a client may send it back: with its reasoning block, or without
        return ChatMessage.assistant(r.nextInt(3) == 0 ? "◁think▷" + text(r, 1 + r.nextInt(15)) + "◁/think▷" + answer : answer);
    }

    @Test
    void equalsTheWholeRenderOnRandomConversations() {
        PromptCache cache = new PromptCache(template, tokenizer);
        Random r = new Random(2026);
        int requests = 0, reused = 0, continuations = 0;
        List<List<ChatMessage>> conversations = new ArrayList<>();
        for (int step = 0; step < 1500; step++) {
            List<ChatMessage> m;
            int action = r.nextInt(10);
            if (conversations.isEmpty() || action == 0) {
                m = new ArrayList<>();
                if (r.nextBoolean()) m.add(ChatMessage.system(text(r, 1 + r.nextInt(20))));
                m.add(user(r));
                conversations.add(m);
            } else {
                List<ChatMessage> prev = conversations.get(r.nextInt(conversations.size()));
                m = new ArrayList<>(prev);
                switch (action) {
                    case 1 -> { }                                                          // the same request again
                    case 2 -> m.set(m.size() - 1, user(r));                                // the last question edited
                    case 3 -> m.set(r.nextInt(m.size()), user(r));                        // an earlier message edited
                    case 4 -> { if (m.size() > 2) m = new ArrayList<>(m.subList(0, m.size() - 2)); }   // a turn taken back
                    default -> {                                                           // the next turn
                        m.add(assistant(r));
                        m.add(user(r));
                        continuations++;
                    }
                }
                conversations.add(m);
            }
            List<ChatMessage> sent = List.copyOf(m);
            PromptCache.Encoded e = cache.encode(sent);
            requests++;
            if (e.reusedMessages() > 0) reused++;
            assertArrayEquals(whole(sent), e.ids(), () -> "conversation " + sent);
        }
        // most requests extend, repeat or branch from something seen: the cache must actually serve them
        assertTrue(reused > continuations / 2, reused + " of " + requests + " requests reused a cached prefix (" + continuations + " next turns)");
    }

    @Test
    void aHashCollisionIsAMissNotAnotherConversation() {
        PromptCache cache = new PromptCache(template, tokenizer);
        // "Aa" and "BB" have the same String.hashCode, so the two conversations have the same prefix hash
        assertEquals("Aa".hashCode(), "BB".hashCode());
        List<ChatMessage> first = List.of(ChatMessage.user("Aa"));
        assertEquals(ChatMessage.user("Aa").hashCode(), ChatMessage.user("BB").hashCode());
        cache.encode(first);
        List<ChatMessage> other = List.of(ChatMessage.user("BB"), ChatMessage.assistant("yes"), ChatMessage.user("and?"));
        PromptCache.Encoded e = cache.encode(other);
        assertEquals(0, e.reusedMessages());
        assertArrayEquals(whole(other), e.ids());
        // the real continuation of the first conversation does reuse it
        List<ChatMessage> next = List.of(ChatMessage.user("Aa"), ChatMessage.assistant("yes"), ChatMessage.user("and?"));
        PromptCache.Encoded n = cache.encode(next);
        assertEquals(1, n.reusedMessages());
        assertArrayEquals(whole(next), n.ids());
    }

    @Test
    void aNextTurnReusesTheWholeHistory() {
        PromptCache cache = new PromptCache(template, tokenizer);
        List<ChatMessage> m = new ArrayList<>(List.of(ChatMessage.system("Be brief."), ChatMessage.user("What colour is the circle?")));
        assertEquals(0, cache.encode(m).reusedMessages());
        for (int turn = 1; turn <= 5; turn++) {
            m.add(ChatMessage.assistant("Red, turn " + turn + "."));
            m.add(ChatMessage.user("And the square? " + turn));
            PromptCache.Encoded e = cache.encode(List.copyOf(m));
            assertEquals(m.size() - 2, e.reusedMessages(), "turn " + turn);
            assertArrayEquals(whole(m), e.ids());
        }
    }

    @Test
    void staysWithinItsBounds() {
        Random r = new Random(5);
        PromptCache byCount = new PromptCache(template, tokenizer, 8, 1L << 30);
        PromptCache byBytes = new PromptCache(template, tokenizer, 1000, 20_000);
        for (int i = 0; i < 200; i++) {
            List<ChatMessage> m = List.of(ChatMessage.user(i + " " + text(r, 1 + r.nextInt(200))));
            assertArrayEquals(whole(m), byCount.encode(m).ids());
            assertArrayEquals(whole(m), byBytes.encode(m).ids());
            assertTrue(byCount.size() <= 8, "entries " + byCount.size());
            assertTrue(byBytes.bytes() <= 20_000, "bytes " + byBytes.bytes());
        }
        assertEquals(8, byCount.size());
        assertTrue(byBytes.size() > 1);
        // off: nothing kept, still the right ids
        PromptCache off = new PromptCache(template, tokenizer, 0, 0);
        List<ChatMessage> m = List.of(ChatMessage.user("hi"));
        assertArrayEquals(whole(m), off.encode(m).ids());
        assertEquals(0, off.size());
    }

    @Test
    void aTemplateThatIsNotAppendOnlyIsRenderedWhole() {
        ChatTemplate marksLast = ChatTemplate.of("{%- for m in messages -%}<|im_user|>{{ m.content if m.content is string else '' }}"
                + "{%- if loop.last -%}(last){%- endif -%}<|im_end|>{%- endfor -%}", "marks the last");
        PromptCache cache = new PromptCache(marksLast, tokenizer);
        List<ChatMessage> a = List.of(ChatMessage.user("one"));
        List<ChatMessage> b = List.of(ChatMessage.user("one"), ChatMessage.assistant("two"), ChatMessage.user("three"));
        cache.encode(a);
        PromptCache.Encoded e = cache.encode(b);
        assertEquals(0, e.reusedMessages());
        assertArrayEquals(tokenizer.encode(marksLast.render(b, true)), e.ids());
    }
}
