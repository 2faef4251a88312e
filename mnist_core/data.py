"""MNIST from wherever it can be found, as uint8 arrays, without TensorFlow.

`load_mnist` returns a `Dataset`: train/test images `(N, 28, 28)` uint8, int64 labels, and a
`DataSource` saying where they came from. Sources are tried in order unless one is asked for: a data
directory (argument or `MNIST_DATA_DIR`) with the IDX files (gzipped or not) or a Keras-style
`mnist.npz`; the Keras cache `~/.keras/datasets/mnist.npz`, downloaded there when online; and a small
real-MNIST sample shipped inside this package, so everything works offline on a fresh machine. The IDX
reader checks magic numbers, dimensions and lengths and names the file in every error: a wrong file
never becomes a silently wrong-shaped array. Only numpy is used, so pages that just show data stay fast.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SAMPLE_PATH = Path(__file__).with_name("sample") / "mnist_sample.npz"
KERAS_CACHE = Path.home() / ".keras" / "datasets" / "mnist.npz"
KERAS_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
SOURCES = ("auto", "data_dir", "keras", "bundled")
# Each source's short title (a metric, a column) and its label in a sentence.
SOURCE_TITLES = {"data_dir": "Local MNIST copy", "keras": "Full MNIST", "bundled": "Bundled sample",
                 "class": "Class set"}
SOURCE_LABELS = {"data_dir": "MNIST from a data directory", "keras": "full MNIST (Keras cache)",
                 "bundled": "the bundled MNIST sample", "class": "the class's own handwriting"}
IDX_NAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
# IDX type codes (third byte of the magic number) -> numpy big-endian dtype
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class DataError(ValueError):
    """The data could not be read; the message names the file and what is wrong."""


@dataclass(frozen=True)
class DataSource:
    name: str  # "data_dir" | "keras" | "bundled" | "class" (classset.py)
    path: str
    n_train: int
    n_test: int

    @property
    def title(self) -> str:
        return SOURCE_TITLES[self.name]

    @property
    def label(self) -> str:
        return SOURCE_LABELS[self.name]

    @property
    def key(self) -> str:
        """A short fingerprint: caches keyed on it are invalidated when the data changes."""
        return hashlib.sha1(f"{self.name}|{self.path}|{self.n_train}|{self.n_test}".encode()).hexdigest()[:12]

    def describe(self) -> str:
        return f"{self.label}: {self.n_train:,} training and {self.n_test:,} test images ({self.path})"


@dataclass(frozen=True)
class Dataset:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: DataSource


# --- IDX ----------------------------------------------------------------------------------------
def _open(path: Path):
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gz else open(path, "rb")


def _read_at_most(f, n: int, chunk: int = 1 << 24) -> bytes:
    """Up to n bytes, read in chunks: a corrupt header announcing terabytes must give a clear
    "truncated" error, not a MemoryError from allocating what it announced."""
    parts, got = [], 0
    while got < n:
        part = f.read(min(n - got, chunk))
        if not part:
            break
        parts.append(part)
        got += len(part)
    return b"".join(parts)


def read_idx(path: str | os.PathLike, header_only: bool = False) -> np.ndarray | tuple[int, ...]:
    """Read an IDX file (optionally gzipped). With `header_only`, return just its shape."""
    path = Path(path)
    try:
        with _open(path) as f:
            magic = f.read(4)
            if len(magic) < 4:
                raise DataError(f"{path.name}: file is empty or truncated (no IDX header)")
            zero, dtype_code, ndim = struct.unpack(">HBB", magic)
            if zero != 0 or dtype_code not in _IDX_TYPES or not 1 <= ndim <= 4:
                raise DataError(f"{path.name}: wrong magic number 0x{magic.hex()} (not an IDX file)")
            dims_raw = f.read(4 * ndim)
            if len(dims_raw) < 4 * ndim:
                raise DataError(f"{path.name}: truncated header ({ndim} dimensions announced)")
            shape = struct.unpack(f">{ndim}I", dims_raw)
            if header_only:
                return tuple(shape)
            dtype = np.dtype(_IDX_TYPES[dtype_code])
            expected = int(np.prod(shape)) * dtype.itemsize
            data = _read_at_most(f, expected + 1)
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataError(f"{path.name}: cannot be read ({e})") from e
    if len(data) < expected:
        raise DataError(f"{path.name}: truncated: header says {shape} ({expected:,} bytes) "
                        f"but only {len(data):,} bytes follow")
    if len(data) > expected:
        raise DataError(f"{path.name}: {len(data) - expected:,}+ extra bytes after the {shape} data")
    return np.frombuffer(data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write an IDX file (gzipped if the name ends in .gz); used for tests and exports."""
    codes = {v: k for k, v in _IDX_TYPES.items()}
    be = np.asarray(array).astype(np.asarray(array).dtype.newbyteorder(">"))
    # One-byte types have no byte order ("|u1", "|i1"); both IDX byte types must map to their code.
    key = ">" + be.dtype.str[1:]
    if key not in codes:
        raise DataError(f"{Path(path).name}: IDX cannot store {be.dtype.name} arrays "
                        "(uint8, int8, int16, int32, float32, float64 only)")
    code = codes[key]
    header = struct.pack(">HBB", 0, code, be.ndim) + struct.pack(f">{be.ndim}I", *be.shape)
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(header + be.tobytes())


