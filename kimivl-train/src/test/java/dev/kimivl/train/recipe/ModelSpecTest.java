package dev.kimivl.train.recipe;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ModelSpecTest {

    private static ModelSpec spec(String posEmbInit) {
        return new ModelSpec(64, 2, 2, 16, 16, 8, 16, 128, 32, 4, 2, 1, 1, 50000.0, 256,
                32, 1, 2, 64, 4, 64, 0.0, posEmbInit);
    }

    @Test
    void positionTableInitIsNormalByDefaultAndNamedWhenWrong() {
        assertEquals("normal", spec(null).posEmbInit());
        var e = assertThrows(IllegalArgumentException.class, () -> spec("sinus"));
        assertTrue(e.getMessage().contains("model.posEmbInit") && e.getMessage().contains("sinus"), e.getMessage());
    }

    @Test
    void sinCosTableEncodesTheColumnInTheFirstHalfAndTheRowInTheSecond() {
        int h = 3, w = 4, dim = 16, q = dim / 4;
        float[] t = ModelSpec.sinCosTable(h, w, dim);
        assertEquals(h * w * dim, t.length);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int k = 0; k < q; k++) {
                    double omega = Math.pow(100.0, -(double) k / (q - 1));
                    int base = (y * w + x) * dim;
                    assertEquals(Math.sin(x * omega), t[base + 2 * k], 1e-6, "column sin, cell " + y + "," + x + " k " + k);
                    assertEquals(Math.cos(x * omega), t[base + 2 * k + 1], 1e-6);
                    assertEquals(Math.sin(y * omega), t[base + 2 * q + 2 * k], 1e-6, "row sin");
                    assertEquals(Math.cos(y * omega), t[base + 2 * q + 2 * k + 1], 1e-6);
                }
        // the highest frequency is one radian per cell, the lowest 1/100: neighbouring cells differ, far ones do not alias
        assertEquals(Math.sin(1.0), t[dim], 1e-6);
    }
}
