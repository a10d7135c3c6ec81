package dev.kimivl.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import dev.kimivl.train.data.VisualWorld;
import dev.kimivl.train.probe.BindingProbe;
import dev.kimivl.train.probe.FrozenVision;
import dev.kimivl.train.probe.TokenProbe;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;

/**
 * kimivl probe: quick measurements of a trained vision tower's image tokens (minutes, not a training run), the probes
 * of TRAINING.md's sessions 10-11: {@code binding} (can a fresh language model learn to look a named object up among
 * the frozen tokens, on new images?) and {@code tokens} (linear read-outs of each token's colour and place).
 */
@Command(name = "probe", mixinStandardHelpOptions = true,
        description = "Measure what a trained checkpoint's frozen vision tower gives the language model: "
                + "'binding' trains a fresh language model on its image tokens and scores it on held-out images; "
                + "'tokens' reads each image token's colour and place with ridge regression.",
        subcommands = {ProbeCommand.Binding.class, ProbeCommand.Tokens.class, CommandLine.HelpCommand.class})
final class ProbeCommand implements Runnable {
    @CommandLine.Spec CommandLine.Model.CommandSpec spec;

    @Override public void run() { spec.commandLine().usage(System.out); }

    /** The options both probes share: which tower, which images, which seed. */
    static final class Common {
        @Option(names = {"--vision", "-m", "--model"}, paramLabel = "DIR",
                description = "Checkpoint folder whose vision tower and projector (frozen), tokenizer, chat template and preprocessor are probed, "
                        + "e.g. a run's stages/01-vit. Default: $KIMIVL_MODEL, else the repo's " + ModelOption.DEFAULT_RELATIVE + ".")
        Path vision;

        @Option(names = "--side", paramLabel = "PX", description = "Every image this many pixels square (one token grid); overrides --min-side/--max-side.")
        Integer side;

        @Option(names = "--min-side", paramLabel = "PX", defaultValue = "96", description = "Smallest image side (default ${DEFAULT-VALUE}, as the nano recipe's vit stage).")
        int minSide;

        @Option(names = "--max-side", paramLabel = "PX", defaultValue = "160", description = "Largest image side (default ${DEFAULT-VALUE}).")
        int maxSide;

        @Option(names = "--full-variety", description = "Draw the full variety of images (noisy and gradient grounds, JPEG) instead of the curriculum's easy ones.")
        boolean fullVariety;

        @Option(names = "--seed", defaultValue = "1", description = "Seed of the scenes (training and held-out sets apart) and of everything else (default ${DEFAULT-VALUE}).")
        long seed;

        VisualWorld.Options images() {
            int lo = side != null ? side : minSide, hi = side != null ? side : maxSide;
            return new VisualWorld.Options(lo, hi, !fullVariety);
        }

        FrozenVision load() throws java.io.IOException {
            Path dir = ModelOption.resolve(vision);
            System.err.println("probe: loading the vision tower of " + dir);
            return FrozenVision.load(dir);
        }
    }

    @Command(name = "binding", mixinStandardHelpOptions = true,
            description = "Session 11's RealFeatProbe: a fresh language model (the recipe's model section, as a new run initialises it) learns "
                    + "one form of grounding question on the frozen image tokens of --pool scenes, and is scored every --log-every steps on "
                    + "--heldout other scenes. acc = the share of answers whose every token gets p > 0.5. High training and chance held-out "
                    + "accuracy: it memorised the images instead of learning to look the object up.")
    static final class Binding implements Callable<Integer> {
        @CommandLine.Mixin Common common;

        @Option(names = "--recipe", paramLabel = "FILE", defaultValue = "recipes/nano.json", description = "Recipe whose model section sizes the fresh language model (default ${DEFAULT-VALUE}).")
        Path recipe;

        @Option(names = "--steps", defaultValue = "800", description = "Optimizer steps (default ${DEFAULT-VALUE}).")
        int steps;

        @Option(names = "--pool", paramLabel = "SCENES", defaultValue = "1150", description = "Training scenes (default ${DEFAULT-VALUE}).")
        int pool;

        @Option(names = "--heldout", paramLabel = "SCENES", defaultValue = "150", description = "Held-out scenes (default ${DEFAULT-VALUE}).")
        int heldout;

        @Option(names = "--question", defaultValue = "where-colour",
                description = "where-colour (\"Where is the red shape?\": colour → 3×3 region), where (colour and shape → region), what "
                        + "(region → object), where-echo (where-colour answered \"Red at the top left.\": the place right after the colour word) "
                        + "or where-all (one question per scene: \"Where are the red and blue shapes?\" \"Red at the top left and blue in the centre.\") "
                        + "(default ${DEFAULT-VALUE}).")
        String question;

        @Option(names = {"--log-every", "--every"}, paramLabel = "STEPS", defaultValue = "100", description = "Steps between progress lines with the held-out score (default ${DEFAULT-VALUE}).")
        int every;

        @Option(names = "--batch", defaultValue = "16", description = "Questions per step, one sequence each (default ${DEFAULT-VALUE}).")
        int batch;

        @Option(names = "--lr", defaultValue = "0.002", description = "Muon's rate for the 2-D hidden matrices (default ${DEFAULT-VALUE}).")
        double lr;

        @Option(names = "--adam-lr", defaultValue = "0.002", description = "AdamW's rate for the rest (default ${DEFAULT-VALUE}).")
        double adamLr;

        @Option(names = "--json", paramLabel = "FILE", description = "Also write the settings and every progress line as JSON to FILE.")
        Path json;

        @Option(names = "--scenes", defaultValue = "ground", description = "ground (2-4 objects placed freely), ground-grid (each object "
                + "filling its own cell of the 3×3 grid) or ground-one (one object: reading a place, nothing to bind) (default ${DEFAULT-VALUE}).")
        String scenes;

