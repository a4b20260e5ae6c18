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
    figures = re.findall(r'<img[^>]+src="(?:\.\./_images/[^"]+\.(?:png|svg|webp)|data:image/png;base64,)', text)
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
def test_site_is_the_student_edition_and_teacher_pages_keep_the_solutions(entry):
    """The published page has its exercises and no solutions; the teacher's copy has them all."""
    text = built_page(entry).read_text(encoding="utf-8")
    assert 'name="ssmbook-edition" content="student"' in text, (
        f"{entry}: the site still holds its solutions; `make print` takes them out")
    exercises = re.findall(r'<div class="[^"]*\bexercise\b[^"]*"', text)
    assert len(exercises) >= 4, f"{entry}: {len(exercises)} exercises"
    assert not re.findall(r'<div class="[^"]*\bsolution\b', text), f"{entry}: a solution is on the site"
    teacher = HTML.parent / "teacher" / "pages" / (entry + ".html")
    kept = re.findall(r'<div class="([^"]*\bsolution\b[^"]*)"', teacher.read_text(encoding="utf-8"))
    assert len(kept) >= len(exercises), f"{entry}: {len(kept)} solutions kept for {len(exercises)} exercises"
    assert all("dropdown" in cls.split() for cls in kept), f"{entry}: a kept solution has no toggle"


@pytest.mark.parametrize("entry", CHAPTERS)
def test_chapter_has_references_and_no_error_output(entry):
    text = built_page(entry).read_text(encoding="utf-8")
    assert re.search(r'class="[^"]*citation', text) or 'id="id' in text, f"{entry}: no bibliography entries"
    assert "Traceback (most recent call last)" not in text, f"{entry}: an error was rendered"


@pytest.mark.parametrize("entry", CHAPTERS)
def test_chapter_has_static_explorer(entry):
    text = built_page(entry).read_text(encoding="utf-8")
    assert 'class="ssmbook-explorer"' in text, f"{entry}: no static explorer in the page"


# ---------------------------------------------------------------- weight and site furniture

PAGE_LIMIT = 600_000  # bytes of HTML per chapter page
SITE_LIMIT = 25_000_000  # bytes in _build/html, the downloads below left out
# Files a reader downloads on purpose, not pages a visit loads: the decks, the PDF and the
# one-page print version it is printed from (`make slides`, `make print`).  Printed, not limited.
DOWNLOADS = ("slides", "ssmbook.pdf", "print.html")


def site_files(downloads=False):
    files = [p for p in HTML.rglob("*") if p.is_file()]
    return [p for p in files if (p.relative_to(HTML).parts[0] in DOWNLOADS) == downloads]


def test_sizes_of_pages_and_site(capsys):
    rows = [(e, built_page(e).stat().st_size) for e in ENTRIES]
    total = sum(p.stat().st_size for p in site_files())
    downloads = sum(p.stat().st_size for p in site_files(downloads=True))
    folders = {}
    for p in site_files():
        top = p.relative_to(HTML).parts
        key = "/".join(top[:2]) if top[0] in ("_images", "_static") and len(top) > 2 else top[0]
        folders[key] = folders.get(key, 0) + p.stat().st_size
    with capsys.disabled():
        print("\nbuilt page sizes (bytes of HTML):")
        for e, size in rows:
            print(f"  {e:32s} {size:10,d}")
        print("largest parts of _build/html:")
        for key, size in sorted(folders.items(), key=lambda kv: -kv[1])[:8]:
            print(f"  {key:32s} {size:10,d}")
        print(f"  {'_build/html without downloads':32s} {total:10,d}")
        print(f"  {'downloads (slides, PDF, print)':32s} {downloads:10,d}")
        print(f"  {'_build/html in all':32s} {total + downloads:10,d}")
    for e, size in rows:
        if e in CHAPTERS:
            assert size <= PAGE_LIMIT, f"{e}: {size:,d} bytes of HTML (limit {PAGE_LIMIT:,d})"
    assert total <= SITE_LIMIT, f"_build/html holds {total:,d} bytes (limit {SITE_LIMIT:,d})"


def base_url():
    url = config()["html"]["baseurl"]
    assert url.endswith("/")
    return url


def soup(entry):
    from bs4 import BeautifulSoup

    return BeautifulSoup(built_page(entry).read_text(encoding="utf-8"), "html.parser")


def test_404_page_has_absolute_links_under_the_site_path():
    from urllib.parse import urlparse

    page = HTML / "404.html"
    assert page.exists(), "no 404.html"
    text = page.read_text(encoding="utf-8")
    assert "Page not found" in text or "404" in text
    prefix = urlparse(base_url()).path  # "/ssmbook/"
    stylesheets = re.findall(r'<link rel="stylesheet"[^>]*href="([^"]+)"', text)
    assert stylesheets and all(h.startswith(prefix + "_static/") for h in stylesheets), stylesheets


def test_sitemap_lists_every_page_under_the_base_url():
    import xml.etree.ElementTree as ET

    tree = ET.parse(HTML / "sitemap.xml")
    ns = {"s": "http://www.sitemaps.org/schemas/sitemap/0.9"}
    locs = {e.text for e in tree.getroot().findall("s:url/s:loc", ns)}
    expected = {base_url() + e + ".html" for e in ENTRIES}
    assert expected <= locs, f"missing from sitemap.xml: {sorted(expected - locs)}"
    assert not any(u.endswith(("search.html", "genindex.html", "404.html")) for u in locs)


