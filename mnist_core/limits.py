"""Memory bounds, checked before anything big is allocated.

Three questions, each answered from cheap facts. How much memory may this process use, and how much is
free (`memory_limit_bytes`, `memory_available_bytes`: its cgroup's limit and usage, v1 or v2, or the
machine's MemTotal / MemAvailable, whichever is smaller)? How big is the model a `.keras` file
declares (`estimate_keras_config`: parameters and activations, from the serialized config.json alone,
walking its layer configs and propagating shapes from the declared input, without building a layer:
Keras builds every layer, allocating its weights, before it notices that the weights file does not
match)? How much memory will a training need (`estimate_training_bytes`, from the layer table of
`architectures.summary_rows`, with constants measured on real trainings)? `check_model` turns the
second into a refusal whose message names the figures.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# --- how much memory this process may use -------------------------------------------------------
# cgroup v1 writes "no limit" as the largest page-aligned 63-bit number (9223372036854771712).
_NO_LIMIT = 2**60


def _meminfo(key: str) -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _read_int(path: Path) -> int | None:
    """An integer file of the cgroup filesystem; None when absent, unreadable or "max" (no limit)."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if not text.isdigit():
        return None
    value = int(text)
    return value if value < _NO_LIMIT else None


def _stat(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


@dataclass(frozen=True)
class _Cgroup:
    path: Path  # this process's own memory cgroup directory
    root: Path  # the mount point: limits are read from `path` up to here
    v2: bool

    def ancestors(self) -> Iterator[Path]:
        p = self.path
        while True:
            yield p
            if p == self.root or p.parent == p:
                return
            p = p.parent


def _memory_cgroups(proc: Path = Path("/proc/self")) -> list[_Cgroup]:
    """This process's memory cgroups: v1 (the `memory` controller) and/or v2 (the unified hierarchy),
    from /proc/self/cgroup and the mount points in /proc/self/mountinfo."""
    try:
        membership = (proc / "cgroup").read_text().splitlines()
        mounts = (proc / "mountinfo").read_text().splitlines()
    except OSError:
        return []
    own: dict[str, str] = {}  # "v1" / "v2" -> the cgroup path, relative to its hierarchy's root
    for line in membership:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, rel = parts
        if controllers == "" and parts[0] == "0":
            own["v2"] = rel
        elif "memory" in controllers.split(","):
            own["v1"] = rel
    found = []
    for line in mounts:
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        mount_root, mount_point, fstype, options = fields[3], fields[4], tail[0], tail[2]
        kind = "v2" if fstype == "cgroup2" else "v1" if fstype == "cgroup" and "memory" in options.split(",") else None
        if kind is None or kind not in own:
            continue
        rel = own[kind]
        # In a container the mount shows a subtree (mount_root); the process's path is relative to it.
        if mount_root != "/" and (rel + "/").startswith(mount_root.rstrip("/") + "/"):
            rel = rel[len(mount_root.rstrip("/")):]
        root = Path(mount_point)
        path = root / rel.lstrip("/")
        if not path.is_dir():  # a private cgroup namespace, or a view that does not show our path
            path = root
        found.append(_Cgroup(path, root, kind == "v2"))
    return found


def _cgroup_limit(cg: _Cgroup) -> int | None:
    name = "memory.max" if cg.v2 else "memory.limit_in_bytes"
    limits = [v for p in cg.ancestors() if (v := _read_int(p / name)) is not None]
    return min(limits) if limits else None


def _cgroup_available(cg: _Cgroup) -> int | None:
    """Limit minus what the cgroup holds, not counting the page cache that is not mapped by any process
    (file data the kernel drops first when memory runs short). Counting only inactive files, as
    `docker stats` does, made a training that had just fit look too big for the next one: its files
    were still in the active list (measured at a 1.5 GB limit: 375 MB "available" right after it)."""
    avail = []
    for p in cg.ancestors():
        limit = _read_int(p / ("memory.max" if cg.v2 else "memory.limit_in_bytes"))
        usage = _read_int(p / ("memory.current" if cg.v2 else "memory.usage_in_bytes"))
        if limit is None or usage is None:
            continue
        stat = p / "memory.stat"
        if cg.v2:
            reclaimable = _stat(stat, "file") - _stat(stat, "file_mapped")
        else:
            reclaimable = _stat(stat, "total_cache") - _stat(stat, "total_mapped_file")
        avail.append(max(0, limit - max(0, usage - max(0, reclaimable))))
    return min(avail) if avail else None


def memory_limit_bytes() -> int:
    """The memory this process may use: its cgroup's limit (the smallest along its cgroup path, v1
    or v2) or the machine's MemTotal, whichever is smaller."""
    figures = [v for cg in _memory_cgroups() if (v := _cgroup_limit(cg)) is not None]
    total = _meminfo("MemTotal")
    if total is not None:
        figures.append(total)
    return min(figures) if figures else 0


def memory_available_bytes() -> int:
    """The memory this process can still allocate: its cgroup's limit minus the cgroup's usage, or the
    machine's MemAvailable, whichever is smaller."""
    figures = [v for cg in _memory_cgroups() if (v := _cgroup_available(cg)) is not None]
    avail = _meminfo("MemAvailable")
    if avail is not None:
        figures.append(avail)
    return min(figures) if figures else 0


def oom_kill_count() -> int | None:
    """How many processes the kernel's OOM killer has killed in this process's memory cgroup so far
    (v2 `memory.events`, v1 `memory.oom_control`); None when no cgroup says. Read before and after a
    child process ends, it tells an out-of-memory kill from any other SIGKILL."""
    counts = []
    for cg in _memory_cgroups():
        name = "memory.events" if cg.v2 else "memory.oom_control"
        if (cg.path / name).is_file():
            counts.append(_stat(cg.path / name, "oom_kill"))
    return sum(counts) if counts else None


def mb(n: float) -> str:
    """Bytes as a short figure for messages, in the units /proc reports (1 MB = 2**20 bytes):
    "930 KB", "120 MB", "4.5 GB"."""
    if n >= 2**30:
        return f"{n / 2**30:,.1f} GB"
    if n >= 2**20:
        return f"{n / 2**20:,.0f} MB"
    return f"{n / 2**10:,.0f} KB"


def count(n: int) -> str:
    """A parameter count for messages: "93,322", "25.1 million", "1.2 billion"."""
    if n >= 10**9:
        return f"{n / 10**9:,.1f} billion"
    if n >= 10**7:
        return f"{n / 10**6:.1f} million"
    return f"{n:,}"


# --- the size of a serialized Keras model ---------------------------------------------------------
BYTES_PER_VALUE = 4  # float32 weights and activations (Keras's default dtype policy)
MAX_NESTING = 8  # models inside models: deeper than this is not an MNIST classifier


class LimitError(ValueError):
    """A model or a training that does not fit (or cannot be sized); the message names the figures."""


@dataclass(frozen=True)
class Estimate:
    """What a model config declares: its parameter count and the bytes of every layer's output for
    one image (float32), which is what inference holds at most per image in the batch."""

    params: int
    activation_bytes: int  # per image
    layers: int

    @property
    def weight_bytes(self) -> int:
        return self.params * BYTES_PER_VALUE


Shape = tuple[int, ...]  # without the batch axis


_HUGE = 2**40  # no size in a real model comes near; above it the figures would not even print as floats


def _int(v: Any, what: str, low: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < low:
        raise LimitError(f"{what} must be a whole number of at least {low}, not {str(v)[:40]}")
    if v > _HUGE:
        raise LimitError(f"{what} is {str(v)[:40]}{'...' if len(str(v)) > 40 else ''}, absurdly large")
    return v


def _ints(v: Any, n: int, what: str, low: int = 1) -> tuple[int, ...]:
    """An int or a list of n ints (Keras accepts both for kernel sizes, strides, pool sizes)."""
    if isinstance(v, (list, tuple)):
        if len(v) != n:
            raise LimitError(f"{what} needs {n} values, not {v!r}")
        return tuple(_int(x, what, low) for x in v)
    return (_int(v, what, low),) * n


def _shape(v: Any, what: str) -> Shape:
    if not isinstance(v, (list, tuple)) or not v:
        raise LimitError(f"{what} must be a list of sizes, not {v!r}")
    return tuple(_int(x, what) for x in v)


def _prod(shape: Shape) -> int:
    return math.prod(shape)


def _channels_last(cfg: dict, shape: Shape) -> tuple[Shape, int, Callable[[Shape, int], Shape]]:
    """The spatial sizes and channel count of an image-like tensor, and how to put a new one together."""
    if cfg.get("data_format") == "channels_first":
        return shape[1:], shape[0], lambda sp, c: (c, *sp)
    return shape[:-1], shape[-1], lambda sp, c: (*sp, c)


def _conv_out(n: int, k: int, s: int, d: int, padding: Any, name: str) -> int:
    if padding in ("same", "causal"):
        return -(-n // s)
    if padding != "valid":
        raise LimitError(f"layer {name!r}: padding must be 'valid', 'same' or 'causal', not {padding!r}")
    out = (n - d * (k - 1) - 1) // s + 1
    if out < 1:
        raise LimitError(f"layer {name!r}: the image shrinks below 1 pixel")
    return out


def _conv(cls: str, cfg: dict, shape: Shape, name: str) -> tuple[Shape, int]:
    rank = len(shape) - 1
    if rank < 1:
        raise LimitError(f"layer {name!r} ({cls}) needs an image-like input, got shape {shape}")
    spatial, c, join = _channels_last(cfg, shape)
    k = _ints(cfg.get("kernel_size"), rank, f"layer {name!r} kernel_size")
    s = _ints(cfg.get("strides", 1), rank, f"layer {name!r} strides")
    d = _ints(cfg.get("dilation_rate", 1), rank, f"layer {name!r} dilation_rate")
    bias = bool(cfg.get("use_bias", True))
    taps = _prod(k)
    if "Transpose" in cls:
        f = _int(cfg.get("filters"), f"layer {name!r} filters")
        ek = [kk + (kk - 1) * (dd - 1) for kk, dd in zip(k, d, strict=True)]
        if cfg.get("padding") == "same":
            sp = tuple(n * ss for n, ss in zip(spatial, s, strict=True))
        else:
            sp = tuple(n * ss + max(kk - ss, 0) for n, ss, kk in zip(spatial, s, ek, strict=True))
        return join(sp, f), taps * c * f + (f if bias else 0)
    sp = tuple(_conv_out(n, kk, ss, dd, cfg.get("padding", "valid"), name)
               for n, kk, ss, dd in zip(spatial, k, s, d, strict=True))
    if cls.startswith("Depthwise"):
        m = _int(cfg.get("depth_multiplier", 1), f"layer {name!r} depth_multiplier")
        return join(sp, c * m), taps * c * m + (c * m if bias else 0)
    f = _int(cfg.get("filters"), f"layer {name!r} filters")
    if cls.startswith("Separable"):
        m = _int(cfg.get("depth_multiplier", 1), f"layer {name!r} depth_multiplier")
        return join(sp, f), taps * c * m + c * m * f + (f if bias else 0)
    groups = _int(cfg.get("groups", 1), f"layer {name!r} groups")
    if c % groups:
        raise LimitError(f"layer {name!r}: {c} input channels cannot be split into {groups} groups")
    return join(sp, f), taps * (c // groups) * f + (f if bias else 0)


def _pool(cls: str, cfg: dict, shape: Shape, name: str) -> tuple[Shape, int]:
    rank = len(shape) - 1
    spatial, c, join = _channels_last(cfg, shape)
    if cls.startswith("Global"):
        return (join((1,) * rank, c) if cfg.get("keepdims") else (c,)), 0
    p = _ints(cfg.get("pool_size", 2), rank, f"layer {name!r} pool_size")
    s = _ints(cfg.get("strides") or p, rank, f"layer {name!r} strides")
    sp = tuple(_conv_out(n, pp, ss, 1, cfg.get("padding", "valid"), name)
               for n, pp, ss in zip(spatial, p, s, strict=True))
    return join(sp, c), 0


def _axes(cfg: dict, shape: Shape, name: str) -> int:
    """The number of values a normalization layer keeps per weight (the product of its axes' sizes;
    Keras counts axes with the batch axis as 0)."""
    axis = cfg.get("axis", -1)
    dims = []
    for a in axis if isinstance(axis, (list, tuple)) else [axis]:
        if isinstance(a, bool) or not isinstance(a, int) or a == 0 or not -len(shape) <= a <= len(shape):
            raise LimitError(f"layer {name!r}: axis {axis!r} does not fit the input shape {shape}")
        dims.append(shape[a - 1] if a > 0 else shape[a])
    return _prod(tuple(dims))


def _pads(v: Any, rank: int, name: str) -> list[tuple[int, int]]:
    """ZeroPadding/Cropping amounts: an int, one int per axis, or (before, after) per axis."""
    if not isinstance(v, (list, tuple)):
        v = [v] * rank
    if len(v) != rank:
        raise LimitError(f"layer {name!r}: padding/cropping needs {rank} values, not {v!r}")
    out = []
    for x in v:
        pair = x if isinstance(x, (list, tuple)) else (x, x)
        out.append(tuple(_ints(list(pair), 2, f"layer {name!r} padding/cropping", low=0)))
    return out


def _rnn(cls: str, cfg: dict, shape: Shape, name: str) -> tuple[Shape, int]:
    if len(shape) != 2:
        raise LimitError(f"layer {name!r} ({cls}) needs a (steps, features) input, got {shape}")
    steps, feats = shape
    u = _int(cfg.get("units"), f"layer {name!r} units")
    gates = {"SimpleRNN": 1, "GRU": 3, "LSTM": 4}[cls]
    bias = (u * gates * (2 if cls == "GRU" and cfg.get("reset_after", True) else 1)) if cfg.get("use_bias", True) else 0
    params = gates * u * (feats + u) + bias
    return ((steps, u) if cfg.get("return_sequences") else (u,)), params


def _reshape(cfg: dict, shape: Shape, name: str) -> Shape:
    target = cfg.get("target_shape")
    if not isinstance(target, (list, tuple)) or not target:
        raise LimitError(f"layer {name!r}: target_shape must be a list of sizes, not {target!r}")
    known = [_int(t, f"layer {name!r} target_shape") for t in target if t != -1]
    if len(known) < len(target) - 1:
        raise LimitError(f"layer {name!r}: target_shape may have one -1 only")
    total = _prod(shape)
    if len(known) < len(target):
        if total % _prod(tuple(known)):
            raise LimitError(f"layer {name!r}: {shape} cannot be reshaped to {target}")
        target = [total // _prod(tuple(known)) if t == -1 else t for t in target]
    if _prod(tuple(target)) != total:
        raise LimitError(f"layer {name!r}: {shape} cannot be reshaped to {tuple(target)}")
    return tuple(target)


# Layers whose output has the input's shape and that hold no weights.
_SAME_SHAPE = {"Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise",
               "GaussianDropout", "AlphaDropout", "ActivityRegularization", "Activation", "ReLU", "LeakyReLU",
               "ELU", "Softmax", "ThresholdedReLU", "Rescaling", "Identity", "Masking", "UnitNormalization"}
_MERGE = {"Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"}
_CONV = {"Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose",
         "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D", "SeparableConv2D"}
_POOL = {f"{kind}Pooling{n}D" for kind in ("Max", "Average", "GlobalMax", "GlobalAverage") for n in (1, 2, 3)}
_MODELS = {"Functional", "Sequential", "Model"}
KNOWN_LAYERS = tuple(sorted(_SAME_SHAPE | _MERGE | _CONV | _POOL | _MODELS | {
    "InputLayer", "Dense", "BatchNormalization", "LayerNormalization", "GroupNormalization", "PReLU",
    "Flatten", "Reshape", "Permute", "RepeatVector", "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D",
    "Cropping1D", "Cropping2D", "Cropping3D", "UpSampling1D", "UpSampling2D", "UpSampling3D", "Concatenate",
    "SimpleRNN", "GRU", "LSTM"}))


def _layer(cls: str, cfg: dict, inputs: list[Shape], name: str, depth: int) -> tuple[Shape, int, int]:
    """(output shape, parameters, activation values per image of any inner layers) of one layer."""
    if cls in _MERGE or cls == "Concatenate":
        if len(inputs) < 2 or len({len(s) for s in inputs}) != 1:
            raise LimitError(f"layer {name!r} ({cls}) needs two or more inputs of the same rank, got {inputs}")
        if cls == "Concatenate":
            axis = cfg.get("axis", -1)
            a = _int(axis, f"layer {name!r} axis", -len(inputs[0]) - 1)
            a = a - 1 if a > 0 else a + len(inputs[0])
            if not 0 <= a < len(inputs[0]):
                raise LimitError(f"layer {name!r}: axis {axis} does not fit {inputs[0]}")
            out = list(inputs[0])
            out[a] = sum(s[a] for s in inputs)
            return tuple(out), 0, 0
        return tuple(max(d) for d in zip(*inputs, strict=True)), 0, 0
    if len(inputs) != 1:
        raise LimitError(f"layer {name!r} ({cls}) takes one input, got {len(inputs)}")
    shape = inputs[0]
    if cls in _MODELS:
        out, params, values, _ = _walk(cls, cfg, depth + 1, shape)
        return out, params, values - _prod(out)  # its output is counted by the caller
    if cls in _SAME_SHAPE:
        return shape, 0, 0
    if cls == "Dense":
        u = _int(cfg.get("units"), f"layer {name!r} units")
        return (*shape[:-1], u), (shape[-1] + bool(cfg.get("use_bias", True))) * u, 0
    if cls in _CONV:
        out, params = _conv(cls, cfg, shape, name)
        return out, params, 0
    if cls in _POOL:
        out, params = _pool(cls, cfg, shape, name)
        return out, params, 0
    if cls == "BatchNormalization":  # gamma, beta (each if enabled), moving mean and variance
        per = 2 + bool(cfg.get("scale", True)) + bool(cfg.get("center", True))
        return shape, per * _axes(cfg, shape, name), 0
    if cls in ("LayerNormalization", "GroupNormalization"):
        per = bool(cfg.get("scale", True)) + bool(cfg.get("center", True))
        return shape, per * (_axes(cfg, shape, name) if cls == "LayerNormalization" else shape[-1]), 0
    if cls == "PReLU":
        shared = cfg.get("shared_axes") or []
        shared = [shared] if isinstance(shared, int) else shared
        dims = [1 if (i + 1) in shared else d for i, d in enumerate(shape)]
        return shape, _prod(tuple(dims)), 0
    if cls == "Flatten":
        return (_prod(shape),), 0, 0
    if cls == "Reshape":
        return _reshape(cfg, shape, name), 0, 0
    if cls == "Permute":
        dims = cfg.get("dims")
        if not isinstance(dims, (list, tuple)) or sorted(dims) != list(range(1, len(shape) + 1)):
            raise LimitError(f"layer {name!r}: dims {dims!r} do not permute {shape}")
        return tuple(shape[d - 1] for d in dims), 0, 0
    if cls == "RepeatVector":
        return (_int(cfg.get("n"), f"layer {name!r} n"), *shape), 0, 0
    if cls.startswith(("ZeroPadding", "Cropping", "UpSampling")):
        rank = int(cls[-2])
        if len(shape) != rank + 1:
            raise LimitError(f"layer {name!r} ({cls}) needs a {rank + 1}-D input, got {shape}")
        spatial, c, join = _channels_last(cfg, shape)
        if cls.startswith("UpSampling"):
            size = _ints(cfg.get("size", 2), rank, f"layer {name!r} size")
            return join(tuple(n * k for n, k in zip(spatial, size, strict=True)), c), 0, 0
        pads = _pads(cfg.get("padding" if cls.startswith("Zero") else "cropping", 1), rank, name)
        sign = 1 if cls.startswith("Zero") else -1
        sp = tuple(n + sign * (a + b) for n, (a, b) in zip(spatial, pads, strict=True))
        if min(sp) < 1:
            raise LimitError(f"layer {name!r}: cropping leaves nothing of {shape}")
        return join(sp, c), 0, 0
    if cls in ("SimpleRNN", "GRU", "LSTM"):
        out, params = _rnn(cls, cfg, shape, name)
        return out, params, 0
    raise LimitError(f"layer {name!r} is a {cls}, which the size check does not know, so the model cannot be "
                     "sized before it is built; use standard convolution, dense, pooling, normalization, "
                     "dropout, reshaping and merge layers")


def _input_shape(cfg: dict, name: str) -> Shape:
    shape = cfg.get("batch_shape", cfg.get("batch_input_shape"))
    if shape is not None:
        if not isinstance(shape, (list, tuple)) or len(shape) < 2:
            raise LimitError(f"input {name!r} declares the shape {shape!r}")
        return _shape(list(shape[1:]), f"input {name!r} shape")
    return _shape(cfg.get("shape"), f"input {name!r} shape")


def _tensors(node: Any) -> Iterator[list]:
    """The `keras_history` ([layer, node, tensor]) of every tensor an inbound node passes to a layer
    as its inputs (its call's positional arguments; keyword arguments such as masks are not inputs)."""
    if isinstance(node, dict) and "args" in node and "kwargs" in node:
        yield from _tensors(node["args"])
    elif isinstance(node, dict):
        if node.get("class_name") == "__keras_tensor__":
            history = (node.get("config") or {}).get("keras_history")
            if not isinstance(history, list) or not history or not isinstance(history[0], str):
                raise LimitError(f"a layer input has no valid keras_history: {history!r}")
            yield history
            return
        for v in node.values():
            yield from _tensors(v)
    elif isinstance(node, list):
        for v in node:
            yield from _tensors(v)


def _walk(cls: str, cfg: dict, depth: int, incoming: Shape | None) -> tuple[Shape, int, int, int]:
    """(output shape, parameters, activation values per image, layer count) of a Sequential or
    Functional config."""
    if depth > MAX_NESTING:
        raise LimitError(f"models are nested more than {MAX_NESTING} deep")
    layers = cfg.get("layers")
    if not isinstance(layers, list):
        raise LimitError(f"the {cls} config has no list of layers")
    params = values = 0
    n_layers = 0

    def sized(item: Any) -> tuple[str, str, dict]:
        if not isinstance(item, dict) or not isinstance(item.get("config"), dict):
            raise LimitError(f"a layer entry is not a layer config: {str(item)[:80]!r}")
        kind = item.get("class_name")
        name = item.get("name") or item["config"].get("name") or kind
        if not isinstance(kind, str) or not isinstance(name, str):
            raise LimitError(f"a layer entry has no class name: {str(item)[:80]!r}")
        module = item.get("module")
        custom = ">" in str(item.get("registered_name") or "")  # "package>Name": registered by other code
        if kind == "Lambda" or custom or (module and not str(module).startswith("keras")):
            # Python code, or a class registered by some other package: never sized nor deserialised.
            raise LimitError(f"layer {name!r} ({kind}) is custom code; only standard Keras layers are allowed")
        return kind, name, item["config"]

    if cls == "Sequential":
        shape = incoming
        if shape is None and cfg.get("build_input_shape") is not None:
            shape = _input_shape({"batch_shape": cfg["build_input_shape"]}, "build_input_shape")
        for item in layers:
            kind, name, lcfg = sized(item)
            if kind == "InputLayer":  # inside another model, the input is the tensor passed in
                if incoming is None:
                    shape = _input_shape(lcfg, name)
                    values += _prod(shape)
                continue
            if shape is None:
                raise LimitError("the model declares no input shape")
            shape, p, inner = _layer(kind, lcfg, [shape], name, depth)
            params, values, n_layers = params + p, values + _prod(shape) + inner, n_layers + 1
        if shape is None:
            raise LimitError("the model declares no input shape")
        return shape, params, values, n_layers

    outputs: dict[str, Shape] = {}
    counted: set[str] = set()
    for item in layers:
        kind, name, lcfg = sized(item)
        if kind == "InputLayer":
            if incoming is not None and not outputs:  # a nested model's first input: the tensor passed in
                outputs[name] = incoming
            else:
                outputs[name] = _input_shape(lcfg, name)
                values += _prod(outputs[name])
            continue
        nodes = item.get("inbound_nodes")
        if not isinstance(nodes, list) or not nodes:
            raise LimitError(f"layer {name!r} has no inputs")
        for node in nodes:  # a shared layer is called once per node; its weights are counted once
            shapes = []
            for history in _tensors(node):
                if history[0] not in outputs:
                    raise LimitError(f"layer {name!r} reads {history[0]!r}, which is not defined before it")
                shapes.append(outputs[history[0]])
            out, p, inner = _layer(kind, lcfg, shapes, name, depth)
            if name not in counted:
                params, n_layers = params + p, n_layers + 1
                counted.add(name)
            values += _prod(out) + inner
            outputs[name] = out
    ends = cfg.get("output_layers")
    last = ends[0] if isinstance(ends, list) and ends and isinstance(ends[0], list) else ends
    if not isinstance(last, list) or not last or last[0] not in outputs:
        raise LimitError(f"the model's output layer {last!r} is not one of its layers")
    return outputs[last[0]], params, values, n_layers


def estimate_keras_config(config: dict) -> Estimate:
    """Parameters and per-image activation bytes of the model a Keras `config.json` declares (a
    Functional or Sequential model, as `model.save` writes it), computed from the layer configs alone:
    no layer is built, no TensorFlow is imported. Raises `LimitError` for a config it cannot size (an
    unknown layer class, a shape that does not work out, a malformed entry), naming the layer."""
    if not isinstance(config, dict) or not isinstance(config.get("config"), dict):
        raise LimitError("config.json does not hold a Keras model config")
    cls = config.get("class_name")
    if cls not in _MODELS:
        raise LimitError(f"config.json declares a {cls!r}, not a Functional or Sequential model")
    try:
        _, params, values, n_layers = _walk(cls, config["config"], 0, None)
    except RecursionError as e:  # absurdly deep nesting of lists in the JSON itself
        raise LimitError("config.json is nested too deeply") from e
    return Estimate(params, values * BYTES_PER_VALUE, n_layers)


# --- what a server lets a model cost ---------------------------------------------------------------
# The largest model the app loads. 10 million parameters (40 MB of float32) is 95x the pretrained model
# (105,482), 8x Keras's classic 1.2-million-parameter MNIST CNN and 2-10x the largest MNIST classifiers
# people publish; bigger networks are not more accurate on 28x28 digits, and a 50 MB upload holds at
# most ~13 million float32 weights anyway (they do not compress).
MAX_PARAMS = 10_000_000
# Peak memory of loading a model, per byte of its weights: Keras builds each variable from its
# initializer, then extracts the archive and reads and assigns the stored weights. Measured with
# inference.load_model in a warm process (TensorFlow 2.21, Keras 3.15): Dense models of 5.1 and 10.2
# million parameters (19 and 39 MB of weights) raised the peak RSS by 120 and 240 MB: 6.2x.
LOAD_OVERHEAD = 6.5
# Images per forward pass when the Evaluate page predicts the test set (evaluation.predict_proba's
# default batch): each layer's outputs for that many images are alive at once, at worst.
SERVE_BATCH = 250  # TensorFlow kept +76 MB after a test-set pass in batches of 1,000, +20 MB at 250 (same time)
# A model may take at most this share of the memory still available: loading is transient, but the
# server keeps serving other sessions meanwhile, and a second upload may be checked at the same time.
MODEL_SHARE = 0.5


def model_memory_bytes(est: Estimate) -> int:
    """Peak memory of loading the model and predicting a batch of `SERVE_BATCH` images with it."""
    return int(est.weight_bytes * LOAD_OVERHEAD + est.activation_bytes * SERVE_BATCH)


def check_model(est: Estimate, name: str, stored_weight_bytes: int | None = None,
                available: int | None = None) -> None:
    """Refuse, with a `LimitError` naming the figures, a model that is too big for this server: over
    `MAX_PARAMS`, declaring more parameters than its weights file can hold (at least a byte each, for
    8-bit quantized weights: a 30 KB file cannot declare a million), or needing more than
    `MODEL_SHARE` of the memory available (`available`, default `memory_available_bytes()`)."""
    declared = f"{name} declares {count(est.params)} parameters ({mb(est.weight_bytes)})"
    if est.params > MAX_PARAMS:
        raise LimitError(f"{declared}; this server allows at most {count(MAX_PARAMS)} "
                         f"({mb(MAX_PARAMS * BYTES_PER_VALUE)}) for an MNIST classifier")
    if stored_weight_bytes is not None and est.params > stored_weight_bytes:
        raise LimitError(f"{declared}, but its weights file holds only {mb(stored_weight_bytes)}: the file is "
                         "inconsistent (refused before building it)")
    need = model_memory_bytes(est)
    free = memory_available_bytes() if available is None else available
    if free and need > MODEL_SHARE * free:
        raise LimitError(f"{declared} and {mb(est.activation_bytes)} of activations per image: loading and "
                         f"running it needs about {mb(need)}, and this server has {mb(free)} available (a "
                         f"model may use at most {MODEL_SHARE:.0%} of it)")


# --- what a training costs --------------------------------------------------------------------------
# Constants fitted to the peak RSS of real trainings (`python -m mnist_core train --limit 500 --epochs 1`,
# one fresh process each, ru_maxrss; a data folder of 1,000 training and 200 test images of real
# MNIST; TensorFlow 2.21 CPU, Keras 3.15, Python 3.11, 2-core AMD EPYC shared with other work (load 4-7),
# 2026-12-02). P = parameters, A = activation values per image (summary_rows), MB = 2**20 bytes:
#
#   architecture (batch)                           P            A     measured   estimated
#   mlp (32)                                 235,146        1,562       727 MB      728 MB
#   classic (64)                              93,322       37,674       753 MB      741 MB
#   classic (450)                             93,322       37,674       868 MB      852 MB
#   fast (64)                                105,482       31,178       754 MB      738 MB
#   custom 128 filters 5x5, dense 256 (128)  6,428,682   251,402     1,114 MB    1,210 MB
#   custom 512 filters 3x3, dense 512 (32)  51,390,986  1,004,554    3,013 MB    2,925 MB
#   custom 512 filters 3x3, dense 512 (64)  51,390,986  1,004,554    3,047 MB    3,170 MB
#   the same, SGD instead of Adam (64)      51,390,986  1,004,554    2,624 MB    2,778 MB
#   custom 512 filters 3x3, dense 512 (192) 51,390,986  1,004,554    3,643 MB    4,151 MB
#   classic (64), 22,699 + 10,000 images      93,322       37,674       776 MB      828 MB
#
# The fit: the runtime (Python, TensorFlow, Keras, the model's graph) is ~715 MB; each byte of weights
# costs ~10 bytes with Adam (the weights, their gradients, two slots each with an update temporary of
# the same size, and ~4 working copies: initial values, the saved model, evaluation), 2 fewer per slot
# fewer (SGD's one); each activation byte of a batch costs 2 (the outputs kept for backprop and their
# gradients; 2.1 for classic between batch 64 and 450, 1.2 for the 512-filter network between 64 and
# 192, so 2 is on the safe side). Data: ~4.1 KB per training image (the README's 60,000- vs 22,699-image
# trainer peaks: +152 MB), i.e. the uint8 arrays and the input pipeline's copies.
RUNTIME_BYTES = 715 * 2**20
# Of that runtime, TensorFlow's shared libraries (~390 MB of file pages) are charged to a memory cgroup
# once, by the first process that reads them: a trainer started by a server that has already loaded a
# model adds only the private part (measured at a 1 GB limit: +412 to +448 MB, not ~800).
TF_LIBRARY_BYTES = 390 * 2**20
WEIGHT_COPIES = 4  # working copies of the weights besides weights, gradients and optimizer slots
ACTIVATION_FACTOR = 2
DATA_BYTES_PER_IMAGE = 4200
OPTIMIZER_SLOTS = {"adam": 2, "adamw": 2, "rmsprop": 1, "sgd": 1}  # SGD with momentum: one
# A training may use at most this share of the memory available when it starts: the server and other
# sessions keep running beside it.
TRAINING_SHARE = 0.8


@dataclass(frozen=True)
class TrainingEstimate:
    """The parts of a training's peak memory, in bytes (see the measured table above)."""

    weights: int
    gradients: int
    optimizer: int  # slots and their update temporaries
    weight_copies: int
    activations: int  # one batch's, kept for backprop, and their gradients
    data: int
    runtime: int

    @property
    def total(self) -> int:
        return (self.weights + self.gradients + self.optimizer + self.weight_copies + self.activations
                + self.data + self.runtime)

    def fits(self, available: int | None = None) -> bool:
        """Whether it fits in `TRAINING_SHARE` of the memory available (default: now, on this machine)."""
        free = memory_available_bytes() if available is None else available
        return not free or self.total <= TRAINING_SHARE * free

    def message(self, available: int | None = None) -> str:
        """"this server has N MB available; a training needs about M MB (...)", for forms and errors."""
        free = memory_available_bytes() if available is None else available
        return (f"this server has {mb(free)} available; this training needs about {mb(self.total)} "
                f"({mb(self.weights + self.gradients + self.optimizer + self.weight_copies)} for "
                f"{count(self.weights // BYTES_PER_VALUE)} parameters and their optimizer state, "
                f"{mb(self.activations)} for a batch's activations, {mb(self.runtime + self.data)} for "
                f"TensorFlow and the data); at most {TRAINING_SHARE:.0%} of what is available may be used")


def estimate_training_bytes(rows: list[dict[str, Any]], batch_size: int, optimizer: str = "adam",
                            train_images: int = 60_000, libraries_loaded: bool = False) -> TrainingEstimate:
    """The trainer's peak memory for a network given as `architectures.summary_rows` (dicts with
    "output_shape" and "params"), trained in batches of `batch_size` with `optimizer` on
    `train_images` images (default: all of MNIST's 60,000); `libraries_loaded` when the asking process
    has TensorFlow loaded already (its library pages are then shared, not new). No TensorFlow is imported."""
    params = sum(int(r["params"]) for r in rows)
    values = sum(math.prod(r["output_shape"]) for r in rows)
    w = params * BYTES_PER_VALUE
    slots = OPTIMIZER_SLOTS.get(optimizer, max(OPTIMIZER_SLOTS.values()))
    return TrainingEstimate(
        weights=w, gradients=w, optimizer=2 * slots * w, weight_copies=WEIGHT_COPIES * w,
        activations=ACTIVATION_FACTOR * values * batch_size * BYTES_PER_VALUE,
        data=train_images * DATA_BYTES_PER_IMAGE,
        runtime=RUNTIME_BYTES - (TF_LIBRARY_BYTES if libraries_loaded else 0))
