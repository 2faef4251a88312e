"""The Train page's live panel: the run this session watches, queued, running or ended.

Everything comes from the run folder (`runs.run_info`, `progress.json`, `batches.csv`), read once per
poll, so a reload or a second tab shows the same run. While the run is in progress two fragments poll:
the header and progress bars every 1.5 s, the curves every 4 s (redrawing the Plotly chart is the costly
part of a poll; benchmarks/README.md, overhead). An ended run is drawn once, outside any fragment, so
its buttons rerun the whole app ("Use as current model" must redraw the sidebar).
"""

from __future__ import annotations

import dataclasses
import time
from functools import partial
from typing import Any

import streamlit as st

from mnist_core import checkpoints, identity, manage, plots, runs, scheduler
from mnist_core.config import ConfigError

from . import export_view, fmt, loaders, session, state

ss = st.session_state
WATCH = "train_watch"  # session_state key: the name of the run this session is watching
MSG = "tr_msg"  # a one-shot (kind, text) message set by a callback, shown on the next run
STATE_BADGES = {"queued": ":gray[:material/hourglass_top: queued]", "running": ":blue[:material/sync: running]",
                "finished": ":green[:material/check_circle: finished]",
                "stopped": ":orange[:material/stop_circle: stopped]", "failed": ":red[:material/error: failed]"}


def watch(name: str | None) -> None:
    ss[WATCH] = name


def pick_watch(infos: list[runs.RunInfo]) -> str | None:
    """Which run this session shows: the one it watches if that still exists, else the newest running
    run, else the newest queued one (a reload or a second tab reattaches to what is training)."""
    names = {r.name for r in infos}
    current = ss.get(WATCH)
    if current in names:
        return current
    act = sorted((r for r in infos if r.active), key=lambda r: (r.state != "running", -r.created))
    ss[WATCH] = act[0].name if act else None
    return ss[WATCH]


def fractions(info: runs.RunInfo, progress: dict[str, Any]) -> tuple[float, float]:
    """(fraction of the current epoch done, fraction of all training done)."""
    bpe = max(int(progress.get("batches_per_epoch") or 0), 1)
    epochs = max(int(progress.get("epochs") or info.epochs or 1), 1)
    if not progress:
        return 0.0, min(info.epochs_done / epochs, 1.0)
    epoch_frac = min(int(progress.get("batch", 0)) / bpe, 1.0)
    return epoch_frac, min((int(progress.get("epoch", 1)) - 1 + epoch_frac) / epochs, 1.0)


def elapsed_eta(info: runs.RunInfo, progress: dict[str, Any], now: float | None = None
                ) -> tuple[float | None, float | None]:
    """Seconds since training started and the estimated seconds left (None when unknown)."""
    now = time.time() if now is None else now
    started = info.status.get("started")
    if not started:
        return None, None
    end = info.status.get("finished") if not info.active else None
    elapsed = (end or now) - started
    _, total_frac = fractions(info, progress)
    train_elapsed = progress.get("elapsed_s")
    if not info.active or not train_elapsed or total_frac <= 0:
        return elapsed, None
    # Extrapolate the trainer's own clock (excludes TF start-up) from the last progress write.
    since = max(now - float(progress.get("updated", now)), 0.0)
    return elapsed, max(float(train_elapsed) * (1 - total_frac) / total_frac - since, 0.0)


def _read(name: str) -> runs.RunInfo | str:
    """The run, or why it cannot be shown."""
    run = runs.RunFolder(runs.runs_root() / name)
    if not run.path.is_dir():
        return f"Run **{name}** no longer exists."
    try:
        return runs.run_info(run)
    except (runs.RunError, OSError) as e:
        return f"Run **{name}** cannot be read: {e}"


def _progress(info: runs.RunInfo, progress: dict[str, Any]) -> None:
    epoch_frac, total_frac = fractions(info, progress)
    elapsed, eta = elapsed_eta(info, progress)
    if progress:
        st.progress(epoch_frac, text=f"Epoch {progress['epoch']} of {progress['epochs']}: batch {progress['batch']} "
                                     f"of {progress['batches_per_epoch']}")
    else:
        st.progress(0.0, text="Epoch 1: building the model and the input pipeline…")
    st.progress(total_frac, text=f"Overall: {total_frac:.0%}")
    c = st.columns(4)
    c[0].metric("Elapsed", fmt.seconds(elapsed))
    c[1].metric("Time left (estimate)", fmt.seconds(eta) if eta is not None else "…")
    if progress:
        c[2].metric("Training accuracy (running)", f"{progress['accuracy']:.2%}")
    val = [r["val_accuracy"] for r in info.history if r.get("val_accuracy") is not None]
    c[3].metric("Validation accuracy (last epoch)", f"{val[-1]:.2%}" if val else "after epoch 1")


