package dev.kimivl.spark;

import org.apache.spark.api.java.function.MapPartitionsFunction;
import org.apache.spark.sql.Encoder;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructField;
import org.apache.spark.sql.types.StructType;
import org.apache.spark.util.LongAccumulator;

import java.util.Arrays;
import java.util.Iterator;
import java.util.List;

/**
 * Kimi-VL over a Dataset's partitions: each input row comes out with the result columns appended (answer, reasoning,
 * prompt_tokens, completion_tokens, finish_reason, time_ms, error). For the Dataset API:
 *
 * <pre>{@code
 * Dataset<Row> images = spark.read().format("binaryFile").load("photos/*.jpg");
 * KimiVlFunction f = KimiVlFunction.builder(InferenceSettings.greedy("/models/Kimi-VL-A3B-Instruct", "Describe it.", 128), images.schema())
 *         .imageCol("content").build();
 * Dataset<Row> answers = images.mapPartitions(f, f.encoder());
 * }</pre>
 *
 * The function holds settings and column positions only; the model is opened by the first partition an executor runs
 * ({@link ExecutorModels}) and shared by the rest. Rows are answered one at a time as Spark pulls them.
 */
public final class KimiVlFunction implements MapPartitionsFunction<Row, Row> {
    /** The result columns after the answer column, with their types. */
    public static final List<StructField> RESULT_FIELDS = List.of(
            DataTypes.createStructField("reasoning", DataTypes.StringType, true),
            DataTypes.createStructField("prompt_tokens", DataTypes.IntegerType, true),
            DataTypes.createStructField("completion_tokens", DataTypes.IntegerType, true),
            DataTypes.createStructField("finish_reason", DataTypes.StringType, true),
            DataTypes.createStructField("time_ms", DataTypes.LongType, false),
            DataTypes.createStructField("error", DataTypes.StringType, true));

    private final InferenceSettings settings;
    private final StructType inputSchema, outputSchema;
    private final int imageIndex, promptIndex, nameIndex;
    private final LongAccumulator loadMillis, rowsDone;

    private KimiVlFunction(Builder b) {
        this.settings = b.settings;
        this.inputSchema = b.schema;
        this.imageIndex = b.imageCol == null ? -1 : column(b.schema, b.imageCol, "imageCol", DataTypes.BinaryType, DataTypes.StringType);
        this.promptIndex = b.promptCol == null ? -1 : column(b.schema, b.promptCol, "promptCol", DataTypes.StringType);
        if (promptIndex < 0 && settings.prompt() == null) {
            throw new IllegalArgumentException("no prompt: set a prompt column (promptCol) or a fixed prompt");
        }
        String name = b.nameCol != null ? b.nameCol : Arrays.asList(b.schema.fieldNames()).contains("path") ? "path" : null;
        this.nameIndex = name == null ? -1 : column(b.schema, name, "nameCol", DataTypes.StringType);
        this.outputSchema = outputSchema(b.schema, b.outputCol);
        this.loadMillis = b.loadMillis;
        this.rowsDone = b.rowsDone;
    }

    public static Builder builder(InferenceSettings settings, StructType inputSchema) { return new Builder(settings, inputSchema); }

    /** The input columns followed by the answer column ({@code outputCol}) and {@link #RESULT_FIELDS}. */
    public static StructType outputSchema(StructType input, String outputCol) {
        StructType out = input;
        for (StructField f : fields(outputCol)) {
            if (Arrays.asList(input.fieldNames()).contains(f.name())) {
                throw new IllegalArgumentException("the input already has a column '" + f.name() + "', which the results would overwrite; rename or drop it"
                        + (f.name().equals(outputCol) ? " or choose another outputCol" : ""));
            }
            out = out.add(f);
        }
        return out;
    }

    private static List<StructField> fields(String outputCol) {
        var all = new java.util.ArrayList<StructField>();
        all.add(DataTypes.createStructField(outputCol, DataTypes.StringType, true));
        all.addAll(RESULT_FIELDS);
        return all;
    }

    public StructType outputSchema() { return outputSchema; }

