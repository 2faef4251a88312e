"""Turning a drawn or uploaded picture of a digit into the model's 28x28 input, the way MNIST was made.

MNIST digits were size-normalised to fit a 20x20 box (keeping the aspect ratio, anti-aliased) and then
placed in a 28x28 field so that their centre of mass sits at the centre. `preprocess` does the same to
any image: find the ink (white-on-black or dark-on-light, or opaque strokes on a transparent canvas),
crop to it, fit the longest side to 20 px, centre by centre of mass, scale to [0, 1]. It keeps every
intermediate step for display, and reports a blank image as blank instead of classifying noise. The
"naive" method (just resize the whole picture to 28x28) exists to show why the MNIST recipe matters.
`load_image` reads untrusted upload bytes: every picture it cannot use becomes an `ImageError` whose
message says why (too big in bytes, pixels or aspect ratio before anything is decoded, animated or
multi-page, damaged, an unreadable colour mode), and every one it can use comes back upright (EXIF
orientation applied) as 8-bit grey or RGBA, with 16-bit and float pictures scaled by their real range.
"""

from __future__ import annotations

import io
import re
import struct
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageOps

MAX_UPLOAD_BYTES = 5 * 1024 * 1024
MAX_PIXELS = 25_000_000
MIN_SIDE = 8
# A picture of one digit is roughly square (MNIST's thinnest digits, 1s, fill about 1:5 of their box);
# 10:1 still lets a tightly cropped "1" through. Much longer strips are not one digit, and beyond 280:1
# they crash the page's 280 px-wide preview (st.image rounds the short side to 0 px).
MAX_ASPECT = 10
FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP", "TIFF")
BLANK_INK = 0.08  # strongest ink below this (in [0, 1]) counts as an empty picture
# Modes that hold more than 8 bits per pixel (16-bit PNG/TIFF, 32-bit integer, float TIFF).
_DEEP_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


class ImageError(ValueError):
    """An upload that is not a usable picture; the message says why."""


@dataclass
class Preprocessed:
    image: np.ndarray  # (28, 28) float32 in [0, 1]: the model input
    blank: bool
    method: str
    steps: dict[str, np.ndarray] = field(default_factory=dict)  # name -> 2-D float image, in order
    center_of_mass: tuple[float, float] | None = None


def _check_size(name: str, size: tuple[int, int]) -> None:
    """Refuse a declared size before a single pixel is decoded."""
    w, h = size
    if w * h > MAX_PIXELS:
        raise ImageError(f"{name} is {w}x{h} pixels; the limit is {MAX_PIXELS // 1_000_000} megapixels")
    if min(w, h) < MIN_SIDE:
        raise ImageError(f"{name} is only {w}x{h} pixels; a digit needs at least {MIN_SIDE}x{MIN_SIDE}")
    if max(w, h) > MAX_ASPECT * min(w, h):
        longer, shorter = ("wide", "tall") if w > h else ("tall", "wide")
        raise ImageError(f"{name} is {w}x{h} pixels, {max(w, h) / min(w, h):.0f} times as {longer} as it is "
                         f"{shorter}; a picture of one digit may be at most {MAX_ASPECT} times as {longer} "
                         "(crop it closer to the digit)")


def _webp_size(data: bytes) -> tuple[int, int] | None:
    """The canvas size a WEBP file declares, read from its first chunk header (lossy, lossless or
    extended), or None for anything else. Needed because PIL's WEBP reader hands the whole file to
    libwebp's animation decoder at `Image.open`, which reserves the full canvas (4 bytes a pixel) before
    PIL's own size check runs: a 44-byte file declaring 12000x12000 reserved 1.1 GB (measured, Pillow 13)."""
    if len(data) < 30 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return None
    chunk = data[12:16]
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        w, h = struct.unpack("<HH", data[26:30])
        return w & 0x3FFF, h & 0x3FFF
    if chunk == b"VP8L" and data[20] == 0x2F:
        bits = struct.unpack("<I", data[21:25])[0]
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    return None


def _bomb_message(name: str, e: Exception) -> str:
    # PIL refuses (or, between its two limits, warns about) pictures it thinks are decompression bombs,
    # before telling us their size; its message carries the pixel count.
    m = re.search(r"\((\d+) pixels\)", str(e))
    declared = f"declares {int(m.group(1)):,} pixels" if m else "declares a huge picture"
    return f"{name} {declared}; the limit is {MAX_PIXELS // 1_000_000} megapixels"


def _full_scale(a: np.ndarray, floating: bool) -> float:
    """The value of full brightness for a picture's pixels: 1 for floats within [0, 1], otherwise
    2**bits - 1 for the fewest bits (at least 8) that hold the brightest pixel. So 12-bit data in a
    16-bit file (0..4095) is read as 12-bit, 8-bit data in a 16-bit file as 8-bit, and a nearly uniform
    picture is not stretched into noise (as scaling its min..max to 0..255 would)."""
    hi = float(a.max()) if a.size else 0.0
    if floating and hi <= 1.0:
        return 1.0
    return float(2 ** max(8, int(np.ceil(hi)).bit_length()) - 1)


