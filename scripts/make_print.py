"""The printed book, in two editions: students' (no solutions) and teachers' (with solutions).

    python scripts/make_print.py [--edition student|teacher|both] [--no-pdf]     # after `make book`

From the built site (_build/html) it writes one HTML page per edition, chapters in _toc.yml order:

* student: _build/html/print.html      ->  _build/html/ssmbook.pdf (published with the site)
* teacher: _build/teacher/print.html   ->  _build/teacher/ssmbook-teacher.pdf

and prints each with headless Chromium (Playwright, Debian's /usr/bin/chromium).  The PDF has a
cover, a table of contents with page numbers, bookmarks (Chromium's document outline from the
headings), page numbers in the footer that match the PDF's page labels (front matter i, ii, ...,
the book from 1), the site's chapter, exercise and equation numbers, and explorers printed as a
small grid of frames, each captioned with its slider values.  Math is typeset by the site's own
vendored MathJax (_static/mathjax).  The solutions are taken out of the student edition's page,
not just hidden.

The published site is the students' edition too: before printing, the solutions are taken out of
the site's chapter pages (`student_site`), and the pages as built are kept in _build/teacher/pages/
for the teacher edition.
"""
from __future__ import annotations

import argparse
import datetime
import html as htmllib
import itertools
import json
import os
import pathlib
import posixpath
import re
import shutil
import subprocess
import sys

from bs4 import BeautifulSoup

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from book_layout import HTML, config, toc_files

