package dev.kimivl.media;

import dev.kimivl.vision.LoadedImage;
import org.jcodec.api.FrameGrab;
import org.jcodec.api.JCodecException;
import org.jcodec.api.PictureWithMetadata;
import org.jcodec.common.DemuxerTrackMeta;
import org.jcodec.common.VideoCodecMeta;
import org.jcodec.common.io.ByteBufferSeekableByteChannel;
import org.jcodec.common.io.FileChannelWrapper;
import org.jcodec.common.io.NIOUtils;
import org.jcodec.common.io.SeekableByteChannel;
import org.jcodec.common.model.ColorSpace;
import org.jcodec.common.model.Picture;
import org.jcodec.scale.ColorUtil;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.function.UnaryOperator;

/**
 * A video file read with jcodec (pure Java: MP4/MOV containers with H.264 video, 8-bit 4:2:0 as cameras and
 * encoders write it). Frames come out as RGB {@link LoadedImage}s converted with jcodec's BT.601 YUV→RGB.
 *
 * <p>Decoding is sequential within a group of pictures and seeks (to the keyframe before a frame, then decoding up
 * to it) whenever a keyframe lies between the current position and the next frame wanted, so sampling a few frames
 * of a long video decodes about one group of pictures per frame, not the whole file. The frame taken for a time t is
 * the picture showing at t by the timestamps (B-frames come out of the decoder out of display order; variable frame
 * rates work); only where to seek assumes a constant rate.
 *
 * <p>Not thread-safe; close it to release the file.
 */
public final class Video implements AutoCloseable {
    /** Summary of the video track. */
    public record Info(int width, int height, int frames, double durationSeconds) {
        public double fps() { return durationSeconds > 0 ? frames / durationSeconds : 0; }
    }

    /** Called after each decoded frame: how many of the plan's frames are done, and the time reached. */
    public interface Progress {
        void frame(int done, int total, double seconds);
    }

    static {
        // jcodec's own logger prints to standard output when no sink is set, where `kimivl run` streams its answer:
        // its warnings and errors (it passes on no lower level by default) go to stderr instead
        org.jcodec.common.logging.Logger.addSink(m -> {
            if (m.getLevel().ordinal() >= org.jcodec.common.logging.LogLevel.WARN.ordinal()) {
                String text = m.getMessage();
                if (m.getArgs() != null && m.getArgs().length > 0) {
                    try { text = String.format(text, m.getArgs()); } catch (RuntimeException ignored) { /* the bare message */ }
                }
                System.err.println("jcodec: " + m.getLevel() + ": " + text);
            }
        });
    }

    private final String name;          // the file, or what the caller calls the bytes: in every message
    private final String shortName;     // the file name alone: in frame names
    private final SeekableByteChannel channel;
    private java.util.function.Supplier<Video> reopen;   // another reader of the same source (parallel decoding)
    private final FrameGrab grab;
    private final Info info;
    private final int[] keyframes;     // ascending frame indices of the sync samples (empty: every frame is one)
    private double lastPts = Double.NEGATIVE_INFINITY;   // latest timestamp decoded since the last seek
    /** H.264 reorders at most 16 pictures: after this many later ones, no earlier picture can still come. */
    private static final int MAX_REORDER = 32;

    private Video(String name, String shortName, SeekableByteChannel channel, FrameGrab grab, Info info, int[] keyframes) {
        this.name = name;
        this.shortName = shortName;
        this.channel = channel;
        this.grab = grab;
        this.info = info;
        this.keyframes = keyframes;
    }

    /**
     * Opens a video and reads its track header.
     *
     * @param maxPixels refuse frames larger than this many pixels before decoding any (as for images)
     */
    public static Video open(Path file, long maxPixels) {
        if (!Files.isRegularFile(file)) throw new MediaException(file + ": no such video file");
        FileChannelWrapper ch;
        try {
            ch = NIOUtils.readableChannel(file.toFile());
        } catch (IOException e) {
            throw new MediaException(file + ": cannot open: " + describe(e), e);
        }
        Video v = open(ch, file.toString(), file.getFileName().toString(), maxPixels);
        v.reopen = () -> open(file, maxPixels);
        return v;
    }