def _deep_to_8bit(a: np.ndarray, floating: bool) -> np.ndarray:
    """A 16-bit, 32-bit or float grey picture as uint8, scaled by its real range (see `_full_scale`),
    not clipped at 255 (which turns a 16-bit picture into a blank one)."""
    a = np.asarray(a, np.float64)
    finite = np.isfinite(a)
    if not finite.all():
        a = np.where(finite, a, a[finite].min() if finite.any() else 0.0)  # NaN/inf pixels: background
    if a.size and a.min() < 0:  # signed integers or floats below 0: count from the darkest pixel
        a = a - a.min()
    scale = _full_scale(a, floating)
    return np.round(a * (255.0 / scale)).clip(0, 255).astype(np.uint8)


def _upright(im: Image.Image) -> Image.Image:
    """The picture as the camera meant it: phones store it sideways with an EXIF orientation tag."""
    try:
        if im.getexif().get(0x0112, 1) in (1, None):
            return im
        return ImageOps.exif_transpose(im)
    except Exception:  # a damaged EXIF block must not cost the picture: read it as stored
        return im


def _to_array(im: Image.Image, name: str) -> np.ndarray:
    """Decoded pixels as uint8 (H, W) grey or (H, W, 4) RGBA, whatever the file's mode."""
    mode = im.mode
    try:
        if mode in _DEEP_MODES:
            return _deep_to_8bit(np.asarray(im), floating=mode == "F")
        if mode == "LAB":  # PIL cannot convert LAB to grey, but its L band is the lightness
            return np.asarray(im.getchannel("L"))
        has_alpha = mode in _ALPHA_MODES or (mode == "P" and "transparency" in im.info)
        return np.asarray(im.convert("RGBA" if has_alpha else "L"))
    except ValueError as e:  # "conversion from X to Y not supported"
        raise ImageError(f"{name} uses the colour mode {mode}, which cannot be read; save it as an RGB or "
                         "greyscale PNG") from e


def load_image(data: bytes, name: str = "upload", max_bytes: int = MAX_UPLOAD_BYTES) -> np.ndarray:
    """Decode upload bytes into an upright uint8 array (H, W) or (H, W, 4), refusing anything unusable
    with an `ImageError` (see the module docstring). The size, pixel-count and aspect checks read the
    file's header only; nothing is decoded before they pass."""
    if not data:
        raise ImageError(f"{name} is empty (0 bytes)")
    if len(data) > max_bytes:
        raise ImageError(f"{name} is {len(data) / 2**20:.1f} MB; the limit is {max_bytes / 2**20:.0f} MB")
    webp = _webp_size(data)
    if webp is not None:
        _check_size(name, webp)
    # PIL's readers raise many types on malformed files (OSError, SyntaxError, struct.error, EOFError,
    # IndexError, ...), and its decompression-bomb guard raises a plain Exception (or a RuntimeWarning
    # where warnings are errors): every one of them becomes an ImageError, so callers catch one type.
    try:
        im = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(_bomb_message(name, e)) from e
    except Exception as e:
        raise ImageError(f"{name} is not an image PIL can read (use PNG or JPEG)") from e
    with im:
        if im.format not in FORMATS:
            raise ImageError(f"{name} is a {im.format} file; use PNG or JPEG")
        _check_size(name, im.size)
        try:
            # Counting frames reads their headers only (GIF, TIFF pages), bounded by the byte limit.
            frames = im.n_frames if getattr(im, "is_animated", False) else 1
            if frames > 1:
                raise ImageError(f"{name} is animated or has several pages ({frames} frames); upload a "
                                 "single still image")
            im.load()
            return _to_array(_upright(im), name)
        except ImageError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            raise ImageError(_bomb_message(name, e)) from e
        except Exception as e:
            raise ImageError(f"{name} is damaged and cannot be decoded ({str(e)[:200] or type(e).__name__})") from e


