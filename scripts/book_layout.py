"""Where the book lives: _toc.yml entries, their sources and built pages (used by scripts/ and tests/)."""
import os
import pathlib

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
HTML = pathlib.Path(os.environ.get("SSMBOOK_HTML", ROOT / "_build" / "html"))


def config():
    return yaml.safe_load((ROOT / "_config.yml").read_text())


def toc_files():
    """Every file named in _toc.yml, in order (root first), without suffix."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    out = [toc["root"]]

    def walk(entries):
        for e in entries or []:
            if "file" in e:
                out.append(e["file"])
            walk(e.get("sections"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    return out


def source_of(entry):
    for suffix in (".ipynb", ".md"):
        p = ROOT / (entry + suffix)
        if p.exists():
            return p
    raise FileNotFoundError(f"_toc.yml names {entry!r} but neither .ipynb nor .md exists")


def chapter_notebooks():
    return [source_of(e) for e in toc_files() if source_of(e).suffix == ".ipynb"]


def built_page(entry):
    page = HTML / (entry + ".html")
    if not HTML.exists():
        raise AssertionError(f"no built book at {HTML}: run `make book` first (or `make test`)")
    return page


def chapter_entries():
    """_toc.yml entries that are notebooks (or missing: then the page tests fail loudly)."""
    return [e for e in toc_files() if not (ROOT / (e + ".md")).exists()]
