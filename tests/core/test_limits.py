"""mnist_core.limits: memory figures read from the real cgroup, model sizes read from a config.json
without building a layer (checked against Keras's own counts), hostile `.keras` files refused with the
server's peak memory bounded, and training estimates checked against real trainings' peak RSS."""

from __future__ import annotations

import json
import math
import os
import resource
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from mnist_core import limits
from mnist_core.architectures import summary_rows
from mnist_core.config import ArchConfig, TrainConfig, preset_config
from mnist_core.inference import ModelError, check_keras_archive, load_model

ROOT = Path(__file__).resolve().parents[2]
MB = 2**20


# --- model configs, sized without Keras, against Keras ----------------------------------------------
def _reference_models() -> dict:
    """Keras models using every layer kind the estimator knows, in Sequential, Functional and nested
    form (and the app's presets)."""
    import keras
    from keras import layers as L

    from mnist_core.architectures import build_model
    from mnist_core.config import PRESET_NAMES

    def seq(*ls):
        return keras.Sequential([keras.Input((28, 28, 1)), *ls])

    inp = keras.Input((28, 28, 1))
    a, b = L.Conv2D(8, 3, padding="same")(inp), L.Conv2D(8, 5, padding="same")(inp)
    x = L.Concatenate()([a, L.Add()([a, b])])
    x = L.MaxPooling2D()(L.BatchNormalization()(x))
    x = L.SeparableConv2D(16, 3, padding="same")(L.DepthwiseConv2D(3, depth_multiplier=2)(x))
    shared = L.Dense(16)
    z = shared(shared(L.GlobalAveragePooling2D()(x)))  # one layer called twice: weights counted once
    functional = keras.Model(inp, L.Dense(10, activation="softmax")(z))
    inner_in = keras.Input((28, 28, 1))
    inner = keras.Model(inner_in, L.Flatten()(L.Conv2D(4, 3)(inner_in)))
    out = {p: build_model(preset_config(p).arch) for p in PRESET_NAMES}
    out.update({
        "sequential-mixed": seq(L.ZeroPadding2D(2), L.Conv2D(16, 3, strides=2), L.LeakyReLU(),
                                L.Cropping2D(((1, 0), (0, 1))), L.UpSampling2D(2), L.Conv2DTranspose(8, 3, strides=2),
                                L.AveragePooling2D(3, strides=2, padding="same"), L.LayerNormalization(),
                                L.PReLU(shared_axes=[1, 2]), L.SpatialDropout2D(0.1), L.Reshape((-1, 8)),
                                L.Permute((2, 1)), L.Flatten(), L.RepeatVector(3), L.Flatten(), L.Dense(10)),
        "recurrent": seq(L.Reshape((28, 28)), L.LSTM(32, return_sequences=True), L.GRU(16, return_sequences=True),
                         L.GRU(8, reset_after=False, return_sequences=True), L.SimpleRNN(8),
                         L.Dense(10)),
        "groups": seq(L.Conv2D(8, 3), L.GroupNormalization(groups=4), L.Conv2D(8, 3, groups=2, dilation_rate=2),
                      L.GlobalMaxPooling2D(keepdims=True), L.Flatten(), L.Dense(10, use_bias=False)),
        "functional-branches": functional,
        "nested-sequential": seq(keras.Sequential([L.Conv2D(4, 3), L.Flatten()]), L.Dense(10)),
        "nested-functional": seq(inner, L.Dense(10)),
    })
    return out


def _saved_config(model, d: Path) -> dict:
    model.save(d / "m.keras")
    with zipfile.ZipFile(d / "m.keras") as z:
        return json.loads(z.read("config.json"))


def _activation_values(model) -> int:
    """Keras's own view: the model's inputs and every layer call's outputs, per image."""
    import keras

    total = sum(math.prod(t.shape[1:]) for t in model.inputs)

    def walk(m):
        nonlocal total
        for layer in m.layers:
            if isinstance(layer, keras.layers.InputLayer):
                continue
            if isinstance(layer, keras.Model):
                walk(layer)
                continue
            for node in layer._inbound_nodes:
                total += sum(math.prod(t.shape[1:]) for t in keras.tree.flatten(node.output_tensors))
    walk(model)
    return total


def test_estimate_matches_keras(tmp_path):
    for name, model in _reference_models().items():
        (tmp_path / name).mkdir()
        est = limits.estimate_keras_config(_saved_config(model, tmp_path / name))
        assert est.params == model.count_params(), name
        assert est.activation_bytes == 4 * _activation_values(model), name