    /** A video held in memory (e.g. a data: URL's bytes); {@code name} stands for it in messages. */
    public static Video open(byte[] data, String name, long maxPixels) {
        Video v = open(new ByteBufferSeekableByteChannel(ByteBuffer.wrap(data), data.length), name, name, maxPixels);
        v.reopen = () -> open(data, name, maxPixels);
        return v;
    }

    private static Video open(SeekableByteChannel ch, String name, String shortName, long maxPixels) {
        try {
            FrameGrab g = FrameGrab.createFrameGrab(ch);
            DemuxerTrackMeta meta = g.getVideoTrack().getMeta();
            VideoCodecMeta vm = meta.getVideoCodecMeta();
            if (vm == null || vm.getSize() == null) throw new MediaException(name + ": the video track gives no frame size");
            int w = vm.getSize().getWidth(), h = vm.getSize().getHeight();
            if ((long) w * h > maxPixels) {
                throw new MediaException(name + ": video frames are " + w + "x" + h + " = " + (long) w * h + " pixels, more than the limit of " + maxPixels);
            }
            if (meta.getTotalFrames() < 1) throw new MediaException(name + ": the video track has no frames");
            int[] keys = meta.getSeekFrames() == null ? new int[0] : meta.getSeekFrames().clone();
            Arrays.sort(keys);
            return new Video(name, shortName, ch, g, new Info(w, h, meta.getTotalFrames(), meta.getTotalDuration()), keys);
        } catch (MediaException e) {
            NIOUtils.closeQuietly(ch);
            throw e;
        } catch (IOException | JCodecException | RuntimeException e) {
            NIOUtils.closeQuietly(ch);
            throw new MediaException(name + ": not a video this build can read (MP4/MOV with H.264 video): " + describe(e), e);
        }
    }

    public Info info() { return info; }

    /** The file, or the name given to in-memory bytes. */
    public String name() { return name; }

    /**
     * Decodes the planned frames, in order, each passed through {@code perFrame} at once (resize it there, so only
     * the small copies are kept).
     */
    public List<LoadedImage> frames(FrameSampling.Plan plan, UnaryOperator<LoadedImage> perFrame, Progress progress) {
        int n = plan.size();
        Slots slots = new Slots(plan.seconds());
        LoadedImage[] out = new LoadedImage[n];
        for (int i = 0; i < n; i++) {
            if (!slots.done[i]) decodeFor(i, plan.frames()[i], slots);
            LoadedImage full = slots.best[i];
            String label = shortName + " frame at " + Timestamps.format(plan.seconds()[i]);
            out[i] = perFrame.apply(LoadedImage.of(label, full.width(), full.height(), full.mode(), full.pixels()));
            slots.best[i] = null;                               // only the resized copy stays
            if (progress != null) progress.frame(i + 1, n, plan.seconds()[i]);
        }
        return List.of(out);
    }

    /**
     * {@link #frames(FrameSampling.Plan, UnaryOperator, Progress)} on {@code threads} threads: the plan is cut into
     * that many runs of consecutive frames, each decoded by its own reader of the same source (jcodec decodes on one
     * thread). Same frames, same order; progress counts frames as they finish. {@code perFrame} and
     * {@code progress} must be thread-safe (progress is called under a lock).
     */
    public List<LoadedImage> frames(FrameSampling.Plan plan, UnaryOperator<LoadedImage> perFrame, Progress progress, int threads) {
        int n = plan.size(), parts = Math.max(1, Math.min(threads, n / 2));    // at least two frames a run
        if (parts == 1 || reopen == null) return frames(plan, perFrame, progress);
        Object lock = new Object();
        int[] done = {0};
        Progress shared = progress == null ? null : (d, total, seconds) -> {
            synchronized (lock) { progress.frame(++done[0], n, seconds); }
        };
        List<java.util.concurrent.Future<List<LoadedImage>>> runs = new ArrayList<>();
        var pool = java.util.concurrent.Executors.newFixedThreadPool(parts - 1, r -> {
            Thread t = new Thread(r, "kimivl-video-decode");
            t.setDaemon(true);
            return t;
        });
        try {
            for (int k = 1; k < parts; k++) {
                FrameSampling.Plan sub = slice(plan, k * n / parts, (k + 1) * n / parts);
                runs.add(pool.submit(() -> {
                    try (Video other = reopen.get()) {
                        return other.frames(sub, perFrame, shared);
                    }
                }));
            }
            List<LoadedImage> out = new ArrayList<>(frames(slice(plan, 0, n / parts), perFrame, shared));
            for (var r : runs) out.addAll(r.get());
            return List.copyOf(out);
        } catch (java.util.concurrent.ExecutionException e) {
            if (e.getCause() instanceof RuntimeException re) throw re;
            throw new MediaException(name + ": " + e.getCause(), e.getCause());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new MediaException(name + ": interrupted while decoding", e);
        } finally {
            pool.shutdownNow();
        }
    }

