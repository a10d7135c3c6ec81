package dev.kimivl.spark;

import dev.kimivl.cli.Main;
import dev.kimivl.config.GenerationConfig;
import dev.kimivl.generate.SamplingParams;
import dev.kimivl.model.KimiVL;
import dev.kimivl.text.ChatMessage;
import dev.kimivl.vision.ImageLoader;
import org.apache.spark.api.java.function.MapFunction;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import picocli.CommandLine;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.atomic.AtomicBoolean;

import static org.apache.spark.sql.functions.col;
import static org.apache.spark.sql.functions.element_at;
import static org.apache.spark.sql.functions.split;
import static org.junit.jupiter.api.Assertions.*;

/**
 * The acceptance test on the default model (models/kimivl-nano-instruct, the trained one): a folder of
 * generated pictures of one coloured shape each, read with Spark's binaryFile source and joined with a table of
 * questions about them, answered by {@link KimiVlTransformer} in local mode with two task threads. Every answer must
 * equal what {@code kimivl run} gives for the same image and question (greedy: the model's generation_config.json,
 * no option set, exactly as a user would run it), the corrupt and oversized files must be error rows, and a task that
 * fails once (injected) must be retried by Spark without losing or repeating a row.
 *
 * <p>{@code -Dkimivl.spark.images=N} sets the number of pictures (default 200, the number).
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class DefaultModelSparkTest {
    static final String MODEL = Path.of("../models/kimivl-nano-instruct").toAbsolutePath().normalize().toString();
    static final int IMAGES = Integer.getInteger("kimivl.spark.images", 200);
    /** Larger pictures are error rows: the generated ones are at most 160×160, the oversized one 500×400. */
    static final long MAX_PIXELS = 400 * 400;
    static final String[] QUESTIONS = {"What color is the shape?", "What shape is this?", "What is in this picture?"};

    SparkSession spark;
    KimiVL direct;                  // the in-process reference, opened apart from ExecutorModels
    SamplingParams runDefaults;     // what kimivl run samples with when no option is given
    Path dir;
    List<TestImages.Shape> shapes;
    final Map<String, String> bad = new HashMap<>();        // file name -> what its error must say
    int opensBefore;                // models opened in this JVM by the test classes that ran before this one

    @BeforeAll
    void start() throws Exception {
        System.setProperty("kimivl.threads", "1");          // the pool ExecutorModels would make for spark.task.cpus = 1
        dir = Files.createTempDirectory("kimivl-spark-default");
        shapes = TestImages.shapes(dir, IMAGES, 2026);
        Path png = shapes.get(0).file(), jpg = shapes.get(2).file();
        bad.put(TestImages.truncated(dir, png, "cut.png").getFileName().toString(), "cut.png: corrupt or truncated png");
        bad.put(Files.write(dir.resolve("noise.png"), new java.util.Random(1).ints(3000, 0, 256)
                .collect(ByteArrayOutputStream::new, ByteArrayOutputStream::write, (a, b) -> a.writeBytes(b.toByteArray())).toByteArray())
                .getFileName().toString(), "noise.png: not a recognised image");
        // an empty file gets no row at all: Spark's file sources (binaryFile included) skip zero-length files
        Files.write(dir.resolve("empty.jpg"), new byte[0]);
        bad.put(TestImages.plain(dir, "huge.png", 500, 400).getFileName().toString(), "500x400");
        bad.put(TestImages.truncated(dir, jpg, "cut.jpg").getFileName().toString(), "cut.jpg");
        spark = LocalSpark.start("kimivl-spark-default-model", 8);
        direct = KimiVL.open(Path.of(MODEL));
        GenerationConfig g = GenerationConfig.load(Path.of(MODEL));
        assertEquals(0.0, g.temperature(), "the default model answers greedily by its generation_config.json");
        runDefaults = SamplingParams.greedy(g.maxNewTokens());
        ExecutorModels.closeAll();          // whatever an earlier test class left open: this class's tasks open their own
        opensBefore = ExecutorModels.opens();
    }

    @AfterAll
    void stop() {
        LocalSpark.stop(spark, direct);
    }

    static String question(int i) { return QUESTIONS[i % QUESTIONS.length]; }

    /** What the library's greedy generation answers, in process, without Spark or kimivl-spark code. */
    String reference(Path file, String question) {
        var p = direct.prompt(List.of(ChatMessage.of("user", ChatMessage.imagePart(), ChatMessage.textPart(question))),
                List.of(new ImageLoader().load(file)));
        return direct.generator(0).generate(p.embeddings(), p.ids(), runDefaults, null).text();
    }

    /** {@code kimivl run --model MODEL -i FILE QUESTION}: the CLI command itself, in process; its stdout. */
    static String kimivlRun(Path file, String question) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        PrintStream saved = System.out;
        System.setOut(new PrintStream(out, true, StandardCharsets.UTF_8));   // before the CommandLine: picocli keeps System.out
        try {
            CommandLine cl = Main.commandLine();
            StringWriter err = new StringWriter();
            cl.setErr(new PrintWriter(err, true));
            int code = cl.execute("run", "--model", MODEL, "-i", file.toString(), question);
            assertEquals(0, code, "kimivl run failed: " + err);
        } finally {
            System.setOut(saved);
        }
        return out.toString(StandardCharsets.UTF_8).stripTrailing();        // run ends its answer with a newline
    }

    @Test
    void theReferenceIsWhatKimivlRunPrints() {
        // the CLI on a PNG and a JPEG, each question form: the in-process reference below stands for it on every image
        for (int i = 0; i < 3; i++) {
            TestImages.Shape s = shapes.get(i + 1);
            assertEquals(kimivlRun(s.file(), question(i)), reference(s.file(), question(i)), s.file() + " / " + question(i));
        }
    }

    /** Fails one task once, after it answered a row: Spark must run it again. */
    static final AtomicBoolean FAILED = new AtomicBoolean();

    @Test
    void binaryFileFolderWithQuestionsEqualsKimivlRunSurvivesATaskFailureAndGivesErrorRows() {
        // a table of questions by file name, joined to the binaryFile listing of the folder (bad files included)
        List<Row> qs = new ArrayList<>();
        for (int i = 0; i < shapes.size(); i++) qs.add(RowFactory.create(shapes.get(i).file().getFileName().toString(), question(i)));
        for (String name : bad.keySet()) qs.add(RowFactory.create(name, QUESTIONS[0]));
        StructType qSchema = new StructType().add("name", DataTypes.StringType).add("question", DataTypes.StringType);
        Dataset<Row> files = spark.read().format("binaryFile").load(dir.toString())
                .withColumn("name", element_at(split(col("path"), "/"), -1));
        Dataset<Row> input = files.join(spark.createDataFrame(qs, qSchema), "name").repartition(8);

        KimiVlTransformer t = new KimiVlTransformer().setModelPath(MODEL).setImageCol("content").setPromptCol("question")
                .setMaxImagePixels(MAX_PIXELS);          // no sampling option: the checkpoint's, as kimivl run takes them
        Dataset<Row> answered = t.transform(input).drop("content");
        StructType schema = answered.schema();
        int nameIndex = schema.fieldIndex("name");
        String victim = shapes.get(IMAGES / 2).file().getFileName().toString();
        Dataset<Row> withFailure = answered.map((MapFunction<Row, Row>) r -> {
            if (r.getString(nameIndex).equals(victim) && FAILED.compareAndSet(false, true)) {
                throw new IllegalStateException("injected task failure at " + victim);
            }
            return r;
        }, Encoders.row(schema));

        long t0 = System.nanoTime();
        List<Row> rows = withFailure.collectAsList();
        double seconds = (System.nanoTime() - t0) / 1e9;
        assertTrue(FAILED.get(), "the failure was injected, so its task ran twice");
        assertEquals(IMAGES + bad.size(), rows.size(), "one row per non-empty file: none lost, none repeated by the retry");

        Map<String, Row> byName = new HashMap<>();
        for (Row r : rows) assertNull(byName.put(r.getAs("name"), r), "two rows for " + r.getAs("name"));
        assertFalse(byName.containsKey("empty.jpg"), "Spark lists no row for an empty file (kimivl batch adds one: BatchMainTest)");
        for (var e : bad.entrySet()) {
            Row r = byName.get(e.getKey());
            String error = r.getAs("error");
            assertNotNull(error, e.getKey() + " must be an error row, answered " + r.getAs("answer"));
            assertTrue(error.contains(e.getValue()), e.getKey() + ": " + error);
            assertNull(r.getAs("answer"));
        }
        int colourRight = 0, colourAsked = 0;
        for (int i = 0; i < shapes.size(); i++) {
            TestImages.Shape s = shapes.get(i);
            Row r = byName.get(s.file().getFileName().toString());
            assertNull(r.getAs("error"), (String) r.getAs("error"));
            String answer = r.getAs("answer");
            assertEquals(reference(s.file(), question(i)), answer, s.file() + " / " + question(i));
            assertEquals("stop", r.getAs("finish_reason"), s.file() + ": " + answer);
            if (question(i) == QUESTIONS[0]) {
                colourAsked++;
                if (answer.toLowerCase(Locale.ROOT).contains(s.colour())) colourRight++;
            }
        }
        System.out.printf(Locale.ROOT, "DefaultModelSparkTest: %d files (%d bad) in %.1f s on local[2,2] with one retried task; colour named right %d/%d%n",
                rows.size(), bad.size(), seconds, colourRight, colourAsked);
        // the trained model names the colour of one shape on a plain ground; random weights or garbled pixels would not
        assertTrue(colourRight * 2 > colourAsked, "colour right only " + colourRight + "/" + colourAsked + ": is this the trained model?");
        assertEquals(1, ExecutorModels.opens() - opensBefore, "one model for the executor, shared by its tasks and the retried one");
    }
}
