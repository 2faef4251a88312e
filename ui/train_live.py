"""The Train page's live panel: the run this session watches, queued, running or ended.

Everything comes from the run folder (`runs.run_info`, `progress.json`, `batches.csv`), read once per
poll, so a reload or a second tab shows the same run. While the run is in progress one fragment polls
the run every 3 s (5 s while queued) and draws the header, the progress bars and the curves. Polling
must stay cheap, since the page shares the machine with the trainer (issue 15; benchmarks/README.md):
any fragment rerun makes the browser re-render the whole Train page (~50-130 ms of its CPU on the
2-core machine, however little changed), and redrawing the Plotly curves costs ~200 ms more, while
re-sending an unchanged figure costs next to nothing (Streamlit ships it as a reference to the copy the
browser already has). So there is one poll, not one per part, and the curves are rebuilt at most every
10 s while the run trains (at once when the smoothing is moved), each curve thinned to a few hundred
points, the x axis spanning the whole run from the start. An ended run is drawn once, outside any
fragment, so its buttons rerun the whole app ("Use as current model" must redraw the sidebar).
"""

from __future__ import annotations

import dataclasses
import html
import time
from functools import partial
from typing import Any

import streamlit as st

from mnist_core import checkpoints, identity, manage, plots, runs, scheduler
from mnist_core.config import ConfigError

from . import export_view, fmt, loaders, scroll, session, state

ss = st.session_state
WATCH = "train_watch"  # session_state key: the name of the run this session is watching
MSG = "tr_msg"  # a one-shot (kind, text) message set by a callback, shown on the next run
PANEL = "tr_live"  # the panel's container key (the target of the scroll after Start)
SCROLL = "tr_scroll_to_live"  # set when a run is chosen to watch: the next run brings the panel into view
SMOOTH = "tr_smooth"  # the smoothing slider's key
SMOOTH_DEFAULT = 0.6  # TensorBoard's default smoothing
CHART = "tr_chart_cache"  # (what the figure shows, the figure, when built): re-sent while nothing is new
POLL_EVERY_S = 3.0  # the panel of a run in progress
QUEUED_EVERY_S = 5.0  # ... of a run waiting in the queue
REDRAW_EVERY_S = 10.0  # the curves of a run in progress are rebuilt at most this often
MAX_POINTS = 250  # points per curve sent to the browser
STATE_BADGES = {"queued": ":gray[:material/hourglass_top: queued]", "running": ":blue[:material/sync: running]",
                "finished": ":green[:material/check_circle: finished]",
                "stopped": ":orange[:material/stop_circle: stopped]", "failed": ":red[:material/error: failed]"}


def watch(name: str | None, scroll_to: bool = True) -> None:
    """Show run `name` in the panel (None: no run); the next script run scrolls the panel into view."""
    ss[WATCH] = name
    if name and scroll_to:
        ss[SCROLL] = True


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


def progress_bars(bars: list[tuple[float, str]]) -> str:
    """Progress bars as one piece of plain HTML: (fraction done, label) each. Not `st.progress`, whose
    animated bars cost the browser ~3 % of a core when redrawn every few seconds (measured with the
    Train page polling a run, benchmarks/README.md); these are drawn once per poll and stay still."""
    color = st.get_option("theme.primaryColor") or "#d62728"
    return "".join(
        f'<div style="margin:0 0 .75rem 0"><div style="font-size:.875rem;margin-bottom:.25rem">{html.escape(label)}</div>'
        f'<div style="height:.5rem;border-radius:.25rem;background:rgba(151,166,195,.25)">'
        f'<div style="width:{min(max(frac, 0.0), 1.0) * 100:.1f}%;height:100%;border-radius:.25rem;'
        f'background:{color}"></div></div></div>' for frac, label in bars)


def _progress(info: runs.RunInfo, progress: dict[str, Any]) -> None:
    epoch_frac, total_frac = fractions(info, progress)
    elapsed, eta = elapsed_eta(info, progress)
    epoch = (f"Epoch {progress['epoch']} of {progress['epochs']}: batch {progress['batch']:,} of "
             f"{progress['batches_per_epoch']:,}") if progress else "Epoch 1: building the model and the input pipeline…"
    st.markdown(progress_bars([(epoch_frac, epoch), (total_frac, f"Overall: {total_frac:.0%}")]),
                unsafe_allow_html=True)
    c = st.columns(4)
    c[0].metric("Elapsed", fmt.seconds(elapsed))
    c[1].metric("Time left (estimate)", fmt.seconds(eta) if eta is not None else "…")
    if progress:
        c[2].metric("Training accuracy (epoch so far)", f"{progress['accuracy']:.2%}",
                    help="On the training batches of the current epoch, as Keras reports it.")
    val = [r["val_accuracy"] for r in info.history if r.get("val_accuracy") is not None]
    c[3].metric("Validation accuracy (last epoch)", f"{val[-1]:.2%}" if val else "after epoch 1",
                help="On the validation split, held out of the training images.")


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
        why = f"Stopped ({info.error})" if info.error else "Stopped by request"  # e.g. ASHA's reason in a sweep
        st.warning(f"{why} {stopped_where(info, runs.read_progress(info.path))}; the model so far was saved and "
                   "evaluated.")
    else:
        done = m.get("epochs_done", info.epochs_done)
        early = info.config is not None and info.config.early_stopping and done < info.config.epochs
        st.success(f"Finished: {fmt.count(done, 'epoch')} on {fmt.count(m.get('n_train', 0), 'image')}"
                   + (" (early stopping: validation loss had stopped improving)." if early else "."))
    if m:
        c = st.columns(5)
        c[0].metric("Test accuracy", f"{m['test_accuracy']:.2%}", help=f"On {fmt.test_set(m)}.")
        c[1].metric("Test loss", f"{m['test_loss']:.4f}")
        c[2].metric("Training time", fmt.seconds(m.get("train_seconds")))
        c[3].metric("Images / s", f"{m.get('images_per_s', 0):,.0f}")
        c[4].metric(f"Mistakes (of {m.get('n_test', 0):,})", f"{m.get('mistakes', 0):,}")
        st.caption(f"Test figures: measured on {fmt.test_set(m)} when training ended (Evaluate measures the "
                   "model on the data in use now).")
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


