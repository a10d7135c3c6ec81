package dev.kimivl.spark;

import dev.kimivl.generate.SamplingParams;
import dev.kimivl.model.KimiVL;
import dev.kimivl.text.ChatMessage;
import dev.kimivl.vision.ImageLoader;
import org.apache.spark.api.java.function.MapFunction;
import org.apache.spark.ml.Pipeline;
import org.apache.spark.ml.PipelineModel;
import org.apache.spark.ml.PipelineStage;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;

import java.io.ByteArrayOutputStream;
import java.io.ObjectOutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicBoolean;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Kimi-VL on Spark in local mode (two task threads, one retry allowed: {@code local[2,2]}, bound to 127.0.0.1) with
 * the repo's tiny-random model: every answer must equal the one the model gives in process for the same image and
 * prompt (greedy, computed here the way {@code kimivl run -t 0} does, without Spark), bad images must be error rows,
 * and the model must be opened once for the whole JVM.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class KimiVlSparkTest {
    static final String MODEL = Path.of("../models/tiny-random").toAbsolutePath().normalize().toString();
    // 80 random pictures (the 200, on the trained default model, are DefaultModelSparkTest's)
    static final int IMAGES = 80, MAX_TOKENS = 6;
    static final String PROMPT = "What is in this picture?";

    SparkSession spark;
    KimiVL direct;                 // the in-process reference, opened apart from ExecutorModels
    Path dir;
    List<Path> images;
    final Map<String, String> expected = new ConcurrentHashMap<>();   // "file|prompt" -> greedy answer without Spark
    int opensBefore;               // models opened in this JVM by the test classes that ran before this one

    @BeforeAll
    void start() throws Exception {
        // the kernel pool of this JVM, as ExecutorModels would size it for one core per task (spark.task.cpus = 1)
        System.setProperty("kimivl.threads", "1");
        dir = Files.createTempDirectory("kimivl-spark-test");
        images = TestImages.write(dir, IMAGES, 11);
        spark = LocalSpark.start("kimivl-spark-test", 4);
        direct = KimiVL.open(Path.of(MODEL));
        ExecutorModels.closeAll();       // whatever an earlier test class left open: this class's tasks open their own
        opensBefore = ExecutorModels.opens();
    }

    @AfterAll
    void stop() {
        LocalSpark.stop(spark, direct);
    }

    /** What `kimivl run -t 0 -n MAX_TOKENS -i file prompt` answers, in process (no Spark, no kimivl-spark code). */
    String reference(Path file, String prompt) {
        return expected.computeIfAbsent(file + "|" + prompt, k -> {
            List<ChatMessage> messages = List.of(file == null ? ChatMessage.user(prompt)
                    : ChatMessage.of("user", ChatMessage.imagePart(), ChatMessage.textPart(prompt)));
            var p = direct.prompt(messages, file == null ? List.of() : List.of(new ImageLoader().load(file)));
            return direct.generator(0).generate(p.embeddings(), p.ids(), SamplingParams.greedy(MAX_TOKENS), null).text();
        });
    }

    private static String err(Row r) { return r.getAs("error"); }

    private static String local(String uri) { return uri.startsWith("file:") ? Path.of(java.net.URI.create(uri)).toString() : uri; }

    @Test
    void binaryFileFolderGivesTheInProcessAnswersAndErrorRows() throws Exception {
        Path bad = Files.createDirectories(dir.resolve("bad"));
        Path corrupt = TestImages.corrupt(bad, images.get(0));
        Path large = TestImages.plain(bad, "large.png", 300, 200);      // 60,000 pixels, over the limit set below
        Path text = Files.writeString(bad.resolve("notes.txt"), "not an image");
        List<Path> some = new ArrayList<>(images.subList(0, 20));
        for (Path p : some) Files.copy(p, bad.resolve(p.getFileName()));

        Dataset<Row> files = spark.read().format("binaryFile").load(bad.toString());
        KimiVlTransformer t = new KimiVlTransformer().setModelPath(MODEL).setImageCol("content").setPrompt(PROMPT)
                .setTemperature(0).setMaxTokens(MAX_TOKENS).setMaxImagePixels(50_000);
        List<Row> rows = t.transform(files.repartition(3)).drop("content").collectAsList();

        assertEquals(some.size() + 3, rows.size(), "one row per file, bad ones included");
        Map<String, Row> byName = new HashMap<>();
        for (Row r : rows) byName.put(Path.of(local(r.getAs("path"))).getFileName().toString(), r);
        for (Path p : some) {
            Row r = byName.get(p.getFileName().toString());
            assertNull(r.getAs("error"), p + ": " + r.getAs("error"));
            assertEquals(reference(p, PROMPT), r.getAs("answer"), p.toString());
            assertTrue((Integer) r.getAs("prompt_tokens") > 10, "the prompt holds the chat template and the image tokens");
            assertTrue((Integer) r.getAs("completion_tokens") >= 1 && (Integer) r.getAs("completion_tokens") <= MAX_TOKENS);
            assertTrue(List.of("stop", "length").contains((String) r.getAs("finish_reason")));
            assertNull(r.getAs("reasoning"), "tiny-random is no Thinking model");
        }
        Row c = byName.get(corrupt.getFileName().toString());
        assertNull(c.getAs("answer"));
        assertTrue(((String) c.getAs("error")).contains("corrupt.png"), (String) c.getAs("error"));
        String largeError = byName.get(large.getFileName().toString()).getAs("error");
        assertTrue(largeError.contains("300x200") && largeError.contains("maxImagePixels"), largeError);
        String textError = byName.get(text.getFileName().toString()).getAs("error");
        assertTrue(textError.contains("notes.txt") && textError.contains("not a recognised image"), textError);
        assertEquals(1, ExecutorModels.opens() - opensBefore, "one model per executor JVM, shared by its tasks and jobs");
    }

    @Test
    void tablesOfPathsAndOfBytesWithAPromptColumn() throws Exception {
        StructType schema = new StructType().add("id", DataTypes.IntegerType).add("image", DataTypes.StringType).add("question", DataTypes.StringType);
        String[] questions = {"What colour dominates?", "Describe the shapes.", PROMPT};
        List<Row> in = new ArrayList<>();
        for (int i = 0; i < 12; i++) in.add(RowFactory.create(i, images.get(i * 7).toUri().toString(), questions[i % 3]));
        in.add(RowFactory.create(100, dir.resolve("missing.png").toString(), PROMPT));
        in.add(RowFactory.create(101, null, PROMPT));
        Dataset<Row> paths = spark.createDataFrame(in, schema).repartition(2);
        KimiVlTransformer t = new KimiVlTransformer().setModelPath(MODEL).setImageCol("image").setPromptCol("question")
                .setNameCol("image").setOutputCol("reply").setTemperature(0).setMaxTokens(MAX_TOKENS);
        Map<Integer, Row> got = new HashMap<>();
        for (Row r : t.transform(paths).collectAsList()) got.put(r.getAs("id"), r);
        for (int i = 0; i < 12; i++) {
            Row r = got.get(i);
            assertNull(r.getAs("error"), err(r));
            assertEquals(reference(images.get(i * 7), questions[i % 3]), r.getAs("reply"), "row " + i);
        }
        assertTrue(((String) got.get(100).getAs("error")).contains("missing.png: image file not found"), (String) got.get(100).getAs("error"));
        assertTrue(((String) got.get(101).getAs("error")).contains("is null"), (String) got.get(101).getAs("error"));

        // the same images as bytes
        StructType bytesSchema = new StructType().add("name", DataTypes.StringType).add("bytes", DataTypes.BinaryType);
        List<Row> bin = new ArrayList<>();
        for (int i = 0; i < 6; i++) bin.add(RowFactory.create(images.get(i * 5).toString(), Files.readAllBytes(images.get(i * 5))));
        KimiVlTransformer tb = new KimiVlTransformer().setModelPath(MODEL).setImageCol("bytes").setNameCol("name").setPrompt(PROMPT)
                .setTemperature(0).setMaxTokens(MAX_TOKENS).setMaxImageBytes(Files.size(images.get(5)));
        for (Row r : tb.transform(spark.createDataFrame(bin, bytesSchema)).collectAsList()) {
            Path p = Path.of((String) r.getAs("name"));
            long size = Files.size(p);
            if (size > Files.size(images.get(5))) {
                assertTrue(((String) r.getAs("error")).contains("over maxImageBytes"), (String) r.getAs("error"));
            } else {
                assertNull(r.getAs("error"), err(r));
                assertEquals(reference(p, PROMPT), r.getAs("answer"), p.toString());
            }
        }
    }

    @Test
    void textOnlyRowsWithoutAnImageColumn() {
        StructType schema = new StructType().add("question", DataTypes.StringType);
        List<Row> in = List.of(RowFactory.create("Hello"), RowFactory.create("Name three colours."));
        KimiVlFunction f = KimiVlFunction.builder(InferenceSettings.greedy(MODEL, null, MAX_TOKENS), schema).promptCol("question").build();
        for (Row r : spark.createDataFrame(in, schema).mapPartitions(f, f.encoder()).collectAsList()) {
            assertEquals(reference(null, r.getAs("question")), r.getAs("answer"));
        }
    }

    /** A two-page PDF (a coloured square and a title on each page), made with PDFBox. */
    static Path makePdf(Path dir) throws Exception {
        Path f = dir.resolve("two-pages.pdf");
        try (var doc = new org.apache.pdfbox.pdmodel.PDDocument()) {
            java.awt.Color[] colours = {java.awt.Color.RED, java.awt.Color.BLUE};
            for (int i = 0; i < 2; i++) {
                var page = new org.apache.pdfbox.pdmodel.PDPage(new org.apache.pdfbox.pdmodel.common.PDRectangle(160, 120));
                doc.addPage(page);
                try (var cs = new org.apache.pdfbox.pdmodel.PDPageContentStream(doc, page)) {
                    cs.setNonStrokingColor(colours[i]);
                    cs.addRect(10, 10, 60, 60);
                    cs.fill();
                }
            }
            doc.save(f.toFile());
        }
        return f;
    }

    static final Path CLIP = Path.of("../kimivl-media/src/test/resources/video/clip.mp4").toAbsolutePath().normalize();

    /** The prompt kimivl run --pdf/--video builds, in process with kimivl-media (each image after its label, then the text). */
    String mediaReference(List<String> labels, List<dev.kimivl.vision.LoadedImage> ims, String prompt) {
        List<ChatMessage.Part> parts = new ArrayList<>();
        for (String l : labels) {
            if (l != null) parts.add(ChatMessage.textPart(l));
            parts.add(ChatMessage.imagePart());
        }
        parts.add(ChatMessage.textPart(prompt));
        var p = direct.prompt(List.of(ChatMessage.of("user", parts.toArray(ChatMessage.Part[]::new))), ims);
        return direct.generator(0).generate(p.embeddings(), p.ids(), SamplingParams.greedy(MAX_TOKENS), null).text();
    }

    @Test
    void pdfPagesAndVideoFramesBecomeImagesOfTheRow() throws Exception {
        Path pdf = makePdf(dir);
        StructType schema = new StructType().add("path", DataTypes.StringType);
        List<Row> in = List.of(RowFactory.create(pdf.toString()), RowFactory.create(CLIP.toString()), RowFactory.create(images.get(1).toString()));
        KimiVlTransformer t = new KimiVlTransformer().setModelPath(MODEL).setImageCol("path").setPrompt(PROMPT)
                .setTemperature(0).setMaxTokens(MAX_TOKENS).setVideoFrames(3).setFrameTokens(16).setDpi(72);
        Map<String, Row> got = new HashMap<>();
        for (Row r : t.transform(spark.createDataFrame(in, schema)).collectAsList()) got.put(r.getAs("path"), r);

        var cfg = direct.vision().preprocessorConfig();
        List<dev.kimivl.vision.LoadedImage> pages = new ArrayList<>();
        try (var doc = dev.kimivl.media.PdfDocument.open(pdf)) {
            for (int page = 1; page <= 2; page++) pages.add(doc.render(page, 72, ImageLoader.DEFAULT_MAX_PIXELS));
        }
        Row pdfRow = got.get(pdf.toString());
        assertNull(pdfRow.getAs("error"), err(pdfRow));
        assertEquals(mediaReference(List.of("Page 1:", "Page 2:"), pages, PROMPT), pdfRow.getAs("answer"));

        List<dev.kimivl.vision.LoadedImage> frames;
        List<String> labels = new ArrayList<>();
        try (var v = dev.kimivl.media.Video.open(CLIP, ImageLoader.DEFAULT_MAX_PIXELS)) {
            var plan = dev.kimivl.media.FrameSampling.frames(3, 3).plan(v.info().frames(), v.info().durationSeconds());
            frames = v.frames(plan, im -> dev.kimivl.media.TokenBudget.fit(im, 16, cfg), null);
            for (double sec : plan.seconds()) labels.add("Frame at " + dev.kimivl.media.Timestamps.format(sec) + ":");
        }
        assertEquals(3, frames.size());
        Row videoRow = got.get(CLIP.toString());
        assertNull(videoRow.getAs("error"), err(videoRow));
        assertEquals(mediaReference(labels, frames, PROMPT), videoRow.getAs("answer"));

        Row imageRow = got.get(images.get(1).toString());
        assertEquals(reference(images.get(1), PROMPT), imageRow.getAs("answer"));
        // the pages and frames are in the prompt: more tokens than one small image
        assertTrue((Integer) pdfRow.getAs("prompt_tokens") > (Integer) imageRow.getAs("prompt_tokens"));
        assertTrue((Integer) videoRow.getAs("prompt_tokens") > (Integer) imageRow.getAs("prompt_tokens"));

        // a page past the end is an error row naming the document
        Row bad = new KimiVlTransformer().setModelPath(MODEL).setImageCol("path").setPrompt(PROMPT).setMaxTokens(1).setPages("3")
                .transform(spark.createDataFrame(List.of(RowFactory.create(pdf.toString())), schema)).collectAsList().get(0);
        assertTrue(err(bad).contains("two-pages.pdf") && err(bad).contains("has 2 pages"), err(bad));
    }

    /** Fails the first attempt of one task once, after some of its rows were answered. */
    static final AtomicBoolean FAILED = new AtomicBoolean();

    @Test
    void allImagesThroughMapPartitionsSurviveATaskFailure() {
        Dataset<Row> paths = spark.read().format("binaryFile").option("pathGlobFilter", "img_*").load(dir.toString())
                .select("path").repartition(8);
        KimiVlFunction f = KimiVlFunction.builder(InferenceSettings.greedy(MODEL, PROMPT, MAX_TOKENS), paths.schema())
                .imageCol("path").build();
        StructType out = f.outputSchema();
        int pathIndex = out.fieldIndex("path");       // rows inside a job carry no schema: by position
        Dataset<Row> answered = paths.mapPartitions(f, f.encoder()).map((MapFunction<Row, Row>) r -> {
            if (r.getString(pathIndex).endsWith("img_049.png") && FAILED.compareAndSet(false, true)) {
                throw new IllegalStateException("injected task failure");
            }
            return r;
        }, org.apache.spark.sql.Encoders.row(out));
        List<Row> rows = answered.collectAsList();
        assertTrue(FAILED.get(), "the failure was injected (and the task retried)");
        assertEquals(IMAGES, rows.size());
        Set<String> seen = new HashSet<>();
        for (Row r : rows) {
            String path = local(r.getAs("path"));
            assertTrue(seen.add(path), "duplicate row for " + path);
            assertNull(r.getAs("error"), err(r));
            assertEquals(reference(Path.of(path), PROMPT), r.getAs("answer"), path);
        }
        assertEquals(1, ExecutorModels.opens() - opensBefore);
    }

    @Test
    void theTaskClosureHoldsSettingsNotTheModel() throws Exception {
        StructType schema = new StructType().add("path", DataTypes.StringType);
        KimiVlFunction f = KimiVlFunction.builder(InferenceSettings.greedy(MODEL, PROMPT, MAX_TOKENS), schema).imageCol("path").build();
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (ObjectOutputStream o = new ObjectOutputStream(bytes)) { o.writeObject(f); }
        // the weights alone are ~900 KB; the settings, the schema and the column positions a few KB
        assertTrue(bytes.size() < 8192, "serialised function is " + bytes.size() + " bytes");
    }

    @Test
    void theTransformerSavesAndLoadsInAPipeline() throws Exception {
        KimiVlTransformer t = new KimiVlTransformer().setModelPath(MODEL).setImageCol("content").setPrompt(PROMPT)
                .setTemperature(0.5).setTopK(40).setMaxTokens(9).setStopStrings("\n\n").setSeed(7).setThreadsPerTask(1);
        Path where = dir.resolve("pipeline");
        StructType files = new StructType().add("path", DataTypes.StringType).add("content", DataTypes.BinaryType);
        PipelineModel fitted = new Pipeline().setStages(new PipelineStage[]{t}).fit(spark.createDataFrame(List.of(), files));
        fitted.save(where.toString());
        KimiVlTransformer back = (KimiVlTransformer) PipelineModel.load(where.toString()).stages()[0];
        assertEquals(t.settings(), back.settings());
        assertEquals(t.uid(), back.uid());
    }

    @Test
    void missingSettingsAreClearErrorsOnTheDriver() {
        StructType schema = new StructType().add("path", DataTypes.StringType).add("n", DataTypes.IntegerType);
        var e = assertThrows(IllegalArgumentException.class, () -> new KimiVlTransformer().setModelPath(MODEL).setImageCol("image").setPrompt("x").transformSchema(schema));
        assertTrue(e.getMessage().contains("imageCol 'image' is not a column"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> new KimiVlTransformer().setModelPath(MODEL).setImageCol("n").setPrompt("x").transformSchema(schema));
        assertTrue(e.getMessage().contains("has type int"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> new KimiVlTransformer().setModelPath(MODEL).setImageCol("path").transformSchema(schema));
        assertTrue(e.getMessage().contains("no prompt"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> new KimiVlTransformer().setImageCol("path").setPrompt("x").transformSchema(schema));
        assertTrue(e.getMessage().contains("modelPath"), e.getMessage());
    }
}
