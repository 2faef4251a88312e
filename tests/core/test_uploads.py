"""Uploads in every format and mode a user may hand Draw or the CLI: each is either the right digit or a
clear `ImageError`, and nothing is decoded before the size checks.

"Right digit" cases take real MNIST test digits, enlarge them to a photo-like size, encode them in the
format under test (16-bit and 12-bit PNG/TIFF, 32-bit and float TIFF, EXIF-rotated PNG and JPEG,
palette with a transparent index, grey+alpha, CMYK JPEG, 1-bit, LAB, ...), and compare the model input
`preprocess` makes from the file with the one it makes from the plain 8-bit PNG of the same picture.
Hostile cases are crafted headers: a few dozen bytes that declare a gigantic picture.
"""

from __future__ import annotations

import functools
import io
import json
import struct
import subprocess
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mnist_core.preprocess import MAX_ASPECT, ImageError, load_image, preprocess, to_ink

ROOT = Path(__file__).resolve().parents[2]


# --- encoders ------------------------------------------------------------------------------------
def encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def enlarged(img28: np.ndarray, size: tuple[int, int] = (180, 150)) -> np.ndarray:
    """A real MNIST digit as an 8-bit white-on-black picture of `size` (height, width): the digit in the
    middle, some margin around it, not square (so a wrong rotation shows)."""
    h, w = size
    digit = np.asarray(Image.fromarray(img28).resize((120, 120), Image.Resampling.BILINEAR))
    out = np.zeros((h, w), np.uint8)
    out[(h - 120) // 2:(h - 120) // 2 + 120, (w - 120) // 2:(w - 120) // 2 + 120] = digit
    return out


def model_input(data: bytes, name: str = "upload") -> np.ndarray:
    pre = preprocess(load_image(data, name))
    assert not pre.blank, f"{name} was read as blank"
    return pre.image


# Inverse of each EXIF orientation's fix: stored = INVERSE[o](upright), so exif_transpose gives upright.
INVERSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
           5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_90, 7: Image.Transpose.TRANSVERSE,
           8: Image.Transpose.ROTATE_270}


def with_orientation(a: np.ndarray, orientation: int, fmt: str) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored = Image.fromarray(a).transpose(INVERSE[orientation])
    return encode(stored, fmt, exif=exif, **({"quality": 95} if fmt == "JPEG" else {}))


def palette_transparent(a: np.ndarray) -> bytes:
    """Dark ink on a transparent background, as a palette PNG: index i is grey 255 - i, index 0 (the
    background) is the transparent one."""
    im = Image.fromarray(a, mode="L").convert("P")  # identity palette first...
    im.putpalette([v for i in range(256) for v in (255 - i,) * 3])  # ...then grey levels inverted
    return encode(im, "PNG", transparency=0)


def tiff_pages(a: np.ndarray, n: int) -> bytes:
    pages = [Image.fromarray(a)] * n
    return encode(pages[0], "TIFF", save_all=True, append_images=pages[1:])


