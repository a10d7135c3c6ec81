package dev.kimivl.train;

import dev.kimivl.config.ModelConfig;
import dev.kimivl.config.PreprocessorConfig;
import dev.kimivl.text.ChatTemplate;
import dev.kimivl.text.Tokenizer;
import dev.kimivl.train.data.Example;
import dev.kimivl.train.data.VisualWorld;
import dev.kimivl.train.recipe.ExampleEncoder;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** What the recipe's binding head is asked: at each colour word of a grounding conversation, its object's region. */
class BindingHeadTest {
    static final Path MODEL = Path.of("../models/kimivl-nano-instruct");

    @Test
    void eachColourWordAfterTheImageIsLabelledWithItsObjectsRegion() throws Exception {
        Tokenizer tok = Tokenizer.load(MODEL);
        ModelConfig cfg = ModelConfig.load(MODEL);
        ExampleEncoder enc = new ExampleEncoder(tok, ChatTemplate.load(MODEL), PreprocessorConfig.load(MODEL), cfg.mediaPlaceholderTokenId());
        VisualWorld w = new VisualWorld(new VisualWorld.Options(96, 160, true));
        java.util.function.ToIntFunction<String> colourToken = c -> { int[] t = tok.encode(" " + c); return t[t.length - 1]; };
        int labelled = 0, inAnswers = 0;
        for (long seed = 0; seed < 30; seed++) {
            Example ex = seed % 3 == 2 ? w.groundingOnGrid(seed) : w.grounding(seed);
            Map<String, Integer> places = VisualWorld.groundingPlaces(ex);
            List<Example.Turn> turns = new ArrayList<>(List.of(new Example.Turn(ex.question(), ex.answer())));
            turns.addAll(ex.followUps());
            // the map is what the turns say: a "where" turn's answer is the region of the colour it names
            for (Example.Turn t : turns) {
                if (!t.question().startsWith("Where is the ")) continue;
                String colour = t.question().split(" ")[3];
                assertEquals(t.answer().toLowerCase(java.util.Locale.ROOT), VisualWorld.REGIONS.get(places.get(colour)) + ".", t.question());
            }
            ExampleEncoder.Encoded e = enc.encode(ex, false);
            int[] labels = BindingHead.labels(ex, e.ids(), cfg.mediaPlaceholderTokenId(), colourToken);
            assertEquals(e.ids().length, labels.length);
            int image = 0;
            for (int t = 0; t < e.ids().length; t++) if (e.ids()[t] == cfg.mediaPlaceholderTokenId()) image = t;
            java.util.Set<String> named = new java.util.HashSet<>();
            for (int t = 0; t < labels.length; t++) {
                if (labels[t] < 0) continue;
                assertTrue(t > image, "only text after the image is labelled");
                String word = null;           // the colour whose (last) token this is
                for (String c : places.keySet()) if (colourToken.applyAsInt(c) == e.ids()[t]) word = c;
                assertEquals(places.get(word), labels[t], "seed " + seed + ": '" + word + "' at " + t);
                named.add(word);
                labelled++;
                if (e.targets()[t - 1] != -100) inAnswers++;
            }
            // every placed colour is named somewhere in the conversation, and each occurrence is labelled
            assertEquals(places.keySet(), named, "seed " + seed + ": " + turns);
        }
        assertTrue(labelled > 60 && inAnswers > 0, labelled + " labelled, " + inAnswers + " in answers");
        // other examples ask nothing
        Example vqa = w.vqa(1);
        ExampleEncoder.Encoded e = enc.encode(vqa, false);
        assertTrue(java.util.Arrays.stream(BindingHead.labels(vqa, e.ids(), cfg.mediaPlaceholderTokenId(), colourToken)).allMatch(l -> l == -1));
        assertTrue(VisualWorld.groundingPlaces(vqa).isEmpty());
    }

    @Test
    void itsLossReachesTheResidualStreamWeightedAndItsSpecIsChecked() {
        BindingHead h = new BindingHead(new BindingHead.Spec(2, 0.5), 8, 3);
        float[] hidden = new float[4 * 8];
        for (int i = 0; i < hidden.length; i++) hidden[i] = (float) Math.sin(i);
        int[] labels = {-1, 4, -1, 7};
        float[] d = new float[hidden.length];
        TextGrad.HiddenLoss loss = h.loss(labels);
        assertEquals(2, loss.layer());
        loss.apply(hidden, 4, d);
        float[] plain = new float[hidden.length];
        TokenLabelHead.onRows(BindingHead.NAME, 8, 9, 3).lossAndGrads(hidden, labels, plain);
        for (int i = 0; i < d.length; i++) assertEquals(0.5f * plain[i], d[i], 1e-7f, "d hidden[" + i + "]");
        for (int i = 0; i < 8; i++) assertEquals(0f, d[i], "an unlabelled position gets no gradient");
        assertEquals(2, h.last().scored());
        assertTrue(BindingHead.isParameter("binding.weight") && !BindingHead.isParameter("colour.weight"));
        assertThrows(IllegalArgumentException.class, () -> new BindingHead.Spec(0, 1));
        assertThrows(IllegalArgumentException.class, () -> new BindingHead.Spec(1, 0));
        assertThrows(IllegalArgumentException.class, () -> new BindingHead.Spec(1, Double.POSITIVE_INFINITY));
    }
}
