package dev.kimivl.cli;

import dev.kimivl.io.JsonErrors;
import picocli.CommandLine;

import java.util.List;

/** How the command line reports failures: one line each (README: "Errors are one line naming the file, ..."). */
final class Errors {
    private Errors() {}

    /**
     * A usage mistake: picocli's own handler prints the error and then the whole usage text (49 lines for run),
     * which buries the one line that matters. This prints that line, picocli's "did you mean" suggestions, and
     * where the usage is.
     */
    static int usage(CommandLine.ParameterException ex, String[] args) {
        CommandLine cmd = ex.getCommandLine();
        String name = cmd.getCommandSpec().qualifiedName();
        String msg = oneLine(ex.getMessage());
        if (ex instanceof CommandLine.UnmatchedArgumentException u) {
            List<String> s = u.getSuggestions();
            if (!s.isEmpty()) msg += " (did you mean " + String.join(" or ", s.subList(0, Math.min(3, s.size()))) + "?)";
        }
        cmd.getErr().println(name + ": error: " + msg + "; see " + name + " --help");
        cmd.getErr().flush();
        return cmd.getCommandSpec().exitCodeOnInvalidInput();
    }

    /** A message on one line: Jackson's two-line locations shortened, any other line break joined. */
    static String oneLine(String message) {
        return message == null ? null : JsonErrors.oneLine(message);
    }

    /** A usage error raised while a command runs (a value picocli could not check): reported like a parse error. */
    static CommandLine.ParameterException usage(CommandLine.Model.CommandSpec spec, String message) {
        return new CommandLine.ParameterException(spec.commandLine(), message);
    }
}
