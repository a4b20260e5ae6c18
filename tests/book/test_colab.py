"""The Colab notebooks (scripts/colab_notebooks.py, `make colab`) and the Colab launch button.

1. The converter on each MyST construct, on a small book written into a temporary folder.
2. The converted chapters of the real book: no MyST left, no solution in a student notebook, every
   exercise numbered, every solution in the teacher notebook, links into the published book.
3. On the built book (`make book`): the Colab button opens the converted notebook on the Colab
   branch, the repository button the repository; every link of a converted notebook into the book
   lands on a page and an anchor that exist.
4. The Colab-style run: a wheel built from the checkout, installed in a fresh virtual environment,
   and every converted chapter executed alone in an empty folder; no figure of the book build may
   be missing.
"""
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import textwrap
import time
from urllib.parse import urlsplit

import colab_notebooks as cn
import nbformat
import pytest
from book_layout import HTML, ROOT, chapter_notebooks, config

COLAB = ROOT / cn.COLAB_DIR / "book"
TEACHER = ROOT / cn.TEACHER_DIR
MYST_MARKUP = ("{cite", "{exercise", "{solution", "```{", ":::{", "{ref}", "{numref}", "{term}",
               "{doc}", "{eq}", "{math}", "{glue", "{bibliography}")


# --------------------------------------------------------------------------------------------
# 1. the converter, construct by construct
# --------------------------------------------------------------------------------------------

BIB = """
@article{alpha2020one, author = {Alpha, Ann}, title = {One}, journal = {J}, year = {2020}}
@article{beta2021two, author = {Beta, Bob and Gamma, Gil}, title = {Two}, journal = {J}, year = {2021}}
@article{delta2022three, author = {Delta, Dan and Eps, Eve and Zeta, Zoe}, title = {Three},
         journal = {J}, year = {2022}}
"""


def _nb(path, cells):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_markdown_cell(c) if isinstance(c, str) else c for c in cells]
    nbformat.write(nb, path)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """A two-chapter book with a glossary, written the way the real one is."""
    root = tmp_path_factory.mktemp("toybook")
    (root / "book").mkdir()
    (root / "_config.yml").write_text(textwrap.dedent("""\
        title: Toy
        parse:
          myst_enable_extensions: [dollarmath, amsmath, colon_fence, deflist]
        bibtex_bibfiles: [book/references.bib]
        repository:
          url: https://github.com/SomeOne/toybook
          branch: main
        """))
    (root / "_toc.yml").write_text(textwrap.dedent("""\
        format: jb-book
        root: book/intro
        chapters:
          - file: book/01_first
          - file: book/02_second
          - file: book/glossary
        """))
    (root / "book" / "references.bib").write_text(BIB)
    (root / "book" / "intro.md").write_text("# Intro\n\nHello.\n")
    (root / "book" / "glossary.md").write_text(
        "# Glossary\n\n```{glossary}\nlinear recurrence\n  A recurrence.\n```\n")
    _nb(root / "book" / "01_first.ipynb", [
        "# First chapter\n\n(sec-intro)=\n## Intro section\n\nText.",
        ("````{exercise}\n:label: ch1-ex1\n**Derivation.** Show it {cite:p}`alpha2020one`.\n````\n\n"
        "````{solution} ch1-ex1\n:class: dropdown\nSECRET-ONE {cite:t}`delta2022three`.\n````"),
        ("````{exercise} A title\n:label: ch1-ex2\n**Coding.** Do it.\n````\n\n"
        "```{solution-start} ch1-ex2\n:class: dropdown\n```"),
        nbformat.v4.new_code_cell("secret_two = 2"),
        "```{solution-end}\n```\n\nAfter the gated solution.",
    ])
    _nb(root / "book" / "02_second.ipynb", [
        "# Second chapter",
        ("See {ref}`the intro <sec-intro>`, {ref}`sec-intro`, {numref}`ch1-ex2` and "
        "[chapter 1](01_first.ipynb), [a section](01_first.ipynb#sec-intro), "
        "[the web](https://example.org/x.ipynb), `{cite}` in code and {doc}`01_first`."),
        ("Both {cite:p}`alpha2020one,beta2021two`; {cite:t}`beta2021two` wrote it; "
        "{term}`recurrences <linear recurrence>`; {math}`x^2`; a long\n{cite:p}`delta2022three` "
        "and `code {cite:p}` stays."),
        "- item {cite:t}`alpha2020one`\n  continued {ref}`sec-intro`\n\n> quoted {cite:p}`beta2021two`",
        ("```{note}\nA note with {cite:t}`alpha2020one`.\n```\n\n:::{tip}\nColon tip.\n:::\n\n"
        "```{admonition} My title\n:class: dropdown\nHidden body.\n```\n\n"
        "```{warning} First line\nsecond line\n```"),
        "$$\nx = 1\n$$ (eq-one)\n\nBy {eq}`eq-one`.\n\n\\begin{align}\na &= b\n\\end{align}",
        "```python\n{cite}`not-a-role` and ```{note}\n```\n\n% a comment\n\n+++\n\nEnd.",
        "## References\n\n```{bibliography}\n:filter: docname in docnames\n```",
    ])
    return root


