"""What the AppTest files share: the app's path, opening one of its pages, and the live panel's heading."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[2] / "app.py")


def open_page(script: str, timeout: float = 60) -> AppTest:
    """The app, switched to `script` (e.g. "app_pages/train.py"), with no exception on the way."""
    at = AppTest.from_file(APP, default_timeout=timeout).run()
    at.switch_page(script).run()
    assert not at.exception, at.exception
    return at


def heading(at: AppTest) -> str:
    """The heading (####) of the panel of the watched run or sweep, "" if none."""
    return next((m.value for m in at.markdown if m.value.startswith("####")), "")
