package dev.kimivl.langchain4j;

import dev.kimivl.model.KimiVL;
import org.junit.jupiter.api.Test;

import java.io.File;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.*;

/** An application started without {@code --add-modules jdk.incubator.vector} gets one line naming the flags. */
class MissingVectorModuleTest {
    /** The application: opens the model and builds the LangChain4j model, as a user's main would. */
    public static void main(String[] args) {
        try (KimiVL model = KimiVL.open(Path.of(args[0]))) {
            KimiVLChatModel.builder(model).build().chat("Hello");
            System.out.println("no error");
        } catch (IllegalStateException e) {
            System.out.println("error: " + e.getMessage());
        }
    }

    @Test
    void modelLoadNamesTheMissingFlags() throws Exception {
        String cp = System.getProperty("surefire.test.class.path", System.getProperty("java.class.path"));
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        Process p = new ProcessBuilder(List.of(java, "-cp", cp, MissingVectorModuleTest.class.getName(), "../models/tiny-random"))
                .redirectErrorStream(true).start();
        assertTrue(p.waitFor(60, TimeUnit.SECONDS));
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).strip();
        assertTrue(out.startsWith("error: kimivl needs the JVM options --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED"), out);
        assertFalse(out.contains("NoClassDefFoundError"), out);
        assertEquals(1, out.lines().count(), out);
        assertTrue(cp.contains(File.pathSeparator), "the test's class path was found: " + cp);
    }
}