def _convert(root, name, edition):
    conv = cn.Converter(cn.Book(root))
    return conv.notebook(root / "book" / name, edition)


def _md(nb):
    return "\n\n".join(c.source for c in nb.cells if c.cell_type == "markdown")


def test_base_url_from_repository_when_no_baseurl(toy):
    assert cn.Book(toy).base_url == "https://someone.github.io/toybook/"
    assert cn.published_base_url({"html": {"baseurl": "https://x.org/b"}}) == "https://x.org/b/"
    with pytest.raises(cn.ConversionError, match="baseurl"):
        cn.published_base_url({"repository": {"url": "https://gitlab.com/a/b"}})


def test_exercises_numbered_and_solutions_removed_for_students(toy):
    nb = _convert(toy, "01_first.ipynb", cn.STUDENT)
    md = _md(nb)
    assert "### Exercise 1.1\n\n**Derivation.** Show it (Alpha, 2020)." in md
    assert "### Exercise 1.2 (A title)" in md
    assert "SECRET-ONE" not in md
    assert "Solution to" not in md
    assert not any("secret_two" in c.source for c in nb.cells), "gated solution code kept"
    assert "After the gated solution." in md
    # the references list holds what the student edition cites, nothing from removed solutions
    assert "**Alpha, 2020.**" in md and "Delta" not in md
    assert "(sec-intro)=" not in md and "## Intro section" in md


def test_teacher_keeps_solutions_under_headings(toy):
    nb = _convert(toy, "01_first.ipynb", cn.TEACHER)
    md = _md(nb)
    assert "#### Solution to Exercise 1.1\n\nSECRET-ONE Delta et al. (2022)." in md
    assert "#### Solution to Exercise 1.2" in md
    assert any(c.cell_type == "code" and c.source == "secret_two = 2" for c in nb.cells)
    assert "**Delta et al., 2022.**" in md


def test_roles_links_and_citations(toy):
    md = _md(_convert(toy, "02_second.ipynb", cn.STUDENT))
    base = "https://someone.github.io/toybook/book/"
    assert f"See [the intro]({base}01_first.html#sec-intro), [Intro section]({base}01_first.html#sec-intro)" in md
    assert f"[Exercise 1.2]({base}01_first.html#ch1-ex2)" in md
    assert f"[chapter 1]({base}01_first.html), [a section]({base}01_first.html#sec-intro)" in md
    assert "[the web](https://example.org/x.ipynb)" in md
    assert "`{cite}` in code" in md and f"[First chapter]({base}01_first.html)" in md
    assert "Both (Alpha, 2020; Beta and Gamma, 2021); Beta and Gamma (2021) wrote it" in md
    assert f"[recurrences]({base}glossary.html#term-linear-recurrence)" in md
    assert "$x^2$" in md
    assert "a long\n(Delta et al., 2022) and `code {cite:p}` stays." in md
    assert f"- item Alpha (2020)\n  continued [Intro section]({base}01_first.html#sec-intro)" in md
    assert "> quoted (Beta and Gamma, 2021)" in md


