"""The teaching kit on disk: decks, the guide's exercise numbers, the printed book in both editions.

Built by `make book slides print`.  The decks in a browser: tests/book/test_slides_browser.py.
"""
import base64
import hashlib
import re

import nbformat
import pytest
from book_layout import HTML, ROOT, chapter_entries, source_of, toc_files

pytestmark = pytest.mark.html

SLIDES = HTML / "slides"
EXECUTED = ROOT / "_build" / "jupyter_execute"
STUDENT_PDF = HTML / "ssmbook.pdf"
TEACHER_PDF = ROOT / "_build" / "teacher" / "ssmbook-teacher.pdf"
CHAPTERS = chapter_entries()


def _numbered_entries():
    """Chapters in the parts of _toc.yml marked numbered: true."""
    import yaml

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return {c["file"] for part in toc.get("parts", []) if part.get("numbered")
            for c in part.get("chapters", []) if "file" in c}


NUMBERED = _numbered_entries()
RAW_MYST = ["{cite", "{exercise", "{solution", "{numref", "{ref}", "{term}", "```{", "````{", ":label:"]
# what an explorer's controls leave behind when printed as a web page
SLIDER_DEBRIS = ["Static version: every slider position", "aria-label", 'type="range"']


def deck_of(entry):
    return SLIDES / (entry.split("/")[-1] + ".slides.html")


def exercise_numbers_on_page(entry):
    """label -> number as the built chapter page prints it ("Exercise 5.2")."""
    text = (HTML / (entry + ".html")).read_text(encoding="utf-8")
    return dict(re.findall(r'id="([\w-]+)"[^>]*>\s*<p class="admonition-title">\s*'
                           r'<span class="caption-number">Exercise ([\d.]+)', text))


def exercise_labels_in_source(entry):
    nb = nbformat.read(source_of(entry), as_version=4)
    return [lab for c in nb.cells if c.cell_type == "markdown"
            for lab in re.findall(r"\{exercise\}[^\n]*\n:label: ([\w-]+)", c.source)]


def chapter_number(entry):
    text = (HTML / (entry + ".html")).read_text(encoding="utf-8")
    m = re.search(r'<h1>\s*<span class="section-number">(\d+)\.', text)
    return m and m.group(1)


# ---------------------------------------------------------------- exercise numbering
@pytest.mark.parametrize("entry", CHAPTERS)
def test_exercises_are_numbered_per_chapter(entry):
    labels = exercise_labels_in_source(entry)
    assert labels, f"{entry}: no exercises"
    numbers = exercise_numbers_on_page(entry)
    chapter = chapter_number(entry)
    if not chapter and entry not in NUMBERED:
        pytest.skip(f"{entry} is in a part of _toc.yml that is not numbered: no chapter number to print")
    assert chapter, f"{entry}: the built page's title carries no chapter number (numbered: true in _toc.yml?)"
    want = {lab: f"{chapter}.{k}" for k, lab in enumerate(labels, 1)}
    assert numbers == want, f"{entry}: exercises numbered {numbers}, expected {want}"


def test_every_exercise_the_guide_names_exists_with_that_number():
    guide = (HTML / "book" / "instructor_guide.html").read_text(encoding="utf-8")
    links = re.findall(r'<a class="reference internal" href="([\w.]+)#([\w-]+)"[^>]*>'
                       r'<span class="std std-numref">Exercise ([\d.]+)</span></a>', guide)
    assert len(links) >= 4 * 8, f"the guide names only {len(links)} exercises"
    pages = {}
    for page, label, number in links:
        entry = "book/" + page.removesuffix(".html")
        pages.setdefault(entry, exercise_numbers_on_page(entry))
        assert pages[entry].get(label) == number, (
            f"the guide says Exercise {number} for {label}; {page} prints {pages[entry].get(label)}")
    text = re.sub(r"<[^>]+>", " ", guide)
    assert not re.search(r"\bexercise\s+Exercise\b", text, re.IGNORECASE), "doubled 'exercise Exercise' in the guide"
    assert not re.search(r"^\s*(exercise|stability)\s*\(★+\)\.?\s*$", text, re.MULTILINE), "a leftover fragment"


