"""Train: configure a network, launch its training as a separate process, watch it live, compare runs.

The page never trains and never imports TensorFlow: Start runs `python -m mnist_core train` (see
ui/training.py) and everything below the form is read back from run folders. Which run this session
watches is in session state; a fresh session (reload, second tab) reattaches to what is training.
"""

from __future__ import annotations

import datetime as dt
from functools import partial

import pandas as pd
import streamlit as st

from mnist_core import architectures, plots, runs
from mnist_core.config import (
    OPTIMIZERS,
    PRESETS,
    SCHEDULES,
    ArchConfig,
    ConfigError,
    TrainConfig,
    preset_config,
)
from mnist_core.data import DataError
from ui import loaders, model_import, state, training

ss = st.session_state
MSG = "tr_msg"  # a one-shot (kind, text) message set by a callback, shown on the next run
SAVED = "train_form_saved"  # a plain (non-widget) copy of the form, which survives visits to other pages
AUTO_NAME = "tr_auto_name"  # the last generated default name: replaced on preset change while unedited
DEMO = {"limit": 2000, "epochs": 1}
LABELS = {  # core field names -> the form's labels, for error messages
    "preset": "Preset", "conv_blocks": "Conv blocks", "filters": "Filters", "kernel_size": "Kernel size",
    "batch_norm": "Batch norm", "dropout": "Dropout", "dense_units": "Dense units", "epochs": "Epochs",
    "batch_size": "Batch size", "optimizer": "Optimizer", "learning_rate": "Learning rate",
    "lr_schedule": "Schedule", "validation_split": "Validation split", "early_stopping": "Early stopping",
    "patience": "Patience", "augment": "Augmentation", "rotation_deg": "Rotation", "shift_frac": "Shift",
    "zoom_frac": "Zoom", "limit": "Training subset", "seed": "Seed",
}
# Material icons (emoji need a font the server's browser may not have) and colours per run state.
FORM_KEYS = {"tr_preset", "tr_blocks", "tr_kernel", "tr_bn", "tr_dropout", "tr_dense", "tr_epochs", "tr_batch",
             "tr_opt", "tr_lr", "tr_sched", "tr_val", "tr_es", "tr_patience", "tr_aug", "tr_rot", "tr_shift",
             "tr_zoom", "tr_use_limit", "tr_limit", "tr_seed", "tr_name", AUTO_NAME,
             "tr_f0", "tr_f1", "tr_f2", "tr_f3"}
STATE_BADGES = {"queued": ":gray[:material/hourglass_top: queued]", "running": ":blue[:material/sync: running]",
                "finished": ":green[:material/check_circle: finished]",
                "stopped": ":orange[:material/stop_circle: stopped]", "failed": ":red[:material/error: failed]"}


# --- the form's state -----------------------------------------------------------------------------
def _preset_values(preset: str) -> dict:
    cfg = preset_config(preset)
    a = cfg.arch
    vals = {
        "tr_blocks": a.conv_blocks, "tr_kernel": a.kernel_size, "tr_bn": a.batch_norm,
        "tr_dropout": float(a.dropout), "tr_dense": a.dense_units, "tr_epochs": cfg.epochs,
        "tr_batch": cfg.batch_size, "tr_opt": cfg.optimizer, "tr_lr": float(cfg.learning_rate),
        "tr_sched": cfg.lr_schedule, "tr_val": float(cfg.validation_split), "tr_es": cfg.early_stopping,
        "tr_patience": cfg.patience, "tr_aug": cfg.augment, "tr_rot": float(cfg.rotation_deg),
        "tr_shift": float(cfg.shift_frac), "tr_zoom": float(cfg.zoom_frac),
    }
    defaults = (32, 64, 64, 128)
    for i in range(4):
        vals[f"tr_f{i}"] = a.filters[i] if i < len(a.filters) else defaults[i]
    return vals


def _new_name(preset: str) -> None:
    ss["tr_name"] = ss[AUTO_NAME] = runs.default_run_name(preset)


def _init_form() -> None:
    """Fill missing widget values: on the first visit the defaults (the classic preset); after a visit
    to another page (Streamlit drops the state of widgets it did not draw) what the user had set."""
    saved = ss.get(SAVED, {})
    ss.setdefault("tr_preset", saved.get("tr_preset", "classic"))
    for k, v in {**_preset_values(ss["tr_preset"]), "tr_use_limit": False, "tr_limit": DEMO["limit"],
                 "tr_seed": 42}.items():
        ss.setdefault(k, saved.get(k, v))
    if "tr_name" not in ss:
        if saved.get("tr_name") and saved.get("tr_name") != saved.get(AUTO_NAME):
            ss["tr_name"] = saved["tr_name"]
        else:
            _new_name(ss["tr_preset"])


