"""Glue for the Draw page: the drawing pad, the drawing kept across pages, the explanations of a
drawing made once and kept, and image thumbnails.

The pad is a small Components-v2 element of our own (the JavaScript below, ~150 lines, no library),
in place of streamlit-drawable-canvas 0.13, whose frontend build shows why it cannot do what this page
needs: it sends a drawing only from `mouse:up`, through a 200 ms debounce (`schedule` with `Bc = 200`),
so no prediction can be on screen sooner than 200 ms after the stroke nor while it is drawn (its
freedraw mode is fabric.js's pencil brush, which makes the path only at mouse-up); its toolbar (send,
undo, redo, edit, bring forward, send backward, delete, reset) can only be hidden by `disabled=True`,
which also stops drawing; and a restored `initial_drawing` comes back without its image until the next
stroke, while "reset" returns to that restored drawing instead of clearing. The pad here draws with
Pointer Events (mouse, pen and touch alike, `touch-action: none` so a finger draws instead of
scrolling), sends the drawing at once when the stroke ends and, while it is drawn, at most every
`LIVE_MS` with at most one update waiting for the server (the server acknowledges each through
`data.ack`, so a busy server gets fewer updates rather than a queue), has just Undo and Clear, and
redraws the strokes it is given when it is mounted again (after a visit to another page).
"""

from __future__ import annotations

import base64
import hashlib
import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import streamlit as st

CANVAS_SIZE = 280  # 10x MNIST's 28 px, so one canvas pixel block maps to one model input pixel
LIVE_MS = 150  # while drawing, at most one update per this many ms (~6 a second)
LIVE_MAX_RTT_MS = 120  # ... and none while the server takes longer than this to answer one
STEP_SIDE = 140  # display size of each preprocessing step, px
PAD_KEY = "draw_pad"  # the pad's widget key: its state is {"drawing": {strokes, data, final, seq}}
SAVED = "draw_saved"  # the last drawing, kept when the pad's widget state goes with a visit elsewhere
WHY_CACHE = "draw_why_cache"  # the explanations of the last finished drawing, by its key

_PAD_CSS = """
.mp-root { display: flex; flex-direction: column; gap: .5rem; width: min(280px, 100%); }
.mp-canvas { display: block; width: 100%; height: auto; aspect-ratio: 1 / 1; background: #000;
  border-radius: .5rem; cursor: crosshair; touch-action: none; user-select: none; -webkit-user-select: none;
  -webkit-touch-callout: none; outline: 1px solid var(--st-border-color, #d6d6d9); }
.mp-bar { display: flex; gap: .5rem; }
.mp-btn { display: inline-flex; align-items: center; gap: .35rem; min-height: 2.5rem; padding: .25rem .85rem;
  font: inherit; font-size: .9rem; color: var(--st-text-color, #31333f);
  background: var(--st-background-color, #fff); border: 1px solid var(--st-border-color, #d6d6d9);
  border-radius: var(--st-button-radius, .5rem); cursor: pointer; }
.mp-btn:hover:not(:disabled) { border-color: var(--st-primary-color, #d62728); color: var(--st-primary-color, #d62728); }
.mp-btn:disabled { opacity: .45; cursor: not-allowed; }
.mp-btn svg { width: 1rem; height: 1rem; }
"""