def test_estimate_of_the_pretrained_file():
    with zipfile.ZipFile(ROOT / "models" / "pretrained" / "model.keras") as z:
        est = limits.estimate_keras_config(json.loads(z.read("config.json")))
    assert est.params == 105_482  # the README's figure, and architectures.param_count("fast")
    assert est.activation_bytes == 4 * sum(math.prod(r["output_shape"]) for r in summary_rows(
        preset_config("fast").arch)) + 4 * 784  # the same layers as summary_rows, plus the input


def _dense_config(units: object, cls: str = "Dense") -> dict:
    return {"class_name": "Sequential", "config": {"layers": [
        {"class_name": "InputLayer", "config": {"batch_shape": [None, 28, 28, 1]}},
        {"class_name": "Flatten", "config": {}},
        {"class_name": cls, "config": {"name": "big", "units": units}},
    ]}}


@pytest.mark.parametrize("config,message", [
    (_dense_config(10, "Lambda"), "custom code"),
    ({"class_name": "Sequential", "config": {"layers": [
        {"class_name": "InputLayer", "config": {"batch_shape": [None, 28, 28, 1]}},
        {"class_name": "MyLayer", "module": "evil.layers", "config": {"name": "x"}}]}}, "custom code"),
    (_dense_config(10, "Embedding"), "Embedding, which the size check does not know"),
    (_dense_config("many"), "units must be a whole number"),
    (_dense_config(-5), "units must be a whole number"),
    (_dense_config(True), "units must be a whole number"),
    (_dense_config(10**400), "absurdly large"),
    ({"class_name": "Sequential", "config": {"layers": [{"class_name": "Dense", "config": {"units": 3}}]}},
     "declares no input shape"),
    ({"class_name": "Functional", "config": {"layers": [
        {"class_name": "Dense", "name": "d", "config": {"units": 3}, "inbound_nodes": [{"args": [
            {"class_name": "__keras_tensor__", "config": {"keras_history": ["ghost", 0, 0]}}], "kwargs": {}}]}],
        "output_layers": [["d", 0, 0]]}}, "'ghost', which is not defined before it"),
    ({"class_name": "Sequential", "config": {"layers": [
        {"class_name": "InputLayer", "config": {"batch_shape": [None, 28, 28, 1]}},
        {"class_name": "Conv2D", "config": {"name": "c", "filters": 4, "kernel_size": 29}}]}}, "shrinks below 1"),
    ({"class_name": "Sequential", "config": {"layers": [
        {"class_name": "InputLayer", "config": {"batch_shape": [None, 28, 28, 1]}},
        {"class_name": "Reshape", "config": {"name": "r", "target_shape": [5, 5]}}]}}, "cannot be reshaped"),
    ({"class_name": "Pipeline", "config": {}}, "not a Functional or Sequential model"),
    ([1, 2, 3], "does not hold a Keras model config"),
])
def test_estimate_refuses_what_it_cannot_size(config, message):
    with pytest.raises(limits.LimitError, match=message):
        limits.estimate_keras_config(config)


# --- hostile .keras files -----------------------------------------------------------------------------
def small_keras(path: Path) -> Path:
    """A real, tiny MNIST classifier (Flatten -> Dense 8 -> Dense 10: 6,370 parameters), saved by Keras."""
    import keras

    inp = keras.Input((28, 28, 1))
    hidden = keras.layers.Dense(8, activation="relu", name="hidden")(keras.layers.Flatten()(inp))
    keras.Model(inp, keras.layers.Dense(10, activation="softmax", name="out")(hidden)).save(path)
    return path


def hostile_keras(small: Path, dest: Path, units: int) -> Path:
    """`small`'s archive with its config.json rewritten so the hidden Dense layer has `units` units
    (and the next layer's recorded input shapes agree): the weights file stays the small one."""
    with zipfile.ZipFile(small) as z:
        items = {n: z.read(n) for n in z.namelist()}
    cfg = json.loads(items["config.json"])
    for layer in cfg["config"]["layers"]:
        if layer["name"] == "hidden":
            layer["config"]["units"] = units
        if layer["name"] == "out":
            layer["build_config"]["input_shape"][-1] = units
            layer["inbound_nodes"][0]["args"][0]["config"]["shape"][-1] = units
    items["config.json"] = json.dumps(cfg).encode()
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as z:
        for n, b in items.items():
            z.writestr(n, b)
    return dest


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("hostile")
    small = small_keras(d / "small.keras")
    return {"small": small,
            "huge": hostile_keras(small, d / "huge.keras", 1_500_000),  # 1.2 billion parameters
            "inconsistent": hostile_keras(small, d / "inconsistent.keras", 10_000)}  # 8.0 million


