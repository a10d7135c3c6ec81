package dev.kimivl.cli;

import dev.kimivl.media.FrameSampling;
import dev.kimivl.media.MediaMessages;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;

import java.nio.file.Path;

/**
 * The long-input options of `kimivl run` (docs/long-inputs.md): a video sampled to frames and a PDF rendered to
 * pages, each frame and page an image block of the user message. Checked before the model loads.
 */
final class MediaOptions {
    /** Below this many image tokens (a 112x112 picture) a frame shows too little to be worth its place. */
    static final int MIN_FRAME_TOKENS = MediaMessages.MIN_FRAME_TOKENS;

    @Option(names = "--video", paramLabel = "FILE", description = "A video (MP4/MOV, H.264) sampled to frames, each an image block after the images and pages, before the text.")
    Path video;

    @Option(names = "--frames", paramLabel = "N", description = "Take N frames spread evenly over the video (instead of --fps).")
    Integer frames;

    @Option(names = "--fps", paramLabel = "F", description = "Take F frames per second (default when --frames is not given: 1); more than --max-frames are spread evenly over the whole video instead.")
    Double fps;

    @Option(names = "--max-frames", paramLabel = "N", defaultValue = "64", description = "At most N frames (default: ${DEFAULT-VALUE}).")
    int maxFrames;

    @Option(names = "--frame-tokens", paramLabel = "N", defaultValue = "256", description = "Image tokens per frame at most (default: ${DEFAULT-VALUE}); lowered, with a note, when the frames would not fit the context otherwise.")
    int frameTokens;

    @Option(names = "--timestamps", negatable = true, defaultValue = "true", fallbackValue = "true",
            description = "Put 'Frame at mm:ss:' before each frame (default: on; --no-timestamps leaves the frames unlabelled).")
    boolean timestamps;

    @Option(names = "--pdf", paramLabel = "FILE", description = "A PDF document, each page an image block (after the images, before the video).")
    Path pdf;

    @Option(names = "--pages", paramLabel = "LIST", description = "Pages of the PDF to take, e.g. 3, 2-5, 1,4,7- (default: all). Pages that do not fit the context are an error, never cut.")
    String pages;

    @Option(names = "--dpi", paramLabel = "D", defaultValue = "144", description = "Resolution the PDF pages are rendered at (default: ${DEFAULT-VALUE}).")
    float dpi;

    @Option(names = "--page-tokens", paramLabel = "N", description = "Shrink each page to at most N image tokens (default: as rendered, up to the processor's in_token_limit).")
    Integer pageTokens;

    boolean any() { return video != null || pdf != null; }

    /** Usage errors, before any file is opened or the model loaded. */
    void check(CommandSpec spec) {
        if (video == null && (frames != null || fps != null)) throw Errors.usage(spec, (frames != null ? "--frames" : "--fps") + " needs --video FILE");
        if (pdf == null && (pages != null || pageTokens != null)) throw Errors.usage(spec, (pages != null ? "--pages" : "--page-tokens") + " needs --pdf FILE");
        if (frames != null && fps != null) throw Errors.usage(spec, "give --frames N or --fps F, not both");
        if (maxFrames < 1) throw Errors.usage(spec, "--max-frames must be at least 1, not " + maxFrames);
        if (frames != null && frames < 1) throw Errors.usage(spec, "--frames must be at least 1, not " + frames);
        if (frames != null && frames > maxFrames) throw Errors.usage(spec, "--frames " + frames + " is more than --max-frames " + maxFrames);
        if (fps != null && !(fps > 0 && Double.isFinite(fps))) throw Errors.usage(spec, "--fps must be a positive number, not " + fps);
        if (frameTokens < MIN_FRAME_TOKENS) throw Errors.usage(spec, "--frame-tokens must be at least " + MIN_FRAME_TOKENS + ", not " + frameTokens);
        if (!(dpi >= 1 && dpi <= 1200)) throw Errors.usage(spec, "--dpi must be between 1 and 1200, not " + dpi);
        if (pageTokens != null && pageTokens < 1) throw Errors.usage(spec, "--page-tokens must be at least 1, not " + pageTokens);
    }

    /** The files exist: checked before the model loads, as -i images are read before it. */
    void checkFiles() {
        if (video != null && !java.nio.file.Files.isRegularFile(video)) throw new IllegalArgumentException("--video " + video + ": no such file");
        if (pdf != null && !java.nio.file.Files.isRegularFile(pdf)) throw new IllegalArgumentException("--pdf " + pdf + ": no such file");
    }

    /** The PDF's pages, then the video's frames, as kimivl-media items (none without --pdf/--video). */
    java.util.List<MediaMessages.Item> items() {
        java.util.List<MediaMessages.Item> items = new java.util.ArrayList<>();
        if (pdf != null) items.add(new MediaMessages.Pdf(MediaMessages.Source.of(pdf), pages, dpi, pageTokens));
        if (video != null) items.add(new MediaMessages.Clip(MediaMessages.Source.of(video), sampling(), frameTokens, timestamps));
        return items;
    }

    FrameSampling sampling() {
        return frames != null ? FrameSampling.frames(frames, maxFrames) : FrameSampling.perSecond(fps != null ? fps : 1.0, maxFrames);
    }
}