def test_admonitions_become_block_quotes(toy):
    md = _md(_convert(toy, "02_second.ipynb", cn.STUDENT))
    assert "> **Note**\n>\n> A note with Alpha (2020)." in md
    assert "> **Tip**\n>\n> Colon tip." in md
    assert "> **My title**\n>\n> Hidden body." in md
    assert "> **Warning**\n>\n> First line\n> second line" in md


def test_equations_comments_and_code_blocks(toy):
    md = _md(_convert(toy, "02_second.ipynb", cn.STUDENT))
    assert "$$\nx = 1 \\tag{1}\n$$\n\nBy (1)." in md
    assert "$$\n\\begin{align}\na &= b\n\\end{align}\n$$" in md
    assert "```python\n{cite}`not-a-role` and ```{note}\n```" in md, "code blocks must be kept verbatim"
    assert "a comment" not in md and "+++" not in md and "End." in md


def test_references_replace_the_bibliography(toy):
    md = _md(_convert(toy, "02_second.ipynb", cn.STUDENT))
    refs = md.split("## References", 1)[1]
    assert "{bibliography}" not in md
    labels = re.findall(r"^- \*\*(.+?)\.\*\*", refs, re.MULTILINE)
    assert labels == ["Alpha, 2020", "Beta and Gamma, 2021", "Delta et al., 2022"]


def test_unknown_label_and_repository_links_fail_loudly(toy, tmp_path):
    conv = cn.Converter(cn.Book(toy))
    st = cn.State(doc="book/02_second", edition=cn.STUDENT, chapter=2)
    with pytest.raises(cn.ConversionError, match="unknown label"):
        conv.markdown("{ref}`no-such-label`", st)
    with pytest.raises(cn.ConversionError, match="repository file"):
        conv.markdown("[data](../benchmarks/x.json)", st)
    with pytest.raises(cn.ConversionError, match="not in the bibliography"):
        conv.markdown("{cite:p}`nobody1999`", st)
    with pytest.raises(cn.ConversionError, match="no plain-Markdown conversion"):
        conv.markdown("```{mystery}\nx\n```", st)


# --------------------------------------------------------------------------------------------
# 2. the converted chapters of the book
# --------------------------------------------------------------------------------------------

CHAPTERS = chapter_notebooks()


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """Both editions of every chapter, converted now (what `make colab` writes)."""
    out = tmp_path_factory.mktemp("colab")
    cn.main(["--out", str(out)])
    return out