def test_hostile_files_refused_before_keras(hostile):
    assert hostile["huge"].stat().st_size < 40_000  # ~30 KB
    with pytest.raises(ModelError) as e:
        check_keras_archive(hostile["huge"])
    assert str(e.value).startswith("huge.keras declares 1.2 billion parameters (4.4 GB)")
    assert "at most 10.0 million (38 MB)" in str(e.value)
    with zipfile.ZipFile(hostile["inconsistent"]) as z:
        stored = limits.mb(z.getinfo("model.weights.h5").file_size)  # the small model's 6,370 weights
    with pytest.raises(ModelError, match=rf"declares 7,950,010 parameters \(30 MB\), but its weights file holds "
                                         rf"only {stored}: the file is inconsistent"):
        load_model(hostile["inconsistent"])
    check_keras_archive(hostile["small"])  # the real file it was made from passes


def test_model_refused_when_memory_is_short(hostile):
    with zipfile.ZipFile(hostile["small"]) as z:
        est = limits.estimate_keras_config(json.loads(z.read("config.json")))
    need = limits.model_memory_bytes(est)
    limits.check_model(est, "small.keras", available=int(need / limits.MODEL_SHARE) + 1)
    with pytest.raises(limits.LimitError, match=r"small.keras declares 6,370 parameters .* needs about .*, and "
                                                r"this server has .* available \(a model may use at most 50%"):
        limits.check_model(est, "small.keras", available=int(need / limits.MODEL_SHARE) - 1)


SERVER = r"""
import json, sys
import numpy as np
from mnist_core import inference, model_import
from mnist_core.inference import ModelError

def kb(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1])

model = inference.load_model("models/pretrained/model.keras")  # what the Draw page holds
inference.predict_one(model, np.zeros((28, 28), np.float32))
before = {k: kb(k) for k in ("VmHWM:", "VmRSS:")}
messages = []
for path in sys.argv[2:]:
    for attempt in (lambda: inference.load_model(path),
                    lambda: model_import.import_model(open(path, "rb").read(), "hostile", root=sys.argv[1],
                                                      filename=path.rsplit("/", 1)[-1])):
        try:
            attempt()
            messages.append("accepted")
        except ModelError as e:
            messages.append(str(e))
after = {k: kb(k) for k in ("VmHWM:", "VmRSS:")}
print(json.dumps({"before": before, "after": after, "messages": messages}))
"""


def test_server_memory_stays_bounded_while_refusing(hostile, tmp_path):
    """A server process with TensorFlow started and the pretrained model loaded (the Draw page) is
    handed the hostile files through load_model and the import: its peak RSS must not grow. (Before
    the size check, Keras built the declared layers first: a 7.8-million-unit layer measured +15 GB.)"""
    runs_root = tmp_path / "runs"
    runs_root.mkdir()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    p = subprocess.run([sys.executable, "-c", SERVER, str(runs_root), str(hostile["huge"]),
                        str(hostile["inconsistent"])], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    r = json.loads(p.stdout.strip().splitlines()[-1])
    assert len(r["messages"]) == 4 and all("declares" in m for m in r["messages"]), r["messages"]
    assert list(runs_root.iterdir()) == []  # the refused imports left nothing behind
    growth = (r["after"]["VmHWM:"] - r["before"]["VmHWM:"]) / 1024
    print(f"\nserver with the pretrained model: RSS {r['before']['VmRSS:'] / 1024:.0f} MB, peak "
          f"{r['before']['VmHWM:'] / 1024:.0f} MB; after refusing 2 hostile files twice each: peak "
          f"{r['after']['VmHWM:'] / 1024:.0f} MB (+{growth:.1f} MB)")
    assert growth < 100, growth


# --- memory figures from the real cgroup ----------------------------------------------------------------
def test_memory_figures():
    limit, avail = limits.memory_limit_bytes(), limits.memory_available_bytes()
    total = limits._meminfo("MemTotal")
    assert 0 < avail <= limit <= total


CHILD = r"""
import json
from mnist_core import limits
print(json.dumps({"limit": limits.memory_limit_bytes(), "available": limits.memory_available_bytes()}))
"""


@pytest.fixture
def cgroup_v1(tmp_path):
    """A new v1 memory cgroup inside this process's own (so the child stays inside whatever limits
    apply to us), with a 300 MB limit; a function running a Python snippet in a child placed in it.
    Skipped where there is no v1 memory controller or it cannot be written (not root, read-only)."""
    own = [cg for cg in limits._memory_cgroups() if not cg.v2]
    if not own:
        pytest.skip("no cgroup v1 memory controller here")
    cg = own[0].path / f"mnist-test-{os.getpid()}-{tmp_path.name}"
    try:
        cg.mkdir()
        (cg / "memory.limit_in_bytes").write_text(str(300 * MB))
    except OSError as e:
        if cg.is_dir():
            cg.rmdir()
        pytest.skip(f"cannot create a memory cgroup here: {e}")

    def run(code: str, *args: str) -> subprocess.CompletedProcess:
        # The shell moves itself into the cgroup, then becomes Python: the whole child runs in it.
        shell = f'echo $$ > "{cg}/cgroup.procs" && exec "$0" -c "$1" "${{@:2}}"'
        return subprocess.run(["bash", "-c", shell, sys.executable, code, *args], cwd=ROOT, capture_output=True,
                              text=True, timeout=120, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})

    yield run
    cg.rmdir()