def stopped_where(info: runs.RunInfo, progress: dict[str, Any]) -> str:
    """Where a stopped run stopped, as the end of "Stopped by request …": "during epoch 2 of 5, at
    batch 49 of 640" when it was cut short mid-epoch (its last epoch in history.csv is then partial),
    "after epoch 2 of 5" at an epoch's end. From the trainer's last progress write."""
    epochs = f" of {info.epochs}" if info.epochs else ""
    ep, batch, bpe = (int(progress.get(k) or 0) for k in ("epoch", "batch", "batches_per_epoch"))
    if ep and 0 < batch < bpe:
        full = f"{fmt.count(ep - 1, 'full epoch')} trained" if ep > 1 else "no full epoch trained"
        return f"during epoch {ep}{epochs}, at batch {batch:,} of {bpe:,} ({full})"
    done = ep or info.metrics.get("epochs_done", info.epochs_done)
    return f"after epoch {done}{epochs}" if done else "before the first epoch ended"


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


def chart_history(info: runs.RunInfo, batches: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The epoch points as drawn: a stopped run's last epoch, cut short by the stop, sits where it
    stopped (its last batch point), not at the end of an epoch it never finished."""
    hist = list(info.history)
    if not info.active and hist and batches and batches[-1]["epoch"] == hist[-1]["epoch"] \
            and batches[-1]["x"] < hist[-1]["epoch"] - 1e-9:
        hist[-1] = {**hist[-1], "epoch": batches[-1]["x"]}
    return hist


def _chart(info: runs.RunInfo) -> None:
    batches = runs.read_batches(info.path) if info.state != "queued" else []
    if not (info.history or batches):
        if info.state == "running":
            st.caption("The curves appear as the first batches are done.")
        return
    ss.setdefault(SMOOTH, SMOOTH_DEFAULT)
    smoothing = float(ss[SMOOTH])
    shows = (info.name, info.state, smoothing, len(info.history), len(batches))
    cached = ss.get(CHART)
    now = time.monotonic()
    if cached is None or cached[0][:3] != shows[:3] or (cached[0] != shows and now - cached[2] >= REDRAW_EVERY_S):
        fig = plots.training_curves(chart_history(info, batches), batches, smoothing=smoothing, max_points=MAX_POINTS,
                                    epochs=info.epochs if info.active else None)
        ss[CHART] = cached = (shows, fig, now)
    st.plotly_chart(cached[1], key="tr_live_chart")
    if batches:
        left, right = st.columns([3, 1], vertical_alignment="center")
        left.caption("Faint: the loss and accuracy of the batches between two points (the trainer writes one "
                     "every ~0.5 s); solid: smoothed; circles: each epoch's training mean, and validation.")
        right.slider("Smoothing", 0.0, 0.99, step=0.01, key=SMOOTH,
                     help="TensorBoard's smoothing: an exponential moving average of the batch curve (0: none), "
                          "corrected so that the start is not pulled towards zero.")


def render(name: str) -> None:
    """The watched run's panel: polling fragments while it is in progress, a static result after."""
    first = _read(name)
    with st.container(border=True, key=PANEL):
        if ss.pop(SCROLL, False):
            scroll.into_view(PANEL)  # after Start (or Watch) the panel may be above the fold
        if isinstance(first, str):
            st.warning(first)
            st.button("Close", key="tr_close", on_click=watch, args=(None,))
            return
        if not first.active:
            _header(first, {})
            _chart(first)
            return

        def poll() -> None:
            info = _read(name)
            if isinstance(info, str) or not info.active:
                st.rerun()  # ended (or vanished): redraw the page with the static result, once
            _header(info, runs.read_progress(info.path))
            _chart(info)

        st.fragment(poll, run_every=QUEUED_EVERY_S if first.state == "queued" else POLL_EVERY_S)()


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
