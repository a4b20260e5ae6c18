"""One reveal.js lecture deck per chapter, from the cells the chapter tags for slides.

    python scripts/make_slides.py        # after `make book`; writes _build/html/slides/NN_name.slides.html

Which cells make the deck is stored in the notebooks, with the Jupyter convention that RISE and
``jupyter nbconvert --to slides`` read too: ``metadata.slideshow.slide_type`` is ``slide`` (a new
slide), ``subslide`` (a new slide below the current one), ``fragment`` (revealed on the next key
press), ``-`` (continues the slide), ``notes`` (speaker notes: press S) or ``skip``.  A cell with
no slide type is not in the deck.  Cells that exist only as speaker notes carry the ``remove-cell``
tag too, so the book does not show them.

What the lecture needs, and a notebook dump does not give:

* Code is hidden unless its cell is tagged ``slides-show-input``; figures, tables and explorers
  (their static twin) fill the slide.  Output prompts ("Out [9]:") are never shown.
* A prose paragraph longer than ``MAX_SLIDE_WORDS`` words moves to the slide's speaker notes; the
  slide keeps headings, lists, tables, display math and short sentences.
* The ``## Exercises`` heading becomes one slide listing every exercise of the chapter with the
  number the book prints ("Exercise 5.2"), read from the built page, and a link to it; solutions
  never appear.
* Citations read "Author (year)"; glossary terms and cross-references become text; links to other
  chapters point to the published pages (``html.baseurl`` in _config.yml, or the GitHub Pages
  address of ``repository.url``).
* Math is delimited by ``\\(...\\)`` and ``\\[...\\]`` only, so bracketed prose stays prose.  MathJax
  is the site's own copy (``_static/mathjax``), reveal.js is vendored by scripts/vendor.sh: the
  decks work offline.
"""
from __future__ import annotations

import base64
import hashlib
import html
import os
import pathlib
import re
import shutil
import sys

import nbformat
from markdown_it import MarkdownIt
from mdit_py_plugins.amsmath import amsmath_plugin
from mdit_py_plugins.dollarmath import dollarmath_plugin

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from book_layout import HTML, chapter_entries, config
from ssmbook_bib import authors, year

sys.path.insert(0, str(ROOT / "book" / "_ext"))
from ssmbook_site import externalize  # noqa: E402  (the site's explorer frames, as files)

EXECUTED = ROOT / "_build" / "jupyter_execute"
OUT = HTML / "slides"
VENDOR = ROOT / "_build" / "vendor"
MAX_SLIDE_WORDS = 40
MAX_TABLE_ROWS = 14
SHOW_INPUT = "slides-show-input"
WIDTH, HEIGHT = 1280, 720
ALL_EXERCISES: dict = {}  # label -> (chapter entry, "5.2"), filled by main()

ROLE = re.compile(r"\{(cite:p|cite:t|cite|term|ref|numref|doc|eq|math)\}`([^`]*)`")
FENCE = re.compile(r"^(`{3,}|:{3,})\{([\w-]+)\}(.*)$")
LINK = re.compile(r"\]\(([^)\s]+?)\.(ipynb|md)(#[^)]*)?\)")

_md = (MarkdownIt("commonmark", {"html": True}).enable("table")
       .use(dollarmath_plugin, double_inline=True).use(amsmath_plugin))


def base_url() -> str:
    """Where the book is published, with a trailing slash."""
    cfg = config()
    url = (cfg.get("html") or {}).get("baseurl")
    if not url:
        m = re.match(r"https://github\.com/([^/]+)/([^/]+?)(?:\.git)?/?$", cfg["repository"]["url"])
        if not m:
            raise SystemExit("set html.baseurl in _config.yml: repository.url is not a GitHub URL")
        url = f"https://{m.group(1).lower()}.github.io/{m.group(2)}/"
    return url.rstrip("/") + "/"


def bibliography() -> dict:
    from pybtex.database import parse_file

    return parse_file(str(ROOT / "book" / "references.bib")).entries


