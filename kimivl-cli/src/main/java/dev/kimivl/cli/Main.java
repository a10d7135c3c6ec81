package dev.kimivl.cli;

import dev.kimivl.io.CheckpointException;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/** Entry point of the kimivl command line. */
@Command(name = "kimivl", mixinStandardHelpOptions = true, version = "kimivl 0.1.0",
        description = "Kimi-VL vision-language models on the CPU, in Java.",
        subcommands = {RunCommand.class, ChatCommand.class, ForwardCommand.class, InfoCommand.class, TokenizeCommand.class, ConvertCommand.class, BenchCommand.class, ServeCommand.class, BenchServeCommand.class, TrainShapesCommand.class, TrainTokenizerCommand.class, TrainCommand.class, EvalCommand.class, ProbeCommand.class, CommandLine.HelpCommand.class})
public final class Main implements Runnable {
    @CommandLine.Spec CommandLine.Model.CommandSpec spec;

    @Override public void run() { spec.commandLine().usage(System.out); }

    /** The command line with kimivl's error handling: one clear line per failure, the stack trace only with KIMIVL_DEBUG=1. */
    public static CommandLine commandLine() {
        CommandLine cl = new CommandLine(new Main());
        cl.setExecutionExceptionHandler((ex, cmd, parseResult) -> {
            boolean expected = ex instanceof CheckpointException || ex instanceof IllegalArgumentException
                    || ex instanceof java.io.IOException || ex instanceof UnsupportedOperationException || ex instanceof IllegalStateException
                    || ex instanceof dev.kimivl.vision.ImageException;
            cmd.getErr().println("kimivl " + cmd.getCommandName() + ": error: " + (ex.getMessage() != null ? Errors.oneLine(ex.getMessage()) : ex.toString()));
            if (!expected || "1".equals(System.getenv("KIMIVL_DEBUG"))) ex.printStackTrace(cmd.getErr());
            return expected ? 1 : 70;
        });
        cl.setParameterExceptionHandler(Errors::usage);
        return cl;
    }

    public static void main(String[] args) {
        Terminal.restoreStderr();
        System.exit(commandLine().execute(args));
    }
}