def _unit(a: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Pixel values of an array of `dtype` as floats in [0, 1] (see `_full_scale`)."""
    if dtype == np.uint8:
        return a.astype(np.float32) / 255.0
    a = a.astype(np.float32)
    lo = float(a.min()) if a.size else 0.0
    if lo < 0:
        a = a - lo
    return a / _full_scale(a, floating=dtype.kind == "f")


def _paper_under_strokes(alpha: np.ndarray, lum: np.ndarray) -> float:
    """Black (0) or white (1): the background that strokes on a transparent picture were made for.

    Anti-aliased edges fade towards that background. In a palette image with one transparent index
    they fade in colour (a dark digit's edge pixels are light grey, and there are many of them, so the
    strokes' mean colour is no guide); on the canvas they fade in alpha, with a single stroke colour. So:
    compare the colour at the rim of the opaque part with the colour inside it; when they do not differ,
    light strokes mean black paper and dark strokes white paper."""
    opaque = alpha >= 0.5
    inner = opaque.copy()
    inner[1:] &= opaque[:-1]
    inner[:-1] &= opaque[1:]
    inner[:, 1:] &= opaque[:, :-1]
    inner[:, :-1] &= opaque[:, 1:]
    rim = opaque & ~inner
    if inner.any() and rim.any():
        rim_lum, inner_lum = float(lum[rim].mean()), float(lum[inner].mean())
        if abs(rim_lum - inner_lum) > 0.05:
            return 1.0 if rim_lum > inner_lum else 0.0
    strokes = float((alpha * lum).sum() / max(float(alpha.sum()), 1e-6))
    return 0.0 if strokes >= 0.5 else 1.0


def to_ink(img: np.ndarray) -> np.ndarray:
    """Ink strength in [0, 1] per pixel, whatever the polarity, colour or bit depth of the picture.

    Transparent pixels are painted over a "paper" first, chosen by what the border is. A transparent
    border (the canvas, a cut-out digit, a palette image with a transparent index) means the strokes are
    the opaque part, drawn for a black or a white paper (`_paper_under_strokes`): the ink is their
    contrast with it. An opaque border (a photo or scan with a few
    transparent pixels, such as rounded corners) means transparency is background: the paper is the
    picture's own background colour."""
    a = np.asarray(img)
    alpha = None
    if a.ndim == 3 and a.shape[2] == 4:
        alpha = _unit(a[..., 3], a.dtype)
        a = a[..., :3]
    if a.ndim == 3:
        lum = _unit(a[..., :3], a.dtype) @ np.array([0.299, 0.587, 0.114], np.float32)
    elif a.ndim == 2:
        lum = _unit(a, a.dtype)
    else:
        raise ImageError(f"expected a 2-D or colour image, got shape {a.shape}")

    def border(x: np.ndarray) -> np.ndarray:
        return np.concatenate([x[0], x[-1], x[:, 0], x[:, -1]])

    if alpha is not None and alpha.min() < 0.99:
        edge = border(alpha)
        if np.median(edge) < 0.5:
            paper = _paper_under_strokes(alpha, lum)
        else:
            paper = float(np.median(border(lum)[edge >= 0.5]))
        return np.abs(alpha * lum + (1.0 - alpha) * paper - paper)
    return np.abs(lum - float(np.median(border(lum))))


def _resize(a: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Anti-aliased resize of a float image; size is (height, width)."""
    im = Image.fromarray(a.astype(np.float32), mode="F")
    return np.asarray(im.resize((size[1], size[0]), Image.Resampling.LANCZOS), np.float32).clip(0, None)


def center_of_mass(a: np.ndarray) -> tuple[float, float]:
    total = float(a.sum())
    ys, xs = np.indices(a.shape)
    return float((ys * a).sum() / total), float((xs * a).sum() / total)


def preprocess(img: np.ndarray, method: str = "mnist") -> Preprocessed:
    """The model input for a picture of a digit (see the module docstring)."""
    if method not in ("mnist", "naive"):
        raise ValueError("method must be 'mnist' or 'naive'")
    ink = to_ink(img)
    steps: dict[str, np.ndarray] = {"ink": ink}
    peak = float(ink.max()) if ink.size else 0.0
    if peak < BLANK_INK:
        return Preprocessed(np.zeros((28, 28), np.float32), True, method, steps)
    ink = ink / peak
    if method == "naive":
        out = _resize(ink, (28, 28)).clip(0, 1)
        steps["resized 28x28"] = out
        return Preprocessed(out, False, method, steps, center_of_mass(out))
    mask = ink > 0.2
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    crop = ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    steps["cropped"] = crop
    h, w = crop.shape
    scale = 20.0 / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    fitted = _resize(crop, (nh, nw))
    fitted = fitted / max(float(fitted.max()), 1e-6)
    box = np.zeros((20, 20), np.float32)
    box[(20 - nh) // 2:(20 - nh) // 2 + nh, (20 - nw) // 2:(20 - nw) // 2 + nw] = fitted
    steps["fitted 20x20"] = box
    cy, cx = center_of_mass(fitted)
    # Offset that puts the centre of mass at (14, 14), clamped so no ink leaves the 28x28 field.
    oy = int(np.clip(round(14 - cy), 0, 28 - nh))
    ox = int(np.clip(round(14 - cx), 0, 28 - nw))
    out = np.zeros((28, 28), np.float32)
    out[oy:oy + nh, ox:ox + nw] = fitted
    out = out.clip(0, 1)
    steps["centred 28x28"] = out
    return Preprocessed(out, False, method, steps, center_of_mass(out))
