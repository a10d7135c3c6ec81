package dev.kimivl.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.kimivl.text.Tokenizer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.IOException;
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

    @Option(names = "--model", required = true, paramLabel = "DIR",
            description = "Model directory holding tiktoken.model (and optionally tokenizer_config.json).")
    Path model;

    @Option(names = "--json", required = true, paramLabel = "FILE", description = "JSON file holding an array of strings.")
    Path json;

    @Override
    public Integer call() {
        var err = spec.commandLine().getErr();
        ObjectMapper mapper = new ObjectMapper();
        JsonNode input;
        try {
            input = mapper.readTree(json.toFile());
        } catch (IOException e) {
            err.println("kimivl tokenize: cannot read " + json + ": " + e.getMessage());
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
            tokenizer = Tokenizer.load(model);
        } catch (IOException | IllegalArgumentException e) {
            err.println("kimivl tokenize: " + e.getMessage());
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