def _save_form() -> None:
    ss[SAVED] = {k: ss[k] for k in FORM_KEYS if k in ss}


def _on_preset() -> None:
    # Picking a preset loads its recommended settings; subset, seed and an edited name are kept.
    ss.update(_preset_values(ss["tr_preset"]))
    if ss.get("tr_name") == ss.get(AUTO_NAME):
        _new_name(ss["tr_preset"])


def _on_demo() -> None:
    ss.update(tr_use_limit=True, tr_limit=DEMO["limit"], tr_epochs=DEMO["epochs"])


def _config_from_form() -> TrainConfig:
    """The TrainConfig the form describes; raises ConfigError (field + reason) for impossible values."""
    preset = ss["tr_preset"]
    if preset == "custom":
        n = int(ss["tr_blocks"])
        arch = ArchConfig(preset="custom", conv_blocks=n, filters=tuple(int(ss[f"tr_f{i}"]) for i in range(n)),
                          kernel_size=int(ss["tr_kernel"]), batch_norm=bool(ss["tr_bn"]),
                          dropout=float(ss["tr_dropout"]), dense_units=int(ss["tr_dense"]))
    else:
        arch = preset_config(preset).arch
    return TrainConfig(
        arch=arch, epochs=int(ss["tr_epochs"]), batch_size=int(ss["tr_batch"]), optimizer=ss["tr_opt"],
        learning_rate=float(ss["tr_lr"]), lr_schedule=ss["tr_sched"], validation_split=float(ss["tr_val"]),
        early_stopping=bool(ss["tr_es"]), patience=int(ss["tr_patience"]), augment=bool(ss["tr_aug"]),
        rotation_deg=float(ss["tr_rot"]), shift_frac=float(ss["tr_shift"]), zoom_frac=float(ss["tr_zoom"]),
        limit=int(ss["tr_limit"]) if ss["tr_use_limit"] else None, seed=int(ss["tr_seed"]),
    )


def _validated() -> tuple[TrainConfig | None, str | None]:
    """(config, None) or (None, a message in the user's terms, with the core's reason)."""
    try:
        cfg = _config_from_form()
        n_train = loaders.data_source().n_train
        cfg.check_against_data(n_train)
        architectures.summary_rows(cfg.arch)
    except ConfigError as e:
        return None, f"{LABELS.get(e.field, e.field)}: {e.reason}"
    except DataError as e:
        return None, f"The training data cannot be read: {e}"
    except ValueError as e:  # the architecture shrinks the image away
        return None, f"Architecture: {e}"
    return cfg, None


def _on_start() -> None:
    """Start button callback: validate again (never trust the button's disabled state), then launch."""
    cfg, err = _validated()
    if err:
        ss[MSG] = ("error", err)
        return
    try:
        name = training.check_name(ss["tr_name"])
        run_dir = training.launch(cfg, name, data_dir=loaders.data_dir_setting())
    except runs.RunError as e:
        ss[MSG] = ("error", f"Run name: {e}")
        return
    except (training.LaunchError, OSError) as e:
        ss[MSG] = ("error", f"Training could not start: {e}")
        return
    ss[training.WATCH] = run_dir.name
    ss[training.POINTS] = training.BatchPoints(run_dir.name)
    _new_name(ss["tr_preset"])  # the next Start must not collide with this run


# --- the live / result panel ------------------------------------------------------------------------
def _watch(name: str | None) -> None:
    ss[training.WATCH] = name


def _points_for(name: str) -> training.BatchPoints:
    pts = ss.get(training.POINTS)
    if not isinstance(pts, training.BatchPoints) or pts.run != name:
        pts = ss[training.POINTS] = training.BatchPoints(name)
    return pts


