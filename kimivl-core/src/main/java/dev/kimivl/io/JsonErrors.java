package dev.kimivl.io;

import com.fasterxml.jackson.core.JsonProcessingException;

import java.io.IOException;
import java.util.regex.Pattern;

/**
 * Jackson's parse errors as one line. Its messages end with a second line
 * {@code at [Source: REDACTED (`StreamReadFeature.INCLUDE_SOURCE_IN_LOCATION` disabled); line: 6, column: 20]}
 * (the same text can appear inside, for a start marker): kimivl's errors are one line naming the file, so the
 * location is kept as "line 6, column 20" and the rest of that boilerplate goes.
 */
public final class JsonErrors {
    private static final Pattern LOCATION = Pattern.compile("\\[Source: .*?; line: (\\d+), column: (\\d+)\\]");
    private static final Pattern BREAKS = Pattern.compile("\\s*\\R\\s*");

    private JsonErrors() {}

    /** {@code message} with Jackson's source locations shortened and line breaks joined. */
    public static String oneLine(String message) {
        if (message == null) return null;
        return BREAKS.matcher(LOCATION.matcher(message).replaceAll("line $1, column $2")).replaceAll(" ").strip();
    }

    /** What went wrong reading JSON, on one line (for a message that already names the file). */
    public static String describe(IOException e) {
        return oneLine(e instanceof JsonProcessingException j ? j.getMessage() : String.valueOf(e.getMessage()));
    }
}
