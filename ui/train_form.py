"""The Train page's form: one table of fields drives the widgets, their defaults and the config.

Each `Field` names a `TrainConfig` (or, with `arch=True`, an `ArchConfig`) field, its widget, its label
and its session-state key; the numeric bounds come from `config.RANGES`, the same table the validation
reads. From the table: `values_of(config)` (a config as widget values: a preset's defaults), `config_of`
(the widget values as a config, validated by the core), `LABELS` (the field names of the core's error
messages in the form's words), and `render` (draw them). Streamlit forgets the state of widgets it did
not draw (a visit to another page, a filter box hidden by fewer conv blocks), so the form keeps a plain
copy of its values (`save`) and restores missing ones from it (`init`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import streamlit as st

from mnist_core import architectures, classset, runs, scheduler
from mnist_core.config import (
    DATA_CHOICES,
    DATA_TITLES,
    KERNELS,
    MAX_BLOCKS,
    OPTIMIZERS,
    PRESET_NAMES,
    RANGES,
    SCHEDULES,
    ArchConfig,
    ConfigError,
    TrainConfig,
    preset_config,
)
from mnist_core.presets import CUSTOM, PRESETS

from . import state

ss = st.session_state
PRESET = "tr_preset"
NAME = "tr_name"
USE_LIMIT = "tr_use_limit"
AUTO_NAME = "tr_auto_name"  # the last generated default name: replaced on preset change while unedited
SAVED = "train_form_saved"  # a plain (non-widget) copy of the form, which survives visits to other pages
SAVED_RUN = "train_form_saved_run"  # the script run that saved it
# The Classroom demo: a real learning curve (three epoch points, ~95 % for classic) in ~10 s on 2 quiet
# cores, 4 s of it the trainer's start (TensorFlow's import). One epoch of 2,000 ended at ~85 % with one
# dot per curve.
DEMO = {"limit": 3000, "epochs": 3}


@dataclass(frozen=True)
class Field:
    name: str  # the config field
    key: str  # session-state key of its widget
    label: str
    kind: str  # int | float | slider | select | check
    arch: bool = False  # an ArchConfig field (custom preset only)
    options: Sequence[Any] = ()
    step: float | None = None
    fmt: str | None = None
    needs: str | None = None  # the check field that enables this one
    help: str | None = None


FIELDS = [
    Field("epochs", "tr_epochs", "Epochs", "int", step=1),
    Field("batch_size", "tr_batch", "Batch size", "int", step=16),
    Field("optimizer", "tr_opt", "Optimizer", "select", options=OPTIMIZERS),
    Field("learning_rate", "tr_lr", "Learning rate", "float", step=1e-4, fmt="%.5f"),
    Field("lr_schedule", "tr_sched", "Schedule", "select", options=SCHEDULES,
          help="constant; cosine decay; step (halve at 50 % and 75 %); one-cycle (warm-up, decay)"),
    Field("validation_split", "tr_val", "Validation split", "slider", step=0.05,
          help="Fraction of the training images held out to measure validation accuracy."),
    Field("seed", "tr_seed", "Seed", "int", step=1),
    Field("data", "tr_data", "Training data", "select", options=DATA_CHOICES,
          help="MNIST; MNIST with the class's own drawings (from Draw) added; or the class's drawings alone, "
               "to fine-tune a trained model (Continue training). A held-out part of the class set is never "
               "trained on: the Leaderboard scores every model on it."),
    Field("early_stopping", "tr_es", "Early stopping", "check"),
    Field("patience", "tr_patience", "Patience (epochs)", "int", step=1, needs="early_stopping",
          help="Early stopping ends training when validation loss has not improved for this many epochs "
               "(needs a validation split) and keeps the best epoch's weights."),
    Field("augment", "tr_aug", "Augmentation", "check"),
    Field("rotation_deg", "tr_rot", "Rotation (°)", "slider", step=1.0, needs="augment",
          help="Augmentation randomly rotates, shifts and zooms each training image."),
    Field("shift_frac", "tr_shift", "Shift (fraction)", "slider", step=0.01, needs="augment"),
    Field("zoom_frac", "tr_zoom", "Zoom (fraction)", "slider", step=0.01, needs="augment"),
    Field("limit", "tr_limit", "Subset size (images)", "int", step=500, needs="limit",
          help="Train on only this many images (taken before the validation split)."),
    Field("conv_blocks", "tr_blocks", "Conv blocks", "int", arch=True, step=1),
    Field("kernel_size", "tr_kernel", "Kernel", "select", arch=True, options=KERNELS),
    Field("dense_units", "tr_dense", "Dense units", "int", arch=True, step=16),
    Field("dropout", "tr_dropout", "Dropout", "slider", arch=True, step=0.05),
    Field("batch_norm", "tr_bn", "Batch norm", "check", arch=True),
]
BY_NAME = {f.name: f for f in FIELDS}
FILTER_KEYS = [f"tr_f{i}" for i in range(MAX_BLOCKS)]  # one filters box per conv block
LABELS = {"preset": "Preset", "filters": "Filters", "use_limit": "Use a subset",
          **{f.name: f.label for f in FIELDS}}
FORM_KEYS = [PRESET, NAME, USE_LIMIT, AUTO_NAME, *FILTER_KEYS, *(f.key for f in FIELDS)]
# Where each field sits: rows of columns, then the three option boxes, then the architecture.
ROWS = [("epochs", "batch_size", "optimizer", "learning_rate"), ("lr_schedule", "validation_split", "seed", "data")]
BOXES = [("early_stopping", "patience"), ("augment", "rotation_deg", "shift_frac", "zoom_frac"), ("limit",)]
ARCH_ROWS = [("conv_blocks", "kernel_size", "dense_units"), ("dropout", "batch_norm")]


def _filters_after(prev: int) -> int:
    """A new conv block's default width: double the block before it (the usual CNN progression)."""
    return int(min(max(2 * prev, RANGES["filters"][0]), RANGES["filters"][1]))


