package dev.kimivl.train.data;

import java.awt.Font;
import java.awt.FontFormatException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The fonts of the read task, loaded from TrueType files rather than by family name, so that a word renders to the same
 * pixels on every machine with the files (the JDK's logical fonts map to whatever the OS has). The directory is
 * /usr/share/fonts/truetype/dejavu unless the system property kimivl.fontDir names another.
 */
final class Fonts {
    static final List<String> FILES = List.of("DejaVuSans.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf", "DejaVuSans-Bold.ttf",
        "DejaVuSans-Oblique.ttf", "DejaVuSansCondensed.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSansMono-Bold.ttf",
        "DejaVuSerifCondensed.ttf", "DejaVuSansCondensed-Bold.ttf");

    private static volatile List<Font> loaded;

    private Fonts() {}

    static Path dir() {
        return Path.of(System.getProperty("kimivl.fontDir", "/usr/share/fonts/truetype/dejavu"));
    }

    /**
     * One base font (size 1) per entry of FILES. A missing or unreadable file is replaced by the next one that loads, so the
     * list keeps its length and a seed still picks the same slot; with none at all there is nothing to render words with.
     */
    static List<Font> all() {
        List<Font> fonts = loaded;
        if (fonts != null) return fonts;
        synchronized (Fonts.class) {
            if (loaded == null) loaded = loadFrom(dir());
            return loaded;
        }
    }

    static List<Font> loadFrom(Path dir) {
        Font[] got = new Font[FILES.size()];
        for (int i = 0; i < got.length; i++) got[i] = load(dir.resolve(FILES.get(i)));
        List<Font> out = new ArrayList<>();
        for (int i = 0; i < got.length; i++) {
            Font f = null;
            for (int k = 0; k < got.length && f == null; k++) f = got[(i + k) % got.length];
            if (f == null) throw new IllegalStateException("no font file could be loaded from " + dir + " (looked for " + FILES
                + "); install fonts-dejavu-core or set -Dkimivl.fontDir");
            out.add(f);
        }
        return List.copyOf(out);
    }

    private static Font load(Path file) {
        if (!Files.isRegularFile(file)) return null;
        try {
            return Font.createFont(Font.TRUETYPE_FONT, file.toFile());
        } catch (FontFormatException | IOException e) {
            return null;
        }
    }
}
