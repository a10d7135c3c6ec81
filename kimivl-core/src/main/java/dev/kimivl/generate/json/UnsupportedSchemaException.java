package dev.kimivl.generate.json;

/**
 * A JSON Schema keyword that constrained decoding cannot enforce ({@code pattern}, {@code patternProperties}, a
 * recursive {@code $ref}, ...). Refused rather than ignored, so an answer never silently breaks the caller's schema.
 * The message names the keyword's path in the schema. An {@link IllegalArgumentException}, so callers that map bad
 * requests map this one too; LangChain4j maps it to {@code UnsupportedFeatureException}.
 */
public final class UnsupportedSchemaException extends IllegalArgumentException {
    public UnsupportedSchemaException(String message) { super(message); }
}
