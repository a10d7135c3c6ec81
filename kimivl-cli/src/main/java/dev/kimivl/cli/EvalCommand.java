package dev.kimivl.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.kimivl.model.KimiVL;
import dev.kimivl.train.data.VisualWorld;
import dev.kimivl.train.eval.Evaluator;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.util.Locale;
import java.util.concurrent.Callable;

/** kimivl eval: accuracy on fresh synthetic examples, per question type. */
@Command(name = "eval", mixinStandardHelpOptions = true,
        description = "Score a model on fresh synthetic examples it never saw in training (greedy answers through the normal inference path, "
                + "checked exactly): a table by question type on stdout, or --json.")
final class EvalCommand implements Callable<Integer> {
    @Mixin ModelOption model;

    @Option(names = "--task", defaultValue = "synthetic-vqa", description = "synthetic-vqa (single-image questions, every type equally often), "
            + "objects (the first lesson: one large object, asked its colour, shape or both), grounding (where a named object is in the image's "
            + "3 × 3 grid, or what is at a place, in scenes of 2-4 objects; by question form), "
            + "reasoning (multi-step questions; a Thinking model's reasoning block is dropped before checking), or niah (a secret word at a "
            + "random depth of --niah-chars of filler; accuracy by depth), or niah-video (one frame showing a coloured shape among --niah-frames "
            + "plain ones, asked the colour; accuracy by frame count and depth) (default ${DEFAULT-VALUE}).")
    String task;

    @Option(names = "-n", defaultValue = "200", description = "Examples (default ${DEFAULT-VALUE}).")
    int n;

    @Option(names = "--seed", defaultValue = "1", description = "Seed of the evaluation examples (default ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = "--renderer", defaultValue = "java2d", description = "Who draws the images: java2d (the training world) or imagemagick "
            + "(the same questions drawn by ImageMagick's convert: other rasteriser, fonts and sizes) (default ${DEFAULT-VALUE}).")
    String renderer;

    @Option(names = "--niah-chars", defaultValue = "2000", description = "niah: characters of filler around the needle (default ${DEFAULT-VALUE}).")
    int niahChars;

    @Option(names = "--niah-frames", defaultValue = "4,16,48", split = ",", description = "niah-video: frame counts of the videos, "
            + "dealt in turn; each at least 4 (default ${DEFAULT-VALUE}).")
    int[] niahFrames;

    @Option(names = "--niah-frame-side", defaultValue = "" + dev.kimivl.train.eval.VideoNeedle.DEFAULT_SIDE, description = "niah-video: "
            + "frame width and height in pixels (default ${DEFAULT-VALUE}: 16 image tokens a frame).")
    int niahFrameSide;

    @Option(names = "--easy", description = "Draw the curriculum's easy images (grey ground, larger objects, no JPEG; with imagemagick a grey ground) instead of the full variety: "
            + "what a model has learnt before it copes with the rest.")
    boolean easy;

    @Option(names = "--min-side", paramLabel = "PX", description = "The smallest image side drawn (default ${DEFAULT-VALUE}; the issue's range is 64-512): "
            + "with --max-side, to evaluate at the sizes a stage trained on.", defaultValue = "64")
    int minSide;

    @Option(names = "--max-side", paramLabel = "PX", description = "The largest image side drawn (default ${DEFAULT-VALUE}).", defaultValue = "512")
    int maxSide;

    @Option(names = "--json", description = "Print a JSON object: overall (0..1), per type, counts, count_within_one (of the count questions, those answered within one of the truth; not in overall) and the first 20 wrong answers.")
    boolean json;