def _draw_progress(view: training.RunView) -> None:
    p = view.progress
    epoch_frac, total_frac = view.fractions()
    elapsed, eta = view.elapsed_eta()
    if p:
        st.progress(epoch_frac, text=f"Epoch {p['epoch']} of {p['epochs']}: batch {p['batch']} of "
                                     f"{p['batches_per_epoch']}")
    else:
        st.progress(0.0, text="Epoch 1: building the model and the input pipeline…")
    st.progress(total_frac, text=f"Overall: {total_frac:.0%}")
    c = st.columns(4)
    c[0].metric("Elapsed", training.fmt_seconds(elapsed))
    c[1].metric("Time left (estimate)", training.fmt_seconds(eta) if eta is not None else "…")
    if p:
        c[2].metric("Training accuracy (running)", f"{p['accuracy']:.2%}")
    val = [r["val_accuracy"] for r in view.history if r.get("val_accuracy") is not None]
    c[3].metric("Validation accuracy (last epoch)", f"{val[-1]:.2%}" if val else "after epoch 1")


def _draw_result(view: training.RunView) -> None:
    m = view.metrics
    if view.state == "failed":
        st.error(f"Training failed: {view.status.get('error') or 'no reason recorded'}")
    elif view.state == "stopped" and not m:
        st.warning(f"Stopped: {view.status.get('error') or 'no model was saved'}.")
    elif view.state == "stopped":
        st.warning(f"Stopped by request after {m.get('epochs_done', len(view.history))} epoch(s); "
                   "the model so far was saved and evaluated.")
    else:
        done = m.get("epochs_done", len(view.history))
        early = view.config is not None and view.config.early_stopping and done < view.config.epochs
        st.success(f"Finished: {done} epoch(s) on {m.get('n_train', 0):,} images"
                   + (" (early stopping: validation loss had stopped improving)." if early else "."))
    if m:
        c = st.columns(5)
        c[0].metric("Test accuracy", f"{m['test_accuracy']:.2%}")
        c[1].metric("Test loss", f"{m['test_loss']:.4f}")
        c[2].metric("Training time", training.fmt_seconds(m.get("train_seconds")))
        c[3].metric("Images / s", f"{m.get('images_per_s', 0):,.0f}")
        c[4].metric(f"Mistakes (of {m.get('n_test', 0):,})", f"{m.get('mistakes', 0):,}")
    model_path = view.run_dir / "model.keras"
    if model_path.exists() and view.state in ("finished", "stopped"):
        b = st.columns([1, 1, 3])
        is_current = state.current_run_name() == view.name
        b[0].button("Current model ✓" if is_current else "Use as current model", key="tr_use_current",
                    type="primary", disabled=is_current, on_click=state.set_current_run, args=(view.name,),
                    help="Evaluate and Draw will use this model (the sidebar shows the choice).")
        b[1].download_button("Download model.keras", data=partial(model_path.read_bytes),
                             file_name=f"{view.name}.keras", mime="application/octet-stream",
                             key="tr_download", on_click="ignore")
    if view.state == "failed":
        tail = training.log_tail(view.name)
        if tail:
            with st.expander("Trainer output (last lines)"):
                st.code(tail, language=None)


