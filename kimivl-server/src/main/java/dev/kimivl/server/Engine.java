package dev.kimivl.server;

import dev.kimivl.generate.Generator;
import dev.kimivl.generate.SamplingParams;
import dev.kimivl.model.KimiVL;
import dev.kimivl.text.ChatMessage;
import dev.kimivl.vision.LoadedImage;

import java.util.List;

/**
 * What the HTTP layer needs from the model. It is an interface so that the server's tests can script output the
 * repo's tiny random model never produces, such as a Thinking model's {@code ◁think▷…◁/think▷} reasoning.
 */
interface Engine {
    boolean acceptsImages();

    /**
     * Renders and encodes the conversation and checks that it fits the context, throwing
     * {@link dev.kimivl.generate.ContextOverflowException} before any response byte is sent.
     */
    Job prepare(List<ChatMessage> messages, List<LoadedImage> images);

    interface Job { Generator.Result generate(SamplingParams sampling, Generator.Listener listener); }

    static Engine of(KimiVL model, int contextCap) {
        return new Engine() {
            @Override public boolean acceptsImages() { return model.hasVision(); }

            @Override public Job prepare(List<ChatMessage> messages, List<LoadedImage> images) {
                KimiVL.Prompt prompt = model.prompt(messages, images);
                Generator gen = model.generator(contextCap);
                gen.checkFits(prompt.ids().length);
                return (sampling, listener) -> gen.generate(prompt.embeddings(), prompt.ids(), sampling, listener);
            }
        };
    }
}
