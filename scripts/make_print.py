"""A printable book: every page of the built book on one HTML page, and a PDF of it.

    python scripts/make_print.py [--with-solutions] [--no-pdf]     # after `make book`

Writes _build/html/print.html (one page, chapters in _toc.yml order, figures, math rendered by a
vendored MathJax 3) and _build/print/ssmbook.pdf (printed by headless Chromium through Playwright).
Needs Debian's `chromium` for the PDF and _build/vendor (scripts/vendor.sh) for MathJax.
Solutions are left out of the printout unless --with-solutions is given (teachers' copy).
"""
from __future__ import annotations

import argparse
import html as htmllib
import os
import pathlib
import re
import shutil
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
from book_layout import HTML, toc_files  # noqa: E402

PDF = ROOT / "_build" / "print" / "ssmbook.pdf"
VENDOR = ROOT / "_build" / "vendor"
CHROMIUM = os.environ.get("SSMBOOK_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

CSS = """
body { font-family: "DejaVu Serif", Georgia, serif; max-width: 48rem; margin: 2rem auto; line-height: 1.45;
       color: #111; font-size: 11pt; }
h1, h2, h3 { font-family: "DejaVu Sans", Helvetica, sans-serif; line-height: 1.2; }
section.ssmbook-page { break-before: page; }
section.ssmbook-page:first-of-type { break-before: auto; }
pre { white-space: pre-wrap; font-size: 8.5pt; background: #f6f6f6; padding: .4em; border-radius: 3px; }
img { max-width: 100%; break-inside: avoid; }
table { border-collapse: collapse; font-size: 9.5pt; } td, th { border: 1px solid #ccc; padding: .2em .4em; }
.headerlink, .toggle-details, button, .copybtn, #searchbox, .prev-next-area { display: none !important; }
.admonition { border-left: 3px solid #1f5fa8; padding: .2em .8em; margin: .8em 0; background: #f7f9fc; }
.ssmbook-explorer input, .ssmbook-explorer output { display: none; }
.cell_input { display: block; }
details.hide.above-input { display: none; }  /* code the chapter hides stays hidden on paper */
@page { size: A4; margin: 18mm 16mm; }
"""
NO_SOLUTIONS_CSS = ".solution { display: none !important; }"

MATHJAX = (
    '<script>window.MathJax={tex:{inlineMath:[["\\\\(","\\\\)"]],displayMath:[["\\\\[","\\\\]"]],'
    'processEscapes:true,tags:"ams"},options:{processHtmlClass:"math|tex2jax_process",'
    'ignoreHtmlClass:"tex2jax_ignore|mathjax_ignore|output"}};</script>'
    '<script src="_vendor/mathjax/tex-chtml.js"></script>')


def article(page: pathlib.Path) -> str:
    text = page.read_text(encoding="utf-8")
    m = re.search(r'<article class="bd-article">(.*?)</article>', text, re.S)
    if not m:
        raise SystemExit(f"{page}: no <article class=\"bd-article\"> found")
    return m.group(1)


def build_html(with_solutions: bool = False) -> pathlib.Path:
    if not HTML.exists():
        raise SystemExit(f"no built book at {HTML}: run `make book` first")
    if not (VENDOR / ".done").exists():
        raise SystemExit("no vendored MathJax: run `bash scripts/vendor.sh` (make print does)")
    target_vendor = HTML / "_vendor" / "mathjax"
    if not target_vendor.exists():
        shutil.copytree(VENDOR / "mathjax", target_vendor)
    entries = toc_files()
    anchors = {e: "page-" + re.sub(r"[^\w-]", "-", e) for e in entries}
    parts = []
    for entry in entries:
        page = HTML / (entry + ".html")
        body = article(page)
        depth = entry.count("/")
        prefix = "../" * depth
        # image and static paths relative to the site root
        body = re.sub(r'(src|href)="' + re.escape(prefix) + r'(_images|_static)/', r'\1="\2/', body)
        # links to other pages become links inside this one
        for other, anchor in anchors.items():
            name = pathlib.Path(other).name + ".html"
            body = body.replace(f'href="{name}"', f'href="#{anchor}"').replace(f'href="{name}#', f'href="#')
        parts.append(f'<section class="ssmbook-page" id="{anchors[entry]}">{body}</section>')
    title = "ssmbook: sequence models as linear recurrences"
    css = CSS + ("" if with_solutions else NO_SOLUTIONS_CSS)
    doc = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{htmllib.escape(title)}</title>'
           f'<link rel="stylesheet" href="_static/pygments.css"><style>{css}</style>{MATHJAX}</head>'
           f'<body>{"".join(parts)}</body></html>')
    out = HTML / "print.html"
    out.write_text(doc, encoding="utf-8")
    print(f"wrote {out.relative_to(ROOT)} ({len(entries)} pages)")
    return out


def build_pdf(page: pathlib.Path, pdf: pathlib.Path = PDF) -> pathlib.Path:
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        raise SystemExit(f"chromium not found at {CHROMIUM}: `make browser` installs Debian's chromium")
    pdf.parent.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        tab = browser.new_page()
        tab.route("**/*", lambda r: r.abort() if not r.request.url.startswith("file:") else r.continue_())
        tab.goto(page.resolve().as_uri())
        tab.wait_for_function("window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=60000)
        tab.evaluate("MathJax.startup.promise")
        tab.pdf(path=str(pdf), format="A4", print_background=True)
        browser.close()
    print(f"wrote {pdf.relative_to(ROOT)}")
    return pdf


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--with-solutions", action="store_true", help="keep the exercise solutions")
    ap.add_argument("--no-pdf", action="store_true", help="only write the single HTML page")
    args = ap.parse_args(argv)
    page = build_html(args.with_solutions)
    if not args.no_pdf:
        build_pdf(page)


if __name__ == "__main__":
    main()
