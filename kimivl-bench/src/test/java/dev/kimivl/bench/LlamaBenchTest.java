package dev.kimivl.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * {@code kimivl bench --llama-bench}: a stub {@code llama-bench} (a bash script written here) that answers
 * {@code --help} like llama.cpp's (with {@code -d, --n-depth}) or ik_llama.cpp's (with {@code -gp} and {@code -rtr}),
 * logs every invocation, refuses a model file without a tokenizer section as llama.cpp does, and prints llama-bench's
 * {@code -o json} rows (the json_printer's fields in its layout: build_commit ... n_prompt, n_gen, n_depth, test_time,
 * avg_ns, stddev_ns, avg_ts, stddev_ts, samples_ns, samples_ts) with the tok/s it is given, with the warning ggml
 * prints to stdout inside the JSON (seen from a real ik_llama.cpp llama-bench on a bench file).
 */
class LlamaBenchTest {
    static final String MAINLINE_HELP = """
            usage: llama-bench [options]

            options:
              -h, --help
              --numa <distribute|isolate|numactl>       numa mode (default: disabled)
              -r, --repetitions <n>                     number of times to repeat each test (default: 5)
              -o, --output <csv|json|jsonl|md|sql>      output format printed to stdout (default: md)
              -m, --model <filename>                    (default: models/7B/ggml-model-q4_0.gguf)
              -p, --n-prompt <n>                        (default: 512)
              -n, --n-gen <n>                           (default: 128)
              -pg <pp,tg>                               (default: )
              -d, --n-depth <n>                         (default: 0)
              -t, --threads <n>                         (default: 8)
            """;
    static final String IK_HELP = """
            usage: llama-bench [options]

            options:
              -h, --help
              -m, --model <filename>              (default: models/7B/ggml-model-q4_0.gguf)
              -p, --n-prompt <n>                  (default: 512)
              -n, --n-gen <n>                     (default: 128)
              -pg <pp,tg>                         (default: )
              -gp <pp,tg>                         (default: )
              -t, --threads <n>                   (default: 8)
              -rtr, --run-time-repack <0|1>       (default: 0)
              -r, --repetitions <n>               (default: 5)
              -o, --output <csv|json|md|sql>      (default: md)
            """;

    /** What the stub does when asked to run a test. */
    enum Mode { OK, FAIL, GARBAGE, BROKEN_JSON, NO_ROW }

    /**
     * Writes an executable stub named {@code name} into dir: help text, tok/s for prefill, decode and decode after a
     * context, and the log every invocation is appended to (as "NAME ARGS").
     */
    static Path stub(Path dir, String name, String help, Mode mode, double pp, double tg, double depth, Path log) throws Exception {
        String script = """
                #!/bin/bash
                echo "@NAME@ $*" >> '@LOG@'
                if [ "$1" = "--help" ]; then
                cat <<'HELP'
                @HELP@
                HELP
                exit 0
                fi
                m=""; p=512; n=128; d=0; gp=""; t=4
                while [ $# -gt 0 ]; do
                  case "$1" in
                    -m) m="$2"; shift;;
                    -p) p="$2"; shift;;
                    -n) n="$2"; shift;;
                    -d) d="$2"; shift;;
                    -gp) gp="$2"; shift;;
                    -t) t="$2"; shift;;
                  esac
                  shift
                done
                echo "llama_model_loader: loaded meta data with 40 key-value pairs from $m" >&2
                if ! grep -q -a 'tokenizer.ggml.model' "$m"; then
                  echo "llama_model_load: error loading model: error loading model vocabulary: key not found in model: tokenizer.ggml.model" >&2
                  exit 1
                fi
                case "@MODE@" in
                  FAIL) echo "main: error: failed to load model '$m'" >&2; exit 3;;
                  GARBAGE) echo "| model | size | params | backend | threads | test | t/s |"; echo "llama_perf: the last words" >&2; exit 0;;
                  BROKEN_JSON) printf '[\\n  {\\n    "n_prompt": 512,\\n'; exit 0;;
                  NO_ROW) echo "[]"; exit 0;;
                esac
                if [ -n "$gp" ]; then np="${gp%,*}"; ng="${gp#*,}"; ts=@DEPTH@
                elif [ "$p" -gt 0 ]; then np=$p; ng=0; ts=@PP@
                elif [ "$d" -gt 0 ]; then np=0; ng=$n; ts=@DEPTH@
                else np=0; ng=$n; ts=@TG@
                fi
                cat <<JSON
                [
                WARNING: Behavior may be unexpected when allocating 0 bytes for ggml_calloc!
                  {
                    "build_commit": "@NAME@c0ffee",
                    "build_number": 6190,
                    "cpu_info": "AMD EPYC 7B13",
                    "gpu_info": "",
                    "backends": "CPU",
                    "model_filename": "$m",
                    "model_type": "deepseek2 16B Q4_0",
                    "model_size": 10243510272,
                    "model_n_params": 16410000000,
                    "n_batch": 2048,
                    "n_ubatch": 512,
                    "n_threads": $t,
                    "cpu_mask": "0x0",
                    "cpu_strict": false,
                    "poll": 50,
                    "type_k": "f16",
                    "type_v": "f16",
                    "n_gpu_layers": 99,
                    "split_mode": "layer",
                    "main_gpu": 0,
                    "no_kv_offload": false,
                    "flash_attn": false,
                    "tensor_split": "0.00",
                    "use_mmap": true,
                    "embeddings": false,
                    "n_prompt": $np,
                    "n_gen": $ng,
                    "n_depth": $d,
                    "test_time": "2026-12-05T13:00:00Z",
                    "avg_ns": 25793000000,
                    "stddev_ns": 0,
                    "avg_ts": $ts,
                    "stddev_ts": 0.125,
                    "samples_ns": [ 25793000000 ],
                    "samples_ts": [ $ts ]
                  }
                ]
                JSON
                """.replace("@NAME@", name).replace("@LOG@", log.toString()).replace("@HELP@", help.strip()).replace("@MODE@", mode.name())
                .replace("@PP@", String.valueOf(pp)).replace("@TG@", String.valueOf(tg)).replace("@DEPTH@", String.valueOf(depth));
        Path p = dir.resolve(name);
        Files.writeString(p, script);
        Files.setPosixFilePermissions(p, PosixFilePermissions.fromString("rwxr-xr-x"));
        return p;
    }