def exercise_numbers(entry: str) -> dict:
    """label -> "5.2" as printed on the built chapter page."""
    page = HTML / (entry + ".html")
    text = page.read_text(encoding="utf-8")
    found = re.findall(r'id="([\w-]+)"[^>]*>\s*<p class="admonition-title">\s*<span class="caption-number">'
                       r"Exercise ([\d.]+)", text)
    return dict(found)


class Chapter:
    """What the text transforms need to know about one chapter."""

    def __init__(self, entry: str, bib: dict, base: str, numbers: dict):
        self.entry, self.bib, self.base, self.numbers = entry, bib, base, numbers
        self.page_url = base + entry + ".html"

    def cite(self, keys: str, textual: bool) -> str:
        out = []
        for key in (k.strip() for k in keys.split(",")):
            if key not in self.bib:
                raise SystemExit(f"{self.entry}: unknown citation key {key!r}")
            e = self.bib[key]
            out.append(f"{authors(e)} ({year(e)})")
        return "; ".join(out)

    def role(self, m) -> str:
        role, body = m.group(1), m.group(2)
        if role.startswith("cite"):
            return self.cite(body, role == "cite:t")
        if role == "math":
            return f"${body}$"
        text, _, target = body.partition("<")
        target = target.rstrip(">").strip() or text.strip()
        if role in ("ref", "numref") and target in self.numbers:
            return f"[Exercise {self.numbers[target]}]({self.page_url}#{target})"
        if role in ("ref", "numref") and target in ALL_EXERCISES:
            entry, number = ALL_EXERCISES[target]
            return f"[Exercise {number}]({self.base}{entry}.html#{target})"
        return text.strip()

    def links(self, m) -> str:
        stem, _, anchor = m.group(1), m.group(2), m.group(3) or ""
        path = (pathlib.PurePosixPath(self.entry).parent / stem).as_posix()
        return f"]({self.base}{path}.html{anchor})"

    def text(self, src: str) -> str:
        return LINK.sub(self.links, ROLE.sub(self.role, src))


def strip_directives(src: str) -> str:
    """Drop MyST directive blocks (solutions, bibliography, exercises) from a markdown cell."""
    out, depth_fence = [], None
    for line in src.splitlines():
        m = FENCE.match(line.strip())
        if depth_fence is None and m:
            depth_fence = m.group(1)
            continue
        if depth_fence is not None:
            if line.strip() == depth_fence:
                depth_fence = None
            continue
        out.append(line)
    return "\n".join(out)


def blocks(src: str) -> list[str]:
    """Split markdown into blocks at blank lines, keeping $$ ... $$ and fenced code together."""
    out, cur, in_math, in_code = [], [], False, False
    for line in src.splitlines():
        s = line.strip()
        if s.startswith("```"):
            in_code = not in_code
        one_line = s.endswith("$$") and len(s) > 4  # $$ x $$ on one line
        if s.startswith("$$") and not in_code and not one_line:
            in_math = not in_math
        if not s and not in_math and not in_code:
            if cur:
                out.append("\n".join(cur))
            cur = []
        else:
            cur.append(line)
    if cur:
        out.append("\n".join(cur))
    return out


def lead_ins(bs: list[str]) -> list[str]:
    """Keep a short lead-in ("After this chapter you can") with the list it introduces."""
    out: list[str] = []
    for b in bs:
        if out and re.match(r"\s*(?:[-*+]|\d+\.)\s", b) and is_prose(out[-1]) and words(out[-1]) <= 15:
            out[-1] = out[-1] + "\n\n" + b
        else:
            out.append(b)
    return out


def is_prose(block: str) -> bool:
    s = block.lstrip()
    return not (s.startswith(("#", "|", "$$", "```", "<", ">", "\\begin"))
                or re.search(r"^\s*(?:[-*+]|\d+\.)\s", s, re.MULTILINE))


def words(block: str) -> int:
    return len(re.sub(r"\$[^$]*\$", "x", block).split())


