"""Draw timing of the chapter 2 and 3 explorers, run from the chapters' own cells.

Each explorer's static twin draws every slider combination at build time, and a live slider move
redraws once, so a slow draw function makes the build slow and the live explorer sluggish.  The test
executes the chapter's import cell and the cell that defines the explorer, then draws the heaviest
slider setting: the draw alone, one full redraw (draw, layout and PNG encoding) and one live redraw
(layout reused), and checks that both redraws give a picture of the same size.  The times are
printed, not asserted (a shared CI machine makes them noise); `scripts/explorer_timings.py` lists
the times measured in the book build.
"""
import pathlib
import time

import matplotlib
import nbformat
import pytest

matplotlib.use("Agg")

BOOK = pathlib.Path(__file__).resolve().parents[2] / "book"

# chapter, import cell id, explorer cell id, explorer variable, heaviest slider setting
CASES = [
    ("02_continuous_ssm.ipynb", "c002", "c018", "memory_explorer", "draw_memory",
     dict(N=16, spread=1000.0)),
    ("03_discretization.ipynb", "c002", "c028", "zoh_explorer", "draw_discretization",
     dict(delta=0.01, N=16)),
]


def load_explorer(chapter, import_id, explorer_id):
    nb = nbformat.read(BOOK / chapter, as_version=4)
    cells = {c.get("id"): c for c in nb.cells}
    namespace = {}
    for cid in (import_id, explorer_id):
        assert cid in cells and cells[cid].cell_type == "code", f"{chapter}: no code cell {cid}"
        exec(compile(cells[cid].source, f"{chapter}:{cid}", "exec"), namespace)
    return namespace


@pytest.mark.parametrize("chapter,import_id,explorer_id,var,draw_name,heaviest", CASES,
                         ids=[c[0] for c in CASES])
def test_explorer_draw_timing(chapter, import_id, explorer_id, var, draw_name, heaviest):
    from matplotlib.figure import Figure

    ns = load_explorer(chapter, import_id, explorer_id)
    explorer, draw = ns[var], ns[draw_name]
    assert set(heaviest) == set(explorer.sliders)
    for name, value in heaviest.items():      # the setting exists on the slider grid
        assert value in explorer.sliders[name].values

    def time_draw():
        fig = Figure(figsize=explorer.figsize, dpi=explorer.dpi)
        t0 = time.perf_counter()
        draw(fig, **heaviest)
        return time.perf_counter() - t0

    draw_s = time_draw()
    full = explorer.render(**heaviest)
    redraw_s = explorer.last_redraw_s
    live = explorer.render(fast=True, **heaviest)
    live_s = explorer.last_redraw_s
    for png in (full, live):
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
    # width and height from the PNG header: a live redraw keeps the picture's size
    assert full[16:24] == live[16:24]
    print(f"{chapter}: draw {1e3 * draw_s:.0f} ms, redraw {1e3 * redraw_s:.0f} ms, "
          f"live {1e3 * live_s:.0f} ms")
