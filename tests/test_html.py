"""Tests on the built book (`make book` first; `make test` does both)."""
import re

import pytest

from book_layout import HTML, built_page, chapter_entries, config, toc_files

pytestmark = pytest.mark.html

ENTRIES = toc_files()
CHAPTERS = chapter_entries()


@pytest.mark.parametrize("entry", ENTRIES)
def test_page_exists_for_every_toc_entry(entry):
    page = built_page(entry)
    assert page.exists(), f"{entry}: no built page {page}"
    assert "<h1" in page.read_text(encoding="utf-8")


@pytest.mark.parametrize("entry", CHAPTERS)
def test_chapter_has_figures(entry):
    text = built_page(entry).read_text(encoding="utf-8")
    figures = re.findall(r'<img[^>]+src="(?:\.\./_images/[^"]+\.(?:png|svg)|data:image/png;base64,)', text)
    assert len(figures) >= 2, f"{entry}: expected executed figures in the page, found {len(figures)}"
    for src in re.findall(r'<img[^>]+src="(\.\./_images/[^"]+)"', text):
        assert (HTML / "book" / src).resolve().exists(), f"{entry}: missing image {src}"


@pytest.mark.parametrize("entry", CHAPTERS)
def test_chapter_has_colab_link(entry):
    url = config()["repository"]["url"].rstrip("/")
    slug = url.split("github.com/")[1]
    # the Colab button opens the converted notebook on the Colab branch (scripts/colab_launch.py)
    branch = config()["launch_buttons"]["colab_branch"]
    text = built_page(entry).read_text(encoding="utf-8")
    expected = f"https://colab.research.google.com/github/{slug}/blob/{branch}/{entry}.ipynb"
    assert expected in text, f"{entry}: no Colab launch link {expected}"


@pytest.mark.parametrize("entry", CHAPTERS)
def test_solutions_present_but_hidden(entry):
    text = built_page(entry).read_text(encoding="utf-8")
    solutions = re.findall(r'<div class="([^"]*\bsolution\b[^"]*)"', text)
    exercises = re.findall(r'<div class="[^"]*\bexercise\b[^"]*"', text)
    assert len(exercises) >= 4, f"{entry}: {len(exercises)} exercises"
    assert len(solutions) >= len(exercises), f"{entry}: {len(solutions)} solutions for {len(exercises)} exercises"
    for cls in solutions:
        assert "dropdown" in cls.split(), f"{entry}: a solution is not hidden behind a toggle ({cls})"


@pytest.mark.parametrize("entry", CHAPTERS)
def test_chapter_has_references_and_no_error_output(entry):
    text = built_page(entry).read_text(encoding="utf-8")
    assert re.search(r'class="[^"]*citation', text) or 'id="id' in text, f"{entry}: no bibliography entries"
    assert "Traceback (most recent call last)" not in text, f"{entry}: an error was rendered"


@pytest.mark.parametrize("entry", CHAPTERS)
def test_chapter_has_static_explorer(entry):
    text = built_page(entry).read_text(encoding="utf-8")
    assert 'class="ssmbook-explorer"' in text, f"{entry}: no static explorer in the page"
