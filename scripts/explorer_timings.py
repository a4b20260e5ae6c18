"""Print how long each explorer in the built book takes to draw one picture (a live slider move).

    python scripts/explorer_timings.py        # after `make book`

The static twin records the median time per frame it measured while pre-rendering every frame
(attribute data-median-redraw-ms); this collects them per chapter.
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from _book import HTML, chapter_entries  # noqa: E402

rows = []
for entry in chapter_entries():
    page = HTML / (entry + ".html")
    if not page.exists():
        continue
    for k, ms in enumerate(re.findall(r'class="ssmbook-explorer"[^>]*data-median-redraw-ms="([0-9.]+)"',
                                      page.read_text(encoding="utf-8"))):
        rows.append((entry, k, float(ms)))
print(f"{'chapter':28s} {'explorer':>8s} {'median ms/frame':>16s}")
for entry, k, ms in rows:
    print(f"{entry:28s} {k:8d} {ms:16.1f}")
if not rows:
    sys.exit("no explorers found: build the book first")
