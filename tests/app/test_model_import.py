"""Importing untrusted .keras files: the core checks (mnist_core.model_import) and the Import model control
(ui/model_import.py, driven through AppTest). Every refused file must leave the runs folder untouched."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from mnist_core import model_import, runs
from mnist_core.inference import MAX_UNCOMPRESSED_BYTES, ModelError, load_model, predict_one
from tests.core.test_limits import hostile_keras, small_keras

SCRIPT = Path(__file__).with_name("import_page_script.py")


def tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under root (hidden ones included) with its size and mtime."""
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.stat()
        out[str(p.relative_to(root))] = (st.st_size if p.is_file() else -1, st.st_mtime_ns)
    return out


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """Real Keras files: a good classic CNN, and bad ones that a user could upload."""
    import keras

    from mnist_core.architectures import build_model
    from mnist_core.config import ArchConfig

    d = tmp_path_factory.mktemp("models")
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


REFUSED = [
    ("lambda", "Lambda"),
    ("wrong_input", "input must be (28, 28, 1)"),
    ("wrong_classes", "10 classes"),
    ("h5", ".h5"),
    ("not_zip", "not a Keras model"),
    ("zip_bomb", "zip bomb"),
    ("zip_not_keras", "no config.json"),
    ("huge_layer", "declares 1.2 billion parameters (4.4 GB); this server allows at most 10.0 million"),
    ("inconsistent", "declares 7,950,010 parameters (30 MB), but its weights file holds only"),
]


@pytest.mark.parametrize("kind,message", REFUSED, ids=[k for k, _ in REFUSED])
@pytest.mark.parametrize("as_bytes", [False, True], ids=["path", "bytes"])
def test_refused_files_leave_nothing_behind(models, runs_root, kind, message, as_bytes):
    (runs_root / "existing").mkdir()
    runs.atomic_write_json(runs_root / "existing" / "status.json", {"state": "failed"})
    before = tree(runs_root)
    src = models[kind]
    with pytest.raises(ModelError) as e:
        if as_bytes:
            model_import.import_model(src.read_bytes(), "newrun", filename=src.name)
        else:
            model_import.import_model(src, "newrun")
    assert message in str(e.value)
    assert src.name in str(e.value)  # the message names the user's file
    assert tree(runs_root) == before  # no run folder, no hidden temp folder


def test_other_extensions_and_sizes_refused(runs_root, models, monkeypatch):
    good = models["good"].read_bytes()
    for fname in ("model.zip", "model.pkl", "model", "model.keras.exe"):
        with pytest.raises(ModelError, match="only .keras"):
            model_import.import_model(good, "x", filename=fname)
    with pytest.raises(ModelError, match="empty"):
        model_import.import_model(b"", "x", filename="m.keras")
    monkeypatch.setattr(model_import, "MAX_IMPORT_BYTES", len(good) - 1)
    with pytest.raises(ModelError, match="the limit is"):
        model_import.import_model(good, "x", filename="m.keras")
    assert list(runs_root.iterdir()) == []


def test_bad_or_taken_names_refused(runs_root, models):
    for bad in ("../escape", "a/b", "x" * 300, "..", "   "):
        with pytest.raises(runs.RunError):
            model_import.import_model(models["good"], bad)
    assert list(runs_root.iterdir()) == []
    assert not (runs_root.parent / "escape").exists()
    model_import.import_model(models["good"], "mine")
    before = tree(runs_root)
    with pytest.raises(runs.RunError, match="already exists"):
        model_import.import_model(models["good"], "mine")
    assert tree(runs_root) == before


def test_good_model_is_imported_listed_and_usable(runs_root, models, mnist):
    run_dir = model_import.import_model(models["good"], "my upload")
    assert run_dir == runs_root / "my-upload"
    assert sorted(p.name for p in runs_root.iterdir()) == ["my-upload"]  # no temp folder left
    assert sorted(p.name for p in run_dir.iterdir()) == ["imported.json", "model.keras", "status.json"]
    # No config.json: an imported model has no training config, and none is made up.
    meta = json.loads((run_dir / "imported.json").read_text())
    assert meta["sha256"] == hashlib.sha256(models["good"].read_bytes()).hexdigest()
    assert meta["params"] == 93_322 and meta["input_shape"] == [28, 28, 1] and meta["output_classes"] == 10
    assert meta["source_filename"] == "good.keras"
    assert oct(run_dir.stat().st_mode & 0o777) == "0o755"

    [info] = runs.list_runs()
    assert info.damaged is None
    assert (info.name, info.state, info.preset, info.params, info.has_model) == \
        ("my-upload", "finished", "imported", 93_322, True)
    with pytest.raises(runs.RunError, match="no config.json"):
        runs.load_config(run_dir)  # "retrain with this config" must not invent one

    model = load_model(run_dir / "model.keras")
    probs = predict_one(model, mnist.x_test[0] / 255.0)
    assert probs.shape == (10,) and abs(float(probs.sum()) - 1) < 1e-4

    (run_dir / "model.keras").unlink()  # an imported run that lost its model is reported, not hidden
    [info] = runs.list_runs()
    assert info.state == "failed" and not info.has_model and "model.keras" in info.error