def test_cgroup_limit_is_read_from_the_process_cgroup(cgroup_v1):
    p = cgroup_v1(CHILD)
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    assert r["limit"] == 300 * MB  # the new cgroup's limit, well under this machine's memory
    assert 200 * MB < r["available"] < 300 * MB  # minus what the child itself holds (Python, numpy)


HEAVY = r"""
import sys
from mnist_core.inference import ModelError, check_keras_archive
try:
    check_keras_archive(sys.argv[1])
    print("accepted")
except ModelError as e:
    print(e)
"""


def test_model_refused_in_a_small_cgroup_and_accepted_outside(cgroup_v1, tmp_path):
    """A real model whose activations for the Evaluate page's batch need ~400 MB: fine on this machine,
    refused in a 300 MB cgroup (a model may use half of what is available), with the figures."""
    import keras

    inp = keras.Input((28, 28, 1))
    x = keras.layers.Flatten()(keras.layers.Conv2D(256, 3, padding="same")(inp))
    model = keras.Model(inp, keras.layers.Dense(10, activation="softmax")(x))
    model.save(tmp_path / "wide.keras")
    check_keras_archive(tmp_path / "wide.keras")  # here: accepted
    p = cgroup_v1(HEAVY, str(tmp_path / "wide.keras"))
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith(f"wide.keras declares {model.count_params():,} parameters"), p.stdout
    assert "this server has 2" in p.stdout and "MB available" in p.stdout, p.stdout


def test_cgroup_v2_and_container_views(tmp_path):
    """The parsing, on a copy of the kernel's file formats: a v2 hierarchy whose parent holds the
    tighter limit, and a v1 mount that shows only the container's own subtree."""
    proc = tmp_path / "proc"
    proc.mkdir()
    v2, v1 = tmp_path / "unified", tmp_path / "memory"
    (v2 / "app" / "worker").mkdir(parents=True)
    (v2 / "app" / "memory.max").write_text(f"{512 * MB}\n")
    (v2 / "app" / "memory.current").write_text(f"{200 * MB}\n")
    (v2 / "app" / "memory.stat").write_text(f"anon 100\nfile {80 * MB}\nfile_mapped {30 * MB}\n")
    (v2 / "app" / "worker" / "memory.max").write_text("max\n")
    (v2 / "app" / "worker" / "memory.current").write_text(f"{100 * MB}\n")
    v1.mkdir()
    (v1 / "memory.limit_in_bytes").write_text(f"{2048 * MB}\n")
    (v1 / "memory.usage_in_bytes").write_text(f"{1024 * MB}\n")
    (proc / "cgroup").write_text("4:memory:/docker/abc123\n0::/app/worker\n")
    (proc / "mountinfo").write_text(
        f"41 31 0:38 / {v2} rw,relatime - cgroup2 cgroup2 rw\n"
        f"35 31 0:32 /docker/abc123 {v1} rw,relatime - cgroup cgroup rw,memory\n"
        f"32 31 0:29 / {tmp_path}/cpu rw,relatime - cgroup cgroup rw,cpu\n")
    found = {cg.v2: cg for cg in limits._memory_cgroups(proc)}
    assert found[True].path == v2 / "app" / "worker" and found[False].path == v1
    assert limits._cgroup_limit(found[True]) == 512 * MB  # the parent's limit applies to the child
    assert limits._cgroup_available(found[True]) == (512 - 150) * MB  # page cache is reclaimable
    assert limits._cgroup_limit(found[False]) == 2048 * MB
    assert limits._cgroup_available(found[False]) == 1024 * MB


