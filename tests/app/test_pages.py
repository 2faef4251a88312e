"""Every page of the app loads through the real router (app.py: page config, sidebar, st.navigation)
without an exception. The page list is read from the app itself, so new pages are covered as they come."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.runtime.pages_manager import PagesManager
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")
PAGE_FILES = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "pages").glob("*.py"))


@pytest.fixture(autouse=True)
def navigation_router(monkeypatch):
    """AppTest resets PagesManager's 'pages/ directory' flag before every run, and because this app keeps
    its st.navigation pages in a folder named pages/, AppTest then runs a switched-to page file on its own
    (the old pages-directory mode), skipping app.py and the sidebar. A real server leaves that mode for
    good on the first st.navigation call; do the same here so tests go through the router."""
    original = PagesManager.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", init)


@pytest.fixture
def app_env(runs_root, data_dir, monkeypatch):
    monkeypatch.setenv("MNIST_DATA_DIR", str(data_dir))
    return runs_root


def test_router_registers_every_page_file(app_env):
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception, at.exception
    registered = {Path(str(p._page)).resolve() for p in at.session_state["_pages"].values()}
    assert registered == {ROOT / f for f in PAGE_FILES}


@pytest.mark.parametrize("page_file", PAGE_FILES)
def test_page_loads(app_env, page_file):
    at = AppTest.from_file(APP, default_timeout=90).run()
    at.switch_page(page_file).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title, f"{page_file} drew no title"
    # The shared sidebar is drawn on every page (through app.py, not the page on its own).
    assert at.sidebar.children, f"no sidebar on {page_file}"
