"""Exporting a run's Keras model for other runtimes, each export checked by its own runtime.

`FORMATS` names every format once: LiteRT (`.tflite`, float32, and dynamic-range quantized: int8
weights, float activations, no representative data needed), ONNX (`.onnx`, through Keras and tf2onnx)
and a TensorFlow SavedModel for TF Serving (a directory). `export_model` writes one format to a temporary
name beside the target and renames it into place only after an optional `verify` hook has loaded it, so
the final name never holds a half-written or unloadable export. `check_export` loads the file with the
format's own runtime (ai-edge-litert, onnxruntime, `tf.saved_model`), runs the test set through it and
compares with the Keras model's probabilities: accuracy, argmax agreement, largest probability
difference; each format carries its agreement targets, so the report says whether they were met.
`export_run` does one format for a run folder; `export_formats` several, loading the model and its Keras
predictions once, and records the reports in `export.json` beside the files, keyed on the model file's
version and the data, so an unchanged model is not exported twice. TensorFlow and the runtimes are
imported inside the functions: importing this module costs numpy only.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tempfile
import threading
import time
import warnings
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import runs
from .architectures import INPUT_SHAPE

if TYPE_CHECKING:
    from .data import Dataset

ALL = "all"  # `--format all`: every format in FORMATS
REPORT_FILE = "export.json"  # beside the exports: their check reports, keyed on model version and data
INPUT_NAME = "image"  # every export's input is named this, whatever the Keras model's input layer is called
ONNX_OPSET = 15  # tf2onnx 1.17's default, pinned so an upgrade does not change the files; onnxruntime >= 1.10
CHECK_BATCH = 1000
Progress = Callable[..., Any]  # progress(fraction, stage); ui.jobs.Job.report fits


class ExportError(ValueError):
    """An export that could not be written or checked, explained for the user."""


@dataclass(frozen=True)
class Format:
    """One export format: its file (or folder) name, what it is, and the targets its check must meet
    against the Keras model on the test set."""

    name: str
    filename: str  # default name in an export folder; a name without a suffix is a directory
    title: str
    description: str
    runtime: str  # the package that loads it, for messages
    min_agreement: float  # fraction of test images whose argmax equals the Keras model's
    max_accuracy_gap: float  # |accuracy - Keras accuracy|, as a fraction

    @property
    def suffix(self) -> str:
        return Path(self.filename).suffix

    @property
    def is_dir(self) -> bool:
        return not self.suffix


_FLOAT = {"min_agreement": 0.999, "max_accuracy_gap": 0.001}  # issue 17: same argmax on 99.9 %, 0.1 point
FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("litert", "model.tflite", "LiteRT float32",
           "LiteRT (TensorFlow Lite) flatbuffer, float32 weights: for Android, iOS, microcontrollers and "
           "the ai-edge-litert Python runtime", "ai-edge-litert", **_FLOAT),
    # Dynamic-range quantization only quantizes the weights (int8, a quarter of the size); activations stay
    # float, so it needs no representative dataset. The issue allows 0.5 point of accuracy; argmax
    # agreement is held to 99 %, so that a quantization that breaks some digits cannot hide behind a
    # good average.
    Format("litert_quant", "model_quant.tflite", "LiteRT int8 weights",
           "LiteRT, dynamic-range quantized: int8 weights, float activations (about 4x smaller)",
           "ai-edge-litert", min_agreement=0.99, max_accuracy_gap=0.005),
    Format("onnx", "model.onnx", "ONNX", f"ONNX (opset {ONNX_OPSET}) for onnxruntime and other ONNX runtimes",
           "onnxruntime", **_FLOAT),
    Format("saved_model", "saved_model", "TF SavedModel",
           "TensorFlow SavedModel (a folder; signature `serving_default`) for TF Serving", "tensorflow",
           **_FLOAT),
)}


def resolve_formats(fmt: str | Iterable[str]) -> list[str]:
    """Format names in FORMATS order from one name, `all`, a comma-separated list or any iterable of
    names; ExportError naming the unknown one and the choices."""
    names = fmt.split(",") if isinstance(fmt, str) else list(fmt)
    names = [n.strip() for n in names if n.strip()]
    if ALL in names:
        return list(FORMATS)
    for n in names:
        if n not in FORMATS:
            raise ExportError(f"unknown export format {n!r}; choose from {', '.join([*FORMATS, ALL])}")
    if not names:
        raise ExportError(f"no export format given; choose from {', '.join([*FORMATS, ALL])}")
    return [n for n in FORMATS if n in names]


def get_format(name: str) -> Format:
    """The Format called `name`; ExportError naming the choices otherwise."""
    if name not in FORMATS:
        raise ExportError(f"unknown export format {name!r}; choose from {', '.join(FORMATS)}")
    return FORMATS[name]


def export_dir(run_dir: Path | runs.RunFolder | str) -> Path:
    """`<run folder>/export/`, where the app writes a run's exports (not created here)."""
    return runs.folder(run_dir).export