# --- training memory -----------------------------------------------------------------------------------
def _custom(filters: int, kernel: int = 3, dense: int = 128) -> ArchConfig:
    return ArchConfig(preset="custom", conv_blocks=1, filters=(filters,), kernel_size=kernel, batch_norm=False,
                      dropout=0.0, dense_units=dense)


def test_training_estimate_parts_and_monotony():
    rows = summary_rows(preset_config("classic").arch)
    small, big = limits.estimate_training_bytes(rows, 32), limits.estimate_training_bytes(rows, 512)
    assert big.total > small.total and big.activations == 16 * small.activations
    assert (small.weights, small.runtime) == (big.weights, big.runtime)
    params = sum(r["params"] for r in rows)
    assert small.weights == small.gradients == 4 * params and small.optimizer == 4 * small.weights  # Adam
    assert limits.estimate_training_bytes(rows, 32, "sgd").optimizer == 2 * small.weights
    assert small.total == (small.weights + small.gradients + small.optimizer + small.weight_copies
                           + small.activations + small.data + small.runtime)
    widths = [limits.estimate_training_bytes(summary_rows(_custom(f)), 64).total for f in (8, 32, 128, 256)]
    assert widths == sorted(widths) and len(set(widths)) == 4
    assert small.fits(available=10 * small.total) and not small.fits(available=small.total)
    msg = small.message(available=2**30)
    assert msg.startswith("this server has 1.0 GB available; this training needs about ")
    assert "93,322 parameters" in msg


def _trainer_peak_mb(cfg: TrainConfig, data_dir: Path, run_dir: Path) -> float:
    """Peak RSS of a real `python -m mnist_core train` process (its own process, ru_maxrss)."""
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    (run_dir.parent / "c.json").write_text(cfg.to_json())
    wrapper = ("import resource, subprocess, sys; p = subprocess.run(sys.argv[1:]); "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, p.returncode)")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "MNIST_OFFLINE": "1", "MNIST_RUNS_DIR": str(run_dir.parent)}
    p = subprocess.run([sys.executable, "-c", wrapper, sys.executable, "-m", "mnist_core", "train", "--config",
                        str(run_dir.parent / "c.json"), "--data-dir", str(data_dir), "--run-dir", str(run_dir)],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    peak_kb, rc = p.stdout.split()[-2:]
    assert rc == "0", p.stderr[-3000:]
    return int(peak_kb) / 1024


@pytest.mark.slow
def test_training_estimate_against_real_trainings(tiny, tmp_path):
    """Two real trainings (500 images, 1 epoch): a preset and a wide custom network with 6.4 million
    parameters. The estimate must be the right size (within 0.6x-1.6x of the measured peak) and rank
    them the same way. The printed figures are the calibration's check, re-measured each run."""
    from tests.conftest import write_idx_folder

    data_dir = write_idx_folder(tiny, tmp_path / "data")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss > 0
    results = []
    for label, arch, batch in (("classic", preset_config("classic").arch, 64),
                               ("custom 128 filters 5x5, dense 256", _custom(128, 5, 256), 128)):
        cfg = TrainConfig(arch=arch, epochs=1, batch_size=batch, limit=500)
        measured = _trainer_peak_mb(cfg, data_dir, tmp_path / "runs" / label.split()[0])
        est = limits.estimate_training_bytes(summary_rows(arch), batch, train_images=len(tiny.x_train)).total / MB
        print(f"\n{label} (batch {batch}): measured peak {measured:,.0f} MB, estimated {est:,.0f} MB")
        results.append((measured, est))
        assert 0.6 <= est / measured <= 1.6, (label, measured, est)
    assert np.argsort([m for m, _ in results]).tolist() == np.argsort([e for _, e in results]).tolist()