def _live_panel(name: str) -> None:
    run_dir = runs.runs_root() / name

    def is_active() -> bool:
        if not (run_dir / "status.json").exists():
            return training.starting(name)  # launched, folder not created yet
        return training.read_view(run_dir).active

    active_now = is_active()

    def panel() -> training.RunView | None:
        """The run's header, progress or result; returns what it read (None before the folder exists)."""
        if not (run_dir / "status.json").exists():
            code = training.launch_failed(name)
            if code is not None:
                st.error(f"The trainer for **{name}** exited (code {code}) before it created its run folder.")
                st.code(training.log_tail(name) or "(no output)", language=None)
                st.button("Close", key="tr_close", on_click=_watch, args=(None,))
            elif training.starting(name):
                st.info(f"Starting the trainer for **{name}**…")
            else:
                st.warning(f"Run **{name}** no longer exists.")
                st.button("Close", key="tr_close", on_click=_watch, args=(None,))
            if active_now and not is_active():
                st.rerun()
            return None
        view = training.read_view(run_dir)
        if active_now and not view.active:
            # The run just ended: redraw the whole page (static result, runs table, sidebar) before this
            # fragment draws anything, so the result and its buttons are never on the page twice.
            st.rerun()
        head, stop = st.columns([5, 1])
        head.markdown(f"#### {name} · {STATE_BADGES.get(view.state, view.state)}")
        if view.problem:
            st.warning(view.problem)
        pts = _points_for(name)
        if view.active:
            stopping = runs.stop_requested(run_dir)
            stop.button("Stopping…" if stopping else "Stop", key="tr_stop", disabled=stopping,
                        on_click=runs.request_stop, args=(run_dir,), icon=":material/stop_circle:",
                        help="Stops after the current batch and saves the model so far "
                             "(a queued run just leaves the queue).")
            if view.state == "queued":
                q = training.queue_info(run_dir)
                if q.position == 0:
                    st.info("Starting: loading TensorFlow and the data…")
                else:
                    st.info(f"Queued: number **{q.position}** in line. This server trains {q.slots} model(s) "
                            "at a time (MNIST_MAX_TRAININGS); the run starts by itself when a slot frees, "
                            "and closing the browser does not cancel it.")
            else:
                pts.add(view.progress)
                _draw_progress(view)
        else:
            stop.button("Close", key="tr_close", on_click=_watch, args=(None,),
                        help="Stop showing this run here (it stays in the runs table).")
            _draw_result(view)
        return view

    def chart(view: training.RunView | None = None) -> None:
        if view is None:  # polling: read the folder afresh
            if not (run_dir / "status.json").exists():
                return
            view = training.read_view(run_dir)
        pts = _points_for(name)
        # The running curve is kept for a finished run only if this session saw a good part of it.
        batch_points = pts.points if view.active or len(pts.points) >= 10 else []
        if view.history or batch_points:
            fig = plots.training_curves(view.history, batch_points)
            fig.update_layout(margin=dict(t=70), legend=dict(y=1.12))  # keep the legend off the subplot titles
            st.plotly_chart(fig, key="tr_live_chart")
        elif view.state == "running":
            st.caption("The curves appear as the first batches are done.")

    with st.container(border=True):
        if active_now:
            # Polls (re-reads the folder) only while something is in progress. The progress bars every
            # 1.5 s; the curves every 4 s, because redrawing the Plotly chart is the costly part of a
            # poll (server + browser took 33-50 % of a core at 1.5 s, on the 2 cores the trainer uses;
            # benchmarks/README.md, overhead).
            st.fragment(panel, run_every=1.5)()
            st.fragment(chart, run_every=4)()
        else:
            # A finished run is drawn once, outside any fragment, so its buttons rerun the whole app
            # ("Use as current model" must redraw the sidebar).
            view = panel()
            if view is not None:
                chart(view)


def _other_active(infos: list[runs.RunInfo], watching: str | None) -> None:
    others = [r for r in training.active_runs(infos) if r.name != watching]
    if not others:
        return
    cols = st.columns([3] + [1] * min(len(others), 4))
    cols[0].caption(f"Also in progress on this server: {len(others)} run(s).")
    for col, r in zip(cols[1:], others[:4], strict=False):
        col.button(f"Watch {r.name}", key=f"tr_watch_{r.name}", on_click=_watch, args=(r.name,))


# --- runs table, comparison, deletion -----------------------------------------------------------
def _runs_table(infos: list[runs.RunInfo]) -> None:
    rows = [{
        "name": r.name, "status": r.state, "preset": r.preset,
        "params": r.params, "epochs": f"{r.epochs_done}/{r.epochs}" if r.epochs else "–",
        "val acc": f"{r.val_accuracy:.2%}" if r.val_accuracy is not None else "–",
        "test acc": f"{r.test_accuracy:.2%}" if r.test_accuracy is not None else "–",
        "training time": training.fmt_seconds(r.train_seconds) if r.train_seconds is not None else "",
        "date": dt.datetime.fromtimestamp(r.created),
    } for r in infos]
    st.dataframe(pd.DataFrame(rows), key="tr_runs_table", hide_index=True, width="stretch", column_config={
        "params": st.column_config.NumberColumn("parameters", format="localized"),
        "val acc": st.column_config.TextColumn("final val acc"),
        "test acc": st.column_config.TextColumn("test acc"),
        "date": st.column_config.DatetimeColumn("date", format="YYYY-MM-DD HH:mm"),
    })


def _live_runs_table() -> None:
    infos, _ = runs.list_runs()
    _runs_table(infos)
    if not training.active_runs(infos):
        st.rerun()  # all done: one full rerun draws the static page (and stops this polling)