@dataclass(frozen=True)
class ExportReport:
    """What one checked export is and how it compares with the Keras model on `n_images` test images."""

    format: str
    path: Path
    size_bytes: int
    n_images: int
    accuracy: float
    keras_accuracy: float
    agreement: float  # fraction of images with the same argmax as the Keras model
    max_prob_diff: float  # largest |p_export - p_keras| over all images and classes
    runtime: str  # the runtime (and version) that ran the check
    export_s: float = 0.0
    check_s: float = 0.0
    model_stamp: int = 0  # the source model file's mtime_ns
    data_key: str = ""  # DataSource.key of the test set

    @property
    def accuracy_gap(self) -> float:
        return abs(self.accuracy - self.keras_accuracy)

    @property
    def ok(self) -> bool:
        """Whether the check met its format's targets."""
        f = FORMATS[self.format]
        return self.agreement >= f.min_agreement and self.accuracy_gap <= f.max_accuracy_gap + 1e-12

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; the path is kept as its file name (an export folder can be moved)."""
        return {**asdict(self), "path": self.path.name}

    @classmethod
    def from_dict(cls, d: dict[str, Any], folder: Path) -> ExportReport:
        known = {f.name for f in fields(cls)}
        return cls(**{**{k: v for k, v in d.items() if k in known}, "path": Path(folder) / d["path"]})


# --- writing -----------------------------------------------------------------------------------------
def size_of(path: Path) -> int:
    """Bytes of a file, or of every file under a directory."""
    path = Path(path)
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def _staged(out: Path, is_dir: bool) -> Iterator[Path]:
    """A temporary path beside `out` (same suffix: Keras insists on `.tflite`) that is renamed to `out`
    when the block succeeds and removed when it fails, whatever the failure (Ctrl-C and job cancel too)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if is_dir:
        tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    else:
        fd, name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.stem}.", suffix=f".tmp{out.suffix}")
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        if is_dir:
            os.chmod(tmp, 0o755)  # mkdtemp makes 0700; exports are meant to be read by others
            # A directory cannot be swapped atomically for another: move the old one aside first, so the
            # name holds the old export or the new one, never a mixture of the two.
            old = out.with_name(f".{out.name}.{os.getpid()}.{threading.get_ident()}.old")
            if out.exists():
                os.replace(out, old)
            os.replace(tmp, out)
            _remove(old)
        else:
            os.chmod(tmp, 0o644)  # mkstemp makes 0600
            os.replace(tmp, out)
    except BaseException:
        _remove(tmp)
        raise