@pytest.mark.parametrize("entry", ENTRIES)
def test_page_has_favicon_opengraph_and_license(entry):
    s = soup(entry)
    icon = s.find("link", rel="icon")
    assert icon is not None, f"{entry}: no favicon link"
    assert (built_page(entry).parent / icon["href"]).resolve().exists(), icon["href"]
    og = {m["property"]: m["content"] for m in s.find_all("meta", property=re.compile("^og:"))}
    assert og.get("og:title"), f"{entry}: no og:title"
    assert og.get("og:url") == base_url() + entry + ".html"
    assert og.get("og:description")
    image = og.get("og:image", "")
    assert image.startswith(base_url()), f"{entry}: og:image {image!r}"
    assert (HTML / image[len(base_url()):]).exists(), f"{entry}: og:image file missing: {image}"
    footers = s.find_all("footer")
    assert any("MIT License" in f.get_text() for f in footers), f"{entry}: no license in the footer"


def chapter_numbers():
    """Chapter entry -> its number in the sidebar (1, 2, ...) as the built intro page shows it."""
    s = soup(ENTRIES[0])
    nav = s.find("nav", class_="bd-docs-nav")
    assert nav is not None, "no sidebar navigation"
    numbers = {}
    for a in nav.find_all("a", class_="reference"):
        m = re.match(r"\s*(\d+)\.\s", a.get_text())
        if m:
            numbers["book/" + a["href"].split("/")[-1].removesuffix(".html")] = int(m.group(1))
    return numbers


def numbered_entries():
    """The files of the _toc.yml parts marked ``numbered: true``, in order."""
    import yaml

    from book_layout import ROOT

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [c["file"] for part in toc.get("parts", []) if part.get("numbered")
            for c in part.get("chapters", [])]


def test_chapters_are_numbered_in_order():
    numbers = chapter_numbers()
    entries = numbered_entries()
    assert len(entries) >= 8
    assert [numbers.get(e) for e in entries] == list(range(1, len(entries) + 1)), numbers
    for entry in entries:
        h1 = soup(entry).select_one("article.bd-article h1")
        assert h1.get_text().strip().startswith(f"{numbers[entry]}."), f"{entry}: h1 {h1.get_text()!r}"


@pytest.mark.parametrize("entry", ENTRIES)
def test_chapter_n_links_point_at_chapter_n(entry):
    numbers = chapter_numbers()
    for a in soup(entry).find_all("a", href=True):
        m = re.fullmatch(r"\s*[Cc]hapters? (\d+)\s*", a.get_text())
        target = re.match(r"(?:\.\./)*(?:book/)?(\d\d_\w+)\.html", a["href"])
        if m and target:
            assert numbers.get("book/" + target.group(1)) == int(m.group(1)), \
                f"{entry}: link {a.get_text()!r} points at {a['href']}"


# Pictures that share their cell with another display output (a Markdown table): myst-nb would
# wrap that output in the same figure and caption, so these carry alt text only
# (scripts/figure_metadata.py, entries without a caption), and the text around them explains them.
UNCAPTIONED = {"book/06_parallel_scan": 1}

HASH_ALT = re.compile(r"(?:\.\./)*_images/[0-9a-f]{16,}\.\w+|[0-9a-f]{32,}")


@pytest.mark.parametrize("entry", CHAPTERS)
def test_chapter_figures_have_captions_and_real_alt_text(entry):
    s = soup(entry)
    figures = uncaptioned = 0
    for out in s.find_all("div", class_="cell_output"):
        for img in out.find_all("img"):
            if "ssmbook-explorer-frame" in img.get("class", []):
                continue
            alt = img.get("alt", "")
            assert alt and not HASH_ALT.fullmatch(alt), f"{entry}: figure {img.get('src')} has alt {alt!r}"
            assert len(alt.split()) >= 8, f"{entry}: alt text too short to describe the figure: {alt!r}"
            fig = img.find_parent("figure")
            if fig is None or not fig.find("figcaption"):
                uncaptioned += 1
            figures += 1
    assert figures >= 1, f"{entry}: no drawn figures found"
    assert uncaptioned == UNCAPTIONED.get(entry, 0), f"{entry}: {uncaptioned} figures without a caption"


@pytest.mark.parametrize("entry", CHAPTERS)
def test_no_widget_state_and_explorer_frames_in_files(entry):
    text = built_page(entry).read_text(encoding="utf-8")
    assert "application/vnd.jupyter.widget-state+json" not in text, f"{entry}: unused widget state"
    blocks = re.findall(r'<script type="application/json" class="ssmbook-explorer-data">(.*?)</script>', text, re.S)
    assert blocks, f"{entry}: no explorer data"
    import json

    for block in blocks:
        data = json.loads(block)
        assert data.get("files") is True, f"{entry}: explorer frames still inline"
        for layout in (data, data.get("narrow")):
            if layout:
                for name in layout["frames"].values():
                    assert (HTML / "_images" / "explorers" / name).exists(), f"{entry}: missing frame {name}"
    # the explorer script names the inline form ('data:image/png;base64,' + frame) for notebooks
    assert "data:image/png;base64" not in text.replace("'data:image/png;base64,'", ""), \
        f"{entry}: an inline base64 image is left"


def test_one_mathjax_copy_at_the_stable_path():
    copies = [p for p in site_files() if p.name in ("tex-chtml.js", "tex-chtml-full.js", "tex-mml-chtml.js")]
    assert [p.relative_to(HTML).as_posix() for p in copies] == ["_static/mathjax/tex-chtml.js"], copies
    for entry in CHAPTERS:
        assert "_static/mathjax/tex-chtml.js" in built_page(entry).read_text(encoding="utf-8")
    assert not any(p.suffix == ".map" for p in site_files()), "source maps in the site"
