"""A classroom in real Chromium: 10 signed-in browser sessions use a class server at once (drawing different
digits, browsing the dataset, opening Evaluate) while one training runs and three more wait in the queue.

Checked: no session shows an exception, each drawing session sees its own digit and a fresh session
sees an empty canvas (no session sees another's drawing), and every queued training eventually runs to
`finished`. The trainings are queued through the scheduler as the Train page queues them (real
supervisor and trainer processes) on a 3,000-image slice of the shared MNIST, in the server's runs
folder, so the server's pages see them."""

from __future__ import annotations

import math
import re
import threading
import time
from collections import Counter

import pytest

from mnist_core import classset, manage, runs
from mnist_core.config import preset_config
from mnist_core.identity import Actor

from ..conftest import take, write_idx_folder
from .conftest import ROOT, no_exception, streamlit_server, wait_idle
from .test_draw import CANVAS, canvas_origin, stroke

pytestmark = pytest.mark.slow


def _digit(page) -> int:
    page.locator("[data-digit]").wait_for(timeout=90_000)
    wait_idle(page, 90_000)
    return int(page.locator("[data-digit]").get_attribute("data-digit"))


@pytest.fixture(scope="module")
def class_server(e2e_runs_root, data_dir):
    """A class server (identities on) on the same runs folder as the other browser tests' server: two app
    processes sharing one runs folder, as two replicas would."""
    env = {"MNIST_RUNS_DIR": str(e2e_runs_root), "MNIST_DATA_DIR": str(data_dir), "MNIST_CLASSROOM": "1",
           "MNIST_MAX_TRAININGS": "1"}
    with streamlit_server("app.py", env, e2e_runs_root / "class-server.log") as url:
        yield url


def _signed_in(pg, url: str, name: str, path: str) -> None:
    pg.goto(url)
    wait_idle(pg, 120_000)
    pg.get_by_label("Your name").fill(name)
    pg.get_by_role("button", name="Sign in").click()
    pg.get_by_text(f"Signed in as {name}").wait_for(timeout=120_000)
    query = pg.url.split("?", 1)[1]
    pg.goto(f"{url}/{path}?{query}")  # the address carries the sign-in


def test_ten_sessions_while_four_trainings_share_one_slot(browser, class_server, e2e_runs_root, mnist, tmp_path,
                                                         monkeypatch):
    if not (ROOT / "models" / "pretrained" / "model.keras").exists():
        pytest.skip("models/pretrained/model.keras is not there yet: nothing to draw or evaluate with")
    t0 = time.time()
    d = write_idx_folder(take(mnist, 3000, 200), tmp_path / "mnist")
    # Four trainings queued the way the Train page queues them (records first in, first out, one slot).
    monkeypatch.setenv("MNIST_MAX_TRAININGS", "1")
    names = [f"class-{i}" for i in range(4)]
    for i, n in enumerate(names):
        manage.submit(Actor(f"student {i}"), preset_config("classic", epochs=1), n, root=e2e_runs_root,
                      data_dir=str(d))
    assert [runs.read_status(e2e_runs_root / n)["owner"] for n in names] == [f"student {i}" for i in range(4)]

    # Watch the queue for the whole browser phase: at some moment one training must run while others wait.
    seen: set[tuple[str, ...]] = set()
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            st = []
            for n in names:
                try:
                    st.append(runs.read_status(e2e_runs_root / n).get("state", "?"))
                except (OSError, runs.RunError):
                    st.append("starting")
            seen.add(tuple(st))
            stop.wait(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    contexts = [browser.new_context(viewport={"width": 1400, "height": 1000}) for _ in range(10)]
    pages = []
    try:
        plan = ["draw"] * 4 + ["dataset"] * 3 + ["evaluate"] * 2 + ["train"]
        for i, (ctx, path) in enumerate(zip(contexts, plan, strict=True)):
            pg = ctx.new_page()
            pg.set_default_timeout(90_000)
            pg.errors = []
            pg.on("pageerror", lambda e, pg=pg: pg.errors.append(str(e)))
            _signed_in(pg, class_server, f"pupil {i}", path)
            pages.append(pg)
        for pg in pages:
            wait_idle(pg, 120_000)

        # Sessions 0 and 1 draw different digits; session 2 stays untouched.
        draw = pages[:4]
        for pg in draw:
            pg.locator(CANVAS).wait_for(timeout=120_000)
        x, y = canvas_origin(draw[0])
        stroke(draw[0], [(x + 140, y + 45 + 10 * i) for i in range(20)])  # a 1
        x, y = canvas_origin(draw[1])
        stroke(draw[1], [(x + 140 + 55 * math.sin(2 * math.pi * t / 36), y + 140 - 85 * math.cos(2 * math.pi * t / 36))
                         for t in range(38)])  # a 0
        assert _digit(draw[0]) == 1
        assert _digit(draw[1]) == 0
        # Each session still sees only its own drawing; an untouched session sees the empty prompt.
        draw[2].reload()
        wait_idle(draw[2], 120_000)
        draw[2].locator(CANVAS).wait_for(timeout=120_000)
        assert draw[2].locator("[data-digit]").count() == 0
        assert draw[2].get_by_text("Draw a digit in the black box").is_visible()
        assert _digit(draw[0]) == 1 and _digit(draw[1]) == 0

        # Both press "Add to the class set" at once: each drawing is stored once, with its label and its
        # contributor (the signed-in name), none lost or mixed up.
        def entries() -> Counter:
            cs = classset.load(e2e_runs_root)
            return Counter(zip(cs.labels.tolist(), cs.contributors, strict=True))

        before = entries()
        for pg in draw[:2]:
            pg.get_by_role("button", name=re.compile("Add to the class set as digit")).click(no_wait_after=True)
        deadline = time.time() + 60
        while (entries() - before).total() < 2:
            assert time.time() < deadline, "the two drawings did not reach the class set"
            time.sleep(0.2)
        wait_idle(draw[0])
        wait_idle(draw[1])
        assert entries() - before == Counter({(1, "pupil 0"): 1, (0, "pupil 1"): 1}), entries() - before

        for pg in pages:
            wait_idle(pg, 120_000)
            no_exception(pg)
            assert not pg.errors, pg.errors
    finally:
        stop.set()
        for ctx in contexts:
            ctx.close()
    # The sessions really overlapped the trainings: one running and three queued at the same moment,
    # and never two running at once (one training slot).
    assert any(st.count("running") == 1 and st.count("queued") == 3 for st in seen), sorted(seen)
    assert not any(st.count("running") > 1 for st in seen), sorted(seen)

    deadline = time.time() + 240
    while any(runs.read_status(e2e_runs_root / n)["state"] in runs.ACTIVE for n in names):
        assert time.time() < deadline, [runs.read_status(e2e_runs_root / n) for n in names]
        time.sleep(0.5)
    for n in names:
        st = runs.read_status(e2e_runs_root / n)
        assert st["state"] == "finished", (n, st, runs.log_tail(e2e_runs_root / n))
    print(f"classroom test took {time.time() - t0:.0f} s")
