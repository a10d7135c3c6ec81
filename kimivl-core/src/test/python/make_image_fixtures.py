#!/usr/bin/env python3
"""Makes the image-decoding fixtures of dev.kimivl.vision.ImageLoaderTest (run once, output committed).

Run with a Python that has Pillow 9.4 (Debian's /usr/bin/python3 after `apt-get install python3-pil`):
    /usr/bin/python3 kimivl-core/src/test/python/make_image_fixtures.py kimivl-core/src/test/resources/images

For every fixture image it records what the reference processor sees (KimiVLImageProcessor opens with PIL,
resizes in the image's own mode, then convert("RGB")):
  <name>.rgb          raw uint8 RGB of Image.open(f).convert("RGB")                 [h, w, 3]
  <name>.resized.rgb  raw uint8 RGB of Image.open(f).resize((rw, rh), BICUBIC).convert("RGB")
and manifest.json lists {file, mode, width, height, rw, rh, exact} (exact=false: lossy WebP, where the Java
decoder is compared with a tolerance). Not run by the tests.
"""
import io, json, os, struct, sys, zlib
import numpy as np
from PIL import Image, __version__ as pil_version

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(1234)
W, H = 48, 36


def smooth_rgb(w=W, h=H):
    y, x = np.mgrid[0:h, 0:w]
    r = (x * 255 // (w - 1))
    g = (y * 255 // (h - 1))
    b = ((x + y) * 7) % 256
    img = np.stack([r, g, b], -1).astype(np.int32)
    img[8:20, 10:30] = [250, 30, 40]                      # a sharp-edged rectangle (ringing in bicubic)
    img += rng.integers(-12, 13, img.shape)               # noise so rounding is exercised
    return np.clip(img, 0, 255).astype(np.uint8)


def alpha_ramp(w=W, h=H):
    y, x = np.mgrid[0:h, 0:w]
    a = (x * 255 // (w - 1)).astype(np.uint8)
    a[:, :5] = 0                                          # fully transparent columns: colours must survive
    a[h // 2:, w - 6:] = 255
    return a


def png_raw(path, arr, color_type, bitdepth):
    """Minimal PNG writer (PIL cannot write 16-bit RGB)."""
    h, w = arr.shape[:2]
    if bitdepth == 16:
        rows = arr.astype('>u2').reshape(h, -1).tobytes()
        stride = arr.reshape(h, -1).shape[1] * 2
    else:
        rows = arr.astype(np.uint8).reshape(h, -1).tobytes()
        stride = arr.reshape(h, -1).shape[1]
    raw = b''.join(b'\x00' + rows[i * stride:(i + 1) * stride] for i in range(h))

    def chunk(t, d):
        return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d) & 0xffffffff)
    data = b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, bitdepth, color_type, 0, 0, 0)) \
        + chunk(b'IDAT', zlib.compress(raw, 9)) + chunk(b'IEND', b'')
    with open(path, 'wb') as f:
        f.write(data)


rgb = smooth_rgb()
a = alpha_ramp()
files = {}

Image.fromarray(rgb, 'RGB').save(f'{out}/rgb.png')
Image.fromarray(np.dstack([rgb, a]), 'RGBA').save(f'{out}/rgba.png')
gray = np.asarray(Image.fromarray(rgb).convert('L'))
Image.fromarray(gray, 'L').save(f'{out}/l.png')
Image.fromarray(np.dstack([gray, a]), 'LA').save(f'{out}/la.png')
pal = Image.fromarray(rgb).quantize(colors=37, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
pal.save(f'{out}/p.png')
pal_t = pal.copy(); pal_t.info['transparency'] = 3
pal_t.save(f'{out}/p_trns.png', transparency=3)
Image.fromarray(gray).convert('1').save(f'{out}/one.png')
png_raw(f'{out}/rgb16.png', (rgb.astype(np.uint16) * 257 + rng.integers(0, 257, rgb.shape)).astype(np.uint16), 2, 16)
png_raw(f'{out}/rgba16.png', np.dstack([rgb, a]).astype(np.uint16) * 257, 6, 16)
g16 = (gray.astype(np.uint16) * 3)                      # values above 255: PIL clips them in convert("RGB")
png_raw(f'{out}/gray16.png', g16, 0, 16)
png_raw(f'{out}/gray4.png', (gray >> 4).astype(np.uint8), 0, 8)  # placeholder, rewritten below as 4-bit
# 4-bit greyscale: PIL opens it as mode L (values scaled ×17)
def pack4(arr):
    h, w = arr.shape
    rows = []
    for yy in range(h):
        r = arr[yy]
        if w % 2: r = np.append(r, 0)
        rows.append(((r[0::2] << 4) | r[1::2]).astype(np.uint8))
    return np.stack(rows)
g4 = (gray >> 4).astype(np.uint8)
def png_packed(path, packed, w, h, color_type, bitdepth):
    raw = b''.join(b'\x00' + packed[i].tobytes() for i in range(h))
    def chunk(t, d):
        return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d) & 0xffffffff)
    data = b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, bitdepth, color_type, 0, 0, 0)) \
        + chunk(b'IDAT', zlib.compress(raw, 9)) + chunk(b'IEND', b'')
    open(path, 'wb').write(data)
png_packed(f'{out}/gray4.png', pack4(g4), W, H, 0, 4)

Image.fromarray(rgb).save(f'{out}/rgb420.jpg', quality=90)
Image.fromarray(rgb).save(f'{out}/rgb444.jpg', quality=95, subsampling=0)
Image.fromarray(gray).save(f'{out}/gray.jpg', quality=90)
Image.fromarray(rgb).convert('CMYK').save(f'{out}/cmyk.jpg', quality=95)
Image.fromarray(rgb).save(f'{out}/lossless.webp', lossless=True)
Image.fromarray(np.dstack([rgb, a]), 'RGBA').save(f'{out}/rgba_lossless.webp', lossless=True)
Image.fromarray(rgb).save(f'{out}/lossy.webp', quality=90)
frame2 = Image.fromarray(255 - rgb).quantize(colors=16)
pal.save(f'{out}/anim.gif', save_all=True, append_images=[frame2], duration=100, loop=0)
Image.fromarray(rgb).save(f'{out}/rgb.bmp')
pal.save(f'{out}/p.bmp')
Image.fromarray(gray).save(f'{out}/l.bmp')

manifest = []
for name in ['rgb.png', 'rgba.png', 'l.png', 'la.png', 'p.png', 'p_trns.png', 'one.png', 'rgb16.png', 'rgba16.png',
             'gray16.png', 'gray4.png', 'rgb420.jpg', 'rgb444.jpg', 'gray.jpg', 'cmyk.jpg', 'lossless.webp',
             'rgba_lossless.webp', 'lossy.webp', 'anim.gif', 'rgb.bmp', 'p.bmp', 'l.bmp']:
    im = Image.open(f'{out}/{name}')
    mode, (w, h) = im.mode, im.size
    rw, rh = 26, 19                                       # a downscale: every resize rule runs
    np.asarray(im.convert('RGB')).tofile(f'{out}/{name}.rgb')
    im2 = Image.open(f'{out}/{name}')
    np.asarray(im2.resize((rw, rh), Image.Resampling.BICUBIC).convert('RGB')).tofile(f'{out}/{name}.resized.rgb')
    manifest.append(dict(file=name, mode=mode, width=w, height=h, rw=rw, rh=rh, exact=(name != 'lossy.webp')))
    print(name, mode, w, h)
json.dump(dict(pillow=pil_version, images=manifest), open(f'{out}/manifest.json', 'w'), indent=1)
