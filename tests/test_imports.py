"""Every module of the package imports on its own, and the package has no import circles.

1. Each module of ``ssmbook`` and ``ssmbook.kernels`` is imported ALONE in a fresh interpreter
   (``python -c "import ssmbook.X"``): a module that only works when some other module happened
   to be imported first fails here.
2. A static check over the source: the graph of intra-package imports (module-level and inside
   functions: ``from . import x``, ``from .x import y``, ``from ..x import y``, ``import ssmbook.x``,
   ``from ssmbook.x import y``), read with ``ast``, must have no cycle.  A lazy import inside a
   function still ties the two modules together, so it counts.  The folder ``kernels/`` is the
   package ``ssmbook.kernels`` (it is installed so), sub-packages included.
"""
from __future__ import annotations

import ast
import concurrent.futures
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
# where each package's source lives: ssmbook/kernels is a link to kernels/ in a checkout, so the
# walk reads kernels/ itself and skips the link
PACKAGES = {"ssmbook": ROOT / "ssmbook", "ssmbook.kernels": ROOT / "kernels"}


def module_files() -> dict[str, pathlib.Path]:
    """``{module name: source file}`` for every module of the package (``__init__`` files name
    their package)."""
    found = {}
    for package, folder in PACKAGES.items():
        for path in sorted(folder.rglob("*.py")):
            rel = path.relative_to(folder)
            if package == "ssmbook" and rel.parts[0] == "kernels":
                continue
            if "__pycache__" in rel.parts:
                continue
            parts = list(rel.with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([package, *parts])] = path
    return found


MODULES = module_files()


def import_edges(name: str, path: pathlib.Path, modules) -> set[str]:
    """The package modules that the source of ``name`` imports, anywhere in the file."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    edges = set()

    def add(target: str, names=()):
        # ``from a import b``: b is a submodule of a, or a name that a's source defines
        subs = [f"{target}.{n}" for n in names if f"{target}.{n}" in modules]
        found = subs + ([target] if len(subs) < len(names) or not names else [])
        for mod in found:
            edges.add(mod)
            # a package above the module runs first, unless it is one that ``name`` lives in
            # (it is already running when ``name`` is imported)
            parts = mod.split(".")
            for k in range(1, len(parts)):
                prefix = ".".join(parts[:k])
                if prefix in modules and not name.startswith(prefix + "."):
                    edges.add(prefix)

    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target == "ssmbook" or target.startswith("ssmbook."):
                add(target, [a.name for a in node.names])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("ssmbook."):
                    add(alias.name)
    edges.discard(name)
    return edges


def import_graph() -> dict[str, set[str]]:
    return {name: import_edges(name, path, MODULES) for name, path in MODULES.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles of ``graph``: for each module in a strongly connected component of more
    than one module (Tarjan's algorithm), the shortest cycle through it; each cycle once, written
    from its smallest module name (first == last)."""
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def connect(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                components.append(comp)

    for v in sorted(graph):
        if v not in index:
            connect(v)

    cycles = set()
    for comp in components:
        for start in sorted(comp):
            # breadth-first search for the shortest way back to ``start`` inside the component
            paths, seen = [[start]], {start}
            while paths:
                path = paths.pop(0)
                nxt = sorted(w for w in graph[path[-1]] if w in comp)
                if start in nxt:
                    k = path.index(min(path))
                    cycles.add(tuple(path[k:] + path[:k]))
                    break
                for w in nxt:
                    if w not in seen:
                        seen.add(w)
                        paths.append(path + [w])
    return sorted(list(c) + [c[0]] for c in cycles)


# ------------------------------------------------------------------------------ the graph's reader
def test_the_walk_finds_the_package():
    assert "ssmbook" in MODULES and "ssmbook.kernels" in MODULES and "ssmbook._checks" in MODULES
    assert all(not name.startswith("ssmbook.kernels.kernels") for name in MODULES)


def test_edges_are_read_from_every_import_form(tmp_path):
    src = tmp_path / "pkg"
    (src / "sub").mkdir(parents=True)
    files = {
        "ssmbook.a": src / "a.py", "ssmbook.b": src / "b.py", "ssmbook.c": src / "c.py",
        "ssmbook.d": src / "d.py", "ssmbook.sub": src / "sub" / "__init__.py",
        "ssmbook.sub.e": src / "sub" / "e.py", "ssmbook": src / "__init__.py",
    }
    files["ssmbook.a"].write_text(
        "from . import b\n"
        "def f():\n    from .c import thing\n"
        "def g():\n    import ssmbook.d\n"
        "from .sub import e\n"
        "from . import __version__\n"
        "import numpy\n")
    files["ssmbook.sub.e"].write_text("from .. import c\nfrom ssmbook.b import x\n")
    files["ssmbook.sub"].write_text("from .e import y\n")
    files["ssmbook.c"].write_text("from . import b\nfrom .sub.e import z\n")
    for p in files.values():
        p.touch()
    assert import_edges("ssmbook.a", files["ssmbook.a"], files) == {
        "ssmbook.b", "ssmbook.c", "ssmbook.d", "ssmbook.sub", "ssmbook.sub.e", "ssmbook"}
    assert import_edges("ssmbook.sub.e", files["ssmbook.sub.e"], files) == {"ssmbook.c", "ssmbook.b"}
    assert import_edges("ssmbook.sub", files["ssmbook.sub"], files) == {"ssmbook.sub.e"}
    # a sibling submodule is the edge, not the package both live in; a package above a module
    # from another branch runs first, so it is an edge too
    assert import_edges("ssmbook.c", files["ssmbook.c"], files) == {"ssmbook.b", "ssmbook.sub", "ssmbook.sub.e"}


def test_find_cycles_reports_each_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a", "e"}, "e": {"d"}, "f": {"a"}}
    assert find_cycles(graph) == [["a", "b", "c", "a"], ["d", "e", "d"]]
    # two circles that share a module are both reported
    graph = {"m": {"s"}, "s": {"m", "k"}, "k": {"kk"}, "kk": {"s"}}
    assert find_cycles(graph) == [["k", "kk", "s", "k"], ["m", "s", "m"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


# ------------------------------------------------------------------------------ the package

def test_no_import_cycles():
    cycles = find_cycles(import_graph())
    text = "\n".join("  " + " -> ".join(c) for c in cycles)
    print(f"import cycles:\n{text}" if cycles else "no import cycles")
    assert not cycles, f"import cycles in the package:\n{text}"


def _import_alone(module: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return subprocess.run([sys.executable, "-c", f"import {module}"], cwd=ROOT, env=env, check=False,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def imported_alone():
    """Every module imported in its own interpreter, a few interpreters at a time."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(sorted(MODULES), pool.map(_import_alone, sorted(MODULES))))


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_imports_alone(module, imported_alone):
    proc = imported_alone[module]
    assert proc.returncode == 0, f"import {module} failed alone:\n{proc.stderr[-3000:]}"
