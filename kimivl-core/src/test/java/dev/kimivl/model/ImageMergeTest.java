package dev.kimivl.model;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

class ImageMergeTest {
    @Test
    void featuresGoToThePlaceholdersInOrder() {
        int D = 2, pad = 9;
        int[] ids = {1, 9, 9, 2, 9, 3};
        float[] emb = new float[ids.length * D];
        java.util.Arrays.fill(emb, -1);
        float[] feats = {10, 11, 20, 21, 30, 31};
        ImageMerge.merge(emb, ids, pad, feats, D);
        assertArrayEquals(new float[]{-1, -1, 10, 11, 20, 21, -1, -1, 30, 31, -1, -1}, emb);
    }

    @Test
    void aCountMismatchNamesBothCounts() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> ImageMerge.merge(new float[8], new int[]{9, 9, 1, 2}, 9, new float[6], 2));
        assertTrue(e.getMessage().contains("2 image placeholder tokens") && e.getMessage().contains("produce 3 feature rows"), e.getMessage());
    }
}
