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