def _queued(info: runs.RunInfo) -> None:
    q = scheduler.queue_info(info.path)
    if q.position == 0:
        st.info("Starting: loading TensorFlow and the data…")
    else:
        st.info(f"Queued: number **{q.position}** in line. This server trains {q.slots} model(s) at a time "
                "(MNIST_MAX_TRAININGS); the run starts by itself when a slot frees, and closing the browser "
                "does not cancel it.")


def _result(info: runs.RunInfo) -> None:
    m = info.metrics
    if info.state == "failed":
        st.error(f"Training failed: {info.error or 'no reason recorded'}")
        if info.has_model:
            st.info("A model was saved before the failure: it can still be used, evaluated and downloaded.")
    elif info.state == "stopped" and not m:
        st.warning(f"Stopped: {info.error or 'no model was saved'}.")
    elif info.state == "stopped":
        st.warning(f"Stopped by request after {m.get('epochs_done', info.epochs_done)} epoch(s); "
                   "the model so far was saved and evaluated.")
    else:
        done = m.get("epochs_done", info.epochs_done)
        early = info.config is not None and info.config.early_stopping and done < info.config.epochs
        st.success(f"Finished: {done} epoch(s) on {m.get('n_train', 0):,} images"
                   + (" (early stopping: validation loss had stopped improving)." if early else "."))
    if m:
        c = st.columns(5)
        c[0].metric("Test accuracy", f"{m['test_accuracy']:.2%}")
        c[1].metric("Test loss", f"{m['test_loss']:.4f}")
        c[2].metric("Training time", fmt.seconds(m.get("train_seconds")))
        c[3].metric("Images / s", f"{m.get('images_per_s', 0):,.0f}")
        c[4].metric(f"Mistakes (of {m.get('n_test', 0):,})", f"{m.get('mistakes', 0):,}")
    if info.usable:
        b = st.columns([1, 1, 3])
        current = state.current_run()
        is_current = current is not None and current.name == info.name
        b[0].button("Current model ✓" if is_current else "Use as current model", key="tr_use_current",
                    type="primary", disabled=is_current, on_click=state.set_current_run, args=(info.name,),
                    help="Evaluate and Draw will use this model (the sidebar shows the choice).")
        b[1].download_button("Download model.keras", data=partial(info.folder.model.read_bytes),
                             file_name=f"{info.name}.keras", mime="application/octet-stream",
                             key="tr_download", on_click="ignore")
    _next_steps(info)
    if info.usable and st.toggle("Export this model (LiteRT, ONNX, SavedModel)", key="tr_export_open",
                                 help="Files for phones, browsers and servers, each checked on the test set."):
        export_view.render(info.path, "tr")
    if info.state == "failed":
        tail = runs.log_tail(info.path)
        if tail:
            with st.expander("Trainer output (last lines)"):
                st.code(tail, language=None)


def _resume(name: str) -> None:
    try:
        manage.resume(session.actor(), runs.runs_root() / name)
    except (runs.RunError, OSError) as e:
        ss[MSG] = ("error", f"Could not resume {name}: {e}")


def _stop(name: str) -> None:
    try:
        manage.stop(session.actor(), runs.runs_root() / name)
    except (runs.RunError, OSError) as e:
        ss[MSG] = ("error", f"Could not stop {name}: {e}")


def _continue(info: runs.RunInfo) -> None:
    """Continue training: a new run that starts from this run's weights (recorded as its parent)."""
    epochs, lr = int(ss["tr_more_epochs"]), float(ss["tr_more_lr"])
    cfg = dataclasses.replace(info.config, epochs=epochs, learning_rate=lr, init_from=info.name)
    name = runs.suggest_name(f"{info.name}-more")
    root = runs.runs_root()
    for i in range(2, 100):
        if not (root / name).exists():
            break
        name = runs.suggest_name(f"{info.name}-more{i}")
    try:
        run_dir = manage.submit(session.actor(), cfg, name, data_dir=loaders.data_dir_setting(), parent=info.name)
    except (runs.RunError, ConfigError, OSError) as e:
        ss[MSG] = ("error", f"Could not continue {info.name}: {e}")
        return
    watch(run_dir.name)