def _find_idx(data_dir: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (data_dir / name).is_file():
            return data_dir / name
    return None


def _check_images(images: np.ndarray, name: str) -> np.ndarray:
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataError(f"{name}: images must be N x 28 x 28, found {'x'.join(map(str, images.shape))}")
    if images.dtype != np.uint8:
        raise DataError(f"{name}: images must be unsigned bytes (uint8), found {images.dtype}")
    return images


def _check_labels(labels: np.ndarray, images: np.ndarray, name: str) -> np.ndarray:
    if labels.ndim != 1:
        raise DataError(f"{name}: labels must be one-dimensional, found shape {labels.shape}")
    if len(labels) != len(images):
        raise DataError(f"{name}: {len(labels):,} labels for {len(images):,} images")
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"{name}: labels must be digits 0-9, found {labels.min()}..{labels.max()}")
    return labels.astype(np.int64)


def _load_npz(path: Path) -> tuple[np.ndarray, ...]:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = [z[k] for k in ("x_train", "y_train", "x_test", "y_test")]
    except KeyError as e:
        raise DataError(f"{path.name}: missing array {e} (expected x_train, y_train, x_test, y_test)") from e
    except (OSError, ValueError) as e:
        raise DataError(f"{path.name}: not a readable .npz file ({e})") from e
    x_tr, y_tr, x_te, y_te = arrays
    return (_check_images(x_tr, f"{path.name}[x_train]"), _check_labels(y_tr, x_tr, f"{path.name}[y_train]"),
            _check_images(x_te, f"{path.name}[x_test]"), _check_labels(y_te, x_te, f"{path.name}[y_test]"))


def _load_dir(data_dir: Path) -> tuple[np.ndarray, ...]:
    if not data_dir.is_dir():
        raise DataError(f"data directory {data_dir} does not exist")
    paths = {k: _find_idx(data_dir, stem) for k, stem in IDX_NAMES.items()}
    if all(p is None for p in paths.values()) and (data_dir / "mnist.npz").is_file():
        return _load_npz(data_dir / "mnist.npz")
    missing = [IDX_NAMES[k] for k, p in paths.items() if p is None]
    if missing:
        raise DataError(f"data directory {data_dir} lacks {', '.join(missing)} (.gz or not), "
                        "and has no mnist.npz")
    out = []
    for split in ("train", "test"):
        ip, lp = paths[f"{split}_images"], paths[f"{split}_labels"]
        images = _check_images(read_idx(ip), ip.name)
        out += [images, _check_labels(read_idx(lp), images, f"{lp.name} / {ip.name}")]
    return tuple(out)


def _download_keras_cache(timeout: float = 10.0) -> None:
    KERAS_CACHE.parent.mkdir(parents=True, exist_ok=True)
    tmp = KERAS_CACHE.with_suffix(".part")
    with urllib.request.urlopen(KERAS_URL, timeout=timeout) as r, open(tmp, "wb") as f:
        f.write(r.read())
    os.replace(tmp, KERAS_CACHE)