        @Option(names = "--first", paramLabel = "SCENES:STEPS", description = "A first lesson: the first STEPS steps train on --pool scenes "
                + "of kind SCENES (e.g. ground-one:200), then the --scenes pool takes over.")
        String first;

        @Option(names = "--first-question", paramLabel = "FORM", description = "The first lesson's question form (as --question; default: the same as --question).")
        String firstQuestion;

        @Option(names = "--first-side", paramLabel = "PX", description = "The first lesson's images all this many pixels square "
                + "(one token grid); the main pool keeps --side or --min-side/--max-side.")
        Integer firstSide;

        @Option(names = "--bind-head", paramLabel = "LAYER[:WEIGHT]", description = "A scaffold head on the residual stream after LAYER "
                + "that names, at each colour word of the question, its object's 3×3 region (weight default 1): the look-up asked where "
                + "the colour word is, not only through the answer.")
        String bindHead;

        @Option(names = "--language-model", paramLabel = "DIR", description = "Start from this checkpoint's trained language model "
                + "(e.g. a recipe stage's) instead of a fresh one: does what it learnt before help or hinder the look-up?")
        Path languageModel;

        @Option(names = "--ideal-tokens", description = "Replace each image token by fixed vectors of its colour, shape and cell labels "
                + "(what the token-label heads teach): the ceiling a perfect tower would give, on the same scenes.")
        boolean idealTokens;

        @Option(names = "--align-colours", description = "With --ideal-tokens: a token's colour vector is the fresh language model's input "
                + "embedding of the colour's word, so the question's \"red\" and a red token start out alike.")
        boolean alignColours;

        @Override
        public Integer call() throws Exception {
            Path r = resolveRecipe(recipe);
            BindingProbe.Settings s = new BindingProbe.Settings(r, steps, pool, heldout, common.images(), BindingProbe.Question.parse(question),
                    every, common.seed, batch, lr, adamLr, scenes, idealTokens, alignColours, firstLesson(), bindHead(bindHead), languageModel);
            FrozenVision v = common.load();
            BindingProbe.Summary sum = BindingProbe.run(v, s, System.out);
            if (json != null) {
                Files.writeString(json, new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT).writeValueAsString(sum.toJson()));
                System.err.println("probe: wrote " + json);
            }
            return 0;
        }

        /** A --bind-head LAYER[:WEIGHT] (null without one). */
        static dev.kimivl.train.BindingHead.Spec bindHead(String spec) {
            if (spec == null) return null;
            String[] p = spec.split(":");
            try {
                if (p.length > 2) throw new NumberFormatException();
                return new dev.kimivl.train.BindingHead.Spec(Integer.parseInt(p[0]), p.length == 2 ? Double.parseDouble(p[1]) : 1.0);
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("--bind-head " + spec + ": expected LAYER or LAYER:WEIGHT, e.g. 2 or 2:0.5");
            }
        }

        /** The --first lesson with its --first-question and --first-side (null without --first; they alone are refused). */
        BindingProbe.FirstLesson firstLesson() {
            if (first == null) {
                if (firstQuestion != null || firstSide != null) {
                    throw new IllegalArgumentException("--first-question and --first-side shape a first lesson: give it with --first SCENES:STEPS");
                }
                return null;
            }
            return new BindingProbe.FirstLesson(first.split(":")[0], firstSteps(first),
                    firstQuestion == null ? null : BindingProbe.Question.parse(firstQuestion),
                    firstSide == null ? null : new VisualWorld.Options(firstSide, firstSide, common.images().easy()));
        }

        /** The steps of a --first SCENES:STEPS (0 without one). */
        static int firstSteps(String first) {
            if (first == null) return 0;
            String[] p = first.split(":");
            if (p.length != 2) throw new IllegalArgumentException("--first " + first + ": expected SCENES:STEPS, e.g. ground-one:200");
            try {
                return Integer.parseInt(p[1]);
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("--first " + first + ": '" + p[1] + "' is not a number of steps");
            }
        }

        /** recipes/nano.json from the working folder, else from the kimivl checkout (the launcher's kimivl.home). */
        static Path resolveRecipe(Path p) {
            if (Files.isRegularFile(p)) return p;
            String home = System.getProperty("kimivl.home");
            if (!p.isAbsolute() && home != null && Files.isRegularFile(Path.of(home).resolve(p))) return Path.of(home).resolve(p);
            throw new IllegalArgumentException("--recipe " + p + ": no such file");
        }
    }

    @Command(name = "tokens", mixinStandardHelpOptions = true,
            description = "Session 11's TokenColourProbe and PosProbe: ridge read-outs of each merged image token's colour (classifier) and relative "
                    + "place ((column + ½) / width, (row + ½) / height; regression) from its features, fitted on -n scenes, scored on --heldout others.")
    static final class Tokens implements Callable<Integer> {
        @CommandLine.Mixin Common common;

        @Option(names = "-n", paramLabel = "SCENES", defaultValue = "300", description = "Training scenes (default ${DEFAULT-VALUE}).")
        int n;

        @Option(names = "--heldout", paramLabel = "SCENES", defaultValue = "100", description = "Held-out scenes (default ${DEFAULT-VALUE}).")
        int heldout;

        @Option(names = "--lambda", description = "Ridge penalty on standardised features (default: chosen from "
                + "1e-4..1 on a fifth of the training scenes, per read-out).")
        Double lambda;

        @Override
        public Integer call() throws Exception {
            FrozenVision v = common.load();
            TokenProbe.run(v, new VisualWorld(common.images()), n, heldout, common.seed, lambda, System.out);
            return 0;
        }
    }
}