_PAD_JS = """
const PADS = new WeakMap();
const SVG = (d) => '<svg viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" ' +
  'stroke-linecap="round" stroke-linejoin="round" aria-hidden="true">' + d + '</svg>';
const ICONS = {
  undo: SVG('<path d="M9 14 4 9l5-5"/><path d="M4 9h10a6 6 0 0 1 0 12h-2"/>'),
  clear: SVG('<path d="M4 7h16"/><path d="M9 7V4h6v3"/><path d="M6 7l1 13h10l1-13"/>'),
};

function button(label, icon, onClick) {
  const b = document.createElement('button');
  b.type = 'button'; b.className = 'mp-btn'; b.setAttribute('aria-label', label);
  b.innerHTML = icon + '<span>' + label + '</span>';
  b.addEventListener('click', onClick);
  return b;
}

function redraw(pad) {
  const c = pad.ctx;
  c.fillStyle = '#000'; c.fillRect(0, 0, pad.size, pad.size);
  for (const s of pad.strokes) {
    dot(pad, s.p[0], s.w);
    for (let i = 1; i < s.p.length; i++) segment(pad, s.p[i - 1], s.p[i], s.w);
  }
}

function dot(pad, p, w) {
  const c = pad.ctx;
  c.fillStyle = '#fff'; c.beginPath(); c.arc(p[0], p[1], w / 2, 0, 2 * Math.PI); c.fill();
}

function segment(pad, a, b, w) {
  const c = pad.ctx;
  c.strokeStyle = '#fff'; c.lineWidth = w; c.lineCap = 'round'; c.lineJoin = 'round';
  c.beginPath(); c.moveTo(a[0], a[1]); c.lineTo(b[0], b[1]); c.stroke();
}

function point(pad, e) {
  const r = pad.canvas.getBoundingClientRect();
  const k = pad.size / r.width;
  return [Math.round((e.clientX - r.left) * k), Math.round((e.clientY - r.top) * k)];
}

function buttons(pad) {
  pad.undo.disabled = pad.clear.disabled = pad.strokes.length === 0 || pad.active !== null;
}

function send(pad, final) {
  pad.seq += 1; pad.inflight = pad.seq; pad.sentAt = performance.now(); pad.dirty = false;
  const data = pad.strokes.length ? pad.canvas.toDataURL('image/png') : null;
  pad.setState('drawing', {strokes: pad.strokes, data: data, final: final, seq: pad.seq});
  buttons(pad);
}

function live(pad) {
  // While drawing: one update at a time, spaced by the server's own pace (4 round trips, so updates use
  // at most a quarter of the server's time for this pad), and none while the server is slow: a busy
  // classroom gets the finished strokes only, never a queue of updates in front of them.
  if (!pad.dirty || pad.inflight || pad.rtt > pad.liveMaxRtt) return;
  if (performance.now() - pad.sentAt < Math.max(pad.liveMs, 4 * pad.rtt)) return;
  send(pad, false);
}

function create(host) {
  const root = document.createElement('div'); root.className = 'mp-root';
  const canvas = document.createElement('canvas'); canvas.className = 'mp-canvas';
  canvas.setAttribute('role', 'img'); canvas.setAttribute('aria-label', 'Drawing pad: draw one digit');
  const bar = document.createElement('div'); bar.className = 'mp-bar';
  const pad = {root: root, canvas: canvas, ctx: canvas.getContext('2d'), strokes: [], active: null,
               pointerId: null, width: 20, size: 0, liveMs: 150, liveMaxRtt: 200, rtt: 0, seq: 0, inflight: 0,
               sentAt: -1e9, dirty: false, mounted: false, setState: () => {}};
  pad.undo = button('Undo', ICONS.undo, () => { pad.strokes.pop(); redraw(pad); send(pad, true); });
  pad.clear = button('Clear', ICONS.clear, () => { pad.strokes = []; redraw(pad); send(pad, true); });
  bar.append(pad.undo, pad.clear);
  root.append(canvas, bar);
  host.appendChild(root);
  canvas.addEventListener('pointerdown', (e) => {
    if (pad.active !== null || (e.pointerType === 'mouse' && e.button !== 0)) return;
    e.preventDefault();
    canvas.setPointerCapture(e.pointerId);
    pad.pointerId = e.pointerId;
    pad.active = {w: pad.width, p: [point(pad, e)]};
    pad.strokes.push(pad.active);
    dot(pad, pad.active.p[0], pad.active.w);
    pad.dirty = true;
    buttons(pad);
    live(pad);
  });
  canvas.addEventListener('pointermove', (e) => {
    if (pad.active === null || e.pointerId !== pad.pointerId) return;
    const events = e.getCoalescedEvents ? e.getCoalescedEvents() : [];
    for (const ev of (events.length ? events : [e])) {
      const q = point(pad, ev), p = pad.active.p[pad.active.p.length - 1];
      if (q[0] === p[0] && q[1] === p[1]) continue;
      pad.active.p.push(q);
      segment(pad, p, q, pad.active.w);
      pad.dirty = true;
    }
    live(pad);
  });
  const end = (e) => {
    if (pad.active === null || e.pointerId !== pad.pointerId) return;
    pad.active = null; pad.pointerId = null;
    send(pad, true);
  };
  canvas.addEventListener('pointerup', end);
  canvas.addEventListener('pointercancel', end);
  canvas.addEventListener('contextmenu', (e) => e.preventDefault());
  return pad;
}

export default function (component) {
  const { data, parentElement, setStateValue } = component;
  let pad = PADS.get(parentElement);
  if (!pad) { pad = create(parentElement); PADS.set(parentElement, pad); }
  pad.setState = setStateValue;
  pad.width = data.width; pad.liveMs = data.liveMs; pad.liveMaxRtt = data.liveMaxRtt;
  if (data.size !== pad.size) { pad.size = pad.canvas.width = pad.canvas.height = data.size; redraw(pad); }
  if (!pad.mounted) {  // a new pad (first visit, or back from another page): the strokes kept for it
    pad.mounted = true; pad.strokes = data.initial || []; pad.seq = data.seq || 0; redraw(pad);
  }
  if (pad.inflight && data.ack >= pad.inflight) {  // the server has answered: how long it took
    pad.rtt = performance.now() - pad.sentAt; pad.inflight = 0;
  }
  buttons(pad);
  return () => { PADS.delete(parentElement); pad.root.remove(); };
}
"""