    private static FrameSampling.Plan slice(FrameSampling.Plan p, int from, int to) {
        return new FrameSampling.Plan(Arrays.copyOfRange(p.frames(), from, to), Arrays.copyOfRange(p.seconds(), from, to), to - from, false);
    }

    /** Frame {@code index} (0-based, display order; at a constant rate) as RGB, at full size. */
    LoadedImage frame(int index) {
        double t = info.frames() > 0 ? index * info.durationSeconds() / info.frames() : 0;
        return frames(new FrameSampling.Plan(new int[]{index}, new double[]{t}, 1, false), im -> im, null).getFirst();
    }

    /**
     * The pictures chosen so far for each planned time: the picture showing at time t is the one with the largest
     * timestamp ≤ t; it is certain once its timestamp + duration passes t (the next picture starts after t).
     */
    private static final class Slots {
        final double[] t;
        final LoadedImage[] best;      // full-size RGB of the best picture so far (null: none yet)
        final double[] bestPts;
        final boolean[] done;

        Slots(double[] t) {
            this.t = t;
            best = new LoadedImage[t.length];
            bestPts = new double[t.length];
            Arrays.fill(bestPts, Double.NEGATIVE_INFINITY);
            done = new boolean[t.length];
        }
    }

    /** Timestamps within this many seconds count as equal (MP4 time bases are integers; seconds are doubles). */
    private static final double EPS = 1e-6;

    /**
     * Decodes until the picture showing at slot {@code i}'s time is certain, seeking first (to the keyframe before
     * the frame that would show then at a constant rate) when a keyframe lies ahead or the time is behind us.
     *
     * <p>jcodec returns pictures in decode order, which with B-frames is not display order, so pictures are placed
     * by their timestamps, not their order; pictures met on the way that show at later planned times are kept for
     * those slots. Each candidate is converted to RGB before the next picture is decoded (jcodec may reuse
     * buffers). Variable-frame-rate videos work too: a time between two pictures gets the earlier one.
     */
    private void decodeFor(int i, int guess, Slots slots) {
        double target = slots.t[i];
        try {
            boolean seeked = false;
            int seekedTo = -1;
            if (target < lastPts - EPS || keyframeIn((int) grab.getVideoTrack().getCurFrame() + 1, guess)) {
                seekedTo = keyframeAtOrBefore(guess);
                seek(seekedTo);
                seeked = true;
            }
            int beyond = 0;                                     // pictures decoded that show after the target
            LoadedImage after = null;                           // the earliest of them, in case none shows before
            double afterPts = Double.POSITIVE_INFINITY;
            while (!slots.done[i]) {
                PictureWithMetadata pm = grab.getNativeFrameWithMetadata();
                if (pm == null) {                               // end of the video: the last picture shows till the end
                    for (int s = i; s < slots.t.length; s++) if (slots.best[s] != null) slots.done[s] = true;
                    if (slots.best[i] == null) slots.best[i] = require(after, target);
                    slots.done[i] = true;
                    break;
                }
                double pts = pm.getTimestamp(), dur = pm.getDuration();
                lastPts = Math.max(lastPts, pts);
                if (seeked && pts > target + EPS && seekedTo > 0 && slots.best[i] == null && beyond == 0) {
                    // a variable frame rate put the guess after the target: start from the keyframe before
                    seekedTo = keyframeAtOrBefore(seekedTo - 1);
                    seek(seekedTo);
                    continue;
                }
                seeked = false;
                LoadedImage rgb = null;
                for (int s = i; s < slots.t.length; s++) {
                    if (pts > slots.t[s] + EPS) continue;           // shows only after t[s]
                    if (dur > 0 && pts + dur + EPS < slots.t[s]) break;   // over before t[s], and later slots are later
                    if (slots.done[s] || pts <= slots.bestPts[s]) continue;
                    if (rgb == null) rgb = toRgb(pm.getPicture(), shortName);
                    slots.best[s] = rgb;
                    slots.bestPts[s] = pts;
                    if (dur <= 0 || pts + dur > slots.t[s] + EPS) slots.done[s] = true;
                }
                if (pts > target + EPS) {
                    if (pts < afterPts) { after = toRgb(pm.getPicture(), shortName); afterPts = pts; }
                    if (++beyond > MAX_REORDER) {               // reordering is over: what we have is what shows
                        if (slots.best[i] == null) slots.best[i] = require(after, target);
                        slots.done[i] = true;
                    }
                }
            }
        } catch (IOException | RuntimeException e) {
            if (e instanceof MediaException me) throw me;
            throw new MediaException(name + ": cannot decode the frame at " + Timestamps.format(target) + ": " + describe(e), e);
        } catch (JCodecException e) {
            throw new MediaException(name + ": cannot seek to the frame at " + Timestamps.format(target) + ": " + describe(e), e);
        }
    }

