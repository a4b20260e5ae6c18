"""Print how long each explorer in the built book takes to draw one picture (a live slider move).

    python scripts/explorer_timings.py        # after `make book`

The static twin records the median time per frame it measured while pre-rendering every frame
(attributes data-median-redraw-ms, and data-live-redraw-ms for a
live slider move, which reuses the layout); this collects them per chapter.
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
from book_layout import HTML, chapter_entries  # noqa: E402

rows = []
for entry in chapter_entries():
    page = HTML / (entry + ".html")
    if not page.exists():
        continue
    found = re.findall(r'class="ssmbook-explorer"[^>]*data-median-redraw-ms="([0-9.]+)" '
                       r'data-live-redraw-ms="([0-9.]+)"', page.read_text(encoding="utf-8"))
    for k, (full, live) in enumerate(found):
        rows.append((entry, k, float(full), float(live)))
print(f"{'chapter':28s} {'explorer':>8s} {'full layout ms':>15s} {'live redraw ms':>15s}")
for entry, k, full, live in rows:
    print(f"{entry:28s} {k:8d} {full:15.1f} {live:15.1f}")
if not rows:
    sys.exit("no explorers found: build the book first")
