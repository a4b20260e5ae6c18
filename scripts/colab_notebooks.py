"""Convert the book's chapters into plain notebooks for Colab (students) and for teachers.

    python scripts/colab_notebooks.py            # what `make colab` runs

For every notebook listed in _toc.yml this writes

- ``_build/colab/book/NN_name.ipynb``: the student edition, published on the ``colab`` branch that
  the book's Colab buttons open; exercises as numbered headings, solutions removed;
- ``_build/teacher/notebooks/NN_name.ipynb``: the teacher edition, the same conversion with each
  solution kept as plain Markdown under a "Solution" heading.

Colab renders plain notebook Markdown, not MyST, so every MyST role and directive is turned into
its plain equivalent: citations into "Author, year" text with a references list at the end (from
book/references.bib, read with pybtex), cross-references and links to other pages into links to the
published book (``html.baseurl`` in _config.yml), admonitions into block quotes with a bold title,
exercises into "Exercise C.k" headings (C the chapter number, k the index within the chapter, the
book's own numbering).  The Markdown is parsed with the parser the book is built with (myst-parser's
markdown-it configuration), so code spans, code blocks and math are never touched; each construct
is replaced in the source text at the position the parser reports, and everything else is kept
byte for byte.
"""
from __future__ import annotations

import argparse
import copy
import functools
import pathlib
import re
import shutil
import string
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import nbformat
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
STUDENT, TEACHER = "student", "teacher"
COLAB_DIR = pathlib.Path("_build/colab")
TEACHER_DIR = pathlib.Path("_build/teacher/notebooks")

# Directives rendered as a block quote with a bold title; those without an argument treat the
# text after the name as the first line of the body (as MyST does).
ADMONITIONS = {
    "note": "Note", "tip": "Tip", "important": "Important", "warning": "Warning",
    "caution": "Caution", "attention": "Attention", "danger": "Danger", "error": "Error",
    "hint": "Hint", "seealso": "See also", "todo": "To do",
}
TITLED_BLOCKS = {"admonition", "dropdown", "sidebar", "topic", "margin", "card", "epigraph",
                 "pull-quote", "highlights", "rubric", "div", "container"}
CODE_DIRECTIVES = {"code", "code-block", "sourcecode", "code-cell", "literalinclude"}
MATH_DIRECTIVES = {"math"}
DROPPED_DIRECTIVES = {"bibliography", "toctree", "tableofcontents", "index", "only"}

CITE_ROLES = {"cite", "cite:p", "cite:ps", "cite:t", "cite:ts", "cite:alp", "cite:alps",
              "cite:author", "cite:authors", "cite:year", "cite:yearpar", "cite:label",
              "cite:empty", "cite:cite", "cite:citet", "cite:citep"}
REF_ROLES = {"ref", "numref", "doc", "eq", "any", "std:ref", "std:numref", "std:doc"}
REF_TEXT = re.compile(r"^(?P<text>.*?)\s*<(?P<target>[^<>]+)>$", re.DOTALL)


class ConversionError(ValueError):
    """The source uses something the converter cannot turn into plain Markdown."""


# --------------------------------------------------------------------------------------------
# The book: configuration, the labels of every page, the bibliography
# --------------------------------------------------------------------------------------------

def published_base_url(cfg: dict) -> str:
    """The published book's address: ``html.baseurl``, else https://<owner>.github.io/<repo>/."""
    base = (cfg.get("html") or {}).get("baseurl") or (cfg.get("sphinx", {}).get("config") or {}).get(
        "html_baseurl")
    if not base:
        url = (cfg.get("repository") or {}).get("url", "")
        parts = urlsplit(url)
        segs = [s for s in parts.path.split("/") if s]
        if parts.netloc != "github.com" or len(segs) < 2:
            raise ConversionError(
                f"_config.yml: set html.baseurl (the published book) or a GitHub repository.url, got {url!r}")
        base = f"https://{segs[0].lower()}.github.io/{segs[1].removesuffix('.git')}/"
    return base.rstrip("/") + "/"


