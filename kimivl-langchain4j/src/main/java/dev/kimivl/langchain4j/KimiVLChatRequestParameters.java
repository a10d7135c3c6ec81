package dev.kimivl.langchain4j;

import dev.langchain4j.model.chat.request.ChatRequestParameters;
import dev.langchain4j.model.chat.request.DefaultChatRequestParameters;

import java.util.Objects;

/**
 * LangChain4j's common request parameters plus kimivl's {@code seed} (as {@code OpenAiChatRequestParameters}
 * adds OpenAI's): a request with a seed is reproducible; without one (and without a seed on the model's builder)
 * every request draws a fresh seed, so the same question at temperature 0.8 gets different answers.
 *
 * <pre>{@code
 * model.chat(ChatRequest.builder().messages(UserMessage.from("Name a colour"))
 *         .parameters(KimiVLChatRequestParameters.builder().temperature(0.8).seed(42L).build()).build());
 * }</pre>
 */
public class KimiVLChatRequestParameters extends DefaultChatRequestParameters {
    private final Long seed;

    protected KimiVLChatRequestParameters(Builder builder) {
        super(builder);
        this.seed = builder.seed;
    }

    /** The sampling seed; null: a fresh one per request. */
    public Long seed() { return seed; }

    @Override
    public KimiVLChatRequestParameters overrideWith(ChatRequestParameters that) {
        return builder().overrideWith(this).overrideWith(that).build();
    }

    public static Builder builder() { return new Builder(); }

    @Override
    public boolean equals(Object o) {
        return o instanceof KimiVLChatRequestParameters k && super.equals(o) && Objects.equals(seed, k.seed);
    }

    @Override public int hashCode() { return 31 * super.hashCode() + Objects.hashCode(seed); }

    @Override public String toString() { return super.toString().replaceFirst("\\)?$", ", seed=" + seed + ")"); }

    public static class Builder extends DefaultChatRequestParameters.Builder<Builder> {
        private Long seed;

        @Override
        public Builder overrideWith(ChatRequestParameters parameters) {
            super.overrideWith(parameters);
            if (parameters instanceof KimiVLChatRequestParameters k && k.seed != null) seed = k.seed;
            return this;
        }

        public Builder seed(Long seed) { this.seed = seed; return this; }

        @Override public KimiVLChatRequestParameters build() { return new KimiVLChatRequestParameters(this); }
    }
}