    /** The encoder to pass to {@code mapPartitions} with this function. */
    public Encoder<Row> encoder() { return Encoders.row(outputSchema); }

    @Override
    public Iterator<Row> call(Iterator<Row> rows) {
        boolean[] opened = {false};
        ExecutorModels.Loaded loaded = ExecutorModels.get(settings, opened);
        if (opened[0] && loadMillis != null) loadMillis.add(loaded.loadMillis());
        loaded.model().weights().checkUnchanged();        // a weight file replaced under a long-lived executor fails the task, not every row
        RowInference inference = new RowInference(loaded, settings);
        return new Iterator<>() {
            @Override public boolean hasNext() { return rows.hasNext(); }

            @Override public Row next() {
                Row in = rows.next();
                Object image = imageIndex < 0 ? null : in.get(imageIndex);
                String name = nameIndex >= 0 && !in.isNullAt(nameIndex) ? in.getString(nameIndex)
                        : image instanceof String s ? s : "row";
                String prompt = promptIndex < 0 ? null : in.getString(promptIndex);
                RowInference.Outcome o = imageIndex >= 0 && image == null
                        ? RowInference.Outcome.failed(name + ": the image column '" + inputSchema.fields()[imageIndex].name() + "' is null", 0)
                        : inference.answer(image, name, prompt);
                if (rowsDone != null) rowsDone.add(1);
                Object[] values = Arrays.copyOf(rowValues(in), in.size() + 1 + RESULT_FIELDS.size());
                int i = in.size();
                values[i++] = o.answer();
                values[i++] = o.reasoning();
                values[i++] = o.promptTokens();
                values[i++] = o.completionTokens();
                values[i++] = o.finishReason();
                values[i++] = o.timeMs();
                values[i] = o.error();
                return RowFactory.create(values);
            }
        };
    }

    private static Object[] rowValues(Row r) {
        Object[] v = new Object[r.size()];
        for (int i = 0; i < v.length; i++) v[i] = r.get(i);
        return v;
    }

    private static int column(StructType schema, String col, String setting, DataType... types) {
        int i;
        try {
            i = schema.fieldIndex(col);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(setting + " '" + col + "' is not a column of the input (columns: " + String.join(", ", schema.fieldNames()) + ")");
        }
        DataType t = schema.fields()[i].dataType();
        for (DataType ok : types) if (ok.equals(t)) return i;
        throw new IllegalArgumentException(setting + " '" + col + "' has type " + t.simpleString() + "; it must be "
                + String.join(" or ", Arrays.stream(types).map(DataType::simpleString).toList())
                + (setting.equals("imageCol") ? " (the image file's bytes, or its path)" : ""));
    }

    /** Which columns hold what. */
    public static final class Builder {
        private final InferenceSettings settings;
        private final StructType schema;
        private String imageCol, promptCol, nameCol, outputCol = "answer";
        private LongAccumulator loadMillis, rowsDone;

        private Builder(InferenceSettings settings, StructType schema) {
            this.settings = settings;
            this.schema = schema;
        }

        /** Binary (the image file's bytes, e.g. binaryFile's {@code content}) or string (a path or URI); unset: text only. */
        public Builder imageCol(String c) { this.imageCol = c; return this; }
        /** A string column with each row's prompt; unset: the settings' fixed prompt. */
        public Builder promptCol(String c) { this.promptCol = c; return this; }
        /** A string column naming the row in error messages (default: {@code path} when the input has one). */
        public Builder nameCol(String c) { this.nameCol = c; return this; }
        /** The answer column's name (default {@code answer}). */
        public Builder outputCol(String c) { this.outputCol = c; return this; }
        /** Adds each executor's model-opening time, in ms, when it opens the model. */
        public Builder loadMillis(LongAccumulator a) { this.loadMillis = a; return this; }
        /** Counts the rows answered (progress). */
        public Builder rowsDone(LongAccumulator a) { this.rowsDone = a; return this; }

        public KimiVlFunction build() { return new KimiVlFunction(this); }
    }
}
