package dev.kimivl.train.data;

import java.awt.image.BufferedImage;
import java.util.List;

/**
 * One training or evaluation example.
 *
 * @param type      its question type (one of {@link VisualWorld#allTypes()}), which selects how {@link VisualWorld#correct} compares
 * @param images    0..n images that come before the question in the user turn
 * @param question  the user's text
 * @param answer    the exact short answer the model is taught (always ends with a period, or "!" / "?" in small talk)
 * @param reasoning a step-by-step trace for multi-step questions (taught to the Thinking model), else null
 * @param followUps more questions about the same images, each asked in a user turn of its own after the previous
 *                  answer (a multi-turn conversation; empty for a single question)
 * @param imageLabels the text before each image in the user turn (a video's "Frame at 00:03:"), or empty: the images
 *                  follow one another
 */
public record Example(String type, List<BufferedImage> images, String question, String answer, String reasoning, List<Turn> followUps,
                      List<String> imageLabels) {
    /** One later user question and the answer taught for it. */
    public record Turn(String question, String answer) {}

    public Example {
        images = List.copyOf(images);
        followUps = followUps == null ? List.of() : List.copyOf(followUps);
        imageLabels = imageLabels == null ? List.of() : List.copyOf(imageLabels);
        if (!imageLabels.isEmpty() && imageLabels.size() != images.size()) {
            throw new IllegalArgumentException(imageLabels.size() + " image labels for " + images.size() + " images");
        }
    }

    /** Questions about the same images in turns, the images unlabelled. */
    public Example(String type, List<BufferedImage> images, String question, String answer, String reasoning, List<Turn> followUps) {
        this(type, images, question, answer, reasoning, followUps, List.of());
    }

    /** A single question. */
    public Example(String type, List<BufferedImage> images, String question, String answer, String reasoning) {
        this(type, images, question, answer, reasoning, List.of());
    }

    /** Where the needle sentence of a long-context example sits, in percent of the filler (0 = start); -1 for other examples. */
    public int depthPercent() {
        if (!"needle".equals(type)) return -1;
        int at = question.indexOf(VisualWorld.NEEDLE_PREFIX), end = question.lastIndexOf("\n\n");
        if (at < 0 || end <= 0) return -1;
        return (int) Math.round(100.0 * at / end);
    }
}
