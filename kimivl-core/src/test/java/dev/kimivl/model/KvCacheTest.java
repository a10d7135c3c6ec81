package dev.kimivl.model;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** Storage of the latent cache: f32, f16 and bf16 rows, growth, the precision setting. */
class KvCacheTest {
    @Test
    void autoFollowsTheWeights() {
        assertEquals(KvCache.Precision.F16, KvCache.Precision.choose("auto", true, false));
        assertEquals(KvCache.Precision.BF16, KvCache.Precision.choose("auto", true, true), "quantized weights on vdpbf16ps kernels");
        assertEquals(KvCache.Precision.F32, KvCache.Precision.choose("AUTO", false, false));
        assertEquals(KvCache.Precision.F32, KvCache.Precision.choose("auto", false, true), "float weights keep the reference's numerics");
        assertEquals(KvCache.Precision.F32, KvCache.Precision.choose("f32", true, true));
        assertEquals(KvCache.Precision.F16, KvCache.Precision.choose("F16", false, true));
        assertEquals(KvCache.Precision.BF16, KvCache.Precision.choose("BF16", true, false));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> KvCache.Precision.choose("q8", true, true));
        assertTrue(e.getMessage().contains("'q8'") && e.getMessage().contains("bf16"), e.getMessage());
    }

    /** A copy holds the same rows and grows and changes on its own. */
    @Test
    void aCopyIsIndependent() {
        int layers = 2, lora = 8, rope = 4, W = lora + rope;
        for (KvCache.Precision p : KvCache.Precision.values()) {
            KvCache c = new KvCache(layers, lora, rope, 1000, p);
            float[] row = new float[W];
            for (int j = 0; j < 10; j++) {
                java.util.Arrays.fill(row, j + 0.5f);
                for (int l = 0; l < layers; l++) c.write(l, j, row, 0);
            }
            c.advance(10);
            KvCache d = c.copy();
            assertEquals(10, d.length());
            assertEquals(c.maxTokens(), d.maxTokens());
            assertEquals(p, d.precision());
            java.util.Arrays.fill(row, -7f);
            for (int l = 0; l < layers; l++) d.write(l, 3, row, 0);        // the copy changes, the original does not
            for (int l = 0; l < layers; l++) d.write(l, 400, row, 0);      // and grows past its capacity alone
            for (int l = 0; l < layers; l++) {
                assertEquals(3.5f, c.columns(l, 10, 0, W)[3 * W], "original row 3, layer " + l);
                assertEquals(-7f, d.columns(l, 10, 0, W)[3 * W], "copy row 3, layer " + l);
                assertEquals(9.5f, d.columns(l, 10, 0, W)[9 * W], "copy row 9, layer " + l);
            }
        }
    }

    @Test
    void rowsSurviveGrowthInEveryPrecision() {
        int layers = 2, lora = 8, rope = 4, W = lora + rope, n = 300;            // grows past the initial 256 positions
        for (KvCache.Precision p : KvCache.Precision.values()) {
            KvCache c = new KvCache(layers, lora, rope, 1000, p);
            assertEquals((long) layers * W * (p == KvCache.Precision.F32 ? 4 : 2), c.bytesPerPosition());
            float[] row = new float[W];
            for (int j = 0; j < n; j++) {
                for (int i = 0; i < W; i++) row[i] = (float) Math.sin(j * 31 + i) * 100;
                for (int l = 0; l < layers; l++) c.write(l, j, row, 0);
            }
            for (int l = 0; l < layers; l++) {
                float[] f = c.columns(l, n, 0, W), pe = c.columns(l, n, lora, rope);
                for (int j = 0; j < n; j++) {
                    for (int i = 0; i < rope; i++) assertEquals(f[j * W + lora + i], pe[j * rope + i], 0f, "rope columns of position " + j);
                }
                for (int j = 0; j < n; j++) {
                    for (int i = 0; i < W; i++) {
                        float want = (float) Math.sin(j * 31 + i) * 100;
                        float tol = switch (p) {                                 // half an ulp
                            case F32 -> 0f;
                            case F16 -> Math.abs(want) * 0x1p-11f;
                            case BF16 -> Math.abs(want) * 0x1p-8f;
                        };
                        assertEquals(want, f[j * W + i], tol, p + " layer " + l + " position " + j + " column " + i);
                    }
                }
            }
            assertThrows(IllegalStateException.class, () -> c.write(0, 1000, row, 0), "past maxTokens");
        }
    }

    /** A latent outside f16's range is an error that says what to do, not an infinity in the cache. */
    @Test
    void f16OverflowIsAnError() {
        KvCache c = new KvCache(1, 8, 4, 16, KvCache.Precision.F16);
        float[] row = new float[12];
        row[3] = 65504f;
        c.write(0, 0, row, 0);                                                   // the largest finite f16 fits
        row[5] = -7e4f;
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> c.write(0, 1, row, 0));
        assertTrue(e.getMessage().contains("column 5") && e.getMessage().contains("--kv-cache f32"), e.getMessage());
        row[5] = Float.NaN;
        assertThrows(IllegalStateException.class, () -> c.write(0, 1, row, 0));
        new KvCache(1, 8, 4, 16, KvCache.Precision.F32).write(0, 0, row, 0);      // f32 stores whatever it is given
    }

    /** bf16 rounds to nearest with ties to even, as vcvtneps2bf16 does, and refuses what is not finite. */
    @Test
    void bf16RoundsToNearestEvenAndRefusesInfinities() {
        assertEquals((short) 0x3F80, KvCache.toBf16(1f));
        assertEquals((short) 0x3F80, KvCache.toBf16(Float.intBitsToFloat(0x3F808000)), "a tie goes to the even 0x3F80");
        assertEquals((short) 0x3F82, KvCache.toBf16(Float.intBitsToFloat(0x3F818000)), "a tie goes to the even 0x3F82");
        assertEquals((short) 0x3F81, KvCache.toBf16(Float.intBitsToFloat(0x3F808001)), "above the tie rounds up");
        assertEquals((short) 0xBF80, KvCache.toBf16(-1f));
        KvCache c = new KvCache(1, 8, 4, 16, KvCache.Precision.BF16);
        float[] row = new float[12];
        row[2] = 1e38f;
        c.write(0, 0, row, 0);                                                   // f32's range fits
        row[4] = Float.MAX_VALUE;                                                // rounds up to infinity in bf16
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> c.write(0, 1, row, 0));
        assertTrue(e.getMessage().contains("column 4") && e.getMessage().contains("bf16"), e.getMessage());
        row[4] = Float.NaN;
        assertThrows(IllegalStateException.class, () -> c.write(0, 1, row, 0));
    }

    /** reserve makes room in every layer at once, never shrinks, stops at maxTokens and keeps the contents. */
    @Test
    void reserveGrowsEveryLayerOnceAndKeepsTheContents() {
        KvCache c = new KvCache(3, 8, 4, 1000, KvCache.Precision.F16);
        float[] row = new float[12];
        for (int i = 0; i < 12; i++) row[i] = i + 0.5f;
        for (int l = 0; l < 3; l++) c.write(l, 5, row, 0);
        c.reserve(700);
        assertEquals(700L * c.bytesPerPosition(), c.bytesHeld());
        c.reserve(300);
        assertEquals(700L * c.bytesPerPosition(), c.bytesHeld(), "never shrinks");
        c.reserve(5000);
        assertEquals(1000L * c.bytesPerPosition(), c.bytesHeld(), "capped at maxTokens");
        for (int l = 0; l < 3; l++) {
            assertArrayEquals(new float[]{5.5f, 6.5f}, java.util.Arrays.copyOfRange(c.columns(l, 6, 5, 2), 10, 12), 0f, "layer " + l + " kept position 5");
        }
        assertEquals(0, c.length());
    }
}
