"""Glue for the Draw page: the drawing canvas (its keys and its import), and image thumbnails.

`streamlit_drawable_canvas` registers a Components-v2 component when it is imported, and that needs a
Streamlit runtime whose component manager has read the installed packages' manifests (`streamlit
run` and AppTest both do this at start). Imported from plain Python it raises, so it is imported
here lazily, inside the script run, never at module level.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import streamlit as st

CANVAS_SIZE = 280  # 10x MNIST's 28 px, so one canvas pixel block maps to one model input pixel
CANVAS_GEN = "draw_canvas_gen"  # bumped by Clear: a new key gives a new, empty canvas


def canvas_key(gen: int | None = None) -> str:
    """The canvas widget's key for a generation (default: the current one)."""
    if gen is None:
        gen = int(st.session_state.get(CANVAS_GEN, 0))
    return f"draw_canvas_{gen}"


def clear_canvas() -> None:
    """Button callback: a fresh canvas key (the old drawing is dropped with the old widget)."""
    st.session_state[CANVAS_GEN] = int(st.session_state.get(CANVAS_GEN, 0)) + 1


def canvas(stroke_width: int) -> np.ndarray | None:
    """Draw the 280x280 canvas (white ink on black) and return its RGBA image, or None before any
    drawing has been sent back."""
    from streamlit_drawable_canvas import st_canvas  # needs the running app's component registry

    result: Any = st_canvas(
        stroke_width=stroke_width,
        stroke_color="#FFFFFF",
        background_color="#000000",
        height=CANVAS_SIZE,
        width=CANVAS_SIZE,
        drawing_mode="freedraw",
        update_streamlit=True,
        return_image_data=True,
        key=canvas_key(),
    )
    img = result.image_data
    return None if img is None else np.asarray(img)


def thumbnail(a: np.ndarray, max_side: int = 280) -> np.ndarray:
    """A display copy of a big 2-D image, at most `max_side` px per side (a 12-megapixel photo would
    otherwise become a 12-million-cell Plotly heatmap)."""
    a = np.asarray(a, np.float32)
    h, w = a.shape
    scale = max(h, w) / max_side
    if scale <= 1:
        return a
    from PIL import Image

    size = (max(1, round(w / scale)), max(1, round(h / scale)))
    return np.asarray(Image.fromarray(a, mode="F").resize(size, Image.Resampling.BOX), np.float32)