def _source_solutions(path):
    """The longest line of every {solution} body, and every code cell of a gated solution."""
    nb = nbformat.read(path, as_version=4)
    texts, gated, inside = [], [], False
    for cell in nb.cells:
        if cell.cell_type == "code" and inside:
            gated.append(cell.source)
        if cell.cell_type != "markdown":
            continue
        for m in re.finditer(r"(`{3,}|:{3,})\{solution\}[^\n]*\n(.*?)\n\1", cell.source, re.DOTALL):
            body = [ln for ln in m.group(2).splitlines() if not ln.startswith(":")]
            texts.append(max(body, key=len).strip())
        start, end = cell.source.rfind("{solution-start}"), cell.source.rfind("{solution-end}")
        if start != end:                      # the later marker of the cell wins
            inside = start > end
    return texts, gated


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_no_myst_markup_left(converted, path):
    for nb_path in (converted / cn.COLAB_DIR / "book" / path.name, converted / cn.TEACHER_DIR / path.name):
        nb = nbformat.read(nb_path, as_version=4)
        nbformat.validate(nb)
        for i, c in enumerate(nb.cells):
            if c.cell_type != "markdown":
                continue
            # code blocks inside Markdown may show MyST on purpose; none of the chapters does
            left = [m for m in MYST_MARKUP if m in c.source]
            assert not left, f"{nb_path.name} cell {i}: MyST markup {left} left:\n{c.source[:300]}"
            assert not re.search(r"^\([\w:.-]+\)=\s*$", c.source, re.MULTILINE), f"{nb_path.name}: target left"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_student_notebook_has_no_solution_teacher_has_all(converted, path):
    texts, gated = _source_solutions(path)
    n_ex = sum(c.source.count("{exercise}") for c in nbformat.read(path, as_version=4).cells
               if c.cell_type == "markdown")
    chap = int(path.name[:2])
    student = nbformat.read(converted / cn.COLAB_DIR / "book" / path.name, as_version=4)
    teacher = nbformat.read(converted / cn.TEACHER_DIR / path.name, as_version=4)
    s_md, t_md = _md(student), _md(teacher)
    for t in texts:
        assert t not in s_md, f"{path.name}: a solution is in the student notebook: {t[:80]!r}"
        assert t in t_md, f"{path.name}: a solution is missing from the teacher notebook: {t[:80]!r}"
    s_code = [c.source for c in student.cells if c.cell_type == "code"]
    t_code = [c.source for c in teacher.cells if c.cell_type == "code"]
    for g in gated:
        assert g not in s_code, f"{path.name}: solution code in the student notebook: {g[:80]!r}"
        assert g in t_code
    assert "Solution" not in "".join(re.findall(r"^#+ .*$", s_md, re.MULTILINE))
    numbers = re.findall(rf"^#+ Exercise {chap}\.(\d+)\b", s_md, re.MULTILINE)
    assert [int(n) for n in numbers] == list(range(1, n_ex + 1)), f"{path.name}: exercises {numbers}"
    assert len(re.findall(r"^#+ Solution to Exercise", t_md, re.MULTILINE)) == len(texts) + (
        sum("{solution-start}" in c.source for c in nbformat.read(path, as_version=4).cells))
    assert "## References" in s_md and re.search(r"^- \*\*.+, \d{4}[a-z]?\.\*\*", s_md, re.MULTILINE)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_links_point_to_the_published_book(converted, path):
    base = cn.published_base_url(config())
    nb = nbformat.read(converted / cn.COLAB_DIR / "book" / path.name, as_version=4)
    urls = re.findall(r"\]\(([^)\s]+)\)", _md(nb))
    assert any(u.startswith(base) for u in urls), f"{path.name}: no link into the book"
    for url in urls:
        parts = urlsplit(url)
        assert parts.scheme in ("http", "https"), f"{path.name}: relative link {url!r} (opens nothing on Colab)"
        if url.startswith(base):
            assert parts.path.endswith((".html", "/")), f"{path.name}: {url!r} is not a page of the book"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_converted_code_cells_are_the_sources(converted, path):
    """Apart from removed solutions, the code students run is the book's code, cell for cell."""
    _, gated = _source_solutions(path)
    src = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    src = [c.source for c in src if c.source not in gated]
    out = [c for c in nbformat.read(converted / cn.COLAB_DIR / "book" / path.name, as_version=4).cells
           if c.cell_type == "code"]
    assert [c.source for c in out] == src
    assert all(c.outputs == [] and c.execution_count is None for c in out)


def test_make_colab_output_is_current():
    """`make colab` ran on the current sources (what the workflow publishes)."""
    if not COLAB.exists():
        pytest.skip("no _build/colab: run `make colab` (make test does)")
    conv = cn.Converter()
    for path in CHAPTERS:
        for edition, target in ((cn.STUDENT, COLAB / path.name), (cn.TEACHER, TEACHER / path.name)):
            assert target.exists(), f"{target} missing: run `make colab`"
            assert target.read_text() == nbformat.writes(conv.notebook(path, edition)) + "\n", (
                f"{target} is stale: run `make colab`")


