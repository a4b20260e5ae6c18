"""Build the intro plus one chapter into /tmp, with the book's own settings (-W -n).

    python scripts/build_chapter.py book/05_selective.ipynb

Used while writing a chapter; `make book` builds the whole book.
"""
import pathlib
import subprocess
import sys
import tempfile

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]


def main(argv):
    if len(argv) != 1:
        sys.exit("usage: build_chapter.py book/NN_name.ipynb")
    page = pathlib.Path(argv[0])
    if not (ROOT / page).exists():
        sys.exit(f"no such page: {page}")
    stem = page.with_suffix("").as_posix()
    out = pathlib.Path(tempfile.gettempdir()) / "ssmbook-build" / page.stem
    subprocess.check_call(["bash", str(ROOT / "scripts" / "vendor.sh")])
    # Links to chapters that are not in this one-chapter build would warn (myst.xref_missing):
    # silence only that warning here; `make book` builds everything and keeps it.
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    cfg["sphinx"]["config"]["suppress_warnings"] = list(cfg["sphinx"]["config"].get("suppress_warnings", [])) + [
        "myst.xref_missing"]
    cfg["sphinx"]["config"]["html_static_path"] = [str(ROOT / p) for p in cfg["sphinx"]["config"]["html_static_path"]]
    cfg["bibtex_bibfiles"] = [str(ROOT / p) for p in cfg["bibtex_bibfiles"]]
    with tempfile.NamedTemporaryFile("w", prefix=".chapter-build-", suffix=".yml", delete=False, dir=ROOT) as toc, \
            tempfile.NamedTemporaryFile("w", prefix=".chapter-build-", suffix=".yml", delete=False, dir=ROOT) as conf:
        toc.write(f"format: jb-book\nroot: book/intro\nchapters:\n  - file: {stem}\n  - file: book/glossary\n")
        yaml.safe_dump(cfg, conf, allow_unicode=True)
    try:
        cmd = ["jupyter-book", "build", str(ROOT), "--toc", toc.name, "--config", conf.name,
               "--path-output", str(out), "-W", "-n", "--keep-going"]
        print(" ".join(cmd), flush=True)
        rc = subprocess.call(cmd)
    finally:
        pathlib.Path(toc.name).unlink()
        pathlib.Path(conf.name).unlink()
    print(f"HTML: {out}/_build/html/{stem}.html")
    sys.exit(rc)


if __name__ == "__main__":
    main(sys.argv[1:])
