"""Importing an uploaded `.keras` file as a new run: untrusted input, checked before anything is kept.

The checks, in order: the file name must end in `.keras` (legacy `.h5`/HDF5 and everything else is
refused with a reason), the size must be within `MAX_IMPORT_BYTES`, the archive must be a real zip
whose declared uncompressed size is bounded (no zip bomb; `inference.check_keras_archive`), the model
its config.json declares must fit this server (parameters, weights actually stored, memory to load
and run it: `limits.check_model`, computed from the config without building a layer), and Keras
must load it with `safe_mode=True` (no deserialised Python code) into an MNIST classifier built only
from Keras's own layers (`inference.load_model` -> `validate_model`).

What the run folder holds: an imported model has no `TrainConfig` (we do not know how it was trained,
and a made-up config would misdescribe it), so the folder has no `config.json`. Instead it holds
`model.keras`, `imported.json` (where it came from, its SHA-256, parameter count and layer summary) and a
`finished` `status.json`. `runs.run_info` recognises such a folder as an imported run (preset
"imported"). The folder is built under a hidden temporary name in the runs root and renamed into place
only once every check has passed, so a rejected file leaves nothing behind and a reader never sees a
half-imported run.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

from . import runs
from .inference import MAX_MODEL_BYTES, ModelError, check_keras_archive, load_model

MAX_IMPORT_BYTES = MAX_MODEL_BYTES


def _check_name(filename: str) -> None:
    suffix = Path(filename).suffix.lower()
    if suffix in (".h5", ".hdf5"):
        raise ModelError(f"{filename}: legacy HDF5 (.h5) models are not accepted; re-save it in Keras 3 "
                         "format with model.save('model.keras') and upload that")
    if suffix != ".keras":
        raise ModelError(f"{filename}: only .keras model files are accepted "
                         f"(got {suffix or 'a file without an extension'})")


def _keras_metadata(path: Path) -> dict[str, Any]:
    """The `metadata.json` Keras writes into the archive (Keras version, save date), if readable."""
    try:
        with zipfile.ZipFile(path) as z, z.open("metadata.json") as f:
            meta = json.loads(f.read(64 * 1024))
        return meta if isinstance(meta, dict) else {}
    except (KeyError, OSError, ValueError, zipfile.BadZipFile):
        return {}


def import_model(source: str | os.PathLike | bytes, name: str, root: Path | None = None,
                 filename: str | None = None) -> Path:
    """Check an uploaded model and make it a new run named `name`; return the run folder.

    `source` is a path or the file's bytes; with bytes, `filename` is the uploaded file's name (its
    extension is checked). Raises `ModelError` (bad file) or `runs.RunError` (bad or taken name);
    in both cases nothing is written."""
    root = Path(root) if root else runs.runs_root()
    safe = runs.check_new_name(name, root)  # before touching the file: a bad name is the cheapest refusal
    if isinstance(source, (bytes, bytearray, memoryview)):
        data: bytes | None = bytes(source)
        filename = filename or "upload.keras"
        size = len(data)
    else:
        path = Path(source)
        filename = filename or path.name
        if not path.is_file():
            raise ModelError(f"{filename} does not exist")
        data, size = None, path.stat().st_size
    _check_name(filename)
    if size == 0:
        raise ModelError(f"{filename} is empty (0 bytes)")
    if size > MAX_IMPORT_BYTES:
        raise ModelError(f"{filename} is {size / 2**20:.1f} MB; the limit is {MAX_IMPORT_BYTES // 2**20} MB")
    dest = root / safe
    root.mkdir(parents=True, exist_ok=True)
    # Hidden (dot) name: list_runs skips it, so a half-built import is never shown.
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".import-{safe}-"))
    try:
        # Checked under the uploaded file's own (sanitised) name so every message names the user's file.
        stem = runs.suggest_name(Path(filename).stem, fallback="upload")
        model_path = tmp / f"{stem}.keras"
        if data is not None:
            model_path.write_bytes(data)
        else:
            shutil.copyfile(Path(source), model_path)
        os.chmod(tmp, 0o755)  # mkdtemp makes 0700; run folders are shared with readers
        check_keras_archive(model_path)
        model = load_model(model_path)  # safe_mode=True + MNIST-classifier and standard-layer checks
        digest = hashlib.sha256(model_path.read_bytes()).hexdigest()
        meta = _keras_metadata(model_path)
        layers = [{"name": lyr.name, "type": type(lyr).__name__}
                  for lyr in model._flatten_layers(include_self=False)]
        info = {
            "source_filename": Path(filename).name, "sha256": digest, "bytes": size,
            "imported": time.time(), "params": int(model.count_params()),
            "input_shape": list(model.input_shape[1:]), "output_classes": int(model.output_shape[-1]),
            "layers": layers, "keras_version": meta.get("keras_version"), "saved": meta.get("date_saved"),
        }
        run = runs.RunFolder(tmp)
        os.replace(model_path, run.model)
        runs.atomic_write_json(run.imported, info)
        runs.set_status(tmp, "finished", imported=True, pid=None, finished=time.time())
        # Taken while we were checking the file? (rename would replace an empty folder, so look first;
        # rename itself refuses a non-empty one.)
        try:
            if dest.exists():
                raise OSError
            os.rename(tmp, dest)  # atomic: the run appears complete or not at all
        except OSError:
            raise runs.RunError(f"a run named {safe!r} already exists; choose another name") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest
