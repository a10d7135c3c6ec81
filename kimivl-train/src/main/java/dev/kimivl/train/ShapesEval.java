package dev.kimivl.train;

import dev.kimivl.generate.SamplingParams;
import dev.kimivl.model.KimiVL;
import dev.kimivl.text.ChatMessage;

import java.util.List;
import java.util.Random;

/**
 * How often a model answers {@link ShapesData} questions exactly right: fresh images (another seed than training's),
 * the inference path as `kimivl run` takes it (chat template, image, greedy decoding up to &lt;|im_end|&gt;).
 */
public final class ShapesEval {
    private ShapesEval() {}

    public record Score(int right, int total, List<String> wrong) {
        public double accuracy() { return (double) right / total; }
    }

    public static Score evaluate(KimiVL m, int n, long seed) {
        Random rnd = new Random(seed);
        int right = 0;
        List<String> wrong = new java.util.ArrayList<>();
        for (int i = 0; i < n; i++) {
            ShapesData.Example ex = ShapesData.next(rnd);
            KimiVL.Prompt p = m.prompt(List.of(ChatMessage.of("user", ChatMessage.imagePart(), ChatMessage.textPart(ex.question()))),
                    List.of(ShapesTrainer.toLoaded(ex.image())));
            String got = m.generator(0).generate(p.embeddings(), p.ids(), SamplingParams.greedy(12), null).text().strip();
            if (got.equals(ex.answer())) right++;
            else if (wrong.size() < 10) wrong.add(ex.question() + " [" + ex.color() + " " + ex.shape() + "] -> '" + got + "'");
        }
        return new Score(right, n, wrong);
    }
}
