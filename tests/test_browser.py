"""Headless Chromium opens built chapter pages, moves each explorer's sliders, checks the picture changes.

Needs Debian's chromium (`make browser`) and Playwright's Python package (no browser download: we
pass executable_path).  No network: the static explorers must be self-contained.
"""
import os
import shutil

import pytest

from book_layout import built_page, chapter_entries

pytestmark = pytest.mark.browser

CHAPTERS = chapter_entries()
CHROMIUM = os.environ.get("SSMBOOK_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert os.path.exists(CHROMIUM), f"chromium not found at {CHROMIUM}: run `make browser`"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


@pytest.mark.parametrize("entry", CHAPTERS)
def test_explorer_sliders_change_the_picture(browser, entry):
    page_path = built_page(entry)
    page = browser.new_page()
    # No network: block everything that is not a local file so the test sees what an offline reader sees.
    page.route("**/*", lambda route: route.abort() if not route.request.url.startswith("file:") else route.continue_())
    page.goto(page_path.resolve().as_uri())
    explorers = page.locator("div.ssmbook-explorer")
    assert explorers.count() >= 1, f"{entry}: no explorer on the page"
    for k in range(explorers.count()):
        ex = explorers.nth(k)
        img = ex.locator("img.ssmbook-explorer-frame")
        sliders = ex.locator("input[type=range]")
        assert sliders.count() >= 1
        for j in range(sliders.count()):
            s = sliders.nth(j)
            lo, hi, cur = int(s.get_attribute("min")), int(s.get_attribute("max")), int(s.input_value())
            if hi == lo:
                continue
            target = hi if cur != hi else lo
            before_src = img.get_attribute("src")
            before_label = ex.locator("output").nth(j).inner_text()
            s.evaluate("(el, v) => { el.value = v; el.dispatchEvent(new Event('input', {bubbles: true})); }", target)
            after_src = img.get_attribute("src")
            assert after_src != before_src, f"{entry}: explorer {k} slider {j}: picture did not change"
            assert ex.locator("output").nth(j).inner_text() != before_label, f"{entry}: value label did not update"
            # and back again: the original picture returns
            s.evaluate("(el, v) => { el.value = v; el.dispatchEvent(new Event('input', {bubbles: true})); }", cur)
            assert img.get_attribute("src") == before_src
    page.close()