_pad_component: Any = None


def _pad() -> Any:
    """The registered pad component (registered once per process, inside a script run: registration
    needs the running app's component registry)."""
    global _pad_component
    if _pad_component is None:
        _pad_component = st.components.v2.component("mnist_studio_draw_pad", js=_PAD_JS, css=_PAD_CSS)
    return _pad_component


@dataclass(frozen=True)
class Drawing:
    """What the pad sent last: the 280x280 RGBA picture (None while empty), and whether the stroke was
    finished (False for an update sent while it is still being drawn)."""

    picture: np.ndarray | None
    final: bool


def _decode(url: str | None) -> np.ndarray | None:
    """The pad's PNG data URL as an RGBA array; None for no drawing, and for anything that is not the
    pad's own 280x280 PNG (the widget state comes from the browser: never decode an arbitrary image)."""
    if not url or not url.startswith("data:image/png;base64,"):
        return None
    from PIL import Image, UnidentifiedImageError

    try:
        im = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1], validate=True)))
        if im.format != "PNG" or im.size != (CANVAS_SIZE, CANVAS_SIZE):
            return None
        return np.asarray(im.convert("RGBA"))
    except (UnidentifiedImageError, OSError, ValueError):
        return None


def pad(stroke_width: int) -> Drawing:
    """Draw the pad (white ink on black) and return the drawing it holds. The drawing is also kept in
    session state, so the pad comes back with it after a visit to another page."""
    fresh = PAD_KEY not in st.session_state  # the pad is (re)mounted: its value is the kept drawing
    saved = st.session_state.get(SAVED) or {}
    sent = saved if fresh else ((st.session_state.get(PAD_KEY) or {}).get("drawing") or {})
    value = _pad()(
        # `initial` is read only when the pad is created in the browser (a first visit, back from another
        # page, or after a reconnect redrew the page): it then shows the strokes the server reads.
        data={"width": int(stroke_width), "size": CANVAS_SIZE, "liveMs": LIVE_MS,
              "liveMaxRtt": LIVE_MAX_RTT_MS, "ack": int(sent.get("seq", 0)),
              "initial": sent.get("strokes") or [], "seq": int(sent.get("seq", 0))},
        key=PAD_KEY,
        # the kept drawing is the value until the pad sends one (only sent when mounting, not each rerun)
        default={"drawing": (saved or None) if fresh else None},
        on_drawing_change=lambda: None,  # a new drawing reruns the fragment the pad is in, nothing more
        width="content",
        height="content",
    )
    drawing = value.get("drawing") or {}
    st.session_state[SAVED] = drawing
    return Drawing(_decode(drawing.get("data")), bool(drawing.get("final", True)))


# --- the explanations of one drawing, made once ---------------------------------------------------
@dataclass
class Current:
    """The drawing the prediction was made for, with what its explanations need."""

    key: str  # names this drawing: model, method, model input and picture
    image: np.ndarray  # (28, 28) model input
    maps: list[Any]  # explain.FeatureMaps from the prediction's forward pass
    steps: dict[str, np.ndarray]  # the preprocessing steps, by name
    method: str
    picture: np.ndarray


def drawing_key(run: str, method: str, image28: np.ndarray, picture: np.ndarray) -> str:
    """A short name for one drawing as the model reads it (same key, same explanations)."""
    h = hashlib.blake2b(digest_size=8)
    for part in (run.encode(), method.encode(), np.ascontiguousarray(image28).tobytes(),
                 np.ascontiguousarray(picture).tobytes()):
        h.update(part)
    return h.hexdigest()


@dataclass
class Why:
    """The explanations of one drawing, every image already a PNG."""

    key: str
    cls: int
    steps: dict[str, tuple[bytes, tuple[int, int]]]  # step name -> (PNG, the step's true (height, width))
    panels: dict[str, bytes]  # name -> PNG (the input, saliency, Grad-CAM)
    has_cam: bool
    last_conv: str | None
    mosaics: list[tuple[Any, bytes, list[int]]] = field(default_factory=list)  # (FeatureMaps, PNG, channels)
    other: tuple[str, int, float] | None = None  # the other preprocessing: (its name, digit, probability)


