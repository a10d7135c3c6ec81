package dev.kimivl.cli;

import dev.kimivl.train.tokenizer.BpeTrainer;
import dev.kimivl.train.tokenizer.SpecialIds;
import dev.kimivl.train.tokenizer.TokenizerFiles;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.io.Reader;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;

/** {@code kimivl train-tokenizer}: trains a byte-level BPE vocabulary and writes it as a model directory's tokenizer. */
@Command(name = "train-tokenizer", mixinStandardHelpOptions = true,
        description = "Train a byte-level BPE tokenizer on UTF-8 text files (split by Kimi's pre-tokenizer, as encoding splits) "
                + "and write tiktoken.model and tokenizer_config.json with Kimi's special tokens after the ranks.")
final class TrainTokenizerCommand implements Callable<Integer> {
    /** Characters handed to the trainer at a time; cut after a newline so no piece straddles two blocks. */
    private static final int BLOCK_CHARS = 1 << 20;

    @Option(names = "--corpus", required = true, arity = "1..*", paramLabel = "FILE", description = "UTF-8 text files to train on.")
    List<Path> corpus;

    @Option(names = "--vocab", paramLabel = "N", defaultValue = "2048",
            description = "Ordinary BPE ranks, the 256 single bytes included (default ${DEFAULT-VALUE}).")
    int vocab;

    @Option(names = "--vocab-size", paramLabel = "N",
            description = "The model's vocabulary, ranks plus specials (default: ranks + 256 rounded up to a multiple of 64).")
    Integer vocabSize;

    @Option(names = "--out", required = true, paramLabel = "DIR", description = "Directory to write tiktoken.model and tokenizer_config.json to.")
    Path out;

    @Override
    public Integer call() throws IOException {
        if (vocab < 256) throw new IllegalArgumentException("--vocab " + vocab + ": a byte-level BPE needs at least the 256 single bytes");
        for (Path f : corpus) {
            if (!Files.isRegularFile(f)) throw new IllegalArgumentException("--corpus " + f + ": no such file");
        }
        long t0 = System.nanoTime();
        BpeTrainer trainer = new BpeTrainer(vocab);
        long chars = 0;
        for (Path f : corpus) chars += feed(trainer, f);
        long t1 = System.nanoTime();
        List<byte[]> ranks = trainer.train();
        long t2 = System.nanoTime();
        SpecialIds ids = vocabSize == null ? TokenizerFiles.write(out, ranks) : TokenizerFiles.write(out, ranks, vocabSize);
        System.err.printf(Locale.ROOT, "read %,d characters (%,d distinct pieces) in %.1f s; %d merges in %.1f s%n",
                chars, trainer.distinctPieces(), (t1 - t0) / 1e9, ranks.size() - 256, (t2 - t1) / 1e9);
        if (ranks.size() < vocab) {
            System.err.println("warning: the corpus ran out of pairs to merge after " + ranks.size() + " of the " + vocab + " ranks asked for");
        }
        System.out.println("wrote " + out.resolve("tiktoken.model") + " (" + ranks.size() + " ranks) and " + out.resolve("tokenizer_config.json"));
        System.out.printf(Locale.ROOT, "config.json: \"vocab_size\": %d, \"bos_token_id\": %d, \"eos_token_id\": %d, \"pad_token_id\": %d, "
                + "\"media_placeholder_token_id\": %d; <|im_end|> is %d%n", ids.vocabSize(), ids.bos(), ids.eos(), ids.pad(), ids.mediaPlaceholder(), ids.imEnd());
        return 0;
    }

    /** Streams a file to the trainer in blocks that end at a newline; returns its length in characters. */
    private static long feed(BpeTrainer trainer, Path file) throws IOException {
        var decoder = StandardCharsets.UTF_8.newDecoder()
                .onMalformedInput(CodingErrorAction.REPORT).onUnmappableCharacter(CodingErrorAction.REPORT);
        long total = 0;
        try (Reader in = new java.io.InputStreamReader(Files.newInputStream(file), decoder)) {
            char[] buf = new char[BLOCK_CHARS];
            int filled = 0;
            int n;
            while ((n = in.read(buf, filled, buf.length - filled)) >= 0) {
                filled += n;
                total += n;
                if (filled < buf.length) continue;
                int cut = filled;
                while (cut > 0 && buf[cut - 1] != '\n') cut--;
                if (cut == 0) cut = Character.isHighSurrogate(buf[filled - 1]) ? filled - 1 : filled;   // one huge line
                trainer.add(new String(buf, 0, cut));
                System.arraycopy(buf, cut, buf, 0, filled - cut);
                filled -= cut;
            }
            if (filled > 0) trainer.add(new String(buf, 0, filled));
        } catch (CharacterCodingException e) {
            throw new IOException("--corpus " + file + " is not valid UTF-8 (" + e.getMessage() + ")", e);
        }
        return total;
    }
}
