"""Reference-list labels in the same author–year form as the in-text citations.

sphinxcontrib-bibtex writes in-text citations as "[Gu and Dao, 2024]" (``bibtex_reference_style:
author_year``), but its default bibliography style labels the list entries "[GD24]".  This Sphinx
extension registers a pybtex formatting style, ``ssmbook``, whose labels are "Gu and Dao, 2024":
one author by last name, two joined by "and", three or more as "First et al."; a letter is appended
to the year when two entries would otherwise get the same label.  The slide and print scripts use
:func:`label` for the same text.
"""
from __future__ import annotations

import string

from pybtex.plugin import register_plugin
from pybtex.richtext import Text
from pybtex.style.formatting.unsrt import Style as UnsrtStyle
from pybtex.style.labels import BaseLabelStyle
from pybtex.style.sorting.author_year_title import SortingStyle


def _last(person) -> str:
    return Text.from_latex(" ".join(person.prelast_names + person.last_names)).render_as("text")


def authors(entry) -> str:
    people = entry.persons.get("author") or entry.persons.get("editor") or []
    names = [_last(p) for p in people]
    if not names:
        return Text.from_latex(entry.fields.get("title", entry.key)).render_as("text")
    if len(names) == 1:
        return names[0]
    if len(names) == 2:
        return f"{names[0]} and {names[1]}"
    return f"{names[0]} et al."


def year(entry) -> str:
    return entry.fields.get("year", "n.d.")


def label(entry) -> str:
    """The label of one entry, without the disambiguating letter."""
    return f"{authors(entry)}, {year(entry)}"


class AuthorYearLabelStyle(BaseLabelStyle):
    def format_labels(self, sorted_entries):
        entries = list(sorted_entries)
        base = [label(e) for e in entries]
        seen: dict[str, int] = {}
        for b in base:
            seen[b] = seen.get(b, 0) + 1
        count: dict[str, int] = {}
        for b in base:
            if seen[b] == 1:
                yield b
            else:
                i = count.get(b, 0)
                count[b] = i + 1
                yield b + string.ascii_lowercase[i]


class AuthorYearStyle(UnsrtStyle):
    default_label_style = AuthorYearLabelStyle
    default_sorting_style = SortingStyle


def setup(app):
    register_plugin("pybtex.style.formatting", "ssmbook_author_year", AuthorYearStyle)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
