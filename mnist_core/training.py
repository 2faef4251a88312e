"""Training: `train(config, run_dir, dataset)` fits a model and writes its run folder.

Progress goes out through `RunFolderCallback`, a Keras callback that writes batch progress
(`progress.json`, throttled), the per-batch curve (`batches.csv`: the mean loss and accuracy of the
batches since the last point, not Keras's running mean, which restarts each epoch and would draw a saw
tooth) and one `history.csv` row per epoch, and that stops training cleanly
between batches when a stop is requested (a `stop.request` file, or `request_stop()` from a signal
handler). The input pipeline is `tf.data` over uint8 arrays (cast on the fly, optional augmentation,
prefetch). The learning-rate schedule is applied per batch by the same callback, so saved models hold
a plain float learning rate and load without custom objects. Training runs under
`tf.distribute.MirroredStrategy` when GPUs (or explicitly given devices) are present, plain otherwise.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from . import checkpoints, runs
from .architectures import build_model, param_count
from .config import TrainConfig
from .data import Dataset

_STOP = {"requested": False}


def request_stop() -> None:
    """Ask the current training (in this process) to stop after the batch in progress."""
    _STOP["requested"] = True


def lr_at(config: TrainConfig, step: int, total_steps: int) -> float:
    """The learning rate at a given optimisation step under the config's schedule."""
    base, t = config.learning_rate, min(step / max(total_steps, 1), 1.0)
    if config.lr_schedule == "cosine":
        return base * 0.5 * (1 + math.cos(math.pi * t))
    if config.lr_schedule == "step":  # halve at 50 % and again at 75 % of training
        return base * (0.5 if t >= 0.5 else 1.0) * (0.5 if t >= 0.75 else 1.0)
    if config.lr_schedule == "onecycle":  # warm up over 25 %, then cosine down to ~0
        warm = 0.25
        if t < warm:
            return base * (0.1 + 0.9 * t / warm)
        # Blend towards a 1e-3 floor (not add it) so the peak is exactly the configured rate.
        cos = 0.5 * (1 + math.cos(math.pi * (t - warm) / (1 - warm)))
        return base * (1e-3 + (1 - 1e-3) * cos)
    return base


def split_data(dataset: Dataset, config: TrainConfig) -> tuple[np.ndarray, ...]:
    """The training subset and validation split, drawn with the config's seed."""
    config.check_against_data(len(dataset.x_train))
    rng = np.random.default_rng(config.seed)
    idx = rng.permutation(len(dataset.x_train))
    if config.limit:
        idx = idx[: config.limit]
    n_val = int(len(idx) * config.validation_split)
    val, fit = idx[:n_val], idx[n_val:]
    return dataset.x_train[fit], dataset.y_train[fit], dataset.x_train[val], dataset.y_train[val]


def get_strategy(devices: list[str] | None = None) -> Any:
    """MirroredStrategy over the given devices or every GPU; the default strategy on plain CPU."""
    import tensorflow as tf

    if devices is None:
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus] if gpus else None
    if devices:
        return tf.distribute.MirroredStrategy(devices=devices)
    return tf.distribute.get_strategy()


# Parallel calls for the pipeline's maps: enough to overlap with the training step on a small machine.
_PARALLEL = max(2, min(4, os.cpu_count() or 2))