def chapter_number(docname: str) -> int | None:
    """The chapter number of a page, from its file name (book/05_selective -> 5)."""
    m = re.match(r"(\d+)_", pathlib.PurePosixPath(docname).name)
    return int(m.group(1)) if m else None


def toc_documents(root: pathlib.Path) -> dict:
    """{docname: source file} of every page in _toc.yml, in order (root first)."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    names = [toc["root"]]

    def walk(entries):
        for e in entries or []:
            if "file" in e:
                names.append(e["file"])
            walk(e.get("sections"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    docs = {}
    for name in names:
        path = next((root / (name + s) for s in (".ipynb", ".md") if (root / (name + s)).exists()), None)
        if path is None:
            raise ConversionError(f"_toc.yml names {name!r} but neither .ipynb nor .md exists")
        docs[name] = path
    return docs


def markdown_parser(cfg: dict):
    """The MyST markdown-it parser with the book's extensions (parse.myst_enable_extensions)."""
    from markdown_it.renderer import RendererHTML
    from myst_parser.config.main import MdParserConfig
    from myst_parser.parsers.mdit import create_md_parser

    exts = set((cfg.get("parse") or {}).get("myst_enable_extensions") or [])
    md = create_md_parser(MdParserConfig(enable_extensions=exts), RendererHTML)
    # Record where each role and each link sits in the inline source, so that they can be
    # replaced in place (markdown-it keeps positions for blocks only).
    for name, opener in (("myst_role", "myst_role"), ("link", "link_open")):
        try:
            rule = md.inline.ruler.__rules__[md.inline.ruler.__find__(name)].fn
        except (KeyError, IndexError):
            continue
        md.inline.ruler.at(name, _spanning(rule, opener))
    return md


def _spanning(rule, opener):
    def wrapped(state, silent):
        start, n = state.pos, len(state.tokens)
        ok = rule(state, silent)
        if ok and not silent:
            first = next((t for t in state.tokens[n:] if t.type == opener), None)
            if first is not None:
                first.meta = dict(first.meta or {}, span=(start, state.pos))
        return ok
    return wrapped


@dataclass
class Label:
    doc: str            # docname, e.g. book/05_selective
    kind: str           # section | exercise | equation | figure | table | code | target
    anchor: str         # HTML id on the published page
    title: str = ""     # heading text or caption
    number: str = ""    # "5.2" for exercises, "3" for equations


def split_directive(token):
    """(name, argument, options, body) of a ```{name} fence or :::{name} colon fence; None if plain."""
    m = re.match(r"^\{([\w:.+-]+)\}\s*(.*)$", token.info.strip(), re.DOTALL)
    if not m:
        return None
    name, arg = m.group(1), m.group(2).strip()
    lines = token.content.split("\n")
    opts = {}
    if lines and lines[0].strip() == "---":
        end = next((i for i in range(1, len(lines)) if lines[i].strip() == "---"), None)
        if end is None:
            raise ConversionError(f"{{{name}}}: unterminated option block")
        opts = yaml.safe_load("\n".join(lines[1:end])) or {}
        lines = lines[end + 1:]
    else:
        while lines and re.match(r"^:[\w-]+:", lines[0]):
            key, _, val = lines.pop(0)[1:].partition(":")
            opts[key.strip()] = val.strip()
    while lines and not lines[0].strip():
        lines.pop(0)
    return name, arg, {k: ("" if v is None else str(v)) for k, v in opts.items()}, "\n".join(lines)


def inline_text(token) -> str:
    """Plain text of an inline token (heading titles, captions)."""
    out = []
    for ch in token.children or []:
        if ch.type in ("text", "code_inline", "math_inline"):
            out.append(ch.content if ch.type == "text" else (
                f"`{ch.content}`" if ch.type == "code_inline" else f"${ch.content}$"))
        elif ch.type == "myst_role":
            m = REF_TEXT.match(ch.content)
            out.append(m.group("text") if m else ch.content)
        elif ch.type == "softbreak":
            out.append(" ")
    return "".join(out).strip()