def render(md: str) -> str:
    out = _md.render(md)
    out = re.sub(r'<span class="math inline">(.*?)</span>',
                 lambda m: f'<span class="math inline">\\({m.group(1)}\\)</span>', out, flags=re.DOTALL)
    out = re.sub(r'<div class="math block">(.*?)</div>',
                 lambda m: f'<div class="math block">\\[{m.group(1).strip()}\\]</div>', out, flags=re.DOTALL)
    return out


def exercises_slide(nb, chapter: Chapter) -> str:
    """The chapter's exercises, one line each, numbered as in the book."""
    items = []
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        for m in re.finditer(r"`{3,4}\{exercise\}[^\n]*\n:label: ([\w-]+)\n(.*?)\n`{3,4}", cell.source, re.DOTALL):
            label, body = m.group(1), m.group(2)
            body = re.sub(r"^:\w+:.*$", "", body, flags=re.MULTILINE).strip()
            first = re.split(r"(?<=[.?!])\s", chapter.text(body).replace("\n", " "), maxsplit=2)
            gist = " ".join(first[:2]) if first[0].startswith("**(") else first[0]
            if len(gist.split()) > 28:
                gist = " ".join(gist.split()[:28])
                if gist.count("$") % 2:  # do not cut a formula in half
                    gist = gist[:gist.rindex("$")].rstrip()
                gist += " …"
            num = chapter.numbers.get(label)
            if num is None:
                raise SystemExit(f"{chapter.entry}: exercise {label} has no number on the built page")
            items.append(f"- [**Exercise {num}**]({chapter.page_url}#{label}) {gist}")
    return render("\n".join(items))


def site_image(png_b64: str) -> str:
    """The site's file of this figure (myst-nb names it by the SHA-256 of its bytes), as a URL
    relative to the decks; written there if the site has no such file, so decks share the
    site's images instead of carrying a second, inline copy."""
    raw = base64.b64decode(png_b64)
    name = hashlib.sha256(raw).hexdigest() + ".png"
    path = HTML / "_images" / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(raw)
    return "../_images/" + name


def output_html(out) -> str:
    data = out.get("data", {})
    if "text/html" in data:
        text = data["text/html"] if isinstance(data["text/html"], str) else "".join(data["text/html"])
        if "ssmbook-explorer-data" in text:  # frames as the site's files, loaded on demand
            text = externalize(text, HTML, "../_images/explorers")
        return f'<div class="slide-html">{text}</div>'
    if "image/svg+xml" in data:
        return f'<div class="slide-figure">{data["image/svg+xml"]}</div>'
    if "image/png" in data:
        png = data["image/png"].replace("\n", "")
        return f'<img class="slide-figure" alt="figure" src="{site_image(png)}">'
    if "text/markdown" in data:
        return render(data["text/markdown"])
    return ""


class Slide:
    def __init__(self, heading: str = ""):
        self.parts: list[str] = []
        self.notes: list[str] = []
        self.height = 0.0  # estimated, in px of a 1280x720 slide
        self.heading = heading  # the section this slide belongs to, repeated on continuations


# Rough heights (px at the deck's font size) by which a long cell is split over several slides; the
# browser test measures the real ones.
SLIDE_BUDGET = 520
LINE_PX, CHARS_PER_LINE = 36, 80


