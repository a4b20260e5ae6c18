"""The teaching kit: slide decks per chapter and the printable book (built by `make slides print`)."""
import base64
import json
import re

import nbformat
import pytest

from book_layout import HTML, ROOT, chapter_entries, toc_files

pytestmark = pytest.mark.html

SLIDES = ROOT / "_build" / "slides"
EXECUTED = ROOT / "_build" / "jupyter_execute"
PDF = ROOT / "_build" / "print" / "ssmbook.pdf"
CHAPTERS = chapter_entries()


def _figures(entry):
    nb = nbformat.read(EXECUTED / (entry + ".ipynb"), as_version=4)
    in_solution = False
    figs = []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            in_solution = ("{solution-start}" in cell.source) or (in_solution and "{solution-end}" not in cell.source)
            continue
        if in_solution:
            continue
        for out in cell.get("outputs", []):
            png = out.get("data", {}).get("image/png")
            if png:
                figs.append(png.replace("\n", ""))
    return figs


@pytest.mark.parametrize("entry", CHAPTERS)
def test_every_chapter_has_a_deck_with_its_figures(entry):
    deck = SLIDES / (entry.split("/")[-1] + ".slides.html")
    assert deck.exists(), f"no deck {deck}: run `make slides`"
    text = deck.read_text(encoding="utf-8")
    assert len(re.findall(r"<section", text)) >= 5, f"{deck.name}: fewer than 5 slides"
    figs = _figures(entry)
    assert figs, f"{entry}: the executed chapter has no figures"
    missing = [i for i, f in enumerate(figs) if f[:200] not in text]
    assert not missing, f"{deck.name}: figures {missing} of {len(figs)} are not in the deck"
    # offline: reveal.js and MathJax are local, no CDN scripts
    assert 'src="reveal.js/dist/reveal.js"' in text or "reveal.js/dist/reveal.js" in text
    assert not re.search(r'<script[^>]+src="https?://', text), f"{deck.name}: loads a script from the network"
    assert "{solution" not in text and "{bibliography}" not in text


def test_deck_libraries_are_there():
    assert (SLIDES / "reveal.js" / "dist" / "reveal.js").exists()
    assert (SLIDES / "mathjax" / "tex-chtml.js").exists()


def test_print_page_has_every_page_in_order_with_figures():
    page = HTML / "print.html"
    assert page.exists(), "no print page: run `make print`"
    text = page.read_text(encoding="utf-8")
    ids = re.findall(r'<section class="ssmbook-page" id="([^"]+)"', text)
    assert len(ids) == len(toc_files())
    for src in re.findall(r'<img[^>]+src="(_images/[^"]+)"', text):
        assert (HTML / src).exists(), f"print page: missing image {src}"
    assert len(re.findall(r"<img", text)) >= 2 * len(CHAPTERS)
    assert "_vendor/mathjax/tex-chtml.js" in text and (HTML / "_vendor/mathjax/tex-chtml.js").exists()
    assert ".solution { display: none" in text  # the student printout hides solutions


def test_pdf_exists_and_has_pages():
    assert PDF.exists(), "no PDF: run `make print`"
    data = PDF.read_bytes()
    assert data[:5] == b"%PDF-"
    pages = len(re.findall(rb"/Type\s*/Page[^s]", data))
    assert pages >= 3 * len(CHAPTERS), f"PDF has only {pages} pages"


@pytest.mark.browser
def test_print_page_renders_math_offline():
    from test_browser import ARGS, CHROMIUM
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        tab = b.new_page()
        tab.route("**/*", lambda r: r.abort() if not r.request.url.startswith("file:") else r.continue_())
        tab.goto((HTML / "print.html").resolve().as_uri())
        tab.wait_for_function("window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=60000)
        tab.evaluate("MathJax.startup.promise")
        rendered = tab.locator("mjx-container").count()
        b.close()
    assert rendered >= 20, f"only {rendered} formulas rendered by MathJax"
