package dev.kimivl.generate;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** {@link Decoding#logprob}: log-softmax of the raw logits, the chosen token's and the best alternatives'. */
class DecodingLogprobTest {
    @Test
    void logprobsAreTheLogSoftmaxAndTheAlternativesComeBestFirst() {
        float[] logits = {1f, 3f, -2f, 3f, 0.5f};
        Decoding.TokenLogprob lp = Decoding.logprob(logits, 4, 3);
        double z = 0;
        for (float v : logits) z += Math.exp(v);
        assertEquals(0.5 - Math.log(z), lp.logprob(), 1e-6);
        assertArrayEquals(new int[]{1, 3, 0}, lp.topTokens(), "largest first, ties by the lower id");
        assertEquals(3 - Math.log(z), lp.topLogprobs()[0], 1e-6);
        assertEquals(1 - Math.log(z), lp.topLogprobs()[2], 1e-6);
        assertEquals(0, Decoding.logprob(logits, 1, 0).topTokens().length);
    }
}
