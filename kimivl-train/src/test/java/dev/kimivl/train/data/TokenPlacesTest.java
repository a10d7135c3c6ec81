package dev.kimivl.train.data;

import dev.kimivl.vision.PreprocessedImage;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/** Each merged token's cell of the image, relative to the image's size. */
class TokenPlacesTest {
    /** An image's geometry only (the labels never read pixels): resized w × h, padded to whole 28-px tokens. */
    static PreprocessedImage geometry(int w, int h) {
        int pw = (w + 27) / 28 * 28, ph = (h + 27) / 28 * 28;
        return new PreprocessedImage("test", w, h, w, h, pw, ph, ph / 14, pw / 14, null);
    }

    @Test
    void theSamePlaceInImagesOfDifferentSizesGetsTheSameCell() {
        // 168 px = 6 tokens a side: token c is cell c
        int[] six = TokenPlaces.of(geometry(168, 168));
        for (int r = 0; r < 6; r++) for (int c = 0; c < 6; c++) assertEquals(r * 6 + c, six[r * 6 + c]);
        // 56 px = 2 tokens a side: centres at 1/4 and 3/4 of the side → cells 1 and 4
        assertArrayEquals(new int[]{1 * 6 + 1, 1 * 6 + 4, 4 * 6 + 1, 4 * 6 + 4}, TokenPlaces.of(geometry(56, 56)));
        // the top-left token of any image is in the top-left 3 × 3 region (cells 0-1), the bottom-right one in the last
        for (int side : new int[]{64, 96, 140, 256, 500}) {
            int[] l = TokenPlaces.of(geometry(side, side));
            assertEquals(0, l[0] / 6 / 2, side + " px: first token's region row");
            assertEquals(2, l[l.length - 1] % 6 / 2, side + " px: last token's region column");
        }
    }

    @Test
    void aWideImageSplitsItsWidthAndHeightApart() {
        // 336 × 56 px: 12 tokens across (two per cell), 2 down (rows 1 and 4)
        int[] l = TokenPlaces.of(geometry(336, 56));
        assertEquals(24, l.length);
        for (int c = 0; c < 12; c++) {
            assertEquals(6 + c / 2, l[c], "top row, token " + c);
            assertEquals(24 + c / 2, l[12 + c], "bottom row, token " + c);
        }
    }

    @Test
    void tokensOverThePaddingTakeTheLastCell() {
        // 60 px pads to 84: token 2 is centred at 70 px, beyond the image (70/60 ≥ 1)
        int[] l = TokenPlaces.of(geometry(60, 60));
        assertEquals(9, l.length);
        assertEquals(5, l[2] % 6);
        assertEquals(5, l[8] / 6);
    }
}
