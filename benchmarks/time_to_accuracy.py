"""Time to accuracy: the Keras `mnist_convnet` example vs the `fast` preset, side by side in one run.

The example (https://keras.io/examples/vision/mnist_convnet/): Conv32 3x3 relu, MaxPool 2, Conv64 3x3
relu, MaxPool 2, Flatten, Dropout 0.5, Dense 10 softmax; adam, batch 128, 15 epochs, validation_split
0.1, x/255 in memory. The `fast` preset is trained exactly as the app trains it
(`mnist_core.training.train`). Both evaluate on the test set at each epoch end through a callback whose
own time is excluded from the clock, so the curves give "seconds of training to reach X % test accuracy".

    python benchmarks/time_to_accuracy.py [--quick] [--json]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import common  # noqa: E402
import numpy as np  # noqa: E402

# Quick mode keeps both recipes' epoch counts (so the race has the same shape) on less data.
QUICK = dict(n_train=4000, n_test=2000, example_epochs=15)
FULL = dict(n_train=None, n_test=None, example_epochs=15)


def example_model() -> Any:
    import keras
    from keras import layers as L

    return keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        L.Conv2D(32, kernel_size=(3, 3), activation="relu"),
        L.MaxPooling2D(pool_size=(2, 2)),
        L.Conv2D(64, kernel_size=(3, 3), activation="relu"),
        L.MaxPooling2D(pool_size=(2, 2)),
        L.Flatten(),
        L.Dropout(0.5),
        L.Dense(10, activation="softmax"),
    ], name="keras_mnist_convnet")


def test_timer(x_test: np.ndarray, y_test: np.ndarray, label: str = "", log: Any = None) -> Any:
    """A callback that evaluates test accuracy at each epoch end and keeps a training clock that
    excludes those evaluations: `records` = [(epoch, train_seconds, test_accuracy)]."""
    import keras

    xt = x_test.astype("float32")[..., None] / 255.0

    class TestTimer(keras.callbacks.Callback):
        def on_train_begin(self, logs: Any = None) -> None:
            self.records: list[tuple[int, float, float]] = []
            self.excluded = 0.0
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            t = time.perf_counter()
            proba = self.model.predict(xt, batch_size=1000, verbose=0)
            acc = float((proba.argmax(1) == y_test).mean())
            self.records.append((epoch + 1, t - self.t0 - self.excluded, acc))
            if log:
                log(f"  {label:<7} epoch {epoch + 1:>2}: {self.records[-1][1]:7.1f}s  test acc {acc:.4f}")
            self.excluded += time.perf_counter() - t

    return TestTimer()


def run_example(ds: Any, epochs: int, log: Any = print) -> list[tuple[int, float, float]]:
    import keras

    keras.utils.set_random_seed(42)
    x = ds.x_train.astype("float32")[..., None] / 255.0
    model = example_model()
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    cb = test_timer(ds.x_test, ds.y_test, "example", log)
    model.fit(x, ds.y_train, batch_size=128, epochs=epochs, validation_split=0.1, verbose=0, callbacks=[cb])
    return cb.records


def run_fast(ds: Any, config: Any = None, log: Any = print) -> tuple[list[tuple[int, float, float]], Any]:
    from mnist_core.config import preset_config
    from mnist_core.training import train

    config = config or preset_config("fast")
    cb = test_timer(ds.x_test, ds.y_test, "fast", log)
    metrics = train(config, None, ds, extra_callbacks=[cb])
    return cb.records, metrics


def subset(ds: Any, n_train: int | None, n_test: int | None) -> Any:
    from mnist_core.data import Dataset, DataSource

    if n_train is None and n_test is None:
        return ds
    n_train, n_test = n_train or len(ds.x_train), n_test or len(ds.x_test)
    rng = np.random.default_rng(0)
    tr = rng.permutation(len(ds.x_train))[:n_train]
    te = rng.permutation(len(ds.x_test))[:n_test]
    src = DataSource(ds.source.name, f"{ds.source.path}[{n_train}/{n_test}]", n_train, n_test)
    return Dataset(ds.x_train[tr], ds.y_train[tr], ds.x_test[te], ds.y_test[te], src)


ISSUE_EXAMPLE_ACC = 0.9866  # the example's test accuracy on this data as the issue quotes it


def steady_wall(records: list[tuple[int, float, float]]) -> tuple[float, int]:
    """(wall time with stalled epochs replaced by the median epoch, how many epochs stalled).

    Keras's `model.fit` on arrays (the example) builds a `tf.data` pipeline with autotuning, whose model
    thread now and then holds up an epoch's end for seconds with the CPU idle (benchmarks/README.md). The
    example's measured wall time then flatters the `fast` preset, whose pipeline avoids that; the fraction
    against this steady wall is the conservative one."""
    ends = [r[1] for r in records]
    secs = np.diff([0.0, *ends])
    if len(secs) < 3:
        return ends[-1], 0
    med = float(np.median(secs[1:]))
    stalled = secs[1:] > 1.5 * med
    return float(secs[0] + np.where(stalled, med, secs[1:]).sum()), int(stalled.sum())


def summarise(ex: list[tuple[int, float, float]], fast: list[tuple[int, float, float]]) -> dict[str, Any]:
    ex_acc, ex_wall = ex[-1][2], ex[-1][1]
    ex_steady, ex_stalls = steady_wall(ex)
    beat = next((s for _, s, a in fast if a > ex_acc), None)
    beat_issue = next((s for _, s, a in fast if a > ISSUE_EXAMPLE_ACC), None)
    within = [r for r in fast if r[1] <= ex_wall] or fast[:1]
    within_steady = [r for r in fast if r[1] <= ex_steady] or fast[:1]
    frac = lambda t, wall: round(t / wall, 3) if t is not None else None  # noqa: E731
    return {
        "example_test_acc": ex_acc, "example_wall_s": round(ex_wall, 2),
        "example_wall_s_steady": round(ex_steady, 2), "example_stalled_epochs": ex_stalls,
        "fast_test_acc": within[-1][2],  # the last fast epoch that ended within the example's wall time
        "fast_test_acc_within_steady_wall": within_steady[-1][2],
        "fast_wall_s": round(fast[-1][1], 2), "fast_final_test_acc": fast[-1][2],
        "fast_epochs": len(fast), "fast_epochs_within_example_wall": len(within) if within[-1][1] <= ex_wall else 0,
        # None when fast never beat the example (reported, never invented)
        "fast_s_to_beat_example": round(beat, 2) if beat is not None else None,
        "fast_beat_fraction_of_example_wall": frac(beat, ex_wall),
        "fast_beat_fraction_of_example_steady_wall": frac(beat, ex_steady),
        "fast_s_to_beat_9866": round(beat_issue, 2) if beat_issue is not None else None,
        "fast_beat_9866_fraction_of_example_wall": frac(beat_issue, ex_wall),
        "fast_best_test_acc": max(a for _, _, a in fast),
    }


TARGETS = {"fast_beat_fraction_of_example_wall": "<= 0.333", "fast_beat_fraction_of_example_steady_wall": "<= 0.333",
           "fast_test_acc": ">= 0.993 (full mode)", "fast_test_acc_within_steady_wall": ">= 0.993 (full mode)"}


def run(quick: bool = False, log: Any = print) -> dict[str, Any]:
    from mnist_core.data import load_mnist

    p = QUICK if quick else FULL
    ds = subset(load_mnist(common.data_dir(), "data_dir"), p["n_train"], p["n_test"])
    log(f"time to accuracy on {len(ds.x_train)} training / {len(ds.x_test)} test images")
    ex = run_example(ds, p["example_epochs"], log)
    fast, _ = run_fast(ds, log=log)
    out = summarise(ex, fast)
    out["tta_example_curve"] = [[round(s, 2), a] for _, s, a in ex]
    out["tta_fast_curve"] = [[round(s, 2), a] for _, s, a in fast]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", action="store_true", help="print the results as JSON too")
    a = ap.parse_args()
    res = run(a.quick)
    common.print_table({k: v for k, v in res.items() if not k.endswith("_curve")}, "time to accuracy", TARGETS)
    if a.json:
        print(common.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
