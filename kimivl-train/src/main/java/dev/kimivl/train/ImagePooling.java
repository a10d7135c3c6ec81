package dev.kimivl.train;

/**
 * Mean pooling of each image's merged tokens, and its backward: the image embedding the ViT pre-training stage's
 * towers ({@link SigLip}, {@link CaptionDecoder}) start from. Also their shared initialiser.
 */
public final class ImagePooling {
    private ImagePooling() {}

    /** [B][Dt]: image i's mean over its mergedPerImage[i] rows of features [M, Dt] (images in order). */
    public static double[][] mean(float[] features, int[] mergedPerImage, int dt) {
        int b = mergedPerImage.length;
        long rows = 0;
        for (int m : mergedPerImage) rows += m;
        if (rows * dt != features.length) {
            throw new IllegalArgumentException("features hold " + features.length / dt + " rows, the images " + rows);
        }
        double[][] pool = new double[b][dt];
        int off = 0;
        for (int i = 0; i < b; i++) {
            int m = mergedPerImage[i];
            if (m <= 0) throw new IllegalArgumentException("image " + i + " has no merged tokens");
            for (int k = 0; k < m; k++) for (int d = 0; d < dt; d++) pool[i][d] += features[(off + k) * dt + d];
            for (int d = 0; d < dt; d++) pool[i][d] /= m;
            off += m;
        }
        return pool;
    }

    /** The backward of {@link #mean}: adds dPooled[i] / m_i to each of image i's rows of dFeatures [M, Dt]. */
    public static void meanBackward(double[][] dPooled, int[] mergedPerImage, int dt, float[] dFeatures) {
        int off = 0;
        for (int i = 0; i < mergedPerImage.length; i++) {
            int m = mergedPerImage[i];
            for (int k = 0; k < m; k++) for (int d = 0; d < dt; d++) dFeatures[(off + k) * dt + d] += (float) (dPooled[i][d] / m);
            off += m;
        }
    }
}