def _target(fmt: Format, out: Path) -> Path:
    """Where `fmt` goes for an `--out` of `out`: inside it when it is an existing folder (that is not
    itself a SavedModel being replaced); ExportError when a file name has the wrong suffix."""
    out = Path(out).expanduser()
    if out.is_dir() and not (fmt.is_dir and (out / "saved_model.pb").is_file()):
        out = out / fmt.filename
    if fmt.is_dir:
        # Replacing a folder deletes the old one: only ever a SavedModel, never a folder of the user's.
        if out.exists() and not (out / "saved_model.pb").is_file():
            raise ExportError(f"{out} exists and is not a SavedModel: not replaced")
    elif out.suffix != fmt.suffix:
        raise ExportError(f"{out.name}: {fmt.title} exports end with {fmt.suffix}")
    elif out.is_dir():
        raise ExportError(f"{out} is a folder")
    return out


def _spec() -> Any:
    import tensorflow as tf

    return tf.TensorSpec((None, *INPUT_SHAPE), tf.float32, name=INPUT_NAME)


def _write(model: Any, fmt: Format, path: Path) -> None:
    """Write `model` in `fmt` at `path` (a temporary name) through Keras's own exporters."""
    import tensorflow as tf

    sig = [_spec()]  # a fixed input name and a free batch size, whatever the model's input layer is
    if fmt.name in ("litert", "litert_quant"):
        # Builtin ops only: Keras also allows TF "select" ops, which the plain LiteRT runtime cannot run.
        # A model that needed them fails here, with the converter's message, not later on the phone.
        opts: dict[str, Any] = {"target_spec": {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS]}}
        if fmt.name == "litert_quant":
            opts["optimizations"] = [tf.lite.Optimize.DEFAULT]  # without representative data: dynamic range
        model.export(str(path), format="litert", verbose=False, input_signature=sig, **opts)
    elif fmt.name == "onnx":
        try:
            import tf2onnx  # noqa: F401
        except ImportError as e:
            raise ExportError("ONNX export needs tf2onnx and onnx: pip install tf2onnx onnx") from e
        # Keras's numpy 2 shim for tf2onnx probes `np.object`, which warns on every export. A filter, not
        # catch_warnings: that one swaps the process-wide filters, which other threads of a server share.
        warnings.filterwarnings("ignore", message=".*np.object", category=FutureWarning)
        model.export(str(path), format="onnx", verbose=False, input_signature=sig, opset_version=ONNX_OPSET)
    else:
        model.export(str(path), format="tf_saved_model", verbose=False, input_signature=sig)


def export_model(model: Any, fmt: str, out_path: str | Path,
                 verify: Callable[[Path], Any] | None = None) -> tuple[Path, Any]:
    """Export a Keras model in format `fmt` to `out_path` (a file, a folder for `saved_model`, or an
    existing folder to write the format's default name into), atomically: written under a temporary
    name, passed to `verify` (which may raise), then renamed. Returns (final path, what verify returned).
    On any failure nothing is left, and an export already under the name is untouched."""
    f = get_format(fmt)
    out = _target(f, Path(out_path))
    with _staged(out, f.is_dir) as tmp:
        try:
            _write(model, f, tmp)
        except ExportError:
            raise
        except Exception as e:  # converters raise anything; the user needs one clear line
            msg = (str(e).strip().splitlines() or [type(e).__name__])[-1][:300]
            raise ExportError(f"{f.title} export failed: {msg}") from e
        checked = verify(tmp) if verify else None
    return out, checked


