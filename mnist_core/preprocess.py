"""Turning a drawn or uploaded picture of a digit into the model's 28x28 input, the way MNIST was made.

MNIST digits were size-normalised to fit a 20x20 box (keeping the aspect ratio, anti-aliased) and then
placed in a 28x28 field so that their centre of mass sits at the centre. `preprocess` does the same to
any image: find the ink (white-on-black or dark-on-light, or opaque strokes on a transparent canvas),
crop to it, fit the longest side to 20 px, centre by centre of mass, scale to [0, 1]. It keeps every
intermediate step for display, and reports a blank image as blank instead of classifying noise. The
"naive" method (just resize the whole picture to 28x28) exists to show why the MNIST recipe matters.
`load_image` reads untrusted upload bytes with size, pixel-count, animation and format checks.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, UnidentifiedImageError

MAX_UPLOAD_BYTES = 5 * 1024 * 1024
MAX_PIXELS = 25_000_000
MIN_SIDE = 8
FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP", "TIFF")
BLANK_INK = 0.08  # strongest ink below this (in [0, 1]) counts as an empty picture


class ImageError(ValueError):
    """An upload that is not a usable picture; the message says why."""


@dataclass
class Preprocessed:
    image: np.ndarray  # (28, 28) float32 in [0, 1]: the model input
    blank: bool
    method: str
    steps: dict[str, np.ndarray] = field(default_factory=dict)  # name -> 2-D float image, in order
    center_of_mass: tuple[float, float] | None = None


def load_image(data: bytes, name: str = "upload", max_bytes: int = MAX_UPLOAD_BYTES) -> np.ndarray:
    """Decode upload bytes into a uint8 array (H, W) or (H, W, 4), refusing anything unusable."""
    if not data:
        raise ImageError(f"{name} is empty (0 bytes)")
    if len(data) > max_bytes:
        raise ImageError(f"{name} is {len(data) / 2**20:.1f} MB; the limit is {max_bytes / 2**20:.0f} MB")
    try:
        im = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise ImageError(f"{name} is not an image PIL can read (use PNG or JPEG)") from e
    if im.format not in FORMATS:
        raise ImageError(f"{name} is a {im.format} file; use PNG or JPEG")
    w, h = im.size
    if w * h > MAX_PIXELS:
        raise ImageError(f"{name} is {w}x{h} pixels; the limit is {MAX_PIXELS // 1_000_000} megapixels")
    if min(w, h) < MIN_SIDE:
        raise ImageError(f"{name} is only {w}x{h} pixels; a digit needs at least {MIN_SIDE}x{MIN_SIDE}")
    if getattr(im, "is_animated", False) and getattr(im, "n_frames", 1) > 1:
        raise ImageError(f"{name} is animated ({im.n_frames} frames); upload a single still image")
    try:
        im.load()
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise ImageError(f"{name} is damaged and cannot be decoded ({e})") from e
    has_alpha = im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)
    return np.asarray(im.convert("RGBA" if has_alpha else "L"))


def to_ink(img: np.ndarray) -> np.ndarray:
    """Ink strength in [0, 1] per pixel, whatever the polarity or colour of the picture."""
    a = np.asarray(img)
    if a.ndim == 3 and a.shape[2] == 4:
        alpha = a[..., 3].astype(np.float32) / 255.0
        if alpha.min() < 0.99:  # strokes on a transparent background (the canvas): alpha is the ink
            return alpha
        a = a[..., :3]
    if a.ndim == 3:
        lum = a[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    elif a.ndim == 2:
        lum = a.astype(np.float32)
    else:
        raise ImageError(f"expected a 2-D or colour image, got shape {a.shape}")
    if lum.max() <= 1.0 and a.dtype != np.uint8:
        lum = lum * 255.0
    border = np.concatenate([lum[0], lum[-1], lum[:, 0], lum[:, -1]])
    background = float(np.median(border))
    return np.abs(lum - background) / 255.0


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
