package dev.kimivl.spark;

import dev.kimivl.model.KimiVL;
import org.apache.spark.sql.SparkSession;

/** The local Spark session the Spark test classes share the set-up of: two executor threads, two tries per task. */
final class LocalSpark {
    private LocalSpark() {}

    /**
     * local[2,2]: 2 task slots, a failed task retried once (the default local master gives up at the first failure,
     * which the injected-failure tests need to see recovered), bound to the loopback interface, no web UI.
     */
    static SparkSession start(String appName, int shufflePartitions) {
        return SparkSession.builder().master("local[2,2]").appName(appName)
                .config("spark.driver.bindAddress", "127.0.0.1").config("spark.driver.host", "127.0.0.1")
                .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", String.valueOf(shufflePartitions))
                .getOrCreate();
    }

    /** Stops the session, closes the in-process reference model and every model the executors opened. */
    static void stop(SparkSession spark, KimiVL direct) {
        if (spark != null) spark.stop();
        if (direct != null) direct.close();
        ExecutorModels.closeAll();
    }
}
