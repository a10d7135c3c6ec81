package dev.kimivl.text;

import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.util.Arrays;
import java.util.List;

import static dev.kimivl.text.ChatMessage.*;
import static org.junit.jupiter.api.Assertions.*;

class PromptEncoderTest {
    @Test
    void aTokenizerWithoutMediaPadEncodesTextAndRefusesImages() {
        // a plain DeepSeek GGUF's vocabulary: no <|media_pad|> (GgufFuzzTest#textHeader's regress-no-media-pad failed
        // every prompt with "has no special token <|media_pad|>")
        byte[][] ranks = new byte[256][];
        for (int b = 0; b < 256; b++) ranks[b] = new byte[] {(byte) b};
        Tokenizer tok = Tokenizer.create(ranks, Tokenizer.KIMI_PATTERN, java.util.Map.of("<|im_end|>", 256), "plain.gguf");
        PromptEncoder enc = new PromptEncoder(tok);
        assertEquals(-1, enc.placeholderId());
        assertArrayEquals(tok.encode("hi<|im_end|>"), enc.encode("hi<|im_end|>").ids());
        var e = assertThrows(IllegalArgumentException.class, () -> enc.encode("hi", 4));
        assertEquals("the tokenizer (plain.gguf) has no image placeholder <|media_pad|>: a text-only model takes no images", e.getMessage());
    }

    @Test
    void expandsEachPlaceholderToItsImageTokenCount() throws IOException {
        Tokenizer tok = Tokenizer.load(TestFiles.goldenTokenizerDir());
        PromptEncoder enc = new PromptEncoder(tok);
        String prompt = ChatTemplate.builtIn().render(List.of(
                ChatMessage.of("user", imagePart(), textPart("and"), imagePart())), true);
        var encoded = enc.encode(prompt, 20, 9);
        int pad = tok.specialId("<|media_pad|>");
        assertEquals(pad, enc.placeholderId());
        int[] text = tok.encode(prompt);
        assertEquals(text.length - 2 + 29, encoded.ids().length);
        assertEquals(2, encoded.imageOffsets().length);
        // Each image block: <|media_start|> BPE("image") <|media_content|> pad x N <|media_end|>
        int first = encoded.imageOffsets()[0];
        int second = encoded.imageOffsets()[1];
        for (int i = 0; i < 20; i++) assertEquals(pad, encoded.ids()[first + i]);
        assertEquals(tok.specialId("<|media_end|>"), encoded.ids()[first + 20]);
        assertEquals(tok.specialId("<|media_content|>"), encoded.ids()[first - 1]);
        for (int i = 0; i < 9; i++) assertEquals(pad, encoded.ids()[second + i]);
        assertEquals(tok.specialId("<|media_end|>"), encoded.ids()[second + 9]);
        assertEquals(29, Arrays.stream(encoded.ids()).filter(id -> id == pad).count());
        // Collapsing the runs gives back the text encoding.
        int[] collapsed = new int[text.length];
        int n = 0;
        for (int i = 0; i < encoded.ids().length; i++) {
            if (encoded.ids()[i] == pad && i > 0 && encoded.ids()[i - 1] == pad) continue;
            collapsed[n++] = encoded.ids()[i];
        }
        assertArrayEquals(text, Arrays.copyOf(collapsed, n));
    }

    @Test
    void countMismatchIsAnError() throws IOException {
        PromptEncoder enc = new PromptEncoder(Tokenizer.load(TestFiles.goldenTokenizerDir()));
        String prompt = "<|im_user|>user<|im_middle|><|media_start|>image<|media_content|><|media_pad|><|media_end|>hi";
        var e = assertThrows(IllegalArgumentException.class, () -> enc.encode(prompt, 4, 4));
        assertTrue(e.getMessage().contains("1 image placeholder(s)") && e.getMessage().contains("2 image(s)"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> enc.encode("no images", 4));
        assertTrue(e.getMessage().contains("0 image placeholder(s)"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> enc.encode(prompt, 0));
        assertTrue(e.getMessage().contains("image 0 has 0"), e.getMessage());
        assertEquals(0, enc.encode("text only").imageOffsets().length);
    }
}
