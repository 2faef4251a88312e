"""The Dataset page in real Chromium: the image grid, the enlarged image and every chart are drawn,
clicking a tile enlarges that image, and t-SNE runs in the background and draws its map."""

from .conftest import no_exception, open_page, screenshot, wait_idle


def _index(page) -> str:
    return page.locator(".st-key-ds_index input").input_value()


def test_dataset_page_shows_grid_and_charts(page, app_server):
    # Streamlit falls back to "pages/ directory" mode for a server whose first visitor opens a page URL
    # directly (the app shell's st.navigation has not run yet); open Home first, as a user normally would.
    open_page(page, app_server)
    open_page(page, app_server, "dataset")
    page.get_by_role("heading", name="Browse the images").wait_for()
    main = page.locator("[data-testid='stMain']")
    text = main.inner_text()
    assert "22,699" in text and "10,000" in text  # the shared data directory's counts
    assert "Images 1–100 of 22,699" in text

    grid = page.locator(".st-key-ds_grid [data-testid='stPlotlyChart']")
    grid.locator("image").first.wait_for()  # Plotly draws after the script run has ended
    assert grid.locator("image").count() == 1  # the whole grid is one picture...
    assert grid.locator(".scatterlayer .trace").last.locator(".point").count() == 100  # ...with 100 click targets
    for key in ("ds_big", "ds_classes", "ds_means", "ds_hist", "ds_pca"):
        chart = page.locator(f".st-key-{key} [data-testid='stPlotlyChart']")
        chart.locator(".main-svg").first.wait_for()
        assert chart.bounding_box()["height"] > 200, key
    assert page.locator(".st-key-ds_pca .scatterlayer .point").count() == 1000  # the PCA sample
    no_exception(page)

    # Clicking a tile enlarges that image: the image number and the big picture's title follow the click.
    grid.scroll_into_view_if_needed()
    box = grid.locator(".nsewdrag").first.bounding_box()
    before = _index(page)
    page.mouse.move(box["x"] + box["width"] * 0.95, box["y"] + box["height"] * 0.95)  # bottom-right tile
    hover = grid.locator(".hoverlayer").text_content()
    assert "image #" in hover and "label" in hover
    page.mouse.click(box["x"] + box["width"] * 0.95, box["y"] + box["height"] * 0.95)
    page.wait_for_function(f"document.querySelector('.st-key-ds_index input').value !== '{before}'")
    wait_idle(page)
    after = _index(page)
    assert hover.split("#")[1].split("label")[0].strip() == after
    main.get_by_text(f"Image #{int(after):,}: label").first.wait_for()

    # t-SNE on the smallest sample runs in the background with a progress bar, then draws its map.
    page.locator(".st-key-ds_emb_n").scroll_into_view_if_needed()  # elements below the fold render lazily
    thumb = page.locator(".st-key-ds_emb_n input[type='range']")
    thumb.focus()
    thumb.press("Home")  # 300 points
    wait_idle(page)
    page.get_by_role("button", name="Compute t-SNE").click()
    # While it runs, a progress bar says what it is doing (a fast machine may already be done).
    # Elements below the fold render lazily: keep the bottom of the page in view while waiting.
    page.wait_for_function("""() => {
        for (const el of [document.querySelector('[data-testid=stMain]'), document.scrollingElement])
            if (el) el.scrollTop = el.scrollHeight;
        return document.querySelector("[data-testid=stProgress], .st-key-ds_tsne .scatterlayer .point") !== null;
    }""", timeout=60_000)
    if page.locator("[data-testid='stProgress']").count():
        assert any(w in page.locator("[data-testid='stProgress']").inner_text()
                   for w in ("Starting", "Reducing", "neighbours", "iteration"))
    page.locator(".st-key-ds_tsne .scatterlayer .point").first.wait_for(timeout=180_000)
    wait_idle(page)
    assert page.locator(".st-key-ds_tsne .scatterlayer .point").count() == 300
    no_exception(page)

    # The main area scrolls inside the window: make the window as tall as the page for the screenshot.
    height = page.evaluate("document.querySelector('[data-testid=stMain]').scrollHeight")
    page.set_viewport_size({"width": 1400, "height": min(int(height) + 100, 6000)})
    page.wait_for_timeout(800)
    screenshot(page, "dataset")
    assert not page.console_errors, page.console_errors
