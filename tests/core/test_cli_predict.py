"""`python -m mnist_core predict` on a mixed batch of pictures: every file gets its own line, in order, a
bad one its own clear error (no traceback), and the CLI goes on with the rest.

The good files are real MNIST test digits, enlarged and encoded the ways that used to be misread (a
16-bit scan, a phone photo with an EXIF orientation, a float TIFF); the bad ones are crafted headers
declaring gigantic pictures, an extreme strip, a multi-page TIFF, a text file and a missing file. The
model is the shipped pretrained one (99.3 % on the test set), so the digits' labels are the answers.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from tests.core.test_uploads import encode, enlarged, png_header, tiff_pages, webp_header, with_orientation

ROOT = Path(__file__).resolve().parents[2]
PRETRAINED = ROOT / "models" / "pretrained"


def test_predict_reports_each_bad_file_and_goes_on(mnist, tmp_path):
    good = {}  # file name -> true label
    files: dict[str, bytes] = {}
    for i, (name, make) in enumerate([
        ("good.png", lambda a: encode(Image.fromarray(a), "PNG")),
        ("scan16.png", lambda a: encode(Image.fromarray(np.round(60000 - a * (52000 / 255)).astype(np.uint16)), "PNG")),
        ("phone.jpg", lambda a: with_orientation(np.dstack([a] * 3), 6, "JPEG")),
        ("float.tiff", lambda a: encode(Image.fromarray(a.astype(np.float32) / 255), "TIFF")),
    ]):
        files[name] = make(enlarged(mnist.x_test[i]))
        good[name] = int(mnist.y_test[i])
    bad = {  # file name -> what its error must say
        "bomb.png": "declares 256,000,000 pixels",
        "bomb.webp": "16383x16383 pixels",
        "strip.png": "times as wide as it is tall",
        "scan.tiff": "several pages (2 frames)",
        "notes.png": "not an image",
        "missing.png": "No such file",
    }
    files["bomb.png"] = png_header(16000, 16000)
    files["bomb.webp"] = webp_header(16383, 16383, "lossless")
    files["strip.png"] = encode(Image.fromarray(np.zeros((9, 20000), np.uint8)), "PNG")
    files["scan.tiff"] = tiff_pages(enlarged(mnist.x_test[0]), 2)
    files["notes.png"] = b"a shopping list, not a picture\n"
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    # Bad files first, between and last: the CLI must go on after each of them.
    order = ["bomb.png", "good.png", "strip.png", "scan16.png", "missing.png", "phone.jpg", "scan.tiff",
             "float.tiff", "notes.png", "bomb.webp"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "MNIST_OFFLINE": "1"}
    p = subprocess.run([sys.executable, "-m", "mnist_core", "predict", str(PRETRAINED),
                        *[str(tmp_path / n) for n in order]],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert "Traceback" not in p.stderr + p.stdout, p.stderr[-3000:]
    assert p.returncode == 1, p.stdout + p.stderr[-2000:]  # some files were bad
    lines = p.stdout.strip().splitlines()
    assert [line.split(": ", 1)[0] for line in lines] == [str(tmp_path / n) for n in order], p.stdout
    for name, line in zip(order, lines, strict=True):
        answer = line.split(": ", 1)[1]
        if name in good:
            m = re.match(r"(\d)  \(", answer)
            assert m and int(m.group(1)) == good[name], (name, answer)
        else:
            assert answer.startswith("error: ") and bad[name] in answer, (name, answer)
            assert str(ROOT) not in answer  # a message about the file, not about the server's code
