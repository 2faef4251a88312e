"""Plotly figures for the pages and notebooks: training curves, confusion matrices, probability bars,
image grids and the rest. Pure functions from arrays or run data to `go.Figure`; no streamlit here, so
every figure can also be used from a notebook and tested without a browser.
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


def training_curves(history: Sequence[dict[str, Any]], batch_points: Sequence[dict[str, Any]] = (),
                    title: str = "") -> go.Figure:
    """Loss and accuracy per epoch, training and validation, side by side. `batch_points` (dicts with
    `x` in fractional epochs, `loss`, `accuracy`) adds the running values inside the current epoch."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Loss", "Accuracy"), horizontal_spacing=0.08)
    epochs = [r["epoch"] for r in history]
    for col, key in ((1, "loss"), (2, "accuracy")):
        show = col == 1
        if batch_points:
            fig.add_trace(go.Scatter(x=[p["x"] for p in batch_points], y=[p[key] for p in batch_points],
                                     mode="lines", line=dict(color=TRAIN_COLOR, width=1, dash="dot"),
                                     name="train (running)", legendgroup="run", showlegend=show,
                                     opacity=0.6), row=1, col=col)
        fig.add_trace(go.Scatter(x=epochs, y=[r.get(key) for r in history], mode="lines+markers",
                                 line=dict(color=TRAIN_COLOR), name="train", legendgroup="train",
                                 showlegend=show), row=1, col=col)
        if any(r.get(f"val_{key}") is not None for r in history):
            fig.add_trace(go.Scatter(x=epochs, y=[r.get(f"val_{key}") for r in history], mode="lines+markers",
                                     line=dict(color=VAL_COLOR), name="validation", legendgroup="val",
                                     showlegend=show), row=1, col=col)
        fig.update_xaxes(title_text="epoch", row=1, col=col, rangemode="tozero")
    return _layout(fig, title=title or None)


def overlay_curves(histories: dict[str, Sequence[dict[str, Any]]], metric: str = "val_accuracy") -> go.Figure:
    """One line per run for one metric, to compare runs."""
    fig = go.Figure()
    for name, hist in histories.items():
        ys = [r.get(metric) for r in hist]
        if not any(y is not None for y in ys):
            ys = [r.get(metric.removeprefix("val_")) for r in hist]
        fig.add_trace(go.Scatter(x=[r["epoch"] for r in hist], y=ys, mode="lines+markers", name=name))
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(title_text=metric.replace("_", " "))
    return _layout(fig, height=360, title=f"{metric.replace('_', ' ')} by epoch")


def confusion_matrix(cm: np.ndarray, normalize: bool = False, title: str = "",
                     colorscale: str = "Blues", diverging: bool = False) -> go.Figure:
    """An annotated heatmap like seaborn's: true digit on y (top to bottom), predicted on x, every cell
    labelled. `normalize` shows row percentages (recall per digit). `diverging` is for differences."""
    cm = np.asarray(cm)
    if normalize:
        rows = cm.sum(axis=1, keepdims=True)
        z = np.divide(cm * 100.0, rows, out=np.zeros(cm.shape, float), where=rows > 0)
        text = [[f"{v:.1f}" for v in row] for row in z]
        hover = "true %{y}, predicted %{x}: %{z:.2f}%<extra></extra>"
    else:
        z = cm
        text = [[f"{v:+d}" if diverging else f"{v:d}" for v in row] for row in cm.astype(int)]
        hover = "true %{y}, predicted %{x}: %{z}<extra></extra>"
    kw: dict[str, Any] = {"colorscale": "RdBu", "zmid": 0} if diverging else {"colorscale": colorscale}
    fig = go.Figure(go.Heatmap(z=z, x=DIGITS, y=DIGITS, text=text, texttemplate="%{text}",
                               hovertemplate=hover, xgap=1, ygap=1, **kw))
    fig.update_xaxes(title_text="predicted digit", side="bottom", type="category")
    fig.update_yaxes(title_text="true digit", autorange="reversed", type="category")
    return _layout(fig, height=520, title=title or None)


