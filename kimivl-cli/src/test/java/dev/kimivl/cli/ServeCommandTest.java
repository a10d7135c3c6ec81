package dev.kimivl.cli;

import org.junit.jupiter.api.Test;
import picocli.CommandLine;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.net.InetAddress;
import java.net.ServerSocket;

import static org.junit.jupiter.api.Assertions.*;

/** kimivl serve's failures before it serves: each names what is wrong. (The API itself is tested in kimivl-server.) */
class ServeCommandTest {
    record Run(int exit, String err) {}

    static Run serve(String... args) {
        CommandLine cl = Main.commandLine();
        StringWriter err = new StringWriter();
        cl.setErr(new PrintWriter(err, true));
        String[] all = new String[args.length + 1];
        all[0] = "serve";
        System.arraycopy(args, 0, all, 1, args.length);
        return new Run(cl.execute(all), err.toString());
    }

    @Test
    void aBusyPortIsNamedBeforeTheModelIsLoaded() throws Exception {
        try (ServerSocket taken = new ServerSocket(0, 1, InetAddress.getByName("127.0.0.1"))) {
            int port = taken.getLocalPort();
            // the model does not exist: the port is checked first, so its error is the one reported
            Run r = serve("--model", "no/such/model", "--port", String.valueOf(port));
            assertEquals(1, r.exit, r.err);
            assertTrue(r.err.contains("cannot listen on 127.0.0.1:" + port + ": the address is already in use"), r.err);
        }
    }

    @Test
    void anEmptyApiKeyIsAnError() {
        Run r = serve("--model", "no/such/model", "--port", "0", "--api-key", "");
        assertEquals(1, r.exit, r.err);
        assertTrue(r.err.contains("--api-key is empty"), r.err);
    }

    @Test
    void theBodyLimitMustBePositive() {
        Run r = serve("--model", "no/such/model", "--port", "0", "--max-body-mb", "0");
        assertEquals(1, r.exit, r.err);
        assertTrue(r.err.contains("--max-body-mb must be in 1..2047, got 0"), r.err);
    }
}