# --------------------------------------------------------------------------------------------
# 3. the built book
# --------------------------------------------------------------------------------------------

@pytest.mark.html
@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_launch_and_repository_buttons(path):
    entry = path.relative_to(ROOT).with_suffix("").as_posix()
    page = HTML / f"{entry}.html"
    assert page.exists(), f"no built page {page}: run `make book`"
    text = page.read_text(encoding="utf-8")
    cfg = config()
    repo = cfg["repository"]["url"].rstrip("/")
    slug = repo.split("github.com/")[1]
    colab = re.findall(r'href="(https://colab\.research\.google\.com/[^"]+)"', text)
    branch = cfg["launch_buttons"]["colab_branch"]
    assert colab == [f"https://colab.research.google.com/github/{slug}/blob/{branch}/{entry}.ipynb"], colab
    assert f'href="{repo}"' in text, "the repository button must point to the repository"
    assert f"/blob/{cfg['repository']['branch']}/" not in " ".join(colab)


@pytest.mark.html
def test_links_land_on_existing_pages_and_anchors(converted):
    base = cn.published_base_url(config())
    ids_of = {}
    for nb_path in sorted((converted / cn.COLAB_DIR / "book").glob("*.ipynb")):
        for url in re.findall(r"\]\((" + re.escape(base) + r"[^)\s]*)\)", _md(nbformat.read(nb_path, as_version=4))):
            rel, _, frag = url[len(base):].partition("#")
            page = HTML / (rel or "index.html")
            assert page.exists(), f"{nb_path.name}: {url} has no built page {page}"
            if frag:
                if page not in ids_of:
                    ids_of[page] = set(re.findall(r'\bid="([^"]+)"', page.read_text(encoding="utf-8")))
                assert frag in ids_of[page], f"{nb_path.name}: {url}: no id {frag!r} in {page.name}"


# --------------------------------------------------------------------------------------------
# 4. every chapter alone, as on Colab
# --------------------------------------------------------------------------------------------

IMAGE_TYPES = ("image/png", "image/jpeg", "image/svg+xml", "image/gif")
KERNEL = "ssmbook-colab-test"


def _images(cell):
    return sum(1 for o in cell.get("outputs", []) for t in o.get("data", {}) if t in IMAGE_TYPES)


def _run(cmd, **kw):
    print("$", " ".join(map(str, cmd)), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, **kw)