    /** A model file the stub accepts (it has the tokenizer key) or refuses. */
    static Path model(Path dir, boolean tokenizer) throws Exception {
        Path m = dir.resolve(tokenizer ? "with-tokenizer.gguf" : "without.gguf");
        Files.writeString(m, "GGUF...." + (tokenizer ? "tokenizer.ggml.model" : "general.architecture"));
        return m;
    }

    static ModelBench.Decode decode(int context, double tokPerSec) {
        return new ModelBench.Decode(context, 128, 128 / tokPerSec, tokPerSec, 1.5e9, 1.5 * tokPerSec, 20, tokPerSec / 20, Map.of(),
                context == 0 ? "none" : "random", 0, 0, 62_208L * (context + 129), 11_000_000_000L, -1, -1, -1);
    }

    /** A kimivl result with the given figures (the rest plausible, unused by the comparison). */
    static ModelBench.Result result(String type, int threads, double prefill, double tg, double tgLong, int context) {
        return new ModelBench.Result(type, threads, "/cache/x.gguf", 10.2, 0, 0.5, 3, 512, 512 / prefill, prefill, Map.of(),
                decode(0, tg), decode(context, tgLong), List.of(decode(context, tgLong)), true, 896, 0, 0, 11_000_000_000L, 10_000_000_000L, 1_000_000_000L,
                1.5e9, 32, "25", true, "native", 30, "f16", Map.of(), List.of());
    }

    static List<String> lines(Path log) throws Exception {
        return Files.exists(log) ? Files.readAllLines(log) : List.of();
    }

