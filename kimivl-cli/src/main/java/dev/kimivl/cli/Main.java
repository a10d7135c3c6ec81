package dev.kimivl.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** Entry point of the kimivl command line. */
@Command(name = "kimivl", mixinStandardHelpOptions = true, version = "kimivl 0.1.0",
        description = "Kimi-VL vision-language models on the CPU, in Java.",
        subcommands = {CommandLine.HelpCommand.class})
public final class Main implements Runnable {
    @CommandLine.Spec CommandLine.Model.CommandSpec spec;

    @Override public void run() { spec.commandLine().usage(System.out); }

    public static CommandLine commandLine() {
        return new CommandLine(new Main());
    }

    public static void main(String[] args) {
        System.exit(commandLine().execute(args));
    }
}