def last_why() -> Why | None:
    """The explanations last made (those of the last finished drawing), if any."""
    return st.session_state.get(WHY_CACHE)


def forget_why() -> None:
    """Drop the kept explanations (the pad was cleared: they belong to no drawing on screen)."""
    st.session_state.pop(WHY_CACHE, None)


def why(model: Any, cur: Current, other_method: str, other_label: str) -> Why:
    """The preprocessing steps, saliency, Grad-CAM, the feature-map mosaics and the other preprocessing's
    answer for a drawing: made on the first call for its key and kept in session state, so a rerun
    with the same drawing (a changed stroke width, a visit elsewhere and back) costs nothing."""
    cached = last_why()
    if cached is not None and cached.key == cur.key:
        return cached
    from mnist_core import explain, plots
    from mnist_core.inference import predict_one
    from mnist_core.preprocess import preprocess

    sal, cls = explain.saliency(model, cur.image)
    cam = explain.grad_cam(model, cur.image, cls)
    last_conv = explain.last_conv_name(model)
    maps = {f"saliency for {cls}": sal}
    if cam is not None:
        maps[f"Grad-CAM ({last_conv}) for {cls}"] = cam
    steps = {k: (png(plots.gray_pixels(thumbnail(v, STEP_SIDE), STEP_SIDE)), v.shape[:2])
             for k, v in cur.steps.items()}
    panels = {name: png(img) for name, img in plots.explanation_images(cur.image, maps).items()}
    mosaics = []
    for fm in cur.maps:
        img, channels = plots.feature_map_mosaic(fm.maps)
        mosaics.append((fm, png(img), channels))
    other_pre = preprocess(cur.picture, other_method)
    other = None
    if not other_pre.blank:
        p = predict_one(model, other_pre.image)
        other = (other_label, int(p.argmax()), float(p.max()))
    w = Why(cur.key, cls, steps, panels, cam is not None, last_conv, mosaics, other)
    st.session_state[WHY_CACHE] = w
    return w


def png(img: np.ndarray) -> bytes:
    """An image array as PNG bytes (encoded once here and kept, instead of by st.image on every rerun)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(img, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def prediction_html(probs: np.ndarray, key: str, final: bool) -> str:
    """The answer as one HTML element: the big digit (its `data-*` attributes name the input it
    answers and whether the stroke was finished), the top 3 as bars, and all ten digits."""
    from mnist_core.plots import probability_bars_html

    probs = np.asarray(probs, float)
    digit = int(probs.argmax())
    rows = "".join(
        f'<div style="margin:.15rem 0 .1rem"><b>{d}</b> — {probs[d]:.1%}</div>'
        f'<div style="height:.5rem;border-radius:.25rem;background:rgba(49,51,63,.12)">'
        f'<div style="height:100%;width:{probs[d] * 100:.1f}%;border-radius:.25rem;background:#d62728"></div></div>'
        for d in probs.argsort()[::-1][:3])
    said = "predicted digit" if final else "reading as you draw…"
    return (f'<div style="display:flex;flex-wrap:wrap;gap:1rem 2rem;align-items:flex-start">'
            f'<div style="min-width:9rem;text-align:center">'
            f'<div aria-label="predicted digit" data-digit="{digit}" data-input="{key}" data-final="{int(final)}" '
            f'class="draw-prediction" style="font-size:7.5rem;font-weight:700;line-height:1;'
            f'opacity:{1 if final else 0.6}">{digit}</div><div>{said} · {probs[digit]:.1%}</div></div>'
            f'<div style="flex:1;min-width:12rem"><div style="font-weight:600;margin-bottom:.25rem">Top 3</div>{rows}'
            f'<div style="font-weight:600;margin:1rem 0 .25rem">All ten digits</div>{probability_bars_html(probs)}'
            '</div></div>')


def hot_colorbar_html(low: str, high: str) -> str:
    """A horizontal colour bar of the "hot" scale the saliency and Grad-CAM images use, as HTML."""
    from mnist_core.plots import HOT_STOPS

    stops = ", ".join(f"{c} {p:.0%}" for p, c in HOT_STOPS)
    return (f'<div style="max-width:520px;font-size:.8rem;opacity:.85">'
            f'<div style="height:12px;border-radius:3px;background:linear-gradient(to right, {stops})"></div>'
            f'<div style="display:flex;justify-content:space-between"><span>{low}</span><span>{high}</span></div>'
            '</div>')


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