    @Test
    void runsEachBinaryAfterKimivlInEveryRoundAndPrintsTheRatios(@TempDir Path dir) throws Exception {
        Path log = dir.resolve("order.log");
        Path a = stub(dir, "mainline", MAINLINE_HELP, Mode.OK, 20.0, 16.0, 4.0, log);
        Path b = stub(dir, "ik", IK_HELP, Mode.OK, 40.0, 12.0, 10.0, log);
        Path model = model(dir, true);
        LlamaBench la = LlamaBench.probe(a), lb = LlamaBench.probe(b);
        assertEquals(LlamaBench.Depth.FLAG_D, la.depthMode());
        assertFalse(la.runTimeRepack());
        assertEquals(LlamaBench.Depth.GP, lb.depthMode());
        assertTrue(lb.runTimeRepack());
        Files.delete(log);

        List<ModelBench.Result> kimivl = List.of(result("q4_0", 2, 30.0, 12.0, 8.0, 4096), result("q4_0", 2, 36.0, 9.0, 6.0, 4096));
        int[] round = {0};
        List<SideBySide.Round> rounds = SideBySide.run(() -> {
            Files.writeString(log, "kimivl\n", java.nio.file.StandardOpenOption.CREATE, java.nio.file.StandardOpenOption.APPEND);
            return kimivl.get(round[0]++);
        }, List.of(la, lb), model, 512, 128, 4096, 2, null);

        String m = model.toString();
        List<String> mainline = List.of(
                "mainline -m " + m + " -t 2 -p 512 -n 0 -r 1 -o json",
                "mainline -m " + m + " -t 2 -p 0 -n 128 -r 1 -o json",
                "mainline -m " + m + " -t 2 -p 0 -n 128 -d 4096 -r 1 -o json");
        List<String> ik = List.of(
                "ik -m " + m + " -t 2 -rtr 1 -p 512 -n 0 -r 1 -o json",
                "ik -m " + m + " -t 2 -rtr 1 -p 0 -n 128 -r 1 -o json",
                "ik -m " + m + " -t 2 -rtr 1 -p 0 -n 0 -gp 4096,128 -r 1 -o json");
        List<String> expected = new ArrayList<>();
        for (int r = 0; r < 2; r++) {
            expected.add("kimivl");
            expected.addAll(mainline);
            expected.addAll(ik);
        }
        assertEquals(expected, lines(log), "kimivl, then each llama-bench in the order given, every round; kimivl's thread count");

        assertEquals(2, rounds.size());
        LlamaBench.Figures f = rounds.get(0).theirs().get(0).figures();
        assertEquals(20.0, f.prefill().avgTs());
        assertEquals(0.125, f.prefill().stddevTs());
        assertEquals(16.0, f.decode().avgTs());
        assertEquals(4.0, f.depth().avgTs());
        assertEquals("mainlinec0ffee", f.prefill().buildCommit());
        assertEquals(10.0, rounds.get(1).theirs().get(1).figures().depth().avgTs(), "ik's -gp row: n_prompt 4096, n_gen 128");

        String text = SideBySide.text(rounds);
        System.out.print(text);
        assertTrue(text.contains("round 1: " + a + " (build mainlinec0ffee)"), text);
        // round 1: kimivl 30 / 12 / 8 against mainline 20 / 16 / 4 and ik 40 / 12 / 10; round 2: 36 / 9 / 6
        assertTrue(text.contains("pp512               20.00 ± 0.13   kimivl    30.00   1.50x"), text);
        assertTrue(text.contains("tg128               16.00 ± 0.13   kimivl    12.00   0.75x"), text);
        assertTrue(text.contains("tg128 @ 4096         4.00 ± 0.13   kimivl     8.00   2.00x"), text);
        assertTrue(text.contains("pp512               40.00 ± 0.13   kimivl    30.00   0.75x"), text);
        assertTrue(text.contains("tg128 @ 4096        10.00 ± 0.13   kimivl     8.00   0.80x"), text);
        assertTrue(text.contains("pp512               40.00 ± 0.13   kimivl    36.00   0.90x"), "round 2 against round 2's kimivl: " + text);
        assertTrue(text.contains(b + " -m " + m + " -t 2 -rtr 1 -p 0 -n 0 -gp 4096,128 -r 1 -o json"), text);

        JsonNode json = new ObjectMapper().readTree(ModelBench.json(kimivl.get(1), rounds));
        assertFalse(json.has("llamaCppReference"), "same-run figures replace the cited ones");
        JsonNode r2 = json.get("sideBySide").get(1);
        assertEquals(36.0, r2.get("kimivl").get("prefillTokPerSec").asDouble());
        JsonNode ikJson = r2.get("llamaBench").get(1);
        assertEquals(b.toString(), ikJson.get("binary").asText());
        assertEquals(0.9, ikJson.get("prefill").get("ratio").asDouble(), 1e-12);
        assertEquals(0.75, ikJson.get("decode").get("ratio").asDouble(), 1e-12);
        assertEquals(0.6, ikJson.get("decodeLong").get("ratio").asDouble(), 1e-12);
        assertEquals(10.0, ikJson.get("decodeLong").get("avgTs").asDouble());
        assertEquals(0.75, json.get("sideBySide").get(0).get("llamaBench").get(0).get("decode").get("ratio").asDouble(), 1e-12);

        String report = ModelBench.text(kimivl.get(1), rounds);
        assertTrue(report.contains("side by side") && !report.contains("not measured in this run"), report);
    }