class Book:
    """Everything the conversion needs to know about the whole book."""

    def __init__(self, root: pathlib.Path = ROOT):
        self.root = root
        self.cfg = yaml.safe_load((root / "_config.yml").read_text())
        self.base_url = published_base_url(self.cfg)
        self.md = markdown_parser(self.cfg)
        self.docs = toc_documents(root)
        self.labels: dict[str, Label] = {}
        for doc, path in self.docs.items():
            self._index(doc, path)
        self.bib = self._bibliography()

    # ---- labels ----------------------------------------------------------------------------
    def _markdown_sources(self, path):
        if path.suffix == ".ipynb":
            nb = nbformat.read(path, as_version=4)
            return [c.source for c in nb.cells if c.cell_type == "markdown"]
        text = path.read_text()
        if text.startswith("---\n"):        # front matter
            text = text.split("\n---\n", 1)[-1]
        return [text]

    def _index(self, doc, path):
        counts = {"exercise": 0, "equation": 0}
        pending = []                         # (label)= targets waiting for the next block
        for src in self._markdown_sources(path):
            self._index_markdown(src, doc, counts, pending)
        if pending:
            raise ConversionError(f"{path.name}: target(s) {pending} are not followed by any block")

    def _index_markdown(self, src, doc, counts, pending):
        chap = chapter_number(doc)
        tokens = self.md.parse(src)
        for i, tok in enumerate(tokens):
            if tok.type == "myst_target":
                pending.append(tok.content)
                continue
            if tok.type == "heading_open" and pending:
                title = inline_text(tokens[i + 1])
                for lab in pending:
                    self._add(lab, Label(doc, "section", lab, title))
                pending.clear()
            elif pending and tok.nesting >= 0 and tok.type != "inline":
                for lab in pending:
                    self._add(lab, Label(doc, "target", lab))
                pending.clear()
            if tok.type == "math_block_label":
                counts["equation"] += 1
                self._add(tok.info, Label(doc, "equation", f"equation-{tok.info}",
                                          number=str(counts["equation"])))
            if tok.type not in ("fence", "colon_fence"):
                continue
            d = split_directive(tok)
            if d is None:
                continue
            name, arg, opts, body = d
            if name == "exercise":
                number = ""
                if "nonumber" not in opts:
                    counts["exercise"] += 1
                    k = counts["exercise"]
                    number = f"{chap}.{k}" if chap is not None else str(k)
                if "label" in opts:
                    self._add(opts["label"], Label(doc, "exercise", opts["label"], arg, number))
            elif name == "math" and "label" in opts:
                counts["equation"] += 1
                self._add(opts["label"], Label(doc, "equation", f"equation-{opts['label']}",
                                               number=str(counts["equation"])))
            elif name in ("figure", "table", "code-block") and "name" in opts:
                self._add(opts["name"], Label(doc, name, opts["name"], body.split("\n")[0]))
            if name not in CODE_DIRECTIVES and name not in ("glossary", "raw"):
                self._index_markdown(body, doc, counts, pending)

    def _add(self, label, info):
        if label in self.labels and self.labels[label] != info:
            raise ConversionError(f"label {label!r} defined twice ({self.labels[label].doc}, {info.doc})")
        self.labels[label] = info

    def url(self, doc: str, anchor: str = "") -> str:
        return f"{self.base_url}{doc}.html" + (f"#{anchor}" if anchor else "")

    def glossary_doc(self):
        return next((d for d in self.docs if pathlib.PurePosixPath(d).name == "glossary"), None)

    # ---- bibliography ----------------------------------------------------------------------
    def _bibliography(self):
        from pybtex.database import BibliographyData, parse_file

        data = BibliographyData()
        for f in self.cfg.get("bibtex_bibfiles", []):
            for key, entry in parse_file(str(self.root / f)).entries.items():
                data.add_entry(key, entry)
        return data

    def cite_entry(self, key):
        try:
            return self.bib.entries[key]
        except KeyError:
            raise ConversionError(f"citation {key!r} is not in the bibliography") from None


