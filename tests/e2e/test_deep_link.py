"""A fresh server whose very first visitor opens a page's address directly (a shared link to /draw) must
still go through the router: the shared sidebar with the model picker is there and the page works."""

from .conftest import no_exception, streamlit_server, wait_idle


def test_first_request_to_a_deep_link_uses_the_router(browser, e2e_runs_root, data_dir, tmp_path):
    env = {"MNIST_RUNS_DIR": str(e2e_runs_root), "MNIST_DATA_DIR": str(data_dir)}
    with streamlit_server("app.py", env, tmp_path / "server.log") as url:
        ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = ctx.new_page()
        page.set_default_timeout(60_000)
        page.goto(f"{url}/dataset")  # nothing has visited this server before
        wait_idle(page)
        page.get_by_role("heading", name="Browse the images").wait_for()
        sidebar = page.locator("[data-testid='stSidebar']")
        assert "Current model" in sidebar.inner_text()
        # The router's page list (titles from app.py), not one built from file names.
        assert sidebar.get_by_text("Evaluate", exact=True).count() == 1
        no_exception(page)
        ctx.close()
