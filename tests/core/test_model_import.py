"""Importing untrusted .keras files: the core checks of mnist_core.model_import. Every refused file must
leave the runs folder untouched. (The Import model control is tested in tests/app/test_model_import.py.)"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from mnist_core import model_import, runs
from mnist_core.inference import ModelError, load_model, predict_one
from tests.keras_files import model_files, tree


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """Real Keras files: a good classic CNN, and bad ones that a user could upload."""
    return model_files(tmp_path_factory.mktemp("models"))


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
