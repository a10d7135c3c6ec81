package dev.kimivl.train.recipe;

import dev.kimivl.train.data.Example;
import dev.kimivl.train.data.VisualWorld;
import org.junit.jupiter.api.Test;

import java.awt.image.BufferedImage;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/** A stage's mixed images ({@code easyShare}): each example comes whole from the easy world or the busy one. */
class ExampleSourceTest {
    private static final Map<String, Double> MIX = Map.of("object", 0.5, "ground", 0.3, "text", 0.2);

    @Test
    void easyShareDrawsEachExampleWholeFromOneWorldByItsSeed() {
        var busyWorld = new VisualWorld(new VisualWorld.Options(64, 160, false));
        var easyWorld = new VisualWorld(new VisualWorld.Options(64, 160, true));
        var busy = new ExampleSource(busyWorld, MIX, 2000);
        var easy = new ExampleSource(easyWorld, MIX, 2000);
        var mixed = new ExampleSource(busyWorld, easyWorld, 0.4, MIX, 2000, null);
        int fromEasy = 0, fromBusy = 0;
        for (int i = 0; i < 120; i++) {
            long seed = ExampleSource.exampleSeed(7, 3, i, 0);
            Example m = mixed.draw(seed), b = busy.draw(seed), e = easy.draw(seed);
            // each example is the one a single-world source draws from the same seed (so the kinds drawn are those of
            // a source without easyShare); text examples are the same in both worlds
            boolean isEasy = same(m, e), isBusy = same(m, b);
            if (m.images().isEmpty()) {
                assertTrue(isEasy && isBusy, "seed " + seed);
                continue;
            }
            assertTrue(isEasy != isBusy, "seed " + seed + ": the example must equal exactly one world's (" + isEasy + ", " + isBusy + ")");
            if (isEasy) fromEasy++; else fromBusy++;
            assertTrue(same(m, mixed.draw(seed)), "the same seed draws the same example");
        }
        int n = fromEasy + fromBusy;
        assertTrue(n > 60, "image examples: " + n);
        double share = (double) fromEasy / n;
        assertTrue(share > 0.2 && share < 0.6, "easy share " + share + " of " + n + " (asked 0.4)");
    }

    @Test
    void easyShareMustBeAProperShare() {
        var w = new VisualWorld(VisualWorld.Options.defaults());
        for (double bad : new double[] {0, 1, -0.1, Double.NaN}) {
            assertThrows(IllegalArgumentException.class, () -> new ExampleSource(w, w, bad, MIX, 2000, null), "share " + bad);
        }
    }

    @Test
    void aRecipeStageChecksItsEasyShare(@org.junit.jupiter.api.io.TempDir java.nio.file.Path tmp) throws Exception {
        String nano = java.nio.file.Files.readString(ShippedRecipesTest.RECIPES.resolve("nano.json"));
        String busy = "\"easyImages\": false";
        assertTrue(nano.contains(busy), "nano.json has a stage on busy images");
        java.nio.file.Path f = tmp.resolve("r.json");
        java.nio.file.Files.writeString(f, nano.replaceFirst(busy, busy + ", \"easyShare\": 0.4"));
        Recipe ok = Recipe.load(f);
        assertTrue(ok.stages().stream().anyMatch(s -> Double.valueOf(0.4).equals(s.easyShare())));
        for (String bad : List.of("\"easyImages\": true, \"easyShare\": 0.4", "\"easyImages\": false, \"easyShare\": 1.5")) {
            java.nio.file.Files.writeString(f, nano.replaceFirst(busy, bad));
            var e = assertThrows(IllegalArgumentException.class, () -> Recipe.load(f));
            assertTrue(e.getMessage().contains("easyShare"), e.getMessage());
        }
    }

    private static boolean same(Example a, Example b) {
        if (!a.question().equals(b.question()) || !a.answer().equals(b.answer()) || a.images().size() != b.images().size()) return false;
        for (int k = 0; k < a.images().size(); k++) if (!samePixels(a.images().get(k), b.images().get(k))) return false;
        return true;
    }

    private static boolean samePixels(BufferedImage x, BufferedImage y) {
        if (x.getWidth() != y.getWidth() || x.getHeight() != y.getHeight()) return false;
        int w = x.getWidth(), h = x.getHeight();
        return Arrays.equals(x.getRGB(0, 0, w, h, null, 0, w), y.getRGB(0, 0, w, h, null, 0, w));
    }
}