def estimate(block: str) -> float:
    s = block.strip()
    if s.startswith("#"):
        return 75
    if s.startswith(("$$", "\\begin")):
        rows = 1 + s.count("\\\\")
        return 30 + 52 * rows
    if s.startswith("|"):
        return 34 * len(s.splitlines())
    text = re.sub(r"\$[^$]*\$", "xxxx", s)
    text = re.sub(r"\]\([^)]*\)", "]", text)
    items = re.split(r"\n(?=\s*(?:[-*+]|\d+\.)\s)", text)
    return sum(LINE_PX * (1 + len(i) // CHARS_PER_LINE) + 8 for i in items) + 16


def deck(nb, chapter: Chapter) -> list[list[Slide]]:
    stacks: list[list[Slide]] = []
    heading = ""

    def current() -> Slide:
        if not stacks:
            stacks.append([Slide()])
        return stacks[-1][-1]

    def new_slide(vertical: bool):
        if vertical and stacks:
            stacks[-1].append(Slide(heading))
        else:
            stacks.append([Slide(heading)])

    def add(html_: str, height: float):
        s = current()
        if s.parts and s.height + height > SLIDE_BUDGET:  # continue on a slide below
            new_slide(True)
            s = current()
            if s.heading:
                s.parts.append(render(s.heading + " (continued)"))
                s.height += 75
        s.parts.append(html_)
        s.height += height

    for cell in nb.cells:
        kind = cell.metadata.get("slideshow", {}).get("slide_type")
        if kind in (None, "skip"):
            continue
        tags = set(cell.metadata.get("tags", []))
        if kind == "notes":
            if cell.cell_type == "markdown":
                current().notes.append(render(strip_directives(chapter.text(cell.source))))
            continue
        heading_only = len(current().parts) == 1 and current().height <= 80 if stacks else False
        if kind == "subslide" and cell.cell_type == "code" and heading_only:
            pass  # a figure right below a section title: on the title's slide
        elif kind in ("slide", "subslide"):
            new_slide(kind == "subslide")
        if cell.cell_type == "markdown":
            src = chapter.text(cell.source)
            if "{exercise}" in cell.source:
                add(render("## Exercises") + exercises_slide(nb, chapter), 0)
                continue
            for i, b in enumerate(lead_ins(blocks(strip_directives(src)))):
                if re.fullmatch(r"#+\s+Exercises\s*", b.strip()):
                    continue  # the exercises slide has its own heading
                level = len(b) - len(b.lstrip("#")) if b.startswith("#") else 0
                if level in (1, 2, 3):
                    heading = "## " + b.strip().splitlines()[0].lstrip("#").strip()
                    if i > 0:
                        new_slide(level == 3)
                    current().heading = heading
                if is_prose(b) and words(b) > MAX_SLIDE_WORDS:
                    current().notes.append(render(b))
                    continue
                html_ = render(b)
                if kind == "fragment":
                    html_ = f'<div class="fragment">{html_}</div>'
                add(html_, estimate(b))
        elif cell.cell_type == "code":
            parts = []  # (html, estimated height): a figure fills a slide, a table takes its rows
            if SHOW_INPUT in tags:
                code = html.escape(cell.source)
                parts.append((f'<pre class="slide-code"><code>{code}</code></pre>', 22 * (2 + code.count("\n"))))
            for out in cell.get("outputs", []):
                if out.get("output_type") in ("display_data", "execute_result"):
                    body = output_html(out)
                    rows = body.count("<tr")
                    if rows > MAX_TABLE_ROWS and "<img" not in body:  # a listing, not a slide
                        body = (f'<p>A table of {rows - 1} rows: see <a href="{chapter.page_url}">'
                                f"the chapter page</a>.</p>")
                        rows = 0
                    parts.append((body, 24 * rows + 40 if rows and "<img" not in body else SLIDE_BUDGET))
                elif out.get("output_type") == "stream" and SHOW_INPUT in tags:
                    text = html.escape(out["text"])
                    parts.append((f'<pre class="slide-output">{text}</pre>', 22 * (2 + text.count("\n"))))
            parts = [(b, h) for b, h in parts if b]
            if parts and kind in ("slide", "subslide") and current().heading and not current().parts:
                # a figure slide: the section's title, small, then the figure filling the rest
                title = current().heading.lstrip("#").strip()
                current().parts.append(f'<p class="figure-title">{html.escape(title)}</p>')
            for body, height in parts:
                add(f'<div class="fragment">{body}</div>' if kind == "fragment" else body, height)
    return [stack for stack in stacks if any(s.parts for s in stack)]


CSS = """
.reveal { font-size: 27px; }
.reveal .slides section { text-align: left; }
.reveal h1 { font-size: 1.9em; } .reveal h2 { font-size: 1.45em; } .reveal h3 { font-size: 1.15em; }
.reveal h1, .reveal h2, .reveal h3 { text-transform: none; margin-bottom: .4em; }
.reveal p, .reveal li { line-height: 1.3; }
.reveal ul, .reveal ol { display: block; margin-left: 1em; }
.reveal table { font-size: .72em; margin: .3em 0; max-width: 100%; }
.reveal p, .reveal li { overflow-wrap: anywhere; }
.reveal img.slide-figure, .reveal .slide-figure svg { display: block; margin: 0 auto; width: 100%;
  height: auto; max-height: 560px; object-fit: contain; }
.reveal p.figure-title { font-size: .8em; color: #444; margin: 0 0 .3em 0; font-weight: bold; }
.reveal .slide-html .ssmbook-explorer img { display: block; margin: 0 auto; max-height: 430px;
  width: 100% !important; height: auto; object-fit: contain; }
.reveal .slide-html { font-size: .7em; }
.reveal .slide-html table { font-size: .8em; } .reveal .slide-html td, .reveal .slide-html th { padding: .1em .4em; }
.reveal pre.slide-code, .reveal pre.slide-output { font-size: .62em; box-shadow: none; width: 100%;
  box-sizing: border-box; white-space: pre-wrap;
  background: #f6f8fa; padding: .4em; margin: .3em 0; }
.reveal pre code { max-height: none; }
.reveal mjx-container[display="true"] { max-width: 100%; overflow-x: auto; overflow-y: hidden; }
.reveal .slide-title-url { font-size: .6em; color: #555; }
"""

MATHJAX = """<script>
window.MathJax = {
  tex: {inlineMath: [["\\\\(", "\\\\)"]], displayMath: [["\\\\[", "\\\\]"]], processEscapes: false,
        processEnvironments: true, tags: "none"},
  options: {ignoreHtmlClass: "slide-code|slide-output|ssmbook-explorer-controls"},
  chtml: {displayOverflow: "linebreak"}
};
</script>
<script src="../_static/mathjax/tex-chtml.js"></script>"""


def page(title: str, stacks, chapter: Chapter) -> str:
    sections = []
    for stack in stacks:
        inner = []
        for s in stack:
            notes = f'<aside class="notes">{"".join(s.notes)}</aside>' if s.notes else ""
            inner.append(f"<section>{''.join(s.parts)}{notes}</section>")
        sections.append(inner[0] if len(inner) == 1 else f"<section>{''.join(inner)}</section>")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)} (slides)</title>
