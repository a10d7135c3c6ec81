package dev.kimivl.train.data;

import java.util.List;
import java.util.SplittableRandom;

/** Text-only examples: small talk, questions that need an image when none is attached, facts of the shapes world, arithmetic, and the passkey task. */
final class Conversations {
    static final String NO_IMAGE = "I cannot see an image. Please attach one.";

    private Conversations() {}

    private static <T> T pick(SplittableRandom r, List<T> xs) {
        return xs.get(r.nextInt(xs.size()));
    }

    private static Example ex(String q, String a) {
        return new Example("text", List.of(), q, a, null);
    }

    /** Question and answer pairs that need nothing but the question. */
    private static final List<List<String>> SMALL_TALK = List.of(
        List.of("Hello!", "Hello! How can I help you?"), List.of("Hi!", "Hello! How can I help you?"),
        List.of("Hi there!", "Hello! How can I help you?"), List.of("Hey!", "Hello! How can I help you?"),
        List.of("Good morning!", "Good morning! How can I help you?"), List.of("Good evening!", "Good evening! How can I help you?"),
        List.of("Who are you?", "I am Kimi-VL, a small vision-language model. I answer questions about images."),
        List.of("What is your name?", "My name is Kimi-VL."),
        List.of("What can you do?", "I can describe images, name colours and shapes, count objects, read words and answer simple questions."),
        List.of("Can you see images?", "Yes. Attach an image and ask me about it."),
        List.of("Thank you!", "You are welcome!"), List.of("Thanks!", "You are welcome!"),
        List.of("Goodbye!", "Goodbye!"), List.of("Bye!", "Goodbye!"),
        List.of("How are you?", "I am fine, thank you. How can I help you?"));

    /** Questions about an image, asked with none attached. */
    private static final List<String> NEEDS_IMAGE = List.of("What colour is the ball?", "What color is the circle?", "What is in this picture?",
        "How many circles are there?", "What does the sign say?", "Describe the image.", "Which shape is bigger?", "What word is written in the image?",
        "Is the red square left or right of the blue circle?", "What do you see?", "How many stars are in the image?", "What shape is this?");

    private static final List<List<String>> FACTS = List.of(
        List.of("How many sides does a triangle have?", "Three."), List.of("How many sides does a square have?", "Four."),
        List.of("How many sides does a rectangle have?", "Four."), List.of("How many sides does a hexagon have?", "Six."),
        List.of("How many corners does a triangle have?", "Three."), List.of("How many corners does a hexagon have?", "Six."),
        List.of("How many points does a star have?", "Five."), List.of("How many sides does a circle have?", "None. A circle is round."),
        List.of("Which shape has three sides?", "A triangle."), List.of("Which shape has six sides?", "A hexagon."),
        List.of("Which shape has four equal sides?", "A square."), List.of("Which shape is round?", "A circle."),
        List.of("What is a ring?", "A ring is an outlined circle."), List.of("Is a square a rectangle?", "Yes."),
        List.of("Is a circle a square?", "No."), List.of("Does a triangle have four sides?", "No."),
        List.of("What colour is the sky on a clear day?", "Blue."), List.of("What colour is grass?", "Green."),
        List.of("What colour is snow?", "White."), List.of("What colour is a banana?", "Yellow."),
        List.of("What colour is coal?", "Black."), List.of("What colour is a ripe tomato?", "Red."),
        List.of("What colour do you get by mixing black and white?", "Grey."), List.of("What colour do you get by mixing red and white?", "Pink."),
        List.of("What colour do you get by mixing blue and yellow?", "Green."), List.of("What colour do you get by mixing red and blue?", "Purple."),
        List.of("What colour do you get by mixing red and yellow?", "Orange."));

    static Example text(SplittableRandom r) {
        switch (r.nextInt(5)) {
            case 0 -> {
                List<String> qa = pick(r, SMALL_TALK);
                return ex(qa.get(0), qa.get(1));
            }
            case 1 -> {
                return ex(pick(r, NEEDS_IMAGE), NO_IMAGE);
            }
            case 2 -> {
                List<String> qa = pick(r, FACTS);
                String q = qa.get(0);
                if (r.nextBoolean()) q = q.replace("colour", "color"); // both spellings are asked
                return ex(q, qa.get(1));
            }
            default -> {
                int op = r.nextInt(3), a, b, result;
                String word;
                switch (op) {
                    case 0 -> { a = r.nextInt(0, 51); b = r.nextInt(0, 50); result = a + b; word = "plus"; }
                    case 1 -> { a = r.nextInt(0, 100); b = r.nextInt(0, a + 1); result = a - b; word = "minus"; }
                    default -> { a = r.nextInt(0, 10); b = r.nextInt(0, 10); result = a * b; word = "times"; }
                }
                boolean words = a < 20 && b < 20 && r.nextInt(3) == 0; // "three plus four" as well as "3 plus 4"
                String sa = words ? Palette.number(a) : Integer.toString(a), sb = words ? Palette.number(b) : Integer.toString(b);
                String q = pick(r, List.of("What is " + sa + " " + word + " " + sb + "?", "How much is " + sa + " " + word + " " + sb + "?",
                    "Calculate " + sa + " " + word + " " + sb + "."));
                return ex(q, Palette.numberAnswer(result));
            }
        }
    }

