package dev.kimivl.train.recipe;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.jfree.chart.ChartFactory;
import org.jfree.chart.ChartUtils;
import org.jfree.chart.JFreeChart;
import org.jfree.chart.axis.NumberAxis;
import org.jfree.chart.plot.XYPlot;
import org.jfree.chart.renderer.xy.XYLineAndShapeRenderer;
import org.jfree.data.xy.XYSeries;
import org.jfree.data.xy.XYSeriesCollection;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The loss and token-accuracy curves of one stage, drawn from {@code train_log.jsonl} into {@code curves/NN-name.png}
 * (JFreeChart, headless): loss and its running average on the left axis, the answer tokens' accuracy on the right;
 * a pretrain-vit stage adds its SigLIP loss (left) and retrieval accuracy (right), and the accuracy of each token-label
 * head it trains (right: "token colour accuracy", "token place accuracy").
 */
public final class Curves {
    private Curves() {}

    /** The log lines of one stage, in the order written (a resumed run repeats the steps after its checkpoint). */
    static List<JsonNode> stageLines(Path log, String stage) throws IOException {
        ObjectMapper om = new ObjectMapper();
        List<JsonNode> lines = new ArrayList<>();
        for (String line : Files.readAllLines(log)) {
            if (line.isBlank()) continue;
            JsonNode n = om.readTree(line);
            if (stage.equals(n.path("stage").asText())) lines.add(n);
        }
        return lines;
    }

    /** Writes the stage's chart from its log lines ({@link #stageLines}); returns its path, or null when there are none. */
    static Path draw(List<JsonNode> lines, String stage, Path png) throws IOException {
        XYSeries loss = new XYSeries("loss"), avg = new XYSeries("loss (running average)"), acc = new XYSeries("token accuracy"),
                siglip = new XYSeries("SigLIP loss"), retrieval = new XYSeries("SigLIP retrieval accuracy");
        Map<String, XYSeries> labels = new LinkedHashMap<>();      // token-label head kind → its accuracy
        for (JsonNode n : lines) {
            int s = n.get("step").asInt();
            loss.addOrUpdate(s, n.get("loss").asDouble());
            avg.addOrUpdate(s, n.get("loss_avg").asDouble());
            acc.addOrUpdate(s, n.get("token_accuracy").asDouble());
            if (n.has("siglip_loss")) {      // the ViT pre-training stage: its contrastive loss and retrieval accuracy too
                siglip.addOrUpdate(s, n.get("siglip_loss").asDouble());
                retrieval.addOrUpdate(s, n.get("retrieval_accuracy").asDouble());
            }
            for (String kind : dev.kimivl.train.TokenLabelHead.KINDS) {
                JsonNode a = n.get("token_" + kind + "_accuracy");
                if (a != null) labels.computeIfAbsent(kind, k -> new XYSeries("token " + k + " accuracy")).addOrUpdate(s, a.asDouble());
            }
        }
        if (loss.isEmpty()) return null;
        XYSeriesCollection left = new XYSeriesCollection();
        left.addSeries(loss);
        left.addSeries(avg);
        if (!siglip.isEmpty()) left.addSeries(siglip);
        JFreeChart chart = ChartFactory.createXYLineChart("stage " + stage, "step", "loss", left);
        XYPlot plot = chart.getXYPlot();
        NumberAxis right = new NumberAxis("token accuracy");
        right.setRange(0, 1);
        plot.setRangeAxis(1, right);
        XYSeriesCollection rightSeries = new XYSeriesCollection(acc);
        if (!retrieval.isEmpty()) rightSeries.addSeries(retrieval);
        for (XYSeries l : labels.values()) rightSeries.addSeries(l);
        plot.setDataset(1, rightSeries);
        plot.mapDatasetToRangeAxis(1, 1);
        plot.setRenderer(1, new XYLineAndShapeRenderer(true, false));
        Files.createDirectories(png.getParent());
        Path tmp = png.resolveSibling(png.getFileName() + ".tmp");
        ChartUtils.saveChartAsPNG(tmp.toFile(), chart, 900, 500);
        Files.move(tmp, png, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        return png;
    }
}
