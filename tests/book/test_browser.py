"""Headless Chromium opens built chapter pages, moves each explorer's sliders, checks the picture changes.

Needs Debian's chromium (`make browser`) and Playwright's Python package (no browser download: we
pass executable_path).  No network: the static explorers must be self-contained.
"""
import os
import shutil

import pytest

from book_layout import built_page, chapter_entries, toc_files

pytestmark = pytest.mark.browser

CHAPTERS = chapter_entries()
ENTRIES = toc_files()
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1440, "height": 900}
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


def open_page(browser, entry, viewport=None, phone=False):
    """A built page in a fresh tab, offline: everything that is not a local file is blocked."""
    kw = {"viewport": viewport} if viewport else {}
    if phone:
        kw.update(viewport=PHONE, device_scale_factor=3, is_mobile=True, has_touch=True)
    page = browser.new_context(**kw).new_page()
    page.route("**/*", lambda route: route.abort() if not route.request.url.startswith("file:") else route.continue_())
    page.goto(built_page(entry).resolve().as_uri())
    return page


def frame_loaded(img):
    """Wait until the explorer picture has loaded (frames are files loaded on demand)."""
    img.page.wait_for_function("i => i.complete && i.naturalWidth > 0", arg=img.element_handle(), timeout=10000)
    return True


@pytest.mark.parametrize("entry", CHAPTERS)
def test_explorer_sliders_change_the_picture(browser, entry):
    page = open_page(browser, entry)
    explorers = page.locator("div.ssmbook-explorer")
    assert explorers.count() >= 1, f"{entry}: no explorer on the page"
    for k in range(explorers.count()):
        ex = explorers.nth(k)
        ex.scroll_into_view_if_needed()  # the pictures load lazily, as a reader scrolls to them
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
            assert frame_loaded(img)
            assert ex.locator("output").nth(j).inner_text() != before_label, f"{entry}: value label did not update"
            # and back again: the original picture returns
            s.evaluate("(el, v) => { el.value = v; el.dispatchEvent(new Event('input', {bubbles: true})); }", cur)
            assert img.get_attribute("src") == before_src
    page.context.close()


# ---------------------------------------------------------------- phones (390 px) and the sidebar


def open_menu(page, toggle, dialog_id):
    button = page.locator(f"button.{toggle}:visible")
    assert button.count() == 1, f"{button.count()} visible .{toggle} buttons"
    button.click()
    dialog = page.locator(f"dialog#{dialog_id}")
    dialog.wait_for(state="visible", timeout=5000)
    assert dialog.evaluate("d => d.open")
    box = dialog.bounding_box()
    assert box["width"] > 200 and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"] + 1
    return dialog


@pytest.mark.parametrize("entry", CHAPTERS)
def test_phone_menus_open(browser, entry):
    page = open_page(browser, entry, phone=True)
    # the chapter menu
    menu = open_menu(page, "primary-toggle", "pst-primary-sidebar-modal")
    links = menu.locator("nav.bd-docs-nav a.reference")
    assert links.count() >= len(CHAPTERS), f"{entry}: chapter menu shows {links.count()} links"
    assert links.filter(has_text="1.").count() >= 1
    page.keyboard.press("Escape")
    menu.wait_for(state="hidden", timeout=5000)
    # the page-contents menu
    toc = open_menu(page, "secondary-toggle", "pst-secondary-sidebar-modal")
    assert toc.locator("a.reference.internal").count() >= 3, f"{entry}: the page contents menu is empty"
    page.keyboard.press("Escape")
    toc.wait_for(state="hidden", timeout=5000)
    page.context.close()


def test_desktop_sidebar_toggle_hides_and_shows_the_sidebar(browser):
    page = open_page(browser, CHAPTERS[0], viewport=DESKTOP)
    sidebar = page.locator("#pst-primary-sidebar")
    assert sidebar.is_visible()
    button = page.locator("button.primary-toggle:visible")
    assert button.count() == 1
    button.click()
    sidebar.wait_for(state="hidden", timeout=5000)
    assert page.locator("dialog[open]").count() == 0  # collapsed in place, not opened as a dialog
    button.click()
    sidebar.wait_for(state="visible", timeout=5000)
    page.context.close()


@pytest.mark.parametrize("entry", ENTRIES)
def test_no_horizontal_overflow_on_a_phone(browser, entry):
    page = open_page(browser, entry, phone=True)
    page.wait_for_load_state("load")
    page.evaluate("() => window.MathJax && MathJax.startup ? MathJax.startup.promise : null")
    width = page.evaluate("document.documentElement.scrollWidth")
    wide = page.evaluate("""() => [...document.querySelectorAll('article *')].filter(e => {
        const r = e.getBoundingClientRect(); return r.width > 0 && r.right > window.innerWidth + 1;
      }).slice(0, 5).map(e => e.tagName + '.' + e.className)""")
    assert width <= PHONE["width"], f"{entry}: the page is {width} px wide at 390 px ({wide})"
    page.context.close()


@pytest.mark.parametrize("entry", CHAPTERS)
def test_explorers_on_a_phone_use_the_narrow_layout_with_legible_labels(browser, entry):
    page = open_page(browser, entry, phone=True)
    explorers = page.locator("div.ssmbook-explorer")
    assert explorers.count() >= 1
    for k in range(explorers.count()):
        ex = explorers.nth(k)
        ex.scroll_into_view_if_needed()
        data = ex.evaluate("e => JSON.parse(e.querySelector('script.ssmbook-explorer-data').textContent)")
        img = ex.locator("img.ssmbook-explorer-frame")
        assert frame_loaded(img)
        layout = data.get("narrow") or data
        if data.get("narrow"):
            assert ex.get_attribute("data-layout") == "narrow", f"{entry}: explorer {k} shows the wide layout"
        shown = img.evaluate("i => i.getBoundingClientRect().width")
        assert img.evaluate("i => i.getBoundingClientRect().right") <= PHONE["width"]
        # smallest label as rendered: its size in the picture's CSS pixels times the picture's scale
        label_px = layout["font_px"] * shown / layout["size"][0]
        print(f"{entry} explorer {k}: {shown:.0f} px wide, smallest label {label_px:.1f} px")
        assert label_px >= 9, f"{entry}: explorer {k}: labels render at {label_px:.1f} px on a phone"
        # a slider move on the phone loads the next narrow frame
        s = ex.locator("input[type=range]").first
        cur, hi = int(s.input_value()), int(s.get_attribute("max"))
        before = img.get_attribute("src")
        s.evaluate("(el, v) => { el.value = v; el.dispatchEvent(new Event('input', {bubbles: true})); }",
                   hi if cur != hi else 0)
        assert img.get_attribute("src") != before
        assert frame_loaded(img)
        assert img.evaluate("i => i.naturalWidth") == 2 * layout["size"][0]  # drawn at 2x
    page.context.close()
