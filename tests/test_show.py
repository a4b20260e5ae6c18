"""ssmbook.show / ssmbook.sections: the one way chapters display library code."""
import pytest

import ssmbook
from ssmbook import sections, show


def _demo(x):
    """A function with two marked sections."""
    y = x + 1
    # --- double it ---
    y = 2 * y
    # --- return ---
    return y


def test_sections_split_at_markers_and_join_back():
    parts = sections(_demo)
    assert [t for t, _ in parts] == ["signature", "double it", "return"]
    assert "".join(code for _, code in parts) == ssmbook.source(_demo)
    assert "y = 2 * y" in dict(parts)["double it"]
    assert "y = 2 * y" not in dict(parts)["return"]


def test_show_section_is_dedented_and_fenced():
    md = show(_demo, section="double it").data
    assert md.startswith("```python\n# --- double it ---\ny = 2 * y")
    assert "return y" not in md and md.endswith("\n```")


def test_show_whole_source_and_line_slice():
    assert "def _demo(x):" in show(_demo).data
    sliced = show(_demo, lines=(1, 1)).data
    assert sliced == "```python\ndef _demo(x):\n```"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(section="nope"), "section must be one of"),
        (dict(lines=(0, 2)), "lines must be"),
        (dict(lines=(3, 2)), "lines must be"),
        (dict(lines=[1, 2]), "lines must be"),
        (dict(section="return", lines=(1, 1)), "either section= or lines="),
    ],
)
def test_show_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        show(_demo, **kwargs)


def test_source_of_an_object_without_source_is_a_clear_error():
    with pytest.raises(ValueError, match="cannot find the source"):
        ssmbook.source(len)
