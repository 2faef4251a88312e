"""The Sweep page's parts: the search form and the view of a sweep (progress, plot, trials, best run).

The form draws one row per searchable setting, in the order of `sweep.SPACE` (the one table of what a
sweep can search and which ranges each setting takes); `DIMS` adds only how each one is entered. What
the widgets say is turned into a `sweep.json` dict and validated by the core (`SweepConfig.from_dict`),
whose error names the setting; Start goes through `sweeps.start_sweep`, on the engine the server is
configured for. The view reads the sweep's folder and its trials' run folders (`sweeps.read_sweep`),
polling in a fragment every 2 s while the sweep is in progress and drawn once when it has ended, so its
"Use as current model" button reruns the whole app (the sidebar shows the choice). Nothing here
imports TensorFlow or Ray.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

import pandas as pd
import streamlit as st

from mnist_core import manage, plots, runs, scheduler, sweeps
from mnist_core.config import OPTIMIZERS, PRESET_NAMES, RANGES, SCHEDULES, ConfigError, preset_config
from mnist_core.data import DataError
from mnist_core.presets import CUSTOM
from mnist_core.ray_engine import ray_address
from mnist_core.sweep import MAX_TRIALS, METRICS, SPACE, SweepConfig, trial_configs, trial_settings

from . import fmt, loaders, session, state, train_live

ss = st.session_state
F = "swf_"  # the form's widget keys (kept across page visits, see _init/_save)
SAVED = "sweep_form_saved"
WATCH = "sw_watch"  # the sweep this session shows
MSG = "sw_msg"
POLL_S = 2


@dataclass(frozen=True)
class DimUI:
    """How one searchable setting is entered: its label, the kind of its values, the choices shown by
    default and (for the settings that take one) the default range."""

    label: str
    kind: str  # float | int | filters | select
    default: str | tuple[Any, ...] = ""  # text of choices, or the selected options for "select"
    options: tuple[Any, ...] = ()  # for "select"
    default_range: tuple[float, float] | None = None


DIMS: dict[str, DimUI] = {
    "learning_rate": DimUI("Learning rate", "float", "0.003, 0.001, 0.0003", default_range=(1e-4, 1e-2)),
    "batch_size": DimUI("Batch size", "int", "32, 64"),
    "filters": DimUI("Filters per conv block", "filters", "16-32; 32-64"),
    "dropout": DimUI("Dropout", "float", "0.25, 0.5", default_range=(0.1, 0.5)),
    "augment": DimUI("Augmentation", "select", (False, True), options=(False, True)),
    "lr_schedule": DimUI("Schedule", "select", ("constant", "cosine"), options=SCHEDULES),
    "epochs": DimUI("Epochs", "int", "2, 4"),
}
# The range bounds of each setting's widgets (config.RANGES names them by the config's field).
_BOUNDS = {"learning_rate": RANGES["learning_rate"], "dropout": RANGES["dropout"]}
BASE_DEFAULTS = {"preset": "classic", "optimizer": "adam", "epochs": 3, "batch_size": 32, "learning_rate": 1e-3,
                 "limit": 2000, "validation_split": 0.1}


def _key(name: str) -> str:
    return F + name


def _default(name: str, value: Any) -> None:
    ss.setdefault(_key(name), value)


# --- the form ------------------------------------------------------------------------------------
def _init() -> None:
    """Restore what the user set before a visit to another page (Streamlit forgets widgets not drawn)."""
    for k, v in ss.get(SAVED, {}).items():
        ss.setdefault(k, v)
    for k, v in BASE_DEFAULTS.items():
        _default(k, v)
    for name, d in DIMS.items():
        _default(f"on_{name}", name == "learning_rate")
        _default(f"mode_{name}", "choices")
        _default(f"choices_{name}", list(d.default) if d.kind == "select" else d.default)
        if d.default_range:
            _default(f"lo_{name}", d.default_range[0])
            _default(f"hi_{name}", d.default_range[1])
    for k, v in {"method": "grid", "trials": 6, "seed": 0, "asha": True, "metric": "val_accuracy", "grace": 1,
                 "reduction": 2, "concurrent": 2, "name": sweeps.default_sweep_name()}.items():
        _default(k, v)


def _save() -> None:
    ss[SAVED] = {k: v for k, v in ss.items() if isinstance(k, str) and k.startswith(F)}


def _parse_choices(name: str, text: str) -> list[Any]:
    """The choices typed for a numeric setting ("0.003, 0.001"; filters: "16-32; 32-64"); ValueError
    naming the bad entry."""
    kind = DIMS[name].kind
    if kind == "filters":
        out = []
        for part in [p for p in text.split(";") if p.strip()]:
            nums = [n for n in re.split(r"[\s,x\-]+", part.strip()) if n]
            if not nums or not all(n.isdigit() for n in nums):
                raise ValueError(f"{part.strip()!r} is not a list of filter counts (write 16-32; 32-64)")
            out.append([int(n) for n in nums])
        return out
    out = []
    for part in [p.strip() for p in text.split(",") if p.strip()]:
        try:
            out.append(int(part) if kind == "int" else float(part))
        except ValueError:
            raise ValueError(f"{part!r} is not {'a whole number' if kind == 'int' else 'a number'}") from None
    return out


def sweep_dict() -> dict[str, Any]:
    """The form as a sweep.json dict (ValueError for choices that cannot be read, naming the setting)."""
    g = lambda n: ss[_key(n)]  # noqa: E731
    base = preset_config(g("preset")).to_dict()
    base.update(optimizer=g("optimizer"), epochs=int(g("epochs")), batch_size=int(g("batch_size")),
                learning_rate=float(g("learning_rate")), validation_split=float(g("validation_split")),
                limit=int(g("limit")) or None)
    space: dict[str, Any] = {}
    for name in SPACE:
        if not g(f"on_{name}"):
            continue
        d = DIMS[name]
        mode = g(f"mode_{name}")
        if mode != "choices":
            space[name] = {mode: [float(g(f"lo_{name}")), float(g(f"hi_{name}"))]}
        elif d.kind == "select":
            space[name] = {"choices": list(g(f"choices_{name}"))}
        else:
            try:
                space[name] = {"choices": _parse_choices(name, g(f"choices_{name}"))}
            except ValueError as e:
                raise ValueError(f"{d.label}: {e}") from None
    d: dict[str, Any] = {"base": base, "space": space, "method": g("method"), "seed": int(g("seed")),
                         "early_stopping": "asha" if g("asha") else "none", "max_concurrent": int(g("concurrent")),
                         "asha": {"metric": g("metric"), "grace_period": int(g("grace")),
                                  "reduction_factor": int(g("reduction"))}}
    if g("method") == "random":
        d["trials"] = int(g("trials"))
    return d


def _label(field_name: str) -> str:
    """A core error's field in the form's words ("space.learning_rate" -> "Learning rate")."""
    head, _, rest = field_name.partition(".")
    if head == "space" and rest in DIMS:
        return DIMS[rest].label
    if head == "base":
        return f"Base {rest.replace('_', ' ')}"
    return field_name.replace("_", " ").capitalize()


def validated(n_train: int | None = None) -> tuple[SweepConfig | None, str | None]:
    """The form's sweep, or why it is not one (the core's message, naming the setting)."""
    try:
        sweep = SweepConfig.from_dict(sweep_dict())
        if n_train is not None:
            for cfg in trial_configs(sweep):
                cfg.check_against_data(n_train)
    except ValueError as e:
        if isinstance(e, ConfigError):
            return None, f"{_label(e.field)}: {e.reason}"
        return None, str(e)
    return sweep, None


def _dimension_row(name: str, preset: str) -> None:
    d, spec = DIMS[name], SPACE[name]
    disabled = spec.custom_only and preset != CUSTOM
    c = st.columns([2, 2, 5], vertical_alignment="center")
    c[0].checkbox(d.label, key=_key(f"on_{name}"), disabled=disabled,
                  help=f"a setting of the {CUSTOM} preset's builder: choose preset {CUSTOM}" if disabled else None)
    if not ss[_key(f"on_{name}")] or disabled:
        c[2].caption("fixed: the base setting" if not disabled else f"only with the {CUSTOM} preset")
        return
    modes = ["choices", *spec.ranges]
    if ss[_key(f"mode_{name}")] not in modes:
        ss[_key(f"mode_{name}")] = "choices"
    c[1].radio("how", modes, key=_key(f"mode_{name}"), horizontal=True, label_visibility="collapsed",
               disabled=len(modes) == 1, format_func=lambda m: {"loguniform": "log range", "uniform": "range"}.get(m, m))
    if ss[_key(f"mode_{name}")] != "choices":
        lo, hi = _BOUNDS[name]
        r = c[2].columns(2)
        r[0].number_input("low", float(lo), float(hi), key=_key(f"lo_{name}"), format="%g")
        r[1].number_input("high", float(lo), float(hi), key=_key(f"hi_{name}"), format="%g")
    elif d.kind == "select":
        c[2].multiselect("choices", list(d.options), key=_key(f"choices_{name}"), label_visibility="collapsed",
                         format_func=lambda v: ("on" if v else "off") if isinstance(v, bool) else str(v))
    else:
        hint = "e.g. 16-32; 32-64 (one network per ;)" if d.kind == "filters" else "comma-separated, e.g. " + d.default
        c[2].text_input("choices", key=_key(f"choices_{name}"), label_visibility="collapsed", placeholder=hint,
                        help=hint)


def _base_fields() -> None:
    c = st.columns(7)
    c[0].selectbox("Preset", PRESET_NAMES, key=_key("preset"))
    c[1].selectbox("Optimizer", OPTIMIZERS, key=_key("optimizer"))
    c[2].number_input("Epochs", *map(int, RANGES["epochs"]), key=_key("epochs"))
    c[3].number_input("Batch size", *map(int, RANGES["batch_size"]), key=_key("batch_size"))
    c[4].number_input("Learning rate", 1e-6, float(RANGES["learning_rate"][1]), key=_key("learning_rate"),
                      format="%g")
    c[5].number_input("Images (0 = all)", 0, int(RANGES["limit"][1]), step=500, key=_key("limit"),
                      help="Train each trial on this many images: a sweep of small trainings is quick.")
    c[6].number_input("Validation split", *RANGES["validation_split"], step=0.05, key=_key("validation_split"))


def _search_fields() -> None:
    c = st.columns(4)
    c[0].radio("Search", ["grid", "random"], key=_key("method"), horizontal=True,
               help="grid: every combination of the choices; random: draws from the choices and ranges")
    c[1].number_input("Trials", 1, MAX_TRIALS, key=_key("trials"), disabled=ss[_key("method")] != "random")
    c[2].number_input("Seed", 0, 2**31 - 1, key=_key("seed"), disabled=ss[_key("method")] != "random")
    c[3].number_input("Trials at once (Ray)", 1, 64, key=_key("concurrent"),
                      help="On Ray, how many trials train at the same time. On this server the training "
                           f"slots decide ({scheduler.max_trainings()} at a time, MNIST_MAX_TRAININGS).")
    c = st.columns(4)
    c[0].checkbox("Stop poor trials early (ASHA)", key=_key("asha"),
                  help="At each rung (epoch grace x factor^k) a trial below the best 1/factor of the trials "
                       "that reached it stops, with its model saved.")
    on = ss[_key("asha")]
    c[1].selectbox("Ranked by", list(METRICS), key=_key("metric"), disabled=not on)
    c[2].number_input("Grace period (epochs)", 1, 100, key=_key("grace"), disabled=not on)
    c[3].number_input("Reduction factor", 2, 10, key=_key("reduction"), disabled=not on)


def _engine_text() -> str:
    addr = ray_address()
    if addr:
        return f"Runs on **Ray Tune** at `{addr}` (MNIST_RAY_ADDRESS)."
    return (f"Runs on **this server**: the trials queue for its training slots ({scheduler.max_trainings()} at a "
            "time) like any training.")


def _on_start(n_train: int | None) -> None:
    sweep, err = validated(n_train)
    if err:
        ss[MSG] = ("error", err)
        return
    try:
        folder = manage.start_sweep(session.actor(), sweep, ss[_key("name")], data_dir=loaders.data_dir_setting(),
                                    n_train=n_train)
    except (runs.RunError, OSError) as e:
        ss[MSG] = ("error", f"Not started: {e}")
        return
    ss[WATCH] = folder.name
    ss[_key("name")] = sweeps.default_sweep_name()
    ss[MSG] = ("success", f"Started sweep {folder.name}: {sweep.n_trials} trials.")


def render_form() -> None:
    _init()
    try:
        n_train: int | None = loaders.data_source().n_train
    except DataError as e:
        st.error(f"The training data cannot be read: {e}")
        n_train = None
    with st.container(border=True):
        st.markdown("**Base settings** (every trial starts from these)")
        _base_fields()
        st.markdown("**Search space**: tick a setting to search it")
        for name in SPACE:
            _dimension_row(name, ss[_key("preset")])
        _search_fields()
        sweep, err = validated(n_train)
        c = st.columns([3, 1], vertical_alignment="bottom")
        c[0].text_input("Sweep name", key=_key("name"), max_chars=sweeps.MAX_SWEEP_NAME,
                        help="Its trials are the runs NAME-t00, NAME-t01, ...")
        c[1].button("Start sweep", key="sw_start", type="primary", icon=":material/play_arrow:",
                    disabled=sweep is None, on_click=_on_start, args=(n_train,), width="stretch")
        if err:
            st.error(err)
        elif sweep is not None:
            st.caption(f"{sweep.n_trials} trials. {_engine_text()}")
            with st.expander(f"The {sweep.n_trials} trials"):
                st.dataframe(pd.DataFrame([{k: _cell(v) for k, v in s.items()} for s in trial_settings(sweep)]),
                             hide_index=True, key="sw_preview")
    _save()


def _cell(v: Any) -> Any:
    return "-".join(map(str, v)) if isinstance(v, (list, tuple)) else v


# --- the view ------------------------------------------------------------------------------------
def _searched(info: sweeps.SweepInfo) -> list[str]:
    return [d.name for d in info.config.space if d.kind != "fixed"] if info.config else []


def _figure_rows(info: sweeps.SweepInfo) -> list[dict[str, Any]]:
    return [{**s, info.metric: info.score(t), "trial": t.name} for t, s in zip(info.trials, info.settings,
                                                                                 strict=False)]


def _trials_table(info: sweeps.SweepInfo) -> None:
    rows = info.rows()
    for r in rows:
        for k in (info.metric, "test_accuracy"):
            v = r.get(k)
            r[k] = "–" if v is None else (f"{v:.2%}" if "accuracy" in k else f"{v:.4f}")
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", key="sw_trials")


def _best(info: sweeps.SweepInfo) -> None:
    best = info.best
    if best is None:
        st.caption("The best trial appears here once a trial has a saved model.")
        return
    score = info.score(best)
    acc = f", test accuracy {best.test_accuracy:.2%}" if best.test_accuracy is not None else ""
    c = st.columns([4, 1], vertical_alignment="center")
    c[0].markdown(f"**Best{' so far' if info.active else ''}: {best.name}** ({info.metric} {score:.4f}{acc})")
    current = state.current_run()
    is_current = current is not None and current.name == best.name
    c[1].button("Current model ✓" if is_current else "Use as current model", key="sw_use_best", type="primary",
                disabled=is_current, on_click=state.set_current_run, args=(best.name,), width="stretch",
                help="Evaluate and Draw will use this model (the sidebar shows the choice).")


def _stop(folder: Any) -> None:
    try:
        manage.stop_sweep(session.actor(), folder)
    except (runs.RunError, OSError) as e:
        ss[MSG] = ("error", f"Not stopped: {e}")


def _stop_trial(path: Any) -> None:
    try:
        manage.stop(session.actor(), path)
    except (runs.RunError, OSError) as e:
        ss[MSG] = ("error", f"Not stopped: {e}")


def _stop_controls(info: sweeps.SweepInfo) -> None:
    active = [t.name for t in info.trials if t.active]
    c = st.columns([1, 2, 1], vertical_alignment="bottom")
    stopping = sweeps.stop_requested(info.folder)
    c[0].button("Stopping…" if stopping else "Stop sweep", key="sw_stop", disabled=stopping, width="stretch",
                icon=":material/stop_circle:", on_click=_stop, args=(info.folder,),
                help="Queued trials leave the queue; running ones stop after their batch, their models saved.")
    if active:
        pick = c[1].selectbox("A single trial", active, key="sw_trial_pick")
        c[2].button("Stop trial", key="sw_stop_trial", width="stretch", on_click=_stop_trial,
                    args=(runs.runs_root() / pick,), disabled=runs.stop_requested(runs.runs_root() / pick))


def _panel(info: sweeps.SweepInfo) -> None:
    badge = train_live.STATE_BADGES.get(info.state, info.state)
    st.markdown(f"#### {info.name} · {badge}")
    where = f"Ray Tune at {info.status.get('address')}" if info.engine == "ray" else "this server's training slots"
    n = len(info.trials)
    running = sum(t.state == "running" for t in info.trials)
    queued = sum(t.state == "queued" for t in info.trials)
    st.progress(info.n_ended / n if n else 0.0,
                text=f"{info.n_ended} of {n} trials ended · {running} running · {queued} queued · on {where}")
    if info.error:
        (st.error if info.state == "failed" else st.warning)(info.error)
    if info.active:
        _stop_controls(info)
    searched = _searched(info)
    st.plotly_chart(plots.sweep_parallel_coordinates(_figure_rows(info), searched, info.metric),
                    key="sw_parcoords")
    _trials_table(info)
    _best(info)
    started = info.status.get("created")
    if started and info.active:
        st.caption(f"Started {fmt.seconds(time.time() - started)} ago.")
    elif started:
        end = max((t.status.get("finished") or 0 for t in info.trials), default=0)
        st.caption(f"Took {fmt.seconds(end - started) if end > started else None}.")


def _read(name: str) -> sweeps.SweepInfo | str:
    folder = sweeps.SweepFolder(sweeps.sweeps_dir() / name)
    if not folder.path.is_dir():
        return f"Sweep **{name}** no longer exists."
    try:
        return sweeps.read_sweep(folder)
    except (runs.RunError, OSError) as e:
        return f"Sweep **{name}** cannot be read: {e}"


def render_sweeps() -> None:
    if MSG in ss:
        kind, text = ss.pop(MSG)
        getattr(st, kind)(text)
    listed = sweeps.list_sweeps()
    if not listed:
        st.info("No sweeps yet: define one below and start it.")
        return
    names = [s.name for s in listed]
    for s in listed:
        if s.damaged:
            st.warning(f"Sweep **{s.name}** cannot be read: {s.damaged}")
    if ss.get(WATCH) not in names:
        ss[WATCH] = next((s.name for s in listed if s.active), names[0])
    labels = {s.name: f"{s.name} ({s.state}, {s.n_ended}/{len(s.trials)} trials)" for s in listed}
    st.selectbox("Sweep", names, key=WATCH, format_func=lambda n: labels.get(n, n))
    first = _read(ss[WATCH])
    with st.container(border=True):
        if isinstance(first, str):
            st.warning(first)
            return
        if not first.active:
            _panel(first)
            return

        def poll() -> None:
            info = _read(first.name)
            if isinstance(info, str) or not info.active:
                st.rerun()  # ended (or vanished): one full rerun draws the static panel
            _panel(info)

        st.fragment(poll, run_every=POLL_S)()
