package dev.kimivl.train.recipe;

import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The recipes in the repo load and validate, and nano.json publishes the two shipped models from stages it has. */
class ShippedRecipesTest {
    static final Path RECIPES = Path.of("../recipes").toAbsolutePath().normalize();

    @Test
    void everyRecipeLoads() throws Exception {
        List<Path> files;
        // recipes/ and its experiments/ (the runs TRAINING.md reports)
        try (Stream<Path> s = Files.walk(RECIPES)) { files = s.filter(p -> p.toString().endsWith(".json")).sorted().toList(); }
        assertTrue(files.stream().anyMatch(p -> p.getParent().getFileName().toString().equals("experiments")), files.toString());
        assertFalse(files.isEmpty());
        for (Path f : files) Recipe.load(f);
    }

    @Test
    void nanoPublishesTheShippedModels() throws Exception {
        Recipe r = Recipe.load(RECIPES.resolve("nano.json"));
        assertEquals(java.util.Set.of("kimivl-nano-instruct", "kimivl-nano-thinking"), r.outputs().keySet());
        List<String> names = r.stages().stream().map(Recipe.Stage::name).toList();
        assertTrue(names.containsAll(r.outputs().values()), names + " " + r.outputs());
        assertEquals("rl", r.stages().get(names.indexOf(r.outputs().get("kimivl-nano-thinking"))).kind());
        // the default model has had the long-context stage (its needle retrieval: ShippedModelTest)
        int instruct = names.indexOf(r.outputs().get("kimivl-nano-instruct"));
        assertTrue(r.stages().subList(0, instruct + 1).stream().anyMatch(s -> s.kind().equals("long-context")), names.toString());
    }
}
