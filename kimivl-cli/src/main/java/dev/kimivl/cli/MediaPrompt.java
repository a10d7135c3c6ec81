package dev.kimivl.cli;

import dev.kimivl.media.MediaMessages;
import dev.kimivl.model.KimiVL;
import dev.kimivl.text.ChatMessage;
import dev.kimivl.vision.LoadedImage;

import java.io.PrintStream;
import java.util.ArrayList;
import java.util.List;

/**
 * The user message of `kimivl run` with long inputs: the images (-i), then the PDF's pages ("Page 3:" before each),
 * then the video's frames ("Frame at 00:03:" before each unless --no-timestamps), then the text. Sizing, labels and
 * decoding are kimivl-media's {@link MediaMessages} (shared with `kimivl chat` and the LangChain4j models); this
 * class maps run's options onto it and its notes and progress onto stderr.
 */
final class MediaPrompt {
    /** What the generator gets: the conversation, its images in order, and the prompt's length in tokens. */
    record Built(List<ChatMessage> messages, List<LoadedImage> images, int promptTokens) {}

    private MediaPrompt() {}

    /** Room kept for the answer: the requested maximum, but never more than a quarter of the context. */
    static int answerRoom(int maxTokens, int context) { return MediaMessages.answerRoom(maxTokens, context); }

    static Built build(KimiVL m, MediaOptions o, String system, List<LoadedImage> images, String text,
                       int context, int maxTokens, long maxPixels, PrintStream err) {
        List<MediaMessages.Item> items = new ArrayList<>();
        for (LoadedImage im : images) items.add(new MediaMessages.Image(im, im.source()));
        items.addAll(o.items());
        items.add(new MediaMessages.Text(text));
        List<MediaMessages.Draft> conversation = new ArrayList<>();
        if (system != null) conversation.add(MediaMessages.Draft.of("system", new MediaMessages.Text(system)));
        conversation.add(new MediaMessages.Draft("user", items));
        MediaMessages.Built b = MediaMessages.build(m, conversation, context, answerRoom(maxTokens, context), maxPixels,
                MediaMessages.Knobs.CLI, report(err, Terminal.stderrIsTerminal()));
        return new Built(b.messages(), b.images(), b.promptTokens());
    }

    /** Notes and progress as "kimivl: ..." lines; on a terminal progress redraws one line. */
    static MediaMessages.Report report(PrintStream err, boolean redraw) {
        return new MediaMessages.Report() {
            @Override public void note(String text) { err.println("kimivl: " + text); }

            @Override public void progress(String text, boolean last) {
                err.print("kimivl: " + text + (last || !redraw ? System.lineSeparator() : "\r"));
                err.flush();
            }

            @Override public boolean redraws() { return redraw; }
        };
    }
}
