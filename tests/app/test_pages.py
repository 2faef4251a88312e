"""Every page of the app loads through the real router (app.py: page config, sidebar, st.navigation)
without an exception. The page list is read from the app itself, so new pages are covered as they come.
The router runs in classroom mode (signed in through the address, as after a reload), where every page
is registered; on a laptop the Teacher page is not."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from mnist_core import identity

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")
PAGE_FILES = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "app_pages").glob("*.py"))


@pytest.fixture
def app_env(runs_root, data_dir, monkeypatch):
    monkeypatch.setenv("MNIST_DATA_DIR", str(data_dir))
    monkeypatch.setenv("MNIST_CLASSROOM", "1")
    return runs_root


def signed_in_app(timeout: int = 60) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=timeout)
    at.query_params["id"] = identity.claim_name(f"tester-{len(identity.names())}")[1]
    return at.run()


def registered(at: AppTest) -> set[Path]:
    return {Path(str(p._page)).resolve() for p in at.session_state["_pages"].values()}


def test_router_registers_every_page_file(app_env, monkeypatch):
    at = signed_in_app()
    assert not at.exception, at.exception
    assert registered(at) == {ROOT / f for f in PAGE_FILES}
    monkeypatch.delenv("MNIST_CLASSROOM")  # a laptop: no Teacher page
    laptop = AppTest.from_file(APP, default_timeout=60).run()
    assert registered(laptop) == {ROOT / f for f in PAGE_FILES} - {ROOT / "app_pages/teacher.py"}


@pytest.mark.parametrize("page_file", PAGE_FILES)
def test_page_loads(app_env, page_file):
    at = signed_in_app(90)
    at.switch_page(page_file).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title, f"{page_file} drew no title"
    # The shared sidebar is drawn on every page (through app.py, not the page on its own).
    assert at.sidebar.children, f"no sidebar on {page_file}"
