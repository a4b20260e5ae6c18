"""The pieces of the slide and print scripts that need no built book."""
import json

import make_print
import make_slides
import pytest
import ssmbook_bib
from bs4 import BeautifulSoup
from pybtex.database import parse_string

BIB = parse_string(
    """
@article{one2001, author = {Rabiner, Lawrence R.}, title = {T}, year = {1989}}
@article{two2024, author = {Gu, Albert and Dao, Tri}, title = {M}, year = {2024}}
@article{many2020, author = {Gu, Albert and Dao, Tri and Ermon, Stefano}, title = {H}, year = {2020}}
@article{twin2024, author = {Gu, Albert and Dao, Tri}, title = {N}, year = {2024}}
""",
    "bibtex",
).entries


def test_labels_are_author_year_like_the_citations():
    style = ssmbook_bib.AuthorYearLabelStyle()
    entries = [BIB[k] for k in ("one2001", "two2024", "many2020", "twin2024")]
    assert list(style.format_labels(entries)) == [
        "Rabiner, 1989", "Gu and Dao, 2024a", "Gu et al., 2020", "Gu and Dao, 2024b"]


@pytest.fixture
def chapter():
    return make_slides.Chapter("book/05_selective", BIB, "https://example.org/book-site/",
                               {"ch5-ex2": "5.2"})


def test_slide_text_cites_author_year_and_links_the_published_pages(chapter):
    text = chapter.text("as {cite:t}`two2024` and {cite:p}`one2001,many2020` show; "
                        "see [chapter 4](04_s4.ipynb#hippo), the [notation](notation.md), "
                        "{term}`selectivity <selective>` and {numref}`ch5-ex2`.")
    assert "Gu and Dao (2024)" in text and "Rabiner (1989); Gu et al. (2020)" in text
    assert "(https://example.org/book-site/book/04_s4.html#hippo)" in text
    assert "(https://example.org/book-site/book/notation.html)" in text
    assert "selectivity" in text and "{term}" not in text
    assert "[Exercise 5.2](https://example.org/book-site/book/05_selective.html#ch5-ex2)" in text
    with pytest.raises(SystemExit, match="unknown citation key"):
        chapter.text("{cite:p}`nobody1900`")


def test_slide_math_is_delimited_so_that_brackets_stay_prose():
    out = make_slides.render("The model (HMM) has $x_t$ and [a note].\n\n$$\ny = Cx\n$$")
    assert "\\(x_t\\)" in out and "\\[y = Cx\\]" in out
    assert "(HMM)" in out and "[a note]" in out
    assert '["\\\\(", "\\\\)"]' in make_slides.MATHJAX and '"$"' not in make_slides.MATHJAX


def test_long_prose_goes_to_the_notes_and_lists_stay():
    src = "## Title\n\n" + "word " * 60 + "\n\n- one\n- two\n\nShort line."
    blocks = make_slides.lead_ins(make_slides.blocks(src))
    spoken = [b for b in blocks if make_slides.is_prose(b) and make_slides.words(b) > make_slides.MAX_SLIDE_WORDS]
    assert len(spoken) == 1 and spoken[0].startswith("word")
    assert "Short line." not in spoken and any(b.startswith("- one") for b in blocks)


def test_solutions_and_directives_are_stripped():
    src = "Intro.\n\n````{solution} ch5-ex2\n:class: dropdown\nThe answer.\n````\n\nAfter."
    out = make_slides.strip_directives(src)
    assert "answer" not in out and "Intro." in out and "After." in out


def _explorer(frames, first_src, files=False):
    data = {"params": [{"name": "delta", "labels": ["0.1", "0.3", "1", "3"]},
                       {"name": "N", "labels": ["2", "4"]}], "frames": frames}
    if files:
        data["files"] = True
    return BeautifulSoup(
        '<div><div class="ssmbook-explorer" data-frame="1_0">'
        '<input type="range" data-param="delta" aria-label="Δ scale"><output>0.3</output>'
        f'<img class="ssmbook-explorer-frame" src="{first_src}">'
        f'<script type="application/json" class="ssmbook-explorer-data">{json.dumps(data)}</script>'
        "<script>swap()</script><div>Static version: every slider position was drawn</div></div></div>",
        "html.parser")


@pytest.mark.parametrize("files", [False, True], ids=["inline", "files"])
def test_explorer_prints_as_a_grid_of_frames_with_their_values(files):
    keys = [f"{i}_{j}" for i in range(4) for j in range(2)]
    frames = {k: (f"f{k}.png" if files else "QUJD" * 40) for k in keys}
    soup = _explorer(frames, "../_images/explorers/f1_0.png" if files else "data:image/png;base64,QUJD", files)
    make_print.explorer_grid(soup.find("div", class_="ssmbook-explorer"), soup, "book")
    caps = [c.get_text() for c in soup.find_all("figcaption")]
    assert caps == [f"Δ scale = {d}, N = {n}" for d in ("0.1", "1", "3") for n in ("2", "4")]
    srcs = [i["src"] for i in soup.find_all("img")]
    if files:
        assert srcs[0] == "_images/explorers/f0_0.png" and all(s.startswith("_images/explorers/") for s in srcs)
    else:
        assert all(s.startswith("data:image/png;base64,") for s in srcs)
    html = str(soup)
    assert "<script" not in html and "<input" not in html and "Static version" not in html
