package dev.kimivl.vision;

/**
 * The PIL mode an image has when the reference processor opens it. The mode matters because HF resizes
 * <em>before</em> {@code convert("RGB")}, so the resampling rule depends on it (spec §3.1).
 * {@link LoadedImage} stores samples interleaved, {@link #channels} per pixel.
 */
public enum ImageMode {
    /** 1-bit bilevel, stored as 0/255 in one channel. PIL resizes it with NEAREST. */
    ONE("1", 1),
    /** 8-bit greyscale. */
    L("L", 1),
    /** Greyscale + alpha. Resized premultiplied; alpha is dropped (not composited) by convert("RGB"). */
    LA("LA", 2),
    /** Palette image, stored already expanded to RGB through the palette (transparency is ignored, as convert("RGB") does). NEAREST resize. */
    P("P", 3),
    RGB("RGB", 3),
    /** Resized premultiplied; alpha dropped by convert("RGB"). */
    RGBA("RGBA", 4),
    /** JPEG CMYK (PIL's "CMYK", already un-inverted for Adobe files). */
    CMYK("CMYK", 4),
    /** 16-bit greyscale PNG: PIL's 32-bit integer mode "I". Stored in {@link LoadedImage#wide()}; convert("RGB") clips to 0..255. */
    I("I", 1);

    /** The PIL mode name ("RGB", "P", ...). */
    public final String pilName;
    public final int channels;

    ImageMode(String pilName, int channels) {
        this.pilName = pilName;
        this.channels = channels;
    }

    /** PIL forces NEAREST for these modes whatever filter is asked for. */
    public boolean nearestOnly() { return this == ONE || this == P; }

    /** Modes with an alpha channel that PIL resizes in premultiplied form (RGBa / La). */
    public boolean premultipliedResize() { return this == RGBA || this == LA; }
}