    private void seek(int keyframe) throws IOException, JCodecException {
        grab.seekToFrameSloppy(keyframe);
        lastPts = Double.NEGATIVE_INFINITY;
    }

    private LoadedImage require(LoadedImage picture, double t) {
        if (picture == null) throw new MediaException(name + ": no picture of the video shows at " + Timestamps.format(t) + " (" + t + " s)");
        return picture;
    }

    /** Whether a keyframe has an index in [from, to]. */
    private boolean keyframeIn(int from, int to) {
        if (from > to) return false;
        int i = Arrays.binarySearch(keyframes, from);
        if (i < 0) i = -i - 1;
        return i < keyframes.length && keyframes[i] <= to;
    }

    /** The last keyframe at or before frame {@code f} (0 when the track lists none). */
    private int keyframeAtOrBefore(int f) {
        int i = Arrays.binarySearch(keyframes, f);
        if (i >= 0) return keyframes[i];
        i = -i - 2;
        return i >= 0 ? keyframes[i] : 0;
    }

    /** jcodec's picture (any YUV layout it decodes to) as an RGB image of its display (cropped) size. */
    static LoadedImage toRgb(Picture pic, String name) {
        Picture rgb = Picture.create(pic.getWidth(), pic.getHeight(), ColorSpace.RGB);
        if (pic.getColor() == ColorSpace.RGB) rgb = pic;
        else ColorUtil.getTransform(pic.getColor(), ColorSpace.RGB).transform(pic, rgb);
        // jcodec keeps 8-bit samples as signed bytes offset by 128, interleaved R, G, B over the coded size
        // (macroblock-aligned, e.g. 1088 rows for 1080p); the crop is the displayed window
        int cw = pic.getCroppedWidth(), chh = pic.getCroppedHeight(), x0 = pic.getStartX(), y0 = pic.getStartY();
        int stride = rgb.getPlaneWidth(0) * 3;
        byte[] src = rgb.getPlaneData(0), px = new byte[Math.multiplyExact(cw * chh, 3)];
        for (int y = 0; y < chh; y++) {
            int s = (y0 + y) * stride + x0 * 3, d = y * cw * 3;
            for (int k = 0; k < cw * 3; k++) px[d + k] = (byte) (src[s + k] + 128);
        }
        return LoadedImage.of(name, cw, chh, dev.kimivl.vision.ImageMode.RGB, px);
    }

    private static String describe(Throwable e) {
        String m = e.getMessage();
        return m == null || m.isBlank() ? e.getClass().getSimpleName() : m;
    }

    @Override
    public void close() { NIOUtils.closeQuietly(channel); }
}
