package dev.kimivl.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.kimivl.io.CheckpointException;
import dev.kimivl.io.JsonErrors;
import dev.kimivl.io.gguf.GgufFile;
import dev.kimivl.io.gguf.GgufTokenizer;
import dev.kimivl.text.Tokenizer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;

/** {@code kimivl tokenize}: encodes a JSON array of strings with a model's tokenizer, for comparison with other tools. */
@Command(name = "tokenize", mixinStandardHelpOptions = true,
        description = "Encode strings with a model's tokenizer (special tokens recognised, no BOS/EOS added); "
                + "prints a JSON array with one array of token ids per input string.")
public final class TokenizeCommand implements Callable<Integer> {
    @Spec CommandSpec spec;

    // not the ModelOption mixin: --mmproj and --kv-cache mean nothing to a tokenizer; the default model is the same
    @Option(names = {"-m", "--model"}, paramLabel = "PATH",
            description = "Model directory holding tiktoken.model (and optionally tokenizer_config.json), or a GGUF text model file "
                    + "(its tokenizer metadata). Default: $KIMIVL_MODEL, else the repo's " + ModelOption.DEFAULT_RELATIVE + ".")
    Path model;

    @Option(names = "--json", required = true, paramLabel = "FILE", description = "JSON file holding an array of strings ('-' reads it from standard input).")
    String json;

    @Override
    public Integer call() {
        var err = spec.commandLine().getErr();
        ObjectMapper mapper = new ObjectMapper();
        JsonNode input;
        try {
            input = json.equals("-") ? mapper.readTree(System.in) : mapper.readTree(Path.of(json).toFile());
        } catch (java.io.FileNotFoundException | java.nio.file.NoSuchFileException e) {
            err.println("kimivl tokenize: --json " + json + ": no such file");
            return 1;
        } catch (IOException e) {
            err.println("kimivl tokenize: cannot read " + json + ": " + JsonErrors.describe(e));
            return 1;
        }
        if (input == null || !input.isArray()) {
            err.println("kimivl tokenize: " + json + " must hold a JSON array of strings");
            return 1;
        }
        List<String> texts = new ArrayList<>();
        for (int i = 0; i < input.size(); i++) {
            if (!input.get(i).isTextual()) {
                err.println("kimivl tokenize: " + json + ": element " + i + " is " + input.get(i).getNodeType() + ", not a string");
                return 1;
            }
            texts.add(input.get(i).asText());
        }
        Tokenizer tokenizer;
        try {
            Path m = ModelOption.resolve(model);
            if (Files.isRegularFile(m)) {
                // a GGUF carries its tokenizer in the metadata; mapping the file reads no weights
                try (Arena arena = Arena.ofConfined()) {
                    tokenizer = GgufTokenizer.load(GgufFile.open(m, arena));
                }
                if (tokenizer == null) throw new CheckpointException(m + ": no tokenizer in this GGUF (no tokenizer.ggml.tokens; an mmproj has none)");
            } else {
                tokenizer = Tokenizer.load(m);
            }
        } catch (IOException | IllegalArgumentException | CheckpointException e) {
            err.println("kimivl tokenize: " + Errors.oneLine(e.getMessage()));
            return 1;
        }
        List<int[]> ids = texts.stream().map(tokenizer::encode).toList();
        try {
            var out = spec.commandLine().getOut();
            out.println(mapper.writeValueAsString(ids));
            out.flush();
        } catch (IOException e) {
            err.println("kimivl tokenize: " + e.getMessage());
            return 1;
        }
        return 0;
    }
}
