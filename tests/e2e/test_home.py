"""The app starts in real Chromium and the Home page shows data and model."""

from .conftest import no_exception, open_page, screenshot


def test_home_renders(page, app_server):
    open_page(page, app_server)
    page.get_by_role("heading", name="mnist-studio").wait_for()
    assert "train /" in page.inner_text("[data-testid='stMain']")
    no_exception(page)
    screenshot(page, "home")
    assert not page.console_errors, page.console_errors