    @Override
    public Integer call() throws Exception {
        if (n < 1) throw new IllegalArgumentException("-n must be at least 1, got " + n);
        if (!java.util.List.of("synthetic-vqa", "objects", "grounding", "reasoning", "niah", "niah-video").contains(task)) {
            throw new IllegalArgumentException("--task " + task + " is not available (synthetic-vqa, objects, grounding, reasoning, niah, niah-video)");
        }
        for (int f : niahFrames) {
            if (f < dev.kimivl.train.eval.VideoNeedle.MIN_FRAMES) {
                throw new IllegalArgumentException("--niah-frames " + f + ": each video needs at least " + dev.kimivl.train.eval.VideoNeedle.MIN_FRAMES
                        + " frames (one per depth bucket)");
            }
        }
        if (niahFrameSide < 48) throw new IllegalArgumentException("--niah-frame-side must be at least 48 pixels, got " + niahFrameSide);
        if (niahChars < 100) throw new IllegalArgumentException("--niah-chars must be at least 100, got " + niahChars);
        try (KimiVL m = model.open()) {
            boolean tty = System.console() != null;
            Evaluator.Progress progress = (done, total) -> {
                if (done % 25 == 0 || done == total) {
                    System.err.printf(Locale.ROOT, tty ? "\reval %d/%d" : "eval %d/%d%n", done, total);
                    if (tty && done == total) System.err.println();
                }
            };
            Evaluator.Report r = task.equals("reasoning") ? Evaluator.reasoning(m, world(), n, seed, progress)
                    : task.equals("grounding") ? Evaluator.grounding(m, world(), n, seed, progress)
                    : task.equals("niah") ? Evaluator.niah(m, world(), n, seed, niahChars, progress)
                    : task.equals("niah-video") ? Evaluator.videoNiah(m, new dev.kimivl.train.eval.VideoNeedle(niahFrameSide), n, seed, niahFrames, progress)
                    : switch (renderer) {
                case "java2d" -> task.equals("objects") ? Evaluator.objects(m, world(), n, seed, progress)
                        : Evaluator.syntheticVqa(m, world(), n, seed, progress);
                case "imagemagick" -> {
                    if (!dev.kimivl.train.data.ImageMagickRenderer.available()) {
                        throw new IllegalArgumentException("--renderer imagemagick needs ImageMagick's convert on the PATH (apt-get install imagemagick)");
                    }
                    var im = new dev.kimivl.train.data.ImageMagickRenderer(options());
                    yield task.equals("objects") ? Evaluator.imageMagickObjects(m, im, n, seed, progress) : Evaluator.imageMagickVqa(m, im, n, seed, progress);
                }
                default -> throw new IllegalArgumentException("--renderer must be java2d or imagemagick, not " + renderer);
            };
            if (json) {
                ObjectMapper om = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);
                ObjectNode o = om.createObjectNode();
                o.put("task", r.task());
                o.put("model", m.dir().toString());
                o.put("n", r.total());
                o.put("seed", seed);
                o.put("min_side", minSide);
                o.put("max_side", maxSide);
                o.put("overall", r.overall());
                ObjectNode by = o.putObject("by_type");
                for (var t : r.byType().values()) putScore(by.putObject(t.type()), t);
                // of the count questions, those within one of the truth (not in overall)
                if (r.countWithinOne() != null) putScore(o.putObject("count_within_one"), r.countWithinOne());
                var wrong = o.putArray("wrong");       // the first wrong answers (at most 20), to see what a model gets wrong
                r.wrong().forEach(wrong::add);
                System.out.println(om.writeValueAsString(o));
            } else {
                int width = 12;                        // the type column: as wide as its longest name ("48 frames, depth 75-100%")
                for (String k : r.byType().keySet()) width = Math.max(width, k.length());
                System.out.printf(Locale.ROOT, "%-" + width + "s %8s %8s%n", "type", "right", "accuracy");
                for (var t : r.byType().values()) System.out.printf(Locale.ROOT, "%-" + width + "s %4d/%-4d %7.1f%%%n", t.type(), t.right(), t.total(), 100 * t.accuracy());
                System.out.printf(Locale.ROOT, "%-" + width + "s %4d/%-4d %7.1f%%%n", "overall", r.right(), r.total(), 100 * r.overall());
                if (r.countWithinOne() != null) {
                    var c = r.countWithinOne();
                    System.out.printf(Locale.ROOT, "(count within one of the truth: %d/%d, %.1f%%)%n", c.right(), c.total(), 100 * c.accuracy());
                }
                for (String w : r.wrong().subList(0, Math.min(5, r.wrong().size()))) System.out.println("  wrong: " + w);
            }
        }
        return 0;
    }

    /** A score as JSON: accuracy (0..1), right, total. */
    private static void putScore(ObjectNode x, Evaluator.TypeScore t) {
        x.put("accuracy", t.accuracy());
        x.put("right", t.right());
        x.put("total", t.total());
    }

    private VisualWorld world() {
        return new VisualWorld(options());
    }

    private VisualWorld.Options options() {
        try {
            return new VisualWorld.Options(minSide, maxSide, easy);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("--min-side " + minSide + " --max-side " + maxSide + ": " + e.getMessage());
        }
    }
}
