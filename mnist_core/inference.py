"""Loading a saved model safely and calling it fast.

`load_model` opens a `.keras` file with Keras `safe_mode=True` (no arbitrary code from Lambda layers)
and checks that it is an MNIST classifier: input `(28, 28, 1)`, 10 output classes, built only from
Keras's own layers. Before Keras sees the file, `check_keras_archive` sizes the model its config.json
declares (`limits.estimate_keras_config`, no layer built) and refuses one too big for this server:
Keras builds every layer, allocating its weights, before it notices that a 30 KB file cannot hold
them. Loads run one at a time per process, so concurrent uploads do not add up. Every failure is a
`ModelError` with a message a user can act on. `compiled_call`
wraps the model in one traced `tf.function`, which is what makes a single prediction take milliseconds:
`model.predict` builds a dataset and a step function on every call (~100 ms for one image on 2 cores).
"""

from __future__ import annotations

import json
import threading
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from . import limits

MAX_MODEL_BYTES = 50 * 1024 * 1024
MAX_UNCOMPRESSED_BYTES = 200 * 1024 * 1024
# The architecture inside a .keras archive: ~11 KB for the pretrained model, ~3 KB a layer. A megabyte
# is ~300 layers; JSON much bigger would itself cost tens of MB of Python objects to parse.
MAX_CONFIG_BYTES = 1024 * 1024
WEIGHTS_FILE = "model.weights.h5"  # where Keras 3 stores the weights inside the archive
_LOAD_LOCK = threading.Lock()  # one Keras load at a time per process: its peak memory never adds up
_IMPORT_LOCK = threading.Lock()
_imported = False


def import_tensorflow() -> None:
    """Import TensorFlow and Keras once per process, under a lock. The app's threads (each session's
    script thread, evaluation and export jobs) may reach their first model at the same moment, and one
    thread importing `keras` while another imports `tensorflow` for the first time deadlocks
    (`_DeadlockError` in tensorflow.python.trackable, reproduced 5 of 5 times), leaving TensorFlow broken
    in that process."""
    global _imported
    if _imported:
        return
    with _IMPORT_LOCK:
        if not _imported:
            import keras  # noqa: F401
            import tensorflow  # noqa: F401

            _imported = True


class ModelError(ValueError):
    """A model file that cannot be used, with the reason."""


def check_keras_archive(path: Path) -> None:
    """Cheap checks before Keras touches the file: size, zip integrity, no zip bomb."""
    path = Path(path)
    if not path.exists():
        raise ModelError(f"{path.name} does not exist")
    if path.suffix != ".keras":
        raise ModelError(f"{path.name}: only .keras files are accepted (not {path.suffix or 'no extension'})")
    size = path.stat().st_size
    if size == 0:
        raise ModelError(f"{path.name} is empty")
    if size > MAX_MODEL_BYTES:
        raise ModelError(f"{path.name} is {size / 2**20:.0f} MB; the limit is {MAX_MODEL_BYTES // 2**20} MB")
    if not zipfile.is_zipfile(path):
        raise ModelError(f"{path.name} is not a Keras model (a .keras file is a zip archive)")
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        if "config.json" not in names:
            raise ModelError(f"{path.name} has no config.json inside: not a Keras 3 model")
        total = sum(i.file_size for i in z.infolist())
        if total > MAX_UNCOMPRESSED_BYTES:
            raise ModelError(f"{path.name} unpacks to {total / 2**20:.0f} MB (limit "
                             f"{MAX_UNCOMPRESSED_BYTES // 2**20} MB): refused as a possible zip bomb")
        est = declared_size(z, path.name)
        try:
            limits.check_model(est, path.name, _stored_bytes(z, WEIGHTS_FILE, est.params, path.name))
        except limits.LimitError as e:
            raise ModelError(str(e)) from e


