"""The committed chapters: stored without outputs, with the shared setup cell and the chapter shape."""
import json
import re
import sys

import nbformat
import pytest

from book_layout import ROOT, source_of, toc_files

sys.path.insert(0, str(ROOT / "scripts"))
from sync_setup_cells import TAG, setup_cell_source  # noqa: E402

NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))
EXPECTED_CHAPTERS = ["book/01_hmm", "book/02_continuous_ssm", "book/03_discretization", "book/04_s4",
                     "book/05_selective", "book/06_parallel_scan", "book/07_mambaout", "book/08_rwkv",
                     "book/09_ssd", "book/10_delta"]


def test_toc_entries_exist():
    for entry in toc_files():
        source_of(entry)


def test_chapters_in_mission_order():
    chapters = [e for e in toc_files() if e in EXPECTED_CHAPTERS]
    assert chapters == sorted(chapters, key=EXPECTED_CHAPTERS.index)


def test_every_notebook_is_in_the_toc():
    listed = {source_of(e) for e in toc_files()}
    missing = [p.name for p in NOTEBOOKS if p not in listed]
    assert not missing, f"notebooks not in _toc.yml: {missing}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_no_outputs(path):
    nb = json.loads(path.read_text())
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "code":
            assert cell.get("outputs", []) == [], f"{path.name} cell {i} has stored outputs"
            assert cell.get("execution_count") is None, f"{path.name} cell {i} has an execution count"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_valid_and_has_kernelspec(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_setup_cell_is_first_code_cell_and_in_sync(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, f"{path.name} has no code cells"
    assert TAG in code[0].metadata.get("tags", []), f"{path.name}: first code cell is not the setup cell"
    assert code[0].source == setup_cell_source(), (
        f"{path.name}: setup cell differs from the one stamped from _config.yml; "
        "run `python scripts/sync_setup_cells.py`")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_chapter_shape(path):
    """Objectives, ≥ 4 exercises each with a hidden solution, an explorer, references."""
    nb = nbformat.read(path, as_version=4)
    md = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    src = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert md.lstrip().startswith("# "), f"{path.name} must start with a '# ' title"
    assert "objectives" in md.lower(), f"{path.name}: no learning objectives"
    n_ex = md.count("{exercise}")
    n_sol = md.count("{solution}") + md.count("{solution-start}")
    assert n_ex >= 4, f"{path.name}: {n_ex} exercises, need at least 4"
    assert n_sol >= n_ex, f"{path.name}: {n_ex} exercises but {n_sol} solutions"
    assert md.count(":class: dropdown") >= n_ex, f"{path.name}: every solution must be hidden (:class: dropdown)"
    assert "{solution-start}" in md, f"{path.name}: no coding solution executed at build time (gated solution)"
    assert "{bibliography}" in md, f"{path.name}: no references"
    assert "Explorer(" in src, f"{path.name}: no explorer (ssmbook.widgets.Explorer)"


KIND = re.compile(r"^\W*(derivation|coding|conceptual)\b", re.I)


def _exercise_first_lines(nb):
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        for part in re.split(r"`{3,}\{exercise\}", cell.source)[1:]:
            lines = [ln for ln in part.splitlines()[1:] if ln.strip() and not ln.strip().startswith(":")]
            yield lines[0] if lines else ""


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_exercises_span_derivation_coding_and_conceptual(path):
    """Exercise audit: every exercise says its kind; each chapter has all three kinds."""
    nb = nbformat.read(path, as_version=4)
    kinds = []
    for first in _exercise_first_lines(nb):
        m = KIND.match(first)
        assert m, f"{path.name}: exercise does not start with its kind (Derivation/Coding/Conceptual): {first[:60]!r}"
        kinds.append(m.group(1).lower())
    assert {"derivation", "coding", "conceptual"} <= set(kinds), f"{path.name}: exercise kinds {sorted(set(kinds))}"


def test_code_cells_are_formatted_by_ruff():
    """The chapters' code cells are in ruff's format (88 columns, pyproject's [tool.ruff])."""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "ruff", "format", "--check", "book"],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, f"run `ruff format book`:\n{r.stdout}{r.stderr}"


SHOWING_CODE_ANOTHER_WAY = re.compile(
    r"inspect\.getsource|print\(\s*source\(|from ssmbook\.notebook import[^\n]*\bsource\b|source_sections")
PRIVATE_NAME = re.compile(r"\b\w+\._[a-z]\w*|\bimport\s+_[a-z]\w*|\bimport\s*\([^)]*\b_[a-z]\w*")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_chapters_show_code_with_show_and_use_public_names(path):
    """A chapter shows library code one way, ``ssmbook.show(obj)`` / ``show(obj, section=...)``,
    and calls only public names of the package (no ``module._private``)."""
    nb = nbformat.read(path, as_version=4)
    bad = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for pattern, what in ((SHOWING_CODE_ANOTHER_WAY, "shows code without show()"),
                              (PRIVATE_NAME, "uses a private name")):
            bad += [f"cell {cell.get('id')}: {what}: {m.group(0)!r}" for m in pattern.finditer(cell.source)]
    assert not bad, f"{path.name}:\n" + "\n".join(bad)