    @Test
    void noDepthFlagMeansNoDepthFigure(@TempDir Path dir) throws Exception {
        Path log = dir.resolve("log");
        String old = MAINLINE_HELP.replace("  -d, --n-depth <n>                         (default: 0)\n", "");
        LlamaBench lb = LlamaBench.probe(stub(dir, "old", old, Mode.OK, 20, 10, 5, log));
        assertEquals(LlamaBench.Depth.NONE, lb.depthMode());
        LlamaBench.Figures f = lb.run(model(dir, true), 2, 512, 128, 4096, null);
        assertNull(f.depth());
        assertEquals(3, lines(log).size(), "--help, pp, tg");
        String text = SideBySide.text(List.of(new SideBySide.Round(result("q4_k_m", 2, 25, 10, 7, 4096), List.of(new SideBySide.Theirs(lb.binary(), f)))));
        assertTrue(text.contains("decode after a context: not measured (this llama-bench has neither -d nor -gp)"), text);
        // --context 0: no depth run even where the flag exists
        LlamaBench la = LlamaBench.probe(stub(dir, "new", MAINLINE_HELP, Mode.OK, 20, 10, 5, log));
        assertNull(la.run(model(dir, true), 2, 64, 16, 0, null).depth());
        assertFalse(lines(log).getLast().contains(" -d "), lines(log).toString());
    }

    @Test
    void clearErrorsNameTheBinary(@TempDir Path dir) throws Exception {
        Path log = dir.resolve("log");
        Path missing = dir.resolve("no-such-llama-bench");
        var e = assertThrows(IllegalArgumentException.class, () -> LlamaBench.probe(missing));
        assertEquals("--llama-bench " + missing + ": no such file", e.getMessage());

        Path notExec = dir.resolve("not-executable");
        Files.writeString(notExec, "#!/bin/bash\necho hi\n");
        e = assertThrows(IllegalArgumentException.class, () -> LlamaBench.probe(notExec));
        assertTrue(e.getMessage().startsWith("--llama-bench " + notExec + ": not executable"), e.getMessage());

        e = assertThrows(IllegalArgumentException.class, () -> LlamaBench.probe(dir));
        assertTrue(e.getMessage().contains(dir + ": not a regular file"), e.getMessage());

        Path other = dir.resolve("llama-cli");
        Files.writeString(other, "#!/bin/bash\necho 'usage: llama-cli [options]'\necho 'error: unknown argument: --help' >&2\nexit 1\n");
        Files.setPosixFilePermissions(other, PosixFilePermissions.fromString("rwxr-xr-x"));
        e = assertThrows(IllegalArgumentException.class, () -> LlamaBench.probe(other));
        assertEquals("--llama-bench " + other + ": `--help` exited with status 1, so this is not llama-bench; last stderr line: error: unknown argument: --help", e.getMessage());

        Path good = model(dir, true);
        LlamaBench failing = LlamaBench.probe(stub(dir, "failing", MAINLINE_HELP, Mode.FAIL, 1, 1, 1, log));
        var s = assertThrows(IllegalStateException.class, () -> failing.run(good, 2, 512, 128, 0, null));
        assertTrue(s.getMessage().startsWith("--llama-bench " + failing.binary() + " exited with status 3 (-m " + good + " -t 2 -p 512 -n 0 -r 1 -o json)"), s.getMessage());
        assertTrue(s.getMessage().endsWith(": last stderr line: main: error: failed to load model '" + good + "'"), s.getMessage());

        LlamaBench garbage = LlamaBench.probe(stub(dir, "garbage", MAINLINE_HELP, Mode.GARBAGE, 1, 1, 1, log));
        s = assertThrows(IllegalStateException.class, () -> garbage.run(good, 2, 512, 128, 0, null));
        assertTrue(s.getMessage().startsWith("--llama-bench " + garbage.binary() + ": cannot read its output (-m "), s.getMessage());
        assertTrue(s.getMessage().contains("): no JSON on stdout (1 other lines)"), s.getMessage());
        assertTrue(s.getMessage().endsWith("; last stderr line: llama_perf: the last words"), s.getMessage());

        LlamaBench broken = LlamaBench.probe(stub(dir, "broken", MAINLINE_HELP, Mode.BROKEN_JSON, 1, 1, 1, log));
        s = assertThrows(IllegalStateException.class, () -> broken.run(good, 2, 512, 128, 0, null));
        assertTrue(s.getMessage().contains("): not JSON ("), s.getMessage());
        assertTrue(s.getMessage().endsWith("; last stderr line: llama_model_loader: loaded meta data with 40 key-value pairs from " + good), s.getMessage());

        LlamaBench empty = LlamaBench.probe(stub(dir, "empty", MAINLINE_HELP, Mode.NO_ROW, 1, 1, 1, log));
        s = assertThrows(IllegalStateException.class, () -> empty.run(good, 2, 512, 128, 0, null));
        assertTrue(s.getMessage().contains(": no row with n_prompt 512, n_gen 0, n_depth 0 among 0; last stderr line: llama_model_loader: loaded meta data"), s.getMessage());

        // a file without a tokenizer section: what llama.cpp says about the bench files written before they carried one
        LlamaBench ok = LlamaBench.probe(stub(dir, "ok", MAINLINE_HELP, Mode.OK, 1, 1, 1, log));
        s = assertThrows(IllegalStateException.class, () -> ok.run(model(dir, false), 2, 512, 128, 0, null));
        assertTrue(s.getMessage().endsWith("last stderr line: llama_model_load: error loading model: error loading model vocabulary: key not found in model: tokenizer.ggml.model"), s.getMessage());
    }