def probability_bars(probs: Sequence[float], highlight: int | None = None) -> go.Figure:
    """The ten class probabilities as bars, the predicted digit highlighted."""
    probs = np.asarray(probs, float)
    top = int(probs.argmax()) if highlight is None else highlight
    colors = ["#d62728" if d == top else "#9ecae1" for d in range(10)]
    fig = go.Figure(go.Bar(x=DIGITS, y=probs, marker_color=colors, text=[f"{p:.0%}" for p in probs],
                           textposition="outside", hovertemplate="digit %{x}: %{y:.3f}<extra></extra>"))
    fig.update_yaxes(range=[0, 1.1], tickformat=".0%", title_text="probability")
    fig.update_xaxes(title_text="digit", type="category")
    return _layout(fig, height=300, showlegend=False)


def image(img: np.ndarray, title: str = "", show_values: bool = False, height: int = 300) -> go.Figure:
    """One grayscale image as a heatmap (white ink on black), optionally with pixel values written in."""
    img = np.asarray(img, float)
    kw: dict[str, Any] = {}
    if show_values:
        kw = dict(text=np.round(img).astype(int) if img.max() > 1 else np.round(img, 2),
                  texttemplate="%{text}", textfont=dict(size=7))
    fig = go.Figure(go.Heatmap(z=img, colorscale="gray", showscale=False,
                               hovertemplate="row %{y}, col %{x}: %{z}<extra></extra>", **kw))
    fig.update_yaxes(autorange="reversed", scaleanchor="x", showticklabels=False)
    fig.update_xaxes(showticklabels=False)
    return _layout(fig, height=height, title=title or None)


def confusion_matrix_clickable(cm: np.ndarray, normalize: bool = False, selected: tuple[int, int] | None = None,
                               title: str = "") -> go.Figure:
    """`confusion_matrix` with one transparent square marker over every cell, so a click selects a
    cell: Plotly heatmaps emit no selection events, scatter points do. Marker i is cell (i // 10,
    i % 10) = (true, predicted), also in its customdata. `selected` draws an outline round that cell."""
    cm = np.asarray(cm)
    fig = confusion_matrix(cm, normalize=normalize, title=title)
    fig.update_traces(hoverinfo="skip", hovertemplate=None, selector=dict(type="heatmap"))
    rows = cm.sum(axis=1)
    true = np.repeat(np.arange(10), 10)
    pred = np.tile(np.arange(10), 10)
    counts = cm[true, pred].astype(int)
    pct = np.divide(counts * 100.0, rows[true], out=np.zeros(100), where=rows[true] > 0)
    fig.add_trace(go.Scatter(
        x=[DIGITS[p] for p in pred], y=[DIGITS[t] for t in true], mode="markers",
        marker=dict(symbol="square", size=34, color="rgba(0,0,0,0)"),
        customdata=np.stack([true, pred, counts, pct], axis=1),
        hovertemplate="true %{customdata[0]}, predicted %{customdata[1]}: %{customdata[2]} images "
                      "(%{customdata[3]:.1f}% of true %{customdata[0]})<br>click to see them<extra></extra>",
        selected=dict(marker=dict(opacity=1)), unselected=dict(marker=dict(opacity=1)),
        showlegend=False, name="cells"))
    if selected is not None:
        t, p = selected
        fig.add_shape(type="rect", x0=p - 0.5, x1=p + 0.5, y0=t - 0.5, y1=t + 0.5,
                      line=dict(color="#d62728", width=3), xref="x", yref="y")
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
    fig.update_layout(barmode="overlay")
    fig.update_xaxes(title_text="confidence (top probability)", range=[0, 1.02], tickformat=".0%")
    fig.update_yaxes(title_text="% of the group")
    fig = _layout(fig, height=360, title="Confidence on right vs wrong answers")
    return fig.update_layout(margin=dict(t=80), title=dict(y=0.97))  # room for the legend under the title


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
    fig = _layout(fig, height=360, title=title)
    return fig.update_layout(margin=dict(t=80), title=dict(y=0.97))  # room for the legend under the title


