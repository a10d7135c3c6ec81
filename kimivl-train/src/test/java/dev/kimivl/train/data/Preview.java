package dev.kimivl.train.data;

import java.io.File;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import javax.imageio.ImageIO;

/** Writes examples as PNGs with their question and answer for a person to look at: Preview DIR [N] [type...]. Not a test. */
public final class Preview {
    /** All images of the run on one contact sheet, n to a row, each scaled into a 200 px cell. */
    static void sheet(Path dir, int count, int perRow) throws Exception {
        File[] files = dir.toFile().listFiles((d, name) -> name.endsWith(".png") && !name.startsWith("sheet"));
        java.util.Arrays.sort(files);
        int cols = Math.max(perRow, 4), rows = (files.length + cols - 1) / cols;
        var sheet = new java.awt.image.BufferedImage(cols * 204, rows * 204, java.awt.image.BufferedImage.TYPE_INT_RGB);
        var g = sheet.createGraphics();
        for (int i = 0; i < files.length; i++) {
            var im = ImageIO.read(files[i]);
            double k = 200.0 / Math.max(im.getWidth(), im.getHeight());
            g.drawImage(im, (i % cols) * 204, (i / cols) * 204, (int) (im.getWidth() * k), (int) (im.getHeight() * k), null);
        }
        g.dispose();
        ImageIO.write(sheet, "png", dir.resolve("sheet.png").toFile());
    }

    public static void main(String[] args) throws Exception {
        Path dir = Path.of(args[0]);
        Files.createDirectories(dir);
        int n = args.length > 1 ? Integer.parseInt(args[1]) : 5;
        List<String> types = args.length > 2 ? List.of(args).subList(2, args.length) : VisualWorld.allTypes();
        VisualWorld w = new VisualWorld(VisualWorld.Options.defaults());
        List<String> lines = new ArrayList<>();
        for (String t : types)
            for (long s = 0; s < n; s++) {
                Example e = w.example(s, t);
                for (int i = 0; i < e.images().size(); i++) ImageIO.write(e.images().get(i), "png", new File(dir.toFile(), t + s + "_" + i + ".png"));
                lines.add(t + s + "\t" + e.question() + "\t" + e.answer() + (e.reasoning() == null ? "" : "\t" + e.reasoning()));
            }
        Files.write(dir.resolve("index.tsv"), lines);
        sheet(dir, lines.size(), n);
        lines.forEach(System.out::println);
    }
}
