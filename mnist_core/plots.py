"""Plotly figures for the pages and notebooks: training curves, confusion matrices, image grids and the
rest. Pure functions from arrays or run data to `go.Figure`; no streamlit here, so every figure can also
be used from a notebook and tested without a browser. The Draw page's pictures (preprocessing steps,
saliency and Grad-CAM, feature-map mosaics) are plain RGB/gray arrays and its probability bars a small
piece of HTML, made here too: a stroke redraws them, and images cost the browser far less than heatmaps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.express as px  # noqa: F401  (used by figures further down)
import plotly.graph_objects as go
from plotly.subplots import make_subplots

TRAIN_COLOR = "#1f77b4"
VAL_COLOR = "#ff7f0e"
DIGITS = [str(d) for d in range(10)]


def _layout(fig: go.Figure, height: int = 340, **kw: Any) -> go.Figure:
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10), template="plotly_white",
                      legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0), **kw)
    return fig


MODEBAR_PX = 36  # the right margin kept free for Plotly's toolbar, a column there (see `_frame`)
DIAGONAL_GREY = "#e6e6e6"  # the right answers in an errors-only confusion matrix


def _frame(fig: go.Figure, height: int, title: str | None = None, legend: str | None = "top",
           subplot_titles: bool = False, **kw: Any) -> go.Figure:
    """The common look, laid out so that nothing covers anything else (issue 20): the title at the top
    left; the legend in a row of its own under it (`legend="top"`), below the plot (`"bottom"`, for long
    legends such as run names), in a column at the bottom right (`"right"`, for many short entries) or
    none; subplot titles under the legend; and Plotly's toolbar, which shows on hover, as a column at
    the top of a right margin kept free for it (across the top it covered titles and legends)."""
    title_px, legend_px, sub_px = (30 if title else 0), (26 if legend == "top" else 0), (22 if subplot_titles else 0)
    top = 8 + title_px + legend_px + sub_px
    layout: dict[str, Any] = dict(
        height=height, template="plotly_white", modebar=dict(orientation="v"),
        margin=dict(l=10, r=MODEBAR_PX, t=max(top, 20), b=10), showlegend=legend is not None)
    if title:
        layout["title"] = dict(text=title, x=0, xref="paper", xanchor="left", y=1, yref="container",
                               yanchor="top", pad=dict(t=8), font=dict(size=15))
    if legend == "top":
        layout["legend"] = dict(orientation="h", x=0, xanchor="left", yref="container", yanchor="top",
                                y=1 - (8 + title_px) / height)
    elif legend == "bottom":
        layout["legend"] = dict(orientation="h", x=0, xanchor="left", y=-0.14, yanchor="top")
    elif legend == "right":  # below the toolbar's column
        layout["legend"] = dict(orientation="v", x=1.0, xanchor="left", y=0, yanchor="bottom")
    fig.update_layout(**layout)
    return fig.update_layout(**kw) if kw else fig


def ema_smooth(values: Sequence[float | None], weight: float) -> list[float]:
    """TensorBoard's smoothing of a noisy curve: an exponential moving average with `weight` (0: none,
    0.99: very smooth), debiased so that the first points are not pulled towards zero (each average is
    divided by 1 - weight ** n, the total weight of the n points so far). Missing or non-finite values
    stay NaN and do not count. Equals pandas' `ewm(alpha=1 - weight, adjust=True).mean()`."""
    if not 0 <= weight < 1:
        raise ValueError(f"smoothing weight must be in [0, 1), got {weight}")
    out: list[float] = []
    last, n = 0.0, 0
    for v in values:
        if v is None or not np.isfinite(v):
            out.append(float("nan"))
            continue
        last = last * weight + (1 - weight) * float(v)
        n += 1
        out.append(last / (1 - weight ** n))
    return out


def thin(n: int, max_points: int) -> np.ndarray:
    """At most `max_points` evenly spaced indices into a sequence of `n`, first and last included: a
    long curve sent to the browser at the resolution a chart can show."""
    if n <= max_points:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max(max_points, 2)).round().astype(int))


