"""Keras files for the import tests (core and page): a good classic CNN and the bad ones a user could
upload, written into a folder; and a snapshot of a folder tree to show that a refusal changed nothing."""

from __future__ import annotations

import zipfile
from pathlib import Path

from mnist_core.inference import MAX_UNCOMPRESSED_BYTES
from tests.core.test_limits import hostile_keras, small_keras


def tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under root (hidden ones included) with its size and mtime."""
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.stat()
        out[str(p.relative_to(root))] = (st.st_size if p.is_file() else -1, st.st_mtime_ns)
    return out


def model_files(d: Path) -> dict[str, Path]:
    """Real Keras files: a good classic CNN, and bad ones that a user could upload."""
    import keras

    from mnist_core.architectures import build_model
    from mnist_core.config import ArchConfig

    out = {}
    good = build_model(ArchConfig())
    good.save(d / "good.keras")
    out["good"] = d / "good.keras"

    inp = keras.Input((28, 28, 1))
    x = keras.layers.Lambda(lambda t: t * 2.0)(inp)  # arbitrary Python: must never be deserialised
    x = keras.layers.Flatten()(x)
    keras.Model(inp, keras.layers.Dense(10, activation="softmax")(x)).save(d / "lambda.keras")
    out["lambda"] = d / "lambda.keras"

    inp = keras.Input((32, 32, 3))
    keras.Model(inp, keras.layers.Dense(10)(keras.layers.Flatten()(inp))).save(d / "rgb32.keras")
    out["wrong_input"] = d / "rgb32.keras"

    inp = keras.Input((28, 28, 1))
    keras.Model(inp, keras.layers.Dense(5)(keras.layers.Flatten()(inp))).save(d / "five.keras")
    out["wrong_classes"] = d / "five.keras"

    good.save(d / "legacy.h5")  # a real HDF5 model file
    out["h5"] = d / "legacy.h5"

    (d / "notzip.keras").write_bytes(b"this is plain text pretending to be a model\n" * 100)
    out["not_zip"] = d / "notzip.keras"

    # Zip bomb: a tiny archive that declares more than the uncompressed limit (zeros compress ~1000x).
    bomb = d / "bomb.keras"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        z.writestr("config.json", "{}")
        z.writestr("metadata.json", "{}")
        with z.open("model.weights.h5", "w", force_zip64=True) as f:
            chunk = bytes(4 * 2**20)
            for _ in range(MAX_UNCOMPRESSED_BYTES // len(chunk) + 2):
                f.write(chunk)
    assert bomb.stat().st_size < 2 * 2**20
    out["zip_bomb"] = bomb

    # A zip that is not a Keras archive (no config.json inside).
    with zipfile.ZipFile(d / "photos.keras", "w") as z:
        z.writestr("readme.txt", "hello")
    out["zip_not_keras"] = d / "photos.keras"

    # Memory exhaustion from a small file: a real ~30 KB model whose config.json declares one huge layer
    # (1.2 billion parameters), or one of 8 million that its weights file cannot hold.
    small = small_keras(d / "small.keras")
    out["huge_layer"] = hostile_keras(small, d / "huge.keras", 1_500_000)
    out["inconsistent"] = hostile_keras(small, d / "inconsistent.keras", 10_000)
    return out