@pytest.mark.parametrize("entry", CHAPTERS)
def test_chapters_do_not_say_exercise_twice(entry):
    text = re.sub(r"<[^>]+>", " ", (HTML / (entry + ".html")).read_text(encoding="utf-8"))
    assert not re.search(r"\bexercise\s+Exercise\b", " ".join(text.split()), re.IGNORECASE)


def test_reference_labels_match_the_in_text_form():
    """[Gu and Dao, 2024] in the text and in the list of references, not [GD24]."""
    for entry in CHAPTERS:
        text = (HTML / (entry + ".html")).read_text(encoding="utf-8")
        labels = re.findall(r'<span class="label"><span class="fn-bracket">\[</span>(.*?)'
                            r'<span class="fn-bracket">\]</span>', text)
        assert labels, f"{entry}: no reference list"
        for lab in (re.sub(r"<[^>]+>", "", lab) for lab in labels):
            assert re.fullmatch(r".+, (\d{4}|n\.d\.)[a-z]?", lab), f"{entry}: reference label [{lab}]"


# ---------------------------------------------------------------- decks on disk
@pytest.mark.parametrize("entry", CHAPTERS)
def test_deck_is_a_lecture_not_a_dump(entry):
    deck = deck_of(entry)
    assert deck.exists(), f"no deck {deck}: run `make slides`"
    text = deck.read_text(encoding="utf-8")
    n = len(re.findall(r"<section>(?!<section)", text))
    assert 8 <= n <= 60, f"{deck.name}: {n} slides"
    assert text.count('<aside class="notes">') >= 3, f"{deck.name}: too few speaker notes"
    visible = re.sub(r'<aside class="notes">.*?</aside>', "", text, flags=re.DOTALL)
    for raw in RAW_MYST:
        assert raw not in visible, f"{deck.name}: raw MyST {raw!r} on a slide"
    assert not re.search(r"Out\s*\[\d*\]:|In\s*\[\d*\]:", visible), f"{deck.name}: a cell prompt"
    assert not re.search(r'(?:src|href)="https?://(?!ssmbook)[^"]*\.js', text), f"{deck.name}: a CDN script"
    assert 'src="reveal.js/dist/reveal.js"' in text and 'src="../_static/mathjax/tex-chtml.js"' in text
    assert not re.search(r'href="[^"#:]*\.(ipynb|md)\b', text), f"{deck.name}: a link to a source file"
    # figures: every figure of a cell the chapter tags for slides is on a slide
    nb = nbformat.read(EXECUTED / (entry + ".ipynb"), as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.metadata.get("slideshow", {}).get("slide_type") not in (None, "skip"):
            for out in cell.get("outputs", []):
                png = out.get("data", {}).get("image/png")
                if png:
                    # the deck shows the site's file of the figure (named by the SHA-256 of its bytes)
                    name = hashlib.sha256(base64.b64decode(png)).hexdigest() + ".png"
                    assert f'src="../_images/{name}"' in text, f"{deck.name}: a tagged figure is missing"
                    assert (HTML / "_images" / name).exists(), f"{deck.name}: figure file {name} missing"


@pytest.mark.parametrize("entry", CHAPTERS)
def test_decks_show_no_solutions_and_number_exercises_like_the_book(entry):
    text = deck_of(entry).read_text(encoding="utf-8")
    numbers = exercise_numbers_on_page(entry)
    shown = re.findall(r"Exercise (\d+\.\d+)", re.sub(r"<[^>]+>", "", text))
    assert set(shown) >= set(numbers.values()), f"{entry}: deck lists {sorted(set(shown))}"
    assert set(shown) <= set(numbers.values()) | {n for e in CHAPTERS for n in exercise_numbers_on_page(e).values()}
    assert "Solution" not in re.sub(r"<[^>]+>", "", text)


def test_deck_libraries_are_there():
    assert (SLIDES / "reveal.js" / "dist" / "reveal.js").exists()
    assert (SLIDES / "reveal.js" / "plugin" / "notes" / "notes.js").exists()
    assert (HTML / "_static" / "mathjax" / "tex-chtml.js").exists()


def test_slide_notes_cells_are_not_in_the_book():
    for entry in CHAPTERS:
        nb = nbformat.read(source_of(entry), as_version=4)
        for cell in nb.cells:
            if cell.metadata.get("slideshow", {}).get("slide_type") == "notes":
                assert "remove-cell" in cell.metadata.get("tags", []), f"{entry}: a notes cell shown in the book"


# ---------------------------------------------------------------- the printed book
def _print_page(edition):
    return HTML / "print.html" if edition == "student" else ROOT / "_build" / "teacher" / "print.html"


@pytest.mark.parametrize("edition", ["student", "teacher"])
def test_print_page(edition):
    page = _print_page(edition)
    assert page.exists(), "no print page: run `make print`"
    text = page.read_text(encoding="utf-8")
    ids = re.findall(r'<section class="ssmbook-page" id="([^"]+)"', text)
    assert len(ids) == len(toc_files())
    base = page.parent
    for src in re.findall(r'<img[^>]+src="(?!data:)([^"]+)"', text):
        assert (base / src).exists(), f"{page.name}: missing image {src}"
    assert len(re.findall(r"<img", text)) >= 2 * len(CHAPTERS)
    # one MathJax, the site's; no explorer frame data the page never shows; no scripts from the site
    assert text.count("tex-chtml.js") == 1 and "_static/mathjax/tex-chtml.js" in text
    assert "ssmbook-explorer-data" not in text and 'type="range"' not in text
    assert text.count("<script") == 2, "only the MathJax configuration and MathJax itself"
    grids = re.findall(r'<div class="ssmbook-print-explorer">.*?</div></div>', text, re.DOTALL)
    assert len(grids) >= len(CHAPTERS), f"{page.name}: only {len(grids)} printed explorers"
    for g in grids:
        caps = re.findall(r"<figcaption>([^<]*)</figcaption>", g)
        assert 2 <= len(caps) <= 6 and all(" = " in c for c in caps), f"explorer grid captions {caps}"
    solutions = len(re.findall(r'class="[^"]*\bsolution\b', text))
    if edition == "student":
        assert solutions == 0, f"the student edition has {solutions} solutions"
    else:
        assert solutions >= 3 * len(CHAPTERS), f"the teacher edition has only {solutions} solutions"


def _outline_depth(items, depth=1):
    best = depth if items else depth - 1
    for it in items:
        if isinstance(it, list):
            best = max(best, _outline_depth(it, depth + 1))
    return best


@pytest.mark.parametrize("pdf", [STUDENT_PDF, TEACHER_PDF], ids=["student", "teacher"])
def test_pdf_outline_page_labels_and_text(pdf):
    from pypdf import PdfReader

    assert pdf.exists(), f"no {pdf}: run `make print`"
    r = PdfReader(str(pdf))
    n = len(r.pages)
    assert n >= 3 * len(CHAPTERS)
    # bookmarks: cover, contents and every chapter, with sections below the chapters
    titles = []

    def walk(items):
        for it in items:
            if isinstance(it, list):
                walk(it)
            else:
                titles.append(" ".join(it.title.split()))

    walk(r.outline)
    assert _outline_depth(r.outline) >= 2
    for entry in CHAPTERS:
        num = chapter_number(entry)
        if not num and entry not in NUMBERED:
            continue
        assert any(t.startswith((f"{num}. ", f"{num} ")) for t in titles), \
            f"{pdf.name}: no bookmark for chapter {num}"
    assert "Contents" in titles and "Cover" in titles
    # page labels: front matter i, ii, ...; the book from 1, and the footer prints that number
    labels = r.page_labels
    assert labels[0] == "i"
    first = labels.index("1")
    assert first >= 2, "cover and contents come before page 1"
    assert labels[first:] == [str(k) for k in range(1, n - first + 1)]
    for k in (first, first + 7, n - 1):
        lines = [ln.strip() for ln in r.pages[k].extract_text().splitlines() if ln.strip()]
        assert lines and lines[-1] == labels[k], f"{pdf.name}: page {k} footer {lines[-1:]}, label {labels[k]}"
    # the contents page gives each chapter's page
    toc = r.pages[1].extract_text() + (r.pages[2].extract_text() if first > 2 else "")
    assert "Contents" in toc
    text = "\n".join(p.extract_text() for p in r.pages)
    for raw in RAW_MYST + SLIDER_DEBRIS:
        assert raw not in text, f"{pdf.name}: {raw!r} in the printed text"
    assert not re.search(r"\[[A-Z][A-Za-z+]*\d\d\]", text), f"{pdf.name}: an alpha-style citation label"
    has_solutions = "Solution to" in text
    assert has_solutions == (pdf == TEACHER_PDF)
