package dev.kimivl.generate;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** {@link NgramDrafter}: the longest suffix match wins, its most recent occurrence, minN, and {@link Speculative.Policy}. */
class NgramDrafterTest {
    @Test
    void longestSuffixThenMostRecentOccurrence() {
        // ... 5 6 7 8 9 ... 6 7 1 2 ... | 5 6 7 : the 3-gram "5 6 7" occurred once (followed by 8 9), the 2-gram "6 7"
        // most recently before 1 2: the longer match wins
        NgramDrafter d = new NgramDrafter(new int[]{5, 6, 7, 8, 9, 3, 6, 7, 1, 2, 4, 5, 6, 7}, 3, 1);
        NgramDrafter.Draft draft = d.draft(4);
        assertEquals(3, draft.n());
        assertArrayEquals(new int[]{8, 9, 3, 6}, draft.tokens());
        // after 0 7 neither "7 0 7" nor "0 7" occurred before; "7" last occurred at position 13, followed by 0 7
        d.append(0);
        d.append(7);
        draft = d.draft(3);
        assertEquals(1, draft.n());
        assertArrayEquals(new int[]{0, 7}, draft.tokens());
    }

    @Test
    void draftsAreCutToKAndToTheSequence() {
        NgramDrafter d = new NgramDrafter(new int[]{1, 2, 3, 1, 2}, 3, 1);
        // "1 2" occurred at 0..1, followed by 3 1 2 (the continuation may run into the suffix itself)
        assertArrayEquals(new int[]{3, 1, 2}, d.draft(8).tokens());
        assertArrayEquals(new int[]{3}, d.draft(1).tokens());
        assertEquals(0, d.draft(0).tokens().length);
    }

    @Test
    void noMatchOrTooShortAMatchGivesNothing() {
        NgramDrafter d = new NgramDrafter(new int[]{1, 2, 3, 4}, 3, 1);
        assertEquals(NgramDrafter.Draft.NONE, d.draft(4));
        NgramDrafter two = new NgramDrafter(new int[]{1, 2, 3, 9, 3}, 3, 2);
        assertEquals(0, two.draft(4).tokens().length, "only a 1-gram matches and minN is 2");
        NgramDrafter one = new NgramDrafter(new int[]{1, 2, 3, 9, 3}, 3, 1);
        assertArrayEquals(new int[]{9, 3}, one.draft(4).tokens());
        assertThrows(IllegalArgumentException.class, () -> new NgramDrafter(new int[0], 4, 1));
        assertThrows(IllegalArgumentException.class, () -> one.append(-1));
    }

    @Test
    void policyStopsDraftingWhereDraftsMissAndDraftsWhereTheyHit() {
        Speculative.Policy p = new Speculative.Policy(true);
        assertEquals(0, p.choose(1, 5), "a plain step is measured first");
        p.timed(1, 0.010);
        p.timed(4, 0.013);                       // 1 ms per extra position: cheap rows
        for (int i = 0; i < 20; i++) p.verified(3, 5, false);
        assertEquals(5, p.choose(3, 5), "3-gram drafts always accepted and rows cheap: verify all");
        for (int i = 0; i < 20; i++) p.verified(1, 0, true);
        assertEquals(0, p.choose(1, 5), "1-gram drafts always rejected: do not verify");
        // rows as dear as single steps: drafting cannot pay even when drafts hit half the time
        Speculative.Policy dear = new Speculative.Policy(true);
        dear.timed(1, 0.010);
        dear.timed(5, 0.050);
        assertEquals(0, dear.choose(2, 4));
        // unverified drafts are scored against what follows: a miss lowers the acceptance
        assertEquals(0.5, dear.acceptance(2), 1e-12, "the prior");
        dear.shadow(2, new int[]{4, 5, 6});
        dear.emitted(9);
        assertTrue(dear.acceptance(2) < 0.4, "a missed unverified draft lowers the acceptance: " + dear.acceptance(2));
        double low = dear.acceptance(2);
        dear.shadow(2, new int[]{4, 5, 6});
        for (int t : new int[]{4, 5, 6}) dear.emitted(t);
        assertTrue(dear.acceptance(2) > low, "an unverified draft that came true raises it: " + dear.acceptance(2));
        assertEquals(3, new Speculative.Policy(false).choose(1, 3), "not adaptive: every draft verified");
    }

    @Test
    void parsesTheOption() {
        assertEquals(Speculative.NONE, Speculative.parse("none"));
        assertEquals(Speculative.NGRAM, Speculative.parse("ngram"));
        assertEquals(4, Speculative.parse("ngram:4").maxDraft());
        assertThrows(IllegalArgumentException.class, () -> Speculative.parse("eagle"));
        assertThrows(IllegalArgumentException.class, () -> Speculative.parse("ngram:0"));
        assertThrows(IllegalArgumentException.class, () -> Speculative.parse("ngram:x"));
    }
}
