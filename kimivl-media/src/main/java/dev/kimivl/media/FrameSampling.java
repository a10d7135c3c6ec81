package dev.kimivl.media;

import java.util.Arrays;

/**
 * Which frames of a video become images: a fixed count spread evenly over it, or a rate in frames per second,
 * never more than {@code maxFrames}.
 *
 * <ul>
 * <li>count N: frame i (0-based) is the one showing at the centre of the i-th of N equal parts of the video;
 * N above the video's frame count takes every frame.</li>
 * <li>fps F: the frames showing at 0, 1/F, 2/F, … seconds. When that is more than maxFrames, maxFrames frames are
 * spread evenly over the whole video instead (as for a count): the video is never cut short, and
 * {@link Plan#capped()} says so for the caller to report.</li>
 * </ul>
 * Times assume a constant frame rate (frame k shows at k·duration/frames), which is what MP4 files from cameras and
 * encoders have; they label the frames in the prompt.
 *
 * @param count a fixed number of frames, or 0 for a rate
 * @param fps   the rate when count is 0
 */
public record FrameSampling(int count, double fps, int maxFrames) {
    public FrameSampling {
        if (maxFrames < 1) throw new IllegalArgumentException("the maximum number of frames must be at least 1, not " + maxFrames);
        if (count < 0) throw new IllegalArgumentException("a frame count must be positive, not " + count);
        if (count == 0 && !(fps > 0 && Double.isFinite(fps))) throw new IllegalArgumentException("a frame rate must be a positive number, not " + fps);
        if (count > maxFrames) throw new IllegalArgumentException(count + " frames are more than the maximum of " + maxFrames);
    }

    public static FrameSampling frames(int count, int maxFrames) { return new FrameSampling(count, 0, maxFrames); }

    public static FrameSampling perSecond(double fps, int maxFrames) { return new FrameSampling(0, fps, maxFrames); }

    /**
     * The frames chosen.
     *
     * @param frames    frame indices, ascending, distinct
     * @param seconds   the time each shows at
     * @param requested how many frames the rate asked for (= frames.length unless capped)
     * @param capped    the rate asked for more than maxFrames, so maxFrames were spread over the video instead
     */
    public record Plan(int[] frames, double[] seconds, int requested, boolean capped) {
        public int size() { return frames.length; }
    }

    /** The plan for a video of {@code totalFrames} frames lasting {@code duration} seconds. */
    public Plan plan(int totalFrames, double duration) {
        if (totalFrames < 1) throw new IllegalArgumentException("the video has no frames");
        double secondsPerFrame = duration > 0 ? duration / totalFrames : 0;
        int[] idx;
        int requested;
        boolean capped = false;
        if (count > 0) {
            requested = count;
            idx = spread(Math.min(count, totalFrames), totalFrames);
        } else {
            // frames at 0, 1/F, 2/F, … before the end; a rate above the video's own gives every frame once
            long n = duration > 0 ? (long) Math.ceil(duration * fps - 1e-9) : 1;
            n = Math.max(1, Math.min(n, totalFrames));
            requested = (int) Math.min(n, Integer.MAX_VALUE);
            if (n > maxFrames) {
                capped = true;
                idx = spread(maxFrames, totalFrames);
            } else {
                idx = new int[(int) n];
                for (int k = 0; k < n; k++) {
                    idx[k] = secondsPerFrame > 0 ? (int) Math.min(totalFrames - 1, Math.floor(k / fps / secondsPerFrame + 1e-9)) : 0;
                }
                idx = Arrays.stream(idx).distinct().toArray();
            }
        }
        double[] sec = new double[idx.length];
        for (int i = 0; i < idx.length; i++) sec[i] = idx[i] * secondsPerFrame;
        return new Plan(idx, sec, requested, capped);
    }

    /** n frames at the centres of n equal parts of [0, total). */
    private static int[] spread(int n, int total) {
        int[] idx = new int[n];
        for (int i = 0; i < n; i++) idx[i] = (int) Math.min(total - 1, (long) Math.floor((i + 0.5) * total / n));
        return idx;
    }
}