def _resolve_dir(data_dir: str | os.PathLike | None) -> Path | None:
    d = data_dir if data_dir not in (None, "") else os.environ.get("MNIST_DATA_DIR") or None
    return Path(d).expanduser().resolve() if d else None


def _offline() -> bool:
    return os.environ.get("MNIST_OFFLINE", "").lower() in ("1", "true", "yes")


def load_mnist(data_dir: str | os.PathLike | None = None, source: str = "auto") -> Dataset:
    """Load MNIST. `source` is "auto" (data dir, then Keras cache/download, then the bundled sample)
    or one of "data_dir", "keras", "bundled" to insist on one."""
    if source not in SOURCES:
        raise DataError(f"unknown data source {source!r}; choose one of {', '.join(SOURCES)}")
    d = _resolve_dir(data_dir)
    if source in ("auto", "data_dir") and d is not None:
        arrays = _load_dir(d)  # a directory that was asked for must work: errors are not swallowed
        return Dataset(*arrays, DataSource("data_dir", str(d), len(arrays[0]), len(arrays[2])))
    if source == "data_dir":
        raise DataError("no data directory given: pass one or set MNIST_DATA_DIR")
    if source in ("auto", "keras"):
        if not KERAS_CACHE.is_file() and not _offline():
            try:
                _download_keras_cache()
            except Exception as e:  # offline is normal; fall through to the sample
                if source == "keras":
                    raise DataError(f"MNIST is not in the Keras cache and could not be downloaded ({e})") from e
        if KERAS_CACHE.is_file():
            arrays = _load_npz(KERAS_CACHE)
            return Dataset(*arrays, DataSource("keras", str(KERAS_CACHE), len(arrays[0]), len(arrays[2])))
        if source == "keras":  # asked for explicitly: never hand back the small sample in its place
            raise DataError(f"MNIST is not in the Keras cache ({KERAS_CACHE}) and MNIST_OFFLINE is set")
    arrays = _load_npz(SAMPLE_PATH)
    return Dataset(*arrays, DataSource("bundled", str(SAMPLE_PATH), len(arrays[0]), len(arrays[2])))


def describe_source(data_dir: str | os.PathLike | None = None) -> DataSource:
    """Which source `load_mnist` would use and its counts, reading only file headers (cheap)."""
    d = _resolve_dir(data_dir)
    if d is not None:
        paths = {k: _find_idx(d, stem) for k, stem in IDX_NAMES.items()} if d.is_dir() else {}
        if paths and all(paths.values()):
            n_tr = read_idx(paths["train_images"], header_only=True)[0]
            n_te = read_idx(paths["test_images"], header_only=True)[0]
            return DataSource("data_dir", str(d), n_tr, n_te)
        return load_mnist(d, "data_dir").source  # npz, or raise the precise error
    if KERAS_CACHE.is_file():
        try:  # the label arrays are small: real counts, not the 60,000/10,000 a cache usually holds
            with np.load(KERAS_CACHE, allow_pickle=False) as z:
                return DataSource("keras", str(KERAS_CACHE), len(z["y_train"]), len(z["y_test"]))
        except (OSError, ValueError, KeyError):
            return load_mnist(source="keras").source  # raise the precise error
    with np.load(SAMPLE_PATH) as z:
        return DataSource("bundled", str(SAMPLE_PATH), len(z["y_train"]), len(z["y_test"]))


def make_sample(data_dir: str | os.PathLike, out: str | os.PathLike = SAMPLE_PATH,
                n_train: int = 6000, n_test: int = 1000, seed: int = 0) -> Path:
    """Build the bundled sample: a class-balanced random subset of real MNIST, compressed."""
    ds = load_mnist(data_dir, "data_dir")
    rng = np.random.default_rng(seed)

    def pick(y: np.ndarray, n: int) -> np.ndarray:
        per = n // 10
        idx = np.concatenate([rng.choice(np.flatnonzero(y == k), per, replace=False) for k in range(10)])
        return np.sort(idx)

    tr, te = pick(ds.y_train, n_train), pick(ds.y_test, n_test)
    out = Path(out)
    np.savez_compressed(out, x_train=ds.x_train[tr], y_train=ds.y_train[tr].astype(np.uint8),
                        x_test=ds.x_test[te], y_test=ds.y_test[te].astype(np.uint8))
    return out