@pytest.fixture(scope="module")
def fresh_env(tmp_path_factory):
    """A virtual environment with nothing but torch (CPU), the wheel of this checkout and ipykernel."""
    tmp = tmp_path_factory.mktemp("colab_env")
    t0 = time.perf_counter()
    # build from a copy of what the package is made of, so setuptools leaves nothing in the checkout
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, src / name)
    for name in ("ssmbook", "kernels"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", tmp / "wheel", src], cwd=tmp)
    wheel = next((tmp / "wheel").glob("ssmbook-*.whl"))
    _run([sys.executable, "-m", "venv", tmp / "venv"])
    py = tmp / "venv" / "bin" / "python"
    _run([py, "-m", "pip", "install", "-q", "torch==2.13.0"])       # the CPU build, first
    _run([py, "-m", "pip", "install", "-q", wheel, "ipykernel"])     # the rest from the index
    _run([py, "-m", "ipykernel", "install", "--prefix", tmp / "venv", "--name", KERNEL])
    where = subprocess.run([py, "-c", "import ssmbook; print(ssmbook.__file__)"], cwd=tmp, check=True,
                           capture_output=True, text=True).stdout.strip()
    assert pathlib.Path(where).is_relative_to(tmp / "venv"), f"ssmbook imported from {where}"
    print(f"fresh environment ready in {time.perf_counter() - t0:.0f} s", flush=True)
    return tmp / "venv"


def _kernel_env():
    """The kernel's environment: nothing that points back at the checkout or at the test setup."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "MPLBACKEND", "TRITON_INTERPRET", "VIRTUAL_ENV", "JUPYTER_PATH")
           and not k.startswith("SSMBOOK_")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if not p.startswith(str(ROOT)))
    return env


@pytest.mark.html
@pytest.mark.slow
def test_every_chapter_runs_alone_in_a_fresh_environment(fresh_env, tmp_path, monkeypatch):
    from jupyter_client.kernelspec import KernelSpecManager
    from nbclient import NotebookClient

    if not COLAB.exists():
        pytest.fail("no _build/colab/book: run `make colab` first (make test does)")
    executed = HTML.parent / "jupyter_execute" / "book"
    if not executed.exists():
        pytest.fail(f"no executed book at {executed}: run `make book` first (make test does)")
    monkeypatch.setenv("JUPYTER_PATH", str(fresh_env / "share" / "jupyter"))
    assert KERNEL in KernelSpecManager().find_kernel_specs()
    report, missing = [], []
    for path in CHAPTERS:
        folder = tmp_path / path.stem
        folder.mkdir()
        nb_path = folder / path.name
        nb_path.write_bytes((COLAB / path.name).read_bytes())      # the notebook, alone
        nb = nbformat.read(nb_path, as_version=4)
        client = NotebookClient(nb, timeout=600, kernel_name=KERNEL,
                                resources={"metadata": {"path": str(folder)}}, allow_errors=False)
        t0 = time.perf_counter()
        client.execute(env=_kernel_env())
        seconds = time.perf_counter() - t0
        book = nbformat.read(executed / path.name, as_version=4)
        book_images = {c.get("id"): _images(c) for c in book.cells if c.cell_type == "code"}
        n_book = n_alone = 0
        for c in nb.cells:
            if c.cell_type != "code":
                continue
            want = book_images.get(c.get("id"))
            assert want is not None, f"{path.name}: cell {c.get('id')} is not in the book build"
            got = _images(c)
            n_book, n_alone = n_book + want, n_alone + got
            if got < want:
                missing.append(f"{path.name} cell {c.get('id')}: {want} figure(s) in the book, {got} alone")
        report.append((path.name, seconds, n_book, n_alone))
        print(f"{path.name:28s} {seconds:6.1f} s   figures: book {n_book:3d}, alone {n_alone:3d}", flush=True)
    total = sum(r[1] for r in report)
    print(f"{'all chapters':28s} {total:6.1f} s", flush=True)
    (HTML.parent / "colab_run.json").write_text(json.dumps(
        [{"notebook": n, "seconds": round(s, 1), "figures_book": b, "figures_alone": a} for n, s, b, a in report],
        indent=1))
    assert not missing, "figures missing in the standalone runs:\n" + "\n".join(missing)


# --------------------------------------------------------------------------------------------
# the benchmark results chapter 6 plots ship with the package
# --------------------------------------------------------------------------------------------

def test_benchmark_results_are_package_data():
    import ssmbook
    from ssmbook import benchmarks

    runs = ssmbook.benchmark_results()
    files = sorted(benchmarks.RESULTS.glob("*.json"))
    assert files and benchmarks.RESULTS.is_relative_to(pathlib.Path(ssmbook.__file__).parent)
    gpu_files = [f for f in files if json.loads(f.read_text())["environment"]["device"] == "cuda"]
    assert len(runs) == len(gpu_files) >= 1
    dates = [r["environment"]["date"] for r in runs]
    assert dates == sorted(dates, reverse=True), "newest run first"
    for r in runs:
        assert r["environment"]["gpu"] and r["selective_scan"] and r["copy_bandwidth"]["GBps"] > 0
    # one place for the results: the benchmark script writes there, nothing is left beside it
    assert not list((ROOT / "benchmarks" / "results").glob("*.json")), (
        "benchmark results belong in ssmbook/data/benchmarks/ (package data read by chapter 6)")
    with pytest.raises(ValueError, match="folder"):
        benchmarks.load_results(ROOT / "no-such-folder")
    import tomllib

    pkg_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "data/benchmarks/*.json" in pkg_data["ssmbook"]