def declared_size(z: zipfile.ZipFile, name: str) -> limits.Estimate:
    """The size of the model an open `.keras` archive declares, from its config.json alone."""
    if z.getinfo("config.json").file_size > MAX_CONFIG_BYTES:
        raise ModelError(f"{name}: its config.json is over {MAX_CONFIG_BYTES // 2**20} MB; an MNIST "
                         "classifier's is a few KB")
    try:
        with z.open("config.json") as f:
            config = json.loads(f.read(MAX_CONFIG_BYTES + 1))
        return limits.estimate_keras_config(config)
    except limits.LimitError as e:
        raise ModelError(f"{name}: refused before loading: {e}") from e
    except (ValueError, RecursionError, OSError, EOFError, zipfile.BadZipFile, zlib.error,
            NotImplementedError) as e:  # bad JSON, damaged data, CRC errors, an unknown compression method
        raise ModelError(f"{name}: its config.json is not readable JSON ({str(e)[:200]})") from e


def _stored_bytes(z: zipfile.ZipFile, member: str, enough: int, name: str) -> int:
    """How many bytes the archive's `member` really holds, read up to `enough` (a zip's directory
    may claim any size; only decompressing tells), or 0 when it is missing."""
    if member not in z.namelist():
        return 0
    seen = 0
    try:
        with z.open(member) as f:
            while seen < enough and (chunk := f.read(min(1 << 20, enough - seen))):
                seen += len(chunk)
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError) as e:
        raise ModelError(f"{name}: its {member} is corrupt ({str(e)[:200]})") from e
    return seen


def validate_model(model: Any, name: str = "model") -> None:
    import keras

    shape = tuple(model.input_shape) if not isinstance(model.input_shape, list) else None
    if shape is None or shape[1:] != (28, 28, 1):
        raise ModelError(f"{name}: input must be (28, 28, 1) images, found {model.input_shape}")
    out = model.output_shape
    if isinstance(out, list) or out[-1] != 10:
        raise ModelError(f"{name}: output must be 10 classes, found {out}")
    for layer in model._flatten_layers(include_self=False):
        module = type(layer).__module__ or ""
        if not module.startswith("keras.") or isinstance(layer, keras.layers.Lambda):
            raise ModelError(f"{name}: layer {layer.name!r} ({type(layer).__name__}) is custom code; "
                             "only standard Keras layers are allowed")


def load_model(path: str | Path) -> Any:
    """Load and check a `.keras` model file (see the module docstring)."""
    import_tensorflow()
    import keras

    path = Path(path)
    check_keras_archive(path)  # cheap: refuses a bad file at once, without waiting for the lock
    with _LOAD_LOCK:
        check_keras_archive(path)  # again: the memory another load just used is no longer available
        try:
            model = keras.models.load_model(path, compile=False, safe_mode=True)
        except Exception as e:  # Keras raises many types for bad files; the user needs one message
            msg = str(e).splitlines()[0][:300] if str(e) else type(e).__name__
            if "Lambda" in str(e) or "safe_mode" in str(e) or "unsafe" in str(e).lower():
                raise ModelError(f"{path.name}: refused, it contains custom code (Lambda layer): {msg}") from e
            raise ModelError(f"{path.name} could not be loaded: {msg}") from e
    validate_model(model, path.name)
    return model


def compiled_call(model: Any) -> Any:
    """A function `float32 (N, 28, 28, 1) -> numpy (N, 10)` running the model in inference mode
    through one traced graph. It is kept on the model object itself, so it lives exactly as long as
    the model does (a module-level cache would keep every model ever loaded alive)."""
    import_tensorflow()
    import tensorflow as tf

    call = getattr(model, "_mnist_studio_call", None)
    if call is None:
        fn = tf.function(lambda x: model(x, training=False), reduce_retracing=True,
                         input_signature=[tf.TensorSpec([None, 28, 28, 1], tf.float32)])

        def call(x: np.ndarray) -> np.ndarray:
            return fn(tf.convert_to_tensor(x, tf.float32)).numpy()

        object.__setattr__(model, "_mnist_studio_call", call)  # bypass Keras attribute tracking
    return call


def predict_one(model: Any, image28: np.ndarray) -> np.ndarray:
    """Probabilities for one preprocessed image in [0, 1], shape (28, 28)."""
    x = np.asarray(image28, np.float32).reshape(1, 28, 28, 1)
    return compiled_call(model)(x)[0]