def _compare(infos: list[runs.RunInfo]) -> None:
    with_curves = [r.name for r in infos if r.epochs_done > 0]
    if len(with_curves) < 1:
        return
    if "tr_compare" not in ss:
        ss["tr_compare"] = with_curves[:3]
    ss["tr_compare"] = [n for n in ss["tr_compare"] if n in with_curves]  # deleted runs drop out
    c1, c2 = st.columns([3, 1])
    chosen = c1.multiselect("Overlay the curves of", with_curves, key="tr_compare",
                            placeholder="Choose runs to compare")
    metric = c2.selectbox("Metric", ["val_accuracy", "val_loss", "accuracy", "loss"], key="tr_compare_metric",
                          format_func=lambda m: m.replace("val_", "validation ").replace("_", " "))
    if chosen:
        root = runs.runs_root()
        st.plotly_chart(plots.overlay_curves({n: runs.read_history(root / n) for n in chosen}, metric),
                        key="tr_compare_chart")


def _delete(name: str) -> None:
    ss.pop("tr_del_confirm", None)
    try:
        runs.delete_run(runs.runs_root() / name)
    except (runs.RunError, OSError) as e:
        ss[MSG] = ("error", f"Could not delete {name}: {e}")
        return
    training.forget_logs(name)
    if ss.get(training.WATCH) == name:
        ss[training.WATCH] = None
    ss[MSG] = ("success", f"Deleted run {name}.")


def _delete_ui(infos: list[runs.RunInfo], broken: list[tuple[str, str]]) -> None:
    deletable = [r.name for r in infos if not r.protected and r.state not in training.ACTIVE]
    deletable += [n for n, _ in broken if n != runs.PRETRAINED]
    pending = ss.get("tr_del_confirm")
    if pending:
        st.warning(f"Delete run **{pending}** with its model and curves? This cannot be undone.")
        c = st.columns([1, 1, 4])
        c[0].button("Yes, delete", key="tr_del_yes", type="primary", on_click=_delete, args=(pending,))
        c[1].button("Cancel", key="tr_del_no", on_click=lambda: ss.pop("tr_del_confirm", None))
        return
    if not deletable:
        st.caption("Nothing to delete (the pretrained model is protected; stop a run before deleting it).")
        return
    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    pick = c1.selectbox("Delete a run", deletable, key="tr_del_pick",
                        help="The pretrained model is protected; queued or running runs must be stopped first.")
    c2.button("Delete…", key="tr_del_ask", on_click=lambda: ss.update(tr_del_confirm=pick))


# --- the page ---------------------------------------------------------------------------------------
st.title("Train")
st.caption("Configure a network, train it in its own process and watch it learn. Training keeps going if you "
           "leave the page or close the browser; come back and it is shown again.")

_init_form()
if MSG in ss:
    kind, text = ss.pop(MSG)
    getattr(st, kind)(text)

infos, broken = runs.list_runs()
watching = training.pick_watch(ss.get(training.WATCH), infos)
ss[training.WATCH] = watching
if watching:
    _live_panel(watching)
_other_active(infos, watching)