TEACHER = ROOT / "_build" / "teacher"
EDITIONS = {
    "student": {"page": HTML / "print.html", "pdf": HTML / "ssmbook.pdf", "solutions": False},
    "teacher": {"page": TEACHER / "print.html", "pdf": TEACHER / "ssmbook-teacher.pdf", "solutions": True},
}
CHROMIUM = os.environ.get("SSMBOOK_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
MAX_FRAMES = 6

CSS = """
body { font-family: "DejaVu Serif", Georgia, serif; margin: 0; line-height: 1.45; color: #111;
       font-size: 10.5pt; }
h1, h2, h3, h4 { font-family: "DejaVu Sans", Helvetica, sans-serif; line-height: 1.2; break-after: avoid; }
h1 { font-size: 20pt; } h2 { font-size: 14pt; } h3 { font-size: 12pt; }
section.ssmbook-page { break-before: page; }
pre { white-space: pre-wrap; font-size: 8pt; background: #f6f6f6; padding: .4em; border-radius: 3px; }
img { max-width: 100%; break-inside: avoid; }
table { border-collapse: collapse; font-size: 9pt; } td, th { border: 1px solid #ccc; padding: .2em .4em; }
.admonition { border-left: 3px solid #1f5fa8; padding: .2em .8em; margin: .8em 0; background: #f7f9fc;
              break-inside: avoid-page; }
.admonition-title { font-weight: bold; }
.solution { border-left-color: #2e7d32; background: #f5faf5; }
mjx-container[display="true"] { overflow: hidden; }
.ssmbook-print-explorer { break-inside: avoid; margin: .6em 0; }
.ssmbook-print-explorer .grid { display: grid; grid-template-columns: repeat(var(--cols), 1fr); gap: 4mm; }
.ssmbook-print-explorer figure { margin: 0; text-align: center; }
.ssmbook-print-explorer figcaption { font-size: 8pt; font-family: "DejaVu Sans", sans-serif; }
.ssmbook-print-explorer .title { font-weight: bold; font-family: "DejaVu Sans", sans-serif; }
.cover { height: 250mm; display: flex; flex-direction: column; justify-content: center; text-align: center; }
.cover h1 { font-size: 30pt; margin: 0 0 .4em 0; }
.cover .subtitle { font-size: 15pt; margin-bottom: 2em; }
.cover .edition { font-size: 13pt; font-weight: bold; margin: 1.5em 0; }
.cover .meta { font-size: 10pt; color: #444; }
nav.toc h1 { break-before: page; }
nav.toc ol { list-style: none; padding-left: 0; }
nav.toc li { display: flex; align-items: baseline; margin: .2em 0; }
nav.toc li.level-2 { padding-left: 1.5em; font-size: 9.5pt; }
nav.toc li.level-1 { font-weight: bold; margin-top: .6em; }
nav.toc .dots { flex: 1; border-bottom: 1px dotted #888; margin: 0 .4em; }
nav.toc a { color: inherit; text-decoration: none; }
@page { size: A4; margin: 18mm 16mm 20mm 16mm; }
"""

MATHJAX = """<script>
window.MathJax = {
  tex: {inlineMath: [["\\\\(", "\\\\)"]], displayMath: [["\\\\[", "\\\\]"]], processEscapes: true,
        tags: "ams"},
  options: {processHtmlClass: "math|tex2jax_process", ignoreHtmlClass: "tex2jax_ignore|mathjax_ignore|output"}
};
</script>
<script src="%s"></script>"""

FOOTER = ('<div style="width:100%;font-size:8pt;font-family:sans-serif;color:#555;text-align:center;">'
          '<span class="pageNumber"></span></div>')

# what the site prints around the article that makes no sense on paper
DROP = [".headerlink", ".toggle-details", "button", ".copybtn", "#searchbox", ".prev-next-area",
        "script", "noscript", "details.hide.above-input", ".toggle-hidden-button"]


def article(page: pathlib.Path) -> BeautifulSoup:
    soup = BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")
    art = soup.find("article", class_="bd-article")
    if art is None:
        raise SystemExit(f'{page}: no <article class="bd-article"> found')
    return art


def is_base64(value: str) -> bool:
    return len(value) > 100 and re.fullmatch(r"[A-Za-z0-9+/=\s]+", value[:2000]) is not None


def explorer_grid(div, soup, page_dir: str):
    """A static figure for paper: up to MAX_FRAMES frames of an explorer, captioned with their values."""
    data_tag = div.find("script", class_="ssmbook-explorer-data")
    if data_tag is None:
        raise SystemExit(f"{page_dir}: an explorer without its frame data")
    data = json.loads(data_tag.string)
    first = div.find("img", class_="ssmbook-explorer-frame")
    first_src = first.get("src", "") if first is not None else ""
    folder = posixpath.dirname(first_src) if first_src and not first_src.startswith("data:") else None
    params = data["params"]
    start = [int(k) for k in (div.get("data-frame") or "").split("_") if k != ""] or [0] * len(params)
    # each slider's positions to print: evenly spread over its range, at most MAX_FRAMES in all
    per = [1] * len(params)
    budget = MAX_FRAMES
    if len(params) == 1:
        per = [min(4, len(params[0]["labels"]))]
    else:
        per = [min(2, len(p["labels"])) for p in params[:2]] + [1] * (len(params) - 2)
        if len(params[0]["labels"]) > 2 and per[0] * per[1] < budget:
            per[0] = 3
    choices = []
    for i, p in enumerate(params):
        n = len(p["labels"])
        if per[i] == 1:
            choices.append([start[i] if i < len(start) else 0])
        else:
            choices.append(sorted({round(j * (n - 1) / (per[i] - 1)) for j in range(per[i])}))
    title_el = div.find(style=re.compile("font-weight:bold"))
    box = soup.new_tag("div", attrs={"class": "ssmbook-print-explorer"})
    if title_el is not None:
        t = soup.new_tag("div", attrs={"class": "title"})
        t.string = title_el.get_text()
        box.append(t)
    cols = per[1] if len(params) > 1 else min(per[0], 4)
    grid = soup.new_tag("div", attrs={"class": "grid", "style": f"--cols:{max(cols, 1)}"})
    box.append(grid)
    names = [p["name"] for p in params]
    descs = {}
    for inp in div.find_all("input"):
        label = inp.get("aria-label")
        if label:
            descs[inp.get("data-param")] = label
    for combo in itertools.product(*choices):
        key = "_".join(str(k) for k in combo)
        frame = data["frames"].get(key)
        if frame is None:
            continue
        if frame.startswith("data:"):
            src = frame
        elif is_base64(frame):
            src = "data:image/png;base64," + frame
        else:  # a frame file: a URL relative to the page, or a name in the first frame's folder
            if "/" not in frame and folder is not None:
                frame = posixpath.join(folder, frame)
            src = posixpath.normpath(posixpath.join(page_dir, frame))
        fig = soup.new_tag("figure")
        fig.append(soup.new_tag("img", attrs={"src": src, "alt": "explorer frame"}))
        cap = soup.new_tag("figcaption")
        cap.string = ", ".join(f"{descs.get(n, n)} = {params[i]['labels'][k]}" for i, (n, k) in
                               enumerate(zip(names, combo)))
        fig.append(cap)
        grid.append(fig)
    note = soup.new_tag("div", attrs={"style": "font-size:8pt;color:#555"})
    note.string = "Printed frames of an interactive explorer; the web page and the notebook have every slider position."
    box.append(note)
    div.replace_with(box)


STUDENT_MARK = '<meta name="ssmbook-edition" content="student">'


def teacher_copy(entry: str) -> pathlib.Path:
    """Where the page as Sphinx built it (solutions included) is kept for the teacher edition."""
    return TEACHER / "pages" / (entry + ".html")


def drop_divs(text: str, cls: str) -> tuple[str, int]:
    """``text`` without every ``<div>`` whose class list holds ``cls`` (nested divs included).

    The page is cut as text, not re-serialised, so everything else stays byte for byte as
    Sphinx wrote it."""
    opening = re.compile(r'<div\b[^>]*\bclass="([^"]*)"[^>]*>')
    tags = re.compile(r"<div\b|</div>")
    out, pos, removed = [], 0, 0
    for m in opening.finditer(text):
        if m.start() < pos or cls not in m.group(1).split():
            continue
        depth = 0
        for t in tags.finditer(text, m.start()):
            depth += 1 if t.group() == "<div" else -1
            if depth == 0:
                break
        else:
            raise SystemExit(f"unbalanced <div class={m.group(1)!r}> in a built page")
        out.append(text[pos:m.start()])
        pos = t.end()
        removed += 1
    out.append(text[pos:])
    return "".join(out), removed


def student_site() -> int:
    """Take the solutions out of the published site's pages (the site is the students' edition).

    The page as built, with its solutions, is first kept under _build/teacher/pages/ for the
    teacher edition; a page already stripped (it carries STUDENT_MARK) is left as it is, so the
    step can run twice without losing the teacher's copy.  Returns the number of solutions removed.
    """
    removed = 0
    for entry in toc_files():
        page = HTML / (entry + ".html")
        text = page.read_text(encoding="utf-8")
        if STUDENT_MARK in text:
            continue
        keep = teacher_copy(entry)
        keep.parent.mkdir(parents=True, exist_ok=True)
        keep.write_text(text, encoding="utf-8")
        text, n = drop_divs(text, "solution")
        removed += n
        page.write_text(text.replace("<head>", "<head>\n" + STUDENT_MARK, 1), encoding="utf-8")
    return removed


def page_body(entry: str, anchors: dict, with_solutions: bool, soup: BeautifulSoup) -> str:
    page = HTML / (entry + ".html")
    if with_solutions and teacher_copy(entry).exists():
        page = teacher_copy(entry)  # the site's page has lost its solutions: read the kept copy
    art = article(page)
    page_dir = posixpath.dirname(entry)
    for div in art.find_all("div", class_="ssmbook-explorer"):
        explorer_grid(div, soup, page_dir)
    if not with_solutions:
        for sol in art.select(".solution"):
            sol.decompose()
    for sel in DROP:
        for el in art.select(sel):
            el.decompose()
    # paths relative to the site root, links to other pages become links inside this one
    for el in art.find_all(["img", "a", "link", "source"]):
        if el.find_parent("div", class_="ssmbook-print-explorer") is not None:
            continue  # explorer_grid already wrote these relative to the site root
        for attr in ("src", "href"):
            v = el.get(attr)
            if not v or re.match(r"^(?:[a-z]+:|#|data:)", v):
                continue
            path, _, frag = v.partition("#")
            target = posixpath.normpath(posixpath.join(page_dir, path)) if path else entry + ".html"
            stem = target[:-5] if target.endswith(".html") else None
            if attr == "href" and stem in anchors:
                el[attr] = "#" + (frag or anchors[stem])
            else:
                el[attr] = target + ("#" + frag if frag else "")
    return art.decode_contents()


def squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def headings(body_html: str) -> list[tuple[int, str, str]]:
    """(level, text, id) of the h1/h2 headings of the book body, in order."""
    soup = BeautifulSoup(body_html, "html.parser")
    out = []
    for h in soup.find_all(["h1", "h2"]):
        sec = h.find_parent("section")
        hid = (sec.get("id") if sec is not None else None) or h.get("id") or ""
        out.append((int(h.name[1]), " ".join(h.get_text(" ").split()), hid))
    return out


def front_matter(edition: str, heads, numbers: list | None) -> str:
    cfg = config()
    title = cfg.get("title", "ssmbook")
    main, _, sub = title.partition(":")
    url = (cfg.get("html") or {}).get("baseurl") or cfg.get("repository", {}).get("url", "")
    try:
        rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        rev = ""
    label = ("Teacher edition, with the solutions of the exercises" if edition == "teacher"
             else "Student edition")
    date = datetime.date.today().isoformat()
    items = []
    for i, (level, text, hid) in enumerate(heads):
        num = numbers[i] if numbers else ""
        items.append(f'<li class="level-{level}"><a href="#{htmllib.escape(hid)}">{htmllib.escape(text)}</a>'
                     f'<span class="dots"></span><span class="num">{num}</span></li>')
    return (f'<div class="cover"><h1>{htmllib.escape(main.strip())}</h1>'
            f'<div class="subtitle">{htmllib.escape(sub.strip())}</div>'
            f'<div class="edition">{label}</div>'
            f'<div class="meta">{htmllib.escape(cfg.get("author", ""))}<br>{htmllib.escape(url)}<br>'
            f'built {date}{" from " + rev if rev else ""}</div></div>'
            f'<nav class="toc"><h1>Contents</h1><ol>{"".join(items)}</ol></nav>')


def document(body: str, front: str, mathjax_src: str, pygments: str) -> str:
    title = htmllib.escape(config().get("title", "ssmbook"))
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
            f'<link rel="stylesheet" href="{pygments}"><style>{CSS}</style>{MATHJAX % mathjax_src}</head>'
            f'<body>{front}{body}</body></html>')


