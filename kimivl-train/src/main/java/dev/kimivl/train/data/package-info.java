/**
 * Training and evaluation data for the nano Kimi-VL: a deterministic synthetic visual world.
 *
 * <p>{@link dev.kimivl.train.data.VisualWorld} draws scenes with Java2D and asks questions with one exact short answer
 * each; every example is a function of its seed, so a run can be repeated and an evaluation can use seeds the training
 * never saw. {@link dev.kimivl.train.data.VisualWorld#correct} is the exact-answer checker for all types.
 * {@link dev.kimivl.train.data.ImageMagickRenderer} draws the same kinds of scene with ImageMagick, for
 * out-of-distribution evaluation. The types:
 * <ul>
 *   <li>single-image VQA ({@code vqaTypes()}): what, color, shape, count, position, size, read;</li>
 *   <li>caption (one sentence: objects, where they are, the background), compare (two images), chart (bar charts);</li>
 *   <li>reasoning (with a step-by-step trace in {@code reasoning}), text (no image), needle (long-context passkey).</li>
 * </ul>
 * VisualWorld holds no mutable state: one instance may serve several threads.
 */
package dev.kimivl.train.data;