st.subheader("New training run")
with st.container(border=True):
    left, right = st.columns([5, 3], gap="large")
    with left:
        st.selectbox("Preset", PRESETS, key="tr_preset", on_change=_on_preset,
                     format_func=lambda p: f"{p} — {architectures.PRESET_DESCRIPTIONS[p]}",
                     help="Picking a preset fills in its recommended settings.")
        c = st.columns([1, 1, 1, 1.3])
        c[0].number_input("Epochs", 1, 500, step=1, key="tr_epochs")
        c[1].number_input("Batch size", 1, 8192, step=16, key="tr_batch")
        c[2].selectbox("Optimizer", OPTIMIZERS, key="tr_opt")
        c[3].number_input("Learning rate", 0.0, 10.0, step=1e-4, format="%.5f", key="tr_lr")
        c = st.columns(3)
        c[0].selectbox("Schedule", SCHEDULES, key="tr_sched",
                       help="constant; cosine decay; step (halve at 50 % and 75 %); one-cycle (warm-up, decay)")
        c[1].slider("Validation split", 0.0, 0.5, step=0.05, key="tr_val",
                    help="Fraction of the training images held out to measure validation accuracy.")
        c[2].number_input("Seed", 0, 2**31 - 1, step=1, key="tr_seed")
        # Each option next to the settings it enables; those stay visible (disabled) so the layout is stable.
        es, aug, sub = st.columns(3, border=True)
        # (Help sits on the dependent fields: a help icon beside a checkbox truncates its label here.)
        es.checkbox("Early stopping", key="tr_es")
        es.number_input("Patience (epochs)", 1, 100, step=1, key="tr_patience", disabled=not ss["tr_es"],
                        help="Early stopping ends training when validation loss has not improved for this "
                             "many epochs (needs a validation split) and keeps the best epoch's weights.")
        aug.checkbox("Augmentation", key="tr_aug")
        aug.slider("Rotation (°)", 0.0, 45.0, step=1.0, key="tr_rot", disabled=not ss["tr_aug"],
                   help="Augmentation randomly rotates, shifts and zooms each training image.")
        aug.slider("Shift (fraction)", 0.0, 0.3, step=0.01, key="tr_shift", disabled=not ss["tr_aug"])
        aug.slider("Zoom (fraction)", 0.0, 0.3, step=0.01, key="tr_zoom", disabled=not ss["tr_aug"])
        sub.checkbox("Use a subset", key="tr_use_limit")
        sub.number_input("Subset size (images)", 1, 100_000, step=500, key="tr_limit",
                         disabled=not ss["tr_use_limit"],
                         help="Train on only this many images (taken before the validation split).")
    with right:
        custom = ss["tr_preset"] == "custom"
        st.markdown("**Architecture**" + ("" if custom else " (choose the *custom* preset to edit)"))
        c = st.columns(3)
        c[0].number_input("Conv blocks", 0, 4, step=1, key="tr_blocks", disabled=not custom)
        c[1].selectbox("Kernel", (1, 3, 5, 7), key="tr_kernel", disabled=not custom,
                       format_func=lambda k: f"{k}×{k}")
        c[2].number_input("Dense units", 1, 4096, step=16, key="tr_dense", disabled=not custom)
        n_blocks = int(ss["tr_blocks"])
        if n_blocks:
            fc = st.columns(4)
            for i in range(n_blocks):
                fc[i].number_input(f"Filters {i + 1}", 1, 512, step=8, key=f"tr_f{i}", disabled=not custom)
        c = st.columns(2)
        c[0].slider("Dropout", 0.0, 0.95, step=0.05, key="tr_dropout", disabled=not custom)
        c[1].checkbox("Batch norm", key="tr_bn", disabled=not custom)

        cfg, err = _validated()
        shown_arch = cfg.arch if cfg else None
        if shown_arch is None:  # show the network even when a training setting is wrong
            try:
                shown_arch = _config_from_form().arch
            except (ConfigError, ValueError):
                try:
                    shown_arch = preset_config(ss["tr_preset"]).arch if not custom else None
                except ConfigError:
                    shown_arch = None
        if shown_arch is not None:
            try:
                rows = architectures.summary_rows(shown_arch)
                st.metric("Parameters", f"{sum(r['params'] for r in rows):,}")
                table = pd.DataFrame([{"layer": r["layer"], "kind": r["kind"],
                                       "output": "×".join(str(d) for d in r["output_shape"]),
                                       "params": r["params"]} for r in rows])
                st.dataframe(table, key="tr_layers", hide_index=True, height=280, width="stretch",
                             column_config={"params": st.column_config.NumberColumn(format="localized")})
            except ValueError as e:
                st.error(f"Architecture: {e}")

    c = st.columns([3, 1, 1], vertical_alignment="bottom")
    c[0].text_input("Run name", key="tr_name", max_chars=runs.MAX_NAME,
                    help="Letters, digits, - and _. It names the run's folder.")
    c[1].button("Classroom demo", key="tr_demo", on_click=_on_demo, icon=":material/school:", width="stretch",
                help=f"Sets a {DEMO['limit']:,}-image subset and {DEMO['epochs']} epoch: a run that takes well "
                     "under a minute.")
    c[2].button("Start training", key="tr_start", type="primary", icon=":material/play_arrow:",
                on_click=_on_start, disabled=cfg is None, width="stretch")
    if err:
        st.error(err)
_save_form()

st.subheader("All runs")
if broken:
    for n, problem in broken:
        st.warning(f"**{n}** cannot be read: {problem}")
if infos:
    if training.active_runs(infos):
        # Statuses and epochs change while something trains: refresh the table (every 5 s).
        st.fragment(_live_runs_table, run_every=5)()
    else:
        _runs_table(infos)
    _compare(infos)
else:
    st.info("No runs yet. Start one above.")
if infos or broken:
    _delete_ui(infos, broken)
model_import.render()