def build_html(edition: str) -> tuple[pathlib.Path, str, list]:
    if not HTML.exists():
        raise SystemExit(f"no built book at {HTML}: run `make book` first")
    if not (HTML / "_static" / "mathjax" / "tex-chtml.js").exists():
        raise SystemExit("the built site has no _static/mathjax: is html_static_path set in _config.yml?")
    spec = EDITIONS[edition]
    entries = toc_files()
    anchors = {e: "page-" + re.sub(r"[^\w-]", "-", e) for e in entries}
    soup = BeautifulSoup("", "html.parser")
    parts = [f'<section class="ssmbook-page" id="{anchors[e]}">{page_body(e, anchors, spec["solutions"], soup)}'
             f"</section>" for e in entries]
    body = "".join(parts)
    page = spec["page"]
    page.parent.mkdir(parents=True, exist_ok=True)
    rel = os.path.relpath(HTML, page.parent)
    prefix = "" if rel == "." else rel + "/"
    if prefix:  # the teacher page lives outside the site: point its images at the site's files
        body = re.sub(r'(src|href)="(?!#|data:|[a-z]+:)', lambda m: f'{m.group(1)}="{prefix}', body)
    heads = headings(body)
    return page, body, heads


def _print(tab, page: pathlib.Path, pdf: pathlib.Path, footer: bool):
    tab.goto(page.resolve().as_uri())
    tab.wait_for_function("window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=120000)
    tab.evaluate("MathJax.startup.promise")
    tab.pdf(path=str(pdf), format="A4", print_background=True, outline=True, tagged=True,
            display_header_footer=footer, header_template="<span></span>",
            footer_template=FOOTER if footer else "<span></span>",
            margin={"top": "18mm", "bottom": "20mm", "left": "16mm", "right": "16mm"})


def build_pdf(edition: str, page: pathlib.Path, body: str, heads) -> pathlib.Path:
    """Print the book body, read where each heading landed, then print cover and contents."""
    from playwright.sync_api import sync_playwright
    from pypdf import PdfReader, PdfWriter

    if not os.path.exists(CHROMIUM):
        raise SystemExit(f"chromium not found at {CHROMIUM}: `make browser` installs Debian's chromium")
    spec = EDITIONS[edition]
    rel = os.path.relpath(HTML, page.parent)
    prefix = "" if rel == "." else rel + "/"
    mj, pyg = prefix + "_static/mathjax/tex-chtml.js", prefix + "_static/pygments.css"
    body_page = page.with_name(page.stem + "-body.html")
    front_page = page.with_name(page.stem + "-front.html")
    body_pdf, front_pdf = page.with_name("body.pdf"), page.with_name("front.pdf")
    body_page.write_text(document(body, "", mj, pyg), encoding="utf-8")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        tab = browser.new_page()
        tab.route("**/*", lambda r: r.abort() if not r.request.url.startswith(("file:", "data:")) else r.continue_())
        _print(tab, body_page, body_pdf, footer=True)
        # page of each h1/h2 from the body's outline, in document order
        reader = PdfReader(str(body_pdf))
        flat = []

        def walk(items, level):
            for it in items:
                if isinstance(it, list):
                    walk(it, level + 1)
                else:
                    flat.append((level, " ".join(it.title.split()), reader.get_destination_page_number(it) + 1))

        walk(reader.outline, 1)
        numbers, j = [], 0
        for level, text, _ in heads:
            k = j
            while k < len(flat) and squash(flat[k][1]) != squash(text):
                k += 1
            if k < len(flat):
                numbers.append(flat[k][2])
                j = k + 1
            else:
                numbers.append("")
        if sum(1 for n in numbers if n == "") > len(numbers) // 10:
            raise SystemExit(f"{edition}: the PDF outline does not follow the headings "
                             f"({sum(1 for n in numbers if n == '')} of {len(numbers)} not found)")
        front = front_matter(edition, heads, numbers)
        front_page.write_text(document("", front, mj, pyg), encoding="utf-8")
        _print(tab, front_page, front_pdf, footer=False)
        browser.close()
    front_r, body_r = PdfReader(str(front_pdf)), PdfReader(str(body_pdf))
    writer = PdfWriter()
    writer.append(front_r, import_outline=False)
    n_front = len(writer.pages)
    writer.append(body_r, import_outline=False)
    # the bookmarks: cover, contents, then the body's outline (Chromium's, from the headings), with
    # the headings' own text (Chromium drops the space at a line break)
    writer.add_outline_item(title="Cover", page_number=0)
    writer.add_outline_item(title="Contents", page_number=1 if n_front > 1 else 0)
    texts = {squash(t): t for _, t, _ in heads}

    def copy(items, parent=None):
        last = None
        for it in items:
            if isinstance(it, list):
                copy(it, last)
            else:
                title = " ".join(it.title.split())
                last = writer.add_outline_item(title=texts.get(squash(title), title), parent=parent,
                                               page_number=n_front + body_r.get_destination_page_number(it))

    copy(body_r.outline)
    writer.set_page_label(0, n_front - 1, style="/r")
    writer.set_page_label(n_front, len(writer.pages) - 1, style="/D", start=1)
    writer.add_metadata({"/Title": config().get("title", "ssmbook"), "/Author": config().get("author", "")})
    writer.page_mode = "/UseOutlines"
    spec["pdf"].parent.mkdir(parents=True, exist_ok=True)
    with open(spec["pdf"], "wb") as fh:
        writer.write(fh)
    for tmp in (body_pdf, front_pdf, body_page, front_page):
        tmp.unlink()
    print(f"wrote {spec['pdf'].relative_to(ROOT)} ({len(writer.pages)} pages, {n_front} front matter)")
    return spec["pdf"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--edition", choices=["student", "teacher", "both"], default="both")
    ap.add_argument("--no-pdf", action="store_true", help="only write the HTML pages")
    args = ap.parse_args(argv)
    print(f"student site: {student_site()} solutions taken out of the published pages")
    for edition in (["student", "teacher"] if args.edition == "both" else [args.edition]):
        page, body, heads = build_html(edition)
        rel = os.path.relpath(HTML, page.parent)
        prefix = "" if rel == "." else rel + "/"
        front = front_matter(edition, heads, None)
        page.write_text(document(body, front, prefix + "_static/mathjax/tex-chtml.js",
                                 prefix + "_static/pygments.css"), encoding="utf-8")
        print(f"wrote {page.relative_to(ROOT)}")
        if not args.no_pdf:
            build_pdf(edition, page, body, heads)


if __name__ == "__main__":
    main()