# --- Draw page: what the model sees, and why (issue 6) -------------------------------------------
def _hot_rgb(v: np.ndarray) -> np.ndarray:
    """The "hot" colormap (black-red-yellow-white) for values in [0, 1], as float RGB in [0, 1]."""
    v = np.clip(np.asarray(v, float), 0, 1)
    return np.stack([np.clip(3 * v, 0, 1), np.clip(3 * v - 1, 0, 1), np.clip(3 * v - 2, 0, 1)], axis=-1)


def image_steps(steps: dict[str, np.ndarray], height: int = 240,
                sizes: dict[str, tuple[int, int]] | None = None) -> go.Figure:
    """Images side by side, each with its own title and size shown (e.g. the preprocessing steps),
    drawn as white ink on black like MNIST. `sizes` ((height, width) by name) gives the true size of
    an image passed as a reduced display copy."""
    names = list(steps)
    shapes = {n: (sizes or {}).get(n, steps[n].shape[:2]) for n in names}
    fig = make_subplots(rows=1, cols=max(1, len(names)), horizontal_spacing=0.03,
                        subplot_titles=[f"{n}<br><sub>{shapes[n][1]}×{shapes[n][0]} px</sub>" for n in names])
    for i, n in enumerate(names, start=1):
        fig.add_trace(go.Heatmap(z=np.asarray(steps[n], float), colorscale="gray", zmin=0, zmax=1,
                                 showscale=False, name=n,
                                 hovertemplate=f"{n}<br>row %{{y}}, col %{{x}}: %{{z:.2f}}<extra></extra>"),
                      row=1, col=i)
        fig.update_yaxes(autorange="reversed", scaleanchor=f"x{i if i > 1 else ''}", showticklabels=False,
                         showgrid=False, zeroline=False, row=1, col=i)
        fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False, constrain="domain", row=1, col=i)
    fig = _layout(fig, height=height, showlegend=False)
    fig.update_layout(margin=dict(l=5, r=5, t=60, b=5))
    return fig


def explanation_maps(image28: np.ndarray, maps: dict[str, np.ndarray | None], alpha: float = 0.6,
                     height: int = 300) -> go.Figure:
    """The 28x28 input, then each attribution map (values in [0, 1]) in the "hot" colours blended over
    the input, so one sees which strokes a map lights up. A None map is left out."""
    img = np.clip(np.asarray(image28, float), 0, 1)
    panels: dict[str, np.ndarray] = {"model input": np.repeat(img[..., None], 3, axis=-1)}
    raw: dict[str, np.ndarray] = {"model input": img}
    for name, m in maps.items():
        if m is None:
            continue
        m = np.clip(np.asarray(m, float), 0, 1)
        base = 0.45 * img[..., None]  # the input dimmed, so the heat stands out on top of it
        a = alpha * m[..., None]
        panels[name] = base * (1 - a) + _hot_rgb(m) * a
        raw[name] = m
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=list(panels), horizontal_spacing=0.03)
    for i, (name, rgb) in enumerate(panels.items(), start=1):
        fig.add_trace(go.Image(z=(rgb * 255).astype(np.uint8), customdata=raw[name], name=name,
                               hovertemplate=f"{name}<br>row %{{y}}, col %{{x}}: %{{customdata:.2f}}"
                                             "<extra></extra>"), row=1, col=i)
        fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False, row=1, col=i)
        fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False, row=1, col=i)
    fig = _layout(fig, height=height, showlegend=False)
    fig.update_layout(margin=dict(l=5, r=5, t=40, b=5))
    return fig