    @Test
    void withoutLlamaBenchTheReportCitesTheAnchorsWithMachineAndDate() throws Exception {
        ModelBench.Result q4 = result("q4_0", 2, 30.0, 12.0, 9.0, 4096);
        String text = ModelBench.text(q4);
        System.out.print(text);
        assertTrue(text.contains("not measured in this run"), text);
        assertTrue(text.contains("../shared/anchors/llama-cpp.md"), text);
        assertTrue(text.contains("measured 2026-12-04 on 2 vCPU AMD EPYC (Zen 3"), text);
        // llama.cpp q4_0 pp512 19.63 and 19.85: 30 / 19.85 = 1.51, 30 / 19.63 = 1.53
        assertTrue(text.contains("llama.cpp 34af94cd9: pp512 19.63-19.85 (kimivl about 1.51-1.53x); tg128 10.81-12.81 (kimivl about 0.94-1.11x); tg @4096 4.64 (kimivl about 1.94x);"), text);
        assertTrue(text.contains("ik_llama.cpp 8337e4cd3: pp512 37.33-42.35 (kimivl about 0.71-0.80x)"), text);
        assertFalse(text.contains("23.4") || text.contains("(llama.cpp 8.0"), "the Intel AVX-512 figures are gone: " + text);

        JsonNode ref = new ObjectMapper().readTree(ModelBench.json(q4)).get("llamaCppReference");
        assertEquals("2026-12-04", ref.get("date").asText());
        assertTrue(ref.get("machine").asText().contains("AMD EPYC"));
        JsonNode ik = ref.get("engines").get(1);
        assertEquals("ik_llama.cpp", ik.get("name").asText());
        assertEquals(30.0 / 42.35, ik.get("ratios").get("pp512").get(0).asDouble(), 1e-12);
        assertEquals(30.0 / 37.33, ik.get("ratios").get("pp512").get(1).asDouble(), 1e-12);
        assertEquals(9.0 / 9.88, ik.get("ratios").get("decodeAfter4096").get(0).asDouble(), 1e-12);

        // other sizes than the anchors': no ratio where the shapes differ (prompt 16, context 8192 has its own figure)
        ModelBench.Result small = new ModelBench.Result("q4_k_m", 2, "x", 1, 0, 0, 0, 16, 1, 16, Map.of(), decode(0, 10), decode(2048, 8),
                List.of(decode(2048, 8)), true, 896, 0, 0, 1, 1, 1, 1, 32, "25", true, "native", 30, "f16", Map.of(), List.of());
        String t2 = ModelBench.text(small);
        assertTrue(t2.contains("llama.cpp 34af94cd9: pp512 15.86-18.34; tg128 8.50-9.54 (kimivl about 1.05-1.18x); tg @2048 n/a;"), t2);

        String q8 = ModelBench.text(result("q8_0", 2, 30.0, 10.0, 7.0, 4096));
        assertTrue(q8.contains("q8_0: none (the anchors have q4_0 and q4_k_m)"), q8);
        assertFalse(q8.contains("34af94cd9:"), q8);
    }
}