# Each case: (id, encoder from the 8-bit white-on-black picture to file bytes, how close the model input
# must be to the 8-bit PNG's: (max abs difference, mean abs difference), in [0, 1] pixel units).
EXACT, ROUNDING, LOSSY = (1e-6, 1e-7), (0.01, 0.001), (0.2, 0.01)
CASES = [
    ("png-16bit-full-range", lambda a: encode(Image.fromarray(a.astype(np.uint16) * 257), "PNG"), EXACT),
    ("png-16bit-12bit-values", lambda a: encode(Image.fromarray(
        np.round(a * (4095 / 255)).astype(np.uint16)), "PNG"), ROUNDING),
    ("png-16bit-dark-on-light", lambda a: encode(Image.fromarray(
        (65535 - a.astype(np.uint16) * 257).astype(np.uint16)), "PNG"), EXACT),
    ("png-16bit-8bit-values", lambda a: encode(Image.fromarray(a.astype(np.uint16)), "PNG"), EXACT),
    ("tiff-16bit", lambda a: encode(Image.fromarray(a.astype(np.uint16) * 257), "TIFF"), EXACT),
    ("tiff-16bit-12bit-dark-on-light", lambda a: encode(Image.fromarray(
        np.round(4095 - a * (4095 / 255)).astype(np.uint16)), "TIFF"), ROUNDING),
    ("tiff-32bit-int", lambda a: encode(Image.fromarray(a.astype(np.int32) * 65793), "TIFF"), ROUNDING),
    ("tiff-float-0-1", lambda a: encode(Image.fromarray(a.astype(np.float32) / 255), "TIFF"), ROUNDING),
    ("tiff-float-0-255", lambda a: encode(Image.fromarray(a.astype(np.float32)), "TIFF"), EXACT),
    ("tiff-lab", lambda a: encode(Image.merge("LAB", [Image.fromarray(a)] + [Image.new("L", a.shape[::-1], 128)] * 2),
                                  "TIFF"), EXACT),
    *[(f"png-exif-orientation-{o}", functools.partial(with_orientation, orientation=o, fmt="PNG"), EXACT)
      for o in range(2, 9)],
    ("jpeg-exif-orientation-6-phone", lambda a: with_orientation(np.dstack([a] * 3), 6, "JPEG"), LOSSY),
    ("jpeg-exif-orientation-8-phone", lambda a: with_orientation(np.dstack([a] * 3), 8, "JPEG"), LOSSY),
    ("png-palette-transparent-index", palette_transparent, ROUNDING),
    ("png-grey-alpha-dark-ink", lambda a: encode(Image.merge("LA", [Image.new("L", a.shape[::-1], 0),
                                                                    Image.fromarray(a)]), "PNG"), ROUNDING),
    ("png-rgba-rounded-transparent-corners", lambda a: encode(Image.fromarray(rounded_corners(a)), "PNG"), EXACT),
    ("jpeg-cmyk-black-ink", lambda a: encode(Image.merge("CMYK", [Image.new("L", a.shape[::-1], 0)] * 3
                                                         + [Image.fromarray(a)]), "JPEG", quality=95), LOSSY),
    ("jpeg-grey", lambda a: encode(Image.fromarray(a), "JPEG", quality=95), LOSSY),
    ("png-rgb-blue-ink-on-yellow", lambda a: encode(Image.fromarray(blue_on_yellow(a)), "PNG"), ROUNDING),
    ("webp-lossless", lambda a: encode(Image.fromarray(a).convert("RGB"), "WEBP", lossless=True), EXACT),
    ("bmp", lambda a: encode(Image.fromarray(a), "BMP"), EXACT),
    ("gif-single-frame", lambda a: encode(Image.fromarray(a), "GIF"), EXACT),
]


def rounded_corners(a: np.ndarray) -> np.ndarray:
    """Dark ink on opaque white paper whose corners are transparent (a screenshot's rounded corners)."""
    rgba = np.dstack([255 - a] * 3 + [np.full(a.shape, 255, np.uint8)])
    yy, xx = np.mgrid[:a.shape[0], :a.shape[1]]
    for cy, cx in ((0, 0), (0, a.shape[1] - 1), (a.shape[0] - 1, 0), (a.shape[0] - 1, a.shape[1] - 1)):
        rgba[..., 3][np.hypot(yy - cy, xx - cx) < 12] = 0
    return rgba


def blue_on_yellow(a: np.ndarray) -> np.ndarray:
    t = a.astype(np.float32)[..., None] / 255
    paper, ink = np.array([250, 230, 80], np.float32), np.array([20, 30, 160], np.float32)
    return np.round(paper * (1 - t) + ink * t).astype(np.uint8)


@pytest.fixture(scope="module")
def digits(mnist) -> list[tuple[np.ndarray, np.ndarray]]:
    """Three real test digits, each as the enlarged 8-bit picture and the model input of its PNG."""
    out = []
    for i in (0, 1, 2):  # a 7, a 2 and a 1
        a = enlarged(mnist.x_test[i])
        out.append((a, model_input(encode(Image.fromarray(a), "PNG"), f"test{i}.png")))
    return out


@pytest.mark.parametrize("case_id,make,tol", CASES, ids=[c[0] for c in CASES])
def test_right_digit(case_id, make, tol, digits):
    for a, reference in digits:
        got = model_input(make(a), case_id)
        diff = np.abs(got - reference)
        assert diff.max() <= tol[0] and diff.mean() <= tol[1], (case_id, float(diff.max()), float(diff.mean()))


def test_sixteen_bit_was_blank_before(digits):
    """The failure this guards against: a 16-bit scan (paper at 60000, the darkest ink at 8000, never
    near 0) clipped to 8 bits is all 255, blank; read by its range it is the digit."""
    a, reference = digits[0]
    im16 = Image.fromarray(np.round(60000 - a * (52000 / 255)).astype(np.uint16))
    clipped = np.asarray(im16.convert("L"))  # PIL's own conversion clips at 255
    assert preprocess(clipped).blank
    got = model_input(encode(im16, "PNG"))
    assert np.abs(got - reference).max() <= ROUNDING[0] and np.abs(got - reference).mean() <= ROUNDING[1]


def test_exif_orientation_read_sideways_without_the_fix(digits):
    a, reference = digits[0]
    stored = np.asarray(Image.open(io.BytesIO(with_orientation(a, 6, "PNG"))))
    assert stored.shape == a.shape[::-1]  # the file holds the picture sideways...
    assert np.abs(preprocess(stored).image - reference).mean() > 0.05
    assert load_image(with_orientation(a, 6, "PNG")).shape == a.shape  # ...load_image turns it upright


