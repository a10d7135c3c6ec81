package dev.kimivl.cli;

import dev.kimivl.config.ModelConfig;
import dev.kimivl.config.PreprocessorConfig;
import dev.kimivl.io.CheckpointException;
import dev.kimivl.io.SafetensorsCheckpoint;
import dev.kimivl.io.gguf.Converter;
import dev.kimivl.io.gguf.GgufWriter;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;

/**
 * {@code kimivl convert}: a Hugging Face Kimi-VL checkpoint → GGUF in llama.cpp's layout (text model as arch
 * deepseek2, vision tower + projector as a kimivl mmproj next to it), with a progress bar on stderr.
 */
@Command(name = "convert", mixinStandardHelpOptions = true,
        description = "Convert a Hugging Face Kimi-VL checkpoint to GGUF (llama.cpp layout): the text model to --out, "
                + "the vision tower + projector to an mmproj file next to it.")
public final class ConvertCommand implements Callable<Integer> {
    @picocli.CommandLine.Spec picocli.CommandLine.Model.CommandSpec spec;

    @Option(names = "--model", required = true, paramLabel = "HF_DIR", description = "checkpoint directory (config.json + safetensors)")
    Path model;

    @Option(names = "--out", required = true, paramLabel = "FILE.gguf", description = "text model GGUF to write")
    Path out;

    @Option(names = "--type", defaultValue = "q8_0", paramLabel = "TYPE",
            description = "weight type: q4_k_m, q4_0, q8_0, bf16 or f32 (default ${DEFAULT-VALUE}); each tensor's type follows llama.cpp "
                    + "(convert_hf_to_gguf for q8_0/bf16/f32, llama-quantize for q4_0/q4_k_m; 1-D tensors, norms, routers and "
                    + "position embeddings f32); the mmproj of q4_0/q4_k_m is q8_0")
    String type;

    @Option(names = "--mmproj", paramLabel = "FILE.gguf", description = "vision GGUF to write (default: mmproj-<out name> next to --out)")
    Path mmproj;

    @Option(names = "--no-mmproj", description = "do not write the vision tower")
    boolean noMmproj;

    @Override
    public Integer call() {
        PrintStream err = System.err;
        boolean terminal = Terminal.stderrIsTerminal();
        Converter.Type t;
        try {
            t = Converter.Type.parse(type);
        } catch (IllegalArgumentException e) {
            throw Errors.usage(spec, e.getMessage());
        }
        if (!Files.exists(model)) throw new IllegalArgumentException("--model " + model + ": no such directory");
        if (!Files.isDirectory(model)) {
            throw new IllegalArgumentException("--model " + model + " is a file: convert reads a Hugging Face checkpoint directory (config.json + safetensors)");
        }
        try (SafetensorsCheckpoint src = SafetensorsCheckpoint.open(model)) {
            ModelConfig cfg = ModelConfig.load(model);
            String name = model.toAbsolutePath().normalize().getFileName().toString();
            long t0 = System.nanoTime();
            Path parent = out.toAbsolutePath().getParent();
            if (parent != null) Files.createDirectories(parent);
            err.println("kimivl convert: " + model + " → " + out + " (" + t.label() + ")");
            Converter.writeText(src, cfg, model, t, name, out, new Bar(err, "text  ", terminal));
            if (cfg.hasVision() && !noMmproj) {
                Path mm = mmproj != null ? mmproj : out.resolveSibling("mmproj-" + out.getFileName());
                err.println("kimivl convert: vision tower + projector → " + mm + " (" + t.mmproj().label() + ")");
                PreprocessorConfig pp = Files.isRegularFile(model.resolve("preprocessor_config.json")) ? PreprocessorConfig.load(model) : null;
                Converter.writeMmproj(src, cfg, pp, t, name, mm, new Bar(err, "vision", terminal));
            }
            err.printf(Locale.ROOT, "kimivl convert: done in %.1f s%n", (System.nanoTime() - t0) / 1e9);
            return 0;
        } catch (CheckpointException | java.io.IOException e) {
            // on a terminal the bar's line may be unfinished: the error starts a line of its own
            err.println((terminal ? "\n" : "") + "kimivl convert: error: " + Errors.oneLine(e.getMessage()));
            return 1;
        }
    }

    /**
     * Progress on stderr: on a terminal one line redrawn with \r (at most every 100 ms, and at the end); elsewhere (a
     * log file, a pipe, CI) a plain line at every 10% and at the end, since \r frames would pile up there as one
     * unreadable line.
     */
    static final class Bar implements GgufWriter.Progress {
        private final PrintStream err;
        private final String label;
        private final boolean terminal;
        private final long start = System.nanoTime();
        private long lastDraw;
        private int lastTenth = -1;

        Bar(PrintStream err, String label, boolean terminal) { this.err = err; this.label = label; this.terminal = terminal; }

        @Override
        public void update(String tensor, int index, int count, long done, long total) {
            long now = System.nanoTime();
            double f = total == 0 ? 1 : (double) done / total;
            if (!terminal) {
                int tenth = index == count ? 10 : (int) Math.min(9, Math.floor(f * 10));
                if (tenth == lastTenth) return;
                lastTenth = tenth;
            } else {
                if (index < count && now - lastDraw < 100_000_000L) return;
                lastDraw = now;
            }
            int width = 30, filled = (int) Math.round(f * width);
            double secs = (now - start) / 1e9;
            String eta = f > 0 && f < 1 ? String.format(Locale.ROOT, " ETA %.0fs", secs * (1 - f) / f) : "";
            String name = tensor.length() > 40 ? "…" + tensor.substring(tensor.length() - 39) : tensor;
            double unit = total >= 1e9 ? 1e9 : 1e6;
            String u = total >= 1e9 ? "GB" : "MB";
            if (!terminal) {
                err.printf(Locale.ROOT, "kimivl convert: %s %3.0f%% %d/%d tensors %.2f/%.2f %s%s%n", label, 100 * f, index, count, done / unit, total / unit, u, eta);
                err.flush();
                return;
            }
            err.printf(Locale.ROOT, "\r%s [%s%s] %3.0f%% %d/%d tensors %.2f/%.2f %s%s  %-40s", label, "#".repeat(filled), " ".repeat(width - filled),
                    100 * f, index, count, done / unit, total / unit, u, eta, name);
            if (index == count) err.println();
            err.flush();
        }
    }
}