def _next_steps(info: runs.RunInfo) -> None:
    """Resume a stopped or failed run from its checkpoint; continue a trained one for more epochs."""
    cols = st.columns([1, 1, 3])
    mine = identity.may_manage(session.actor(), info)
    if mine and info.state in ("stopped", "failed") and scheduler.resumable(info.path) is None:
        ck = checkpoints.read_state(info.path)
        cols[0].button(f"Resume from epoch {ck.epoch}", key="tr_resume", icon=":material/play_circle:",
                       on_click=_resume, args=(info.name,),
                       help="Continue this run from its last checkpoint: the same epochs, batches and "
                            "learning rates it would have had without the interruption.")
    if info.usable and info.config is not None:
        with cols[1].popover("Continue training", icon=":material/fast_forward:"):
            st.caption(f"A new run that starts from the weights of **{info.name}** (a fresh optimiser).")
            st.number_input("More epochs", 1, 100, value=max(1, info.config.epochs // 2), key="tr_more_epochs")
            st.number_input("Learning rate", 1e-6, 1.0, value=float(info.config.learning_rate) / 4,
                            format="%.6f", key="tr_more_lr",
                            help="Lower than the first run's: the weights are already good.")
            st.button("Start", key="tr_more_go", type="primary", on_click=_continue, args=(info,))


def _header(info: runs.RunInfo, progress: dict[str, Any]) -> None:
    head, button = st.columns([5, 1])
    owner = f" · {info.owner}'s run" if info.owner else ""
    head.markdown(f"#### {info.name} · {STATE_BADGES.get(info.state, info.state)}{owner}")
    if info.active:
        stopping = runs.stop_requested(info.path)
        if identity.may_manage(session.actor(), info):  # (the core refuses anyone else anyway)
            button.button("Stopping…" if stopping else "Stop", key="tr_stop", disabled=stopping,
                          on_click=_stop, args=(info.name,), icon=":material/stop_circle:",
                          help="Stops after the current batch and saves the model so far "
                               "(a queued run just leaves the queue).")
        if info.state == "queued":
            _queued(info)
        else:
            _progress(info, progress)
    else:
        button.button("Close", key="tr_close", on_click=watch, args=(None,),
                      help="Stop showing this run here (it stays in the runs table).")
        _result(info)


def _chart(info: runs.RunInfo) -> None:
    batches = runs.read_batches(info.path) if info.state != "queued" else []
    if info.history or batches:
        fig = plots.training_curves(info.history, batches)
        fig.update_layout(margin=dict(t=70), legend=dict(y=1.12))  # keep the legend off the subplot titles
        st.plotly_chart(fig, key="tr_live_chart")
    elif info.state == "running":
        st.caption("The curves appear as the first batches are done.")


def render(name: str) -> None:
    """The watched run's panel: polling fragments while it is in progress, a static result after."""
    first = _read(name)
    with st.container(border=True):
        if isinstance(first, str):
            st.warning(first)
            st.button("Close", key="tr_close", on_click=watch, args=(None,))
            return
        if not first.active:
            _header(first, {})
            _chart(first)
            return

        def poll(part: str) -> None:
            info = _read(name)
            if isinstance(info, str) or not info.active:
                st.rerun()  # ended (or vanished): redraw the page with the static result, once
            if part == "header":
                _header(info, runs.read_progress(info.path))
            else:
                _chart(info)

        st.fragment(partial(poll, "header"), run_every=1.5)()
        st.fragment(partial(poll, "chart"), run_every=4)()


def other_active(infos: list[runs.RunInfo], watching: str | None) -> None:
    """Buttons to watch the other runs in progress on this server."""
    others = sorted((r for r in infos if r.active and r.name != watching),
                    key=lambda r: (r.state != "running", -r.created))
    if not others:
        return
    cols = st.columns([3] + [1] * min(len(others), 4))
    cols[0].caption(f"Also in progress on this server: {len(others)} run(s).")
    for col, r in zip(cols[1:], others[:4], strict=False):
        col.button(f"Watch {r.name}", key=f"tr_watch_{r.name}", on_click=watch, args=(r.name,))