def values_of(cfg: TrainConfig) -> dict[str, Any]:
    """The widget values showing `cfg` (numbers as the widgets' own types)."""
    vals: dict[str, Any] = {}
    for f in FIELDS:
        v = getattr(cfg.arch if f.arch else cfg, f.name)
        if f.name == "limit":
            vals[USE_LIMIT] = v is not None
            v = DEMO["limit"] if v is None else v
        vals[f.key] = float(v) if f.kind in ("float", "slider") else v
    width = RANGES["filters"][0]
    for i, key in enumerate(FILTER_KEYS):
        width = cfg.arch.filters[i] if i < len(cfg.arch.filters) else _filters_after(width)
        vals[key] = width
    return vals


def config_of(values: dict[str, Any]) -> TrainConfig:
    """The TrainConfig the widget values describe; raises ConfigError (field + reason)."""
    preset = values[PRESET]
    kw: dict[str, Any] = {}
    arch_kw: dict[str, Any] = {}
    for f in FIELDS:
        v = values[f.key]
        v = float(v) if f.kind in ("float", "slider") else bool(v) if f.kind == "check" else \
            int(v) if f.kind == "int" else v
        (arch_kw if f.arch else kw)[f.name] = v
    kw["limit"] = kw["limit"] if values[USE_LIMIT] else None
    if preset == CUSTOM:
        n = int(arch_kw["conv_blocks"])
        arch = ArchConfig(preset=CUSTOM, filters=tuple(int(values[k]) for k in FILTER_KEYS[:n]), **arch_kw)
    else:
        arch = ArchConfig(preset=preset)
    return TrainConfig(arch=arch, **kw)


# --- session state ----------------------------------------------------------------------------------
def _new_name(preset: str) -> None:
    ss[NAME] = ss[AUTO_NAME] = runs.default_run_name(preset)


def init() -> None:
    """Set the widget values: on the first visit the defaults (the classic preset); when the last full
    run did not draw the form (a visit to another page) what the user had set, from the plain copy
    (the widgets' own state may be gone, or stale)."""
    saved = ss.get(SAVED, {})
    if saved and ss.get(SAVED_RUN) != state.run_id() - 1:
        ss.update({k: v for k, v in saved.items() if k != NAME})
    ss.setdefault(PRESET, saved.get(PRESET, "classic"))
    for k, v in values_of(preset_config(ss[PRESET])).items():
        ss.setdefault(k, saved.get(k, v))
    if NAME not in ss:
        if saved.get(NAME) and saved.get(NAME) != saved.get(AUTO_NAME):
            ss[NAME] = saved[NAME]
        else:
            _new_name(ss[PRESET])
    elif ss[NAME] == ss.get(AUTO_NAME) and (runs.runs_root() / ss[NAME]).exists():
        _new_name(ss[PRESET])  # the proposed name was taken meanwhile (another tab or user): the next free one


def save() -> None:
    ss[SAVED] = {k: ss[k] for k in FORM_KEYS if k in ss}
    ss[SAVED_RUN] = state.run_id()


def on_preset() -> None:
    # Picking a preset loads its recommended settings; subset, seed and an edited name are kept.
    keep = {k: ss[k] for k in (USE_LIMIT, BY_NAME["limit"].key, BY_NAME["seed"].key) if k in ss}
    ss.update({**values_of(preset_config(ss[PRESET])), **keep})
    if ss.get(NAME) == ss.get(AUTO_NAME):
        _new_name(ss[PRESET])


def on_demo() -> None:
    ss.update({USE_LIMIT: True, BY_NAME["limit"].key: DEMO["limit"], BY_NAME["epochs"].key: DEMO["epochs"]})


def started() -> None:
    """After a Start: the next Start must not collide with this run's name."""
    _new_name(ss[PRESET])


