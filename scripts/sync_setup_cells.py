"""Stamp the shared setup cell into every chapter notebook.

The repository URL lives in one place, `_config.yml` (repository.url); this script writes
the setup cell (tag ``ssmbook-setup``, the first code cell of each chapter) from it.
tests/book/test_notebooks.py fails when a chapter's setup cell differs from `setup_cell_source()`.

    python scripts/sync_setup_cells.py          # rewrite book/*.ipynb in place
"""
import pathlib
import sys

import nbformat
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
TAG = "ssmbook-setup"


def repository_url() -> str:
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    return cfg["repository"]["url"].rstrip("/")


def setup_cell_source() -> str:
    url = repository_url()
    branch = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"].get("branch", "main")
    return (
        "# Setup, the same in every chapter: install ssmbook if it is missing (Colab),\n"
        "# pick the device (CUDA GPU if there is one, else CPU), seed the RNGs.\n"
        "import importlib.util\n"
        "import subprocess\n"
        "import sys\n"
        "\n"
        'if importlib.util.find_spec("ssmbook") is None:\n'
        f'    URL = "git+{url}@{branch}"\n'
        '    subprocess.run([sys.executable, "-m", "pip", "install", "-q", URL], check=True)\n'
        "import ssmbook\n"
        "\n"
        "device = ssmbook.setup(seed=0)"
    )


def setup_cell():
    cell = nbformat.v4.new_code_cell(setup_cell_source())
    cell.metadata["tags"] = [TAG]
    cell.pop("id", None)
    return cell


def sync(path: pathlib.Path) -> bool:
    nb = nbformat.read(path, as_version=4)
    src = setup_cell_source()
    for cell in nb.cells:
        if TAG in cell.get("metadata", {}).get("tags", []):
            if cell.source == src:
                return False
            cell.source = src
            break
    else:
        new = setup_cell()
        first_code = next((i for i, c in enumerate(nb.cells) if c.cell_type == "code"), len(nb.cells))
        nb.cells.insert(first_code, new)
    nbformat.write(nb, path)
    return True


if __name__ == "__main__":
    paths = [pathlib.Path(p) for p in sys.argv[1:]] or sorted((ROOT / "book").glob("*.ipynb"))
    for p in paths:
        if sync(p):
            print("updated", p)
