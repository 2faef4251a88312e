"""A class server in real Chromium: the access-code gate, two students with different names, ownership
of runs, the teacher, a reload keeping the identity and a tampered sign-in link refused.

The server runs with MNIST_ACCESS_CODE, MNIST_CLASSROOM and MNIST_TEACHER_PASSWORD, on its own runs
folder; Ada's run is a real (tiny) trained run placed in that folder with Ada as its owner."""

from __future__ import annotations

import re
import time

import pytest

from mnist_core import manage, runs
from mnist_core.config import preset_config
from mnist_core.identity import Actor

from ..conftest import take
from .conftest import no_exception, screenshot, streamlit_server, wait_idle

CODE, TEACHER = "lesson-42", "chalkboard"


@pytest.fixture(scope="module")
def class_root(tmp_path_factory, mnist):
    root = tmp_path_factory.mktemp("class_runs")
    from mnist_core.training import train

    cfg = preset_config("classic", epochs=1, limit=300)
    d = runs.create_run(cfg, "ada-run", root=root, owner="Ada", pid=None)
    train(cfg, d, take(mnist, 300, 100))
    return root


@pytest.fixture(scope="module")
def class_server(class_root, data_dir):
    env = {"MNIST_RUNS_DIR": str(class_root), "MNIST_DATA_DIR": str(data_dir), "MNIST_ACCESS_CODE": CODE,
           "MNIST_CLASSROOM": "1", "MNIST_TEACHER_PASSWORD": TEACHER}
    with streamlit_server("app.py", env, class_root / "server.log") as url:
        yield url


def new_page(browser, url: str, path: str = ""):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = ctx.new_page()
    pg.set_default_timeout(60_000)
    pg.goto(f"{url}/{path}")
    wait_idle(pg)
    return pg


def enter(pg, label: str, value: str, button: str) -> None:
    pg.get_by_label(label).fill(value)
    pg.get_by_role("button", name=button).click()
    wait_idle(pg)


def sign_in(browser, url: str, name: str):
    pg = new_page(browser, url)
    enter(pg, "Access code", CODE, "Enter")
    enter(pg, "Your name", name, "Sign in")
    pg.get_by_text(f"Signed in as {name}").wait_for()
    return pg


def test_the_gate_shows_nothing_but_its_prompt(browser, class_server):
    pg = new_page(browser, class_server, "train")
    main = pg.locator("[data-testid='stMain']").inner_text()
    assert "Access code" in main and "Train" not in main and "Runs" not in main
    assert pg.locator("[data-testid='stSidebarNav']").count() == 0  # no page list either
    t0 = time.monotonic()
    enter(pg, "Access code", "guess", "Enter")
    assert time.monotonic() - t0 >= 0.4  # wrong codes are answered slowly
    assert pg.get_by_text("not the access code").is_visible()
    enter(pg, "Access code", CODE, "Enter")
    assert pg.get_by_label("Your name").is_visible()  # the next step: who are you
    pg.context.close()


def test_two_students_ownership_teacher_reload_and_a_tampered_link(browser, class_server, class_root):
    ada = sign_in(browser, class_server, "Ada")
    bob = sign_in(browser, class_server, "Bob")
    try:
        # Bob sees Ada's run but is offered no way to delete or rename it.
        bob.goto(re.sub(r"/[^/?]*(\?|$)", r"/train\1", bob.url, count=1))
        wait_idle(bob)
        no_exception(bob)
        # (the runs table is drawn on a canvas; the sidebar's model picker shows the run)
        picker = bob.locator("[data-testid='stSidebar']").get_by_role("combobox", name="Current model")
        assert "ada-run" in picker.input_value()
        assert bob.get_by_text("Nothing to delete").is_visible()
        # ... and a crafted call to the core, as a forged widget event would make, is refused.
        with pytest.raises(runs.RunError, match="Ada's run"):
            manage.delete(Actor("Bob"), class_root / "ada-run")
        # Ada's identity survives a reload; she can delete her own run.
        ada.reload()
        wait_idle(ada)
        ada.get_by_text("Signed in as Ada").wait_for()
        ada.goto(re.sub(r"/[^/?]*(\?|$)", r"/train\1", ada.url, count=1))
        wait_idle(ada)
        assert ada.get_by_role("combobox", name="Delete a run").input_value() == "ada-run"
        # The Leaderboard ranks Ada's run.
        ada.goto(re.sub(r"/[^/?]*(\?|$)", r"/leaderboard\1", ada.url, count=1))
        wait_idle(ada)
        no_exception(ada)
        ada.locator("[data-testid='stDataFrame']").wait_for()
        screenshot(ada, "leaderboard")
        # Bob becomes the teacher: the Teacher page offers Ada's run for deletion.
        bob.get_by_role("button", name="Teacher").click()
        bob.get_by_label("Teacher password").fill(TEACHER)
        bob.get_by_role("button", name="Unlock the Teacher page").click()
        wait_idle(bob)
        bob.get_by_text("Signed in as Bob (teacher)").wait_for()
        bob.goto(re.sub(r"/[^/?]*(\?|$)", r"/teacher\1", bob.url, count=1))
        wait_idle(bob)
        no_exception(bob)
        assert bob.get_by_text("Runs by person").is_visible()
        screenshot(bob, "teacher")
        token = re.search(r"[?&]id=([^&]+)", ada.url).group(1)  # (before Ada's run goes)
        bob.get_by_role("combobox", name="Delete a run").click()
        bob.get_by_role("option", name="ada-run").click()
        bob.get_by_role("button", name="Delete", exact=True).click()
        wait_idle(bob)
        bob.get_by_text("Deleted ada-run.").wait_for()
        assert not (class_root / "ada-run").exists()  # the teacher may
        # A tampered link: Ada's token with Bob's name put in is refused, back to the sign-in form.
        enc, nonce, sig = token.split(".")
        forged = "Qm9i" + "." + nonce + "." + sig  # base64 "Bob"
        mallory = new_page(browser, class_server, f"?pass={re.search(r'pass=([^&]+)', ada.url).group(1)}&id={forged}")
        assert mallory.get_by_text("not valid").is_visible() and mallory.get_by_label("Your name").is_visible()
        mallory.context.close()
    finally:
        ada.context.close()
        bob.context.close()
