package dev.kimivl.text;

import java.net.URISyntaxException;
import java.nio.file.Path;

/** Test resources of this module as paths. */
final class TestFiles {
    private TestFiles() {}

    static Path resource(String name) {
        var url = TestFiles.class.getResource(name);
        if (url == null) throw new IllegalStateException("test resource " + name + " is missing");
        try {
            return Path.of(url.toURI());
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    /** The golden tokenizer directory (a 2256-rank test vocabulary, not Kimi's). */
    static Path goldenTokenizerDir() { return resource("/golden/tokenizer"); }
}