@functools.cache
def _plain_latex(text: str) -> str:
    from pybtex.backends.plaintext import Backend
    from pybtex.richtext import Text

    # a backend instance, not render_as(name): that looks the plugin up in the entry points each time
    return Text.from_latex(text).render(Backend())


def cite_authors(entry, full=False) -> str:
    """Last names as the book prints them: "Gu", "Gu and Dao", "Gu et al."."""
    people = entry.persons.get("author") or entry.persons.get("editor") or []
    names = [_plain_latex(" ".join(p.prelast_names + p.last_names)) for p in people]
    if not names:
        return _plain_latex(entry.fields.get("title", entry.key))
    if len(names) == 1:
        return names[0]
    if len(names) == 2:
        return f"{names[0]} and {names[1]}"
    if full:
        return ", ".join(names[:-1]) + ", and " + names[-1]
    return f"{names[0]} et al."


def cite_year(entry) -> str:
    return entry.fields.get("year", "n.d.")


# --------------------------------------------------------------------------------------------
# Converting one notebook
# --------------------------------------------------------------------------------------------

@dataclass
class State:
    """What one notebook's conversion carries from cell to cell."""
    doc: str
    edition: str
    chapter: int | None
    exercises: int = 0
    equations: int = 0
    heading: int = 1                      # level of the last heading seen
    cited: list = field(default_factory=list)
    exercise_numbers: dict = field(default_factory=dict)   # label -> "5.2"
    in_gated_solution: bool = False
    saw_bibliography: bool = False


