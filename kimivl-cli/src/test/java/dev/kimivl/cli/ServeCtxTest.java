package dev.kimivl.cli;

import org.junit.jupiter.api.Test;

import static dev.kimivl.cli.CliErrorsTest.oneLine;
import static dev.kimivl.cli.CliTest.TINY;
import static dev.kimivl.cli.CliTest.run;

/** Issue 12: serve took --ctx 0 and --ctx -5 silently as "the model's whole context"; run and chat refuse them. */
class ServeCtxTest {
    @Test
    void serveRefusesANonPositiveContextCapBeforeLoadingTheModel() {
        oneLine(run("serve", "--model", TINY.toString(), "--port", "0", "--ctx", "0"), 2, "--ctx must be a positive number of tokens, not 0", "see kimivl serve --help");
        oneLine(run("serve", "--model", TINY.toString(), "--port", "0", "--ctx", "-5"), 2, "--ctx must be a positive number of tokens, not -5");
    }
}