def validated(n_train: int) -> tuple[TrainConfig | None, str | None]:
    """(config, None) or (None, a message in the form's terms, with the core's reason)."""
    try:
        cfg = config_of(ss)
        if cfg.data != "mnist":  # the class set's training part is what it adds, or all it learns from
            n_class = len(classset.as_dataset().y_train)
            if n_class < 10:
                return None, (f"Training data: the class set has {n_class} drawings to train on; at least 10 are "
                              "needed (add drawings on the Draw page)")
            n_train = n_class if cfg.data == "class" else n_train + n_class
        cfg.check_against_data(n_train)
        architectures.summary_rows(cfg.arch)
        scheduler.check_memory(cfg, n_train)
    except ConfigError as e:
        return None, f"{LABELS.get(e.field, 'Architecture' if e.field == 'arch' else e.field)}: {e.reason}"
    except runs.RunError as e:  # more memory than this server has free
        return None, f"Too big for this server: {e}"
    except ValueError as e:  # the architecture shrinks the image away
        return None, f"Architecture: {e}"
    return cfg, None


# --- drawing ----------------------------------------------------------------------------------------
def _widget(f: Field, where: Any = st) -> None:
    lo, hi = RANGES.get(f.name, (None, None))
    enabled_by = USE_LIMIT if f.needs == "limit" else BY_NAME[f.needs].key if f.needs else None
    disabled = bool(enabled_by) and not ss[enabled_by]
    kw = dict(key=f.key, disabled=disabled, help=f.help)
    if f.kind == "int":
        where.number_input(f.label, int(lo), int(hi), step=int(f.step or 1), **kw)
    elif f.kind == "float":
        where.number_input(f.label, 0.0, float(hi), step=f.step, format=f.fmt, **kw)
    elif f.kind == "slider":
        where.slider(f.label, float(lo), float(hi), step=f.step, **kw)
    elif f.kind == "select":
        fmt = (lambda k: f"{k}×{k}") if f.name == "kernel_size" else DATA_TITLES.get if f.name == "data" else str
        where.selectbox(f.label, f.options, format_func=fmt, **kw)
    elif f.kind == "check":
        where.checkbox(f.label, **{k: v for k, v in kw.items() if k != "help"})


def _training_fields() -> None:
    for row in ROWS:
        cols = st.columns([1.3 if n == "learning_rate" else 1 for n in row])
        for col, name in zip(cols, row, strict=True):
            _widget(BY_NAME[name], col)
    # Each option next to the settings it enables; those stay visible (disabled) so the layout is stable.
    for box, names in zip(st.columns(len(BOXES), border=True), BOXES, strict=True):
        if names == ("limit",):
            box.checkbox("Use a subset", key=USE_LIMIT)
        for name in names:
            _widget(BY_NAME[name], box)


def _architecture_fields() -> None:
    for row in ARCH_ROWS:
        for col, name in zip(st.columns(len(row)), row, strict=True):
            _widget(BY_NAME[name], col)
        if row[0] == "conv_blocks" and int(ss["tr_blocks"]):
            cols = st.columns(MAX_BLOCKS)
            for i in range(int(ss["tr_blocks"])):
                if FILTER_KEYS[i] not in ss:  # a block just added: its widget state was dropped while hidden
                    ss[FILTER_KEYS[i]] = _filters_after(int(ss[FILTER_KEYS[i - 1]])) if i else 32
                lo, hi = RANGES["filters"]
                cols[i].number_input(f"Filters {i + 1}", int(lo), int(hi), step=8, key=FILTER_KEYS[i])


def _layer_table(arch: ArchConfig) -> None:
    try:
        rows = architectures.summary_rows(arch)
    except ValueError as e:
        st.error(f"Architecture: {e}")
        return
    st.metric("Parameters", f"{sum(r['params'] for r in rows):,}")
    table = pd.DataFrame([{"layer": r["layer"], "kind": r["kind"], "output": "×".join(map(str, r["output_shape"])),
                           "params": r["params"]} for r in rows])
    st.dataframe(table, key="tr_layers", hide_index=True, width="stretch", height=35 * len(rows) + 38,
                 column_config={"params": st.column_config.NumberColumn(format="localized")})


def render(n_train: int) -> tuple[TrainConfig | None, str | None]:
    """Draw the form; return (the config it describes, None) or (None, what is wrong)."""
    left, right = st.columns([5, 3], gap="large")
    with left:
        st.selectbox("Preset", PRESET_NAMES, key=PRESET, on_change=on_preset,
                     format_func=lambda p: f"{p} — {PRESETS[p].description}",
                     help="Picking a preset fills in its recommended settings.")
        _training_fields()
    cfg, err = validated(n_train)
    with right:
        custom = ss[PRESET] == CUSTOM
        st.markdown("**Architecture**")
        if custom:
            _architecture_fields()
        else:
            st.caption(f"The *{ss[PRESET]}* preset's network is fixed: these are the layers it builds. "
                       "Choose *custom* to build your own.")
        try:
            shown = cfg.arch if cfg else config_of(ss).arch
        except (ConfigError, ValueError):
            shown = None if custom else ArchConfig(preset=ss[PRESET])
        if shown is not None:
            _layer_table(shown)
    return cfg, err


def demo_help() -> str:
    return (f"Sets a {DEMO['limit']:,}-image subset and {DEMO['epochs']} epochs: a run that shows a learning curve in "
            "well under a minute (about 10 s on two idle cores with the classic preset).")