def training_curves(history: Sequence[dict[str, Any]], batch_points: Sequence[dict[str, Any]] = (),
                    title: str = "", smoothing: float = 0.6, max_points: int = 300,
                    epochs: int | None = None) -> go.Figure:
    """Loss and accuracy side by side. The per-batch curve (`batch_points`: dicts with `x` in fractional
    epochs, `loss`, `accuracy`, each the mean of the batches since the point before) is drawn faint, with
    its `smoothing` (`ema_smooth`, TensorBoard's control) drawn over it; each epoch's training mean and
    validation value are the points, at the end of their epoch. Without batch points the training curve
    is the epoch points joined up. Each curve is thinned to `max_points` for the browser (after
    smoothing, so the smoothed line is the same however many points are sent). `epochs` fixes the x axis
    to the whole run (while it trains: the curves grow across it, and the axes stay put)."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Loss", "Accuracy"), horizontal_spacing=0.08)
    epoch_x = [r["epoch"] for r in history]
    keep = thin(len(batch_points), max_points)
    bx = [batch_points[i]["x"] for i in keep]
    for col, key in ((1, "loss"), (2, "accuracy")):
        show = col == 1
        hover = "epoch %{x:.2f}: %{y:.4f}" if key == "loss" else "epoch %{x:.2f}: %{y:.2%}"
        if batch_points:
            raw = [batch_points[i][key] for i in keep]
            fig.add_trace(go.Scatter(x=bx, y=raw, mode="lines", line=dict(color=TRAIN_COLOR, width=1),
                                     opacity=0.3 if smoothing > 0 else 0.9, name="per batch",
                                     legendgroup="batch", showlegend=show,
                                     hovertemplate=hover + "<extra>per batch</extra>"), row=1, col=col)
            if smoothing > 0:
                smooth = ema_smooth([p[key] for p in batch_points], smoothing)
                fig.add_trace(go.Scatter(x=bx, y=[smooth[i] for i in keep], mode="lines",
                                         line=dict(color=TRAIN_COLOR, width=2), name=f"smoothed ({smoothing:.2f})",
                                         legendgroup="smooth", showlegend=show,
                                         hovertemplate=hover + "<extra>smoothed</extra>"), row=1, col=col)
        fig.add_trace(go.Scatter(
            x=epoch_x, y=[r.get(key) for r in history], mode="markers" if batch_points else "lines+markers",
            marker=dict(color="white", size=8, line=dict(color=TRAIN_COLOR, width=2)) if batch_points else None,
            line=dict(color=TRAIN_COLOR), name="train (epoch mean)" if batch_points else "train",
            legendgroup="train", showlegend=show, hovertemplate=hover + "<extra>train, epoch mean</extra>"),
            row=1, col=col)
        if any(r.get(f"val_{key}") is not None for r in history):
            fig.add_trace(go.Scatter(x=epoch_x, y=[r.get(f"val_{key}") for r in history], mode="lines+markers",
                                     line=dict(color=VAL_COLOR), marker=dict(size=8), name="validation",
                                     legendgroup="validation", showlegend=show,
                                     hovertemplate=hover + "<extra>validation</extra>"), row=1, col=col)
        fig.update_xaxes(title_text="epoch", row=1, col=col, rangemode="tozero",
                         range=[0, epochs * 1.02] if epochs else None)
    fig.update_yaxes(tickformat=".0%", row=1, col=2)
    return _frame(fig, 340, title=title or None, subplot_titles=True, hovermode="closest")


def overlay_curves(histories: dict[str, Sequence[dict[str, Any]]], metric: str = "val_accuracy") -> go.Figure:
    """One line per run for one metric (the training value where a run has no validation), to compare
    runs; the legend (run names) goes under the plot, where long names have room."""
    fig = go.Figure()
    for name, hist in histories.items():
        ys = [r.get(metric) for r in hist]
        if not any(y is not None for y in ys):
            ys = [r.get(metric.removeprefix("val_")) for r in hist]
        fig.add_trace(go.Scatter(x=[r["epoch"] for r in hist], y=ys, mode="lines+markers", name=name,
                                 hovertemplate=f"{name}, epoch %{{x}}: %{{y:.4f}}<extra></extra>"))
    label = metric.replace("val_", "validation ").replace("_", " ")
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(title_text=label, tickformat=".1%" if "accuracy" in metric else None)
    # Legend rows under the axis title: about 70 characters of names fit in a row of a half-width chart.
    legend_rows = max(1, -(-sum(len(n) + 6 for n in histories) // 70))
    fig = _frame(fig, 380 + 22 * (legend_rows - 1), title=f"{label.capitalize()} by epoch", legend="bottom")
    return fig.update_layout(margin=dict(b=48 + 22 * legend_rows),
                             legend=dict(yref="container", y=0, yanchor="bottom"))


def confusion_matrix(cm: np.ndarray, normalize: bool = False, title: str = "", colorscale: str = "Blues",
                     errors_only: bool = False, height: int = 520) -> go.Figure:
    """An annotated heatmap like seaborn's: true digit on y (top to bottom), predicted on x, every cell
    labelled. `normalize` shows row percentages (recall per digit). `errors_only` colours the mistakes
    alone: the right answers on the diagonal, which dwarf them, are drawn grey (with their numbers, in a
    second trace), and the colour scale runs up to the largest mistake. The first trace holds the whole
    matrix as z either way."""
    cm = np.asarray(cm)
    if normalize:
        rows = cm.sum(axis=1, keepdims=True)
        z = np.divide(cm * 100.0, rows, out=np.zeros(cm.shape, float), where=rows > 0)
        text = [[f"{v:.1f}" for v in row] for row in z]
        value = "%{z:.2f}%"
    else:
        z = cm
        text = [[f"{v:d}" for v in row] for row in cm.astype(int)]
        value = "%{z}"
    kw: dict[str, Any] = {"colorscale": colorscale}
    n = len(cm)
    if errors_only:
        off = ~np.eye(n, dtype=bool)
        kw.update(zmin=0, zmax=float(z[off].max()) if off.any() and z[off].max() > 0 else 1.0)
        shown = [[("" if i == j else s) for j, s in enumerate(row)] for i, row in enumerate(text)]
    else:
        shown = text
    fig = go.Figure(go.Heatmap(z=z, x=DIGITS[:n], y=DIGITS[:n], text=shown, texttemplate="%{text}", xgap=1, ygap=1,
                               hovertemplate=f"true %{{y}}, predicted %{{x}}: {value}<extra></extra>",
                               showscale=False, **kw))
    if errors_only:
        diag = np.full(z.shape, np.nan)
        np.fill_diagonal(diag, np.diag(z))
        fig.add_trace(go.Heatmap(
            z=diag, x=DIGITS[:n], y=DIGITS[:n], text=[[text[i][j] if i == j else "" for j in range(n)] for i in range(n)],
            texttemplate="%{text}", textfont=dict(color="#333"), colorscale=[[0, DIAGONAL_GREY], [1, DIAGONAL_GREY]],
            showscale=False, xgap=1, ygap=1, name="right",
            hovertemplate=f"true %{{y}}, predicted %{{x}}: {value} (right)<extra></extra>"))
    fig.update_xaxes(title_text="predicted digit", side="bottom", type="category")
    fig.update_yaxes(title_text="true digit", autorange="reversed", type="category")
    return _frame(fig, height, title=title or None, legend=None)


def confusion_diff(cm_a: np.ndarray, cm_b: np.ndarray, name_a: str, name_b: str, title: str = "",
                   height: int = 520) -> go.Figure:
    """How a second model (`b`) differs from a first (`a`) on the same test set, cell by cell. The
    colour says the same thing everywhere: blue is better for `b` (more right answers on the diagonal,
    fewer of that mistake off it), red is worse. z is that signed improvement (the diagonal's change,
    the others' negated); each cell is labelled with the change in its count (b minus a), and hovering
    gives both counts."""
    a, b = np.asarray(cm_a, int), np.asarray(cm_b, int)
    diff = b - a
    better = np.where(np.eye(len(a), dtype=bool), diff, -diff)
    lim = max(1, int(np.abs(better).max()))
    fig = go.Figure(go.Heatmap(
        z=better, x=DIGITS[:len(a)], y=DIGITS[:len(a)], text=[[f"{v:+d}" if v else "0" for v in row] for row in diff],
        texttemplate="%{text}", colorscale="RdBu", zmin=-lim, zmax=lim, xgap=1, ygap=1,
        customdata=np.stack([a, b], axis=-1),
        hovertemplate=f"true %{{y}}, predicted %{{x}}: {name_a} %{{customdata[0]}}, {name_b} %{{customdata[1]}}"
                      "<extra></extra>",
        colorbar=dict(title=dict(text=f"for {name_b}", side="right"), tickvals=[-lim, 0, lim],
                      ticktext=["worse", "same", "better"], len=0.45, y=0, yanchor="bottom", thickness=12)))
    fig.update_xaxes(title_text="predicted digit", side="bottom", type="category")
    fig.update_yaxes(title_text="true digit", autorange="reversed", type="category")
    return _frame(fig, height, title=title or None, legend=None)


def probability_bars_html(probs: Sequence[float], height_px: int = 110) -> str:
    """The ten class probabilities as a small bar chart in plain HTML (one element for the browser,
    no charting library), the most probable digit in red, each bar labelled with its percentage."""
    probs = np.clip(np.asarray(probs, float), 0, 1)
    top = int(probs.argmax())
    cols = []
    for d, p in enumerate(probs):
        color = "#d62728" if d == top else "#9ecae1"
        cols.append(
            f'<div style="flex:1;display:flex;flex-direction:column;align-items:center;justify-content:flex-end;'
            f'height:100%" title="digit {d}: {p:.3f}">'
            f'<span style="font-size:.7rem;opacity:.8">{p:.0%}</span>'
            f'<div style="width:70%;height:{max(p, 0.004) * 100:.1f}%;background:{color};border-radius:2px 2px 0 0">'
            f'</div><span style="font-size:.85rem;font-weight:{700 if d == top else 400}">{d}</span></div>')
    return (f'<div aria-label="probability of each digit" style="display:flex;gap:2px;align-items:flex-end;'
            f'height:{height_px}px;max-width:520px">{"".join(cols)}</div>')


def image(img: np.ndarray, title: str = "", show_values: bool = False, height: int = 300,
          zoom_to_ink: bool = False) -> go.Figure:
    """One grayscale image as a heatmap (white ink on black). `show_values` writes each pixel's value in
    its cell, in a font sized to the cell (about half its height), leaving the background (0) blank so
    the ink's numbers stand out. `zoom_to_ink` shows only the box round the non-zero pixels (`ink_box`), so those cells and their numbers get the room; the axes keep the full image's row and
    column numbers (hover a cell for them)."""
    img = np.asarray(img, float)
    rows, cols = ink_box(img) if zoom_to_ink else (np.arange(img.shape[0]), np.arange(img.shape[1]))
    img = img[np.ix_(rows, cols)]
    kw: dict[str, Any] = {}
    top = 40 if title else 16
    if show_values:
        vals = np.round(img).astype(int) if img.max() > 1 else np.round(img, 2)
        cell_px = (height - top - 10) / max(img.shape)
        kw = dict(text=np.where(img > 0, vals.astype(str), ""), texttemplate="%{text}",
                  textfont=dict(size=int(np.clip(round(cell_px * 0.45), 7, 13))))
    fig = go.Figure(go.Heatmap(z=img, x=cols, y=rows, colorscale="gray", showscale=False,
                               hovertemplate="row %{y}, col %{x}: %{z}<extra></extra>", **kw))
    fig.update_yaxes(autorange="reversed", scaleanchor="x", showticklabels=False, showgrid=False, zeroline=False)
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False, constrain="domain")
    fig = _frame(fig, height, title=title or None, legend=None)
    return fig.update_layout(margin=dict(l=0, b=0))


def ink_box(img: np.ndarray, margin: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(row indices, column indices) of the box round an image's non-zero pixels, `margin` pixels wider
    on each side (within the image); the whole image when it has no ink."""
    img = np.asarray(img)
    ink = img > 0
    if not ink.any():
        return np.arange(img.shape[0]), np.arange(img.shape[1])
    r, c = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    return (np.arange(max(r[0] - margin, 0), min(r[-1] + margin + 1, img.shape[0])),
            np.arange(max(c[0] - margin, 0), min(c[-1] + margin + 1, img.shape[1])))


def confusion_matrix_clickable(cm: np.ndarray, normalize: bool = False, selected: tuple[int, int] | None = None,
                               title: str = "", errors_only: bool = False, height: int = 520) -> go.Figure:
    """`confusion_matrix` with one transparent square marker over every cell, so a click selects a
    cell: Plotly heatmaps emit no selection events, scatter points do. Marker i is cell (i // 10,
    i % 10) = (true, predicted), also in its customdata. `selected` draws an outline round that cell."""
    cm = np.asarray(cm)
    fig = confusion_matrix(cm, normalize=normalize, title=title, errors_only=errors_only, height=height)
    fig.update_traces(hoverinfo="skip", hovertemplate=None, selector=dict(type="heatmap"))
    rows = cm.sum(axis=1)
    true = np.repeat(np.arange(10), 10)
    pred = np.tile(np.arange(10), 10)
    counts = cm[true, pred].astype(int)
    pct = np.divide(counts * 100.0, rows[true], out=np.zeros(100), where=rows[true] > 0)
    fig.add_trace(go.Scatter(
        x=[DIGITS[p] for p in pred], y=[DIGITS[t] for t in true], mode="markers",
        marker=dict(symbol="square", size=max(20, (height - 90) // 12), color="rgba(0,0,0,0)"),
        customdata=np.stack([true, pred, counts, pct], axis=1),
        hovertemplate="true %{customdata[0]}, predicted %{customdata[1]}: %{customdata[2]} images "
                      "(%{customdata[3]:.1f}% of true %{customdata[0]})<br>click to see them<extra></extra>",
        selected=dict(marker=dict(opacity=1)), unselected=dict(marker=dict(opacity=1)),
        showlegend=False, name="cells"))
    if selected is not None:
        t, p = selected
        fig.add_shape(type="rect", x0=p - 0.5, x1=p + 0.5, y0=t - 0.5, y1=t + 0.5,
                      line=dict(color="#d62728", width=3), xref="x", yref="y")
    # Fixed ranges: autorange would pad the axes for the (invisible) markers, shrinking the matrix.
    fig.update_xaxes(range=[-0.5, len(cm) - 0.5])
    fig.update_yaxes(range=[len(cm) - 0.5, -0.5], autorange=False)
    fig.update_layout(dragmode=False, clickmode="event+select", hovermode="closest")
    return fig


def confidence_histogram(confidence: np.ndarray, correct: np.ndarray, bins: int = 20) -> go.Figure:
    """How confident the model is (its top probability) on right and on wrong answers, each group as a
    percentage of itself so the few mistakes stay visible next to thousands of right answers."""
    confidence = np.asarray(confidence, float)
    correct = np.asarray(correct, bool)
    fig = go.Figure()
    for mask, name, color in ((correct, "right", "#2ca02c"), (~correct, "wrong", "#d62728")):
        fig.add_trace(go.Histogram(
            x=confidence[mask], name=f"{name} ({int(mask.sum()):,})", marker_color=color, opacity=0.65,
            histnorm="percent", xbins=dict(start=0.0, end=1.0 + 1e-9, size=1.0 / bins),
            hovertemplate=f"{name}: %{{y:.1f}}% in confidence %{{x}}<extra></extra>"))
    fig.update_xaxes(title_text="confidence (top probability)", range=[0, 1.02], tickformat=".0%")
    fig.update_yaxes(title_text="% of the group")
    return _frame(fig, 360, title="Confidence on right vs wrong answers", barmode="overlay")


def reliability_diagram(mean_confidence: np.ndarray, fraction_correct: np.ndarray,
                        ece: float | None = None) -> go.Figure:
    """The calibration curve: per confidence bin, how often the model is actually right. On the
    diagonal the model is calibrated; below it, overconfident."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfectly calibrated",
                             line=dict(color="#7f7f7f", dash="dash"), hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=np.asarray(mean_confidence, float), y=np.asarray(fraction_correct, float),
                             mode="lines+markers", name="model", line=dict(color=TRAIN_COLOR),
                             hovertemplate="mean confidence %{x:.1%}: right %{y:.1%}<extra></extra>"))
    fig.update_xaxes(title_text="mean confidence in bin", range=[0, 1.02], tickformat=".0%")
    fig.update_yaxes(title_text="fraction right", range=[0, 1.02], tickformat=".0%")
    title = "Reliability (calibration)" + (f" — ECE {ece:.2%}" if ece is not None else "")
    return _frame(fig, 360, title=title)


# --- Draw page: what the model sees, and why (issues 6, 15, 20) ----------------------------------
# The Draw page shows these as plain images (one PNG each), not Plotly heatmaps: a stroke's page then
# costs the browser a few image decodes instead of laying out dozens of heatmap traces (the two
# feature-map grids alone were 64 subplots, ~330 ms to build on the server and most of a second to
# draw in the browser), and the server builds them in a few milliseconds with numpy.
HOT_STOPS = ((0.0, "#000000"), (1 / 3, "#ff0000"), (2 / 3, "#ffff00"), (1.0, "#ffffff"))  # = _hot_rgb
OUTLINE_RGB = (0, 200, 255)  # the digit's outline over a heat map: cyan, far from black-red-yellow-white
_VIRIDIS = np.array([[int(h[i:i + 2], 16) for i in (1, 3, 5)] for h in
                     ("#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779", "#6ece58",
                      "#b5de2b", "#fde725")], float) / 255  # Plotly's Viridis stops, as the old grid used


def _hot_rgb(v: np.ndarray) -> np.ndarray:
    """The "hot" colormap (black-red-yellow-white) for values in [0, 1], as float RGB in [0, 1]."""
    v = np.clip(np.asarray(v, float), 0, 1)
    return np.stack([np.clip(3 * v, 0, 1), np.clip(3 * v - 1, 0, 1), np.clip(3 * v - 2, 0, 1)], axis=-1)


def _viridis_rgb(v: np.ndarray) -> np.ndarray:
    """Viridis for values in [0, 1] (linear between Plotly's ten stops), as float RGB in [0, 1]."""
    pos = np.clip(np.asarray(v, float), 0, 1) * (len(_VIRIDIS) - 1)
    lo = np.minimum(pos.astype(int), len(_VIRIDIS) - 2)
    t = (pos - lo)[..., None]
    return _VIRIDIS[lo] * (1 - t) + _VIRIDIS[lo + 1] * t


def _upscale(a: np.ndarray, factor: int) -> np.ndarray:
    """Each pixel as a factor x factor block (no smoothing: the pixels are what the model saw)."""
    return np.repeat(np.repeat(a, factor, axis=0), factor, axis=1) if factor > 1 else a


def _to_uint8(rgb: np.ndarray) -> np.ndarray:
    return (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)


def gray_pixels(img: np.ndarray, side: int = 140, pad_value: int = 255) -> np.ndarray:
    """A 2-D image in [0, 1] as a `side` x `side` uint8 gray square: enlarged by the largest whole
    factor that fits (a 20x20 step becomes 140x140 blocks of 7 px), centred, and padded with
    `pad_value` (white, like the page) so that images of different shapes line up in a row while
    each keeps its own aspect ratio. An image larger than `side` must be reduced first."""
    img = np.asarray(img, float)
    if max(img.shape) > side:
        raise ValueError(f"a {img.shape} image does not fit in {side} px; reduce it first")
    big = _upscale(_to_uint8(img), max(1, side // max(img.shape)))
    out = np.full((side, side), pad_value, np.uint8)
    y, x = (side - big.shape[0]) // 2, (side - big.shape[1]) // 2
    out[y:y + big.shape[0], x:x + big.shape[1]] = big
    return out


def outline(mask: np.ndarray) -> np.ndarray:
    """The boundary pixels of a boolean mask: in the mask, with a 4-neighbour outside it."""
    m = np.pad(np.asarray(mask, bool), 1)
    inner = m[1:-1, 1:-1] & m[:-2, 1:-1] & m[2:, 1:-1] & m[1:-1, :-2] & m[1:-1, 2:]
    return np.asarray(mask, bool) & ~inner


def explanation_images(image28: np.ndarray, maps: dict[str, np.ndarray | None], scale: int = 6,
                       ink: float = 0.5) -> dict[str, np.ndarray]:
    """The 28x28 input, then each attribution map (values in [0, 1]) in the "hot" colours at full
    strength with the digit's outline (input > `ink`) drawn over it in cyan, so the map is read on
    its own colour scale (`HOT_STOPS`) and the strokes stay visible. RGB uint8 images of
    (28 * scale) px a side, by name; a None map is left out."""
    img = np.clip(np.asarray(image28, float), 0, 1)
    out = {"model input": _upscale(_to_uint8(np.repeat(img[..., None], 3, axis=-1)), scale)}
    edge = outline(_upscale(img > ink, scale))
    for name, m in maps.items():
        if m is None:
            continue
        rgb = _upscale(_to_uint8(_hot_rgb(m)), scale)
        rgb[edge] = OUTLINE_RGB
        out[name] = rgb
    return out


def _label_font(size: int = 11) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        return ImageFont.load_default()


def feature_map_mosaic(maps: np.ndarray, max_maps: int = 32, cols: int = 8, tile: int = 52,
                       gap: int = 4, label_px: int = 14) -> tuple[np.ndarray, list[int]]:
    """The channels of one conv layer's activation (H, W, C) as one RGB uint8 image: a grid of tiles
    in Viridis, each channel scaled to its own range (so weak but structured maps stay visible) and
    labelled with its channel index, and the list of channels shown. With more than `max_maps`
    channels, the most active ones (highest mean activation) are shown, in channel order."""
    from PIL import Image, ImageDraw

    maps = np.asarray(maps, float)
    if maps.ndim != 3:
        raise ValueError(f"expected (H, W, C) activations, got shape {maps.shape}")
    h, w, n_ch = maps.shape
    order = np.arange(n_ch)
    if n_ch > max_maps:
        order = np.sort(np.argsort(maps.mean(axis=(0, 1)))[::-1][:max_maps])
    factor = max(1, tile // max(h, w))
    th, tw = h * factor, w * factor
    rows = int(np.ceil(len(order) / cols))
    cell_h, cell_w = label_px + th + gap, tw + gap
    canvas = np.full((rows * cell_h, min(cols, len(order)) * cell_w, 3), 255, np.uint8)
    for k, ch in enumerate(order):
        m = maps[..., ch]
        lo, hi = float(m.min()), float(m.max())
        v = (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)
        r, c = divmod(k, cols)
        y, x = r * cell_h + label_px, c * cell_w
        canvas[y:y + th, x:x + tw] = _upscale(_to_uint8(_viridis_rgb(v)), factor)
    im = Image.fromarray(canvas)
    draw, font = ImageDraw.Draw(im), _label_font()
    for k, ch in enumerate(order):
        r, c = divmod(k, cols)
        draw.text((c * cell_w + 1, r * cell_h + 1), f"#{ch}", fill=(90, 90, 90), font=font)
    return np.asarray(im), [int(c) for c in order]


# --- Dataset page -------------------------------------------------------------------------------
DATASET_DIGIT_COLORS = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                        "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#7f7f7f"]  # Tableau 10, one per digit


def _png_data_uri(gray: np.ndarray) -> str:
    import base64
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(gray, np.uint8), "L").save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def dataset_grid(images: np.ndarray, indices: Sequence[int], labels: Sequence[int], cols: int = 10,
                 show_labels: bool = False, height: int = 560, gap: int = 2) -> go.Figure:
    """Many 28x28 images as one picture (a single PNG, so 100+ tiles stay light in the browser), with an
    invisible marker on each tile: hovering gives its dataset index and label, and clicking selects it
    (the marker's customdata is [index, label]; the selected tile gets a red frame). `show_labels`
    writes each tile's label in its corner."""
    images = np.asarray(images, np.uint8)
    n, h, w = images.shape
    rows = max(1, -(-n // cols))
    ch, cw = h + gap, w + gap
    mosaic = np.full((rows * ch + gap, cols * cw + gap), 96, np.uint8)  # grey gaps frame the black tiles
    rr, cc = np.divmod(np.arange(n), cols)
    for k in range(n):
        y0, x0 = gap + rr[k] * ch, gap + cc[k] * cw
        mosaic[y0:y0 + h, x0:x0 + w] = images[k]
    fig = go.Figure(go.Image(source=_png_data_uri(mosaic), hoverinfo="skip"))
    cx, cy = gap + cc * cw + (w - 1) / 2, gap + rr * ch + (h - 1) / 2
    labels = [int(v) for v in labels]
    if show_labels:
        fig.add_trace(go.Scatter(x=cx - w / 2 + 4, y=cy - h / 2 + 5, mode="text", text=[str(v) for v in labels],
                                 textfont=dict(color="#ffd60a", size=12), hoverinfo="skip", showlegend=False,
                                 unselected=dict(textfont=dict(color="#ffd60a"))))  # not dimmed on a click
    # Marker size is in screen pixels: estimate one tile's on-screen size from the figure height.
    tile_px = max(8.0, (height - 20) / mosaic.shape[0] * h * 0.92)
    fig.add_trace(go.Scatter(
        x=cx, y=cy, mode="markers", customdata=np.column_stack([np.asarray(indices, int), labels]),
        marker=dict(symbol="square-open", size=tile_px, color="#ff2b2b", line=dict(width=3), opacity=0),
        selected=dict(marker=dict(opacity=1)), unselected=dict(marker=dict(opacity=0)),
        hovertemplate="image #%{customdata[0]}<br>label %{customdata[1]}<extra></extra>", showlegend=False))
    fig.update_xaxes(visible=False, range=[-0.5, mosaic.shape[1] - 0.5], fixedrange=True)
    fig.update_yaxes(visible=False, range=[mosaic.shape[0] - 0.5, -0.5], fixedrange=True, scaleanchor="x")
    fig.update_layout(height=height, margin=dict(l=0, r=0, t=10, b=10), template="plotly_white",
                      hovermode="closest", hoverdistance=-1, dragmode=False, showlegend=False)
    return fig


def class_distribution(labels_by_split: dict[str, np.ndarray], percent: bool = True) -> go.Figure:
    """Images per digit for each split (e.g. {"train": y_train, "test": y_test}) as grouped bars:
    percentages make splits of different sizes comparable (a dashed line marks a perfect 10%)."""
    fig = go.Figure()
    colors = [TRAIN_COLOR, VAL_COLOR, "#2ca02c"]
    for i, (name, labels) in enumerate(labels_by_split.items()):
        counts = np.bincount(np.asarray(labels, np.int64), minlength=10)[:10]
        share = counts / max(1, counts.sum()) * 100
        y = share if percent else counts
        fig.add_trace(go.Bar(x=DIGITS, y=y, name=f"{name} ({counts.sum():,})", marker_color=colors[i % 3],
                             customdata=np.column_stack([counts, share]),
                             hovertemplate=f"{name}, digit %{{x}}: %{{customdata[0]:,}} images "
                                           "(%{customdata[1]:.1f}%)<extra></extra>"))
    if percent:
        fig.add_hline(y=10, line_dash="dash", line_color="#888", annotation_text="10% each",
                      annotation_position="top right")
    fig.update_xaxes(title_text="digit", type="category")
    fig.update_yaxes(title_text="share of the split (%)" if percent else "images", rangemode="tozero")
    return _frame(fig, 360, barmode="group")


def mean_digit_images(means: np.ndarray, counts: Sequence[int] | None = None, height: int = 340) -> go.Figure:
    """The average image of each digit (10 x 28 x 28, 0-255) in a 2 x 5 grid: the blurred "typical"
    shape of each digit, and how much the writing varies (sharper = more consistent). One heatmap of
    the ten panels side by side (gaps left blank), not ten subplots: a tenth of the traces and axes for
    the browser to lay out; hovering gives the digit, row, column and mean."""
    means = np.asarray(means, float)
    n, h, w = means.shape
    cols, gap_x, gap_y = 5, 3, 9  # gap_y leaves room for each panel's title
    rows = -(-n // cols)
    z = np.full((rows * (h + gap_y) - gap_y, cols * (w + gap_x) - gap_x), np.nan, np.float32)
    cd = np.zeros(z.shape + (3,), np.uint8)  # [digit, row, col] of each cell, for the hover text
    for d in range(n):
        y0, x0 = (d // cols) * (h + gap_y), (d % cols) * (w + gap_x)
        z[y0:y0 + h, x0:x0 + w] = means[d]
        cd[y0:y0 + h, x0:x0 + w] = np.stack(np.broadcast_arrays(d, *np.mgrid[0:h, 0:w]), axis=-1)
    fig = go.Figure(go.Heatmap(z=z, colorscale="gray", zmin=0, zmax=255, showscale=False, customdata=cd,
                               hoverongaps=False, hovertemplate="digit %{customdata[0]}, row %{customdata[1]}, "
                                                                "col %{customdata[2]}: mean %{z:.0f}<extra></extra>"))
    for d in range(n):
        y0, x0 = (d // cols) * (h + gap_y), (d % cols) * (w + gap_x)
        fig.add_annotation(x=x0 + (w - 1) / 2, y=y0 - 0.5, yanchor="bottom", showarrow=False, font=dict(size=13),
                           text=f"{d}" + (f"  (n={int(counts[d]):,})" if counts is not None else ""))
    fig.update_xaxes(visible=False, constrain="domain")
    fig.update_yaxes(visible=False, autorange="reversed", scaleanchor="x", constrain="domain")
    return _frame(fig, height, legend=None, subplot_titles=True)


def pixel_intensity_histogram(hist_by_split: dict[str, np.ndarray], log_y: bool = True) -> go.Figure:
    """Share of pixels at each grey level 0-255 per split (from `np.bincount` counts). On a log scale,
    since most pixels are pure background (0) and the ink piles up near 255."""
    fig = go.Figure()
    colors = [TRAIN_COLOR, VAL_COLOR, "#2ca02c"]
    for i, (name, hist) in enumerate(hist_by_split.items()):
        hist = np.asarray(hist, float)
        share = hist / max(1.0, hist.sum()) * 100
        fig.add_trace(go.Scatter(x=np.arange(len(hist)), y=share, mode="lines", line_shape="hvh", name=name,
                                 line=dict(color=colors[i % 3], width=1.5), fill="tozeroy" if i == 0 else None,
                                 hovertemplate=f"{name}, grey level %{{x}}: %{{y:.3g}}% of pixels<extra></extra>"))
    fig.update_xaxes(title_text="pixel value (0 = black background, 255 = white ink)", range=[-2, 257])
    fig.update_yaxes(title_text="share of pixels (%)", type="log" if log_y else "linear")
    return _frame(fig, 340)


def embedding_scatter(coords: np.ndarray, labels: Sequence[int], indices: Sequence[int], title: str = "",
                      axis_titles: tuple[str, str] = ("", ""), height: int = 500) -> go.Figure:
    """A 2-D map of images, one colour per digit (one trace per digit, so the legend can hide digits),
    each digit's name written at the middle of its points. customdata is [index, label]. Dragging
    draws a selection box (the lasso is in the toolbar), since choosing images is what the map is for."""
    coords = np.asarray(coords, float)
    labels = np.asarray(labels, int)
    indices = np.asarray(indices, int)
    fig = go.Figure()
    for d in range(10):
        m = labels == d
        if not m.any():
            continue
        fig.add_trace(go.Scatter(
            x=coords[m, 0], y=coords[m, 1], mode="markers", name=str(d),
            marker=dict(color=DATASET_DIGIT_COLORS[d], size=6, opacity=0.8),
            customdata=np.column_stack([indices[m], labels[m]]),
            hovertemplate="image #%{customdata[0]}, label %{customdata[1]}<extra></extra>"))
        mx, my = np.median(coords[m], axis=0)
        fig.add_annotation(x=mx, y=my, text=f"<b>{d}</b>", showarrow=False, font=dict(size=18, color="black"),
                           bgcolor="rgba(255,255,255,0.75)", bordercolor=DATASET_DIGIT_COLORS[d], borderwidth=2,
                           borderpad=3)
    fig.update_xaxes(title_text=axis_titles[0], zeroline=False, showticklabels=False)
    fig.update_yaxes(title_text=axis_titles[1], zeroline=False, showticklabels=False)
    fig = _frame(fig, height, title=title or None, legend="right", hovermode="closest", dragmode="select")
    return fig.update_layout(legend=dict(title_text="digit", font=dict(size=11), tracegroupgap=0))


def _category(v: Any) -> str:
    return "-".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)


def sweep_parallel_coordinates(trials: Sequence[dict[str, Any]], dims: Sequence[str], metric: str = "val_accuracy",
                               log_dims: Sequence[str] = ("learning_rate",), height: int = 380) -> go.Figure:
    """A sweep's hyperparameters against its result, one line per trial (`go.Parcoords`): an axis per
    searched setting in `dims` and a last axis for `metric`, lines coloured by it. Numeric settings get
    numeric axes (those in `log_dims` on a log10 scale, ticked with the values); anything else (a
    schedule, a filters list, true/false) gets a categorical axis, one tick per value in order of first
    appearance. `trials` are dicts holding the settings and the metric; those without a metric are left
    out (not trained yet)."""
    kept = [t for t in trials if t.get(metric) is not None]
    if not kept:
        fig = go.Figure()
        fig.add_annotation(text="no results yet: the lines appear as trials finish their first epoch",
                           showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False)
        return _layout(fig, height=height)
    dimensions = []
    for d in dims:
        vals = [t.get(d) for t in kept]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
            if d in log_dims and all(v > 0 for v in vals):
                ticks = sorted(set(vals))
                dimensions.append(dict(label=f"{d} (log)", values=np.log10(vals).tolist(),
                                       tickvals=np.log10(ticks).tolist(), ticktext=[f"{u:g}" for u in ticks]))
            else:
                dimensions.append(dict(label=d, values=vals))
        else:
            labels = [_category(v) for v in vals]
            cats = list(dict.fromkeys(labels))
            dimensions.append(dict(label=d, values=[cats.index(s) for s in labels], tickvals=list(range(len(cats))),
                                   ticktext=cats, range=[-0.25, max(len(cats) - 0.75, 0.25)]))
    scores = [float(t[metric]) for t in kept]
    dimensions.append(dict(label=metric, values=scores))
    fig = go.Figure(go.Parcoords(
        line=dict(color=scores, colorscale="Viridis", showscale=True, colorbar=dict(title=dict(text=metric))),
        dimensions=dimensions))
    fig = _layout(fig, height=height)
    fig.update_layout(margin=dict(l=60, r=60, t=60, b=30))  # room for the axis labels
    return fig
