"""Uploading a model through a real browser with the repository's server settings (XSRF protection on):
the Import model control accepts a good .keras file and refuses a Lambda model, and the server keeps the
XSRF setting. The control is served on its own (tests/app/import_page_script.py) so this test does not
depend on how the Train page lays out its runs table."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import ROOT, no_exception, streamlit_server, wait_idle

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")


def test_repo_config_keeps_xsrf_on():
    cfg = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert cfg["server"]["enableXsrfProtection"] is True
    assert cfg["server"].get("enableCORS", True) is True  # XSRF needs CORS protection on as well


@pytest.fixture(scope="module")
def import_server(tmp_path_factory):
    runs_root = tmp_path_factory.mktemp("import_runs")
    env = {"MNIST_RUNS_DIR": str(runs_root), "PYTHONPATH": str(ROOT)}
    with streamlit_server("tests/app/import_page_script.py", env, runs_root.parent / "import_server.log") as url:
        yield url, runs_root


@pytest.fixture(scope="module")
def model_files(tmp_path_factory) -> dict[str, Path]:
    import keras

    from mnist_core.architectures import build_model
    from mnist_core.config import ArchConfig

    d = tmp_path_factory.mktemp("upload_models")
    build_model(ArchConfig()).save(d / "classroom-net.keras")
    inp = keras.Input((28, 28, 1))
    x = keras.layers.Flatten()(keras.layers.Lambda(lambda t: t + 1.0)(inp))
    keras.Model(inp, keras.layers.Dense(10, activation="softmax")(x)).save(d / "evil.keras")
    return {"good": d / "classroom-net.keras", "lambda": d / "evil.keras"}


def _upload(page, path: Path) -> None:
    main = page.locator("[data-testid='stMain']")
    if not main.get_by_text("Model file").is_visible():
        main.get_by_text("Import model").click()
    main.locator("[data-testid='stFileUploader'] input[type='file']").set_input_files(str(path))
    # The upload goes through the server's XSRF-protected upload endpoint, then a rerun: the run-name
    # placeholder (computed on the server from the file's name) proves the server has the file.
    main.locator(f"input[placeholder='{path.stem}']").wait_for()
    wait_idle(page)
    main.get_by_role("button", name="Import", exact=True).click()


def test_upload_with_xsrf_on(browser, import_server, model_files):
    url, runs_root = import_server
    ctx = browser.new_context(viewport={"width": 1200, "height": 900})
    page = ctx.new_page()
    page.set_default_timeout(60_000)
    # A protected "pretrained" run is the default current model, so switching to the import is visible.
    from mnist_core.model_import import import_model

    import_model(model_files["good"], "pretrained", root=runs_root)
    try:
        page.goto(url)
        wait_idle(page)
        _upload(page, model_files["lambda"])
        page.locator("[data-testid='stAlertContentError']").get_by_text("Lambda").wait_for()
        no_exception(page)
        assert [p.name for p in runs_root.iterdir()] == ["pretrained"]  # nothing kept, not even a temp folder

        _upload(page, model_files["good"])
        page.locator("[data-testid='stAlertContentSuccess']").wait_for()
        wait_idle(page)
        no_exception(page)
        assert "classroom-net (imported, finished)" in page.locator("[data-testid='stMain']").inner_text()
        assert (runs_root / "classroom-net" / "model.keras").is_file()
        picker = page.locator("[data-testid='stSidebar'] [data-testid='stSelectbox']")
        assert "classroom-net" not in picker.inner_text() + picker.locator("input").first.input_value()
        page.get_by_role("button", name="Use classroom-net now").click()
        wait_idle(page)
        # The sidebar's Current model picker now shows it (as text or as its input's value).
        page.wait_for_function("""() => {
            const box = document.querySelector("[data-testid='stSidebar'] [data-testid='stSelectbox']");
            if (!box) return false;
            const vals = [box.innerText, ...[...box.querySelectorAll('input')].map(i => i.value)];
            return vals.some(v => v && v.includes('classroom-net (imported)'));
        }""")
        no_exception(page)
    finally:
        ctx.close()
