"""mnist_core.data: the IDX reader/writer, every corrupt-file case, the npz formats and the source order."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from mnist_core import data
from mnist_core.data import IDX_NAMES, DataError, describe_source, load_mnist, read_idx, write_idx


def write_dir(d: Path, x_tr, y_tr, x_te, y_te, gz: bool = False) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    for key, arr in (("train_images", x_tr), ("train_labels", y_tr), ("test_images", x_te), ("test_labels", y_te)):
        write_idx(d / (IDX_NAMES[key] + suffix), arr)
    return d


@pytest.fixture
def small(mnist):
    """40 train and 20 test images of real MNIST, labels as uint8 (as in the IDX files)."""
    return (mnist.x_train[:40], mnist.y_train[:40].astype(np.uint8),
            mnist.x_test[:20], mnist.y_test[:20].astype(np.uint8))


# --- IDX round trip ----------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32", "float32", "float64"])
def test_idx_round_trip(tmp_path, suffix, dtype):
    rng = np.random.default_rng(0)
    arr = (rng.standard_normal((5, 7, 3)) * 50).astype(dtype)
    p = tmp_path / f"x-idx3{suffix}"
    write_idx(p, arr)
    back = read_idx(p)
    assert back.dtype == np.dtype(dtype) and back.shape == arr.shape
    np.testing.assert_array_equal(back, arr)
    assert read_idx(p, header_only=True) == (5, 7, 3)
    # The gzip variant really is gzipped, the plain one really is not.
    assert (p.read_bytes()[:2] == b"\x1f\x8b") == (suffix == ".gz")


def test_idx_header_is_the_standard_layout(tmp_path, small):
    """Byte-level check against the published format: 0x00000803, then big-endian dimensions."""
    p = tmp_path / "imgs"
    write_idx(p, small[0])
    raw = p.read_bytes()
    assert raw[:4] == b"\x00\x00\x08\x03"
    assert struct.unpack(">3I", raw[4:16]) == (40, 28, 28)
    assert raw[16:] == small[0].tobytes()


def test_write_idx_refuses_unsupported_dtype(tmp_path):
    with pytest.raises((DataError, ValueError, KeyError)):
        write_idx(tmp_path / "x", np.zeros(3, np.int64))


def test_real_shared_files_read(data_dir):
    labels = read_idx(data_dir / "t10k-labels-idx1-ubyte.gz")
    assert labels.shape == (10000,) and labels.dtype == np.uint8
    assert np.bincount(labels, minlength=10).min() > 800


# --- corrupt files: each error names the file ---------------------------------------------------
def _assert_names(exc: pytest.ExceptionInfo, name: str, *words: str) -> None:
    msg = str(exc.value)
    assert name in msg, msg
    for w in words:
        assert w.lower() in msg.lower(), msg


@pytest.mark.parametrize("gz", [False, True])
def test_truncated_data(tmp_path, small, gz):
    p = tmp_path / ("train-images-idx3-ubyte" + (".gz" if gz else ""))
    write_idx(p, small[0])
    raw = gzip.decompress(p.read_bytes()) if gz else p.read_bytes()
    raw = raw[:-100]
    p.write_bytes(gzip.compress(raw) if gz else raw)
    with pytest.raises(DataError) as e:
        read_idx(p)
    _assert_names(e, p.name, "truncated")


def test_truncated_gzip_stream(tmp_path, small):
    p = tmp_path / "train-images-idx3-ubyte.gz"
    write_idx(p, small[0])
    p.write_bytes(p.read_bytes()[:200])  # the gzip stream itself is cut
    with pytest.raises(DataError) as e:
        read_idx(p)
    _assert_names(e, p.name)


@pytest.mark.parametrize("gz", [False, True])
def test_header_announcing_terabytes(tmp_path, gz):
    """A corrupt header must give a DataError naming the file, not a MemoryError from allocating
    the 3 TB it announces."""
    p = tmp_path / ("train-images-idx3-ubyte" + (".gz" if gz else ""))
    raw = struct.pack(">HBB", 0, 8, 3) + struct.pack(">3I", 4_000_000_000, 28, 28) + bytes(1000)
    p.write_bytes(gzip.compress(raw) if gz else raw)
    with pytest.raises(DataError) as e:
        read_idx(p)
    _assert_names(e, p.name, "truncated")
    assert read_idx(p, header_only=True) == (4_000_000_000, 28, 28)


def test_extra_bytes(tmp_path, small):
    p = tmp_path / "t10k-labels-idx1-ubyte"
    write_idx(p, small[3])
    p.write_bytes(p.read_bytes() + b"\x00\x01")
    with pytest.raises(DataError) as e:
        read_idx(p)
    _assert_names(e, p.name, "extra")


def test_truncated_header(tmp_path, small):
    p = tmp_path / "train-images-idx3-ubyte"
    write_idx(p, small[0])
    p.write_bytes(p.read_bytes()[:9])  # magic + 5 of the 12 dimension bytes
    with pytest.raises(DataError) as e:
        read_idx(p)
    _assert_names(e, p.name, "header")
    p.write_bytes(b"\x00\x00")
    with pytest.raises(DataError) as e:
        read_idx(p)
    _assert_names(e, p.name)


@pytest.mark.parametrize("magic", [b"\x12\x34\x08\x03", b"\x00\x00\x42\x03", b"\x00\x00\x08\x00", b"PK\x03\x04"])
def test_wrong_magic(tmp_path, small, magic):
    p = tmp_path / "train-images-idx3-ubyte"
    write_idx(p, small[0])
    p.write_bytes(magic + p.read_bytes()[4:])
    with pytest.raises(DataError) as e:
        read_idx(p)
    _assert_names(e, p.name, "magic")


def test_empty_file(tmp_path):
    p = tmp_path / "t10k-labels-idx1-ubyte"
    p.write_bytes(b"")
    with pytest.raises(DataError) as e:
        read_idx(p)
    _assert_names(e, p.name, "empty")


def test_missing_file_read(tmp_path):
    with pytest.raises(DataError) as e:
        read_idx(tmp_path / "nothere-idx1-ubyte")
    _assert_names(e, "nothere-idx1-ubyte")


def test_three_d_labels(tmp_path, small):
    x_tr, y_tr, x_te, y_te = small
    d = write_dir(tmp_path / "d", x_tr, y_tr.reshape(40, 1, 1), x_te, y_te)
    with pytest.raises(DataError) as e:
        load_mnist(d, "data_dir")
    _assert_names(e, IDX_NAMES["train_labels"], "one-dimensional")


def test_32x32_images(tmp_path, small):
    x_tr, y_tr, x_te, y_te = small
    big = np.zeros((20, 32, 32), np.uint8)
    d = write_dir(tmp_path / "d", x_tr, y_tr, big, y_te, gz=True)
    with pytest.raises(DataError) as e:
        load_mnist(d, "data_dir")
    _assert_names(e, IDX_NAMES["test_images"] + ".gz", "32x32")


def test_float_images_refused(tmp_path, small):
    x_tr, y_tr, x_te, y_te = small
    d = write_dir(tmp_path / "d", x_tr.astype(np.float32), y_tr, x_te, y_te)
    with pytest.raises(DataError) as e:
        load_mnist(d, "data_dir")
    _assert_names(e, IDX_NAMES["train_images"], "uint8")


def test_label_image_count_mismatch(tmp_path, small):
    x_tr, y_tr, x_te, y_te = small
    d = write_dir(tmp_path / "d", x_tr, y_tr[:39], x_te, y_te)
    with pytest.raises(DataError) as e:
        load_mnist(d, "data_dir")
    _assert_names(e, IDX_NAMES["train_labels"], "39", "40")


def test_labels_out_of_range(tmp_path, small):
    x_tr, y_tr, x_te, y_te = small
    bad = y_te.copy()
    bad[3] = 11
    d = write_dir(tmp_path / "d", x_tr, y_tr, x_te, bad)
    with pytest.raises(DataError) as e:
        load_mnist(d, "data_dir")
    _assert_names(e, IDX_NAMES["test_labels"], "0-9")
    neg = y_te.astype(np.int8)
    neg[0] = -1
    d2 = write_dir(tmp_path / "d2", x_tr, y_tr, x_te, neg)
    with pytest.raises(DataError) as e:
        load_mnist(d2, "data_dir")
    _assert_names(e, IDX_NAMES["test_labels"], "0-9")


def test_missing_files_in_data_dir(tmp_path, small):
    d = write_dir(tmp_path / "d", *small)
    (d / IDX_NAMES["test_labels"]).unlink()
    with pytest.raises(DataError) as e:
        load_mnist(d, "data_dir")
    _assert_names(e, IDX_NAMES["test_labels"])
    assert IDX_NAMES["train_images"] not in str(e.value)  # only what is really missing
    # describe_source (the cheap header-only path used by `info`) gives the same precise error
    with pytest.raises(DataError) as e:
        describe_source(d)
    _assert_names(e, IDX_NAMES["test_labels"])


def test_empty_file_in_data_dir(tmp_path, small):
    d = write_dir(tmp_path / "d", *small)
    (d / IDX_NAMES["train_labels"]).write_bytes(b"")
    with pytest.raises(DataError) as e:
        load_mnist(d, "data_dir")
    _assert_names(e, IDX_NAMES["train_labels"])


def test_data_dir_does_not_exist(tmp_path):
    with pytest.raises(DataError) as e:
        load_mnist(tmp_path / "nowhere")
    _assert_names(e, "nowhere", "does not exist")
    with pytest.raises(DataError):
        describe_source(tmp_path / "nowhere")


def test_env_data_dir_pointing_nowhere(tmp_path, monkeypatch):
    monkeypatch.setenv("MNIST_DATA_DIR", str(tmp_path / "gone"))
    # An explicitly configured directory must not silently fall back to another source.
    with pytest.raises(DataError) as e:
        load_mnist()
    _assert_names(e, "gone")
    with pytest.raises(DataError):
        describe_source()


def test_data_dir_round_trip_both_compressions(tmp_path, small):
    x_tr, y_tr, x_te, y_te = small
    for gz in (False, True):
        d = write_dir(tmp_path / f"d{gz}", *small, gz=gz)
        ds = load_mnist(d)
        assert ds.source.name == "data_dir" and ds.source.path == str(d)
        assert (ds.source.n_train, ds.source.n_test) == (40, 20)
        np.testing.assert_array_equal(ds.x_train, x_tr)
        np.testing.assert_array_equal(ds.y_test, y_te)
        assert ds.x_train.dtype == np.uint8 and ds.y_train.dtype == np.int64
        assert describe_source(d) == ds.source


def test_shared_data(mnist):
    assert mnist.x_train.shape == (22699, 28, 28) and mnist.x_test.shape == (10000, 28, 28)
    assert mnist.y_train.shape == (22699,) and mnist.y_test.shape == (10000,)
    assert mnist.x_train.dtype == np.uint8
    assert set(np.unique(mnist.y_test)) == set(range(10))
    assert mnist.source.n_train == 22699 and "22,699" in mnist.source.describe()


# --- npz formats and the source order ----------------------------------------------------------
def test_keras_npz_in_data_dir(tmp_path, small):
    d = tmp_path / "npz"
    d.mkdir()
    x_tr, y_tr, x_te, y_te = small
    np.savez(d / "mnist.npz", x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te)
    ds = load_mnist(d)
    assert ds.source.name == "data_dir" and (ds.source.n_train, ds.source.n_test) == (40, 20)
    np.testing.assert_array_equal(ds.x_test, x_te)
    assert describe_source(d).n_train == 40


def test_npz_missing_array(tmp_path, small):
    d = tmp_path / "npz"
    d.mkdir()
    np.savez(d / "mnist.npz", x_train=small[0], y_train=small[1])
    with pytest.raises(DataError) as e:
        load_mnist(d)
    _assert_names(e, "mnist.npz", "x_test")
    (d / "mnist.npz").write_bytes(b"not a zip file at all")
    with pytest.raises(DataError) as e:
        load_mnist(d)
    _assert_names(e, "mnist.npz")


def test_bundled_sample():
    p = data.SAMPLE_PATH
    assert p.is_file() and p.stat().st_size <= 3 * 1024 * 1024
    ds = load_mnist(source="bundled")
    assert ds.source.name == "bundled"
    assert ds.x_train.shape[1:] == (28, 28) and ds.x_train.dtype == np.uint8
    assert len(ds.x_train) >= 1000 and len(ds.x_test) >= 500
    for y in (ds.y_train, ds.y_test):
        counts = np.bincount(y, minlength=10)
        assert len(counts) == 10 and counts.min() == counts.max(), counts  # class-balanced


def test_bundled_sample_is_real_mnist(mnist):
    """Every sample test image is one of the official test images, with the same label."""
    ds = load_mnist(source="bundled")
    index = {img.tobytes(): int(lab) for img, lab in zip(mnist.x_test, mnist.y_test, strict=True)}
    hits = [index.get(img.tobytes()) == int(lab) for img, lab in zip(ds.x_test, ds.y_test, strict=True)]
    assert all(hits)
    train_index = {img.tobytes() for img in mnist.x_train}
    share = np.mean([img.tobytes() in train_index for img in ds.x_train])
    assert share > 0.99  # the sample was made from the shared training images


def test_source_order(tmp_path, small, monkeypatch):
    cache = tmp_path / "keras" / "mnist.npz"
    monkeypatch.setattr(data, "KERAS_CACHE", cache)
    monkeypatch.setenv("MNIST_OFFLINE", "1")
    monkeypatch.delenv("MNIST_DATA_DIR", raising=False)

    def no_network(*a, **k):
        raise AssertionError("tried the network while MNIST_OFFLINE=1")

    monkeypatch.setattr(data, "_download_keras_cache", no_network)

    # 3. nothing else: the bundled sample
    assert load_mnist().source.name == "bundled"
    assert describe_source().name == "bundled"
    with pytest.raises(DataError):
        load_mnist(source="keras")
    with pytest.raises(DataError):
        load_mnist(source="data_dir")

    # 2. a Keras cache beats the sample
    cache.parent.mkdir()
    x_tr, y_tr, x_te, y_te = small
    np.savez(cache, x_train=x_tr[:30], y_train=y_tr[:30], x_test=x_te[:10], y_test=y_te[:10])
    ds = load_mnist()
    assert ds.source.name == "keras" and ds.source.path == str(cache) and len(ds.x_train) == 30
    assert describe_source() == ds.source  # real counts, read cheaply
    assert load_mnist(source="bundled").source.name == "bundled"  # asked for explicitly

    # 1. a data directory (argument or MNIST_DATA_DIR) beats both
    d = write_dir(tmp_path / "d", *small, gz=True)
    assert load_mnist(d).source.name == "data_dir"
    monkeypatch.setenv("MNIST_DATA_DIR", str(d))
    assert load_mnist().source.name == "data_dir" and len(load_mnist().x_train) == 40
    assert describe_source().name == "data_dir"
    assert load_mnist(source="keras").source.name == "keras"

    with pytest.raises(DataError):
        load_mnist(source="somewhere")