class Converter:
    def __init__(self, book: Book | None = None):
        self.book = book or Book()
        self.md = self.book.md

    # ---- roles -----------------------------------------------------------------------------
    def role(self, name: str, content: str, st: State) -> str:
        if name in CITE_ROLES:
            return self.cite(name, content, st)
        if name in REF_ROLES:
            return self.ref(name, content, st)
        m = REF_TEXT.match(content)
        text, target = (m.group("text"), m.group("target")) if m else (content, content)
        if name == "term":
            gdoc = self.book.glossary_doc()
            if gdoc is None:
                return text
            from sphinx.util.nodes import _make_id

            return f"[{text}]({self.book.url(gdoc, _make_id('term-' + target))})"
        if name == "math":
            return f"${content}$"
        if name in ("code", "literal", "samp", "file", "command", "program", "envvar", "option"):
            return f"`{content}`"
        if name in ("sup", "sub", "kbd"):
            return f"<{name}>{content}</{name}>"
        if name in ("guilabel", "menuselection", "strong"):
            return f"**{content}**"
        if name in ("emphasis", "dfn"):
            return f"*{content}*"
        if name.startswith("glue") or name in ("download", "abbr", "index", "sub-ref", "raw"):
            m2 = re.match(r"^(.*?)\s*\((.*)\)$", content) if name == "abbr" else None
            return m2.group(1) if m2 else text if name != "index" else content.split(";")[-1].strip("! ")
        raise ConversionError(f"{st.doc}: role {{{name}}} has no plain-Markdown conversion")

    def cite(self, name, content, st):
        keys = [k.strip() for k in content.split(",") if k.strip()]
        entries = []
        for k in keys:
            entries.append(self.book.cite_entry(k))
            if k not in st.cited:
                st.cited.append(k)
        full = name in ("cite:ps", "cite:ts", "cite:alps", "cite:authors")
        if name in ("cite:t", "cite:ts", "cite:citet"):
            return "; ".join(f"{cite_authors(e, full)} ({cite_year(e)})" for e in entries)
        if name in ("cite:author", "cite:authors"):
            return "; ".join(cite_authors(e, full) for e in entries)
        if name == "cite:year":
            return "; ".join(cite_year(e) for e in entries)
        if name == "cite:yearpar":
            return "(" + "; ".join(cite_year(e) for e in entries) + ")"
        if name == "cite:empty":
            return ""
        body = "; ".join(f"{cite_authors(e, full)}, {cite_year(e)}" for e in entries)
        return body if name in ("cite:alp", "cite:alps") else f"({body})"

    def ref(self, name, content, st):
        m = REF_TEXT.match(content)
        text, target = (m.group("text"), m.group("target").strip()) if m else (None, content.strip())
        kind = name.split(":")[-1]
        if kind == "doc":
            doc = self._resolve_doc(target, st.doc)
            if text is None:
                text = self._doc_title(doc)
            return f"[{text}]({self.book.url(doc)})"
        lab = self.book.labels.get(target)
        if lab is None:
            raise ConversionError(f"{st.doc}: {{{name}}}`{content}`: unknown label {target!r}")
        number = lab.number
        if kind == "eq":
            shown = f"({number})" if text is None else text
        elif kind == "numref":
            prefix = {"exercise": "Exercise", "figure": "Fig.", "table": "Table",
                      "equation": "Equation", "code": "Listing"}.get(lab.kind, "Section")
            if text is None:
                shown = f"{prefix} {number}".strip()
            else:
                shown = text.replace("%s", number).replace("{number}", number).replace(
                    "{name}", lab.title)
        else:
            if text is not None:
                shown = text
            elif lab.kind == "exercise":
                shown = f"Exercise {number}" + (f" ({lab.title})" if lab.title else "")
            elif lab.kind == "equation":
                shown = f"({number})"
            else:
                shown = lab.title or target
        if lab.doc == st.doc:
            # the target is in this notebook: name it, without sending the reader away
            return shown
        return f"[{shown}]({self.book.url(lab.doc, lab.anchor)})"

    def _resolve_doc(self, target, here):
        t = target.removesuffix(".ipynb").removesuffix(".md")
        cand = (pathlib.PurePosixPath(t.lstrip("/")) if t.startswith("/") else
                pathlib.PurePosixPath(here).parent / t)
        parts = []
        for p in cand.parts:
            if p == "..":
                parts.pop()
            elif p != ".":
                parts.append(p)
        doc = "/".join(parts)
        if doc not in self.book.docs:
            raise ConversionError(f"{here}: link to {target!r}, which is not a page of the book")
        return doc

    def _doc_title(self, doc):
        for src in self.book._markdown_sources(self.book.docs[doc]):
            toks = self.md.parse(src)
            for i, t in enumerate(toks):
                if t.type == "heading_open":
                    return inline_text(toks[i + 1])
        return doc

    def link(self, href, st):
        """A Markdown link target: pages of the book become their published addresses."""
        parts = urlsplit(href)
        if parts.scheme or parts.netloc or href.startswith("#") or not parts.path:
            return href
        if not parts.path.endswith((".ipynb", ".md")):
            raise ConversionError(f"{st.doc}: link to a repository file {href!r} (not a book page); "
                                  "Colab opens the notebook alone")
        doc = self._resolve_doc(parts.path, st.doc)
        return self.book.url(doc, parts.fragment)

    # ---- Markdown --------------------------------------------------------------------------
    def markdown(self, text: str, st: State) -> str:
        """Plain Markdown for one MyST Markdown source (a cell, or the body of a directive)."""
        tokens = self.md.parse(text)
        lines = text.split("\n")
        starts = [0]
        for ln in lines:
            starts.append(starts[-1] + len(ln) + 1)

        def line_span(a, b):
            """Character span of lines a..b-1 (without the final newline)."""
            return starts[a], (starts[b] - 1 if b < len(lines) else len(text))

        blocks = []                                    # the tokens of each top-level block
        for tok in tokens:
            if tok.level == 0 and tok.map is not None and tok.nesting >= 0:
                blocks.append([])
            if blocks:
                blocks[-1].append(tok)

        out = []
        for blk in blocks:
            head = blk[0]
            d = split_directive(head) if head.type in ("fence", "colon_fence") else None
            marker = d[0] if d and d[0] in ("solution-start", "solution-end") else None
            if marker == "solution-end":
                st.in_gated_solution = False
                continue
            if st.in_gated_solution and st.edition == STUDENT:
                continue                               # inside a solution: not for students
            if marker == "solution-start":
                st.in_gated_solution = True
                if st.edition == STUDENT:
                    continue
            repl = []
            for tok in blk:
                if tok.type in ("fence", "colon_fence") and split_directive(tok) is not None:
                    new = self.directive(tok, st, top=tok is head)
                    repl.append((*line_span(*tok.map), self._indent_like(lines[tok.map[0]], new)))
                elif tok.type in ("myst_target", "myst_line_comment", "myst_block_break"):
                    repl.append((*line_span(*tok.map), ""))
                elif tok.type == "math_block_label":
                    st.equations += 1
                    lab = self.book.labels.get(tok.info)
                    number = lab.number if lab and lab.doc == st.doc else str(st.equations)
                    body = tok.content.strip("\n") + f" \\tag{{{number}}}"
                    repl.append((*line_span(*tok.map),
                                 self._indent_like(lines[tok.map[0]], f"$$\n{body}\n$$")))
                elif tok.type == "amsmath":
                    # Colab's math renderer wants environments inside display math
                    repl.append((*line_span(*tok.map), self._indent_like(
                        lines[tok.map[0]], "$$\n" + tok.content.strip("\n") + "\n$$")))
                elif tok.type == "heading_open" and tok.level == 0:
                    st.heading = int(tok.tag[1])
                elif tok.type == "inline":
                    repl.extend(self._inline_replacements(tok, lines, starts, st))
            s, e = line_span(head.map[0], head.map[1])
            chunk, last = text[s:e], None
            for rs, r_e, new in sorted(repl, reverse=True):
                if not (s <= rs <= r_e <= e) or (last is not None and r_e > last):
                    raise ConversionError(f"{st.doc}: overlapping or misplaced replacement near "
                                          f"{text[rs:r_e][:60]!r}")
                chunk, last = chunk[: rs - s] + new + chunk[r_e - s:], rs
            chunk = chunk.strip("\n")
            if chunk.strip():
                out.append(chunk)
        return "\n\n".join(out)

    @staticmethod
    def _indent_like(first_line, new):
        """Re-apply a block's prefix (list indentation, '> ') to the lines that replace it."""
        indent = first_line[: len(first_line) - len(first_line.lstrip(" >\t"))]
        if not indent or not new:
            return new
        return "\n".join(indent + ln if ln else indent.rstrip() for ln in new.split("\n"))

    def _inline_replacements(self, tok, lines, starts, st):
        children = tok.children or []
        if not any(c.type in ("myst_role", "link_open") for c in children):
            return []
        # Map the inline source (block prefixes stripped) back onto the cell's lines.
        content_lines = tok.content.split("\n")
        offsets = []
        a = tok.map[0]
        for k, cl in enumerate(content_lines):
            src_line = lines[a + k] if a + k < len(lines) else ""
            col = src_line.find(cl) if cl else len(src_line.rstrip())
            if col < 0 or a + k >= tok.map[1]:
                raise ConversionError(f"{st.doc}: cannot place inline text {cl!r} in its source lines")
            offsets.append(starts[a + k] + col)

        def absolute(pos):
            k = tok.content.count("\n", 0, pos)
            line_start = tok.content.rfind("\n", 0, pos) + 1
            return offsets[k] + (pos - line_start)

        out = []
        for c in children:
            span = (c.meta or {}).get("span")
            if c.type == "myst_role":
                if span is None:
                    raise ConversionError(f"{st.doc}: role without a position")
                out.append((absolute(span[0]), absolute(span[1]), self.role(c.meta["name"], c.content, st)))
            elif c.type == "link_open" and span is not None:
                href = c.attrs.get("href", "")
                new = self.link(href, st)
                if new != href:
                    e = absolute(span[1])
                    raw = tok.content[span[0]:span[1]]
                    # the link text keeps its own roles (if any) converted by the children that follow
                    j = raw.rfind("](")
                    if j < 0:
                        raise ConversionError(f"{st.doc}: reference-style link to a page: {raw!r}")
                    out.append((absolute(span[0] + j + 2), e - 1, new))
        return out

    # ---- directives ------------------------------------------------------------------------
    def directive(self, tok, st, top):
        name, arg, opts, body = split_directive(tok)
        if name == "exercise":
            number = ""
            if "nonumber" not in opts:
                st.exercises += 1
                number = f"{st.chapter}.{st.exercises}" if st.chapter is not None else str(st.exercises)
            if "label" in opts:
                st.exercise_numbers[opts["label"]] = number
            level = min(st.heading + 1, 6)
            title = " ".join(p for p in ["Exercise", number] if p)
            if arg:
                title += f" ({self.markdown(arg, st)})"
            return f"{'#' * level} {title}\n\n{self.markdown(body, st)}"
        if name == "solution":
            if st.edition == STUDENT:
                return ""
            return self._solution_heading(arg, st) + "\n\n" + self.markdown(body, st)
        if name in ("solution-start", "solution-end"):
            if not top:
                raise ConversionError(f"{st.doc}: {{{name}}} must be at the top level of a cell")
            return self._solution_heading(arg, st) if name == "solution-start" else ""
        if name in ("exercise-start", "exercise-end"):
            raise ConversionError(f"{st.doc}: gated exercises are not supported by the Colab conversion")
        if name == "bibliography":
            st.saw_bibliography = True
            return self.references(st)
        if name in DROPPED_DIRECTIVES:
            return ""
        if name in ADMONITIONS or name in TITLED_BLOCKS:
            if name in ADMONITIONS:
                title = ADMONITIONS[name]
                if arg:
                    body = arg + "\n" + body
            else:
                title = arg or name.capitalize()
            inner = self.markdown(body, st)
            quoted = "\n".join("> " + ln if ln else ">" for ln in inner.split("\n"))
            return f"> **{self.markdown(title, st)}**\n>\n{quoted}" if inner else f"> **{title}**"
        if name in CODE_DIRECTIVES:
            lang = arg.split()[0] if arg else ""
            ticks = "`" * max(3, max((len(m) for m in re.findall(r"`+", body)), default=0) + 1)
            return f"{ticks}{lang}\n{body}\n{ticks}"
        if name in MATH_DIRECTIVES:
            tag = ""
            if "label" in opts:
                st.equations += 1
                lab = self.book.labels.get(opts["label"])
                tag = f" \\tag{{{lab.number if lab else st.equations}}}"
            return f"$$\n{body.strip()}{tag}\n$$"
        if name in ("figure", "image"):
            src = arg
            if not urlsplit(src).scheme:
                raise ConversionError(f"{st.doc}: {{{name}}} {src!r} is a repository file; Colab "
                                      "opens the notebook alone (draw the figure in a code cell)")
            alt = opts.get("alt", "")
            caption = self.markdown(body, st) if name == "figure" else ""
            return f"![{alt}]({src})" + (f"\n\n*{caption}*" if caption else "")
        if name == "raw":
            return body
        raise ConversionError(f"{st.doc}: directive {{{name}}} has no plain-Markdown conversion")

    def _solution_heading(self, target, st):
        number = st.exercise_numbers.get(target.strip())
        if number is None:
            lab = self.book.labels.get(target.strip())
            number = lab.number if lab else ""
        level = min(st.heading + 2, 6)
        return f"{'#' * level} Solution" + (f" to Exercise {number}" if number else "")

    def references(self, st):
        """The references cited so far, as a Markdown list (sorted by author and year)."""
        if not st.cited:
            return ""
        from pybtex.database import BibliographyData
        from pybtex.style.formatting.unsrt import Style

        entries = [self.book.cite_entry(k) for k in st.cited]
        entries.sort(key=lambda e: (cite_authors(e), cite_year(e), e.fields.get("title", "")))
        data = BibliographyData(entries={e.key: e for e in entries})
        from pybtex.backends.markdown import Backend

        backend = Backend()
        formatted = {f.key: f.text.render(backend) for f in Style().format_entries(data.entries.values())}
        labels = [f"{cite_authors(e)}, {cite_year(e)}" for e in entries]
        seen = {}
        out = []
        for e, lab in zip(entries, labels):
            if labels.count(lab) > 1:
                seen[lab] = seen.get(lab, -1) + 1
                lab = lab + string.ascii_lowercase[seen[lab]]
            out.append(f"- **{lab}.** " + " ".join(formatted[e.key].split()))
        return "\n".join(out)

    # ---- notebooks -------------------------------------------------------------------------
    def notebook(self, path: pathlib.Path, edition: str):
        if edition not in (STUDENT, TEACHER):
            raise ValueError(f"edition must be {STUDENT!r} or {TEACHER!r}, got {edition!r}")
        doc = path.relative_to(self.book.root).with_suffix("").as_posix()
        nb = nbformat.read(path, as_version=4)
        st = State(doc=doc, edition=edition, chapter=chapter_number(doc))
        cells = []
        for cell in nb.cells:
            cell = copy.deepcopy(cell)
            if cell.cell_type == "markdown":
                cell.source = self.markdown(cell.source, st)
                # a Markdown cell the book hides (e.g. notes for the teacher) is not for students
                if not cell.source.strip() or (
                        edition == STUDENT and "remove-cell" in cell.metadata.get("tags", [])):
                    continue
            elif cell.cell_type == "code":
                if st.in_gated_solution and edition == STUDENT:
                    continue
                cell.outputs, cell.execution_count = [], None
            else:
                if st.in_gated_solution and edition == STUDENT:
                    continue
            cells.append(cell)
        if st.in_gated_solution:
            raise ConversionError(f"{doc}: {{solution-start}} without {{solution-end}}")
        if st.cited and not st.saw_bibliography:
            refs = nbformat.v4.new_markdown_cell("## References\n\n" + self.references(st))
            refs["id"] = "colab-references"
            cells.append(refs)
        intro = (f"*This notebook is chapter {st.chapter} of the book "
                 if st.chapter is not None else "*This notebook is a page of the book ")
        intro += (f"[{self.book.cfg.get('title', 'ssmbook')}]({self.book.base_url}), converted to plain "
                  f"notebook Markdown ([the chapter on the web]({self.book.url(doc)})). ")
        intro += ("Solutions are removed; try the exercises yourself.*" if edition == STUDENT else
                  "Teacher edition: every solution is included below its exercise.*")
        head = nbformat.v4.new_markdown_cell(intro)
        head["id"] = "colab-about"
        at = 1 if cells and cells[0].cell_type == "markdown" and cells[0].source.lstrip().startswith("# ") else 0
        cells.insert(at, head)
        nb.cells = cells
        nb.metadata.setdefault("colab", {})["provenance"] = []
        nbformat.validate(nb)
        return nb


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=str(ROOT), help="the book's folder (with _config.yml, _toc.yml)")
    ap.add_argument("--out", default=None, help="folder that receives _build/colab and _build/teacher "
                    "(default: the book's folder)")
    args = ap.parse_args(argv)
    out = pathlib.Path(args.out or args.root)
    conv = Converter(Book(pathlib.Path(args.root).resolve()))
    written = []
    for folder in (out / COLAB_DIR, out / TEACHER_DIR):
        shutil.rmtree(folder, ignore_errors=True)        # no notebook of a page that is gone
    for path in conv.book.docs.values():
        if path.suffix != ".ipynb":
            continue
        for edition, folder in ((STUDENT, out / COLAB_DIR), (TEACHER, out / TEACHER_DIR)):
            target = folder / (path.name if edition == TEACHER else path.relative_to(conv.book.root))
            target.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(conv.notebook(path, edition), target)
            written.append(target)
    readme = out / COLAB_DIR / "README.md"
    readme.write_text(
        "# Colab notebooks of ssmbook\n\n"
        "This branch is generated by `make colab` (scripts/colab_notebooks.py) from the book's "
        f"sources: plain-Markdown notebooks without solutions, opened by the book's Colab buttons.\n\n"
        f"The book: {conv.book.base_url}\n")
    print(f"wrote {len(written)} notebooks under {out / COLAB_DIR} and {out / TEACHER_DIR}")
    return written


if __name__ == "__main__":
    main()