def test_float_tiff_with_nan_pixels(digits):
    a, reference = digits[0]
    f = a.astype(np.float32) / 255
    f[0, :5] = np.nan  # in the background
    np.testing.assert_allclose(model_input(encode(Image.fromarray(f), "TIFF")), reference, atol=0.02)


def test_damaged_exif_is_ignored(digits):
    a, reference = digits[0]
    data = bytearray(with_orientation(a, 6, "JPEG"))
    i = data.find(b"Exif\x00\x00")
    data[i + 6:i + 14] = b"\xff" * 8  # the TIFF header inside the EXIF block: garbage
    out = load_image(bytes(data), "phone.jpg")  # the picture is still read (as stored)
    assert out.ndim == 2 and min(out.shape) > 100


def test_multi_page_tiff_refused(digits):
    with pytest.raises(ImageError, match=r"scan.tiff is animated or has several pages \(3 frames\)"):
        load_image(tiff_pages(digits[0][0], 3), "scan.tiff")


def test_transparency_rules_of_to_ink():
    """The canvas (light strokes on transparent), dark strokes on transparent and an opaque picture with
    transparent corners all give the same ink."""
    ink = np.zeros((40, 40), np.uint8)
    ink[10:30, 18:22] = 255
    light = np.dstack([np.full_like(ink, 255)] * 3 + [ink])
    dark = np.dstack([np.zeros_like(ink)] * 3 + [ink])
    expected = ink / 255
    np.testing.assert_allclose(to_ink(light), expected, atol=1e-6)
    np.testing.assert_allclose(to_ink(dark), expected, atol=1e-6)
    np.testing.assert_allclose(to_ink(rounded_corners(ink)), expected, atol=1e-6)


# --- aspect ratio ----------------------------------------------------------------------------------
@pytest.mark.parametrize("shape,word", [((9, 20000), "wide"), ((20000, 9), "tall"), ((40, 40 * MAX_ASPECT + 1), "wide")])
def test_extreme_aspect_refused(shape, word):
    with pytest.raises(ImageError, match=f"times as {word} as it is"):
        load_image(encode(Image.fromarray(np.zeros(shape, np.uint8)), "PNG"), "strip.png")


def test_aspect_at_the_limit_accepted():
    a = np.zeros((30, 30 * MAX_ASPECT), np.uint8)
    a[10:20, 100:110] = 255
    assert load_image(encode(Image.fromarray(a), "PNG")).shape == a.shape


# --- decompression bombs: crafted headers ----------------------------------------------------------
def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_header(w: int, h: int, depth: int = 8) -> bytes:
    """A valid PNG signature and IHDR for a w x h grey picture, a scrap of pixel data, IEND."""
    ihdr = struct.pack(">IIBBBBB", w, h, depth, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\0" * 1000))
            + _chunk(b"IEND", b""))


def gif_header(w: int, h: int) -> bytes:
    d = bytearray(encode(Image.new("L", (10, 10)), "GIF"))
    d[6:10] = struct.pack("<HH", w, h)  # logical screen
    i = d.index(b",")  # image descriptor
    d[i + 5:i + 9] = struct.pack("<HH", w, h)
    return bytes(d)


def bmp_header(w: int, h: int) -> bytes:
    d = bytearray(encode(Image.new("L", (10, 10)), "BMP"))
    d[18:26] = struct.pack("<ii", w, h)
    return bytes(d)


def tiff_header(w: int, h: int) -> bytes:
    d = bytearray(encode(Image.new("L", (10, 10)), "TIFF"))
    ifd = struct.unpack("<I", d[4:8])[0]
    for k in range(struct.unpack("<H", d[ifd:ifd + 2])[0]):
        e = ifd + 2 + 12 * k
        tag = struct.unpack("<H", d[e:e + 2])[0]
        if tag in (256, 257):  # ImageWidth, ImageLength, rewritten as LONGs
            d[e + 2:e + 12] = struct.pack("<HII", 4, 1, w if tag == 256 else h)
    return bytes(d)


