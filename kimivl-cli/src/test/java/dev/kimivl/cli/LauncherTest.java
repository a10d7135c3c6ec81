package dev.kimivl.cli;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.File;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.jar.Attributes;
import java.util.jar.JarEntry;
import java.util.jar.JarFile;
import java.util.jar.JarOutputStream;
import java.util.jar.Manifest;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The real ./kimivl script, run on a copy of the repo's layout whose jars are this test's classpath (so it builds
 * nothing): the JVM's incubator warning is gone, everything else the JVM says still arrives.
 */
class LauncherTest {
    static final Path REPO = Path.of("..").toAbsolutePath().normalize();

    /** root/kimivl, root/scripts/jdk.sh, root/kimivl-cli/target/{kimivl-cli.jar, lib/*.jar}: what the launcher runs. */
    static Path install(Path root) throws IOException {
        Files.createDirectories(root.resolve("scripts"));
        Files.copy(REPO.resolve("kimivl"), root.resolve("kimivl"));
        Files.copy(REPO.resolve("scripts/jdk.sh"), root.resolve("scripts/jdk.sh"));
        Path lib = Files.createDirectories(root.resolve("kimivl-cli/target/lib"));
        try (OutputStream o = Files.newOutputStream(root.resolve("kimivl-cli/target/kimivl-cli.jar"))) {
            new JarOutputStream(o, manifest()).close();       // the classes come through lib/ below
        }
        int i = 0;
        for (Path entry : classpath()) {
            Path jar = lib.resolve("cp" + i++ + ".jar");
            if (Files.isDirectory(entry)) jarUp(entry, jar);
            else Files.createSymbolicLink(jar, entry);
        }
        return root.resolve("kimivl");
    }

    /** The test JVM's classpath, with the Class-Path of a manifest-only booter jar followed. */
    static Set<Path> classpath() throws IOException {
        Set<Path> out = new LinkedHashSet<>();
        for (String e : System.getProperty("java.class.path").split(File.pathSeparator)) {
            Path p = Path.of(e).toAbsolutePath();
            if (!Files.exists(p)) continue;
            out.add(p);
            if (Files.isRegularFile(p)) {
                try (JarFile jf = new JarFile(p.toFile())) {
                    Manifest m = jf.getManifest();
                    String cp = m == null ? null : m.getMainAttributes().getValue(Attributes.Name.CLASS_PATH);
                    if (cp == null) continue;
                    for (String u : cp.trim().split("\\s+")) {
                        Path q = u.startsWith("file:") ? Path.of(java.net.URI.create(u)) : p.resolveSibling(u);
                        if (Files.exists(q)) out.add(q);
                    }
                }
            }
        }
        return out;
    }

    static Manifest manifest() {
        Manifest m = new Manifest();
        m.getMainAttributes().put(Attributes.Name.MANIFEST_VERSION, "1.0");
        return m;
    }

    static void jarUp(Path dir, Path jar) throws IOException {
        try (JarOutputStream out = new JarOutputStream(Files.newOutputStream(jar), manifest()); Stream<Path> files = Files.walk(dir)) {
            for (Path f : files.filter(Files::isRegularFile).toList()) {
                out.putNextEntry(new JarEntry(dir.relativize(f).toString().replace(File.separatorChar, '/')));
                Files.copy(f, out);
                out.closeEntry();
            }
        }
    }

    record Result(int exit, List<String> stderr) {}

    static Result launch(Path kimivl, Path tmp, String javaOpts, String... args) throws Exception {
        List<String> cmd = new ArrayList<>(List.of("bash", kimivl.toString()));
        cmd.addAll(List.of(args));
        ProcessBuilder pb = new ProcessBuilder(cmd);
        pb.environment().remove("KIMIVL_MODEL");
        pb.environment().remove("KIMIVL_JAVA_OPTS");
        if (javaOpts != null) pb.environment().put("KIMIVL_JAVA_OPTS", javaOpts);
        Path err = Files.createTempFile(tmp, "stderr", ".txt");
        pb.redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")));
        pb.redirectOutput(ProcessBuilder.Redirect.DISCARD);
        pb.redirectError(ProcessBuilder.Redirect.to(err.toFile()));
        int exit = pb.start().waitFor();
        // read as soon as the launcher has exited: stderr must be complete by then, nothing still in a filter
        return new Result(exit, Files.readAllLines(err));
    }

    @Test
    void theIncubatorWarningIsDroppedAndNothingElse(@TempDir Path tmp) throws Exception {
        Path kimivl = install(tmp.resolve("root"));
        Result r = launch(kimivl, tmp, null, "run", "--ctx", "0", "hi");
        assertEquals(2, r.exit(), String.join("\n", r.stderr()));
        assertEquals(List.of("kimivl run: error: --ctx must be a positive number of tokens, not 0; see kimivl run --help"), r.stderr());

        // what the JVM says before main other than that line still arrives, ahead of kimivl's own output
        Result warned = launch(kimivl, tmp, "-XX:+ZGenerational", "run", "--ctx", "0", "hi");
        assertEquals(2, warned.exit());
        assertEquals(2, warned.stderr().size(), String.join("\n", warned.stderr()));
        assertTrue(warned.stderr().get(0).contains("warning: Ignoring option ZGenerational"), warned.stderr().get(0));
        assertTrue(warned.stderr().get(1).startsWith("kimivl run: error: --ctx"), warned.stderr().get(1));
    }
}
