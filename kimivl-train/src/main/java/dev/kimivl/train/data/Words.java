package dev.kimivl.train.data;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/** Word lists kept as resources (one word a line, '#' starts a comment), so they can grow without touching code. */
final class Words {
    private Words() {}

    /** The words of the read task. */
    static final List<String> COMMON = load("words.txt");

    static List<String> load(String name) {
        try (InputStream in = Words.class.getResourceAsStream(name)) {
            if (in == null) throw new IllegalStateException("missing resource dev/kimivl/train/data/" + name);
            List<String> out = new ArrayList<>();
            try (BufferedReader r = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8))) {
                for (String line; (line = r.readLine()) != null; ) {
                    line = line.strip();
                    if (!line.isEmpty() && !line.startsWith("#")) out.add(line);
                }
            }
            return List.copyOf(out);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
