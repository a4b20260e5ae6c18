# Two commands on a fresh machine:   make book    and    make test
# Both create .venv from requirements.txt (CPU torch first) the first time.
PY      ?= python3
VENV    ?= .venv
BIN      = $(VENV)/bin
STAMP    = $(VENV)/.installed
JB_FLAGS = -W -n --keep-going

.PHONY: book test test-fast chapter venv browser vendor slides print colab clean

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

# Headless Chromium for the browser tests (Debian package; driven by Playwright's Python API).
browser:
	@test -x /usr/bin/chromium || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

book: venv vendor
	rm -rf _build/html _build/.doctrees
	PATH=$(abspath $(BIN)):$$PATH MPLBACKEND=module://matplotlib_inline.backend_inline \
		$(BIN)/jupyter-book build . $(JB_FLAGS)

# Reveal.js and MathJax for the slides and the printable book (npm registry), into _build/vendor.
vendor:
	bash scripts/vendor.sh

# One lecture deck per chapter, from the cells tagged for slides, with the build's outputs:
# _build/html/slides/NN_name.slides.html (inside the site; reveal.js vendored, the site's MathJax)
slides: venv vendor
	@test -d _build/jupyter_execute || $(MAKE) book
	$(BIN)/python scripts/make_slides.py

# The printed book in both editions: _build/html/ssmbook.pdf (students, no solutions) and
# _build/teacher/ssmbook-teacher.pdf (teachers, with the solutions)
print: venv vendor browser
	@test -f _build/html/index.html || $(MAKE) book
	$(BIN)/python scripts/make_print.py --edition both

# Plain-Markdown notebooks for Colab (_build/colab/book/, no solutions; published on the colab
# branch) and for teachers (_build/teacher/notebooks/, with solutions), from the chapters in _toc.yml.
colab: venv
	$(BIN)/python scripts/colab_notebooks.py

# The whole test suite: build the book (executing every chapter), the slides, the printable book and
# the Colab notebooks, then pytest, including the tests on the built HTML, the decks, the PDF, the
# browser tests and the Colab-style run of every chapter alone in a fresh environment.
test: venv browser book
	$(MAKE) slides print colab
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m pytest -q -ra tests

# Package and kernel tests only (no book build).
test-fast: venv
	$(BIN)/python -m pytest -q -ra -m "not html and not browser" tests

# Build one chapter quickly into /tmp:  make chapter NB=book/01_hmm.ipynb
chapter: venv vendor
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python scripts/build_chapter.py $(NB)

clean:
	rm -rf _build
