package dev.kimivl.spark;

import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.*;

/** kimivl batch end to end in local mode: a glob of images (one corrupt) to parquet, then read back. */
class BatchMainTest {
    @Test
    void aGlobOfImagesToParquetWithAnErrorRow(@TempDir Path tmp) throws Exception {
        Path images = Files.createDirectories(tmp.resolve("in"));
        List<Path> files = TestImages.write(images, 7, 5);
        TestImages.corrupt(images, files.get(0));
        Files.write(images.resolve("empty.png"), new byte[0]);     // Spark lists no row for it; kimivl batch adds one
        Files.writeString(images.resolve("readme.txt"), "not matched by the glob");
        Path out = tmp.resolve("answers.parquet");
        System.setProperty("spark.driver.bindAddress", "127.0.0.1");   // what BatchMain sets for local masters too

        ByteArrayOutputStream err = new ByteArrayOutputStream();
        PrintStream saved = System.err;
        int code;
        try {
            System.setErr(new PrintStream(err, true, StandardCharsets.UTF_8));
            code = new CommandLine(new BatchMain()).execute("--input", images + "/*.png", "--input", images + "/*.jpg",
                    "--prompt", "What is in this picture?", "-t", "0", "-n", "4", "--out", out.toString(), "--master", "local[2]",
                    "--model", KimiVlSparkTest.MODEL);
        } finally {
            System.setErr(saved);
        }
        String log = err.toString(StandardCharsets.UTF_8);
        assertEquals(0, code, log);
        assertTrue(log.contains("kimivl batch: 9 images in"), log);
        assertTrue(log.contains("2 with errors") && log.contains("corrupt.png") && log.contains("empty.png: empty file (0 bytes)"), log);

        SparkSession spark = SparkSession.builder().master("local[1]").config("spark.driver.bindAddress", "127.0.0.1")
                .config("spark.driver.host", "127.0.0.1").config("spark.ui.enabled", "false").getOrCreate();
        try {
            List<Row> rows = spark.read().parquet(out.toString()).collectAsList();
            assertEquals(9, rows.size());
            Set<String> paths = new HashSet<>();
            int errors = 0;
            for (Row r : rows) {
                assertTrue(paths.add(r.getAs("path")), "one row per image");
                if (r.getAs("error") != null) {
                    errors++;
                    String path = r.getAs("path");
                    assertTrue(path.endsWith("corrupt.png") || path.endsWith("empty.png"), path);
                } else {
                    assertNotNull(r.getAs("answer"));
                    assertTrue((Integer) r.getAs("completion_tokens") <= 4);
                }
            }
            assertEquals(2, errors);
        } finally {
            spark.stop();
        }

        // an existing output is refused unless --overwrite
        ByteArrayOutputStream err2 = new ByteArrayOutputStream();
        try {
            System.setErr(new PrintStream(err2, true, StandardCharsets.UTF_8));
            code = new CommandLine(new BatchMain()).execute("--input", images + "/*.png", "--prompt", "x", "-n", "1",
                    "--out", out.toString(), "--master", "local[1]", "--model", KimiVlSparkTest.MODEL);
        } finally {
            System.setErr(saved);
        }
        assertNotEquals(0, code);
        assertTrue(err2.toString(StandardCharsets.UTF_8).contains("already exists"), err2.toString(StandardCharsets.UTF_8));

        // an output path Spark would read back as a glob is refused before anything runs
        StringWriter err3 = new StringWriter();
        CommandLine cl = new CommandLine(new BatchMain());
        cl.setErr(new PrintWriter(err3, true));
        code = cl.execute("--input", images + "/*.png", "--prompt", "x", "--out", tmp.resolve("run[1]").toString(), "--model", KimiVlSparkTest.MODEL);
        assertEquals(2, code, err3.toString());
        assertTrue(err3.toString().contains("run[1]: no [ ] * ? { }"), err3.toString());
    }
}