def webp_header(w: int, h: int, kind: str) -> bytes:
    if kind == "extended":  # VP8X (animated): the canvas size is in the VP8X chunk
        frames = [Image.new("RGB", (10, 10), c) for c in ("white", "black")]
        d = bytearray(encode(frames[0], "WEBP", save_all=True, append_images=frames[1:]))
        assert d[12:16] == b"VP8X"
        d[24:30] = (w - 1).to_bytes(3, "little") + (h - 1).to_bytes(3, "little")
        return bytes(d)
    d = bytearray(encode(Image.new("RGB", (10, 10), "white"), "WEBP", lossless=kind == "lossless"))
    if kind == "lossy":
        assert d[12:16] == b"VP8 "
        d[26:30] = struct.pack("<HH", w, h)
    else:
        assert d[12:16] == b"VP8L"
        bits = struct.unpack("<I", d[21:25])[0] & ~((1 << 28) - 1)
        d[21:25] = struct.pack("<I", bits | (w - 1) | ((h - 1) << 14))
    return bytes(d)


BOMBS = {  # name -> (bytes, what the message must say)
    "png-256-megapixels.png": (png_header(16000, 16000), "declares 256,000,000 pixels"),
    "png-144-megapixels.png": (png_header(12000, 12000), "12000x12000 pixels"),  # PIL only warns here
    "png-16bit-36-megapixels.png": (png_header(6000, 6000, depth=16), "6000x6000 pixels"),
    "png-4-billion-pixels.png": (png_header(65535, 65535), "declares 4,294,836,225 pixels"),
    "gif-256-megapixels.gif": (gif_header(16000, 16000), "declares 256,000,000 pixels"),
    "gif-36-megapixels.gif": (gif_header(6000, 6000), "6000x6000 pixels"),
    "bmp-256-megapixels.bmp": (bmp_header(16000, 16000), "declares 256,000,000 pixels"),
    "bmp-36-megapixels.bmp": (bmp_header(6000, 6000), "6000x6000 pixels"),
    "tiff-256-megapixels.tiff": (tiff_header(16000, 16000), "declares 256,000,000 pixels"),
    "tiff-36-megapixels.tiff": (tiff_header(6000, 6000), "6000x6000 pixels"),
    "webp-lossy-144-megapixels.webp": (webp_header(12000, 12000, "lossy"), "12000x12000 pixels"),
    "webp-lossless-268-megapixels.webp": (webp_header(16383, 16383, "lossless"), "16383x16383 pixels"),
    "webp-extended-36-megapixels.webp": (webp_header(6000, 6000, "extended"), "6000x6000 pixels"),
}


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # PIL's own, at Image.open
@pytest.mark.parametrize("name", list(BOMBS))
def test_decompression_bomb_refused(name):
    data, expect = BOMBS[name]
    assert len(data) < 2000
    with pytest.raises(ImageError) as e:
        load_image(data, name)
    assert name in str(e.value) and expect in str(e.value) and "megapixels" in str(e.value), str(e.value)


@pytest.mark.parametrize("name", ["png-144-megapixels.png", "png-256-megapixels.png"])
def test_bomb_refused_where_warnings_are_errors(name):
    """Between PIL's two limits it only warns; where warnings are errors (python -W error) the warning
    is raised instead, and must still arrive as an ImageError."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ImageError, match="megapixels"):
            load_image(BOMBS[name][0], name)


MEASURE = r"""
import json, sys
from mnist_core.preprocess import ImageError, load_image

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024

files = json.loads(sys.stdin.read())
load_image(bytes.fromhex(files.pop("warm-up")), "warm-up")  # PIL's plugins imported, numpy warm
before = {k: status(k) for k in ("VmPeak:", "VmHWM:")}
messages = []
for name, hexdata in files.items():
    try:
        load_image(bytes.fromhex(hexdata), name)
        messages.append(name + ": accepted")
    except ImageError as e:
        messages.append(str(e))
after = {k: status(k) for k in ("VmPeak:", "VmHWM:")}
print(json.dumps({"before": before, "after": after, "messages": messages}))
"""


def test_bombs_allocate_nothing():
    """In a fresh process: refusing every crafted header grows neither the peak resident memory nor
    the peak virtual memory (libwebp reserved a full canvas at `Image.open` before PIL's check)."""
    files = {"warm-up": encode(Image.fromarray(np.full((64, 64), 9, np.uint8)), "PNG").hex()}
    files.update({name: data.hex() for name, (data, _) in BOMBS.items()})
    p = subprocess.run([sys.executable, "-c", MEASURE], input=json.dumps(files), capture_output=True, text=True,
                       cwd=ROOT, timeout=120)
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    assert len(r["messages"]) == len(BOMBS) and all("megapixels" in m for m in r["messages"]), r["messages"]
    growth = {k: (r["after"][k] - r["before"][k]) / 2**20 for k in r["before"]}
    print(f"\nrefusing {len(BOMBS)} crafted headers: peak RSS +{growth['VmHWM:']:.1f} MB, "
          f"peak virtual +{growth['VmPeak:']:.1f} MB")
    assert growth["VmHWM:"] < 20 and growth["VmPeak:"] < 50, growth