# --- checking -----------------------------------------------------------------------------------------
def _version(module: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(module)
    except metadata.PackageNotFoundError:
        return "?"


def _litert_runner(path: Path) -> tuple[Callable[[np.ndarray], np.ndarray], str]:
    try:
        from ai_edge_litert.interpreter import Interpreter

        runtime = f"ai-edge-litert {_version('ai-edge-litert')}"
    except ImportError:  # TensorFlow's own copy (deprecated in favour of ai-edge-litert, still shipped)
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter  # noqa: N806
        runtime = f"tf.lite {tf.__version__}"
        warnings.filterwarnings("ignore", message=r"\s*Warning: tf.lite.Interpreter is deprecated")
    interp = Interpreter(model_path=str(path))
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    shape = [None]

    def run(x: np.ndarray) -> np.ndarray:
        if shape[0] != x.shape:  # the batch size is free (-1 in the signature); resize when it changes
            interp.resize_tensor_input(inp["index"], list(x.shape))
            interp.allocate_tensors()
            shape[0] = x.shape
        interp.set_tensor(inp["index"], x)
        interp.invoke()
        return interp.get_tensor(out["index"]).copy()

    return run, runtime


def _onnx_runner(path: Path) -> tuple[Callable[[np.ndarray], np.ndarray], str]:
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise ExportError("checking an ONNX export needs onnxruntime: pip install onnxruntime") from e
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return (lambda x: sess.run(None, {name: x})[0]), f"onnxruntime {ort.__version__}"


def _saved_model_runner(path: Path) -> tuple[Callable[[np.ndarray], np.ndarray], str]:
    import tensorflow as tf

    fn = tf.saved_model.load(str(path)).signatures["serving_default"]  # what TF Serving calls
    (name,) = fn.structured_input_signature[1]

    def run(x: np.ndarray) -> np.ndarray:
        (y,) = fn(**{name: tf.constant(x)}).values()
        return y.numpy()

    return run, f"tensorflow {tf.__version__}"


_RUNNERS = {"litert": _litert_runner, "litert_quant": _litert_runner, "onnx": _onnx_runner,
            "saved_model": _saved_model_runner}


def load_runner(fmt: str, path: str | Path) -> tuple[Callable[[np.ndarray], np.ndarray], str]:
    """(run, runtime): `run` maps float32 `(N, 28, 28, 1)` in [0, 1] to `(N, 10)` probabilities through
    the format's own runtime; `runtime` names it and its version."""
    try:
        return _RUNNERS[fmt](Path(path))
    except ExportError:
        raise
    except Exception as e:
        msg = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        raise ExportError(f"{Path(path).name} could not be loaded by {FORMATS[fmt].runtime}: {msg}") from e


def check_export(fmt: str, path: str | Path, images: np.ndarray, labels: np.ndarray, keras_proba: np.ndarray,
                 progress: Progress | None = None) -> ExportReport:
    """Run uint8 `(N, 28, 28)` test `images` through the export at `path` with its own runtime (scaled
    /255 to float32 `(N, 28, 28, 1)`, as `evaluation.predict_proba` feeds Keras) and compare with the
    Keras model's `keras_proba` `(N, 10)`."""
    t = time.perf_counter()
    run, runtime = load_runner(fmt, path)
    out = []
    for i in range(0, len(images), CHECK_BATCH):
        x = images[i:i + CHECK_BATCH].astype(np.float32)[..., None] / 255.0
        out.append(np.asarray(run(x), np.float32))
        if progress:
            progress(min(1.0, (i + CHECK_BATCH) / len(images)))
    proba = np.concatenate(out) if out else np.zeros((0, 10), np.float32)
    if proba.shape != keras_proba.shape:
        raise ExportError(f"{Path(path).name}: {FORMATS[fmt].runtime} gave {proba.shape} outputs for "
                          f"{keras_proba.shape} expected")
    labels = np.asarray(labels)
    pred, kpred = proba.argmax(1), keras_proba.argmax(1)
    n = max(len(labels), 1)
    return ExportReport(
        format=fmt, path=Path(path), size_bytes=size_of(Path(path)), n_images=len(labels),
        accuracy=float((pred == labels).sum() / n), keras_accuracy=float((kpred == labels).sum() / n),
        agreement=float((pred == kpred).sum() / n),
        max_prob_diff=float(np.abs(proba - keras_proba).max()) if len(labels) else 0.0,
        runtime=runtime, check_s=time.perf_counter() - t)


# --- run folders --------------------------------------------------------------------------------------
# One export at a time per process: converters are heavy, and export.json is read, changed and rewritten.
# Reentrant: export_formats holds it across the export_run calls it makes.
_LOCK = threading.RLock()


def _keras_reference(run_dir: Path, dataset: Dataset, model: Any, progress: Progress | None) -> np.ndarray:
    """The Keras model's test-set probabilities: the Evaluate page's cached ones when they are there
    (same model file, same data), else computed now (and cached for that page)."""
    from .evaluation import evaluate_run

    return evaluate_run(run_dir, dataset, model=model, progress=progress).proba


def _sub(progress: Progress | None, lo: float, hi: float, stage: str) -> Progress | None:
    """A progress callback for the part [lo, hi] of the whole."""
    if progress is None:
        return None
    progress(lo, stage)
    return lambda f, inner=None: progress(lo + (hi - lo) * f, inner or stage)


def export_run(run_dir: str | Path, fmt: str, out: str | Path, dataset: Dataset, *, model: Any = None,
               keras_proba: np.ndarray | None = None, progress: Progress | None = None) -> ExportReport:
    """Export a run's `model.keras` in one format to `out` and check it on the dataset's test split
    (see `export_model` for `out`). The export lands only if its runtime loads and runs it; a missed
    accuracy target does not stop it (the report's `ok` says so). `model` and `keras_proba` (its test-set
    probabilities) may be passed when the caller has them. Raises ExportError, or inference.ModelError
    for an unusable model file."""
    from .inference import load_model

    f = get_format(fmt)
    run = runs.folder(run_dir)
    with _LOCK:
        stamp = run.model_stamp()
        if model is None:
            model = load_model(run.model)
        start = 0.0
        if keras_proba is None:
            keras_proba = _keras_reference(run.path, dataset, model, _sub(progress, 0.0, 0.3, "Keras predictions"))
            start = 0.3
        t = time.perf_counter()
        took: list[float] = []

        def verify(tmp: Path) -> ExportReport:
            took.append(time.perf_counter() - t)
            return check_export(f.name, tmp, dataset.x_test, dataset.y_test, keras_proba,
                                _sub(progress, start + (1 - start) * 0.6, 1.0, f"checking {f.title}"))

        if progress:
            progress(start, f"exporting {f.title}")
        path, rep = export_model(model, f.name, out, verify=verify)
        return replace(rep, path=path, export_s=took[0], model_stamp=stamp, data_key=dataset.source.key)


def cached_reports(out_dir: str | Path, model_stamp: int, dataset: Dataset) -> dict[str, ExportReport]:
    """The reports in `out_dir/export.json` that still describe the files there: same model file version,
    same test data, file present with the recorded size. Empty when there are none."""
    out_dir = Path(out_dir)
    try:
        doc = json.loads((out_dir / REPORT_FILE).read_text())
        found = {name: ExportReport.from_dict(d, out_dir) for name, d in doc["reports"].items() if name in FORMATS}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}  # absent or damaged: everything is exported afresh
    return {name: r for name, r in found.items()
            if r.model_stamp == model_stamp and model_stamp and r.data_key == dataset.source.key
            and r.n_images == len(dataset.y_test) and r.path.exists() and size_of(r.path) == r.size_bytes}