def test_disk_full_during_import_leaves_nothing(runs_root, models, monkeypatch):
    """The runs folder fills up after the model was copied in: the half-built import is removed."""
    import errno

    def full(path, obj):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(runs, "atomic_write_json", full)
    with pytest.raises(OSError, match="No space left"):
        model_import.import_model(models["good"], "full")
    assert list(runs_root.iterdir()) == []


# --- the Streamlit control ---------------------------------------------------------------------------
def _app():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(SCRIPT), default_timeout=90)
    at.run()
    assert not at.exception
    return at


def test_control_imports_a_good_model(runs_root, models):
    model_import.import_model(models["good"], runs.PRETRAINED)  # the default current model
    at = _app()
    up = at.file_uploader(key="import_model_file_0")
    assert up.allowed_type == [".keras"]
    assert up.proto.max_upload_size_mb == model_import.MAX_IMPORT_BYTES // 2**20
    assert at.button(key="import_model_go").disabled  # nothing chosen yet
    up.set_value(("digits-net.keras", models["good"].read_bytes(), "application/octet-stream")).run()
    assert not at.button(key="import_model_go").disabled
    assert at.text_input(key="import_model_name").placeholder == "digits-net"
    at.button(key="import_model_go").click().run()
    assert not at.exception
    assert [s.value for s in at.success] and "digits-net" in at.success[0].value
    assert not at.error
    assert (runs_root / "digits-net" / "model.keras").is_file()
    # The page reran: the list drawn above the control and the sidebar's picker both have the run.
    assert "digits-net (imported, finished)" in at.markdown[-1].value
    assert at.sidebar.selectbox(key="current_run").options == ["pretrained (imported)", "digits-net (imported)"]
    assert at.sidebar.selectbox(key="current_run").value == "pretrained"  # not switched behind the user's back
    # The uploader is fresh again (a new key), ready for the next file.
    assert at.file_uploader(key="import_model_file_1").value is None
    at.button(key="import_model_use").click().run()
    assert not at.exception
    assert at.session_state["current_run"] == "digits-net"
    assert at.sidebar.selectbox(key="current_run").value == "digits-net"
    assert not at.success  # the message was shown once


def test_control_refuses_lambda_and_shows_why(runs_root, models):
    at = _app()
    before = tree(runs_root)
    at.file_uploader(key="import_model_file_0").set_value(
        ("evil.keras", models["lambda"].read_bytes(), "application/octet-stream")).run()
    at.text_input(key="import_model_name").input("evil").run()
    at.button(key="import_model_go").click().run()
    assert not at.exception
    assert at.error and "Not imported" in at.error[0].value and "Lambda" in at.error[0].value
    assert not at.success
    assert tree(runs_root) == before


def test_control_refuses_a_huge_declared_model_and_names_the_figures(runs_root, models):
    at = _app()
    before = tree(runs_root)
    at.file_uploader(key="import_model_file_0").set_value(
        ("huge.keras", models["huge_layer"].read_bytes(), "application/octet-stream")).run()
    at.button(key="import_model_go").click().run()
    assert not at.exception
    assert at.error and at.error[0].value.startswith("Not imported: huge.keras declares 1.2 billion parameters")
    assert not at.success
    assert tree(runs_root) == before


def test_control_refuses_a_taken_name(runs_root, models):
    model_import.import_model(models["good"], "taken")
    before = tree(runs_root)
    at = _app()
    at.file_uploader(key="import_model_file_0").set_value(
        ("taken.keras", models["good"].read_bytes(), "application/octet-stream")).run()
    at.button(key="import_model_go").click().run()  # empty name: defaults to the file's stem, "taken"
    assert at.error and "already exists" in at.error[0].value
    assert tree(runs_root) == before


def test_suggested_name():
    from ui.model_import import suggested_name

    assert suggested_name("My Model (v2).keras") == "My-Model-v2"
    assert suggested_name("../../etc/passwd.keras") == "passwd"
    assert suggested_name("....keras") == "imported"
    assert np.all([len(suggested_name("a" * 500 + ".keras")) <= runs.MAX_NAME])
