"""Every lecture deck in headless Chromium, offline, at 1280x720 (a projector).

Fails if a slide is taller (or wider) than the slide area, if MathJax typeset anything that was not
delimited as math (bracketed prose such as "(HMM)"), or if a link is broken: links inside the deck
must hit an element, links to the published book must name a built page (and anchor), and no link
may point to a notebook or Markdown source.  `python tests/book/test_slides_browser.py` prints, per
deck, the number of slides and the tallest slide.
"""
import html
import pathlib
import re
import sys
import urllib.parse

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "scripts"))
from book_layout import HTML, chapter_entries

pytestmark = [pytest.mark.html, pytest.mark.browser]

SLIDES = HTML / "slides"
CHAPTERS = chapter_entries()
VIEWPORT = {"width": 1280, "height": 720}

MEASURE = """() => {
  const out = [];
  const h = Reveal.getHorizontalSlides();
  for (let i = 0; i < h.length; i++) {
    const stack = h[i].querySelectorAll(':scope > section');
    const n = stack.length || 1;
    for (let j = 0; j < n; j++) {
      Reveal.slide(i, j);
      const s = Reveal.getCurrentSlide();
      let bottom = 0, right = 0;
      const top = s.getBoundingClientRect().top, left = s.getBoundingClientRect().left;
      const scale = Reveal.getScale();
      for (const el of s.querySelectorAll('*')) {
        if (el.closest('aside.notes')) continue;
        const r = el.getBoundingClientRect();
        if (r.width === 0 || r.height === 0 || el.closest('mjx-assistive-mml')) continue;
        bottom = Math.max(bottom, (r.bottom - top) / scale);
        right = Math.max(right, (r.right - left) / scale);
      }
      const scrollers = [...s.querySelectorAll('mjx-container[display="true"]')]
        .filter(m => m.scrollWidth > m.clientWidth + 2).length;
      out.push({h: i, v: j, height: Math.max(bottom, s.scrollHeight), width: right, cut: scrollers,
                text: s.innerText.slice(0, 60)});
    }
  }
  return out;
}"""

MATH_ITEMS = """() => Array.from(MathJax.startup.document.math).map(m => ({
  delim: m.start.delim, tex: m.math, display: m.display}))"""


def open_deck(browser, entry):
    deck = SLIDES / (entry.split("/")[-1] + ".slides.html")
    assert deck.exists(), f"no deck {deck}: run `make slides`"
    page = browser.new_page(viewport=VIEWPORT)
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.route("**/*", lambda r: r.abort() if not r.request.url.startswith(("file:", "data:")) else r.continue_())
    page.goto(deck.resolve().as_uri())
    page.wait_for_function("window.Reveal && Reveal.isReady && Reveal.isReady()", timeout=60000)
    page.wait_for_function("window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=60000)
    page.evaluate("MathJax.startup.promise")
    return deck, page, errors


def measure(page):
    return page.evaluate(MEASURE)


@pytest.fixture(scope="module")
def decks():
    """Each deck opened once: its slides' sizes, its math, its links and element ids."""
    from playwright.sync_api import sync_playwright
    from test_browser import ARGS, CHROMIUM

    seen = {}
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)

        def load(entry):
            if entry not in seen:
                deck, page, errors = open_deck(b, entry)
                seen[entry] = {
                    "name": deck.name, "errors": errors,
                    "size": page.evaluate("({w: Reveal.getConfig().width, h: Reveal.getConfig().height})"),
                    "math": page.evaluate(MATH_ITEMS),
                    "links": page.evaluate("() => Array.from(document.querySelectorAll('a[href]'))"
                                           ".map(a => a.getAttribute('href'))"),
                    "ids": set(page.evaluate("() => Array.from(document.querySelectorAll('[id]')).map(e => e.id)")),
                    "slides": measure(page),
                }
                page.close()
            return seen[entry]

        yield load
        b.close()


@pytest.mark.parametrize("entry", CHAPTERS)
def test_every_slide_fits_the_screen(decks, entry):
    d = decks(entry)
    name, size, slides = d["name"], d["size"], d["slides"]
    assert not d["errors"], f"{name}: script errors {d['errors']}"
    assert size == {"w": VIEWPORT["width"], "h": VIEWPORT["height"]}
    tall = [s for s in slides if s["height"] > size["h"] + 1]
    assert not tall, f"{name}: slides taller than {size['h']} px: " + "; ".join(
        f"{s['h']}/{s['v']} {s['height']:.0f}px {s['text']!r}" for s in tall)
    wide = [s for s in slides if s["width"] > size["w"] + 1 or s["cut"]]
    assert not wide, f"{name}: slides wider than {size['w']} px or with cut math: " + "; ".join(
        f"{s['h']}/{s['v']} {s['width']:.0f}px {s['text']!r}" for s in wide)


@pytest.mark.parametrize("entry", CHAPTERS)
def test_only_math_is_typeset_as_math(decks, entry):
    d = decks(entry)
    items = d["math"]
    assert items, f"{d['name']}: no math at all"
    # \(...\), \[...\] and bare LaTeX environments (\begin{align}: no delimiter) are math
    bad = [i for i in items if i["delim"] not in ("\\(", "\\[")
           and not (i["delim"] == "" and i["tex"].startswith("\\begin{"))]
    assert not bad, f"{d['name']}: typeset with delimiters {sorted({i['delim'] for i in bad})}: {bad[:3]}"
    # a bibliography key or a run of prose typeset as math
    prose = [i["tex"] for i in items if re.fullmatch(r"[a-z]{3,}\d{4}[a-z]*|(?:[A-Za-z]{2,} ){3,}.*", i["tex"])]
    assert not prose, f"{d['name']}: prose typeset as math: {prose[:3]}"


@pytest.mark.parametrize("entry", CHAPTERS)
def test_links_in_decks_work(decks, entry):
    from make_slides import base_url

    d = decks(entry)
    base = base_url()
    broken = []
    for href in d["links"]:
        if href.startswith("#/") or href == "#":
            continue
        if href.startswith("#"):
            if href[1:] not in d["ids"]:
                broken.append(href)
            continue
        if re.search(r"\.(ipynb|md)(#|$)", href):
            broken.append(href)
            continue
        if href.startswith(base):
            path, _, frag = href[len(base):].partition("#")
            target = HTML / urllib.parse.unquote(path or "index.html")
            if not target.is_file() or frag and f'id="{html.escape(frag)}"' not in target.read_text(encoding="utf-8"):
                broken.append(href)
            continue
        if not re.match(r"https?://[\w.-]+\.[a-z]{2,}/", href):
            broken.append(href)
    assert not broken, f"{d['name']}: broken links {broken[:10]}"
    assert any(h.startswith(base) for h in d["links"]), f"{d['name']}: no link to the published chapter"


def main():
    from playwright.sync_api import sync_playwright
    from test_browser import ARGS, CHROMIUM

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        for entry in CHAPTERS:
            deck, page, _ = open_deck(b, entry)
            slides = measure(page)
            page.close()
            tallest = max(slides, key=lambda s: s["height"])
            print(f"{deck.name}: {len(slides)} slides, tallest {tallest['height']:.0f} px "
                  f"(slide {tallest['h']}/{tallest['v']})")
        b.close()


if __name__ == "__main__":
    main()