def export_formats(run_dir: str | Path, fmts: str | Iterable[str], out_dir: str | Path | None, dataset: Dataset,
                   *, reuse: bool = False, progress: Progress | None = None) -> list[ExportReport]:
    """Export a run in several formats (names, or `all`) into `out_dir` (default `<run>/export/`) under
    their default names, each checked as in `export_run`; the model and its Keras predictions are loaded
    once. The reports are recorded in `out_dir/export.json`; with `reuse`, a format whose recorded export
    still matches the model file and the data is not exported again."""
    from .inference import load_model

    names = resolve_formats(fmts)
    run = runs.folder(run_dir)
    out_dir = Path(out_dir).expanduser() if out_dir is not None else export_dir(run)
    if out_dir.exists() and not out_dir.is_dir():
        raise ExportError(f"{out_dir} is a file: exporting several formats needs a folder")
    with _LOCK:
        stamp = run.model_stamp()
        reports = cached_reports(out_dir, stamp, dataset) if reuse else {}
        todo = [n for n in names if n not in reports]
        if todo:
            model = load_model(run.model)
            keras_proba = _keras_reference(run.path, dataset, model, _sub(progress, 0.0, 0.2, "Keras predictions"))
            out_dir.mkdir(parents=True, exist_ok=True)
        for i, n in enumerate(todo):
            lo, hi = 0.2 + 0.8 * i / len(todo), 0.2 + 0.8 * (i + 1) / len(todo)
            reports[n] = export_run(run.path, n, out_dir / FORMATS[n].filename, dataset, model=model, keras_proba=keras_proba,
                                    progress=_sub(progress, lo, hi, f"exporting {FORMATS[n].title}"))
            _record(out_dir, reports[n])
    if progress:
        progress(1.0, "done")
    return [reports[n] for n in names]


