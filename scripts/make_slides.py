"""One reveal.js slide deck per chapter, generated from the executed chapter notebooks.

    python scripts/make_slides.py            # after `make book`; writes _build/slides/NN_name.slides.html

The book build leaves the executed notebooks in _build/jupyter_execute/book/.  Each is turned into a
deck by giving its cells slide metadata:

* a markdown cell that opens with a ``#``/``##`` heading starts a new slide, ``###`` a sub-slide;
* other markdown and code cells continue the current slide;
* the setup cell, the solutions and the bibliography are left out; exercises are kept;
* long code cells show only their output (the figure), short ones show code and output;
* MyST roles (``{cite:p}`key```) are turned into plain text, explorers show their static twin.

reveal.js and MathJax come from _build/vendor (scripts/vendor.sh), so decks work offline.
"""
from __future__ import annotations

import copy
import pathlib
import re
import shutil
import sys

import nbformat
from nbconvert import SlidesExporter
from traitlets.config import Config

ROOT = pathlib.Path(__file__).resolve().parents[1]
from book_layout import chapter_entries  # noqa: E402

EXECUTED = ROOT / "_build" / "jupyter_execute"
OUT = ROOT / "_build" / "slides"
VENDOR = ROOT / "_build" / "vendor"
MAX_CODE_LINES = 12
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"

ROLE = re.compile(r"\{(cite:p|cite:t|cite|term|ref|numref|doc|eq)\}`([^`]*)`")
DIRECTIVE_FENCE = re.compile(r"^(`{3,}|:{3,})\{?([\w-]*)\}?.*$")


def _plain_roles(text: str) -> str:
    def repl(m):
        role, body = m.group(1), m.group(2)
        if role.startswith("cite"):
            return "[" + body.replace(",", "; ") + "]"
        return re.sub(r"\s*<[^>]*>$", "", body)
    return ROLE.sub(repl, text)


def _exercise_text(src: str) -> str:
    """Turn a MyST exercise directive into plain markdown for a slide."""
    lines = []
    for line in src.splitlines():
        m = DIRECTIVE_FENCE.match(line.strip())
        if m:
            if m.group(2) == "exercise":
                lines.append("**Exercise.**")
            continue
        if line.strip().startswith(":label:") or line.strip().startswith(":class:"):
            continue
        lines.append(line)
    return "\n".join(lines).strip()


def slide_notebook(nb):
    """Return a copy of an executed chapter notebook with slide metadata, ready for nbconvert."""
    nb = copy.deepcopy(nb)
    cells = []
    in_solution = False
    for cell in nb.cells:
        tags = set(cell.metadata.get("tags", []))
        src = cell.source
        if "ssmbook-setup" in tags:
            continue
        if cell.cell_type == "markdown":
            if "{solution-start}" in src:
                in_solution = True
                continue
            if "{solution-end}" in src:
                in_solution = False
                continue
            if in_solution or "{solution}" in src or "{bibliography}" in src:
                continue
            if "{exercise}" in src:
                src = _exercise_text(src)
            src = _plain_roles(src)
            cell.source = src
            first = src.lstrip().split("\n", 1)[0]
            if first.startswith("### "):
                kind = "subslide"
            elif first.startswith("# ") or first.startswith("## "):
                kind = "slide"
            elif "**Exercise.**" in src:
                kind = "subslide"
            else:
                kind = "-"
        else:
            if in_solution:
                continue
            for out in cell.get("outputs", []):
                if "data" in out:
                    out["data"].pop(WIDGET_MIME, None)
            has_figure = any("data" in o and ("image/png" in o["data"] or "text/html" in o["data"])
                             for o in cell.get("outputs", []))
            if len(src.splitlines()) > MAX_CODE_LINES or "hide-input" in tags:
                if not has_figure and not cell.get("outputs"):
                    continue
                cell.metadata.setdefault("tags", []).append("slides-hide-input")
            kind = "fragment" if has_figure else "-"
        cell.metadata["slideshow"] = {"slide_type": kind}
        cells.append(cell)
    if cells:
        cells[0].metadata["slideshow"] = {"slide_type": "slide"}
    nb.cells = cells
    nb.metadata.pop("widgets", None)
    return nb


MATHJAX = (
    '<script>window.MathJax={tex:{inlineMath:[["$","$"],["\\\\(","\\\\)"]],'
    'displayMath:[["$$","$$"],["\\\\[","\\\\]"]],processEscapes:true},'
    'options:{ignoreHtmlClass:"tex2jax_ignore"}};</script>'
    '<script src="mathjax/tex-chtml.js"></script>')


REVEAL_INIT = """<script src="reveal.js/dist/reveal.js"></script>
<script src="reveal.js/plugin/notes/notes.js"></script>
<script>
Reveal.initialize({controls: true, progress: true, history: true, transition: "slide",
                   plugins: [RevealNotes], width: 960, height: 700});
// tall slides scroll instead of overflowing
function ssmbookScroll() {
  var h = document.querySelector(".reveal").clientHeight * 0.95;
  document.querySelectorAll("section.present section, section.present").forEach(function (s) {
    if (s.scrollHeight > h) { s.style.height = "95vh"; s.style.overflowY = "auto"; }
  });
}
Reveal.on("ready", ssmbookScroll);
Reveal.on("slidechanged", ssmbookScroll);
</script>"""


def export(nb, title: str) -> str:
    c = Config()
    c.TagRemovePreprocessor.enabled = True
    c.TagRemovePreprocessor.remove_input_tags = {"slides-hide-input"}
    c.SlidesExporter.reveal_url_prefix = "reveal.js"
    c.SlidesExporter.reveal_theme = "simple"
    c.SlidesExporter.reveal_scroll = True
    exporter = SlidesExporter(config=c)
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": title}})
    # Serve everything locally: drop CDN scripts (jQuery/require are only needed for live widgets),
    # replace MathJax 2 from a CDN by the vendored MathJax 3.
    body = re.sub(r'<script[^>]+src="https://[^"]*mathjax[^"]*"[^>]*>\s*</script>', MATHJAX, body, flags=re.I)
    body = re.sub(r'<script[^>]+src="https://[^"]*"[^>]*>\s*</script>', "", body)
    # nbconvert starts reveal.js through require.js and jQuery from a CDN; start it directly instead.
    body, n = re.subn(r"<script>\s*require\(.*?</script>", REVEAL_INIT, body, flags=re.S)
    if n != 1:
        raise RuntimeError("unexpected nbconvert slides template: reveal.js start-up block not found")
    return body


def main():
    entries = [e for e in chapter_entries()]
    if not EXECUTED.exists():
        sys.exit("no executed notebooks in _build/jupyter_execute: run `make book` first")
    if not (VENDOR / ".done").exists():
        sys.exit("no vendored reveal.js/MathJax: run `bash scripts/vendor.sh` (make slides does)")
    OUT.mkdir(parents=True, exist_ok=True)
    for lib in ("reveal.js", "mathjax"):
        if not (OUT / lib).exists():
            shutil.copytree(VENDOR / lib, OUT / lib)
    for entry in entries:
        path = EXECUTED / (entry + ".ipynb")
        if not path.exists():
            sys.exit(f"{path} missing: was the book built with every chapter?")
        nb = nbformat.read(path, as_version=4)
        title = next((c.source.lstrip("# ").split("\n")[0] for c in nb.cells
                      if c.cell_type == "markdown" and c.source.startswith("# ")), entry)
        html = export(slide_notebook(nb), title)
        target = OUT / (pathlib.Path(entry).name + ".slides.html")
        target.write_text(html, encoding="utf-8")
        print(f"wrote {target.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
