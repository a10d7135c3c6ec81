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
import java.util.HashMap;
import java.util.Map;
import java.util.List;
import java.util.function.UnaryOperator;

/**
 * A video file read with jcodec (pure Java: MP4/MOV containers with H.264 video, 8-bit 4:2:0 as cameras and
 * encoders write it). Frames come out as RGB {@link LoadedImage}s converted with jcodec's BT.601 YUV→RGB.
 *
 * <p>Decoding is sequential within a group of pictures and seeks (to the keyframe before a frame, then decoding up
 * to it) whenever a keyframe lies between the current position and the next frame wanted, so sampling a few frames
 * of a long video decodes about one group of pictures per frame, not the whole file. Frames are identified by their
 * timestamps (B-frames come out of the decoder out of display order), assuming a constant frame rate.
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

    private final String name;          // the file, or what the caller calls the bytes: in every message
    private final String shortName;     // the file name alone: in frame names
    private final SeekableByteChannel channel;
    private final FrameGrab grab;
    private final Info info;
    private final int[] keyframes;     // ascending frame indices of the sync samples (empty: every frame is one)
    private int furthest = -1;         // highest display index decoded since the last seek (-1: none yet)
    /** H.264 reorders at most 16 pictures: past target + this, the frame is not in the stream. */
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
        return open(ch, file.toString(), file.getFileName().toString(), maxPixels);
    }

    /** A video held in memory (e.g. a data: URL's bytes); {@code name} stands for it in messages. */
    public static Video open(byte[] data, String name, long maxPixels) {
        return open(new ByteBufferSeekableByteChannel(ByteBuffer.wrap(data), data.length), name, name, maxPixels);
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
        LoadedImage[] out = new LoadedImage[n];
        Map<Integer, Integer> slot = new HashMap<>();           // frame index → position in the plan
        for (int i = 0; i < n; i++) slot.put(plan.frames()[i], i);
        int[] done = {0};
        for (int i = 0; i < n; i++) {
            if (out[i] != null) continue;                       // already decoded on the way to an earlier one (B-frames)
            int target = plan.frames()[i];
            decodeUntil(target, (index, pic) -> {
                Integer s = slot.get(index);
                if (s == null || out[s] != null) return false;
                String name = shortName + " frame " + index + " (" + Timestamps.format(plan.seconds()[s]) + ")";
                out[s] = perFrame.apply(toRgb(pic, name));
                if (progress != null) progress.frame(++done[0], n, plan.seconds()[s]);
                return index == target;
            });
        }
        return List.of(out);
    }

    /** Frame {@code target} (0-based, display order) as RGB, at full size. */
    LoadedImage frame(int target) {
        LoadedImage[] got = new LoadedImage[1];
        decodeUntil(target, (index, pic) -> {
            if (index != target) return false;
            got[0] = toRgb(pic, shortName + " frame " + target);
            return true;
        });
        return got[0];
    }

    /** Sees each decoded picture with its display index; true once the one wanted has been taken. */
    private interface Sink {
        boolean take(int index, Picture pic);
    }

    /**
     * Decodes forward (seeking first when that skips work or the frame is behind us) until {@code sink} has taken
     * frame {@code target}. jcodec returns pictures in decode order, which with B-frames is not display order, so
     * each picture's display index comes from its timestamp, and pictures of other wanted frames met on the way are
     * given to the sink as well; every picture is converted before the next is decoded (jcodec may reuse buffers).
     */
    private void decodeUntil(int target, Sink sink) {
        try {
            if (target <= furthest || keyframeIn(furthest + 2, target)) {
                int k = keyframeAtOrBefore(target);
                grab.seekToFrameSloppy(k);
                furthest = k - 1;
            }
            while (true) {
                PictureWithMetadata pm = grab.getNativeFrameWithMetadata();
                if (pm == null) {
                    throw new MediaException(name + ": the video ends before frame " + target + " of the " + info.frames() + " its header lists");
                }
                int index = (int) Math.min(info.frames() - 1, Math.max(0, Math.round(pm.getTimestamp() * info.fps())));
                furthest = Math.max(furthest, index);
                if (sink.take(index, pm.getPicture())) return;
                if (index > target + MAX_REORDER) {
                    throw new MediaException(name + ": no picture has the timestamp of frame " + target + " (decoding reached frame " + index + ")");
                }
            }
        } catch (IOException | RuntimeException e) {
            if (e instanceof MediaException me) throw me;
            throw new MediaException(name + ": cannot decode frame " + target + ": " + describe(e), e);
        } catch (JCodecException e) {
            throw new MediaException(name + ": cannot seek to frame " + target + ": " + describe(e), e);
        }
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
