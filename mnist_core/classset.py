"""The class's own handwriting: digits drawn on the Draw page, kept with their label and contributor.

Each entry is one small file in `<runs root>/.classroom/classset/`: an `.npz` holding the 28x28 model
input (uint8), the label, the contributor, the time and the original drawing (PNG bytes). One file per
entry, written atomically under a unique name, so thirty students adding at once never lose or mix up
an entry, and removing one (the teacher's moderation) is deleting one file. `load` reads them all as
arrays; `as_dataset` presents them as a `data.Dataset` (source "class"), training part and held-out part,
so every page and the trainer use the class set like MNIST itself. Which part an entry belongs to is
decided by a hash of its id (30 % held out), so it never changes as entries are added. `export` writes
them as the four IDX files or a Keras-style `mnist.npz`: a folder usable as `MNIST_DATA_DIR`.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import runs
from .config import DATA_CHOICES
from .data import IDX_NAMES, DataError, Dataset, DataSource, write_idx
from .identity import Actor, classroom_dir

SET_DIR = "classset"
HOLDOUT_PERCENT = 30
MAX_ENTRIES = 20_000  # a class's lessons, not a dataset: beyond this, archive (reset the class) first
CLASS_WEIGHT = 0.05  # "mnist+class": the class set is repeated until it is ~5 % of the training images


class ClassSetError(ValueError):
    """An entry that cannot be stored, or a class set that cannot be used, explained."""


def set_dir(root: Path | None = None) -> Path:
    return classroom_dir(root) / SET_DIR


@dataclass(frozen=True)
class ClassSet:
    ids: tuple[str, ...]
    images: np.ndarray  # (N, 28, 28) uint8, the model inputs
    labels: np.ndarray  # (N,) int64
    contributors: tuple[str, ...]
    times: np.ndarray  # (N,) float seconds

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def holdout(self) -> np.ndarray:
        """True for the entries kept out of training, for scoring (a stable function of each id)."""
        return np.array([int(hashlib.sha1(i.encode()).hexdigest()[:8], 16) % 100 < HOLDOUT_PERCENT
                         for i in self.ids], bool)

    @property
    def fingerprint(self) -> str:
        return hashlib.sha1("|".join(self.ids).encode()).hexdigest()[:12]


def add(image28: np.ndarray, label: int, contributor: str | None, drawing_png: bytes | None = None,
        root: Path | None = None) -> str:
    """Store one drawing as digit `label`; returns its id. `image28` is the model input in [0, 1]."""
    img = np.asarray(image28, np.float32)
    if img.shape != (28, 28) or not np.isfinite(img).all():
        raise ClassSetError(f"a class-set entry is a 28x28 image, got {img.shape}")
    if not (isinstance(label, (int, np.integer)) and 0 <= int(label) <= 9):
        raise ClassSetError(f"the label must be a digit 0-9, got {label!r}")
    if float(img.max()) <= 0:
        raise ClassSetError("the drawing is blank: draw a digit first")
    d = set_dir(root)
    d.mkdir(parents=True, exist_ok=True)
    if sum(1 for _ in d.glob("*.npz")) >= MAX_ENTRIES:
        raise ClassSetError(f"the class set is full ({MAX_ENTRIES:,} drawings); the teacher can archive it")
    entry_id = f"{time.time_ns()}-{secrets.token_hex(4)}"  # unique even for simultaneous additions
    buf = io.BytesIO()
    np.savez_compressed(buf, image=np.round(img.clip(0, 1) * 255).astype(np.uint8), label=np.int64(label),
                        meta=np.frombuffer(json.dumps({"contributor": contributor or "", "time": time.time()})
                                           .encode(), np.uint8),
                        drawing=np.frombuffer(drawing_png or b"", np.uint8))
    runs.atomic_write_bytes(d / f"{entry_id}.npz", buf.getvalue())
    return entry_id


def load(root: Path | None = None) -> ClassSet:
    """Every entry, oldest first (an unreadable file is skipped: it is being written, or damaged)."""
    ids, images, labels, who, times = [], [], [], [], []
    for p in sorted(set_dir(root).glob("*.npz")):
        try:
            with np.load(p, allow_pickle=False) as z:
                image, label = z["image"], int(z["label"])
                meta = json.loads(bytes(z["meta"]).decode())
        except (OSError, ValueError, KeyError, UnicodeDecodeError):
            continue
        if image.shape != (28, 28) or image.dtype != np.uint8 or not 0 <= label <= 9:
            continue
        ids.append(p.stem)
        images.append(image)
        labels.append(label)
        who.append(str(meta.get("contributor", "")))
        times.append(float(meta.get("time", 0.0)))
    return ClassSet(tuple(ids), np.stack(images) if images else np.zeros((0, 28, 28), np.uint8),
                    np.array(labels, np.int64), tuple(who), np.array(times, float))


def drawing(entry_id: str, root: Path | None = None) -> bytes:
    """The original drawing of an entry (PNG bytes; empty when none was kept)."""
    with np.load(set_dir(root) / f"{runs.safe_run_name(entry_id)}.npz", allow_pickle=False) as z:
        return bytes(z["drawing"])


def remove(entry_id: str, actor: Actor, root: Path | None = None) -> None:
    """Remove one entry (the teacher's moderation)."""
    if not actor.teacher and not actor.local:
        raise ClassSetError("only the teacher can remove drawings from the class set")
    (set_dir(root) / f"{runs.safe_run_name(entry_id)}.npz").unlink(missing_ok=True)


def as_dataset(root: Path | None = None, cs: ClassSet | None = None) -> Dataset:
    """The class set as a Dataset: training part as the train split, held-out part as the test split."""
    cs = load(root) if cs is None else cs
    h = cs.holdout
    src = DataSource("class", f"{set_dir(root)}#{cs.fingerprint}", int((~h).sum()), int(h.sum()))
    return Dataset(cs.images[~h], cs.labels[~h], cs.images[h], cs.labels[h], src)


def training_data(mnist: Dataset, how: str, root: Path | None = None) -> Dataset:
    """What a training with `TrainConfig.data == how` learns from: MNIST, MNIST plus the class set's
    training part (repeated to about 5 % of the images, so a few hundred drawings are not drowned by
    60,000), or the class set's training part alone (fine-tuning); the test split stays MNIST's."""
    if how == "mnist":
        return mnist
    if how not in DATA_CHOICES:
        raise ClassSetError(f"unknown training data {how!r}; choose one of {', '.join(DATA_CHOICES)}")
    cls = as_dataset(root)
    if len(cls.y_train) < 10:
        raise DataError(f"the class set's training part has {len(cls.y_train)} drawings; at least 10 are needed "
                        "(add drawings on the Draw page)")
    if how == "class":
        x, y = cls.x_train, cls.y_train
    else:
        reps = max(1, round(CLASS_WEIGHT * len(mnist.y_train) / len(cls.y_train)))
        x = np.concatenate([mnist.x_train, np.repeat(cls.x_train, reps, axis=0)])
        y = np.concatenate([mnist.y_train, np.repeat(cls.y_train, reps)])
    src = DataSource(mnist.source.name, f"{mnist.source.path} + {how}", len(y), mnist.source.n_test)
    return Dataset(x, y, mnist.x_test, mnist.y_test, src)


def export(out: Path, fmt: str = "idx", root: Path | None = None) -> Path:
    """Write the class set (training part as train, held-out part as test) as the four IDX files or a
    Keras-style `mnist.npz` in the folder `out`: a data directory the app and the CLI can read."""
    ds = as_dataset(root)
    if not len(ds.y_train) + len(ds.y_test):
        raise ClassSetError("the class set is empty: nothing to export")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if fmt == "npz":
        buf = io.BytesIO()
        np.savez_compressed(buf, x_train=ds.x_train, y_train=ds.y_train.astype(np.uint8), x_test=ds.x_test,
                            y_test=ds.y_test.astype(np.uint8))
        runs.atomic_write_bytes(out / "mnist.npz", buf.getvalue())
        return out / "mnist.npz"
    if fmt != "idx":
        raise ClassSetError(f"unknown export format {fmt!r} (idx or npz)")
    arrays = {"train_images": ds.x_train, "train_labels": ds.y_train.astype(np.uint8),
              "test_images": ds.x_test, "test_labels": ds.y_test.astype(np.uint8)}
    for key, stem in IDX_NAMES.items():
        tmp = out / f".{stem}.tmp"
        write_idx(tmp, arrays[key])
        os.replace(tmp, out / stem)
    return out


def archive(actor: Actor, dest_root: Path, root: Path | None = None) -> Path | None:
    """Move the class set into `dest_root` (the teacher's "reset the class"); returns where it went."""
    if not actor.teacher:
        raise ClassSetError("only the teacher can archive the class set")
    d = set_dir(root)
    if not d.is_dir() or not any(d.iterdir()):
        return None
    dest = Path(dest_root) / SET_DIR
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(d), str(dest))
    return dest