<link rel="stylesheet" href="reveal.js/dist/reveal.css">
<link rel="stylesheet" href="reveal.js/dist/theme/white.css">
<style>{CSS}</style>
{MATHJAX}
</head><body>
<div class="reveal"><div class="slides">
{"".join(sections)}
</div></div>
<script src="reveal.js/dist/reveal.js"></script>
<script src="reveal.js/plugin/notes/notes.js"></script>
<script>
Reveal.initialize({{hash: true, controls: true, progress: true, slideNumber: "c/t", center: false,
  transition: "none", width: {WIDTH}, height: {HEIGHT}, margin: 0.04, plugins: [RevealNotes]}});
</script>
</body></html>
"""


def title_of(nb, entry: str) -> str:
    for c in nb.cells:
        if c.cell_type == "markdown" and c.source.startswith("# "):
            return c.source[2:].split("\n")[0].strip()
    return entry


def chapter_number(entry: str) -> str:
    """The chapter number the site prints in its title ("5"), or "" for an unnumbered page."""
    text = (HTML / (entry + ".html")).read_text(encoding="utf-8")
    m = re.search(r'<h1>\s*<span class="section-number">([\d.]+?)\.?\s*</span>', text)
    return m.group(1) if m else ""


def executed(entry: str):
    """The chapter's source cells (slide metadata, text) with the outputs of the book build."""
    path = EXECUTED / (entry + ".ipynb")
    if not path.exists():
        raise SystemExit(f"{path} missing: was the book built with every chapter?")
    run = {c.get("id"): c for c in nbformat.read(path, as_version=4).cells}
    nb = nbformat.read(ROOT / (entry + ".ipynb"), as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            if cell.get("id") not in run or run[cell.id].source != cell.source:
                raise SystemExit(f"{entry}: cell {cell.get('id')} changed since the book was built: "
                                 "run `make book` again")
            cell.outputs = run[cell.id].get("outputs", [])
    return nb


def default_plan(nb):
    """Slide types for a chapter whose cells carry none: a slide per section, one per figure or
    explorer, derivations with display math on slides of their own, one exercises slide."""
    exercises = False
    in_solution = False
    for cell in nb.cells:
        src = cell.source.lstrip()
        kind = None
        if cell.cell_type == "markdown":
            if "{solution-start}" in src:
                in_solution = True
            if "{solution-end}" in src:
                in_solution = False
            if "{exercise}" in src:
                kind = None if exercises else "slide"
                exercises = True
            elif in_solution or "{bibliography}" in src or src.startswith("## References"):
                kind = None
            elif src.startswith(("# ", "## ")):
                kind = "slide"
            elif src.startswith("### ") or (("$$" in src or "\\begin{" in src) and len(src.split()) <= 150):
                kind = "subslide"
        elif not in_solution and "ssmbook-setup" not in cell.metadata.get("tags", []):
            for out in cell.get("outputs", []):
                data = out.get("data", {})
                if "image/png" in data or "ssmbook-explorer" in str(data.get("text/html", "")):
                    kind = "subslide"
        if kind:
            cell.metadata["slideshow"] = {"slide_type": kind}


def build(entry: str, bib, base) -> pathlib.Path:
    nb = executed(entry)
    chapter = Chapter(entry, bib, base, exercise_numbers(entry))
    if not any(c.metadata.get("slideshow") for c in nb.cells):
        print(f"{entry}: no cell is tagged for slides; using the default plan (tag cells to choose)")
        default_plan(nb)
    stacks = deck(nb, chapter)
    num = chapter_number(entry)
    title = title_of(nb, entry)
    if stacks and stacks[0]:
        first = stacks[0][0]
        heading = f"Chapter {num}. " if num else ""
        first.parts.insert(0, f'<p class="slide-title-url">{html.escape(heading)}'
                              f'<a href="{chapter.page_url}">{html.escape(chapter.page_url)}</a></p>')
    target = OUT / (pathlib.Path(entry).name + ".slides.html")
    target.write_text(page(title, stacks, chapter), encoding="utf-8")
    n = sum(len(s) for s in stacks)
    print(f"wrote {os.path.relpath(target, ROOT)} ({n} slides)")
    return target


def main(argv=None):
    if not EXECUTED.exists() or not HTML.exists():
        sys.exit("no built book (_build/html, _build/jupyter_execute): run `make book` first")
    if not (VENDOR / ".done").exists():
        sys.exit("no vendored reveal.js: run `bash scripts/vendor.sh` (make slides does)")
    if not (HTML / "_static" / "mathjax" / "tex-chtml.js").exists():
        sys.exit("the built site has no _static/mathjax: is html_static_path set in _config.yml?")
    OUT.mkdir(parents=True, exist_ok=True)
    if not (OUT / "reveal.js").exists():
        shutil.copytree(VENDOR / "reveal.js", OUT / "reveal.js")
    bib, base = bibliography(), base_url()
    for entry in chapter_entries():
        ALL_EXERCISES.update({lab: (entry, num) for lab, num in exercise_numbers(entry).items()})
    entries = argv or chapter_entries()
    for entry in entries:
        build(entry, bib, base)


if __name__ == "__main__":
    main(sys.argv[1:])
