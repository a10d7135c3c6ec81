package dev.kimivl.train.recipe;

import com.fasterxml.jackson.databind.JsonNode;

import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.TreeMap;

/**
 * A stage's training throughput over the whole stage, from {@code train_log.jsonl}: the counted FLOPs of its steps
 * (6 · active params · tokens plus attention, {@link RecipeTrainer}'s count), the seconds the steps themselves took, and
 * the wall time from the stage's start to its last step (what the data thread, checkpoints and waits add), so the
 * sustained rate holds across resumes: each step's last log entry counts (a resumed run repeats the steps after its
 * last checkpoint), and the wall clock that a checkpoint saves excludes the time the run was stopped.
 *
 * @param steps       steps logged
 * @param gflop       counted GFLOP of those steps
 * @param stepSeconds seconds inside the steps
 * @param wallSeconds seconds of the run's wall clock from the stage's first step's start to its last step's end
 */
public record StageThroughput(int steps, double gflop, double stepSeconds, double wallSeconds) {

    /** The stage's figures, or null when the log has none of its steps with FLOP counts (logs before session 28). */
    public static StageThroughput of(Path log, String stage) throws IOException {
        return of(Curves.stageLines(log, stage));
    }

    /** {@link #of(Path, String)} from the stage's log lines already read ({@link Curves#stageLines}). */
    static StageThroughput of(List<JsonNode> stageLines) {
        TreeMap<Integer, JsonNode> last = new TreeMap<>();
        for (JsonNode n : stageLines) if (n.has("gflop") && n.has("step_s")) last.put(n.get("step").asInt(), n);
        if (last.isEmpty()) return null;
        double gflop = 0, seconds = 0;
        for (JsonNode n : last.values()) {
            gflop += n.get("gflop").asDouble();
            seconds += n.get("step_s").asDouble();
        }
        JsonNode first = last.firstEntry().getValue(), end = last.lastEntry().getValue();
        double wall = end.get("wall_s").asDouble() - (first.get("wall_s").asDouble() - first.get("step_s").asDouble());
        return new StageThroughput(last.size(), gflop, seconds, wall);
    }

    /** GFLOP/s inside the steps. */
    public double stepRate() { return gflop / stepSeconds; }

    /** GFLOP/s over the stage's wall time: the sustained rate. */
    public double sustainedRate() { return gflop / wallSeconds; }

    /** One line for the progress output. */
    public String describe() {
        return String.format(Locale.ROOT, "%d steps, %.0f GFLOP counted: %.0f s in the steps (%.1f GFLOP/s), %.0f s of wall time (%.1f GFLOP/s sustained)",
                steps, gflop, stepSeconds, stepRate(), wallSeconds, sustainedRate());
    }
}
