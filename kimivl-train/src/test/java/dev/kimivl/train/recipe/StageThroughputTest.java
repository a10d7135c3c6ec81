package dev.kimivl.train.recipe;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

class StageThroughputTest {
    private static String line(String stage, int step, double gflop, double stepS, double wallS) {
        return "{\"stage\":\"" + stage + "\",\"step\":" + step + ",\"gflop\":" + gflop + ",\"step_s\":" + stepS + ",\"wall_s\":" + wallS + "}";
    }

    /**
     * A stage of 3 steps killed after step 2 (checkpoint at step 1) and resumed: step 2 is logged twice, and the resumed
     * run's wall clock goes on from the checkpoint's. Each step counts once (its last entry), the wall time is the
     * resumed clock's, other stages and lines without FLOP counts are left out.
     */
    @Test
    void countsEachStepOnceAcrossAResume(@TempDir Path dir) throws Exception {
        Path log = dir.resolve("train_log.jsonl");
        Files.writeString(log, String.join("\n",
                line("vit", 1, 99, 9, 9),
                line("long", 1, 10, 1.0, 1.5),            // started at wall 0.5 (the first batch's rendering before it)
                line("long", 2, 10, 1.0, 2.6),            // killed after this step; the checkpoint was at step 1 (wall 1.5)
                line("long", 2, 12, 1.2, 2.9),            // resumed: step 2 again, from wall 1.5 + 0.2 of start-up
                line("long", 3, 12, 1.0, 4.0),
                "{\"stage\":\"long\",\"step\":4,\"loss\":1.0}",   // a line of an older log: no FLOP count
                "") );
        StageThroughput t = StageThroughput.of(log, "long");
        assertEquals(3, t.steps());
        assertEquals(34, t.gflop(), 1e-9);
        assertEquals(3.2, t.stepSeconds(), 1e-9);
        assertEquals(3.5, t.wallSeconds(), 1e-9);              // 4.0 − (1.5 − 1.0)
        assertEquals(34 / 3.5, t.sustainedRate(), 1e-9);
        assertTrue(t.describe().contains("3 steps, 34 GFLOP counted"), t.describe());
        assertTrue(t.describe().contains("(9.7 GFLOP/s sustained)"), t.describe());
        assertNull(StageThroughput.of(log, "settle"));
    }
}