def augment_batch(images: Any, seed: Any, rotation_deg: float, shift_frac: float, zoom_frac: float) -> Any:
    """Randomly rotate, shift and zoom a float batch `(B, 28, 28, 1)`, each image by its own draw.

    The three moves are composed into one affine map per image and applied in a single bilinear
    resampling (`ImageProjectiveTransformV3`): a third of the work of Keras's three Random* layers in a
    row (measured ~2-3x the images/s) and one interpolation blur instead of three. `seed` is a
    stateless seed pair, so a run's augmentations depend only on its config seed."""
    import tensorflow as tf

    b = tf.shape(images)[0]
    h, w = images.shape[1], images.shape[2]
    u = tf.random.stateless_uniform((b, 4), seed=seed, minval=-1.0, maxval=1.0)
    angle = u[:, 0] * (rotation_deg * math.pi / 180.0)
    scale = 1.0 + u[:, 1] * zoom_frac  # the map goes output -> input, so > 1 shows the digit smaller
    tx, ty = u[:, 2] * shift_frac * w, u[:, 3] * shift_frac * h
    cos, sin = tf.cos(angle) * scale, tf.sin(angle) * scale
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0  # rotate and zoom about the image centre
    zero = tf.zeros_like(cos)
    transforms = tf.stack([cos, -sin, cx - cos * cx + sin * cy - tx,
                           sin, cos, cy - sin * cx - cos * cy - ty, zero, zero], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(images=images, transforms=transforms, output_shape=[h, w],
                                                 fill_value=0.0, interpolation="BILINEAR", fill_mode="CONSTANT")


def make_pipeline(x: np.ndarray, y: np.ndarray, config: TrainConfig, training: bool, first_epoch: int = 0) -> Any:
    """tf.data over uint8 images: batches cast to [0, 1], optionally augmented, prefetched.

    For training the dataset holds every epoch from `first_epoch` to `config.epochs`, one after the
    other (fit it with `steps_per_epoch`): epoch e's order is a permutation drawn from (seed, e) and
    batch b's augmentation from (seed, e, b), both stateless. So epoch e is the same whether the run
    started at 0 or was resumed at e (tf.data's own reshuffling depends on how many times the dataset
    was iterated in this process, which a resumed process cannot replay)."""
    import tensorflow as tf

    # Batches of indices, then each batch gathered from the in-memory arrays in one op: measured ~1.5x
    # the images/s of shuffling and batching the image slices one by one (benchmarks/README.md).
    xs, ys = tf.constant(x), tf.constant(y)
    n, bs = len(x), config.batch_size
    steps = math.ceil(n / bs)
    seed = tf.constant(config.seed, tf.int64)

    def to_float(idx):
        return tf.cast(tf.gather(xs, idx), tf.float32)[..., None] / 255.0, tf.gather(ys, idx)

    if training:
        def epoch(e):
            order = tf.argsort(tf.random.stateless_uniform([n], seed=tf.stack([seed, e])))
            batch_seeds = tf.data.Dataset.range(steps).map(lambda b: tf.stack([seed + 1, e * steps + b]))
            return tf.data.Dataset.zip((tf.data.Dataset.from_tensor_slices(order).batch(bs), batch_seeds))

        ds = tf.data.Dataset.range(first_epoch, config.epochs).flat_map(epoch)

        def batch(idx, batch_seed):
            xb, yb = to_float(idx)
            if config.augment:
                xb = augment_batch(xb, batch_seed, config.rotation_deg, config.shift_frac, config.zoom_frac)
            return xb, yb

        ds = ds.map(batch, num_parallel_calls=_PARALLEL)
    else:
        ds = tf.data.Dataset.range(n).batch(bs).map(to_float, num_parallel_calls=_PARALLEL)
    # No tf.data autotuning: its model thread is joined each time an iterator is destroyed (every epoch,
    # for validation), and on these machines that join waited 5-20 s with the CPU idle now and then
    # (seen in gdb: Model::OptimizeLoop on a timed wait). Fixed parallelism and a two-batch prefetch
    # measured as fast as autotune's choice (benchmarks/README.md, overhead).
    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.prefetch(2).with_options(options)


def make_optimizer(config: TrainConfig) -> Any:
    import keras

    lr = config.learning_rate
    return {
        "adam": lambda: keras.optimizers.Adam(lr),
        "adamw": lambda: keras.optimizers.AdamW(lr, weight_decay=1e-4),
        "sgd": lambda: keras.optimizers.SGD(lr, momentum=0.9, nesterov=True),
        "rmsprop": lambda: keras.optimizers.RMSprop(lr),
    }[config.optimizer]()


def _callback_base() -> type:
    import keras

    return keras.callbacks.Callback


def make_callback(run_dir: Path | None, config: TrainConfig, steps_per_epoch: int,
                  on_batch: Callable[[dict[str, Any]], None] | None = None,
                  on_epoch: Callable[[dict[str, Any]], str | None] | None = None,
                  progress_every_s: float = 0.5, first_step: int = 0) -> Any:
    """The progress/stop/schedule callback (see the module docstring)."""
    run = runs.folder(run_dir) if run_dir is not None else None

    class RunFolderCallback(_callback_base()):
        def __init__(self) -> None:
            super().__init__()
            self.total_steps = steps_per_epoch * config.epochs
            self.step = first_step  # a resumed run continues its learning-rate schedule
            self.epoch = 0
            self.epoch_start = time.perf_counter()
            self.last_write = 0.0
            self.train_start = time.time()
            self.stopped = False
            self.stop_reason: str | None = None  # why on_epoch asked to stop (a sweep's ASHA), for the status
            self.last_point = (0, (0.0, 0.0))

        def _set_lr(self) -> float:
            lr = lr_at(config, self.step, self.total_steps)
            if config.lr_schedule != "constant":
                self.model.optimizer.learning_rate.assign(lr)
            return lr

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.epoch = epoch
            self.epoch_start = time.perf_counter()
            self.last_point = (0, (0.0, 0.0))  # (batches done, Keras's running means) at the last point

        def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
            self._set_lr()

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            self.step += 1
            if _STOP["requested"] or (run is not None and runs.stop_requested(run)):
                self.model.stop_training = True
                self.stopped = True
            now = time.perf_counter()
            if now - self.last_write >= progress_every_s or batch + 1 == steps_per_epoch:
                self.last_write = now
                logs = logs or {}
                loss, acc = float(logs.get("loss", float("nan"))), float(logs.get("accuracy", float("nan")))
                prog = {
                    "epoch": self.epoch + 1, "epochs": config.epochs, "batch": batch + 1,
                    "batches_per_epoch": steps_per_epoch, "loss": loss, "accuracy": acc,
                    "elapsed_s": time.time() - self.train_start, "updated": time.time(),
                }
                # Keras logs the mean over the epoch so far: the batches since the last point have the mean
                # (k2 m2 - k1 m1) / (k2 - k1), which is what the curve should show.
                k1, (m1_loss, m1_acc) = self.last_point
                k2 = batch + 1
                point = {"epoch": self.epoch + 1, "batch": k2, "x": round(self.epoch + k2 / steps_per_epoch, 5),
                         "loss": round((k2 * loss - k1 * m1_loss) / (k2 - k1), 6),
                         "accuracy": round((k2 * acc - k1 * m1_acc) / (k2 - k1), 6)}
                self.last_point = (k2, (loss, acc))
                if run is not None:
                    runs.atomic_write_json(run.progress, prog)
                    runs.append_batches(run, [point])
                if on_batch:
                    on_batch(prog)

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            logs = logs or {}
            row = {"epoch": epoch + 1, "seconds": round(time.perf_counter() - self.epoch_start, 3),
                   "lr": lr_at(config, self.step, self.total_steps)}
            for k in ("loss", "accuracy", "val_loss", "val_accuracy"):
                if k in logs:
                    row[k] = float(logs[k])
            if run is not None:
                runs.append_history(run, row)
                if self.step == (epoch + 1) * steps_per_epoch:  # a whole epoch (not one cut short by Stop)
                    checkpoints.save(self.model, run, epoch + 1, self.step)
            # on_epoch may return a reason to stop after this epoch (a sweep's ASHA, sweeps.py): the run
            # then ends `stopped` with that reason, its model saved and evaluated like any stopped run.
            why = on_epoch(row) if on_epoch else None
            if why:
                self.model.stop_training = True
                self.stopped, self.stop_reason = True, str(why)

    return RunFolderCallback()


def _fresh_model(config: TrainConfig) -> Any:
    """The config's network, compiled; starting from a parent run's weights when `init_from` names one."""
    model = build_model(config.arch)
    model.compile(optimizer=make_optimizer(config), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    if config.init_from:
        from .inference import load_model

        parent = load_model(runs.folder(runs.runs_root() / config.init_from).model)
        try:
            model.set_weights(parent.get_weights())
        except ValueError as e:
            raise runs.RunError(f"the weights of {config.init_from} do not fit this network ({e})") from e
    return model


def train(config: TrainConfig, run_dir: Path | None, dataset: Dataset, *,
          on_batch: Callable[[dict[str, Any]], None] | None = None,
          on_epoch: Callable[[dict[str, Any]], str | None] | None = None,
          devices: list[str] | None = None, deterministic: bool = True,
          extra_callbacks: list[Any] | None = None, resume: bool = False) -> dict[str, Any]:
    """Train `config` on `dataset`; with a `run_dir`, write the run folder as training goes (a
    checkpoint and TensorBoard events each epoch). With `resume`, continue the run folder's last
    checkpoint: the same epochs, batches and learning rates the uninterrupted run would have had.
    Returns the metrics dict (also saved as metrics.json). Status ends finished, stopped or failed."""
    import keras
    import tensorflow as tf

    from .evaluation import evaluate_predictions, predict_proba, save_evaluation

    _STOP["requested"] = False
    run_dir = Path(run_dir) if run_dir is not None else None
    if run_dir is not None:
        runs.set_status(run_dir, "running", pid=os.getpid(), started=time.time(), data=dataset.source.describe())
    try:
        keras.utils.set_random_seed(config.seed)
        if deterministic:
            tf.config.experimental.enable_op_determinism()
        x_fit, y_fit, x_val, y_val = split_data(dataset, config)
        steps = math.ceil(len(x_fit) / config.batch_size)
        strategy = get_strategy(devices)
        first_epoch = 0
        with strategy.scope():
            if resume:
                if run_dir is None:
                    raise ValueError("resume needs a run folder")
                model, state = checkpoints.load(run_dir)
                first_epoch = state.epoch
                runs.truncate_curves(run_dir, first_epoch)  # what a killed epoch had written goes
            else:
                model = _fresh_model(config)
        train_ds = make_pipeline(x_fit, y_fit, config, training=True, first_epoch=first_epoch)
        val_ds = make_pipeline(x_val, y_val, config, training=False) if len(x_val) else None
        n_fit, n_val = len(x_fit), len(x_val)
        # The pipelines hold their own copies (tf.constant); dropping the split's numpy copies keeps
        # the trainer's peak memory ~20 MB lower on MNIST (benchmarks/README.md, memory).
        del x_fit, y_fit, x_val, y_val
        cb = make_callback(run_dir, config, steps, on_batch=on_batch, on_epoch=on_epoch,
                           first_step=first_epoch * steps)
        callbacks = [cb] + list(extra_callbacks or [])
        if run_dir is not None:
            # Scalars per epoch and the graph, for `tensorboard --logdir <runs folder>`; the app itself
            # reads history.csv.
            callbacks.append(keras.callbacks.TensorBoard(log_dir=str(runs.folder(run_dir).tensorboard),
                                                         histogram_freq=0, write_graph=True,
                                                         update_freq="epoch", profile_batch=0))
        if config.early_stopping:
            callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience,
                                                           restore_best_weights=True))
        t0 = time.perf_counter()
        hist = model.fit(train_ds, validation_data=val_ds, epochs=config.epochs, initial_epoch=first_epoch,
                         steps_per_epoch=steps, callbacks=callbacks, shuffle=False, verbose=0)
        session_seconds = train_seconds = time.perf_counter() - t0
        if first_epoch and run_dir is not None:  # the epochs before the resume count too
            train_seconds += sum(r.get("seconds") or 0.0 for r in runs.read_history(run_dir)[:first_epoch])
        del train_ds, val_ds  # free the pipelines' image copies before the test-set pass
        epochs_run = len(hist.history.get("loss", []))
        epochs_done = first_epoch + epochs_run
        images_seen = min((cb.step - first_epoch * steps) * config.batch_size, epochs_run * n_fit)
        if run_dir is not None:
            runs.save_model_atomic(model, run_dir)
        t1 = time.perf_counter()
        # Small batches: the first conv's activations for 1000 images cost ~160 MB more peak RSS in the
        # trainer than 250, and 64 ~15 MB less than 250, for ~0.3 s more (benchmarks/README.md, memory).
        proba = predict_proba(model, dataset.x_test, batch_size=64)
        result = evaluate_predictions(dataset.y_test, proba)
        metrics = {
            "test_accuracy": result.accuracy, "test_loss": result.loss, "mistakes": result.n_mistakes,
            "n_test": len(dataset.y_test), "train_seconds": round(train_seconds, 3),
            "eval_seconds": round(time.perf_counter() - t1, 3),
            "images_per_s": round(images_seen / session_seconds, 1),
            "epochs_done": epochs_done, "n_train": n_fit, "n_val": n_val,
            "params": param_count(config.arch), "data_source": dataset.source.name,
            "data": dataset.source.describe(), "stopped_early": bool(cb.stopped),
            "devices": int(getattr(strategy, "num_replicas_in_sync", 1)),
        }
        if run_dir is not None:
            save_evaluation(run_dir, dataset.source, dataset.y_test, proba)
            runs.atomic_write_json(runs.folder(run_dir).metrics, metrics)
            runs.folder(run_dir).stop.unlink(missing_ok=True)
            runs.set_status(run_dir, "stopped" if cb.stopped else "finished", finished=time.time(), pid=None,
                            **({"error": cb.stop_reason} if cb.stop_reason else {}))
        metrics["model"] = model
        return metrics
    except BaseException as e:
        if run_dir is not None:
            msg = "stopped before the first epoch ended" if isinstance(e, KeyboardInterrupt) else \
                f"{type(e).__name__}: {e}"
            runs.set_status(run_dir, "failed", error=msg, finished=time.time(), pid=None)
        raise