def feature_map_grid(maps: np.ndarray, title: str = "", max_maps: int = 32, cols: int = 8) -> go.Figure:
    """The channels of one conv layer's activation (H, W, C) as a grid of small heatmaps. With more
    than `max_maps` channels, the most active ones are shown (each labelled with its channel index).
    Each map has its own colour range, so weak but structured maps stay visible."""
    maps = np.asarray(maps, float)
    if maps.ndim != 3:
        raise ValueError(f"expected (H, W, C) activations, got shape {maps.shape}")
    n_ch = maps.shape[-1]
    order = np.arange(n_ch)
    if n_ch > max_maps:
        order = np.sort(np.argsort(maps.mean(axis=(0, 1)))[::-1][:max_maps])
    rows = int(np.ceil(len(order) / cols))
    fig = make_subplots(rows=rows, cols=cols, horizontal_spacing=0.01, vertical_spacing=0.04,
                        subplot_titles=[f"#{c}" for c in order])
    for k, ch in enumerate(order):
        r, c = divmod(k, cols)
        fig.add_trace(go.Heatmap(z=maps[..., ch], colorscale="Viridis", showscale=False,
                                 hovertemplate=f"channel {ch}<br>row %{{y}}, col %{{x}}: %{{z:.3f}}<extra></extra>"),
                      row=r + 1, col=c + 1)
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False, constrain="domain")
    fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False, autorange="reversed",
                     constrain="domain")
    for k in range(len(order)):  # square pixels in every cell
        fig.layout[f"yaxis{k + 1 if k else ''}"].scaleanchor = f"x{k + 1 if k else ''}"
    fig.update_annotations(font_size=10)
    fig = _layout(fig, height=40 + rows * 125, showlegend=False, title=title or None)
    fig.update_layout(margin=dict(l=5, r=5, t=50 if title else 25, b=5))
    return fig


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
    return _layout(fig, height=360, barmode="group")


def mean_digit_images(means: np.ndarray, counts: Sequence[int] | None = None, height: int = 340) -> go.Figure:
    """The average image of each digit (10 x 28 x 28, 0-255) in a 2 x 5 grid: the blurred "typical"
    shape of each digit, and how much the writing varies (sharper = more consistent)."""
    means = np.asarray(means, float)
    titles = [f"{d}" + (f"  (n={int(counts[d]):,})" if counts is not None else "") for d in range(10)]
    fig = make_subplots(rows=2, cols=5, subplot_titles=titles, horizontal_spacing=0.02, vertical_spacing=0.1)
    for d in range(10):
        fig.add_trace(go.Heatmap(z=means[d], colorscale="gray", zmin=0, zmax=255, showscale=False,
                                 hovertemplate=f"digit {d}, row %{{y}}, col %{{x}}: mean %{{z:.0f}}<extra></extra>"),
                      row=d // 5 + 1, col=d % 5 + 1)
    fig.update_xaxes(visible=False, constrain="domain")
    fig.update_yaxes(visible=False, autorange="reversed", constrain="domain")
    for i in range(1, 11):  # square pixels in every panel
        fig.layout[f"yaxis{'' if i == 1 else i}"].scaleanchor = f"x{'' if i == 1 else i}"
    return _layout(fig, height=height, showlegend=False)


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
    return _layout(fig, height=340)


def embedding_scatter(coords: np.ndarray, labels: Sequence[int], indices: Sequence[int], title: str = "",
                      axis_titles: tuple[str, str] = ("", ""), height: int = 480) -> go.Figure:
    """A 2-D map of images, one colour per digit (one trace per digit, so the legend can hide digits),
    each digit's name written at the middle of its points. customdata is [index, label]."""
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
    fig = _layout(fig, height=height, title=title or None, hovermode="closest")
    # A vertical legend on the right: across the top it would cover the title.
    fig.update_layout(legend=dict(orientation="v", x=1.0, xanchor="left", y=1, yanchor="top", title_text="digit"),
                      margin=dict(r=60))
    return fig