def _record(out_dir: Path, report: ExportReport) -> None:
    """Add one report to `out_dir/export.json` (atomically; reports of other model versions dropped)."""
    with _LOCK:
        try:
            doc = json.loads((out_dir / REPORT_FILE).read_text())
            kept = {k: v for k, v in doc["reports"].items()
                    if v.get("model_stamp") == report.model_stamp and v.get("data_key") == report.data_key}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            kept = {}
        kept[report.format] = report.to_dict()
        runs.atomic_write_json(out_dir / REPORT_FILE, {"reports": kept})


# --- showing ------------------------------------------------------------------------------------------
TABLE_COLUMNS = ("format", "file", "size (bytes)", "test acc", "Keras acc", "argmax agreement", "max |Δp|",
                 "targets")


def table_rows(reports: Iterable[ExportReport]) -> list[dict[str, Any]]:
    """One row per report, keyed by TABLE_COLUMNS (the CLI's table and the page's dataframe)."""
    rows = []
    for r in reports:
        f = FORMATS[r.format]
        rows.append(dict(zip(TABLE_COLUMNS, (
            r.format, r.path.name, r.size_bytes, r.accuracy, r.keras_accuracy, r.agreement, r.max_prob_diff,
            ("met" if r.ok else "MISSED") + f" (≥ {f.min_agreement:.1%} same, ≤ {f.max_accuracy_gap * 100:.1f} pt)"),
            strict=True)))
    return rows


def format_table(reports: Iterable[ExportReport]) -> str:
    """The reports side by side as plain text, one line per format."""
    reports = list(reports)
    cells = [[str(r["format"]), str(r["file"]), f"{r['size (bytes)']:,}", f"{r['test acc']:.4f}",
              f"{r['Keras acc']:.4f}", f"{r['argmax agreement']:.2%}", f"{r['max |Δp|']:.2e}", str(r["targets"])]
             for r in table_rows(reports)]
    widths = [max(len(c) for c in col) for col in zip(TABLE_COLUMNS, *cells, strict=True)]
    lines = ["  ".join(c.ljust(w) if i in (0, 1, 7) else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths,
                                                                                                 strict=True)))
             for row in [list(TABLE_COLUMNS), *cells]]
    n = {r.n_images for r in reports}
    if reports:
        lines.append(f"checked on {', '.join(f'{k:,}' for k in sorted(n))} test images; runtimes: "
                     + ", ".join(sorted({r.runtime for r in reports})))
    return "\n".join(line.rstrip() for line in lines)


def zip_directory(path: str | Path) -> bytes:
    """A folder (a SavedModel) as zip bytes, its own name as the top folder, for a download."""
    path = Path(path)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for p in sorted(path.rglob("*")):
            if p.is_file():
                z.write(p, Path(path.name) / p.relative_to(path))
    return buf.getvalue()