    /** Filler sentences: plain statements about the shapes world, none of which mentions a secret. */
    private static String fillerSentence(SplittableRandom r) {
        String c1 = pick(r, Palette.COLORS), c2 = pick(r, Palette.COLORS), s1 = pick(r, Palette.SHAPES), s2 = pick(r, Palette.SHAPES);
        String w = pick(r, Words.COMMON);
        int n = 2 + r.nextInt(8);
        return switch (r.nextInt(8)) {
            case 0 -> Palette.capitalise(VisualWorld.named(c1, s1)) + " lies next to " + VisualWorld.named(c2, s2) + ".";
            case 1 -> "There are " + Palette.number(n) + " " + Palette.plural(s1) + " in the box.";
            case 2 -> "The " + s1 + " is " + c1 + " and the " + s2 + " is " + c2 + ".";
            case 3 -> "Someone wrote the word " + w + " on a " + c1 + " sign.";
            case 4 -> "The grass is green and the sky is blue.";
            case 5 -> "A " + s1 + " is drawn on the page, and " + VisualWorld.named(c1, s2) + " is drawn below it.";
            case 6 -> "The children counted " + Palette.number(n) + " " + c1 + " " + Palette.plural(s1) + " today.";
            default -> "Nothing much happened in the " + pick(r, List.of("morning", "evening", "afternoon", "night")) + ".";
        };
    }

    /**
     * A copy lesson, the circuit needle retrieval needs (find a place in the context, emit what follows it) in its
     * barest form, as the induction-head studies train it: either "Repeat these words: w1 … wn." answered by the n
     * words, or a word list and "Which word comes after wk?" answered "Wk+1.". Words are drawn from the common-word list
     * (repeats allowed in the copy form; in the look-up form the asked word occurs once, so the answer is unique).
     */
    static Example copy(SplittableRandom r) {
        int n = 3 + r.nextInt(r.nextBoolean() ? 8 : 28);             // 3..10 words half the time, else 3..30
        if (r.nextBoolean()) {
            List<String> ws = new java.util.ArrayList<>();
            for (int i = 0; i < n; i++) ws.add(pick(r, Words.COMMON));
            String seq = String.join(" ", ws);
            String q = pick(r, List.of("Repeat these words: ", "Say these words again: ", "Copy this: ")) + seq + ".";
            return new Example("copy", List.of(), q, Palette.capitalise(seq) + ".", null);
        }
        List<String> ws = distinctWords(r, n + 1);
        int k = r.nextInt(n);                                          // the asked word has a successor
        String q = "Words: " + String.join(" ", ws) + ".\n" + pick(r, List.of("Which word comes after " + ws.get(k) + "?",
            "What word follows " + ws.get(k) + "?"));
        return new Example("copy", List.of(), q, Palette.capitalise(ws.get(k + 1)) + ".", null);
    }

    /**
     * A repeat lesson, the induction circuit in the form the passkey answer uses it: "Words: w1 … wn." and a request to
     * repeat them, answered "Words: w1 … wn.", so every answer token after the first is a copy of the token that follows
     * the same place in the prompt (no capitalised first word, which is another token). In half of the lists the words
     * come from a pool of 3-6, so a word recurs and its successor is found only by matching more than the one token
     * before it, as "The secret word is" is told from the filler's other "is".
     */
    static Example repeat(SplittableRandom r) {
        int n = 4 + r.nextInt(r.nextBoolean() ? 9 : 21);             // 4..12 words half the time, else 4..24
        List<String> pool = r.nextBoolean() ? distinctWords(r, 3 + r.nextInt(4)) : Words.COMMON;
        List<String> ws = new java.util.ArrayList<>();
        for (int i = 0; i < n; i++) ws.add(pick(r, pool));
        String list = "Words: " + String.join(" ", ws) + ".";
        String q = list + "\n" + pick(r, List.of("Repeat the words.", "Say them again.", "Copy the list.", "Repeat the list."));
        return new Example("repeat", List.of(), q, list, null);
    }

    /** k different words of the common-word list, in the order drawn. */
    private static List<String> distinctWords(SplittableRandom r, int k) {
        List<String> ws = new java.util.ArrayList<>();
        while (ws.size() < k) {
            String w = pick(r, Words.COMMON);
            if (!ws.contains(w)) ws.add(w);
        }
        return ws;
    }

    static Example needle(SplittableRandom r, int targetChars, boolean repeatSentence) {
        if (targetChars < 50) throw new IllegalArgumentException("targetChars " + targetChars + " leaves no room for filler");
        String secret = pick(r, Words.COMMON);
        String needle = VisualWorld.NEEDLE_PREFIX + secret + ".";
        StringBuilder filler = new StringBuilder();
        List<Integer> starts = new java.util.ArrayList<>();
        while (filler.length() < targetChars - needle.length()) {
            starts.add(filler.length());
            filler.append(fillerSentence(r)).append(' ');
        }
        starts.add(filler.length());
        // the depth is uniform over the sentence boundaries, the usual way a needle-in-a-haystack sweep is drawn
        int at = starts.get(r.nextInt(starts.size()));
        filler.insert(at, needle + " ");
        String q = filler.toString().strip() + "\n\n" + pick(r, List.of("What is the secret word?", "What was the secret word?",
            "Which word is the secret word?"));
        return new Example("needle", List.of(), q, repeatSentence ? needle : Palette.capitalise(secret) + ".", null);
    }
}
