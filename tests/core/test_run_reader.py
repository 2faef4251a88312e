"""The run-folder reader against generated garbage (hypothesis): whatever a run's files hold, listing
the runs never raises, the good runs beside it are listed as they are, and a run is either read with
fields of the right types or listed as damaged with a reason. This is what keeps one malformed folder
from breaking every page for every user (the sidebar lists the runs on each page)."""

from __future__ import annotations

import json
import shutil
import tempfile
import zipfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mnist_core import runs
from mnist_core.config import preset_config

CFG = preset_config("classic", epochs=2)
FILES = ["config.json", "status.json", "metrics.json", "history.csv", "batches.csv", "progress.json",
         "imported.json", "model.keras"]

scalars = st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True) | st.text(max_size=20)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.sampled_from(["state", "created", "pid", "error", "test_accuracy", "epoch", "owner", "params",
                     "arch", "epochs", "batch", "loss", "x", "supervisor", "host"]) | st.text(max_size=8),
    inner, max_size=6), max_leaves=12)
text_garbage = st.text(max_size=200) | st.binary(max_size=200).map(lambda b: b.decode("latin-1"))
csv_garbage = st.lists(st.lists(st.sampled_from(["", "1", "2.5", "nan", "inf", "-3", "x", "epoch", "loss",
                                                 "accuracy", "1e400", "\"", "batch"]), max_size=8),
                       max_size=6).map(lambda rows: "\n".join(",".join(r) for r in rows))


def content_for(name: str):
    if name.endswith(".csv"):
        return csv_garbage | text_garbage
    if name.endswith(".keras"):
        return st.binary(max_size=64).map(lambda b: b.decode("latin-1"))
    return json_values.map(lambda v: json.dumps(v, allow_nan=True)) | text_garbage


damage = st.dictionaries(st.sampled_from(FILES), st.just(None), min_size=1, max_size=4).flatmap(
    lambda chosen: st.fixed_dictionaries({k: content_for(k) for k in chosen}))


def _check_types(r: runs.RunInfo) -> None:
    assert r.state in runs.STATES
    assert isinstance(r.created, (int, float))
    for v in (r.test_accuracy, r.val_accuracy, r.train_seconds):
        assert v is None or isinstance(v, (int, float)) and not isinstance(v, bool)
    assert all(isinstance(h["epoch"], int) for h in r.history)
    assert r.damaged is None or isinstance(r.damaged, str) and r.damaged


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(damage=damage)
def test_garbage_in_any_run_file_never_breaks_the_listing(damage):
    root = Path(tempfile.mkdtemp(prefix="reader-"))
    try:
        good = runs.create_run(CFG, "good", root=root)
        runs.set_status(good, "finished", pid=None)
        runs.append_history(good, {"epoch": 1, "loss": 0.5, "accuracy": 0.8, "seconds": 1.0})
        runs.atomic_write_json(runs.RunFolder(good).metrics, {"test_accuracy": 0.9, "test_loss": 0.3})
        with zipfile.ZipFile(runs.RunFolder(good).model, "w") as z:  # the reader only checks it is an archive
            z.writestr("config.json", "{}")
        bad = runs.create_run(CFG, "bad", root=root)
        for name, text in damage.items():
            (bad / name).write_bytes(text.encode("utf-8", "surrogatepass"))
        listed = {r.name: r for r in runs.list_runs(root)}  # must not raise, whatever the files hold
        assert set(listed) == {"good", "bad"}
        g = listed["good"]
        assert g.damaged is None and g.state == "finished" and g.test_accuracy == 0.9 and len(g.history) == 1
        _check_types(listed["bad"])
        runs.read_progress(bad)  # never raises either: a bad progress file is just not shown
        if listed["bad"].damaged is None:  # read fine: every file it shows was valid, or absent
            runs.run_info(bad)
        try:  # a damaged run can be deleted, unless its status says a live process still has it
            runs.delete_run(bad)
            assert not bad.exists()
        except runs.RunError as e:
            assert "stop it first" in str(e)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_each_named_malformation_is_reported_with_its_file(runs_root):
    """The ones an outside review found: each gives a reason naming the file."""
    cases = {
        "status-list": ("status.json", "[1, 2]"),
        "metrics-null": ("metrics.json", "null"),
        "date-string": ("status.json", json.dumps({"state": "stopped", "created": "2026-12-01"})),
        "acc-string": ("metrics.json", json.dumps({"test_accuracy": "0.99"})),
        "no-epoch": ("history.csv", "loss,accuracy\n0.5,0.8\n"),
    }
    for name, (file, text) in cases.items():
        d = runs.create_run(CFG, name, root=runs_root)
        runs.set_status(d, "stopped", pid=None)  # (stopped: no model.keras needed)
        (d / file).write_text(text)
    listed = {r.name: r for r in runs.list_runs(runs_root)}
    for name, (file, _) in cases.items():
        assert listed[name].damaged and file in listed[name].damaged, (name, listed[name].damaged)
        assert not listed[name].usable
