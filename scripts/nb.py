"""Write a chapter notebook from a list of cells (for authors; the .ipynb is what is committed).

    from scripts.nb import write_notebook, md, code
    write_notebook("book/01_hmm.ipynb", [md("# Title"), code("x = 1", tags=["hide-input"]), ...])

The shared setup cell is inserted as the first code cell; outputs are never stored.
"""
import pathlib
import sys

import nbformat

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from sync_setup_cells import setup_cell  # noqa: E402


def md(text: str, tags=None):
    c = nbformat.v4.new_markdown_cell(text.strip("\n"))
    if tags:
        c.metadata["tags"] = list(tags)
    return c


def code(text: str, tags=None):
    c = nbformat.v4.new_code_cell(text.strip("\n"))
    if tags:
        c.metadata["tags"] = list(tags)
    return c


def write_notebook(path, cells):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    cells = list(cells)
    first_code = next((i for i, c in enumerate(cells) if c.cell_type == "code"), len(cells))
    cells.insert(first_code, setup_cell())
    for i, c in enumerate(cells):
        c["id"] = f"c{i:03d}"
    nb.cells = cells
    nbformat.validate(nb)
    nbformat.write(nb, str(path))
    return path
